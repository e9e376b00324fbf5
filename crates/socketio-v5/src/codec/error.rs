//! Typed errors that say which byte and why.

use std::fmt;

/// Why a socket.io packet could not be decoded, and at which byte of its text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid socket.io packet at byte {offset}: {kind}")]
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

    /// The byte offset of the fault within the packet's text (0 for faults of a whole packet
    /// sequence, such as an unexpected attachment).
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
    /// The message is empty.
    Empty,
    /// The first byte is not a packet type `'0'..='6'`.
    UnknownType {
        /// The byte found.
        found: u8,
    },
    /// A binary packet's attachment count is missing, not decimal, or not followed by `-`.
    Attachments,
    /// The ack id does not fit in 64 bits.
    AckIdOverflow,
    /// The payload is not valid JSON.
    InvalidJson {
        /// serde_json's explanation.
        reason: String,
    },
    /// The payload is valid JSON of the wrong shape for the packet type.
    InvalidPayload {
        /// What the packet type requires.
        expected: &'static str,
    },
    /// An event uses a name socket.io reserves for itself.
    ReservedEvent {
        /// The name.
        name: String,
    },
    /// A binary packet announces more attachments than the configured cap.
    TooManyAttachments {
        /// Announced.
        count: usize,
        /// Allowed.
        max: usize,
    },
    /// A text packet arrived while the attachments of a binary packet were still expected.
    TextDuringReconstruction,
    /// A binary message arrived while no binary packet was expecting attachments.
    UnexpectedAttachment,
    /// A namespace to send must start with `/` and cannot contain `,`.
    InvalidNamespace {
        /// The namespace given.
        namespace: String,
    },
    /// A placeholder points at an attachment that does not exist.
    PlaceholderOutOfRange {
        /// The placeholder's `num`, as written.
        num: String,
        /// How many attachments the packet has.
        count: usize,
    },
}

impl DecodeErrorKind {
    /// A stable short name for the kind, for logs, metrics and test vectors.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::UnknownType { .. } => "unknown_type",
            Self::Attachments => "attachments",
            Self::AckIdOverflow => "ack_id_overflow",
            Self::InvalidJson { .. } => "invalid_json",
            Self::InvalidPayload { .. } => "invalid_payload",
            Self::ReservedEvent { .. } => "reserved_event",
            Self::TooManyAttachments { .. } => "too_many_attachments",
            Self::TextDuringReconstruction => "text_during_reconstruction",
            Self::UnexpectedAttachment => "unexpected_attachment",
            Self::PlaceholderOutOfRange { .. } => "placeholder_out_of_range",
            Self::InvalidNamespace { .. } => "invalid_namespace",
        }
    }
}

impl fmt::Display for DecodeErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty message: expected a packet type '0'..='6'"),
            Self::UnknownType { found } => write!(
                f,
                "unknown packet type {:?}: expected '0'..='6' (is the peer a socket.io v5 server?)",
                char::from(*found).escape_default().to_string()
            ),
            Self::Attachments => {
                f.write_str("binary packet needs a decimal attachment count followed by '-'")
            }
            Self::AckIdOverflow => f.write_str("ack id does not fit in 64 bits"),
            Self::InvalidJson { reason } => write!(f, "payload is not valid JSON: {reason}"),
            Self::InvalidPayload { expected } => write!(f, "wrong payload: {expected}"),
            Self::ReservedEvent { name } => {
                write!(f, "event name {name:?} is reserved by socket.io")
            }
            Self::TooManyAttachments { count, max } => write!(
                f,
                "binary packet announces {count} attachments, more than the limit of {max}"
            ),
            Self::TextDuringReconstruction => f.write_str(
                "got a text packet while the attachments of a binary packet were still expected",
            ),
            Self::UnexpectedAttachment => {
                f.write_str("got a binary attachment while no binary packet was expecting one")
            }
            Self::InvalidNamespace { namespace } => write!(
                f,
                "namespace {namespace:?} must start with '/' and cannot contain ','"
            ),
            Self::PlaceholderOutOfRange { num, count } => write!(
                f,
                "placeholder num {num} does not name one of the packet's {count} attachments"
            ),
        }
    }
}

/// Why a packet could not be built for sending.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The arguments could not be serialized to JSON.
    #[error("arguments cannot be serialized to JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The packet would be invalid (for instance a reserved event name).
    #[error(transparent)]
    Invalid(#[from] DecodeError),
}
