//! HTTP fan-out: a topic hub with a snapshot on subscribe and per-connection queues, served over
//! WebSocket and Server-Sent Events. Knows nothing of espresso: topics carry opaque JSON events.
//!
//! Built so far: the [`hub`] (topics, sequence numbers, snapshot on subscribe with no gap and no
//! duplicate, a replay ring for SSE resume, each event serialized once) and the per-connection
//! [`outbound`] queue (a control lane never dropped, a data lane bounded in bytes that drops the
//! oldest and reports a gap), the WebSocket endpoint ([`ws`]), the SSE stream ([`sse`]) and
//! [`auth`] (none, static tokens, introspection; checked once per connection and at subscribe).
#![deny(missing_docs)]

pub mod admission;
pub mod auth;
pub mod frames;
pub mod guard;
pub mod hosts;
pub mod hub;
mod mailbox;
pub mod metrics;
pub mod outbound;
pub mod serve;
pub mod sse;
pub mod ws;

pub use hub::{Event, Hub, OutOfRing, Resumed, Subscription};
pub use outbound::{Frame, Outbound};

/// An HTTP refusal as every endpoint here answers it: `{"error": code, "message": …}`.
pub(crate) fn refuse(
    status: axum::http::StatusCode,
    code: &str,
    message: &str,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    (
        status,
        axum::Json(serde_json::json!({"error": code, "message": message})),
    )
        .into_response()
}
