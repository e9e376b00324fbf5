//! Typed decode and encode errors that say which byte and why.

use std::fmt;

/// Why a packet or payload could not be decoded, and at which byte.
///
/// `offset` counts bytes from the start of the decoded input: the packet for [`crate::decode`],
/// the whole HTTP body for [`crate::decode_payload`].
///
/// ```
/// use engineio_codec::{decode, decode_payload, DecodeErrorKind};
/// let err = decode(b"9oops").unwrap_err();
/// assert_eq!(err.kind(), &DecodeErrorKind::UnknownType { found: b'9' });
/// assert_eq!((err.offset(), err.kind().code()), (0, "unknown_type"));
///
/// // In a long-polling body the offset counts from the start of the body: byte 8 is the
/// // space in the second record, which base64 has no symbol for.
/// let err = decode_payload(b"4ok\x1ebnot base64!").nth(1).unwrap().unwrap_err();
/// assert_eq!((err.offset(), err.kind().code()), (8, "base64"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid Engine.IO packet at byte {offset}: {kind}")]
pub struct DecodeError {
    kind: DecodeErrorKind,
    offset: usize,
}

impl DecodeError {
    pub(crate) fn new(kind: DecodeErrorKind, offset: usize) -> Self {
        Self { kind, offset }
    }

    /// What was wrong.
    pub fn kind(&self) -> &DecodeErrorKind {
        &self.kind
    }

    /// The byte offset of the fault, from the start of the decoded input.
    pub fn offset(&self) -> usize {
        self.offset
    }

    pub(crate) fn shifted(mut self, by: usize) -> Self {
        self.offset += by;
        self
    }
}

/// The kinds of [`DecodeError`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The packet has no bytes at all (not even a type character).
    Empty,
    /// The first byte is not a type character `'0'..='6'`.
    UnknownType {
        /// The byte found.
        found: u8,
    },
    /// A text packet is not valid UTF-8.
    InvalidUtf8,
    /// The OPEN packet's JSON is not a valid handshake.
    Handshake {
        /// serde_json's explanation.
        reason: String,
    },
    /// A `b…` long-polling record is not valid standard base64.
    Base64 {
        /// The base64 decoder's explanation.
        reason: String,
    },
}

impl DecodeErrorKind {
    /// A stable short name for the kind, for logs, metrics and test vectors.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::UnknownType { .. } => "unknown_type",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::Handshake { .. } => "handshake",
            Self::Base64 { .. } => "base64",
        }
    }
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty packet: expected a type character '0'..='6'"),
            Self::UnknownType { found } => write!(
                f,
                "unknown packet type {:?}: expected a type character '0'..='6' (is the peer an Engine.IO v4 server?)",
                char::from(*found).escape_default().to_string()
            ),
            Self::InvalidUtf8 => f.write_str("text packet is not valid UTF-8"),
            Self::Handshake { reason } => {
                write!(f, "open packet is not a valid handshake: {reason}")
            }
            Self::Base64 { reason } => write!(f, "binary record is not valid base64: {reason}"),
        }
    }
}

/// Why a packet cannot be written in the requested form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A long-polling payload separates records with `\x1e`, so a text packet containing it
    /// cannot be sent over long-polling (send it over WebSocket or as binary).
    #[error(
        "text packet contains the record separator \\x1e at byte {offset}; it cannot travel over long-polling"
    )]
    RecordSeparator {
        /// The byte offset of the separator within the packet's data.
        offset: usize,
    },
}
