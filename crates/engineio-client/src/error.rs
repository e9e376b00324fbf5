//! Why a connection attempt failed.

/// Why a connection attempt or a send failed. Each message says what failed, on what, and when it
/// helps, what to check.
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
    },
    /// TCP, TLS or HTTP failed before the server answered.
    #[error("cannot reach {url}: {reason}")]
    Connect {
        /// The request URL.
        url: String,
        /// The underlying error.
        reason: String,
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
    /// The WebSocket handshake or connection failed.
    #[error("WebSocket {url} failed: {reason}")]
    WebSocket {
        /// The URL.
        url: String,
        /// The underlying error.
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
        timeout: std::time::Duration,
    },
    /// The header provider failed.
    #[error("the header provider failed: {0}")]
    Headers(String),
    /// The client is closed, or not connected right now.
    #[error("not connected: the message was not sent")]
    NotConnected,
}
