//! The pure socket.io client state: namespaces multiplexed on one Engine.IO session, the emit
//! buffer, ack ids and deadlines, binary reassembly and connection state recovery. No IO, no
//! clock: the driver passes `now` in and does what [`Connection::poll_output`] says.
//!
//! Driven by hand: an emit made before the namespace is connected waits, goes out once the
//! server accepts, and its answer comes back matched to its ack id.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use socketio_v5::connection::{Connection, Output};
//!
//! let now = Instant::now();
//! let mut conn = Connection::new(1024, 10);
//! conn.connect("/", None);
//! let id = conn
//!     .emit(now, "/", "start", r#"["start","profile-7"]"#.into(), vec![], Some(Some(now + Duration::from_secs(5))))
//!     .unwrap()
//!     .expect("an ack id");
//! assert_eq!(conn.poll_output(), None); // no Engine.IO session yet: it waits
//!
//! conn.handle_engine_opened();
//! let send = |text: String| Output::Send { text, attachments: vec![] };
//! assert_eq!(conn.poll_output(), Some(send("0".into()))); // CONNECT to "/"
//!
//! conn.handle_text(now, r#"0{"sid":"Kx3UvWcv"}"#);
//! let mut out = std::iter::from_fn(|| conn.poll_output());
//! assert_eq!(
//!     out.next(),
//!     Some(Output::Connected { namespace: "/".into(), sid: "Kx3UvWcv".into(), recovered: false })
//! );
//! assert_eq!(out.next(), Some(send(format!(r#"2{id}["start","profile-7"]"#))));
//!
//! conn.handle_text(now, format!(r#"3{id}[true]"#));
//! let Some(Output::Ack { id: answered, result: Ok(answer), .. }) = conn.poll_output() else {
//!     panic!("the answer")
//! };
//! assert_eq!(answered, id);
//! assert_eq!(answer.packet.args::<(bool,)>().unwrap(), (true,));
//! assert_eq!(conn.poll_timeout(), None); // nothing waits any more
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use engineio_codec::Text;

use crate::codec::{self, Json, Message, Packet, PacketKind, RESERVED_EVENTS, Reassembler};

/// Why a namespace is no longer connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The server sent DISCONNECT for the namespace: no automatic reconnection.
    ServerDisconnect,
    /// The application disconnected the namespace.
    ClientDisconnect,
    /// The Engine.IO session ended (it reconnects by itself).
    TransportClose(String),
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ServerDisconnect => f.write_str("io server disconnect"),
            Self::ClientDisconnect => f.write_str("io client disconnect"),
            Self::TransportClose(why) => write!(f, "transport close: {why}"),
        }
    }
}

/// Why an ack did not come.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AckError {
    /// No answer within the timeout.
    #[error("no ack within the timeout")]
    Timeout,
    /// The namespace disconnected before the answer.
    #[error("the socket disconnected before the ack: {0}")]
    Disconnected(String),
    /// The namespace refused the connection.
    #[error("the namespace refused the connection: {0}")]
    Refused(String),
}

/// Why an emit was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// socket.io reserves this name; a server closes the session on it.
    #[error("event name {0:?} is reserved by socket.io")]
    Reserved(String),
    /// The namespace is not (being) connected.
    #[error("namespace {0} is not connected and will not reconnect")]
    NotConnected(String),
    /// The buffer of emits waiting for the connection is full.
    #[error("{0} emits are already waiting for namespace {1} to connect")]
    BufferFull(usize, String),
}

/// Something the driver must do or deliver.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send this text Engine.IO message, then these binary messages, in order.
    Send {
        /// The socket.io packet's text.
        text: String,
        /// Its attachments.
        attachments: Vec<Bytes>,
    },
    /// The namespace is connected.
    Connected {
        /// Namespace.
        namespace: String,
        /// The socket id in the namespace.
        sid: String,
        /// Whether the server recovered the previous session (and replayed what was missed).
        recovered: bool,
    },
    /// The server refused the namespace; terminal for it.
    ConnectError {
        /// Namespace.
        namespace: String,
        /// The server's message.
        message: String,
        /// The server's data, raw JSON.
        data: Option<String>,
    },
    /// The namespace disconnected.
    Disconnected {
        /// Namespace.
        namespace: String,
        /// Why.
        reason: DisconnectReason,
    },
    /// An event from the server (the recovery offset already stripped).
    Event {
        /// Namespace.
        namespace: Arc<str>,
        /// The packet and its attachments (boxed: events move through queues).
        message: Box<Message<'static>>,
    },
    /// The answer to one of our emits with an ack.
    Ack {
        /// Namespace.
        namespace: String,
        /// The ack id.
        id: u64,
        /// The answer, or why there is none.
        result: Result<Box<Message<'static>>, AckError>,
    },
    /// The server broke the protocol: close the Engine.IO session (it reconnects).
    ProtocolError(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Waiting for the Engine.IO session to send CONNECT.
    Idle,
    /// CONNECT sent.
    Connecting,
    Connected,
    /// Refused or disconnected by either side: no more automatic connects.
    Closed,
}

#[derive(Debug)]
struct Emit {
    text_for: EmitParts,
    ack: Option<(u64, Option<Instant>)>,
}

#[derive(Debug)]
struct EmitParts {
    kind: PacketKind,
    json: String,
    attachments: Vec<Bytes>,
}

#[derive(Debug)]
struct Namespace {
    name: Arc<str>,
    state: State,
    auth: Option<String>,
    outbox: VecDeque<Emit>,
    next_ack: u64,
    /// Ack ids sent and waiting, with their deadlines.
    waiting: HashMap<u64, Option<Instant>>,
    /// Connection state recovery: the private session id and the last offset seen.
    pid: Option<String>,
    offset: Option<String>,
    /// Events that arrived before the CONNECT answer (recovery replays them first).
    /// Boxed: they leave as boxed events, without moving the message again.
    #[allow(clippy::vec_box)]
    early: Vec<Box<Message<'static>>>,
}

/// The client side of socket.io over one Engine.IO session. See the [module docs](self).
#[derive(Debug)]
pub struct Connection {
    namespaces: BTreeMap<String, Namespace>,
    reassembler: Reassembler,
    engine_open: bool,
    outbox_capacity: usize,
    outputs: VecDeque<Output>,
}

impl Connection {
    /// A manager that buffers at most `outbox_capacity` emits per namespace while it is not
    /// connected, and accepts at most `max_attachments` attachments per received packet.
    pub fn new(outbox_capacity: usize, max_attachments: usize) -> Self {
        Self {
            namespaces: BTreeMap::new(),
            reassembler: Reassembler::new(max_attachments),
            engine_open: false,
            outbox_capacity,
            outputs: VecDeque::new(),
        }
    }

    /// The next thing to do, if any.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// The earliest ack deadline, if any.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.namespaces
            .values()
            .flat_map(|ns| {
                ns.waiting.values().chain(
                    ns.outbox
                        .iter()
                        .filter_map(|e| e.ack.as_ref().map(|(_, d)| d)),
                )
            })
            .flatten()
            .min()
            .copied()
    }

    /// Whether `namespace` is connected now.
    pub fn is_connected(&self, namespace: &str) -> bool {
        self.namespaces
            .get(namespace)
            .is_some_and(|ns| ns.state == State::Connected)
    }

    /// Joins `namespace` with an auth payload (a JSON object); sends CONNECT now if the
    /// Engine.IO session is open, else as soon as it opens. `auth` is replaced on every call, so
    /// a driver that refreshes tokens calls this before each reconnect.
    pub fn connect(&mut self, namespace: &str, auth: Option<Json<'_>>) {
        let ns = self
            .namespaces
            .entry(namespace.to_owned())
            .or_insert_with(|| Namespace {
                name: namespace.into(),
                state: State::Idle,
                auth: None,
                outbox: VecDeque::new(),
                next_ack: 0,
                waiting: HashMap::new(),
                pid: None,
                offset: None,
                early: Vec::new(),
            });
        ns.auth = auth.map(|a| a.as_str().to_owned());
        if ns.state == State::Closed {
            ns.state = State::Idle;
        }
        if self.engine_open && ns.state == State::Idle {
            self.send_connect(namespace);
        }
    }

    /// Sets the auth payload used by the next CONNECT of `namespace` (for token refresh).
    pub fn set_auth(&mut self, namespace: &str, auth: Option<Json<'_>>) {
        if let Some(ns) = self.namespaces.get_mut(namespace) {
            ns.auth = auth.map(|a| a.as_str().to_owned());
        }
    }

    /// The namespaces that will send CONNECT when the Engine.IO session opens.
    pub fn namespaces(&self) -> impl Iterator<Item = &str> {
        self.namespaces
            .iter()
            .filter(|(_, ns)| ns.state != State::Closed)
            .map(|(name, _)| name.as_str())
    }

    /// Leaves `namespace`: DISCONNECT is sent if connected; buffered emits are dropped and
    /// their acks fail.
    pub fn disconnect(&mut self, namespace: &str) {
        let Some(ns) = self.namespaces.get_mut(namespace) else {
            return;
        };
        let was = std::mem::replace(&mut ns.state, State::Closed);
        if was == State::Connected || was == State::Connecting {
            let mut text = Vec::new();
            if let Ok(packet) = Packet::disconnect(namespace) {
                codec::encode(&packet, &mut text);
            }
            self.push_send(text, Vec::new());
        }
        self.fail_all(
            namespace,
            AckError::Disconnected("io client disconnect".into()),
            true,
        );
        if was != State::Closed {
            self.outputs.push_back(Output::Disconnected {
                namespace: namespace.to_owned(),
                reason: DisconnectReason::ClientDisconnect,
            });
        }
    }

    /// Emits `args_json` (the whole array `["name", args…]`, serialized with its attachments)
    /// on `namespace`. With `ack`, returns the ack id; its answer comes as [`Output::Ack`]
    /// (or a timeout at `deadline`). Buffered in order while the namespace connects.
    pub fn emit(
        &mut self,
        now: Instant,
        namespace: &str,
        event: &str,
        args_json: String,
        attachments: Vec<Bytes>,
        ack: Option<Option<Instant>>,
    ) -> Result<Option<u64>, EmitError> {
        let _ = now;
        if RESERVED_EVENTS.contains(&event) {
            return Err(EmitError::Reserved(event.to_owned()));
        }
        let capacity = self.outbox_capacity;
        let Some(ns) = self.namespaces.get_mut(namespace) else {
            return Err(EmitError::NotConnected(namespace.to_owned()));
        };
        if ns.state == State::Closed {
            return Err(EmitError::NotConnected(namespace.to_owned()));
        }
        let ack = ack.map(|deadline| {
            let id = ns.next_ack;
            ns.next_ack = ns.next_ack.wrapping_add(1);
            (id, deadline)
        });
        let kind = if attachments.is_empty() {
            PacketKind::Event
        } else {
            PacketKind::BinaryEvent
        };
        let emit = Emit {
            text_for: EmitParts {
                kind,
                json: args_json,
                attachments,
            },
            ack,
        };
        if ns.state == State::Connected {
            self.write(namespace, emit);
        } else {
            if ns.outbox.len() >= capacity {
                return Err(EmitError::BufferFull(capacity, namespace.to_owned()));
            }
            ns.outbox.push_back(emit);
        }
        Ok(ack.map(|(id, _)| id))
    }

    /// Answers the server's event `id` on `namespace` with `args_json` (a JSON array).
    pub fn ack(&mut self, namespace: &str, id: u64, args_json: &str, attachments: Vec<Bytes>) {
        let kind = if attachments.is_empty() {
            PacketKind::Ack
        } else {
            PacketKind::BinaryAck
        };
        let Ok(json) = Json::parse(args_json) else {
            return;
        };
        if let Ok(packet) =
            Packet::checked(kind, namespace, Some(id), attachments.len(), Some(json))
        {
            let mut text = Vec::new();
            codec::encode(&packet, &mut text);
            self.push_send(text, attachments);
        }
    }

    /// The Engine.IO session opened: every namespace not closed sends CONNECT.
    pub fn handle_engine_opened(&mut self) {
        self.engine_open = true;
        self.reassembler = Reassembler::new(self.reassembler_cap());
        let names: Vec<String> = self
            .namespaces
            .iter()
            .filter(|(_, ns)| ns.state == State::Idle)
            .map(|(n, _)| n.clone())
            .collect();
        for name in names {
            self.send_connect(&name);
        }
    }

    /// The Engine.IO session closed: connected namespaces disconnect (and reconnect with the
    /// next session); acks already sent fail, emits still buffered wait.
    pub fn handle_engine_closed(&mut self, why: &str) {
        self.engine_open = false;
        let names: Vec<String> = self.namespaces.keys().cloned().collect();
        for name in names {
            let Some(ns) = self.namespaces.get_mut(&name) else {
                continue;
            };
            let was = ns.state.clone();
            if was == State::Connected || was == State::Connecting {
                ns.state = State::Idle;
                ns.early.clear();
                self.fail_all(&name, AckError::Disconnected(why.to_owned()), false);
                if was == State::Connected {
                    self.outputs.push_back(Output::Disconnected {
                        namespace: name,
                        reason: DisconnectReason::TransportClose(why.to_owned()),
                    });
                }
            }
        }
    }

    /// A text Engine.IO message arrived. What it carries keeps sharing its buffer (no copy).
    pub fn handle_text(&mut self, _now: Instant, text: impl Into<Text>) {
        match self.reassembler.text_shared(&text.into()) {
            Ok(Some(message)) => self.dispatch(Box::new(message)),
            Ok(None) => {}
            Err(e) => self.outputs.push_back(Output::ProtocolError(e.to_string())),
        }
    }

    /// A binary Engine.IO message arrived.
    pub fn handle_binary(&mut self, _now: Instant, bytes: Bytes) {
        match self.reassembler.binary(bytes) {
            Ok(Some(message)) => self.dispatch(Box::new(message)),
            Ok(None) => {}
            Err(e) => self.outputs.push_back(Output::ProtocolError(e.to_string())),
        }
    }

    /// Time passed: acks whose deadline is at or before `now` fail with a timeout.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (name, ns) in &mut self.namespaces {
            let expired: Vec<u64> = ns
                .waiting
                .iter()
                .filter(|(_, d)| d.is_some_and(|d| d <= now))
                .map(|(id, _)| *id)
                .collect();
            for id in expired {
                ns.waiting.remove(&id);
                self.outputs.push_back(Output::Ack {
                    namespace: name.clone(),
                    id,
                    result: Err(AckError::Timeout),
                });
            }
            let before = ns.outbox.len();
            let mut kept = VecDeque::with_capacity(before);
            for emit in ns.outbox.drain(..) {
                match emit.ack {
                    Some((id, Some(d))) if d <= now => self.outputs.push_back(Output::Ack {
                        namespace: name.clone(),
                        id,
                        result: Err(AckError::Timeout),
                    }),
                    _ => kept.push_back(emit),
                }
            }
            ns.outbox = kept;
        }
    }

    fn reassembler_cap(&self) -> usize {
        self.reassembler.max_attachments()
    }

    fn send_connect(&mut self, namespace: &str) {
        let Some(ns) = self.namespaces.get_mut(namespace) else {
            return;
        };
        // Recovery: {pid, offset} first, the auth's own keys override them.
        let mut payload = match (&ns.pid, &ns.offset) {
            (Some(pid), Some(offset)) => {
                let mut map = serde_json::Map::new();
                map.insert("pid".into(), pid.clone().into());
                map.insert("offset".into(), offset.clone().into());
                Some(map)
            }
            _ => None,
        };
        if let Some(auth) = &ns.auth
            && let Ok(serde_json::Value::Object(auth)) = serde_json::from_str(auth)
        {
            payload
                .get_or_insert_with(serde_json::Map::new)
                .extend(auth);
        }
        let json = payload.map(|m| serde_json::Value::Object(m).to_string());
        ns.state = State::Connecting;
        let mut text = Vec::new();
        let data = json.as_deref().and_then(|j| Json::parse(j).ok());
        if let Ok(packet) = Packet::connect(namespace, data) {
            codec::encode(&packet, &mut text);
        }
        self.push_send(text, Vec::new());
    }

    fn push_send(&mut self, text: Vec<u8>, attachments: Vec<Bytes>) {
        // Encoded packets are built from &str parts, so they are UTF-8.
        if let Ok(text) = String::from_utf8(text) {
            self.outputs.push_back(Output::Send { text, attachments });
        }
    }

    fn write(&mut self, namespace: &str, emit: Emit) {
        let Emit { text_for, ack } = emit;
        let json = match Json::parse(&text_for.json) {
            Ok(j) => j,
            Err(_) => return,
        };
        let packet = Packet::checked(
            text_for.kind,
            namespace,
            ack.map(|(id, _)| id),
            text_for.attachments.len(),
            Some(json),
        );
        match packet {
            Ok(packet) => {
                let mut text = Vec::new();
                codec::encode(&packet, &mut text);
                if let (Some((id, deadline)), Some(ns)) = (ack, self.namespaces.get_mut(namespace))
                {
                    ns.waiting.insert(id, deadline);
                }
                self.push_send(text, text_for.attachments);
            }
            Err(e) => {
                if let Some((id, _)) = ack {
                    self.outputs.push_back(Output::Ack {
                        namespace: namespace.to_owned(),
                        id,
                        result: Err(AckError::Refused(e.to_string())),
                    });
                }
            }
        }
    }

    /// Fails the acks waiting on `namespace`; with `outbox`, the buffered emits too.
    fn fail_all(&mut self, namespace: &str, error: AckError, outbox: bool) {
        let Some(ns) = self.namespaces.get_mut(namespace) else {
            return;
        };
        let mut ids: Vec<u64> = ns.waiting.drain().map(|(id, _)| id).collect();
        if outbox {
            ids.extend(ns.outbox.drain(..).filter_map(|e| e.ack.map(|(id, _)| id)));
        }
        ids.sort_unstable();
        for id in ids {
            self.outputs.push_back(Output::Ack {
                namespace: namespace.to_owned(),
                id,
                result: Err(error.clone()),
            });
        }
    }

    /// Boxed once on arrival: the message then moves through queues as a pointer.
    fn dispatch(&mut self, message: Box<Message<'static>>) {
        let Some(ns) = self.namespaces.get_mut(message.packet.namespace()) else {
            // A namespace we never joined: nothing to deliver it to.
            return;
        };
        let shared_name = ns.name.clone();
        let name: &str = shared_name.as_ref();
        match message.packet.kind() {
            PacketKind::Connect => {
                if ns.state != State::Connecting {
                    return;
                }
                let Some(ack) = message.packet.connect_ack() else {
                    self.outputs.push_back(Output::ProtocolError(format!(
                        "CONNECT answer for {name} without a sid (a socket.io v2 server?)"
                    )));
                    return;
                };
                let recovered = ack.pid.is_some() && ack.pid == ns.pid;
                if ack.pid.is_some() {
                    ns.pid = ack.pid;
                }
                if !recovered {
                    ns.offset = None;
                }
                ns.state = State::Connected;
                self.outputs.push_back(Output::Connected {
                    namespace: name.to_owned(),
                    sid: ack.sid,
                    recovered,
                });
                let early = std::mem::take(&mut ns.early);
                let outbox = std::mem::take(&mut ns.outbox);
                for message in early {
                    self.deliver_event(shared_name.clone(), message);
                }
                for emit in outbox {
                    self.write(name, emit);
                }
            }
            PacketKind::ConnectError => {
                let error = message.packet.connect_error();
                ns.state = State::Closed;
                let (message_text, data) = match error {
                    Some(e) => (e.message, e.data.map(|d| d.get().to_owned())),
                    None => ("connection refused".to_owned(), None),
                };
                self.fail_all(name, AckError::Refused(message_text.clone()), true);
                self.outputs.push_back(Output::ConnectError {
                    namespace: name.to_owned(),
                    message: message_text,
                    data,
                });
            }
            PacketKind::Disconnect => {
                if ns.state == State::Closed {
                    return;
                }
                ns.state = State::Closed;
                ns.pid = None;
                ns.offset = None;
                self.fail_all(
                    name,
                    AckError::Disconnected("io server disconnect".into()),
                    false,
                );
                self.outputs.push_back(Output::Disconnected {
                    namespace: name.to_owned(),
                    reason: DisconnectReason::ServerDisconnect,
                });
            }
            PacketKind::Event | PacketKind::BinaryEvent => match ns.state {
                State::Connected => self.deliver_event(shared_name, message),
                // Recovery replays missed events before the CONNECT answer: keep them.
                State::Connecting => {
                    if ns.early.len() < 10_000 {
                        ns.early.push(message);
                    }
                }
                State::Idle | State::Closed => {}
            },
            PacketKind::Ack | PacketKind::BinaryAck => {
                let Some(id) = message.packet.id() else {
                    return;
                };
                if ns.waiting.remove(&id).is_some() {
                    self.outputs.push_back(Output::Ack {
                        namespace: name.to_owned(),
                        id,
                        result: Ok(message),
                    });
                }
            }
        }
    }

    /// Delivers an event, first taking the recovery offset off its arguments.
    fn deliver_event(&mut self, namespace: Arc<str>, mut message: Box<Message<'static>>) {
        if let Some(ns) = self.namespaces.get_mut(namespace.as_ref())
            && ns.pid.is_some()
            && message.packet.id().is_none()
            && let Some((stripped, offset)) = strip_offset(&message.packet)
        {
            ns.offset = Some(offset);
            message.packet = stripped;
        }
        self.outputs.push_back(Output::Event { namespace, message });
    }
}

/// With recovery on, the server appends the offset as the last argument (a string) of every
/// event it may replay. Returns the packet without it, and the offset.
fn strip_offset(packet: &Packet<'_>) -> Option<(Packet<'static>, String)> {
    let raw = packet.data()?.as_str();
    let mut items: Vec<&serde_json::value::RawValue> = serde_json::from_str(raw).ok()?;
    if items.len() < 2 {
        return None;
    }
    let offset: String = serde_json::from_str(items.last()?.get()).ok()?;
    items.pop();
    let json = serde_json::to_string(&items).ok()?;
    let json = Json::parse(&json).ok()?.into_owned();
    let stripped = Packet::checked(
        packet.kind(),
        packet.namespace(),
        packet.id(),
        packet.attachments(),
        Some(json),
    )
    .ok()?
    .into_owned();
    Some((stripped, offset))
}
