//! The tokio driver: connection attempts with backoff, and for each session a loop that feeds the
//! pure [`Session`] what the transports read and does what it asks.
//!
//! Transport IO runs in small tasks that report into one channel (`Io`): a WebSocket reader per
//! socket, a GET loop and one POST at a time for long-polling. The loop owns the WebSocket
//! writers. Everything the session decides is in `engineio-codec`; this file only moves bytes.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use engineio_codec::session::{
    CloseReason, Control, Output, Session, SessionConfig, Transport, Via,
};
use engineio_codec::{Data, Handshake, Packet};
use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use http::HeaderMap;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::config::{Config, TransportMode};
use crate::deadline::Deadline;
use crate::error::Error;
use crate::event::{ConnectionState, Event, Lost, Payload};
use crate::queue::Producer;
use crate::transport::{self, Polling, Ws};
use engineio_codec::Text;

/// What the application asks of the driver.
#[derive(Debug)]
pub(crate) enum Command {
    Send(Payload),
    /// End the session as a protocol error (the client reconnects).
    Restart(String),
}

/// What the transport tasks report.
#[derive(Debug)]
enum Io {
    /// The probe WebSocket opened.
    ProbeOpen(Box<Ws>),
    /// The probe WebSocket could not be opened.
    ProbeFailed(String),
    /// A long-polling GET answered.
    Body(Bytes),
    /// A long-polling GET failed.
    GetFailed(Error),
    /// The GET loop stopped for a pause, with no request in flight.
    GetPaused,
    /// The POST in flight finished.
    Posted(Result<(), Error>),
}

/// At most this many frames are read from the WebSocket in one pass of the loop after the
/// first; what one pass read reaches the consumer as one batch.
const READ_BATCH: usize = 64;

/// How many batches hold about `capacity` events.
pub(crate) fn batches_for(capacity: usize) -> usize {
    capacity.div_ceil(READ_BATCH + 1).max(1)
}

/// Runs the client until it is closed or gives up.
pub(crate) async fn run(
    config: Config,
    mut commands: mpsc::Receiver<Command>,
    mut events: Producer<Event>,
    state: watch::Sender<ConnectionState>,
) {
    let mut failures: u32 = 0;
    loop {
        let attempt = async {
            let headers = headers(&config).await?;
            let opening = open(&config, headers);
            match tokio::time::timeout(config.open_timeout, opening).await {
                Ok(result) => result,
                Err(_) => Err(Error::OpenTimeout {
                    url: config.url.to_string(),
                    timeout: config.open_timeout,
                }),
            }
        };
        let outcome = tokio::select! {
            outcome = attempt => outcome,
            () = config.cancel.cancelled() => break,
        };
        let error = match outcome {
            Ok(opened) => {
                let started = Instant::now();
                let mut connection = Connection::new(&config, opened, &mut events, &state);
                let reason = connection.run(&mut commands).await;
                drop(connection);
                state.send_modify(|s| {
                    s.connected = false;
                    s.transport = None;
                    s.sid = None;
                });
                if started.elapsed() >= config.reconnect.stable_after {
                    failures = 0;
                }
                let closed_by_us = reason == CloseReason::ClientClose;
                if events
                    .send(Event::Close {
                        reason: reason.clone(),
                    })
                    .await
                    .is_err()
                    || closed_by_us
                {
                    break;
                }
                Lost::Closed(reason)
            }
            Err(e) => {
                tracing::warn!(url = %config.url, "connection attempt failed: {e}");
                Lost::Failed(Arc::new(e))
            }
        };
        state.send_modify(|s| s.last_error = Some(error.to_string()));
        if !config.reconnect.enabled
            || config
                .reconnect
                .max_attempts
                .is_some_and(|max| failures >= max)
        {
            tracing::warn!(url = %config.url, "giving up after {failures} reconnect attempts: {error}");
            break;
        }
        let delay = config
            .reconnect
            .backoff
            .delay(failures, fastrand::f64(), fastrand::f64());
        failures = failures.saturating_add(1);
        state.send_modify(|s| s.attempt = failures);
        tracing::info!(url = %config.url, attempt = failures, ?delay, "reconnecting: {error}");
        if events
            .send(Event::Reconnecting {
                attempt: failures,
                delay,
                cause: error,
            })
            .await
            .is_err()
        {
            break;
        }
        let wait = tokio::time::sleep(delay);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                () = &mut wait => break,
                () = config.cancel.cancelled() => return,
                command = commands.recv() => match command {
                    // Messages for a session that no longer exists are dropped.
                    Some(Command::Send(_) | Command::Restart(_)) => {}
                    None => return,
                },
            }
        }
    }
}

async fn headers(config: &Config) -> Result<HeaderMap, Error> {
    let mut headers = config.headers.clone();
    if let Some(provider) = &config.header_provider {
        let extra = provider().await.map_err(Error::Headers)?;
        for (name, value) in extra {
            if let Some(name) = name {
                headers.append(name, value);
            }
        }
    }
    Ok(headers)
}

/// A session whose handshake arrived.
struct Opened {
    session: Session,
    transport: Active,
    /// The rest of the handshake's long-polling payload, after the OPEN packet.
    leftover: Bytes,
    headers: HeaderMap,
}

enum Active {
    WebSocket(Box<Ws>),
    Polling(Box<Polling>),
}

async fn open(config: &Config, headers: HeaderMap) -> Result<Opened, Error> {
    let now = Instant::now().into_std();
    let session_config = SessionConfig {
        transport: match config.transport {
            TransportMode::WebSocket => Transport::WebSocket,
            _ => Transport::Polling,
        },
        upgrade: config.transport == TransportMode::PollingThenUpgrade,
        open_timeout: config.open_timeout,
        ..SessionConfig::default()
    };
    let mut session = Session::new(now, session_config.clone());
    match session_config.transport {
        Transport::WebSocket => {
            let mut ws = transport::websocket(config, &headers, None).await?;
            let first = ws.next().await;
            let url = || config.endpoint("websocket", None).to_string();
            let packet = match first {
                Some(Ok(Message::Text(text))) => match engineio_codec::decode_str(text.as_str())? {
                    Packet::Open(handshake) => Packet::Open(handshake),
                    other => {
                        return Err(Error::Handshake {
                            url: url(),
                            reason: format!("expected the open packet, got {other}"),
                        });
                    }
                },
                Some(Ok(other)) => {
                    return Err(Error::Handshake {
                        url: url(),
                        reason: format!("expected the open packet, got {other:?}"),
                    });
                }
                Some(Err(e)) => {
                    return Err(Error::WebSocket {
                        url: url(),
                        source: e.into(),
                    });
                }
                None => {
                    return Err(Error::Handshake {
                        url: url(),
                        reason: "the WebSocket closed before the handshake".to_owned(),
                    });
                }
            };
            session.handle_packet(now, packet);
            Ok(Opened {
                session,
                transport: Active::WebSocket(Box::new(ws)),
                leftover: Bytes::new(),
                headers,
            })
        }
        Transport::Polling => {
            let polling = Polling::new(config, headers.clone());
            let body = polling.get().await?;
            let first_len = body
                .iter()
                .position(|&b| b == engineio_codec::RECORD_SEPARATOR)
                .unwrap_or(body.len());
            let first = engineio_codec::decode_record(&body[..first_len])?;
            let Packet::Open(handshake) = first else {
                return Err(Error::Handshake {
                    url: config.endpoint("polling", None).to_string(),
                    reason: format!(
                        "expected the open packet, got {:?}",
                        String::from_utf8_lossy(&body[..body.len().min(100)])
                    ),
                });
            };
            let sid = handshake.sid.clone();
            session.handle_packet(now, Packet::Open(handshake));
            let leftover = body.slice((first_len + 1).min(body.len())..);
            Ok(Opened {
                session,
                transport: Active::Polling(Box::new(polling.with_sid(config, &sid))),
                leftover,
                headers,
            })
        }
    }
}

/// One open session and its transports.
struct Connection<'a> {
    config: &'a Config,
    /// Events for the consumer, collected during a pass and handed over at its end; while a
    /// batch waits for room the loop does not read (backpressure).
    events: &'a mut Producer<Event>,
    state: &'a watch::Sender<ConnectionState>,
    session: Session,
    headers: HeaderMap,
    io_tx: mpsc::Sender<Io>,
    io_rx: mpsc::Receiver<Io>,
    tasks: Vec<JoinHandle<()>>,
    /// The active WebSocket, read and written by the loop itself (no task hop per frame, no
    /// lock between a reading and a writing half); `ws_open` until its reading side ends.
    ws: Option<Ws>,
    ws_open: bool,
    /// Long-polling, while it is the active transport.
    polling: Option<PollingState>,
    /// The probe WebSocket, once open; `probe_open` until its reading side ends.
    probe: Option<Ws>,
    probe_open: bool,
    /// Control packets for the probe that wait for it to open.
    probe_outbox: Vec<Control>,
    /// The rest of the handshake's payload, handled first.
    leftover: Bytes,
}

struct PollingState {
    polling: Polling,
    /// Encoded records waiting for a POST.
    outbox: VecDeque<Vec<u8>>,
    posting: bool,
    get_running: bool,
    pause: watch::Sender<bool>,
    paused: bool,
}

impl<'a> Connection<'a> {
    fn new(
        config: &'a Config,
        opened: Opened,
        events: &'a mut Producer<Event>,
        state: &'a watch::Sender<ConnectionState>,
    ) -> Self {
        let (io_tx, io_rx) = mpsc::channel(64);
        let mut connection = Self {
            config,
            events,
            state,
            session: opened.session,
            headers: opened.headers,
            io_tx,
            io_rx,
            tasks: Vec::new(),
            ws: None,
            ws_open: false,
            polling: None,
            probe: None,
            probe_open: false,
            probe_outbox: Vec::new(),
            leftover: opened.leftover,
        };
        match opened.transport {
            Active::WebSocket(ws) => {
                connection.ws = Some(*ws);
                connection.ws_open = true;
            }
            Active::Polling(polling) => {
                let (pause, _) = watch::channel(false);
                connection.polling = Some(PollingState {
                    polling: *polling,
                    outbox: VecDeque::new(),
                    posting: false,
                    get_running: false,
                    pause,
                    paused: false,
                });
                connection.start_get_loop();
            }
        }
        connection
    }

    fn start_get_loop(&mut self) {
        let Some(p) = &mut self.polling else { return };
        if p.get_running {
            return;
        }
        p.get_running = true;
        let _ = p.pause.send(false);
        let polling = p.polling.clone();
        let mut pause = p.pause.subscribe();
        let tx = self.io_tx.clone();
        self.tasks.push(tokio::spawn(async move {
            loop {
                if *pause.borrow_and_update() {
                    let _ = tx.send(Io::GetPaused).await;
                    return;
                }
                let report = match polling.get().await {
                    Ok(body) => Io::Body(body),
                    Err(e) => {
                        let _ = tx.send(Io::GetFailed(e)).await;
                        return;
                    }
                };
                if tx.send(report).await.is_err() {
                    return;
                }
            }
        }));
    }

    async fn run(&mut self, commands: &mut mpsc::Receiver<Command>) -> CloseReason {
        let leftover = std::mem::take(&mut self.leftover);
        if !leftover.is_empty() {
            self.body(leftover);
        }
        let mut deadline = Deadline::new();
        loop {
            if let Some(reason) = self.drain_outputs().await {
                return reason;
            }
            self.maybe_post();
            deadline.set(self.session.poll_timeout());
            let now = || Instant::now().into_std();
            // Hand over what this pass produced; if there is no room, stop reading until there is.
            if self.events.try_flush().is_err() {
                // The consumer is gone: nobody listens, so close.
                self.session.close(now());
                continue;
            }
            let reading = !self.events.has_pending();
            tokio::select! {
                biased;
                () = self.config.cancel.cancelled() => self.session.close(now()),
                flushed = self.events.flush(), if !reading => {
                    if flushed.is_err() {
                        self.session.close(now());
                    }
                }
                command = commands.recv() => match command {
                    Some(Command::Send(payload)) => self.write(payload).await,
                    Some(Command::Restart(why)) => self.session.handle_protocol_error(now(), why),
                    None => self.session.close(now()),
                },
                frame = next_frame(&mut self.ws), if reading && self.ws_open => {
                    self.active_frame(frame);
                    // Take what is already buffered before going round the loop again.
                    for _ in 0..READ_BATCH {
                        if !self.ws_open {
                            break;
                        }
                        match next_frame(&mut self.ws).now_or_never() {
                            Some(frame) => self.active_frame(frame),
                            None => break,
                        }
                    }
                }
                frame = next_frame(&mut self.probe), if self.probe_open => {
                    match frame {
                        Some(Ok(message)) => self.frame(Via::Probe, message),
                        _ => {
                            self.probe_open = false;
                            self.session.handle_transport_closed(now(), Via::Probe);
                        }
                    }
                }
                io = self.io_rx.recv(), if reading => {
                    // The loop holds a sender, so the channel never closes.
                    if let Some(io) = io {
                        self.handle_io(io).await;
                    }
                }
                () = deadline.expired() => self.session.handle_timeout(now()),
            }
        }
    }

    /// Feeds one decoded packet to the session; a text message's data is taken from `text`.
    fn input(&mut self, packet: Packet<'_>, text: Option<Text>) {
        let now = Instant::now().into_std();
        match self.session.handle_packet(now, packet) {
            Some(Data::Text(_)) => {
                if let Some(text) = text {
                    self.deliver(Event::Message(Payload::Text(text)));
                }
            }
            Some(Data::Binary(bytes)) => {
                self.deliver(Event::Message(Payload::Binary(Bytes::from(
                    bytes.into_owned(),
                ))));
            }
            None => {}
        }
    }

    /// Collects an event for the consumer; the loop hands the pass's events over at once.
    fn deliver(&mut self, event: Event) {
        self.events.push(event);
    }

    async fn handle_io(&mut self, io: Io) {
        let now = Instant::now().into_std();
        match io {
            Io::ProbeOpen(ws) => {
                if self.session.is_upgrading() {
                    self.probe = Some(*ws);
                    self.probe_open = true;
                    for control in std::mem::take(&mut self.probe_outbox) {
                        self.send_probe(control).await;
                    }
                }
            }
            Io::ProbeFailed(why) => {
                tracing::info!("WebSocket upgrade not possible, staying on long-polling: {why}");
                self.session.handle_transport_closed(now, Via::Probe);
            }
            Io::Body(body) => self.body(body),
            // A server that sends more than the client takes is one gone wrong: the session
            // ends saying so (the client reconnects with its backoff).
            Io::GetFailed(e @ Error::TooLarge { .. }) => {
                tracing::warn!("closing: {e}");
                self.session.handle_protocol_error(now, e.to_string());
            }
            Io::GetFailed(e) => {
                tracing::info!("long-polling GET failed: {e}");
                self.state
                    .send_modify(|s| s.last_error = Some(e.to_string()));
                self.session.handle_transport_closed(now, Via::Active);
            }
            Io::GetPaused => {
                let resume = self.polling.as_mut().is_some_and(|p| {
                    p.get_running = false;
                    !p.paused
                });
                if resume {
                    // The upgrade was abandoned while this GET finished: keep polling.
                    self.start_get_loop();
                }
                self.maybe_finish_pause();
            }
            Io::Posted(result) => {
                if let Some(p) = &mut self.polling {
                    p.posting = false;
                }
                if let Err(e) = result {
                    tracing::info!("long-polling POST failed: {e}");
                    self.state
                        .send_modify(|s| s.last_error = Some(e.to_string()));
                    self.session.handle_transport_closed(now, Via::Active);
                }
                self.maybe_finish_pause();
            }
        }
    }

    /// A frame, an error or the end of the active WebSocket.
    fn active_frame(
        &mut self,
        frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>,
    ) {
        match frame {
            Some(Ok(message)) => self.frame(Via::Active, message),
            Some(Err(tokio_tungstenite::tungstenite::Error::Capacity(e))) => {
                let why = format!(
                    "the server sent a WebSocket message over Config::max_payload ({}): {e}",
                    self.config.max_payload
                );
                tracing::warn!("closing: {why}");
                self.ws_open = false;
                self.session
                    .handle_protocol_error(Instant::now().into_std(), why);
            }
            Some(Err(e)) => {
                tracing::info!("WebSocket closed: {e}");
                self.ws_open = false;
                self.session
                    .handle_transport_closed(Instant::now().into_std(), Via::Active);
            }
            None => {
                self.ws_open = false;
                self.session
                    .handle_transport_closed(Instant::now().into_std(), Via::Active);
            }
        }
    }

    fn frame(&mut self, via: Via, message: Message) {
        // The hot path, a text message on an open session, needs neither the session nor the
        // clock: the session only tracks control packets.
        if via == Via::Active
            && self.session.is_open()
            && let Message::Text(text) = &message
            && text.as_str().starts_with('4')
        {
            // tungstenite checked the frame's UTF-8; the check again here costs ~1 % of an event.
            let data = Text::after_type_byte(Bytes::from(text.clone())).unwrap_or_default();
            self.deliver(Event::Message(Payload::Text(data)));
            return;
        }
        let now = Instant::now().into_std();
        match message {
            Message::Text(text) => match engineio_codec::decode_str(text.as_str()) {
                Ok(packet) => match via {
                    Via::Active => {
                        let is_text = matches!(packet, Packet::Message(Data::Text(_)));
                        let data = is_text
                            .then(|| Text::after_type_byte(Bytes::from(text.clone())))
                            .flatten();
                        self.input(packet, data);
                    }
                    Via::Probe => self.session.handle_probe_packet(now, &packet),
                },
                Err(e) => match via {
                    Via::Active => {
                        tracing::warn!("closing: the server sent an invalid packet: {e}");
                        self.session.handle_protocol_error(now, e.to_string());
                    }
                    Via::Probe => self.session.handle_transport_closed(now, Via::Probe),
                },
            },
            Message::Binary(bytes) => match via {
                Via::Active => self.deliver_binary(bytes),
                Via::Probe => self
                    .session
                    .handle_probe_packet(now, &engineio_codec::decode_binary(&bytes)),
            },
            Message::Close(_) => self.session.handle_transport_closed(now, via),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }

    fn deliver_binary(&mut self, bytes: Bytes) {
        // A binary frame is always a message (no type byte in v4).
        if self.session.is_open() {
            self.deliver(Event::Message(Payload::Binary(bytes)));
        }
    }

    fn body(&mut self, body: Bytes) {
        let now = Instant::now().into_std();
        let mut start = 0;
        for record in body.split(|&b| b == engineio_codec::RECORD_SEPARATOR) {
            let range = start..start + record.len();
            start = range.end + 1;
            match engineio_codec::decode_record(record) {
                Ok(packet) => {
                    let text = match &packet {
                        Packet::Message(Data::Text(_)) => {
                            Text::after_type_byte(body.slice(range.clone()))
                        }
                        _ => None,
                    };
                    self.input(packet, text);
                }
                Err(e) => {
                    tracing::warn!("closing: the server sent an invalid payload: {e}");
                    self.session.handle_protocol_error(now, e.to_string());
                    return;
                }
            }
        }
    }

    /// Queues or writes one application message.
    async fn write(&mut self, payload: Payload) {
        if !self.session.is_open() {
            tracing::debug!("dropping a message sent while no session is open");
            return;
        }
        let packet = match &payload {
            Payload::Text(t) => Packet::text(t.as_str()),
            Payload::Binary(b) => Packet::binary(b),
        };
        if self.session.is_writable()
            && let Some(sink) = &mut self.ws
        {
            let message = ws_message(&packet);
            if let Err(e) = sink.send(message).await {
                tracing::info!("WebSocket write failed: {e}");
                self.session
                    .handle_transport_closed(Instant::now().into_std(), Via::Active);
            }
            return;
        }
        if let Some(p) = &mut self.polling {
            let mut record = Vec::new();
            match engineio_codec::encode_record(&packet, &mut record) {
                Ok(()) => p.outbox.push_back(record),
                Err(e) => tracing::warn!("message not sent: {e}"),
            }
        }
    }

    /// Starts a POST with as many queued records as fit in `maxPayload`.
    fn maybe_post(&mut self) {
        let max = self
            .session
            .handshake()
            .and_then(|h| h.max_payload)
            .map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
        let writable = self.session.is_writable();
        let Some(p) = &mut self.polling else { return };
        if p.posting || p.outbox.is_empty() || !writable {
            return;
        }
        let mut body = Vec::new();
        while let Some(record) = p.outbox.front() {
            let extra = record.len() + usize::from(!body.is_empty());
            // Always send at least one record, even one larger than maxPayload.
            if !body.is_empty() && body.len() + extra > max {
                break;
            }
            if !body.is_empty() {
                body.push(engineio_codec::RECORD_SEPARATOR);
            }
            body.extend_from_slice(record);
            p.outbox.pop_front();
        }
        p.posting = true;
        let polling = p.polling.clone();
        let tx = self.io_tx.clone();
        self.tasks.push(tokio::spawn(async move {
            let result = polling.post(body.into()).await;
            let _ = tx.send(Io::Posted(result)).await;
        }));
    }

    /// Once paused polling has no request in flight, the session may upgrade.
    fn maybe_finish_pause(&mut self) {
        let Some(p) = &self.polling else { return };
        if p.paused && !p.get_running && !p.posting {
            self.session.polling_paused(Instant::now().into_std());
        }
    }

    async fn send_probe(&mut self, control: Control) {
        let Some(sink) = &mut self.probe else {
            self.probe_outbox.push(control);
            return;
        };
        if let Err(e) = sink.send(ws_message(&control.packet())).await {
            tracing::info!("probe WebSocket write failed: {e}");
            self.session
                .handle_transport_closed(Instant::now().into_std(), Via::Probe);
        }
    }

    /// Does what the session asks; returns the close reason once it is over.
    async fn drain_outputs(&mut self) -> Option<CloseReason> {
        while let Some(output) = self.session.poll_output() {
            match output {
                Output::Send {
                    via: Via::Active,
                    control,
                } => {
                    let packet = control.packet();
                    if let Some(sink) = &mut self.ws {
                        if let Err(e) = sink.send(ws_message(&packet)).await {
                            tracing::info!("WebSocket write failed: {e}");
                            self.session
                                .handle_transport_closed(Instant::now().into_std(), Via::Active);
                        }
                    } else if let Some(p) = &mut self.polling {
                        let mut record = Vec::new();
                        // Control packets carry no separator.
                        let _ = engineio_codec::encode_record(&packet, &mut record);
                        p.outbox.push_back(record);
                    }
                }
                Output::Send {
                    via: Via::Probe,
                    control,
                } => self.send_probe(control).await,
                Output::Opened(handshake) => self.opened(handshake),
                Output::StartProbe => self.start_probe(),
                Output::PausePolling => {
                    if let Some(p) = &mut self.polling {
                        p.paused = true;
                        let _ = p.pause.send(true);
                    }
                    self.maybe_finish_pause();
                }
                Output::Upgraded => self.upgraded().await,
                Output::UpgradeFailed(why) => {
                    tracing::info!("WebSocket upgrade abandoned, staying on long-polling: {why}");
                    if let Some(mut sink) = self.probe.take() {
                        let _ = sink.close(None).await;
                    }
                    self.probe_open = false;
                    self.probe_outbox.clear();
                    if let Some(p) = &mut self.polling {
                        p.paused = false;
                        // A GET loop that was told to pause and has not stopped yet goes on.
                        let _ = p.pause.send(false);
                    }
                    self.start_get_loop();
                }
                Output::Closed(reason) => {
                    self.shutdown(&reason).await;
                    return Some(reason);
                }
            }
        }
        None
    }

    fn opened(&mut self, handshake: Handshake) {
        let transport = self.session.transport();
        tracing::info!(sid = %handshake.sid, %transport, "Engine.IO session open");
        self.state.send_modify(|s| {
            s.connected = true;
            s.transport = Some(transport);
            s.sid = Some(handshake.sid.clone());
            s.last_connect = Some(SystemTime::now());
        });
        self.deliver(Event::Open {
            handshake,
            transport,
        });
    }

    fn start_probe(&mut self) {
        let Some(sid) = self.session.handshake().map(|h| h.sid.clone()) else {
            return;
        };
        let config = self.config.clone();
        let headers = self.headers.clone();
        let tx = self.io_tx.clone();
        self.tasks.push(tokio::spawn(async move {
            let report = match transport::websocket(&config, &headers, Some(&sid)).await {
                Ok(ws) => Io::ProbeOpen(Box::new(ws)),
                Err(e) => Io::ProbeFailed(e.to_string()),
            };
            let _ = tx.send(report).await;
        }));
    }

    async fn upgraded(&mut self) {
        let Some(probe) = self.probe.take() else {
            return;
        };
        self.ws = Some(probe);
        self.ws_open = std::mem::take(&mut self.probe_open);
        tracing::info!("upgraded to WebSocket");
        if let Some(p) = self.polling.take() {
            // Writes buffered during the pause go out on the WebSocket, in order.
            for record in p.outbox {
                let message = match engineio_codec::decode_record(&record) {
                    Ok(packet) => ws_message(&packet),
                    Err(_) => continue,
                };
                if let Some(sink) = &mut self.ws
                    && sink.send(message).await.is_err()
                {
                    self.session
                        .handle_transport_closed(Instant::now().into_std(), Via::Active);
                    break;
                }
            }
        }
        self.state
            .send_modify(|s| s.transport = Some(Transport::WebSocket));
        self.deliver(Event::Upgrade {
            transport: Transport::WebSocket,
        });
    }

    async fn shutdown(&mut self, reason: &CloseReason) {
        tracing::info!("Engine.IO session closed: {reason}");
        // A polling close sends the queued `1` before giving up the session.
        if let Some(p) = &mut self.polling
            && !p.outbox.is_empty()
        {
            let body: Vec<u8> = p
                .outbox
                .drain(..)
                .collect::<Vec<_>>()
                .join(&engineio_codec::RECORD_SEPARATOR);
            let _ = tokio::time::timeout(Duration::from_secs(2), p.polling.post(body.into())).await;
        }
        for mut sink in self.ws.take().into_iter().chain(self.probe.take()) {
            let _ = tokio::time::timeout(Duration::from_secs(2), sink.close(None)).await;
        }
        // Events already read still reach the consumer, before the Close event.
        let _ = self.events.flush().await;
    }
}

impl Drop for Connection<'_> {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

fn ws_message(packet: &Packet<'_>) -> Message {
    let mut out = Vec::new();
    match engineio_codec::encode(packet, &mut out) {
        engineio_codec::FrameKind::Binary => Message::Binary(out.into()),
        engineio_codec::FrameKind::Text => match String::from_utf8(out) {
            Ok(text) => Message::Text(text.into()),
            // The text form of a packet built from &str is always UTF-8.
            Err(e) => Message::Binary(e.into_bytes().into()),
        },
    }
}

async fn next_frame(
    stream: &mut Option<Ws>,
) -> Option<Result<Message, tokio_tungstenite::tungstenite::Error>> {
    match stream {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}
