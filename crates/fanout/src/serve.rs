//! The HTTP/1.1 server loop: hyper's connection with its own limits, which `axum::serve` does
//! not expose.
//!
//! - A client that has not sent a request's headers within [`ServeConfig::header_read_timeout`]
//!   (10 s) is closed: slow-header connections cannot pile up (hyper's `header_read_timeout`,
//!   also the idle limit of a kept-alive connection between requests).
//! - Request heads are bounded ([`ServeConfig::max_head_bytes`], 16 KiB; larger is answered
//!   `431` by hyper) and the number of open connections too ([`ServeConfig::max_connections`]):
//!   past it, new connections wait in the kernel's backlog until one closes.
//! - Every request carries `ConnectInfo<SocketAddr>` (the peer), for rules that look at it.
//! - A request for a `Host` the server does not answer ([`ServeConfig::hosts`]) gets `421`.
//! - `TCP_NODELAY` on every connection: the fan-out's frames leave at once.
//! - Upgrades (the WebSocket endpoint) keep working; a failed `accept` (out of file
//!   descriptors) is logged and retried after a pause instead of ending the server.
//! - On shutdown, connections finish the request they are serving and close; callers decide
//!   how long to wait for streams that never end.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt as _;

/// The server loop's limits.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// How long a client may take to send a request's headers (10 s), and how long a
    /// kept-alive connection may stay idle between requests.
    pub header_read_timeout: Duration,
    /// The largest request head, request line and headers together (16 KiB).
    pub max_head_bytes: usize,
    /// Connections open at once (20,000; the WebSocket and SSE caps are lower and say why).
    pub max_connections: usize,
    /// Which `Host` names are answered; any other request is answered `421` before it
    /// reaches a route ([`crate::hosts::Hosts`]).
    pub hosts: crate::hosts::Hosts,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_head_bytes: 16 * 1024,
            max_connections: 20_000,
            hosts: crate::hosts::Hosts::Any,
        }
    }
}

/// How many HTTP connections a server loop holds open now.
#[derive(Debug, Default)]
pub struct Connections(AtomicUsize);

impl Connections {
    /// Open connections now.
    pub fn open(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then asks every connection to finish
/// what it is serving and returns once all have closed (wrap the call in a timeout to cut long
/// streams). `open` counts the connections.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    config: ServeConfig,
    open: Arc<Connections>,
    shutdown: impl Future<Output = ()>,
) {
    let (closing, closing_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!("cannot set TCP_NODELAY on a connection from {peer}: {e}");
        }
        let (app, hosts) = (app.clone(), config.hosts.clone());
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            let misdirected = hosts.check(request.headers()).err();
            let app = app.clone();
            async move {
                if let Some(why) = misdirected {
                    tracing::debug!("refused a request from {peer}: {why}");
                    let status = axum::http::StatusCode::MISDIRECTED_REQUEST;
                    return Ok(crate::refuse(status, "misdirected_request", &why));
                }
                app.oneshot(request.map(axum::body::Body::new)).await
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(config.header_read_timeout)
            .max_buf_size(config.max_head_bytes.max(8192));
        let mut closing = closing_rx.clone();
        let open = open.clone();
        open.0.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            let connection = builder
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades();
            let mut connection = std::pin::pin!(connection);
            let mut asked = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(e) = result {
                            tracing::debug!("HTTP connection from {peer} ended: {e}");
                        }
                        break;
                    }
                    changed = closing.changed(), if !asked => {
                        asked = true;
                        if changed.is_ok() {
                            connection.as_mut().graceful_shutdown();
                        }
                    }
                }
            }
            open.0.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    drop(listener);
    let _ = closing.send(true);
    // Every connection task holds a receiver: all are gone when `closed` completes.
    drop(closing_rx);
    closing.closed().await;
}

/// An `accept` that failed: a refused or reset connection is the client's business; anything
/// else (out of file descriptors, most often) is logged, and accepting waits a moment.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::ConnectionRefused | ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(
        "cannot accept a connection: {e}; trying again in 100 ms (raise the open-files limit if this is EMFILE)"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// The peer of a request served by [`serve`] (`None` elsewhere, as in a test's `oneshot`).
pub fn peer<B>(request: &axum::http::Request<B>) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}
