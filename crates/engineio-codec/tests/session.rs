//! The pure session state machine on a fake clock: no tokio, no sockets, no sleeps.

use std::time::{Duration, Instant};

use engineio_codec::session::{
    CloseReason, Control, Output, Session, SessionConfig, Transport, Via,
};
use engineio_codec::{Data, Handshake, Packet};

const MS: Duration = Duration::from_millis(1);

/// The official test suites' server settings: pingInterval 300 ms, pingTimeout 200 ms.
fn handshake(upgrades: &[&str]) -> Handshake {
    Handshake {
        sid: "sid1".to_owned(),
        upgrades: upgrades.iter().map(|s| (*s).to_owned()).collect(),
        ping_interval_ms: 300,
        ping_timeout_ms: 200,
        max_payload: Some(1_000_000),
    }
}

fn drain(session: &mut Session) -> Vec<Output> {
    std::iter::from_fn(|| session.poll_output()).collect()
}

fn send(via: Via, control: Control) -> Output {
    Output::Send { via, control }
}

fn opened(config: SessionConfig, upgrades: &[&str]) -> (Session, Instant) {
    let t0 = Instant::now();
    let mut s = Session::new(t0, config);
    assert_eq!(s.handle_packet(t0, Packet::Open(handshake(upgrades))), None);
    (s, t0)
}

fn websocket_only() -> SessionConfig {
    SessionConfig {
        transport: Transport::WebSocket,
        ..SessionConfig::default()
    }
}

#[test]
fn polling_handshake_starts_the_probe() {
    let (mut s, t0) = opened(SessionConfig::default(), &["websocket"]);
    assert_eq!(
        drain(&mut s),
        vec![
            Output::Opened(handshake(&["websocket"])),
            Output::StartProbe,
            send(Via::Probe, Control::PingProbe),
        ]
    );
    assert!(s.is_open() && s.is_upgrading() && s.is_writable());
    assert_eq!(s.transport(), Transport::Polling);
    // The earliest deadline is the heartbeat (500 ms), before the probe timeout (10 s).
    assert_eq!(s.poll_timeout(), Some(t0 + 500 * MS));
}

#[test]
fn websocket_session_does_not_probe() {
    let (mut s, _) = opened(websocket_only(), &[]);
    assert_eq!(drain(&mut s), vec![Output::Opened(handshake(&[]))]);
    assert!(!s.is_upgrading());
}

#[test]
fn upgrade_disabled_or_not_offered_does_not_probe() {
    let no_upgrade = SessionConfig {
        upgrade: false,
        ..SessionConfig::default()
    };
    let (mut s, _) = opened(no_upgrade, &["websocket"]);
    assert_eq!(
        drain(&mut s),
        vec![Output::Opened(handshake(&["websocket"]))]
    );
    let (mut s, _) = opened(SessionConfig::default(), &["webtransport"]);
    assert_eq!(
        drain(&mut s),
        vec![Output::Opened(handshake(&["webtransport"]))]
    );
}

#[test]
fn ping_is_answered_with_pong_and_rearms_the_heartbeat() {
    let (mut s, t0) = opened(websocket_only(), &[]);
    drain(&mut s);
    // Three pings, 300 ms apart, as in the test suite's heartbeat case.
    for i in 1..=3 {
        let t = t0 + i * 300 * MS;
        s.handle_timeout(t);
        assert!(s.is_alive(t));
        assert_eq!(s.handle_packet(t, Packet::Ping("")), None);
        assert_eq!(drain(&mut s), vec![send(Via::Active, Control::Pong)]);
        assert_eq!(s.poll_timeout(), Some(t + 500 * MS));
    }
}

#[test]
fn silence_for_interval_plus_timeout_closes_with_ping_timeout() {
    let (mut s, t0) = opened(websocket_only(), &[]);
    drain(&mut s);
    s.handle_timeout(t0 + 499 * MS);
    assert!(drain(&mut s).is_empty());
    assert!(s.is_alive(t0 + 499 * MS));
    assert!(!s.is_alive(t0 + 500 * MS), "the deadline is exclusive");
    s.handle_timeout(t0 + 500 * MS);
    assert_eq!(
        drain(&mut s),
        vec![Output::Closed(CloseReason::PingTimeout)]
    );
    assert!(s.is_closed());
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn messages_do_not_rearm_the_heartbeat() {
    // As the reference client: only a ping proves the server's heartbeat is alive.
    let (mut s, t0) = opened(websocket_only(), &[]);
    drain(&mut s);
    let t = t0 + 400 * MS;
    assert_eq!(
        s.handle_packet(t, Packet::text("hello")),
        Some(Data::Text("hello"))
    );
    assert_eq!(s.poll_timeout(), Some(t0 + 500 * MS));
}

#[test]
fn the_client_never_sends_a_plain_ping() {
    let (mut s, t0) = opened(SessionConfig::default(), &["websocket"]);
    let mut all = drain(&mut s);
    for i in 1..10 {
        let t = t0 + i * 100 * MS;
        s.handle_packet(t, Packet::Ping(""));
        s.handle_packet(t, Packet::text("x"));
        s.handle_timeout(t);
        all.extend(drain(&mut s));
    }
    assert!(all.iter().all(|o| !matches!(
        o,
        Output::Send {
            control: Control::PingProbe,
            via: Via::Active
        }
    )));
    let probes = all
        .iter()
        .filter(|o| {
            matches!(
                o,
                Output::Send {
                    control: Control::PingProbe,
                    ..
                }
            )
        })
        .count();
    assert_eq!(probes, 1, "exactly one probe ping, on the probe transport");
}

#[test]
fn upgrade_probe_pause_then_upgrade() {
    let (mut s, t0) = opened(SessionConfig::default(), &["websocket"]);
    drain(&mut s);
    let t = t0 + 20 * MS;
    s.handle_probe_packet(t, &Packet::Pong("probe"));
    assert_eq!(drain(&mut s), vec![Output::PausePolling]);
    assert!(!s.is_writable(), "writes are buffered while polling pauses");
    // The server releases the pending GET with a noop; it changes nothing.
    assert_eq!(s.handle_packet(t, Packet::Noop), None);
    assert!(drain(&mut s).is_empty());
    s.polling_paused(t + MS);
    assert_eq!(
        drain(&mut s),
        vec![send(Via::Probe, Control::Upgrade), Output::Upgraded]
    );
    assert_eq!(s.transport(), Transport::WebSocket);
    assert!(s.is_writable() && !s.is_upgrading());
    // Once upgraded, a client close sends no `1`: the WebSocket is just closed.
    s.close(t + 2 * MS);
    assert_eq!(
        drain(&mut s),
        vec![Output::Closed(CloseReason::ClientClose)]
    );
}

#[test]
fn wrong_probe_answer_abandons_the_upgrade_and_keeps_polling() {
    let (mut s, t0) = opened(SessionConfig::default(), &["websocket"]);
    drain(&mut s);
    s.handle_probe_packet(t0, &Packet::text("nope"));
    let out = drain(&mut s);
    assert!(
        matches!(&out[..], [Output::UpgradeFailed(why)] if why.contains("text message")),
        "{out:?}"
    );
    assert_eq!(s.transport(), Transport::Polling);
    assert!(s.is_writable() && s.is_open() && !s.is_upgrading());
    s.polling_paused(t0);
    assert!(drain(&mut s).is_empty(), "no upgrade without a probe");
}

#[test]
fn probe_timeout_abandons_the_upgrade() {
    let config = SessionConfig {
        probe_timeout: Duration::from_millis(100),
        ..SessionConfig::default()
    };
    let (mut s, t0) = opened(config, &["websocket"]);
    drain(&mut s);
    assert_eq!(s.poll_timeout(), Some(t0 + 100 * MS));
    s.handle_timeout(t0 + 100 * MS);
    let out = drain(&mut s);
    assert!(matches!(&out[..], [Output::UpgradeFailed(_)]), "{out:?}");
    assert!(s.is_open());
    assert_eq!(s.poll_timeout(), Some(t0 + 500 * MS));
}

#[test]
fn probe_socket_closing_abandons_the_upgrade() {
    let (mut s, t0) = opened(SessionConfig::default(), &["websocket"]);
    drain(&mut s);
    s.handle_transport_closed(t0, Via::Probe);
    assert!(matches!(&drain(&mut s)[..], [Output::UpgradeFailed(_)]));
    assert!(s.is_open());
}

#[test]
fn active_transport_closing_ends_the_session() {
    let (mut s, t0) = opened(websocket_only(), &[]);
    drain(&mut s);
    s.handle_transport_closed(t0, Via::Active);
    assert_eq!(
        drain(&mut s),
        vec![Output::Closed(CloseReason::TransportClose)]
    );
}

#[test]
fn server_close_packet_ends_the_session_and_later_input_is_ignored() {
    let (mut s, t0) = opened(SessionConfig::default(), &["websocket"]);
    drain(&mut s);
    s.handle_packet(t0, Packet::Close);
    assert_eq!(
        drain(&mut s),
        vec![Output::Closed(CloseReason::ServerClose)]
    );
    assert_eq!(s.handle_packet(t0, Packet::text("late")), None);
    s.handle_packet(t0, Packet::Ping(""));
    s.handle_probe_packet(t0, &Packet::Pong("probe"));
    s.handle_timeout(t0 + Duration::from_secs(3600));
    s.close(t0);
    assert!(drain(&mut s).is_empty(), "nothing after Closed");
}

#[test]
fn client_close_on_polling_sends_close_first() {
    let (mut s, t0) = opened(SessionConfig::default(), &[]);
    drain(&mut s);
    s.close(t0);
    assert_eq!(
        drain(&mut s),
        vec![
            send(Via::Active, Control::Close),
            Output::Closed(CloseReason::ClientClose)
        ]
    );
}

#[test]
fn no_handshake_in_time_is_an_open_timeout() {
    let t0 = Instant::now();
    let mut s = Session::new(t0, SessionConfig::default());
    assert_eq!(s.poll_timeout(), Some(t0 + Duration::from_secs(20)));
    s.handle_timeout(t0 + Duration::from_secs(19));
    assert!(drain(&mut s).is_empty());
    s.handle_timeout(t0 + Duration::from_secs(20));
    assert_eq!(
        drain(&mut s),
        vec![Output::Closed(CloseReason::OpenTimeout)]
    );
}

#[test]
fn anything_but_open_first_is_a_protocol_error() {
    let t0 = Instant::now();
    let mut s = Session::new(t0, SessionConfig::default());
    assert_eq!(s.handle_packet(t0, Packet::text("hi")), None);
    let out = drain(&mut s);
    assert!(
        matches!(&out[..], [Output::Closed(CloseReason::ProtocolError(why))] if why.contains("expected the open handshake")),
        "{out:?}"
    );
}

#[test]
fn second_open_and_server_upgrade_are_protocol_errors() {
    for bad in [Packet::Open(handshake(&[])), Packet::Upgrade] {
        let (mut s, t0) = opened(websocket_only(), &[]);
        drain(&mut s);
        s.handle_packet(t0, bad);
        assert!(matches!(
            &drain(&mut s)[..],
            [Output::Closed(CloseReason::ProtocolError(_))]
        ));
    }
}

#[test]
fn huge_intervals_do_not_overflow_the_clock() {
    let t0 = Instant::now();
    let mut s = Session::new(t0, websocket_only());
    let mut h = handshake(&[]);
    h.ping_interval_ms = u64::MAX;
    h.ping_timeout_ms = u64::MAX;
    s.handle_packet(t0, Packet::Open(h));
    // Either a deadline far away or, past the clock's range, none: never a panic.
    assert!(
        s.poll_timeout()
            .is_none_or(|d| d > t0 + Duration::from_secs(1 << 40))
    );
    assert!(s.is_alive(t0 + Duration::from_secs(1 << 30)));
    s.handle_packet(t0, Packet::Ping(""));
    assert!(s.is_open());
}

#[test]
fn a_probe_ping_from_the_server_is_answered_with_a_probe_pong() {
    let (mut s, t0) = opened(websocket_only(), &[]);
    drain(&mut s);
    s.handle_packet(t0, Packet::Ping("probe"));
    assert_eq!(drain(&mut s), vec![send(Via::Active, Control::PongProbe)]);
}

#[test]
fn close_reasons_read_well() {
    assert_eq!(
        CloseReason::PingTimeout.to_string(),
        "ping timeout: the server sent no ping within pingInterval + pingTimeout"
    );
    assert_eq!(
        CloseReason::ProtocolError("x".into()).to_string(),
        "protocol error: x"
    );
}
