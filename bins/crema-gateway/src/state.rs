//! What the HTTP handlers share, and how they answer errors.

use std::sync::Arc;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use fanout::Hub;
use fanout::admission::Kind;
use fanout::auth::{Auth, Identity};
use fanout::ws::WsState;
use recorder::record::MachineStats;
use recorder::runs::Runs;
use serde_json::json;
use storage::Store;

/// A configured machine.
#[derive(Debug, Clone)]
pub(crate) struct MachineInfo {
    pub(crate) name: String,
    pub(crate) url: String,
    /// What its recording loop is doing.
    pub(crate) stats: Arc<MachineStats>,
}

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) hub: Arc<Hub>,
    pub(crate) store: Arc<Store>,
    pub(crate) machines: Vec<MachineInfo>,
    pub(crate) auth: Auth,
    /// Pages allowed to send requests that change something, and the metrics rule.
    pub(crate) access: fanout::guard::Access,
    pub(crate) ws: Arc<WsState>,
    pub(crate) runs: Arc<Runs>,
    /// What `/healthz` says.
    pub(crate) health: recorder::metrics::HealthCheck,
    /// What `/metrics` says.
    pub(crate) metrics: Arc<recorder::metrics::Registry>,
}

/// An error answer: `{"error": code, "message": …}` with its status.
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({"error": self.code, "message": self.message})),
        )
            .into_response()
    }
}

/// An error answer, ready.
pub(crate) fn error(
    status: StatusCode,
    code: &'static str,
    message: impl Into<String>,
) -> Response {
    ApiError {
        status,
        code,
        message: message.into(),
    }
    .into_response()
}

/// A storage failure: logged, and answered 500 without the detail (where the database is).
pub(crate) fn storage_error(e: storage::StorageError) -> ApiError {
    tracing::error!("storage: {e}");
    ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "storage",
        message: "the database failed; the gateway's log says why".to_owned(),
    }
}

/// Runs `f` (reads of the store) on the blocking pool: the runtime's threads, which serve
/// every connection and stream, never wait on the disk.
pub(crate) async fn blocking(f: impl FnOnce() -> Response + Send + 'static) -> Response {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        tracing::error!("a request's handler failed: {e}");
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the request failed; the gateway's log says why",
        )
    })
}

/// `403`: what the caller may not do.
pub(crate) fn forbidden(what: &str) -> Response {
    refusal(what).into_response()
}

/// `403` as an error value.
pub(crate) fn refusal(what: &str) -> ApiError {
    ApiError {
        status: StatusCode::FORBIDDEN,
        code: "forbidden",
        message: format!("your credentials do not allow you to {what}"),
    }
}

/// The topic of a machine's events.
pub(crate) fn topic(machine: &str) -> String {
    format!("machine:{machine}")
}

/// A slot for an SSE stream, in the caps it shares with the WebSocket connections.
pub(crate) fn stream_ticket(
    state: &AppState,
    identity: &Identity,
) -> Result<fanout::admission::Ticket, ApiError> {
    state
        .ws
        .admission()
        .admit(Kind::Sse, identity.id.as_deref())
        .map_err(|full| ApiError {
            status: full.status,
            code: full.code,
            message: full.message,
        })
}
