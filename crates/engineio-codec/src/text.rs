//! [`Text`]: UTF-8 text in a shared, cheaply cloned buffer, so that the layers above the
//! transport (socket.io packets, their event names and arguments) keep pointing into the frame
//! that carried them instead of copying.

use std::fmt;

use bytes::Bytes;
use bytestring::ByteString;

/// UTF-8 text in a shared, cheaply cloned buffer (no copy from the frame it came in).
///
/// A `Text` keeps the buffer it points into alive: text taken from a received frame holds on to
/// that frame's read buffer until the last clone is dropped. Copy it (`Text::from(t.as_str())`)
/// to keep a small piece for a long time.
///
/// ```
/// use bytes::Bytes;
/// use engineio_codec::Text;
/// let frame = Bytes::from_static(b"4hello world");
/// let message = Text::after_type_byte(frame).unwrap();
/// assert_eq!(message.as_str(), "hello world");
/// // A piece of it, still in the frame's buffer.
/// let world = message.slice_ref(&message[6..]).unwrap();
/// assert_eq!(world.as_str(), "world");
/// assert!(message.slice_ref("elsewhere").is_none());
/// ```
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Text(ByteString);

impl Text {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part of this text that `part` is (a sub-slice of [`Text::as_str`]), sharing the
    /// buffer; `None` when `part` does not point into this text.
    pub fn slice_ref(&self, part: &str) -> Option<Text> {
        let whole = self.as_str();
        let offset = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
        let end = offset.checked_add(part.len())?;
        // In bounds and on char boundaries, or `None`.
        let part = whole.get(offset..end)?;
        Some(Text(self.0.slice_ref(part)))
    }

    /// The text `bytes` hold, if they are UTF-8.
    pub fn from_utf8(bytes: Bytes) -> Result<Text, std::str::Utf8Error> {
        ByteString::try_from(bytes).map(Text)
    }

    /// The text of a packet after its type byte (`4hello` → `hello`), sharing `packet`'s
    /// buffer; `None` when that part is not UTF-8.
    pub fn after_type_byte(packet: Bytes) -> Option<Text> {
        Text::from_utf8(packet.slice(1.min(packet.len())..)).ok()
    }
}

impl std::ops::Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text(s.into())
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text(s.into())
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_share_the_buffer_and_refuse_foreign_text() {
        let text = Text::after_type_byte(Bytes::from_static("42[\"a\",\"é\"]".as_bytes())).unwrap();
        assert_eq!(text.as_str(), "2[\"a\",\"é\"]");
        let inner = &text.as_str()[3..4];
        let part = text.slice_ref(inner).unwrap();
        assert_eq!(part.as_str(), "a");
        assert_eq!(part.as_str().as_ptr(), inner.as_ptr(), "no copy");
        assert!(text.slice_ref("a").is_none(), "not a part of the text");
        assert!(Text::after_type_byte(Bytes::from_static(b"4\xff")).is_none());
        assert_eq!(Text::after_type_byte(Bytes::new()).unwrap().as_str(), "");
    }
}
