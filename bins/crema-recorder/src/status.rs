//! `--listen`: the recorder's `/metrics` (Prometheus text) and `/healthz` (`200 {"status":"ok"}`,
//! or `503` naming what is wrong), for a box watched by Prometheus or a health check. Off by
//! default; a bare port listens on loopback only. Served by the gateway's guarded loop
//! (`fanout::serve`): a client that sends no request within 10 s is closed, and at most
//! [`MAX_CONNECTIONS`] are open at once, so the port cannot take the file descriptors the
//! machine's connection and the database need.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use recorder::metrics;
use recorder::outbox::FinishedShots;
use recorder::record::MachineStats;
use recorder::runs::Runs;
use storage::Store;
use tokio_util::sync::CancellationToken;

/// What the endpoints read.
pub(crate) struct Status {
    pub(crate) health: metrics::HealthCheck,
    pub(crate) metrics: Arc<metrics::Registry>,
}

impl Status {
    /// The health and instruments of a recorder of one machine (`name`, its loop's `stats`)
    /// into `store`.
    pub(crate) fn new(
        store: Arc<Store>,
        name: String,
        stats: Arc<MachineStats>,
        finished: Arc<FinishedShots>,
        runs: Arc<Runs>,
    ) -> Self {
        let health: metrics::HealthCheck = {
            let (store, name, stats) = (store.clone(), name.clone(), stats.clone());
            Arc::new(move || metrics::health(std::iter::once((name.as_str(), &*stats)), &store))
        };
        let mut registry = metrics::Registry::new();
        registry.register(metrics::Application::new(
            vec![(name, stats)],
            store,
            finished,
            runs,
            health.clone(),
        ));
        Self {
            health,
            metrics: Arc::new(registry),
        }
    }
}

/// `--listen`'s value: `PORT` (on 127.0.0.1) or `ADDRESS:PORT` (as given).
pub(crate) fn parse_listen(value: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = value.parse::<u16>() {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    value
        .parse()
        .map_err(|_| format!("{value:?} is not PORT or ADDRESS:PORT (127.0.0.1:9464)"))
}

/// Connections `--listen` holds open at once: a scraper and a health check need a few; more
/// wait in the kernel's backlog.
pub(crate) const MAX_CONNECTIONS: usize = 32;

/// Serves `/metrics` and `/healthz` on `listener` until `stop`.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    status: Arc<Status>,
    stop: CancellationToken,
) {
    let app = axum::Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(healthz))
        .with_state(status);
    let config = fanout::serve::ServeConfig {
        max_connections: MAX_CONNECTIONS,
        ..Default::default()
    };
    let open = Arc::new(fanout::serve::Connections::default());
    fanout::serve::serve(listener, app, config, open, stop.cancelled_owned()).await;
}

async fn healthz(State(status): State<Arc<Status>>) -> Response {
    let health = (status.health)();
    let code = if health.is_ok() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(health)).into_response()
}

async fn metrics_text(State(status): State<Arc<Status>>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .map(str::to_owned);
    // The store's gauges read the database: off the async threads.
    let text = tokio::task::spawn_blocking(move || status.metrics.text(accept.as_deref())).await;
    match text {
        Ok((kind, text)) => ([(header::CONTENT_TYPE, kind)], text).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("metrics panicked: {e}"),
        )
            .into_response(),
    }
}
