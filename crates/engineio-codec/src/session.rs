//! The pure Engine.IO v4 client session: handshake, heartbeat deadline and the polling → WebSocket
//! upgrade, as a state machine that never reads the clock and never touches a socket.
//!
//! The driver (in `engineio-client`) feeds it what happened and does what it says:
//!
//! * [`Session::handle_packet`] for every packet read on the active transport,
//!   [`Session::handle_probe_packet`] for packets read on the WebSocket being probed,
//!   [`Session::handle_transport_closed`] when a transport goes away,
//!   [`Session::polling_paused`] once the in-flight long-polling requests have finished,
//!   [`Session::handle_timeout`] when [`Session::poll_timeout`]'s deadline has passed;
//! * after each of these, drain [`Session::poll_output`] until `None`, then sleep until
//!   [`Session::poll_timeout`].
//!
//! The v4 heartbeat: the **server** pings every `pingInterval`; the client answers each `2`
//! with `3` and considers the connection dead when no ping came for
//! `pingInterval + pingTimeout`. The client never sends a ping except `2probe`.
//!
//! The upgrade follows the reference client: open the WebSocket and probe first (`2probe` →
//! `3probe`), then pause polling (let the in-flight GET and POST finish; the server releases a
//! pending GET with a `6` noop), then send `5` on the WebSocket and flush buffered writes there.
//!
//! A session on a WebSocket, driven by hand: the handshake, a heartbeat, a message, and the
//! deadline that closes it when the server goes quiet. Time is whatever the caller says it is.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use engineio_codec::session::{CloseReason, Control, Output, Session, SessionConfig, Transport, Via};
//! use engineio_codec::{decode, Data, Packet};
//!
//! let start = Instant::now();
//! let config = SessionConfig { transport: Transport::WebSocket, ..SessionConfig::default() };
//! let mut session = Session::new(start, config);
//! assert_eq!(session.poll_timeout(), Some(start + Duration::from_secs(20))); // open timeout
//!
//! // The server's first frame: the handshake.
//! let open = br#"0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;
//! session.handle_packet(start, decode(open).unwrap());
//! let Some(Output::Opened(handshake)) = session.poll_output() else { panic!() };
//! assert_eq!(handshake.sid, "lv_VI97HAXpY6yYWAAAC");
//! // Dead unless a ping comes within pingInterval + pingTimeout.
//! assert_eq!(session.poll_timeout(), Some(start + Duration::from_secs(45)));
//!
//! // A ping is answered with a pong on the same transport, and moves the deadline.
//! let later = start + Duration::from_secs(25);
//! session.handle_packet(later, Packet::Ping(""));
//! assert_eq!(
//!     session.poll_output(),
//!     Some(Output::Send { via: Via::Active, control: Control::Pong })
//! );
//! assert_eq!(session.poll_timeout(), Some(later + Duration::from_secs(45)));
//!
//! // Messages are handed back to the caller, borrowed from the frame.
//! let data = session.handle_packet(later, decode(b"4hello").unwrap());
//! assert_eq!(data, Some(Data::Text("hello")));
//!
//! // No ping in time: the session says it is over, and why.
//! session.handle_timeout(later + Duration::from_secs(45));
//! assert_eq!(session.poll_output(), Some(Output::Closed(CloseReason::PingTimeout)));
//! assert!(session.is_closed());
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use crate::packet::{Data, Handshake, PROBE, Packet};

/// The transports of Engine.IO v4 that a client can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// HTTP long-polling.
    Polling,
    /// WebSocket.
    WebSocket,
}

impl Transport {
    /// The name used in the `transport=` query parameter and in the handshake's `upgrades`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Polling => "polling",
            Transport::WebSocket => "websocket",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a session opens and whether it may upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    /// The transport the session opens on.
    pub transport: Transport,
    /// Whether a session opened on polling upgrades to WebSocket when the server offers it.
    pub upgrade: bool,
    /// How long to wait for the server's OPEN packet.
    pub open_timeout: Duration,
    /// How long a probe may take (from [`Output::StartProbe`] to `3probe`) before the upgrade is
    /// abandoned and the session keeps polling.
    pub probe_timeout: Duration,
}

impl Default for SessionConfig {
    /// Polling then upgrade, 20 s to open (like the JS client), 10 s to probe (the server's
    /// `upgradeTimeout`).
    fn default() -> Self {
        Self {
            transport: Transport::Polling,
            upgrade: true,
            open_timeout: Duration::from_secs(20),
            probe_timeout: Duration::from_secs(10),
        }
    }
}

/// Which transport a packet must be sent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// The session's active transport.
    Active,
    /// The WebSocket being probed for an upgrade.
    Probe,
}

/// A control packet the session wants sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// `3` (answer to a heartbeat ping).
    Pong,
    /// `3probe` (answer to a `2probe`, which a v4 server does not send but which we answer).
    PongProbe,
    /// `2probe`, on the probe WebSocket.
    PingProbe,
    /// `5`, on the probe WebSocket once polling is paused.
    Upgrade,
    /// `1` (long-polling only: a WebSocket is simply closed).
    Close,
}

impl Control {
    /// The packet to encode.
    pub fn packet(self) -> Packet<'static> {
        match self {
            Control::Pong => Packet::Pong(""),
            Control::PongProbe => Packet::Pong(PROBE),
            Control::PingProbe => Packet::Ping(PROBE),
            Control::Upgrade => Packet::Upgrade,
            Control::Close => Packet::Close,
        }
    }
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// No OPEN packet within [`SessionConfig::open_timeout`].
    OpenTimeout,
    /// No ping from the server within `pingInterval + pingTimeout`.
    PingTimeout,
    /// The server sent `1`.
    ServerClose,
    /// The application closed the session.
    ClientClose,
    /// The active transport closed or failed (WebSocket closed, HTTP error such as 400 for an
    /// unknown sid).
    TransportClose,
    /// The server broke the protocol; the text says how.
    ProtocolError(String),
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::OpenTimeout => f.write_str("no handshake from the server in time"),
            CloseReason::PingTimeout => f.write_str(
                "ping timeout: the server sent no ping within pingInterval + pingTimeout",
            ),
            CloseReason::ServerClose => f.write_str("the server closed the session"),
            CloseReason::ClientClose => f.write_str("closed by the client"),
            CloseReason::TransportClose => f.write_str("transport closed"),
            CloseReason::ProtocolError(why) => write!(f, "protocol error: {why}"),
        }
    }
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Encode `control.packet()` and send it on `via`.
    Send {
        /// Which transport.
        via: Via,
        /// What to send.
        control: Control,
    },
    /// The handshake arrived; the session is open and messages may flow.
    Opened(Handshake),
    /// Open a WebSocket to the same URL with `transport=websocket&sid=<sid>`; a
    /// [`Output::Send`] of [`Control::PingProbe`] on [`Via::Probe`] follows. Call
    /// [`Session::handle_transport_closed`] with [`Via::Probe`] if it cannot be opened.
    StartProbe,
    /// The probe succeeded: start no new long-polling request and buffer writes; call
    /// [`Session::polling_paused`] when the in-flight GET and POST have completed.
    PausePolling,
    /// The WebSocket is now the active transport: close polling, flush buffered writes on it.
    Upgraded,
    /// The upgrade was abandoned (close the probe WebSocket); the session keeps polling.
    UpgradeFailed(String),
    /// The session is over: close every transport. Nothing more will be output.
    Closed(CloseReason),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Opening { deadline: Option<Instant> },
    Open { handshake: Handshake },
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Upgrade {
    Probing { deadline: Option<Instant> },
    Pausing,
}

/// The client side of one Engine.IO session. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Session {
    config: SessionConfig,
    phase: Phase,
    active: Transport,
    upgrade: Option<Upgrade>,
    ping_deadline: Option<Instant>,
    outputs: VecDeque<Output>,
}

impl Session {
    /// A session that starts opening at `now` on `config.transport`.
    pub fn new(now: Instant, config: SessionConfig) -> Self {
        Self {
            phase: Phase::Opening {
                deadline: now.checked_add(config.open_timeout),
            },
            active: config.transport,
            config,
            upgrade: None,
            ping_deadline: None,
            outputs: VecDeque::new(),
        }
    }

    // ---- getters ----

    /// The transport packets currently travel on.
    pub fn transport(&self) -> Transport {
        self.active
    }

    /// The handshake, once open.
    pub fn handshake(&self) -> Option<&Handshake> {
        match &self.phase {
            Phase::Open { handshake } => Some(handshake),
            _ => None,
        }
    }

    /// Whether the handshake arrived and the session has not closed.
    pub fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open { .. })
    }

    /// Whether the session is over.
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// Whether an upgrade is under way (probing or pausing).
    pub fn is_upgrading(&self) -> bool {
        self.upgrade.is_some()
    }

    /// Whether the application may write messages on the active transport now. False while
    /// polling is being paused for an upgrade: buffer writes until [`Output::Upgraded`] or
    /// [`Output::UpgradeFailed`].
    pub fn is_writable(&self) -> bool {
        self.is_open() && self.upgrade != Some(Upgrade::Pausing)
    }

    /// Whether the heartbeat deadline is still ahead at `now`. A driver whose timers may have
    /// been delayed (suspend) checks it before writing, as the JS client does.
    pub fn is_alive(&self, now: Instant) -> bool {
        self.is_open() && self.ping_deadline.is_none_or(|deadline| now < deadline)
    }

    /// The instant at which [`Session::handle_timeout`] must be called, if any.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let phase = match self.phase {
            Phase::Opening { deadline } => deadline,
            Phase::Open { .. } => self.ping_deadline,
            Phase::Closed => return None,
        };
        let probe = match self.upgrade {
            Some(Upgrade::Probing { deadline }) => deadline,
            _ => None,
        };
        match (phase, probe) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The next thing the driver must do, if any.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    // ---- inputs ----

    /// A packet arrived on the active transport. Returns the message data the application must
    /// receive, if the packet was a message.
    pub fn handle_packet<'a>(&mut self, now: Instant, packet: Packet<'a>) -> Option<Data<'a>> {
        match &self.phase {
            Phase::Closed => None,
            Phase::Opening { .. } => {
                match packet {
                    Packet::Open(handshake) => self.open(now, handshake),
                    other => self.fail(format!("expected the open handshake, got {other}")),
                }
                None
            }
            Phase::Open { .. } => match packet {
                Packet::Message(data) => Some(data),
                Packet::Ping(payload) => {
                    if payload == PROBE {
                        self.send(Via::Active, Control::PongProbe);
                    } else {
                        self.ping_deadline = self.heartbeat_deadline(now);
                        self.send(Via::Active, Control::Pong);
                    }
                    None
                }
                // A v4 server never sends a bare pong; a stray one is harmless.
                Packet::Pong(_) | Packet::Noop => None,
                Packet::Close => {
                    self.finish(CloseReason::ServerClose);
                    None
                }
                Packet::Open(_) => {
                    self.fail("a second open handshake on an open session".to_owned());
                    None
                }
                Packet::Upgrade => {
                    self.fail(
                        "the server sent an upgrade packet, which only clients send".to_owned(),
                    );
                    None
                }
            },
        }
    }

    /// A packet arrived on the WebSocket being probed.
    pub fn handle_probe_packet(&mut self, _now: Instant, packet: &Packet<'_>) {
        match self.upgrade {
            Some(Upgrade::Probing { .. }) if packet.is_probe_pong() => {
                self.upgrade = Some(Upgrade::Pausing);
                self.outputs.push_back(Output::PausePolling);
            }
            Some(Upgrade::Probing { .. }) | Some(Upgrade::Pausing) => {
                self.abandon_upgrade(format!("the probe got {packet} instead of pong \"probe\""));
            }
            None => {}
        }
    }

    /// The in-flight long-polling requests have completed after [`Output::PausePolling`]: the
    /// session sends `5` on the WebSocket and makes it the active transport.
    pub fn polling_paused(&mut self, _now: Instant) {
        if self.upgrade == Some(Upgrade::Pausing) && self.is_open() {
            self.upgrade = None;
            self.send(Via::Probe, Control::Upgrade);
            self.active = Transport::WebSocket;
            self.outputs.push_back(Output::Upgraded);
        }
    }

    /// A transport closed or failed.
    pub fn handle_transport_closed(&mut self, _now: Instant, via: Via) {
        match via {
            Via::Active => self.finish(CloseReason::TransportClose),
            Via::Probe => {
                if self.upgrade.is_some() {
                    self.abandon_upgrade("the probe WebSocket closed".to_owned());
                }
            }
        }
    }

    /// The driver could not decode what the server sent on the active transport: the session
    /// ends with a protocol error, as the reference client closes on a parse error.
    pub fn handle_protocol_error(&mut self, _now: Instant, why: impl Into<String>) {
        self.fail(why.into());
    }

    /// Time passed: fires the open, heartbeat and probe deadlines that are due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(Upgrade::Probing {
            deadline: Some(deadline),
        }) = self.upgrade
            && now >= deadline
        {
            self.abandon_upgrade("no pong \"probe\" within the probe timeout".to_owned());
        }
        match self.phase {
            Phase::Opening {
                deadline: Some(deadline),
            } if now >= deadline => self.finish(CloseReason::OpenTimeout),
            Phase::Open { .. } if !self.is_alive(now) => self.finish(CloseReason::PingTimeout),
            _ => {}
        }
    }

    /// The application closes the session: on long-polling a `1` is sent first.
    pub fn close(&mut self, _now: Instant) {
        if self.is_closed() {
            return;
        }
        if self.is_open() && self.active == Transport::Polling {
            self.send(Via::Active, Control::Close);
        }
        self.finish(CloseReason::ClientClose);
    }

    // ---- internals ----

    fn open(&mut self, now: Instant, handshake: Handshake) {
        self.ping_deadline = Self::deadline_for(&handshake, now);
        let upgrade = self.active == Transport::Polling
            && self.config.upgrade
            && handshake.offers_upgrade(Transport::WebSocket.as_str());
        self.outputs.push_back(Output::Opened(handshake.clone()));
        self.phase = Phase::Open { handshake };
        if upgrade {
            self.upgrade = Some(Upgrade::Probing {
                deadline: now.checked_add(self.config.probe_timeout),
            });
            self.outputs.push_back(Output::StartProbe);
            self.send(Via::Probe, Control::PingProbe);
        }
    }

    fn heartbeat_deadline(&self, now: Instant) -> Option<Instant> {
        match &self.phase {
            Phase::Open { handshake } => Self::deadline_for(handshake, now),
            _ => None,
        }
    }

    /// `now + pingInterval + pingTimeout`; `None` (no deadline) if that overflows the clock.
    fn deadline_for(handshake: &Handshake, now: Instant) -> Option<Instant> {
        let total = handshake
            .ping_interval_ms
            .saturating_add(handshake.ping_timeout_ms);
        now.checked_add(Duration::from_millis(total))
    }

    fn send(&mut self, via: Via, control: Control) {
        self.outputs.push_back(Output::Send { via, control });
    }

    fn abandon_upgrade(&mut self, why: String) {
        self.upgrade = None;
        // Drop a queued probe ping that was never sent.
        self.outputs.retain(|o| {
            !matches!(
                o,
                Output::Send {
                    via: Via::Probe,
                    ..
                }
            )
        });
        self.outputs.push_back(Output::UpgradeFailed(why));
    }

    fn fail(&mut self, why: String) {
        self.finish(CloseReason::ProtocolError(why));
    }

    fn finish(&mut self, reason: CloseReason) {
        if self.is_closed() {
            return;
        }
        self.phase = Phase::Closed;
        self.upgrade = None;
        self.ping_deadline = None;
        self.outputs.push_back(Output::Closed(reason));
    }
}
