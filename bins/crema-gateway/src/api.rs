//! The REST API under `/api/v1`, the machines' SSE streams, `/metrics` and `/healthz`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use crema_recorder::record;
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
    /// What its recording loop is doing.
    pub(crate) status: Arc<record::Status>,
}

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) hub: Arc<Hub>,
    pub(crate) store: Arc<Store>,
    pub(crate) machines: Vec<MachineInfo>,
    pub(crate) auth: Auth,
    pub(crate) ws: Arc<WsState>,
    pub(crate) runs: Arc<crema_recorder::runs::Runs>,
    pub(crate) after: Arc<crema_recorder::after::AfterShots>,
}

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/machines", get(machines))
        .route("/api/v1/machines/{name}/events", get(machine_events))
        .route("/api/v1/shots", get(shots))
        .route("/api/v1/shots/{id}", get(shot))
        .route("/api/v1/shots/{id}/file", get(shot_file))
        .route("/api/v1/shots/{id}/analyses", get(analyses))
        .route("/api/v1/runs", axum::routing::post(crate::runs_api::start))
        .route("/api/v1/runs/current", get(crate::runs_api::current))
        .route("/api/v1/runs/{id}", get(crate::runs_api::get))
        .route(
            "/api/v1/runs/{id}/cancel",
            axum::routing::post(crate::runs_api::cancel),
        )
        .route("/api/v1/runs/{id}/events", get(crate::runs_api::events))
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

use crema_recorder::after::summary_json;

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
    let mut body = match crema_recorder::after::shot_document(&reader, &shot) {
        Ok(Some(doc)) => doc,
        Ok(None) => {
            return error(
                StatusCode::NOT_FOUND,
                "no_such_shot",
                format!("no shot {id}"),
            );
        }
        Err(e) => return storage_error(e).into_response(),
    };
    body["qa"] = match reader.qa_results(shot.key) {
        Ok(results) => serde_json::to_value(results).unwrap_or(Value::Null),
        Err(e) => return storage_error(e).into_response(),
    };
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

/// Prometheus text: one family at a time.
struct Metrics(String);

impl Metrics {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        use std::fmt::Write as _;
        let _ = write!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        use std::fmt::Write as _;
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
        }
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, "", value);
    }
}

/// A per-machine family: name, type, help, and how to read it off the loop's status.
type MachineMetric = (
    &'static str,
    &'static str,
    &'static str,
    fn(&record::Status) -> u64,
);

/// A label value, escaped as the text format wants.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

async fn metrics(State(state): State<AppState>) -> Response {
    use std::sync::atomic::Ordering::Relaxed;
    let mut m = Metrics(String::new());
    let (hub, ws) = (&state.hub, &state.ws);
    m.one(
        "crema_ws_connections",
        "gauge",
        "WebSocket connections open now.",
        ws.connections(),
    );
    m.one(
        "crema_sse_streams",
        "gauge",
        "SSE streams open now.",
        hub.sse_streams(),
    );
    m.family(
        "crema_subscribers",
        "gauge",
        "Live subscribers per topic (WebSocket subscriptions, SSE streams, in-process).",
    );
    for topic in hub.topics() {
        m.sample(
            "crema_subscribers",
            &format!("topic=\"{}\"", label(&topic)),
            hub.subscribers(&topic),
        );
    }
    m.one(
        "crema_events_published_total",
        "counter",
        "Machine events published to topics (events in).",
        hub.published(),
    );
    m.one(
        "crema_ws_frames_sent_total",
        "counter",
        "Frames written to WebSocket clients (events out, and control frames).",
        ws.sent(),
    );
    m.one(
        "crema_sse_events_sent_total",
        "counter",
        "Events written to SSE streams (events out).",
        hub.sse_sent(),
    );
    m.one(
        "crema_ws_dropped_total",
        "counter",
        "Data frames dropped for slow WebSocket clients (reported to them as gaps).",
        ws.dropped(),
    );
    m.one(
        "crema_ws_queued_bytes",
        "gauge",
        "Data bytes waiting in WebSocket connections' queues.",
        ws.queued_bytes(),
    );

    let per_machine: [MachineMetric; 11] = [
        (
            "crema_machine_connected",
            "gauge",
            "Whether the gateway is connected to the machine.",
            |s| u64::from(s.connected.load(Relaxed)),
        ),
        (
            "crema_machine_events_total",
            "counter",
            "Events received from the machine.",
            |s| s.events.load(Relaxed),
        ),
        (
            "crema_recorder_recording",
            "gauge",
            "Whether a shot is being recorded.",
            |s| u64::from(s.recording.load(Relaxed)),
        ),
        (
            "crema_recorder_shot_samples",
            "gauge",
            "Samples journaled for the shot in progress (or the last one).",
            |s| s.shot_samples.load(Relaxed),
        ),
        (
            "crema_recorder_shots_recorded_total",
            "counter",
            "Live shots recorded since the start.",
            |s| s.shots_recorded.load(Relaxed),
        ),
        (
            "crema_recorder_shots_discarded_total",
            "counter",
            "Live shots ended and not kept (flushes, too short, stalled).",
            |s| s.shots_discarded.load(Relaxed),
        ),
        (
            "crema_sync_running",
            "gauge",
            "Whether a history sync is running.",
            |s| u64::from(s.syncing.load(Relaxed)),
        ),
        (
            "crema_sync_done",
            "gauge",
            "Shots the running (or last) history sync has fetched.",
            |s| s.sync_done.load(Relaxed),
        ),
        (
            "crema_sync_total",
            "gauge",
            "Shots the running (or last) history sync has to fetch.",
            |s| s.sync_total.load(Relaxed),
        ),
        (
            "crema_sync_failures_total",
            "counter",
            "History syncs that failed.",
            |s| s.syncs_failed.load(Relaxed),
        ),
        (
            "crema_sync_last_success_timestamp_seconds",
            "gauge",
            "When the last history sync succeeded (0: never).",
            |s| s.last_sync_unix.load(Relaxed),
        ),
    ];
    for (name, kind, help, read) in per_machine {
        m.family(name, kind, help);
        for machine in &state.machines {
            m.sample(
                name,
                &format!("machine=\"{}\"", label(&machine.name)),
                read(&machine.status),
            );
        }
    }

    let commits = state.store.commit_stats();
    m.family("crema_storage_commit_seconds", "histogram", "Time of each database commit (a batch of writes), BEGIN to the end of COMMIT, fsync included.");
    for (le, count) in &commits.buckets {
        m.sample(
            "crema_storage_commit_seconds_bucket",
            &format!("le=\"{le}\""),
            count,
        );
    }
    m.sample(
        "crema_storage_commit_seconds_bucket",
        "le=\"+Inf\"",
        commits.commits,
    );
    m.sample("crema_storage_commit_seconds_sum", "", commits.seconds_sum);
    m.sample("crema_storage_commit_seconds_count", "", commits.commits);
    m.one(
        "crema_storage_commit_failures_total",
        "counter",
        "Database commits that failed (a full disk, say).",
        commits.failed,
    );
    after_shot_metrics(&mut m, &state.after);
    run_metrics(&mut m, &state);
    if let Ok(reader) = state.store.reader()
        && let Ok(count) = reader.shot_count()
    {
        m.one("crema_shots", "gauge", "Shots stored.", count);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], m.0).into_response()
}

/// Webhooks and external analyzers.
fn after_shot_metrics(m: &mut Metrics, after: &crema_recorder::after::AfterShots) {
    use std::sync::atomic::Ordering::Relaxed;
    m.family(
        "crema_webhook_deliveries_total",
        "counter",
        "Finished shots per webhook: delivered (2xx), failed (refused, or out of tries), dropped (queue full).",
    );
    for hook in after.hooks() {
        let name = label(hook.name());
        for (result, count) in [
            ("delivered", &hook.stats.delivered),
            ("failed", &hook.stats.failed),
            ("dropped", &hook.stats.dropped),
        ] {
            m.sample(
                "crema_webhook_deliveries_total",
                &format!("webhook=\"{name}\",result=\"{result}\""),
                count.load(Relaxed),
            );
        }
    }
    m.family(
        "crema_webhook_retries_total",
        "counter",
        "Webhook tries after a failed one.",
    );
    for hook in after.hooks() {
        m.sample(
            "crema_webhook_retries_total",
            &format!("webhook=\"{}\"", label(hook.name())),
            hook.stats.retries.load(Relaxed),
        );
    }
    m.family(
        "crema_analyzer_answers_total",
        "counter",
        "External analyzer requests: ok (JSON stored) or failed.",
    );
    for analyzer in after.analyzers() {
        let (ok, failed) = analyzer.counts();
        for (result, count) in [("ok", ok), ("failed", failed)] {
            m.sample(
                "crema_analyzer_answers_total",
                &format!(
                    "analyzer=\"{}\",result=\"{result}\"",
                    label(analyzer.name())
                ),
                count,
            );
        }
    }
}

/// The active run, and the runs stored.
fn run_metrics(m: &mut Metrics, state: &AppState) {
    let current = state.runs.current().ok().flatten();
    m.one(
        "crema_run_active",
        "gauge",
        "Whether a run (sync, qa, analyze) is queued or running.",
        u64::from(current.is_some()),
    );
    let (done, total) = current.as_ref().map_or((0, 0), |r| (r.done, r.total));
    m.one(
        "crema_run_done",
        "gauge",
        "Items the active run has done (0 without one).",
        done,
    );
    m.one(
        "crema_run_total",
        "gauge",
        "Items the active run has to do (0 without one).",
        total,
    );
    if let Ok(reader) = state.store.reader()
        && let Ok(counts) = reader.run_counts()
    {
        m.family("crema_runs", "gauge", "Runs stored, by kind and status.");
        for (kind, status, count) in counts {
            m.sample(
                "crema_runs",
                &format!("kind=\"{}\",status=\"{}\"", label(&kind), label(&status)),
                count,
            );
        }
    }
}
