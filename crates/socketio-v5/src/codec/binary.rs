//! Binary packets: a `BINARY_EVENT` or `BINARY_ACK` text packet whose JSON holds placeholders
//! `{"_placeholder":true,"num":N}`, followed by N binary Engine.IO messages.

use bytes::Bytes;
use serde_json::Value;

use super::error::{DecodeError, DecodeErrorKind};
use super::{Packet, decode, decode_shared};

/// A socket.io packet with its binary attachments, in order (`num` 0, 1, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The packet.
    pub packet: Packet<'a>,
    /// Its attachments; empty for packets that are not binary.
    pub attachments: Vec<Bytes>,
}

impl Message<'_> {
    /// An owned copy that no longer borrows from the decoded text.
    pub fn into_owned(self) -> Message<'static> {
        Message {
            packet: self.packet.into_owned(),
            attachments: self.attachments,
        }
    }

    /// An owned copy sharing `source`'s buffer where the packet was decoded from it.
    pub fn into_shared(self, source: &engineio_codec::Text) -> Message<'static> {
        Message {
            packet: self.packet.into_shared(source),
            attachments: self.attachments,
        }
    }

    /// The attachment a placeholder names.
    pub fn attachment(&self, placeholder: &Placeholder) -> Option<&Bytes> {
        self.attachments.get(placeholder.num)
    }
}

/// A `{"_placeholder":true,"num":N}` object, as it stands for an attachment in the JSON.
/// Deserialize it where a binary argument is expected, then look the bytes up with
/// [`Message::attachment`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct Placeholder {
    #[serde(rename = "_placeholder")]
    placeholder: bool,
    /// Which attachment.
    pub num: usize,
}

impl Placeholder {
    /// The placeholder for attachment `num`.
    pub fn new(num: usize) -> Self {
        Self {
            placeholder: true,
            num,
        }
    }
}

/// Collects the attachments that follow a binary packet. Pure: feed it each Engine.IO message
/// in order; it yields whole messages.
///
/// ```
/// use socketio_v5::codec::Reassembler;
/// let mut r = Reassembler::new(10);
/// assert!(r.text(r#"51-["file",{"_placeholder":true,"num":0}]"#).unwrap().is_none());
/// let message = r.binary(vec![1, 2, 3].into()).unwrap().unwrap();
/// assert_eq!(message.attachments[0].as_ref(), &[1, 2, 3]);
/// ```
#[derive(Debug, Clone)]
pub struct Reassembler {
    max_attachments: usize,
    pending: Option<Message<'static>>,
}

/// The default cap on attachments per packet, as in socket.io-parser 4.2.6.
pub const DEFAULT_MAX_ATTACHMENTS: usize = 10;

impl Default for Reassembler {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_ATTACHMENTS)
    }
}

impl Reassembler {
    /// A reassembler that refuses packets announcing more than `max_attachments` attachments.
    pub fn new(max_attachments: usize) -> Self {
        Self {
            max_attachments,
            pending: None,
        }
    }

    /// The cap on attachments per packet.
    pub fn max_attachments(&self) -> usize {
        self.max_attachments
    }

    /// Whether a binary packet is waiting for attachments.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// A text Engine.IO message arrived. Returns the message when it is complete (always, for
    /// non-binary packets and binary packets with zero attachments).
    ///
    /// After an error the reassembler is reset; the connection should be closed, as the
    /// reference client does on a parse error.
    pub fn text<'a>(&mut self, text: &'a str) -> Result<Option<Message<'a>>, DecodeError> {
        self.no_pending()?;
        self.accept(decode(text)?)
    }

    /// As [`Reassembler::text`], for a received message: the packet keeps its payload in the
    /// message's shared buffer ([`super::decode_shared`]).
    pub fn text_shared(
        &mut self,
        text: &engineio_codec::Text,
    ) -> Result<Option<Message<'static>>, DecodeError> {
        self.no_pending()?;
        self.accept(decode_shared(text)?)
    }

    fn no_pending(&mut self) -> Result<(), DecodeError> {
        match self.pending.take() {
            Some(_) => Err(DecodeError::new(
                DecodeErrorKind::TextDuringReconstruction,
                0,
            )),
            None => Ok(()),
        }
    }

    fn accept<'a>(&mut self, packet: Packet<'a>) -> Result<Option<Message<'a>>, DecodeError> {
        let count = packet.attachments();
        if count > self.max_attachments {
            return Err(DecodeError::new(
                DecodeErrorKind::TooManyAttachments {
                    count,
                    max: self.max_attachments,
                },
                1,
            ));
        }
        if count == 0 {
            if packet.kind().is_binary() {
                check_placeholders(&packet, 0)?;
            }
            return Ok(Some(Message {
                packet,
                attachments: Vec::new(),
            }));
        }
        self.pending = Some(Message {
            packet: packet.into_owned(),
            attachments: Vec::with_capacity(count),
        });
        Ok(None)
    }

    /// A binary Engine.IO message arrived: the next attachment of the pending packet.
    pub fn binary(&mut self, bytes: Bytes) -> Result<Option<Message<'static>>, DecodeError> {
        let Some(mut message) = self.pending.take() else {
            return Err(DecodeError::new(DecodeErrorKind::UnexpectedAttachment, 0));
        };
        message.attachments.push(bytes);
        if message.attachments.len() < message.packet.attachments() {
            self.pending = Some(message);
            return Ok(None);
        }
        check_placeholders(&message.packet, message.attachments.len())?;
        Ok(Some(message))
    }
}

/// Every placeholder in the payload must name an attachment in `[0, count)`.
fn check_placeholders(packet: &Packet<'_>, count: usize) -> Result<(), DecodeError> {
    let Some(data) = packet.data() else {
        return Ok(());
    };
    // Binary packets are rare and small in JSON; a tree walk is fine here.
    let value: Value = data.deserialize().map_err(|e| {
        DecodeError::new(
            DecodeErrorKind::InvalidJson {
                reason: e.to_string(),
            },
            0,
        )
    })?;
    let mut stack = vec![&value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Array(items) => stack.extend(items),
            Value::Object(map) => {
                if map.get("_placeholder") == Some(&Value::Bool(true)) {
                    let num = map.get("num");
                    let valid = num
                        .and_then(Value::as_u64)
                        .is_some_and(|n| n < count as u64);
                    if !valid {
                        return Err(DecodeError::new(
                            DecodeErrorKind::PlaceholderOutOfRange {
                                num: num.map_or_else(|| "(missing)".to_owned(), Value::to_string),
                                count,
                            },
                            0,
                        ));
                    }
                } else {
                    stack.extend(map.values());
                }
            }
            _ => {}
        }
    }
    Ok(())
}
