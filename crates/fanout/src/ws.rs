//! `GET /ws`: the browser WebSocket protocol (`docs/protocol.md`).
//!
//! Client → server: `{"op":"subscribe","topic":T}`, `{"op":"unsubscribe","topic":T}`; anything
//! else gets an `error` frame and the connection stays. Server → client: `subscribed` (with the
//! snapshot), `event`, `gap`, `unsubscribed`, `error`.
//!
//! Each connection is one task owning its socket. Publishers push each event's frame, a complete
//! WebSocket frame made once and shared, straight into the connection's queue (its mailbox, an
//! [`Outbound`](crate::Outbound)) and wake the task; the task reads the client's requests, then
//! copies everything queued into one buffer and writes it with as few system calls as the socket
//! allows. A busy gateway therefore writes bigger batches instead of falling behind. A client that
//! does not read only fills its own queue: its oldest data frames are dropped and reported as a
//! `gap`, and nobody else waits for it.
//!
//! The server side of RFC 6455 is small and done here: the upgrade (the accept key and frame
//! headers are tungstenite's), masked client frames of at most [`Limits::max_inbound`] bytes
//! decoded by the pure [`frames::Decoder`](crate::frames::Decoder), ping → pong, close → close.
//! Fragmented client messages are refused with an `error` frame.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use crate::admission::{Admission, Caps, Kind};
use crate::auth::{Auth, Identity, check_origin};
use crate::frames::{Decoder, Inbound, Op};
use crate::mailbox::{Mailbox, text_frame};
use crate::{Hub, refuse};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Per-connection and per-gateway limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// The largest message a client may send (4 KiB: it only subscribes).
    pub max_inbound: usize,
    /// Subscriptions per connection (32).
    pub max_subscriptions: usize,
    /// Data bytes a connection may have waiting before its oldest are dropped (256 KiB).
    pub data_bytes: usize,
    /// Answers (`subscribed` with its snapshot, `error`, pong) a connection may have waiting
    /// before its requests are no longer read (64 KiB): a client that does not read its answers
    /// stops being read, and is dropped once silent for [`Limits::silence`].
    pub control_bytes: usize,
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
            data_bytes: 256 * 1024,
            control_bytes: crate::outbound::CONTROL_BYTES,
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
    /// Open connections, capped per gateway and per identity (with the SSE streams).
    admission: Arc<Admission>,
    /// Frames written to clients, and data frames dropped for slow ones.
    sent: AtomicU64,
    dropped: Arc<AtomicU64>,
    /// The open connections' mailboxes, for the queued-bytes gauge.
    mailboxes: Mutex<HashMap<usize, Arc<Mailbox>>>,
}

impl WsState {
    /// The endpoint's state over `hub`: everyone may connect and read everything.
    pub fn new(hub: Arc<Hub>, limits: Limits) -> Arc<Self> {
        Self::with_auth(
            hub,
            limits,
            Auth::None,
            None,
            Admission::new(Caps::default()),
        )
    }

    /// The endpoint's state with `auth`, WebSocket upgrades accepted only from pages of the
    /// gateway's own host or of `origins` (requests without an `Origin` header, from
    /// non-browser clients, pass), and connections counted in `admission` (which the SSE
    /// streams share).
    pub fn with_auth(
        hub: Arc<Hub>,
        limits: Limits,
        auth: Auth,
        origins: Option<Vec<String>>,
        admission: Arc<Admission>,
    ) -> Arc<Self> {
        Arc::new(Self {
            hub,
            limits,
            auth,
            origins,
            admission,
            sent: AtomicU64::new(0),
            dropped: Arc::new(AtomicU64::new(0)),
            mailboxes: Mutex::new(HashMap::new()),
        })
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.admission.open(Kind::WebSocket)
    }

    /// The stream counts and caps this endpoint shares with the SSE streams.
    pub fn admission(&self) -> &Arc<Admission> {
        &self.admission
    }

    /// Frames written to clients so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Answer bytes (control frames) waiting in the connections' queues now.
    pub fn control_bytes(&self) -> usize {
        self.sum_queues(crate::Outbound::control_bytes)
    }

    /// Data bytes waiting in the connections' queues now.
    pub fn queued_bytes(&self) -> usize {
        self.sum_queues(crate::Outbound::data_bytes)
    }

    /// `count` of every open connection's queue, summed (each queue locked in turn, none
    /// while the list is).
    fn sum_queues(&self, count: fn(&crate::Outbound) -> usize) -> usize {
        let mailboxes: Vec<Arc<Mailbox>> = self
            .mailboxes
            .lock()
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        mailboxes.iter().map(|m| count(&m.lock())).sum()
    }

    /// Data frames dropped for slow clients so far (each reported to its client as a `gap`).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Whether a comma-separated header holds `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// The `/ws` handler: checks the origin, authenticates, counts the connection, and upgrades.
pub async fn handler(State(state): State<Arc<WsState>>, mut request: Request) -> Response {
    let headers = request.headers();
    let upgrade = has_token(headers, header::CONNECTION, "upgrade")
        && has_token(headers, header::UPGRADE, "websocket");
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).filter(|_| upgrade) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "not_a_websocket",
            "this endpoint speaks WebSocket only (Connection: upgrade, Upgrade: websocket)",
        );
    };
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        let mut response = refuse(
            StatusCode::UPGRADE_REQUIRED,
            "websocket_version",
            "only WebSocket version 13 is spoken",
        );
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return response;
    }
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let identity = match state.auth.authenticate(headers).await {
        Ok(identity) => identity,
        Err(refused) => return refuse(refused.status, "unauthorized", &refused.message),
    };
    // Only pages from the configured origins or the gateway's own host may open it, whatever
    // the credentials: without auth another site's page could read every machine through its
    // visitor's browser, and with a cookie it would read them as its visitor.
    if let Err(who) = check_origin(headers, state.origins.as_deref()) {
        return refuse(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            &format!("{who} may not open this WebSocket"),
        );
    }
    let ticket = match state
        .admission
        .admit(Kind::WebSocket, identity.id.as_deref())
    {
        Ok(ticket) => ticket,
        Err(full) => return refuse(full.status, full.code, &full.message),
    };
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => Conn::new(state.clone(), identity, TokioIo::new(upgraded)).await,
            Err(e) => tracing::debug!("a WebSocket upgrade did not complete: {e}"),
        }
        drop(ticket);
    });
    let mut response = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = response.headers_mut();
    h.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

fn control(value: &serde_json::Value) -> Bytes {
    text_frame(value.to_string().as_bytes())
}

fn gap(topic: &str, dropped: u64) -> Bytes {
    control(&serde_json::json!({"type": "gap", "topic": topic, "dropped": dropped}))
}

fn error(code: &str, message: &str) -> Bytes {
    control(&serde_json::json!({"type": "error", "code": code, "message": message}))
}

/// A close frame with its status code.
fn close_frame(code: u16) -> Bytes {
    let [hi, lo] = code.to_be_bytes();
    Bytes::copy_from_slice(&[0x88, 2, hi, lo])
}

/// `{"type":"subscribed","topic":T,"snapshot":[event frames…]}`.
fn subscribed(topic: &str, snapshot: &[Arc<crate::Event>]) -> Bytes {
    let mut text = String::from("{\"type\":\"subscribed\",\"topic\":");
    text.push_str(&serde_json::to_string(topic).unwrap_or_default());
    text.push_str(",\"snapshot\":[");
    for (i, event) in snapshot.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(event.frame());
    }
    text.push_str("]}");
    text_frame(text.as_bytes())
}

/// The most bytes taken from the queue into one write.
const BATCH: usize = 64 * 1024;
/// A write buffer larger than this is given back once written (idle connections stay small).
const KEEP: usize = 8 * 1024;

/// Why a connection ends.
enum End {
    /// The client went away, or the socket failed.
    Gone,
    /// We close it, after writing what is queued (a close frame last).
    Closing,
}

/// One WebSocket connection: a future that reads, keeps time and writes, in one task.
struct Conn {
    state: Arc<WsState>,
    identity: Identity,
    io: TokioIo<hyper::upgrade::Upgraded>,
    mailbox: Arc<Mailbox>,
    /// Subscribed topics.
    topics: Vec<Arc<str>>,
    /// What the client sent, decoded.
    inbound: Decoder,
    /// Outbound bytes, written up to `written`.
    outbound: Vec<u8>,
    written: usize,
    /// The next ping or the silence deadline, whichever is first.
    timer: Pin<Box<Sleep>>,
    heard: Instant,
    next_ping: Instant,
    /// Set once a close frame is queued: write what is left, then end.
    closing: bool,
    /// Set while the client's requests are left unread: its answers fill the control lane.
    paused: bool,
}

impl Conn {
    fn new(state: Arc<WsState>, identity: Identity, io: TokioIo<hyper::upgrade::Upgraded>) -> Self {
        let mailbox = Mailbox::new(
            state.limits.data_bytes,
            state.limits.control_bytes,
            state.dropped.clone(),
        );
        if let Ok(mut all) = state.mailboxes.lock() {
            all.insert(Arc::as_ptr(&mailbox) as usize, mailbox.clone());
        }
        let now = Instant::now();
        let next_ping = now + state.limits.ping_every;
        Self {
            identity,
            io,
            mailbox,
            topics: Vec::new(),
            inbound: Decoder::new(state.limits.max_inbound),
            outbound: Vec::new(),
            written: 0,
            timer: Box::pin(tokio::time::sleep_until(
                next_ping.min(now + state.limits.silence),
            )),
            heard: now,
            next_ping,
            closing: false,
            paused: false,
            state,
        }
    }

    /// Reads what the client sent and answers it; `Err` when the connection is over. Nothing
    /// is read while the answers waiting fill the control lane ([`Conn::paused`]).
    fn read(&mut self, cx: &mut Context<'_>) -> Result<(), End> {
        let mut chunk = [0u8; 2048];
        // Requests received while paused are answered first.
        self.frames()?;
        // A few reads per turn: a client flooding requests cannot starve the writes.
        for _ in 0..8 {
            if self.paused {
                return Ok(());
            }
            let mut buf = ReadBuf::new(&mut chunk);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Pending => return Ok(()),
                Poll::Ready(Err(_)) => return Err(End::Gone),
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Err(End::Gone),
                Poll::Ready(Ok(())) => {
                    self.heard = Instant::now();
                    self.inbound.push(buf.filled());
                    self.frames()?;
                }
            }
        }
        cx.waker().wake_by_ref();
        Ok(())
    }

    /// Answers every whole frame received, until the control lane is full. With nothing
    /// received there is nothing to hold back (and no lock taken: every wake-up of a connection
    /// passes here).
    fn frames(&mut self) -> Result<(), End> {
        loop {
            if self.inbound.buffered() == 0 {
                self.paused = false;
                return Ok(());
            }
            self.paused = self.mailbox.lock().control_full();
            if self.paused {
                return Ok(());
            }
            let inbound = match self.inbound.decode() {
                Ok(Some(inbound)) => inbound,
                Ok(None) => return Ok(()),
                Err(fault) => return Err(self.fail(fault.code, &fault.reason)),
            };
            match inbound {
                Inbound::Text(text) => self.request(&text),
                Inbound::Binary => self
                    .mailbox
                    .push_control(error("bad_request", "send JSON text frames")),
                Inbound::Fragmented => self.mailbox.push_control(error(
                    "bad_request",
                    "send each request in one frame (fragmented messages are not accepted)",
                )),
                Inbound::Ping(payload) => {
                    let mut pong = vec![0x8a, payload.len() as u8];
                    pong.extend_from_slice(&payload);
                    self.mailbox.push_control(Bytes::from(pong));
                }
                Inbound::Pong => {}
                // Echo the status code, as RFC 6455 §5.5.1 asks (1000 when there was none).
                Inbound::Close(code) => {
                    return Err(self.close(if code == 1005 { 1000 } else { code }));
                }
            }
        }
    }

    /// A protocol error: log it, queue a close frame with `code`, end after writing.
    fn fail(&mut self, code: u16, why: &str) -> End {
        tracing::info!("closing a WebSocket ({code}): {why}");
        self.close(code)
    }

    /// Queues the close frame last: no event is queued after it, and none of those waiting is
    /// written (nothing may follow a close frame).
    fn close(&mut self, code: u16) -> End {
        for topic in self.topics.drain(..) {
            self.state.hub.detach(&topic, &self.mailbox);
            self.mailbox.lock().forget(&topic);
        }
        self.mailbox.push_control(close_frame(code));
        self.closing = true;
        End::Closing
    }

    fn request(&mut self, text: &str) {
        let request = match crate::frames::Request::parse(text) {
            Ok(r) => r,
            Err(message) => {
                self.mailbox.push_control(error("bad_request", &message));
                return;
            }
        };
        let topic = request.topic;
        let known = self.topics.iter().position(|t| **t == *topic);
        let reply = match request.op {
            Op::Subscribe if !self.identity.may_read(&topic) => {
                error("forbidden", &format!("you may not read {topic}"))
            }
            Op::Subscribe if known.is_some() => error(
                "already_subscribed",
                &format!("already subscribed to {topic}"),
            ),
            Op::Subscribe if self.topics.len() >= self.state.limits.max_subscriptions => error(
                "too_many_subscriptions",
                &format!(
                    "at most {} subscriptions per connection",
                    self.state.limits.max_subscriptions
                ),
            ),
            Op::Subscribe => {
                // Attached and snapshotted under the topic's lock; the `subscribed` frame is
                // queued before this task writes anything, on the control lane that goes first.
                match self.state.hub.attach(&topic, &self.mailbox) {
                    Some((key, snapshot)) => {
                        self.topics.push(key);
                        subscribed(&topic, &snapshot)
                    }
                    // A typo must not look like a silent machine, nor leave a topic behind.
                    None => error(
                        "not_found",
                        &format!("no topic {topic}: nothing publishes it here"),
                    ),
                }
            }
            Op::Unsubscribe => match known {
                Some(i) => {
                    let key = self.topics.swap_remove(i);
                    self.state.hub.detach(&key, &self.mailbox);
                    self.mailbox.lock().forget(&key);
                    control(&serde_json::json!({"type": "unsubscribed", "topic": topic}))
                }
                None => error("not_subscribed", &format!("not subscribed to {topic}")),
            },
        };
        self.mailbox.push_control(reply);
    }

    /// Pings on time; `Err` once the client has been silent too long.
    fn keep_time(&mut self, cx: &mut Context<'_>) -> Result<(), End> {
        while self.timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            let limits = &self.state.limits;
            if now >= self.heard + limits.silence {
                if self.paused {
                    tracing::info!(
                        "dropping a WebSocket that has not read its answers for {:?} ({} bytes waiting)",
                        limits.silence,
                        self.mailbox.lock().control_bytes()
                    );
                } else {
                    tracing::info!("dropping a WebSocket silent for {:?}", limits.silence);
                }
                return Err(End::Gone);
            }
            if now >= self.next_ping {
                self.mailbox.push_control(Bytes::from_static(&[0x89, 0]));
                self.next_ping = now + limits.ping_every;
            }
            let next = self.next_ping.min(self.heard + limits.silence);
            self.timer.as_mut().reset(next);
        }
        Ok(())
    }

    /// Writes what is queued: batches of up to [`BATCH`] bytes, until the socket is full or
    /// the queue is empty. `Err` when the socket failed.
    fn write(&mut self, cx: &mut Context<'_>) -> Result<(), End> {
        for _ in 0..16 {
            if self.written == self.outbound.len() {
                self.outbound.clear();
                self.written = 0;
                let mut frames = 0;
                {
                    let mut out = self.mailbox.lock();
                    while self.outbound.len() < BATCH {
                        let Some(frame) = out.pop(gap) else { break };
                        self.outbound.extend_from_slice(frame.payload());
                        frames += 1;
                    }
                }
                if frames == 0 {
                    if self.outbound.capacity() > KEEP {
                        self.outbound = Vec::new();
                    }
                    return Ok(());
                }
                self.state.sent.fetch_add(frames, Ordering::Relaxed);
            }
            match Pin::new(&mut self.io).poll_write(cx, &self.outbound[self.written..]) {
                Poll::Pending => return Ok(()),
                Poll::Ready(Ok(0) | Err(_)) => return Err(End::Gone),
                Poll::Ready(Ok(n)) => self.written += n,
            }
        }
        // Plenty written this turn; let the other connections have theirs.
        cx.waker().wake_by_ref();
        Ok(())
    }

    fn all_written(&self) -> bool {
        self.written == self.outbound.len() && self.mailbox.lock().is_empty()
    }
}

impl Future for Conn {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // Registered before looking at the queue: no push is missed.
        this.mailbox.register(cx.waker());
        if !this.closing {
            match this.read(cx).and_then(|()| this.keep_time(cx)) {
                Ok(()) | Err(End::Closing) => {}
                Err(End::Gone) => return Poll::Ready(()),
            }
        }
        if this.write(cx).is_err() {
            return Poll::Ready(());
        }
        // The client read some answers: take its requests again (nothing else would wake us,
        // as nothing was left to read for).
        if this.paused && !this.closing && !this.mailbox.lock().control_full() {
            cx.waker().wake_by_ref();
        }
        if this.closing && this.all_written() {
            let _ = Pin::new(&mut this.io).poll_shutdown(cx);
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        for topic in &self.topics {
            self.state.hub.detach(topic, &self.mailbox);
        }
        if let Ok(mut all) = self.state.mailboxes.lock() {
            all.remove(&(Arc::as_ptr(&self.mailbox) as usize));
        }
    }
}

/// `listener` with `TCP_NODELAY` set on every connection it accepts: serve the fan-out with it.
/// Connections write whole batches; with Nagle's algorithm a batch written while the previous one
/// is not yet acknowledged waits for the client's delayed ACK, up to 40 ms on Linux.
pub fn listener(
    listener: tokio::net::TcpListener,
) -> axum::serve::TapIo<tokio::net::TcpListener, fn(&mut tokio::net::TcpStream)> {
    use axum::serve::ListenerExt as _;
    fn nodelay(tcp: &mut tokio::net::TcpStream) {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!("cannot set TCP_NODELAY on a connection: {e}");
        }
    }
    listener.tap_io(nodelay)
}

/// The router serving `/ws`.
pub fn router(state: Arc<WsState>) -> axum::Router {
    axum::Router::new()
        .route("/ws", axum::routing::get(handler))
        .with_state(state)
}
