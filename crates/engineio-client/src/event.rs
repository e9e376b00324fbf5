//! What a client tells its consumer, and the messages it carries.

use std::fmt;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use engineio_codec::Handshake;
use engineio_codec::session::{CloseReason, Transport};
use tokio_tungstenite::tungstenite::Utf8Bytes;

/// UTF-8 text in a shared, cheaply cloned buffer (no copy from the frame it came in).
#[derive(Clone, Default)]
pub struct Text {
    buffer: Utf8Bytes,
    /// Where the text starts in `buffer` (after the packet type), always a char boundary.
    start: usize,
}

impl Text {
    /// The text.
    pub fn as_str(&self) -> &str {
        self.buffer.as_str().get(self.start..).unwrap_or_default()
    }

    /// The text of a WebSocket text frame after its packet type character (ASCII), without
    /// copying or validating it again.
    pub(crate) fn after_type_char_of(frame: Utf8Bytes) -> Self {
        let start = usize::from(!frame.as_str().is_empty());
        Text {
            buffer: frame,
            start,
        }
    }

    /// Text from the part of `bytes` after its first byte, if that part is UTF-8.
    pub(crate) fn after_type_char(bytes: Bytes) -> Option<Self> {
        Utf8Bytes::try_from(bytes.slice(1.min(bytes.len())..))
            .ok()
            .map(|buffer| Text { buffer, start: 0 })
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
        Text {
            buffer: s.into(),
            start: 0,
        }
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text {
            buffer: s.into(),
            start: 0,
        }
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
