//! `/api/v1/runs`: start, read and cancel runs, and follow one over SSE.

use std::convert::Infallible;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::Event as SseEvent;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use fanout::auth::Identity;
use futures_util::StreamExt as _;
use recorder::runs::{RunError, RunRequest, Started};
use serde_json::json;
use storage::{Run, RunKind};

use crate::state::{
    AppState, blocking, error, forbidden, refusal, storage_error, stream_ticket, topic,
};

/// Whether `identity` may see a run over `machine` (`None`: every machine, as a QA or analysis
/// run and a sync of all machines are): it must read every machine the run covers.
fn may_see(state: &AppState, identity: &Identity, machine: Option<&str>) -> bool {
    match machine {
        Some(machine) => identity.may_read(&topic(machine)),
        None => state
            .machines
            .iter()
            .all(|m| identity.may_read(&topic(&m.name))),
    }
}

/// The run `id` if the caller may see it (`403` if not).
fn visible(state: &AppState, identity: &Identity, id: i64) -> Result<Run, Box<Response>> {
    let run = state.runs.get(id).map_err(|e| Box::new(run_error(e)))?;
    if may_see(state, identity, run.machine.as_deref()) {
        Ok(run)
    } else {
        Err(Box::new(refusal(&format!("read run {id}")).into_response()))
    }
}

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
    Extension(identity): Extension<Identity>,
    body: Result<Json<StartBody>, JsonRejection>,
) -> Response {
    if !identity.may("runs") {
        return forbidden("start runs (the action `runs`)");
    }
    let body = match body {
        Ok(Json(body)) => body,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!(
                    "expected {{\"kind\": \"qa\"|\"analyze\"|\"sync\"|\"upload\", \"shots\"?: [ids], \"machine\"?: name}}: {}",
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
    if !may_see(&state, &identity, body.machine.as_deref()) {
        return forbidden("start a run over machines you may not read");
    }
    let request = RunRequest {
        kind: body.kind,
        shots,
        machine: body.machine,
        started_by: "api".into(),
    };
    match state.runs.start(request).await {
        Ok(Started::Started(run)) => (StatusCode::ACCEPTED, Json(run)).into_response(),
        Ok(Started::Busy(active)) if !may_see(&state, &identity, active.machine.as_deref()) => {
            error(
                StatusCode::CONFLICT,
                "run_active",
                "another run is active; one run at a time",
            )
        }
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
/// Only the runs the caller may see.
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Query(q): Query<ListQuery>,
) -> Response {
    blocking(
        move || match state.runs.list(q.limit.unwrap_or(20).min(200)) {
            Ok(runs) => {
                let runs: Vec<Run> = runs
                    .into_iter()
                    .filter(|run| may_see(&state, &identity, run.machine.as_deref()))
                    .collect();
                Json(json!({ "runs": runs })).into_response()
            }
            Err(e) => run_error(e),
        },
    )
    .await
}

/// `GET /api/v1/runs/current`.
pub(crate) async fn current(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
) -> Response {
    blocking(move || match state.runs.current() {
        Ok(Some(run)) if may_see(&state, &identity, run.machine.as_deref()) => {
            Json(run).into_response()
        }
        Ok(Some(_)) | Ok(None) => error(
            StatusCode::NOT_FOUND,
            "no_active_run",
            "no run is queued or running",
        ),
        Err(e) => run_error(e),
    })
    .await
}

/// `GET /api/v1/runs/{id}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path(id): Path<i64>,
) -> Response {
    blocking(move || match visible(&state, &identity, id) {
        Ok(run) => Json(run).into_response(),
        Err(refused) => *refused,
    })
    .await
}

/// `POST /api/v1/runs/{id}/cancel`: the snapshot; the run ends `cancelled` soon after.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path(id): Path<i64>,
) -> Response {
    if !identity.may("runs") {
        return forbidden("cancel runs (the action `runs`)");
    }
    blocking(move || {
        if let Err(refused) = visible(&state, &identity, id) {
            return *refused;
        }
        match state.runs.cancel(id) {
            Ok(run) => (StatusCode::ACCEPTED, Json(run)).into_response(),
            Err(e) => run_error(e),
        }
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
    Extension(identity): Extension<Identity>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    Query(q): Query<EventsQuery>,
) -> Response {
    let (reading, who) = (state.clone(), identity.clone());
    match tokio::task::spawn_blocking(move || visible(&reading, &who, id)).await {
        Ok(Ok(_)) => {}
        Ok(Err(refused)) => return *refused,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()),
    }
    let ticket = match stream_ticket(&state, &identity) {
        Ok(ticket) => ticket,
        Err(full) => return full.into_response(),
    };
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
        let _held = &ticket;
        Ok::<_, Infallible>(
            SseEvent::default()
                .event(e.kind.as_str())
                .id(format!("{id}-{}", e.seq))
                .data(serde_json::to_string(&e.run).unwrap_or_default()),
        )
    }))
}
