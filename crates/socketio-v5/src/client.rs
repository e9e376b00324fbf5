//! The async socket.io client: a thin tokio driver around the pure [`Connection`] and an
//! [`engineio_client::Client`].

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use engineio_client::queue::{self, Consumer, Producer};
use engineio_client::{Event as EngineEvent, Payload};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, oneshot};

use crate::binary::{serialize_with_attachments, with_attachments};
use crate::codec::{EventName, Json, Message, RESERVED_EVENTS};
use engineio_client::deadline::Deadline;

use crate::connection::{AckError, Connection, DisconnectReason, EmitError, Output};

/// Where the answer to an emit with ack goes.
type AckSender = oneshot::Sender<Result<Box<Message<'static>>, AckError>>;

/// An async source of the CONNECT auth payload, asked before every (re)connect of a namespace.
pub type AuthProvider =
    Arc<dyn Fn() -> Pin<Box<dyn Future<Output = Option<serde_json::Value>> + Send>> + Send + Sync>;

/// The auth payload of a namespace CONNECT.
///
/// ```
/// use std::sync::Arc;
/// use socketio_v5::{Auth, AuthProvider};
/// let fixed = Auth::Static(serde_json::json!({"token": "abc"}));
/// // Asked before every connect, so a reconnect an hour later sends a fresh token.
/// let fresh: AuthProvider = Arc::new(|| {
///     Box::pin(async { Some(serde_json::json!({"token": "fresh-token"})) })
/// });
/// let refreshed = Auth::Provider(fresh);
/// # let _ = (fixed, refreshed);
/// ```
#[derive(Clone, Default)]
pub enum Auth {
    /// No payload.
    #[default]
    None,
    /// A fixed JSON object.
    Static(serde_json::Value),
    /// Asked again before every connect (fresh tokens).
    Provider(AuthProvider),
}

/// `Debug` shows the payload's keys, never its values: an auth payload holds tokens.
///
/// ```
/// let auth = socketio_v5::Auth::Static(serde_json::json!({"token": "s3cret"}));
/// assert_eq!(format!("{auth:?}"), r#"Static({"token": <redacted>})"#);
/// ```
impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Static(serde_json::Value::Object(map)) => {
                f.write_str("Static({")?;
                for (i, key) in map.keys().enumerate() {
                    let comma = if i > 0 { ", " } else { "" };
                    write!(f, "{comma}{key:?}: <redacted>")?;
                }
                f.write_str("})")
            }
            Auth::Static(_) => f.write_str("Static(<redacted>)"),
            Auth::Provider(_) => f.write_str("Provider(..)"),
        }
    }
}

/// How the client connects: the Engine.IO configuration (path `/socket.io/` by default) and the
/// socket.io limits.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    engine: engineio_client::Config,
    outbox_capacity: usize,
    max_attachments: usize,
    event_capacity: usize,
}

impl ClientConfig {
    /// A client for the socket.io server at `url` (path `/socket.io/`, polling then upgrade).
    /// Fails with [`Error::Engine`] when the URL cannot be used.
    ///
    /// ```
    /// let config = socketio_v5::ClientConfig::new("http://127.0.0.1:3000").unwrap();
    /// assert!(socketio_v5::ClientConfig::new("ftp://example.com").is_err());
    /// # let _ = config;
    /// ```
    pub fn new(url: &str) -> Result<Self, Error> {
        Ok(Self::from_engine(
            engineio_client::Config::new(url)?.path("/socket.io/"),
        ))
    }

    /// A client over an Engine.IO configuration of your own (transports, headers, TLS, backoff).
    pub fn from_engine(engine: engineio_client::Config) -> Self {
        Self {
            engine,
            outbox_capacity: 1024,
            max_attachments: crate::codec::DEFAULT_MAX_ATTACHMENTS,
            event_capacity: 256,
        }
    }

    /// Changes the Engine.IO configuration.
    ///
    /// ```
    /// use socketio_v5::{engine::TransportMode, ClientConfig};
    /// // WebSocket at once, no long-polling first; a custom path.
    /// let config = ClientConfig::new("http://127.0.0.1:8080")
    ///     .unwrap()
    ///     .engine(|e| e.transport(TransportMode::WebSocket).path("/io/"));
    /// # let _ = config;
    /// ```
    pub fn engine(
        mut self,
        f: impl FnOnce(engineio_client::Config) -> engineio_client::Config,
    ) -> Self {
        self.engine = f(self.engine);
        self
    }

    /// How many emits may wait, per namespace, for it to connect (1024). Beyond that an emit
    /// fails with [`EmitError::BufferFull`] rather than growing memory without bound.
    pub fn outbox_capacity(mut self, capacity: usize) -> Self {
        self.outbox_capacity = capacity;
        self
    }

    /// The most binary attachments one received packet may announce (10, as socket.io-parser).
    pub fn max_attachments(mut self, max: usize) -> Self {
        self.max_attachments = max;
        self
    }

    /// How many events may wait for a slow consumer, per namespace (256); then the client
    /// stops reading until it catches up (backpressure, nothing dropped).
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }
}

/// Why a socket.io call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The emit was refused.
    #[error(transparent)]
    Emit(#[from] EmitError),
    /// The ack did not come.
    #[error(transparent)]
    Ack(#[from] AckError),
    /// The arguments could not be serialized, or the answer deserialized.
    #[error("arguments: {0}")]
    Json(#[from] serde_json::Error),
    /// The Engine.IO layer refused: an unusable URL. (Connection failures do not end a
    /// client: it reconnects, and its [`Client::state`] says why it is not connected.)
    #[error(transparent)]
    Engine(#[from] engineio_client::Error),
    /// The client is closed.
    #[error("the client is closed")]
    Closed,
}

/// What a namespace's event stream carries.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// The namespace is connected (again).
    Connect {
        /// The socket id in the namespace.
        sid: String,
        /// Whether the server recovered the session and replayed what was missed.
        recovered: bool,
    },
    /// The server refused the namespace. Terminal: the stream ends after this.
    ConnectError {
        /// The server's message.
        message: String,
        /// The server's extra data, raw JSON.
        data: Option<String>,
    },
    /// The namespace disconnected. After `TransportClose` it reconnects by itself.
    Disconnect(DisconnectReason),
    /// An event from the server.
    Message(ReceivedEvent),
}

/// An event from the server: its name, raw arguments (parsed only when asked), attachments, and
/// the means to answer it when the server asked for an ack.
pub struct ReceivedEvent {
    message: Box<Message<'static>>,
    reply: Option<AckReply>,
}

impl fmt::Debug for ReceivedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivedEvent")
            .field("name", &self.name().to_string())
            .field("args", &self.message.packet.data())
            .field("attachments", &self.message.attachments.len())
            .field("wants_ack", &self.reply.is_some())
            .finish()
    }
}

impl ReceivedEvent {
    /// The event name.
    pub fn name(&self) -> EventName<'_> {
        self.message
            .packet
            .event_name()
            .expect("events always have a name")
    }

    /// The arguments, deserialized into `T` (a tuple such as `(Status,)`, or a `Vec`).
    /// [`crate::Binary`] values inside receive the attachments.
    ///
    /// ```no_run
    /// # fn demo(event: socketio_v5::ReceivedEvent) -> Result<(), serde_json::Error> {
    /// // ["progress", "shot-12", 0.75]
    /// let (shot, done): (String, f64) = event.args()?;
    /// // ["photo", "cup.jpg", <binary>]
    /// let (name, bytes): (String, socketio_v5::Binary) = event.args()?;
    /// # let _ = (shot, done, name, bytes); Ok(()) }
    /// ```
    pub fn args<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        with_attachments(&self.message.attachments, || self.message.packet.args())
    }

    /// The first argument, deserialized into `T`.
    pub fn arg<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        let raw = self.message.packet.raw_args()?;
        let first = raw
            .first()
            .ok_or_else(|| serde::de::Error::custom("the event has no arguments"))?;
        with_attachments(&self.message.attachments, || {
            serde_json::from_str(first.get())
        })
    }

    /// The arguments as raw JSON text (`[...]` without the name).
    pub fn raw_args(&self) -> Result<String, serde_json::Error> {
        let raw = self.message.packet.raw_args()?;
        serde_json::to_string(&raw)
    }

    /// The packet as received, with its attachments.
    pub fn message(&self) -> &Message<'static> {
        &self.message
    }

    /// Whether the server waits for an answer.
    pub fn wants_ack(&self) -> bool {
        self.reply.is_some()
    }

    /// Answers the server's ack request with `args` (a tuple; [`crate::Binary`] allowed).
    /// Does nothing when the server did not ask. An answer is sent at most once.
    ///
    /// ```no_run
    /// # async fn demo(mut events: socketio_v5::Events) -> Result<(), socketio_v5::Error> {
    /// use socketio_v5::Event;
    /// while let Some(event) = events.recv().await {
    ///     if let Event::Message(mut event) = event {
    ///         if event.name().as_str() == Some("ready?") && event.wants_ack() {
    ///             event.ack((true, "idle")).await?;
    ///         }
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn ack<A: Serialize>(&mut self, args: A) -> Result<(), Error> {
        let Some(reply) = self.reply.take() else {
            return Ok(());
        };
        let (json, attachments) = serialize_with_attachments(&args)?;
        let json = if json.starts_with('[') {
            json
        } else {
            format!("[{json}]")
        };
        reply
            .commands
            .send(Command::Ack {
                namespace: reply.namespace,
                id: reply.id,
                json,
                attachments,
            })
            .await
            .map_err(|_| Error::Closed)
    }
}

struct AckReply {
    namespace: Arc<str>,
    id: u64,
    commands: mpsc::Sender<Command>,
}

enum Command {
    Join {
        namespace: Arc<str>,
        auth: Auth,
        events: Producer<Event>,
    },
    Emit {
        namespace: Arc<str>,
        event: String,
        json: String,
        attachments: Vec<Bytes>,
        ack: Option<(Duration, AckSender)>,
        done: oneshot::Sender<Result<(), EmitError>>,
    },
    Ack {
        namespace: Arc<str>,
        id: u64,
        json: String,
        attachments: Vec<Bytes>,
    },
    Leave {
        namespace: Arc<str>,
    },
    On {
        namespace: Arc<str>,
        event: Arc<str>,
        events: Producer<Event>,
    },
}

/// A socket.io client: one Engine.IO connection, any number of namespaces on it. Cheap to clone.
/// Closes when [`Client::close`] is called or every handle ([`Client`], [`Socket`]) is dropped.
///
/// Against a socket.io server (socketioxide here, in the same process; the Node reference
/// server and python-socketio behave the same): join the main namespace, ask for an answer,
/// and follow one event by name.
///
/// ```
/// # use socketioxide::{extract::{AckSender, Data, SocketRef}, SocketIo};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), socketio_v5::Error> {
/// # let (layer, io) = SocketIo::new_layer();
/// # io.ns("/", async |socket: SocketRef| {
/// #     socket.on("echo", async |Data::<serde_json::Value>(data), ack: AckSender| {
/// #         ack.send(&data).ok();
/// #     });
/// #     socket.on("start", async |socket: SocketRef| {
/// #         socket.emit("status", &serde_json::json!({"state": "brewing", "pressure": 9.1})).ok();
/// #     });
/// # });
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// # let url = format!("http://{}", listener.local_addr().unwrap());
/// # tokio::spawn(async move { axum::serve(listener, axum::Router::new().layer(layer)).await });
/// use std::time::Duration;
/// use socketio_v5::{Auth, Client, ClientConfig};
///
/// #[derive(serde::Deserialize)]
/// struct Status {
///     state: String,
///     pressure: f64,
/// }
///
/// let client = Client::new(ClientConfig::new(&url)?);
/// let (socket, _events) = client.socket("/", Auth::None).await?;
/// let (answer,): (String,) = socket
///     .emit_with_ack("echo", ("ping",), Duration::from_secs(5))
///     .await?;
/// assert_eq!(answer, "ping");
///
/// let mut status = socket.on::<Status>("status").await?;
/// socket.emit("start", ()).await?;
/// let status = status.recv().await.expect("a status event")?;
/// assert_eq!((status.state.as_str(), status.pressure), ("brewing", 9.1));
/// client.close();
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    engine: engineio_client::Client,
    event_capacity: usize,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

/// One namespace of a [`Client`]: emit into it.
#[derive(Clone)]
pub struct Socket {
    namespace: Arc<str>,
    commands: mpsc::Sender<Command>,
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// The events of one namespace, in order. A [`futures_util::Stream`], or call [`Events::recv`].
#[derive(Debug)]
pub struct Events {
    rx: Consumer<Event>,
}

impl Events {
    /// The next event; `None` once the namespace is refused, left, or the client closed.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// Waits for at least one event, then moves up to `limit` waiting events into `buffer`
    /// (cheaper per event for high-rate consumers). Returns how many; 0 at the end.
    ///
    /// ```no_run
    /// # async fn demo(mut events: socketio_v5::Events) {
    /// let mut batch = Vec::with_capacity(64);
    /// while events.recv_many(&mut batch, 64).await > 0 {
    ///     for event in batch.drain(..) {
    ///         println!("{event:?}");
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn recv_many(&mut self, buffer: &mut Vec<Event>, limit: usize) -> usize {
        self.rx.recv_many(buffer, limit).await
    }
}

/// One event name's stream, each event's first argument deserialized: see [`Socket::on`]. A
/// [`futures_util::Stream`], or call [`Typed::recv`].
pub struct Typed<T> {
    rx: Consumer<Event>,
    _type: std::marker::PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Typed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Typed")
            .field("type", &std::any::type_name::<T>())
            .finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned> Typed<T> {
    /// The next event's first argument; an `Err` when it does not deserialize into `T` (the
    /// stream goes on); `None` at the end.
    pub async fn recv(&mut self) -> Option<Result<T, serde_json::Error>> {
        std::future::poll_fn(|cx| self.poll(cx)).await
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, serde_json::Error>>> {
        loop {
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Event::Message(event))) => return Poll::Ready(Some(event.arg())),
                Poll::Ready(Some(_)) => continue,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<T: DeserializeOwned> futures_util::Stream for Typed<T> {
    type Item = Result<T, serde_json::Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll(cx)
    }
}

impl futures_util::Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}

/// Events of one pass of the driver are handed to a namespace's stream at once, in batches of at
/// most this many.
const PASS_BATCH: usize = 64;

/// The batches a [`Typed`] stream holds (about 256 events).
const EVENT_BATCHES: usize = 4;

impl Client {
    /// Starts the client and returns at once: the Engine.IO connection and the socket.io
    /// driver run in tasks of their own, spawned on the current tokio runtime (`tokio::spawn`;
    /// current-thread or multi-threaded). Join namespaces with [`Client::socket`]; emits made
    /// before the connection is up wait for it.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime. From synchronous code, enter one first
    /// (`runtime.block_on(async { Client::new(config) })` or `let _guard = runtime.enter();`).
    pub fn new(config: ClientConfig) -> Self {
        let (engine, engine_events) = engineio_client::Client::connect(config.engine);
        let (commands, command_rx) = mpsc::channel(1024);
        let connection = Connection::new(config.outbox_capacity, config.max_attachments);
        let driver = Driver {
            connection,
            engine: engine.clone(),
            sockets: Sockets::default(),
            listeners: Vec::new(),
            acks: HashMap::new(),
            self_commands: commands.downgrade(),
        };
        tokio::spawn(driver.run(engine_events, command_rx));
        Self {
            commands,
            engine,
            event_capacity: config.event_capacity,
        }
    }

    /// Joins `namespace` (`"/"` for the main one) with `auth`, and returns the socket to emit
    /// into and the namespace's event stream. Emits made before the server accepts are buffered
    /// and sent, in order, once it does.
    ///
    /// ```no_run
    /// # async fn demo(client: socketio_v5::Client) -> Result<(), socketio_v5::Error> {
    /// use socketio_v5::{Auth, Event};
    /// let (_admin, mut events) = client
    ///     .socket("/admin", Auth::Static(serde_json::json!({"token": "s3cret"})))
    ///     .await?;
    /// match events.recv().await {
    ///     Some(Event::Connect { sid, .. }) => println!("in /admin as {sid}"),
    ///     Some(Event::ConnectError { message, .. }) => eprintln!("refused: {message}"),
    ///     _ => {}
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn socket(&self, namespace: &str, auth: Auth) -> Result<(Socket, Events), Error> {
        let namespace: Arc<str> = if namespace.starts_with('/') {
            namespace.into()
        } else {
            format!("/{namespace}").into()
        };
        let (tx, rx) = queue::channel(self.event_capacity.div_ceil(PASS_BATCH).max(1));
        self.commands
            .send(Command::Join {
                namespace: namespace.clone(),
                auth,
                events: tx,
            })
            .await
            .map_err(|_| Error::Closed)?;
        Ok((
            Socket {
                namespace,
                commands: self.commands.clone(),
            },
            Events { rx },
        ))
    }

    /// The Engine.IO connection state (connected, transport, last error) as a `watch`.
    pub fn state(&self) -> tokio::sync::watch::Receiver<engineio_client::ConnectionState> {
        self.engine.state()
    }

    /// Closes the connection and stops reconnecting; every namespace's stream ends.
    pub fn close(&self) {
        self.engine.close();
    }
}

/// Arguments of an emit: a tuple (`()` for none) or a `Vec`. Each element becomes one argument.
pub trait Args: Serialize {}
impl Args for () {}
impl<T: Serialize> Args for Vec<T> {}
macro_rules! args_tuple {
    ($($t:ident),+) => { impl<$($t: Serialize),+> Args for ($($t,)+) {} };
}
args_tuple!(A);
args_tuple!(A, B);
args_tuple!(A, B, C);
args_tuple!(A, B, C, D);
args_tuple!(A, B, C, D, E);
args_tuple!(A, B, C, D, E, F);

/// `["event", args...]` from an event name and a tuple of arguments.
fn event_array<A: Args>(event: &str, args: &A) -> Result<(String, Vec<Bytes>), serde_json::Error> {
    let (args_json, attachments) = serialize_with_attachments(args)?;
    let name = serde_json::to_string(event)?;
    let json = match args_json.as_str() {
        "null" | "[]" => format!("[{name}]"),
        other => match other.strip_prefix('[') {
            Some(rest) => format!("[{name},{rest}"),
            None => format!("[{name},{other}]"),
        },
    };
    Ok((json, attachments))
}

impl Socket {
    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Emits `event` with `args` (a tuple: `("a", 1)`, `(data,)`, or `()`), without an ack.
    /// Buffered while the namespace connects; refused for reserved names.
    ///
    /// ```no_run
    /// # async fn demo(socket: socketio_v5::Socket) -> Result<(), socketio_v5::Error> {
    /// #[derive(serde::Serialize)]
    /// struct Shot { id: u64, name: String }
    /// socket.emit("ping", ()).await?; // ["ping"]
    /// socket.emit("select", ("profile-7", 9.0)).await?; // ["select","profile-7",9.0]
    /// socket.emit("saved", (Shot { id: 1, name: "Classic".into() },)).await?;
    /// // Bytes go as binary attachments.
    /// let photo = socketio_v5::Binary::from(vec![0xff, 0xd8, 0xff]);
    /// socket.emit("photo", ("cup.jpg", photo)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn emit<A: Args>(&self, event: &str, args: A) -> Result<(), Error> {
        self.send_emit(event, &args, None).await
    }

    /// Emits and waits for the server's answer, deserialized into `T` (a tuple of the answer's
    /// arguments), at most `timeout`.
    ///
    /// ```no_run
    /// # async fn demo(socket: socketio_v5::Socket) -> Result<(), socketio_v5::Error> {
    /// use std::time::Duration;
    /// use socketio_v5::{AckError, Error};
    /// match socket
    ///     .emit_with_ack::<_, (bool, String)>("start", ("profile-7",), Duration::from_secs(2))
    ///     .await
    /// {
    ///     Ok((true, _)) => println!("started"),
    ///     Ok((false, why)) => eprintln!("the machine refused: {why}"),
    ///     Err(Error::Ack(AckError::Timeout)) => eprintln!("no answer within 2 s"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn emit_with_ack<A: Args, T: DeserializeOwned>(
        &self,
        event: &str,
        args: A,
        timeout: Duration,
    ) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.send_emit(event, &args, Some((timeout, tx))).await?;
        let message = rx.await.map_err(|_| Error::Closed)??;
        Ok(with_attachments(&message.attachments, || {
            message.packet.args()
        })?)
    }

    async fn send_emit<A: Args>(
        &self,
        event: &str,
        args: &A,
        ack: Option<(Duration, AckSender)>,
    ) -> Result<(), Error> {
        if RESERVED_EVENTS.contains(&event) {
            return Err(EmitError::Reserved(event.to_owned()).into());
        }
        let (json, attachments) = event_array(event, args)?;
        let (done, result) = oneshot::channel();
        self.commands
            .send(Command::Emit {
                namespace: self.namespace.clone(),
                event: event.to_owned(),
                json,
                attachments,
                ack,
                done,
            })
            .await
            .map_err(|_| Error::Closed)?;
        result
            .await
            .map_err(|_| Error::Closed)?
            .map_err(Error::from)
    }

    /// The events named `event` in this namespace, each one's first argument deserialized
    /// into `T`: the common case of a server that emits `status` and `sensors` objects.
    ///
    /// From the moment the driver takes the call, events of that name go to the returned stream
    /// instead of the namespace's [`Events`]; every other event, and the namespace's own
    /// `Connect` and `Disconnect`, stay there. A second `on` for the same name replaces the
    /// first. The stream ends when the namespace is left or refused, or the client closed;
    /// dropping it sends that name's events back to [`Events`]. A full stream holds the
    /// connection, as [`Events`] does (backpressure, nothing dropped).
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), socketio_v5::Error> {
    /// #[derive(serde::Deserialize)]
    /// struct Status { state: String, pressure: f64 }
    ///
    /// let client = socketio_v5::Client::new(socketio_v5::ClientConfig::new("http://127.0.0.1:8080")?);
    /// let (socket, _events) = client.socket("/", socketio_v5::Auth::None).await?;
    /// let mut status = socket.on::<Status>("status").await?;
    /// while let Some(status) = status.recv().await {
    ///     match status {
    ///         Ok(status) => println!("{} at {} bar", status.state, status.pressure),
    ///         Err(e) => eprintln!("a status event of another shape: {e}"),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn on<T: DeserializeOwned>(&self, event: &str) -> Result<Typed<T>, Error> {
        let (tx, rx) = queue::channel(EVENT_BATCHES);
        self.commands
            .send(Command::On {
                namespace: self.namespace.clone(),
                event: event.into(),
                events: tx,
            })
            .await
            .map_err(|_| Error::Closed)?;
        Ok(Typed {
            rx,
            _type: std::marker::PhantomData,
        })
    }

    /// Leaves the namespace (DISCONNECT); its stream ends.
    pub async fn disconnect(&self) {
        let _ = self
            .commands
            .send(Command::Leave {
                namespace: self.namespace.clone(),
            })
            .await;
    }
}

/// The namespaces joined, with their auth and their event streams. A short list: a client has a
/// few namespaces, and a lookup per event must cost less than hashing the name.
#[derive(Default)]
struct Sockets(Vec<(Arc<str>, Auth, Producer<Event>)>);

/// The streams of one event name ([`Socket::on`]): namespace, event name, stream.
type Listeners = Vec<(Arc<str>, Arc<str>, Producer<Event>)>;

impl Sockets {
    fn get_mut(&mut self, namespace: &str) -> Option<&mut Producer<Event>> {
        self.0
            .iter_mut()
            .find(|(name, _, _)| name.as_ref() == namespace)
            .map(|(_, _, tx)| tx)
    }

    fn remove(&mut self, namespace: &str) -> Option<Producer<Event>> {
        let at = self
            .0
            .iter()
            .position(|(name, _, _)| name.as_ref() == namespace)?;
        Some(self.0.swap_remove(at).2)
    }

    fn insert(&mut self, namespace: Arc<str>, auth: Auth, events: Producer<Event>) {
        self.remove(&namespace);
        self.0.push((namespace, auth, events));
    }
}

/// The driver: engine events and commands in, connection outputs out. One task runs it
/// ([`Driver::run`]); each kind of input has its `on_*` method, and [`Driver::do_outputs`] does
/// what the pure [`Connection`] says after each.
struct Driver {
    connection: Connection,
    engine: engineio_client::Client,
    sockets: Sockets,
    listeners: Listeners,
    acks: HashMap<(Arc<str>, u64), AckSender>,
    /// Lets a received event answer its ack through the driver (never keeps it alive).
    self_commands: mpsc::WeakSender<Command>,
}

/// What the driver loop does next.
enum Flow {
    Continue,
    Stop,
}

impl Driver {
    async fn run(
        mut self,
        mut engine_events: engineio_client::Events,
        mut commands: mpsc::Receiver<Command>,
    ) {
        let mut deadline = Deadline::new();
        let mut batch: Vec<EngineEvent> = Vec::with_capacity(64);
        loop {
            self.do_outputs().await;
            deadline.set(self.connection.poll_timeout());
            let flow = tokio::select! {
                received = engine_events.recv_many(&mut batch, 64) => {
                    self.on_engine_events(received, &mut batch).await
                }
                command = commands.recv() => self.on_command(command).await,
                () = deadline.expired() => {
                    self.connection.handle_timeout(std::time::Instant::now());
                    Flow::Continue
                }
            };
            if let Flow::Stop = flow {
                return;
            }
        }
    }

    /// What the engine delivered since the last pass (`received` of them; none: it is gone).
    async fn on_engine_events(&mut self, received: usize, batch: &mut Vec<EngineEvent>) -> Flow {
        if received == 0 {
            self.connection.handle_engine_closed("the client closed");
            while let Some(output) = self.connection.poll_output() {
                if let Output::Ack {
                    namespace,
                    id,
                    result,
                } = output
                    && let Some(tx) = self.acks.remove(&(Arc::from(namespace.as_str()), id))
                {
                    let _ = tx.send(result);
                }
            }
            return Flow::Stop;
        }
        // Everything already waiting is decoded in one pass, in order.
        let now = std::time::Instant::now();
        for event in batch.drain(..) {
            match event {
                EngineEvent::Open { .. } => {
                    for (namespace, auth, _) in &self.sockets.0 {
                        let json = resolve_auth(auth).await.map(|v| v.to_string());
                        self.connection
                            .set_auth(namespace, json.as_deref().and_then(|j| Json::parse(j).ok()));
                    }
                    self.connection.handle_engine_opened();
                }
                EngineEvent::Message(Payload::Text(text)) => self.connection.handle_text(now, text),
                EngineEvent::Message(Payload::Binary(bytes)) => {
                    self.connection.handle_binary(now, bytes)
                }
                EngineEvent::Close { reason } => {
                    self.connection.handle_engine_closed(&reason.to_string())
                }
                _ => {}
            }
        }
        Flow::Continue
    }

    /// A command from a [`Client`] or a [`Socket`] (none: every handle is gone).
    async fn on_command(&mut self, command: Option<Command>) -> Flow {
        match command {
            Some(Command::Join {
                namespace,
                auth,
                events,
            }) => {
                let json = resolve_auth(&auth).await.map(|v| v.to_string());
                self.sockets.insert(namespace.clone(), auth, events);
                self.connection.connect(
                    &namespace,
                    json.as_deref().and_then(|j| Json::parse(j).ok()),
                );
            }
            Some(Command::Emit {
                namespace,
                event,
                json,
                attachments,
                ack,
                done,
            }) => {
                let now = std::time::Instant::now();
                let (timeout, reply) = match ack {
                    Some((timeout, reply)) => (Some(Some(now + timeout)), Some(reply)),
                    None => (None, None),
                };
                match self
                    .connection
                    .emit(now, &namespace, &event, json, attachments, timeout)
                {
                    Ok(id) => {
                        if let (Some(id), Some(reply)) = (id, reply) {
                            self.acks.insert((namespace, id), reply);
                        }
                        let _ = done.send(Ok(()));
                    }
                    Err(e) => {
                        let _ = done.send(Err(e));
                    }
                }
            }
            Some(Command::Ack {
                namespace,
                id,
                json,
                attachments,
            }) => self.connection.ack(&namespace, id, &json, attachments),
            Some(Command::Leave { namespace }) => self.connection.disconnect(&namespace),
            Some(Command::On {
                namespace,
                event,
                events,
            }) => {
                self.listeners
                    .retain(|(n, e, _)| !(n == &namespace && e == &event));
                self.listeners.push((namespace, event, events));
            }
            None => {
                self.engine.close();
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    /// Does what the connection says, then hands each namespace what this pass produced.
    async fn do_outputs(&mut self) {
        while let Some(output) = self.connection.poll_output() {
            self.on_output(output).await;
        }
        // Each namespace gets what this pass produced at once. Backpressure: a full stream holds
        // the driver, which stops taking engine events, which stops reading the socket.
        let listeners = self.listeners.iter_mut().map(|(_, _, tx)| tx);
        for tx in self
            .sockets
            .0
            .iter_mut()
            .map(|(_, _, tx)| tx)
            .chain(listeners)
        {
            if tx.try_flush() == Ok(false) {
                let _ = tx.flush().await;
            }
        }
        // A stream whose consumer is gone takes nothing more.
        self.listeners.retain(|(_, _, tx)| !tx.is_closed());
    }

    async fn on_output(&mut self, output: Output) {
        let sockets = &mut self.sockets;
        match output {
            Output::Send { text, attachments } => {
                if self.engine.send(text).await.is_err() {
                    return;
                }
                for bytes in attachments {
                    let _ = self.engine.send(Payload::Binary(bytes)).await;
                }
            }
            Output::Connected {
                namespace,
                sid,
                recovered,
            } => {
                if let Some(tx) = sockets.get_mut(&namespace) {
                    tx.push(Event::Connect { sid, recovered });
                }
            }
            Output::ConnectError {
                namespace,
                message,
                data,
            } => {
                // The server's words, on one line (`{:?}` escapes line breaks).
                tracing::warn!(%namespace, "namespace refused: {message:?}");
                self.listeners.retain(|(n, _, _)| n.as_ref() != &*namespace);
                if let Some(mut tx) = sockets.remove(&namespace) {
                    let _ = tx.send(Event::ConnectError { message, data }).await;
                }
            }
            Output::Disconnected { namespace, reason } => {
                let terminal = !matches!(reason, DisconnectReason::TransportClose(_));
                if terminal {
                    self.listeners.retain(|(n, _, _)| n.as_ref() != &*namespace);
                    if let Some(mut tx) = sockets.remove(&namespace) {
                        let _ = tx.send(Event::Disconnect(reason)).await;
                    }
                } else if let Some(tx) = sockets.get_mut(&namespace) {
                    tx.push(Event::Disconnect(reason));
                }
            }
            Output::Event { namespace, message } => {
                let name = message.packet.event_name();
                let name = name.as_ref().and_then(|n| n.as_str());
                // A dropped stream's events go back to the namespace's stream at once.
                let listener = self.listeners.iter_mut().find(|(n, e, tx)| {
                    n.as_ref() == &*namespace && Some(e.as_ref()) == name && !tx.is_closed()
                });
                let tx = match listener {
                    Some((_, _, tx)) => tx,
                    None => match sockets.get_mut(&namespace) {
                        Some(tx) => tx,
                        None => return,
                    },
                };
                let reply = message.packet.id().and_then(|id| {
                    self.self_commands.upgrade().map(|commands| AckReply {
                        namespace: namespace.clone(),
                        id,
                        commands,
                    })
                });
                tx.push(Event::Message(ReceivedEvent { message, reply }));
            }
            Output::Ack {
                namespace,
                id,
                result,
            } => {
                if let Some(tx) = self.acks.remove(&(Arc::from(namespace.as_str()), id)) {
                    let _ = tx.send(result);
                }
            }
            Output::ProtocolError(why) => {
                tracing::warn!("restarting the connection: the server broke socket.io: {why}");
                // The engine opens a new session; the namespaces reconnect with it.
                self.engine.restart(why.clone()).await;
                self.connection.handle_engine_closed(&why);
            }
        }
    }
}

async fn resolve_auth(auth: &Auth) -> Option<serde_json::Value> {
    match auth {
        Auth::None => None,
        Auth::Static(v) => Some(v.clone()),
        Auth::Provider(p) => p().await,
    }
}
