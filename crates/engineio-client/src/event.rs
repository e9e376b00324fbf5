//! What a client tells its consumer, and the messages it carries.

use std::fmt;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use engineio_codec::Handshake;
use engineio_codec::session::{CloseReason, Transport};
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// UTF-8 text in a shared, cheaply cloned buffer (no copy from the frame it came in).
///
/// A `Text` keeps the buffer it points into alive: text taken from a received frame holds on to
/// that frame's read buffer until the last clone is dropped. Copy it (`Text::from(t.as_str())`)
/// to keep a small piece for a long time.
#[derive(Clone, Default)]
pub struct Text {
    buffer: Utf8Bytes,
    /// Where the text starts and ends in `buffer`, always char boundaries.
    start: usize,
    end: usize,
}

impl Text {
    /// The text.
    pub fn as_str(&self) -> &str {
        self.buffer
            .as_str()
            .get(self.start..self.end)
            .unwrap_or_default()
    }

    /// The part of this text that `part` is (a sub-slice of [`Text::as_str`]), sharing the
    /// buffer; `None` when `part` does not point into this text.
    pub fn slice_ref(&self, part: &str) -> Option<Text> {
        let whole = self.as_str();
        let offset = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
        let end = offset.checked_add(part.len())?;
        // Char boundaries are checked by `get`.
        whole.get(offset..end)?;
        Some(Text {
            buffer: self.buffer.clone(),
            start: self.start + offset,
            end: self.start + end,
        })
    }

    /// The text of a WebSocket text frame after its packet type character (ASCII), without
    /// copying or validating it again.
    pub(crate) fn after_type_char_of(frame: Utf8Bytes) -> Self {
        let end = frame.as_str().len();
        let start = usize::from(end > 0);
        Text {
            buffer: frame,
            start,
            end,
        }
    }

    /// Text from the part of `bytes` after its first byte, if that part is UTF-8.
    pub(crate) fn after_type_char(bytes: Bytes) -> Option<Self> {
        Utf8Bytes::try_from(bytes.slice(1.min(bytes.len())..))
            .ok()
            .map(Text::whole)
    }

    fn whole(buffer: Utf8Bytes) -> Self {
        let end = buffer.as_str().len();
        Text {
            buffer,
            start: 0,
            end,
        }
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Text {}

impl std::hash::Hash for Text {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
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
        Text::whole(s.into())
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text::whole(s.into())
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

/// One Engine.IO message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// A text message.
    Text(Text),
    /// A binary message.
    Binary(Bytes),
}

impl From<String> for Payload {
    fn from(s: String) -> Self {
        Payload::Text(s.into())
    }
}

impl From<&str> for Payload {
    fn from(s: &str) -> Self {
        Payload::Text(s.into())
    }
}

impl From<Bytes> for Payload {
    fn from(b: Bytes) -> Self {
        Payload::Binary(b)
    }
}

impl From<Vec<u8>> for Payload {
    fn from(b: Vec<u8>) -> Self {
        Payload::Binary(b.into())
    }
}

/// What happened, in order. The stream ends when the client is closed or gives up reconnecting.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// A session is open (the first, or a new one after a reconnect).
    Open {
        /// The server's handshake.
        handshake: Handshake,
        /// The transport it opened on.
        transport: Transport,
    },
    /// The session moved to another transport (polling → WebSocket).
    Upgrade {
        /// The new transport.
        transport: Transport,
    },
    /// A message from the server.
    Message(Payload),
    /// The session ended. Messages sent before this and not yet written are lost.
    Close {
        /// Why.
        reason: CloseReason,
    },
    /// An attempt failed or a session ended; the next attempt starts after `delay`.
    Reconnecting {
        /// The attempt about to be made (1 for the first retry).
        attempt: u32,
        /// The wait before it.
        delay: Duration,
        /// Why the previous attempt or session ended.
        error: String,
    },
}

/// The connection as a watchable value (`tokio::sync::watch`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionState {
    /// Whether a session is open now.
    pub connected: bool,
    /// The transport in use, when connected.
    pub transport: Option<Transport>,
    /// The Engine.IO session id, when connected.
    pub sid: Option<String>,
    /// When the last session opened.
    pub last_connect: Option<SystemTime>,
    /// Why the last attempt or session failed, if one did.
    pub last_error: Option<String>,
    /// The server's base URL.
    pub url: String,
    /// Failed attempts since the last stable session.
    pub attempt: u32,
}
