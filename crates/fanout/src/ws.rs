//! `GET /ws`: the browser WebSocket protocol (`docs/protocol.md`).
//!
//! Client → server: `{"op":"subscribe","topic":T}`, `{"op":"unsubscribe","topic":T}`; anything
//! else gets an `error` frame and the connection stays. Server → client: `subscribed` (with the
//! snapshot), `event`, `gap`, `unsubscribed`, `error`. Each connection has two tasks: one reads the
//! client and forwards its subscriptions into the [`Outbound`] queue, one writes the queue to the
//! socket (all that waits, then one flush). A client that does not read only fills its own queue:
//! its oldest data frames are dropped and reported as a `gap`, and nobody else waits for it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use tokio::sync::Notify;
use tokio_stream::StreamMap;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::auth::{Auth, Identity};
use crate::outbound::{Frame, Payload as _};
use crate::{Hub, Outbound};

/// Per-connection and per-gateway limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest message a client may send (4 KiB: it only subscribes).
    pub max_inbound: usize,
    /// Subscriptions per connection (32).
    pub max_subscriptions: usize,
    /// Connections per gateway (10,000).
    pub max_connections: usize,
    /// Data bytes a connection may have waiting before its oldest are dropped (256 KiB).
    pub data_bytes: usize,
    /// A ping every (30 s)…
    pub ping_every: Duration,
    /// …and a connection silent this long is dropped (60 s).
    pub silence: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_inbound: 4096,
            max_subscriptions: 32,
            max_connections: 10_000,
            data_bytes: 256 * 1024,
            ping_every: Duration::from_secs(30),
            silence: Duration::from_secs(60),
        }
    }
}

/// What the WebSocket endpoint serves.
#[derive(Debug)]
pub struct WsState {
    hub: Arc<Hub>,
    limits: Limits,
    auth: Auth,
    origins: Option<Vec<String>>,
    connections: AtomicUsize,
    /// Frames written to clients, and data frames dropped for slow ones.
    sent: std::sync::atomic::AtomicU64,
    dropped: std::sync::atomic::AtomicU64,
    /// Data bytes waiting in every connection's queue.
    queued: AtomicUsize,
}

impl WsState {
    /// The endpoint's state over `hub`: everyone may connect and read everything.
    pub fn new(hub: Arc<Hub>, limits: Limits) -> Arc<Self> {
        Self::with_auth(hub, limits, Auth::None, None)
    }

    /// The endpoint's state with `auth`, and WebSocket upgrades accepted only from `origins`
    /// (when given; requests without an `Origin` header, from non-browser clients, pass).
    pub fn with_auth(
        hub: Arc<Hub>,
        limits: Limits,
        auth: Auth,
        origins: Option<Vec<String>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            hub,
            limits,
            auth,
            origins,
            connections: AtomicUsize::new(0),
            sent: std::sync::atomic::AtomicU64::new(0),
            dropped: std::sync::atomic::AtomicU64::new(0),
            queued: AtomicUsize::new(0),
        })
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Frames written to clients so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Data bytes waiting in the connections' queues now.
    pub fn queued_bytes(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Data frames dropped for slow clients so far (each reported to its client as a `gap`).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The `/ws` handler.
pub async fn handler(
    State(state): State<Arc<WsState>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if let (Some(allowed), Some(origin)) = (
        &state.origins,
        headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()),
    ) && !allowed.iter().any(|a| a == origin)
    {
        return refuse(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            &format!("pages from {origin} may not open this WebSocket"),
        );
    }
    let identity = match state.auth.authenticate(&headers).await {
        Ok(identity) => identity,
        Err(refused) => return refuse(refused.status, "unauthorized", &refused.message),
    };
    if state.connections.fetch_add(1, Ordering::AcqRel) >= state.limits.max_connections {
        state.connections.fetch_sub(1, Ordering::AcqRel);
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_connections",
            "the gateway serves as many connections as it is configured for; try again later",
        );
    }
    let max = state.limits.max_inbound;
    ws.read_buffer_size(4096)
        .write_buffer_size(4096)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| async move {
            connection(state.clone(), identity, socket).await;
            state.connections.fetch_sub(1, Ordering::AcqRel);
        })
}

/// The queue both tasks of a connection share.
struct Shared {
    out: Mutex<Outbound<Utf8Bytes>>,
    ready: Notify,
    ping: std::sync::atomic::AtomicBool,
}

fn control(value: serde_json::Value) -> Utf8Bytes {
    Utf8Bytes::from(value.to_string())
}

fn gap(topic: &str, dropped: u64) -> Utf8Bytes {
    control(serde_json::json!({"type": "gap", "topic": topic, "dropped": dropped}))
}

fn error(code: &str, message: &str) -> Utf8Bytes {
    control(serde_json::json!({"type": "error", "code": code, "message": message}))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    op: Op,
    topic: String,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "lowercase")]
enum Op {
    Subscribe,
    Unsubscribe,
}

/// `{"error": code, "message": …}` with `status`.
fn refuse(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"error": code, "message": message})),
    )
        .into_response()
}

async fn connection(state: Arc<WsState>, identity: Identity, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();
    let shared = Arc::new(Shared {
        out: Mutex::new(Outbound::new(state.limits.data_bytes)),
        ready: Notify::new(),
        ping: std::sync::atomic::AtomicBool::new(false),
    });
    // The writer: everything waiting, then one flush.
    let writer = {
        let shared = shared.clone();
        let state = state.clone();
        tokio::spawn(async move {
            loop {
                shared.ready.notified().await;
                if shared.ping.swap(false, Ordering::AcqRel)
                    && sink.feed(Message::Ping(Bytes::new())).await.is_err()
                {
                    return;
                }
                loop {
                    let frame = shared.out.lock().ok().and_then(|mut out| out.pop(gap));
                    let Some(frame) = frame else { break };
                    if let Frame::Data(data) = &frame {
                        state.queued.fetch_sub(data.byte_len(), Ordering::Relaxed);
                    }
                    if sink
                        .feed(Message::Text(frame.into_payload()))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    state.sent.fetch_add(1, Ordering::Relaxed);
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
        })
    };
    let push = |f: &dyn Fn(&mut Outbound<Utf8Bytes>)| {
        if let Ok(mut out) = shared.out.lock() {
            let (before, bytes) = (out.dropped_total(), out.data_bytes());
            f(&mut out);
            let lost = out.dropped_total() - before;
            if lost > 0 {
                state.dropped.fetch_add(lost, Ordering::Relaxed);
            }
            // Grown by what came, shrunk by what was dropped for room.
            let now = out.data_bytes();
            if now >= bytes {
                state.queued.fetch_add(now - bytes, Ordering::Relaxed);
            } else {
                state.queued.fetch_sub(bytes - now, Ordering::Relaxed);
            }
        }
        shared.ready.notify_one();
    };
    let mut subscriptions: StreamMap<Arc<str>, BroadcastStream<Arc<crate::Event>>> =
        StreamMap::new();
    let mut ping = tokio::time::interval(state.limits.ping_every);
    ping.tick().await;
    let mut heard = tokio::time::Instant::now();
    loop {
        let silent_until = heard + state.limits.silence;
        tokio::select! {
            message = stream.next() => {
                let Some(Ok(message)) = message else { break };
                heard = tokio::time::Instant::now();
                let text = match message {
                    Message::Text(text) => text,
                    Message::Close(_) => break,
                    Message::Binary(_) => {
                        push(&|out| out.push_control(error("bad_request", "send JSON text frames")));
                        continue;
                    }
                    _ => continue,
                };
                let request: Request = match serde_json::from_str(text.as_str()) {
                    Ok(r) => r,
                    Err(e) => {
                        let message = format!("expected {{\"op\":\"subscribe\"|\"unsubscribe\",\"topic\":…}}: {e}");
                        push(&|out| out.push_control(error("bad_request", &message)));
                        continue;
                    }
                };
                match request.op {
                    Op::Subscribe => {
                        if !identity.may_read(&request.topic) {
                            push(&|out| out.push_control(error("forbidden", &format!("you may not read {}", request.topic))));
                        } else if subscriptions.contains_key(request.topic.as_str()) {
                            push(&|out| out.push_control(error("already_subscribed", &format!("already subscribed to {}", request.topic))));
                        } else if subscriptions.len() >= state.limits.max_subscriptions {
                            let message = format!("at most {} subscriptions per connection", state.limits.max_subscriptions);
                            push(&|out| out.push_control(error("too_many_subscriptions", &message)));
                        } else {
                            let sub = state.hub.subscribe(&request.topic);
                            let frame = subscribed(&sub);
                            push(&|out| out.push_control(frame.clone()));
                            subscriptions.insert(sub.topic.clone(), BroadcastStream::new(sub.live));
                        }
                    }
                    Op::Unsubscribe => {
                        let frame = match subscriptions.remove(request.topic.as_str()) {
                            Some(_) => control(serde_json::json!({"type": "unsubscribed", "topic": request.topic})),
                            None => error("not_subscribed", &format!("not subscribed to {}", request.topic)),
                        };
                        push(&|out| out.push_control(frame.clone()));
                    }
                }
            }
            Some((topic, item)) = subscriptions.next() => {
                match item {
                    Ok(event) => push(&|out| out.push_data(&topic, event.frame.clone())),
                    Err(BroadcastStreamRecvError::Lagged(n)) => push(&|out| out.note_dropped(&topic, n)),
                }
            }
            _ = ping.tick() => {
                shared.ping.store(true, Ordering::Release);
                shared.ready.notify_one();
            }
            () = tokio::time::sleep_until(silent_until) => {
                tracing::info!("dropping a WebSocket silent for {:?}", state.limits.silence);
                break;
            }
        }
    }
    writer.abort();
    let _ = writer.await;
    if let Ok(out) = shared.out.lock() {
        state.queued.fetch_sub(out.data_bytes(), Ordering::Relaxed);
    }
}

/// `{"type":"subscribed","topic":T,"snapshot":[event frames…]}`.
fn subscribed(sub: &crate::Subscription) -> Utf8Bytes {
    let mut text = String::from("{\"type\":\"subscribed\",\"topic\":");
    text.push_str(&serde_json::to_string(&*sub.topic).unwrap_or_default());
    text.push_str(",\"snapshot\":[");
    for (i, event) in sub.snapshot.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(event.frame.as_str());
    }
    text.push_str("]}");
    Utf8Bytes::from(text)
}

/// The router serving `/ws`.
pub fn router(state: Arc<WsState>) -> axum::Router {
    axum::Router::new()
        .route("/ws", axum::routing::get(handler))
        .with_state(state)
}
