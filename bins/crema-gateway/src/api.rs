//! The REST API under `/api/v1`, the machines' SSE streams, `/metrics` and `/healthz`.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use fanout::Hub;
use fanout::auth::Identity;
use fanout::ws::WsState;
use recorder::document;
use recorder::metrics;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use storage::Reader;
use storage::Store;

use crate::runs_api;
use crate::state::{
    ApiError, AppState, MachineInfo, blocking, error, forbidden, refusal, storage_error,
    stream_ticket, topic,
};

/// The web page: one file, no build step.
const PAGE: &str = include_str!("page.html");

/// uPlot, the page's chart library, as its npm package ships it (`assets/uplot/`, MIT).
const UPLOT_JS: &str = include_str!("../assets/uplot/uPlot.iife.min.js");
const UPLOT_CSS: &str = include_str!("../assets/uplot/uPlot.min.css");

/// An asset of the page: public, cached for a day.
fn asset(kind: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

/// The largest request body the API reads (`413` beyond it): every request it takes is small.
pub(crate) const MAX_BODY: usize = 64 * 1024;

/// How long a REST handler may take before it is answered `503` (streams are not limited).
pub(crate) const HANDLER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How many REST requests are handled at once; more wait for a turn.
pub(crate) const CONCURRENT_REQUESTS: usize = 64;

pub(crate) fn router(state: AppState) -> Router {
    // The REST handlers: bounded in body, time and concurrency, by tower's and tower-http's
    // layers. The streams (SSE) run as long as their client stays.
    let rest = Router::new()
        .route("/api/v1/machines", get(machines))
        .route("/api/v1/shots", get(shots))
        .route("/api/v1/shots/{id}", get(shot))
        .route("/api/v1/shots/{id}/file", get(shot_file))
        .route("/api/v1/shots/{id}/analyses", get(analyses))
        .route(
            "/api/v1/runs",
            axum::routing::post(runs_api::start).get(runs_api::list),
        )
        .route("/api/v1/runs/current", get(runs_api::current))
        .route("/api/v1/runs/{id}", get(runs_api::get))
        .route(
            "/api/v1/runs/{id}/cancel",
            axum::routing::post(runs_api::cancel),
        )
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/", get(|| async { axum::response::Html(PAGE) }))
        .route(
            "/assets/uplot.js",
            get(|| async { asset("text/javascript; charset=utf-8", UPLOT_JS) }),
        )
        .route(
            "/assets/uplot.css",
            get(|| async { asset("text/css; charset=utf-8", UPLOT_CSS) }),
        )
        .layer(
            tower::ServiceBuilder::new()
                .layer(tower_http::limit::RequestBodyLimitLayer::new(MAX_BODY))
                .layer(tower_http::timeout::TimeoutLayer::with_status_code(
                    StatusCode::SERVICE_UNAVAILABLE,
                    HANDLER_TIMEOUT,
                ))
                .layer(tower::limit::ConcurrencyLimitLayer::new(
                    CONCURRENT_REQUESTS,
                )),
        );
    let streams = Router::new()
        .route("/api/v1/machines/{name}/events", get(machine_events))
        .route("/api/v1/runs/{id}/events", get(runs_api::events));
    // In front of every route: who is asking, for the handlers, which filter or refuse by it.
    // Anyone may read the health check, and the page's HTML (which holds no data: everything
    // it shows, it asks for with the visitor's credentials).
    let policy = Arc::new(fanout::guard::Policy {
        auth: state.auth.clone(),
        origins: state.access.origins.clone(),
        metrics_loopback: state.access.metrics_loopback,
        public: vec![
            "/healthz".into(),
            "/".into(),
            "/assets/uplot.js".into(),
            "/assets/uplot.css".into(),
        ],
        metrics: Some("/metrics".into()),
    });
    rest.merge(streams)
        .layer(axum::middleware::from_fn_with_state(
            policy,
            fanout::guard::guard,
        ))
        .with_state(state)
}

fn reader(state: &AppState) -> Result<Box<dyn Reader>, ApiError> {
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

/// `GET /api/v1/machines`: the machines the caller may read.
async fn machines(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
) -> Json<Value> {
    Json(Value::Array(
        state
            .machines
            .iter()
            .filter(|m| identity.may_read(&topic(&m.name)))
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
    Extension(identity): Extension<Identity>,
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
    let topic = topic(&name);
    if !identity.may_read(&topic) {
        return forbidden(&format!("read {topic}"));
    }
    let ticket = match stream_ticket(&state, &identity) {
        Ok(ticket) => ticket,
        Err(full) => return full.into_response(),
    };
    let id = fanout::sse::last_event_id(&headers, q.last_event_id.as_deref()).map(str::to_owned);
    fanout::sse::stream(state.hub.clone(), &topic, id.as_deref(), Some(ticket))
}

#[derive(serde::Deserialize)]
struct ShotsQuery {
    limit: Option<usize>,
    before: Option<String>,
}

async fn shots(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Query(q): Query<ShotsQuery>,
) -> Response {
    blocking(move || shots_now(&state, &identity, q)).await
}

/// How many pages of other machines' shots one request reads past, looking for the caller's.
const FILTERED_PAGES: usize = 20;

/// The shots of the machines the caller may read, newest first: pages of the store read until
/// `limit` are found, the store ends, or [`FILTERED_PAGES`] pages were read (then `next` goes
/// on from there, and a page may hold fewer than `limit`).
fn shots_now(state: &AppState, identity: &Identity, q: ShotsQuery) -> Response {
    let reader = match reader(state) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    let limit = q.limit.unwrap_or(50).min(1000);
    let mut before = q.before;
    let mut shots = Vec::new();
    for _ in 0..FILTERED_PAGES {
        let page = match reader.shots(limit - shots.len(), before.as_deref()) {
            Ok(page) => page,
            Err(e) => return storage_error(e).into_response(),
        };
        shots.extend(
            page.shots
                .into_iter()
                .filter(|shot| identity.may_read(&topic(&shot.machine))),
        );
        before = page.next;
        if shots.len() >= limit || before.is_none() {
            break;
        }
    }
    Json(json!({
        "shots": shots.iter().map(document::summary).collect::<Vec<_>>(),
        "next": before,
    }))
    .into_response()
}

/// The shot named by `{id}`: the store's key, or the machine's UUID; `403` when it is a shot of
/// a machine the caller may not read.
fn find(
    state: &AppState,
    identity: &Identity,
    id: &str,
) -> Result<(Box<dyn Reader>, storage::ShotSummary), ApiError> {
    let reader = reader(state)?;
    match reader.find(id) {
        Ok(Some(shot)) if !identity.may_read(&topic(&shot.machine)) => {
            Err(refusal(&format!("read shots of machine {}", shot.machine)))
        }
        Ok(Some(shot)) => Ok((reader, shot)),
        Ok(None) => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            code: "no_such_shot",
            message: format!("no shot {id}"),
        }),
        Err(e) => Err(storage_error(e)),
    }
}

async fn shot(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path(id): Path<String>,
) -> Response {
    blocking(move || shot_now(&state, &identity, &id)).await
}

fn shot_now(state: &AppState, identity: &Identity, id: &str) -> Response {
    let (reader, shot) = match find(state, identity, id) {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let mut body = match document::document(&*reader, &shot) {
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

async fn shot_file(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path(id): Path<String>,
) -> Response {
    blocking(move || shot_file_now(&state, &identity, &id)).await
}

fn shot_file_now(state: &AppState, identity: &Identity, id: &str) -> Response {
    let (reader, shot) = match find(state, identity, id) {
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

async fn analyses(
    State(state): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path(id): Path<String>,
) -> Response {
    blocking(move || analyses_now(&state, &identity, &id)).await
}

fn analyses_now(state: &AppState, identity: &Identity, id: &str) -> Response {
    let (reader, shot) = match find(state, identity, id) {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    match reader.analyses(shot.key) {
        Ok(list) => Json(json!({ "analyses": list })).into_response(),
        Err(e) => storage_error(e).into_response(),
    }
}

/// What is wrong: the store, the broker, and each machine not connected anywhere this
/// gateway can see (one another gateway records is judged by its topic, through the broker;
/// without a broker it is that gateway's to report). For `/healthz` and `crema_healthy`.
pub(crate) fn health_check(
    hub: Arc<Hub>,
    store: Arc<Store>,
    machines: Vec<MachineInfo>,
    broker: Option<Arc<broker::Broker>>,
) -> metrics::HealthCheck {
    Arc::new(move || {
        let unseen = |m: &&MachineInfo| {
            !m.stats.standing_by.load(Relaxed)
                || (broker.is_some() && machine_state(&hub, m)["connected"] != true)
        };
        let mut health = metrics::health(
            machines
                .iter()
                .filter(unseen)
                .map(|machine| (machine.name.as_str(), &*machine.stats)),
            &store,
        );
        if let Some(broker) = broker.as_ref().filter(|b| !b.healthy()) {
            health.status = "unhealthy";
            health.problems.push(metrics::Problem {
                what: "broker",
                machine: None,
                message: format!(
                    "the broker {} is unreachable: live events pause (shots are still stored)",
                    broker.describe()
                ),
            });
        }
        health
    })
}

/// `/healthz`: `200 {"status":"ok"}`, or `503` with what is wrong (storage, a machine link).
async fn healthz(State(state): State<AppState>) -> Response {
    let health = (state.health)();
    let status = if health.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(health)).into_response()
}

/// `/metrics`: every family of the registry, as Prometheus text (or OpenMetrics, asked for).
async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .map(str::to_owned);
    blocking(move || {
        let (kind, text) = state.metrics.text(accept.as_deref());
        ([(header::CONTENT_TYPE, kind)], text).into_response()
    })
    .await
}

/// The gateway's instruments: the fan-out's and the broker's families, then the application
/// library's.
pub(crate) fn registry(
    hub: Arc<Hub>,
    ws: Arc<WsState>,
    broker: Option<Arc<broker::Broker>>,
    application: metrics::Application,
) -> metrics::Registry {
    let mut registry = metrics::Registry::new();
    registry.register(fanout::metrics::Fanout::new(hub, ws));
    if let Some(broker) = broker {
        registry.register(broker::Metrics(broker));
    }
    registry.register(application);
    registry
}
