//! The REST API under `/api/v1`, the machines' SSE streams, `/metrics` and `/healthz`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use fanout::Hub;
use fanout::auth::Auth;
use fanout::ws::WsState;
use serde_json::{Value, json};
use storage::{Reader, Store};

/// The web page: one file, no build step.
const PAGE: &str = include_str!("page.html");

/// A configured machine.
#[derive(Debug, Clone)]
pub(crate) struct MachineInfo {
    pub(crate) name: String,
    pub(crate) url: String,
}

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) hub: Arc<Hub>,
    pub(crate) store: Arc<Store>,
    pub(crate) machines: Vec<MachineInfo>,
    pub(crate) auth: Auth,
    pub(crate) ws: Arc<WsState>,
}

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/machines", get(machines))
        .route("/api/v1/machines/{name}/events", get(machine_events))
        .route("/api/v1/shots", get(shots))
        .route("/api/v1/shots/{id}", get(shot))
        .route("/api/v1/shots/{id}/file", get(shot_file))
        .route("/api/v1/shots/{id}/analyses", get(analyses))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/", get(|| async { axum::response::Html(PAGE) }))
        .with_state(state)
}

/// An error answer: `{"error": code, "message": …}` with its status.
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
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

fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    ApiError {
        status,
        code,
        message: message.into(),
    }
    .into_response()
}

fn storage_error(e: storage::StorageError) -> ApiError {
    tracing::error!("storage: {e}");
    ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        code: "storage",
        message: e.to_string(),
    }
}

fn reader(state: &AppState) -> Result<Reader, ApiError> {
    state.store.reader().map_err(storage_error)
}

/// The machine's connection state, from the `connected` / `disconnected` events on its topic.
fn machine_state(hub: &Hub, machine: &MachineInfo) -> Value {
    let snapshot = hub.snapshot(&format!("machine:{}", machine.name));
    let latest = |name: &str| snapshot.iter().find(|e| &*e.name == name).cloned();
    let (connected, disconnected) = (latest("connected"), latest("disconnected"));
    let is_connected = match (&connected, &disconnected) {
        (Some(c), Some(d)) => c.seq > d.seq,
        (Some(_), None) => true,
        _ => false,
    };
    let last_error = disconnected
        .as_ref()
        .and_then(|d| serde_json::from_str::<Value>(d.data.get()).ok())
        .and_then(|v| v.get("reason").cloned());
    json!({
        "name": machine.name,
        "url": machine.url,
        "connected": is_connected,
        "last_connect": connected.map(|c| c.at.clone()),
        "last_error": last_error,
    })
}

async fn machines(State(state): State<AppState>) -> Json<Value> {
    Json(Value::Array(
        state
            .machines
            .iter()
            .map(|m| machine_state(&state.hub, m))
            .collect(),
    ))
}

#[derive(serde::Deserialize)]
struct EventsQuery {
    last_event_id: Option<String>,
}

async fn machine_events(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Response {
    if !state.machines.iter().any(|m| m.name == name) {
        return error(
            StatusCode::NOT_FOUND,
            "no_such_machine",
            format!("no machine named {name}"),
        );
    }
    let identity = match state.auth.authenticate(&headers).await {
        Ok(identity) => identity,
        Err(refused) => return error(refused.status, "unauthorized", refused.message),
    };
    let topic = format!("machine:{name}");
    if !identity.may_read(&topic) {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("you may not read {topic}"),
        );
    }
    let id = fanout::sse::last_event_id(&headers, q.last_event_id.as_deref()).map(str::to_owned);
    fanout::sse::stream(state.hub.clone(), &topic, id.as_deref())
}

#[derive(serde::Deserialize)]
struct ShotsQuery {
    limit: Option<usize>,
    before: Option<String>,
}

fn summary_json(s: &storage::ShotSummary) -> Value {
    json!({
        "id": s.key,
        "uuid": s.id,
        "machine": s.machine,
        "time": s.time,
        "name": s.name,
        "profile_id": s.profile_id,
        "profile_name": s.profile_name,
        "source": s.source,
        "status": s.status,
        "sample_count": s.sample_count,
    })
}

async fn shots(State(state): State<AppState>, Query(q): Query<ShotsQuery>) -> Response {
    let reader = match reader(&state) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    match reader.shots(q.limit.unwrap_or(50), q.before.as_deref()) {
        Ok(page) => Json(json!({
            "shots": page.shots.iter().map(summary_json).collect::<Vec<_>>(),
            "next": page.next,
        }))
        .into_response(),
        Err(e) => storage_error(e).into_response(),
    }
}

/// The shot named by `{id}`: the store's key, or the machine's UUID.
fn find(state: &AppState, id: &str) -> Result<(Reader, storage::ShotSummary), ApiError> {
    let reader = reader(state)?;
    match reader.find(id) {
        Ok(Some(shot)) => Ok((reader, shot)),
        Ok(None) => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: "no_such_shot",
            message: format!("no shot {id}"),
        }),
        Err(e) => Err(storage_error(e)),
    }
}

async fn shot(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let (reader, shot) = match find(&state, &id) {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let file = match reader.shot_file(shot.key) {
        Ok(Some(file)) => file,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                "no_such_shot",
                format!("no shot {id}"),
            );
        }
        Err(e) => return storage_error(e).into_response(),
    };
    let mut body = summary_json(&shot);
    body["data"] = serde_json::to_value(&file.data).unwrap_or(Value::Null);
    body["profile"] = serde_json::to_value(&file.profile).unwrap_or(Value::Null);
    Json(body).into_response()
}

async fn shot_file(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let (reader, shot) = match find(&state, &id) {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    match reader.shot_file(shot.key) {
        Ok(Some(file)) => {
            let name = format!("attachment; filename=\"shot-{}.json\"", shot.key);
            ([(header::CONTENT_DISPOSITION, name)], Json(file)).into_response()
        }
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "no_such_shot",
            format!("no shot {id}"),
        ),
        Err(e) => storage_error(e).into_response(),
    }
}

async fn analyses(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let (reader, shot) = match find(&state, &id) {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    match reader.analyses(shot.key) {
        Ok(list) => Json(json!({ "analyses": list })).into_response(),
        Err(e) => storage_error(e).into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let mut text = String::new();
    text.push_str("# HELP crema_ws_connections WebSocket connections open now.\n");
    text.push_str("# TYPE crema_ws_connections gauge\n");
    text.push_str(&format!(
        "crema_ws_connections {}\n",
        state.ws.connections()
    ));
    for (name, help, value) in [
        (
            "crema_events_published_total",
            "Machine events published to topics.",
            state.hub.published(),
        ),
        (
            "crema_ws_frames_sent_total",
            "Frames written to WebSocket clients.",
            state.ws.sent(),
        ),
        (
            "crema_ws_dropped_total",
            "Data frames dropped for slow WebSocket clients (reported to them as gaps).",
            state.ws.dropped(),
        ),
    ] {
        text.push_str(&format!(
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"
        ));
    }
    text.push_str(
        "# HELP crema_machine_connected Whether the gateway is connected to the machine.\n",
    );
    text.push_str("# TYPE crema_machine_connected gauge\n");
    for m in &state.machines {
        let connected = machine_state(&state.hub, m)["connected"]
            .as_bool()
            .unwrap_or(false);
        text.push_str(&format!(
            "crema_machine_connected{{machine=\"{}\"}} {}\n",
            m.name,
            u8::from(connected)
        ));
    }
    if let Ok(reader) = state.store.reader()
        && let Ok(count) = reader.shot_count()
    {
        text.push_str("# HELP crema_shots Shots stored.\n# TYPE crema_shots gauge\n");
        text.push_str(&format!("crema_shots {count}\n"));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
