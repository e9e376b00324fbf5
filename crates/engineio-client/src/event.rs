//! What a client tells its consumer, and the messages it carries.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use engineio_codec::session::{CloseReason, Transport};
use engineio_codec::{Handshake, Text};

use crate::error::Error;

/// One Engine.IO message.
///
/// ```
/// use engineio_client::Payload;
/// assert!(matches!(Payload::from("hello"), Payload::Text(t) if t.as_str() == "hello"));
/// assert!(matches!(Payload::from(vec![1, 2, 3]), Payload::Binary(b) if b.as_ref() == [1, 2, 3]));
/// ```
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
        cause: Lost,
    },
}

/// What ended the previous attempt or session, as [`Event::Reconnecting`] reports it.
///
/// ```no_run
/// # async fn demo(client: engineio_client::Client, mut events: engineio_client::Events) {
/// use engineio_client::{CloseReason, Event, Lost};
/// while let Some(event) = events.recv().await {
///     if let Event::Reconnecting { attempt, delay, cause } = event {
///         match cause {
///             Lost::Failed(error) if error.status() == Some(403) => {
///                 eprintln!("the server refuses us: {error}");
///                 client.close(); // retrying will not help
///             }
///             Lost::Failed(error) if error.is_refused() => {
///                 eprintln!("the server is down; attempt {attempt} in {delay:?}")
///             }
///             Lost::Closed(CloseReason::PingTimeout) => eprintln!("the network went quiet"),
///             other => eprintln!("lost: {other}"),
///         }
///     }
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Lost {
    /// A session was open and ended.
    Closed(CloseReason),
    /// The attempt failed before a session opened: ask the error
    /// ([`Error::is_refused`], [`Error::is_timeout`], [`Error::status`]) what to do about it.
    Failed(Arc<Error>),
}

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lost::Closed(reason) => reason.fmt(f),
            Lost::Failed(error) => error.fmt(f),
        }
    }
}

/// Two causes are equal when they say the same (an error's cause has no equality of its own).
impl PartialEq for Lost {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Lost::Closed(a), Lost::Closed(b)) => a == b,
            (Lost::Failed(a), Lost::Failed(b)) => {
                Arc::ptr_eq(a, b) || a.to_string() == b.to_string()
            }
            _ => false,
        }
    }
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
