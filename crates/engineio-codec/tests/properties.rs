//! Property tests: encode → decode round-trips for arbitrary packets and payloads, decoding
//! arbitrary bytes never panics, and the session keeps its invariants under arbitrary input.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use engineio_codec::session::{Control, Output, Session, SessionConfig, Transport, Via};
use engineio_codec::{
    Data, FrameKind, Handshake, Packet, decode, decode_binary, decode_payload, decode_record,
    encode, encode_payload,
};
use proptest::prelude::*;

fn handshake() -> impl Strategy<Value = Handshake> {
    (
        "[A-Za-z0-9_-]{0,24}",
        proptest::collection::vec("[a-z]{1,12}", 0..3),
        any::<u64>(),
        any::<u64>(),
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(sid, upgrades, i, t, m)| Handshake {
            sid,
            upgrades,
            ping_interval_ms: i,
            ping_timeout_ms: t,
            max_payload: m,
        })
}

/// Arbitrary packets as owned parts; `as_packet` borrows them.
#[derive(Debug, Clone)]
enum Owned {
    Open(Handshake),
    Close,
    Ping(String),
    Pong(String),
    Text(String),
    Binary(Vec<u8>),
    Upgrade,
    Noop,
}

impl Owned {
    fn as_packet(&self) -> Packet<'_> {
        match self {
            Owned::Open(h) => Packet::Open(h.clone()),
            Owned::Close => Packet::Close,
            Owned::Ping(p) => Packet::Ping(p),
            Owned::Pong(p) => Packet::Pong(p),
            Owned::Text(t) => Packet::text(t),
            Owned::Binary(b) => Packet::Message(Data::Binary(Cow::Borrowed(b))),
            Owned::Upgrade => Packet::Upgrade,
            Owned::Noop => Packet::Noop,
        }
    }
}

/// Text that may travel over long-polling: anything but the record separator.
fn polling_text() -> impl Strategy<Value = String> {
    "[^\u{1e}]{0,40}"
}

fn packet(text: BoxedStrategy<String>) -> impl Strategy<Value = Owned> {
    prop_oneof![
        handshake().prop_map(Owned::Open),
        Just(Owned::Close),
        text.clone().prop_map(Owned::Ping),
        text.clone().prop_map(Owned::Pong),
        text.prop_map(Owned::Text),
        proptest::collection::vec(any::<u8>(), 0..64).prop_map(Owned::Binary),
        Just(Owned::Upgrade),
        Just(Owned::Noop),
    ]
}

proptest! {
    #[test]
    fn websocket_frames_round_trip(p in packet(any::<String>().boxed())) {
        let packet = p.as_packet();
        let mut out = Vec::new();
        let decoded = match encode(&packet, &mut out) {
            FrameKind::Text => decode(&out).unwrap(),
            FrameKind::Binary => decode_binary(&out),
        };
        prop_assert_eq!(decoded, packet);
    }

    #[test]
    fn polling_payloads_round_trip(ps in proptest::collection::vec(packet(polling_text().boxed()), 1..8)) {
        let packets: Vec<Packet<'_>> = ps.iter().map(Owned::as_packet).collect();
        let mut body = Vec::new();
        encode_payload(&packets, &mut body).unwrap();
        let decoded: Vec<Packet<'_>> = decode_payload(&body).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(&decoded, &packets);
        let expected_len: usize = packets.iter().map(engineio_codec::record_len).sum::<usize>() + packets.len() - 1;
        prop_assert_eq!(body.len(), expected_len);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Err(e) = decode(&bytes) {
            prop_assert!(e.offset() <= bytes.len());
        }
        if let Err(e) = decode_record(&bytes) {
            prop_assert!(e.offset() <= bytes.len());
        }
        let mut errors = 0;
        for item in decode_payload(&bytes) {
            if let Err(e) = item {
                errors += 1;
                prop_assert!(e.offset() <= bytes.len());
            }
        }
        prop_assert!(errors <= 1);
    }

    #[test]
    fn decoding_packet_shaped_text_never_panics(text in "[0-6b][ -~\u{1e}]{0,80}") {
        let _ = decode(text.as_bytes());
        let _ = decode_payload(text.as_bytes()).count();
    }
}

/// Inputs a driver can feed a session.
#[derive(Debug, Clone)]
enum Input {
    Packet(Owned),
    Probe(Owned),
    Paused,
    Closed(bool),
    Advance(u16),
    Close,
}

fn input() -> impl Strategy<Value = Input> {
    let small = "(probe)?".boxed();
    prop_oneof![
        4 => packet(small.clone()).prop_map(Input::Packet),
        2 => packet(small).prop_map(Input::Probe),
        1 => Just(Input::Paused),
        1 => any::<bool>().prop_map(Input::Closed),
        3 => any::<u16>().prop_map(Input::Advance),
        1 => Just(Input::Close),
    ]
}

proptest! {
    #[test]
    fn session_invariants_hold_under_arbitrary_input(
        polling in any::<bool>(),
        inputs in proptest::collection::vec(input(), 0..40),
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let config = SessionConfig {
            transport: if polling { Transport::Polling } else { Transport::WebSocket },
            ..SessionConfig::default()
        };
        let mut s = Session::new(t0, config);
        let mut closed = false;
        for input in inputs {
            match input {
                Input::Packet(p) => { s.handle_packet(now, p.as_packet()); }
                Input::Probe(p) => s.handle_probe_packet(now, &p.as_packet()),
                Input::Paused => s.polling_paused(now),
                Input::Closed(active) => s.handle_transport_closed(now, if active { Via::Active } else { Via::Probe }),
                Input::Advance(ms) => {
                    now += Duration::from_millis(u64::from(ms));
                    if s.poll_timeout().is_some_and(|d| d <= now) {
                        s.handle_timeout(now);
                    }
                }
                Input::Close => s.close(now),
            }
            while let Some(output) = s.poll_output() {
                prop_assert!(!closed, "output after Closed: {:?}", output);
                match output {
                    Output::Closed(_) => closed = true,
                    // The client never sends a heartbeat ping, and the probe ping only on the probe.
                    Output::Send { control: Control::PingProbe, via } => prop_assert_eq!(via, Via::Probe),
                    Output::Send { control: Control::Upgrade, via } => prop_assert_eq!(via, Via::Probe),
                    Output::StartProbe => prop_assert!(polling),
                    _ => {}
                }
            }
            prop_assert_eq!(closed, s.is_closed());
            // A closed session asks for no timer; an open one is writable only when not pausing.
            prop_assert!(!s.is_closed() || s.poll_timeout().is_none());
            prop_assert!(!s.is_writable() || s.is_open());
        }
    }
}
