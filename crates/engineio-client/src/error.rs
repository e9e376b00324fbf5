//! Why a connection attempt or a send failed.

use std::error::Error as StdError;
use std::time::Duration;

/// The underlying cause of an [`Error`], kept with its type: an [`std::io::Error`] for TCP, the
/// HTTP client's error for long-polling, the WebSocket library's error for WebSocket. Reach it
/// with [`std::error::Error::source`] and `downcast_ref`, or ask [`Error::is_refused`],
/// [`Error::is_timeout`] and [`Error::status`], which walk it for you.
pub type Cause = Box<dyn StdError + Send + Sync + 'static>;

/// Why a connection attempt or a send failed.
///
/// Its `Display` is one line that says what failed, on what URL, and why (the whole chain of
/// causes); [`std::error::Error::source`] gives the typed cause.
///
/// A server that is down, seen through the event stream:
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// use engineio_client::{Client, Config, Event, Lost};
/// // A port nothing listens on.
/// let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
/// let (client, mut events) = Client::connect(Config::new(&format!("http://127.0.0.1:{port}")).unwrap());
/// let Some(Event::Reconnecting { cause: Lost::Failed(error), .. }) = events.recv().await else {
///     panic!("the attempt fails")
/// };
/// assert!(error.is_refused() && !error.is_timeout() && error.status().is_none());
/// // One line with the whole chain: what failed, on what URL, and why.
/// assert!(error.to_string().contains(&format!("127.0.0.1:{port}")));
/// // The typed cause, for what the helpers do not answer.
/// assert!(std::error::Error::source(&*error).is_some());
/// client.close();
/// # });
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server URL cannot be used.
    #[error("invalid server URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// Why.
        reason: String,
        /// The parser's error, when the URL does not parse at all.
        #[source]
        source: Option<url::ParseError>,
    },
    /// TCP, TLS or HTTP failed before the server answered.
    #[error("cannot reach {url}: {}", chain(source.as_ref()))]
    Connect {
        /// The request URL.
        url: String,
        /// The cause: an `std::io::Error` (refused, unreachable, reset), a TLS error, or the
        /// HTTP client's error wrapping one of them.
        #[source]
        source: Cause,
    },
    /// A long-polling request got no answer in time.
    #[error("{url} did not answer within {timeout:?}")]
    RequestTimeout {
        /// The request URL.
        url: String,
        /// [`crate::Config::request_timeout`].
        timeout: Duration,
    },
    /// The server answered a long-polling request with an error status.
    #[error("{url} answered HTTP {status}: {body}")]
    Status {
        /// The request URL.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the response body (Node servers explain themselves in JSON there).
        body: String,
    },
    /// The server sent more at once than [`crate::Config::max_payload`] allows: the answer
    /// was not read, and the client reconnects.
    #[error("{url} sent more than {limit} bytes at once (Config::max_payload); not read")]
    TooLarge {
        /// The request URL.
        url: String,
        /// [`crate::Config::max_payload`].
        limit: usize,
    },
    /// The WebSocket handshake or connection failed.
    #[error("WebSocket {url} failed: {}", chain(source.as_ref()))]
    WebSocket {
        /// The URL.
        url: String,
        /// The cause: the WebSocket library's error (a refused upgrade carries the server's
        /// HTTP response: see [`Error::status`]).
        #[source]
        source: Cause,
    },
    /// The server answered, but not with an Engine.IO v4 handshake.
    #[error("{url} is not an Engine.IO v4 server: {reason}")]
    Handshake {
        /// The URL.
        url: String,
        /// What came instead.
        reason: String,
    },
    /// The server sent bytes that are not Engine.IO v4.
    #[error("the server broke the Engine.IO protocol: {0}")]
    Protocol(#[from] engineio_codec::DecodeError),
    /// No handshake within the open timeout.
    #[error("no Engine.IO handshake from {url} within {timeout:?}")]
    OpenTimeout {
        /// The URL.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The header provider failed.
    #[error("the header provider failed: {0}")]
    Headers(String),
    /// The client is closed, or not connected right now.
    #[error("not connected: the message was not sent")]
    NotConnected,
}

impl Error {
    /// Whether the server's host refused the connection (nothing listens on the port): a
    /// server that is down, or the wrong port.
    pub fn is_refused(&self) -> bool {
        self.io_kinds()
            .any(|kind| kind == std::io::ErrorKind::ConnectionRefused)
    }

    /// Whether the attempt ran out of time: no handshake within the open timeout, no answer to
    /// a request in time, or a TCP timeout.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Error::OpenTimeout { .. } | Error::RequestTimeout { .. }
        ) || self
            .io_kinds()
            .any(|kind| kind == std::io::ErrorKind::TimedOut)
    }

    /// The HTTP status the server answered with, when it refused a request or the WebSocket
    /// upgrade (a 400 or 403 says the server does not want this client: retrying will not help).
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            Error::WebSocket { source, .. } => {
                match source.downcast_ref::<tokio_tungstenite::tungstenite::Error>() {
                    Some(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                        Some(response.status().as_u16())
                    }
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The kinds of every `std::io::Error` in the chain of causes.
    fn io_kinds(&self) -> impl Iterator<Item = std::io::ErrorKind> + '_ {
        std::iter::successors(StdError::source(self), |e| (*e).source())
            .filter_map(|e| e.downcast_ref::<std::io::Error>().map(std::io::Error::kind))
    }
}

/// A cause and its own causes, joined for one line of text.
fn chain(cause: &(dyn StdError + 'static)) -> String {
    let mut text = cause.to_string();
    let mut next = cause.source();
    while let Some(e) = next {
        let more = e.to_string();
        // Libraries often repeat their source in their own message.
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        next = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cause_keeps_its_type_and_the_helpers_read_it() {
        let refused = Error::Connect {
            url: "http://127.0.0.1:9/".to_owned(),
            source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
        };
        assert!(refused.is_refused());
        assert!(!refused.is_timeout());
        let io = StdError::source(&refused)
            .and_then(|e| e.downcast_ref::<std::io::Error>())
            .expect("the io error is the source");
        assert_eq!(io.kind(), std::io::ErrorKind::ConnectionRefused);
        assert!(
            refused
                .to_string()
                .starts_with("cannot reach http://127.0.0.1:9/: ")
        );

        let timeout = Error::RequestTimeout {
            url: "u".to_owned(),
            timeout: Duration::from_secs(1),
        };
        assert!(timeout.is_timeout() && !timeout.is_refused());
        let status = Error::Status {
            url: "u".to_owned(),
            status: 403,
            body: String::new(),
        };
        assert_eq!(status.status(), Some(403));
        assert_eq!(refused.status(), None);
    }
}
