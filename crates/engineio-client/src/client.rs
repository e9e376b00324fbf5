//! The application's handle and its event stream.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::driver::{self, Command};
use crate::error::Error;
use crate::event::{ConnectionState, Event, Payload};
use crate::queue;

/// A handle to a running Engine.IO client. Cheap to clone; the connection closes when
/// [`Client::close`] is called, the config's cancel token fires, or every handle is dropped.
///
/// Against an echo server (engineioxide here, in the same process; any Engine.IO v4 server
/// does): connect, wait for the session, send, and read the answer.
///
/// ```
/// # use std::sync::Arc;
/// # use engineioxide::{handler::EngineIoHandler, layer::EngineIoLayer, DisconnectReason, Socket, Str};
/// # #[derive(Debug, Clone)]
/// # struct Echo;
/// # impl EngineIoHandler for Echo {
/// #     type Data = ();
/// #     fn on_connect(self: Arc<Self>, _: Arc<Socket<()>>) {}
/// #     fn on_disconnect(&self, _: Arc<Socket<()>>, _: DisconnectReason) {}
/// #     fn on_message(self: &Arc<Self>, msg: Str, socket: Arc<Socket<()>>) { socket.emit(msg).ok(); }
/// #     fn on_binary(self: &Arc<Self>, data: bytes::Bytes, socket: Arc<Socket<()>>) { socket.emit_binary(data).ok(); }
/// # }
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), engineio_client::Error> {
/// # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// # let url = format!("http://{}", listener.local_addr().unwrap());
/// # let app = axum::Router::new().layer(EngineIoLayer::new(Arc::new(Echo)));
/// # tokio::spawn(async move { axum::serve(listener, app).await });
/// use engineio_client::{Client, Config, Event, Payload};
///
/// let (client, mut events) = Client::connect(Config::new(&url)?);
/// while let Some(event) = events.recv().await {
///     match event {
///         Event::Open { .. } => client.send("hello").await?,
///         Event::Message(Payload::Text(text)) => {
///             assert_eq!(text.as_str(), "hello");
///             break;
///         }
///         _ => {}
///     }
/// }
/// client.close();
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    state: watch::Receiver<ConnectionState>,
    cancel: tokio_util::sync::CancellationToken,
}

/// The events of a client, in order. A [`futures_util::Stream`], or call [`Events::recv`].
#[derive(Debug)]
pub struct Events {
    rx: queue::Consumer<Event>,
}

impl Client {
    /// Starts the client and returns at once: the connection runs in a task of its own,
    /// spawned on the current tokio runtime (`tokio::spawn`; a current-thread runtime works as
    /// well as a multi-threaded one). Nothing is connected yet when this returns: the first
    /// event is [`Event::Open`] once a session is open, or [`Event::Reconnecting`] when an
    /// attempt fails.
    ///
    /// The task ends when [`Client::close`] is called, the config's cancel token fires, every
    /// [`Client`] handle and the [`Events`] are dropped, or reconnection gives up.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime (there is nothing to spawn the task on). From synchronous code,
    /// enter one first: `runtime.block_on(async { Client::connect(config) })`, or
    /// `let _guard = runtime.enter();`.
    ///
    /// ```
    /// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
    /// use engineio_client::{Client, Config};
    /// let (client, _events) = Client::connect(Config::new("http://127.0.0.1:9").unwrap());
    /// assert!(!client.state().borrow().connected);
    /// client.close();
    /// # });
    /// ```
    pub fn connect(config: Config) -> (Client, Events) {
        let (commands, command_rx) = mpsc::channel(config.outgoing_capacity);
        let (events, rx) = queue::channel(driver::batches_for(config.event_capacity));
        let (state_tx, state) = watch::channel(ConnectionState {
            connected: false,
            transport: None,
            sid: None,
            last_connect: None,
            last_error: None,
            url: config.url.to_string(),
            attempt: 0,
        });
        let cancel = config.cancel.clone();
        tokio::spawn(driver::run(config, command_rx, events, state_tx));
        (
            Client {
                commands,
                state,
                cancel,
            },
            Events { rx },
        )
    }

    /// Sends a message on the open session. Waits only when the outgoing queue is full.
    ///
    /// Fails with [`Error::NotConnected`] when no session is open. A message queued just as the
    /// session ends is dropped with it (at most once): layers that must not lose a message, like
    /// socket.io acks, retry above this one.
    ///
    /// ```no_run
    /// # async fn demo(client: engineio_client::Client) -> Result<(), engineio_client::Error> {
    /// client.send("a text message").await?;
    /// client.send(vec![0x01, 0x02, 0x03]).await?; // binary
    /// match client.send("later").await {
    ///     Err(engineio_client::Error::NotConnected) => { /* keep it for the next session */ }
    ///     other => other?,
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn send(&self, payload: impl Into<Payload>) -> Result<(), Error> {
        if !self.state.borrow().connected {
            return Err(Error::NotConnected);
        }
        self.commands
            .send(Command::Send(payload.into()))
            .await
            .map_err(|_| Error::NotConnected)
    }

    /// Ends the current session as broken (a layer above found the server's data invalid); the
    /// client reconnects as after any lost session.
    pub async fn restart(&self, why: String) {
        let _ = self.commands.send(Command::Restart(why)).await;
    }

    /// The connection state, to read now or to watch for changes.
    ///
    /// ```no_run
    /// # async fn demo(client: engineio_client::Client) {
    /// let mut state = client.state();
    /// // Wait until a session is open (or the client is dropped).
    /// let _ = state.wait_for(|s| s.connected).await;
    /// println!("connected on {:?} as {:?}", state.borrow().transport, state.borrow().sid);
    /// # }
    /// ```
    pub fn state(&self) -> watch::Receiver<ConnectionState> {
        self.state.clone()
    }

    /// Closes the session (a long-polling session sends `1` first) and stops reconnecting. The
    /// event stream then ends.
    pub fn close(&self) {
        self.cancel.cancel();
    }
}

impl Events {
    /// The next event; `None` once the client is closed or gave up.
    pub async fn recv(&mut self) -> Option<Event> {
        self.rx.recv().await
    }

    /// Waits for at least one event, then moves up to `limit` waiting events into `buffer`.
    /// Returns how many; 0 once the client is closed or gave up.
    ///
    /// One wake-up for many events, for consumers of high-rate streams:
    ///
    /// ```no_run
    /// # async fn demo(mut events: engineio_client::Events) {
    /// let mut batch = Vec::with_capacity(256);
    /// while events.recv_many(&mut batch, 256).await > 0 {
    ///     for event in batch.drain(..) {
    ///         println!("{event:?}");
    ///     }
    /// }
    /// # }
    /// ```
    pub async fn recv_many(&mut self, buffer: &mut Vec<Event>, limit: usize) -> usize {
        self.rx.recv_many(buffer, limit).await
    }

    /// The next event if one is already waiting.
    pub fn try_recv(&mut self) -> Option<Event> {
        self.rx.try_recv()
    }
}

impl futures_util::Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        self.rx.poll_recv(cx)
    }
}
