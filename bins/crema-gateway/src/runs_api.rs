//! `/api/v1/runs`: start, read and cancel runs, and follow one over SSE.

use std::convert::Infallible;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::Event as SseEvent;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use recorder::runs::{RunError, RunRequest, Started};
use serde_json::json;
use storage::RunKind;

use crate::state::{AppState, blocking, error, storage_error};

fn run_error(e: RunError) -> Response {
    match e {
        RunError::BadRequest(m) => error(StatusCode::BAD_REQUEST, "bad_request", m),
        RunError::NotFound(id) => {
            error(StatusCode::NOT_FOUND, "no_such_run", format!("no run {id}"))
        }
        RunError::Storage(e) => storage_error(e).into_response(),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartBody {
    kind: RunKind,
    shots: Option<Vec<serde_json::Value>>,
    machine: Option<String>,
}

/// `POST /api/v1/runs`: `202` with the new run, `409` with the active one.
pub(crate) async fn start(
    State(state): State<AppState>,
    body: Result<Json<StartBody>, JsonRejection>,
) -> Response {
    let body = match body {
        Ok(Json(body)) => body,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!(
                    "expected {{\"kind\": \"qa\"|\"analyze\"|\"sync\", \"shots\"?: [ids], \"machine\"?: name}}: {}",
                    e.body_text()
                ),
            );
        }
    };
    // Shot ids may be the store's keys (numbers) or the machine's UUIDs (strings).
    let shots = body.shots.map(|ids| {
        ids.into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            })
            .collect()
    });
    let request = RunRequest {
        kind: body.kind,
        shots,
        machine: body.machine,
        started_by: "api".into(),
    };
    match state.runs.start(request).await {
        Ok(Started::Started(run)) => (StatusCode::ACCEPTED, Json(run)).into_response(),
        Ok(Started::Busy(active)) => (
            StatusCode::CONFLICT,
            Json(json!({
                "error": "run_active",
                "message": format!("run {} ({}) is {}; one run at a time", active.id, active.kind.as_str(), active.status.as_str()),
                "run": active,
            })),
        )
            .into_response(),
        Err(e) => run_error(e),
    }
}

#[derive(serde::Deserialize)]
pub(crate) struct ListQuery {
    limit: Option<usize>,
}

/// `GET /api/v1/runs?limit=20`: `{"runs":[…]}`, newest first (at most 200).
pub(crate) async fn list(State(state): State<AppState>, Query(q): Query<ListQuery>) -> Response {
    blocking(
        move || match state.runs.list(q.limit.unwrap_or(20).min(200)) {
            Ok(runs) => Json(json!({ "runs": runs })).into_response(),
            Err(e) => run_error(e),
        },
    )
    .await
}

/// `GET /api/v1/runs/current`.
pub(crate) async fn current(State(state): State<AppState>) -> Response {
    blocking(move || match state.runs.current() {
        Ok(Some(run)) => Json(run).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "no_active_run",
            "no run is queued or running",
        ),
        Err(e) => run_error(e),
    })
    .await
}

/// `GET /api/v1/runs/{id}`.
pub(crate) async fn get(State(state): State<AppState>, Path(id): Path<i64>) -> Response {
    blocking(move || match state.runs.get(id) {
        Ok(run) => Json(run).into_response(),
        Err(e) => run_error(e),
    })
    .await
}

/// `POST /api/v1/runs/{id}/cancel`: the snapshot; the run ends `cancelled` soon after.
pub(crate) async fn cancel(State(state): State<AppState>, Path(id): Path<i64>) -> Response {
    blocking(move || match state.runs.cancel(id) {
        Ok(run) => (StatusCode::ACCEPTED, Json(run)).into_response(),
        Err(e) => run_error(e),
    })
    .await
}

#[derive(serde::Deserialize)]
pub(crate) struct EventsQuery {
    last_event_id: Option<String>,
}

/// `GET /api/v1/runs/{id}/events`: `snapshot`, then `progress` per change (at most ten a
/// second), then `finished`; every `data` is the whole run. Ids are `<run>-<n>`; a client that
/// comes back with `Last-Event-ID` gets the current snapshot and numbering goes on after its id.
pub(crate) async fn events(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Response {
    let resume = fanout::sse::last_event_id(&headers, q.last_event_id.as_deref())
        .and_then(|last| last.trim().split_once('-'))
        .filter(|(run, _)| run.parse() == Ok(id))
        .and_then(|(_, n)| n.parse::<u64>().ok())
        .map_or(0, |n| n + 1);
    let stream = match state.runs.events(id, resume) {
        Ok(stream) => stream,
        Err(e) => return run_error(e),
    };
    fanout::sse::response(stream.map(move |e| {
        Ok::<_, Infallible>(
            SseEvent::default()
                .event(e.kind.as_str())
                .id(format!("{id}-{}", e.seq))
                .data(serde_json::to_string(&e.run).unwrap_or_default()),
        )
    }))
}
