//! The pure socket.io client state machine, driven by hand: no tokio, no sockets, a fake clock.

use std::time::{Duration, Instant};

use bytes::Bytes;
use socketio_v5::connection::{AckError, Connection, DisconnectReason, EmitError, Output};

fn drain(m: &mut Connection) -> Vec<Output> {
    std::iter::from_fn(|| m.poll_output()).collect()
}

fn sent(outputs: &[Output]) -> Vec<String> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Send { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

/// A manager whose main namespace is connected.
fn connected(t0: Instant) -> Connection {
    let mut m = Connection::new(16, 10);
    m.connect("/", None);
    m.handle_engine_opened();
    m.handle_text(t0, r#"0{"sid":"s"}"#);
    drain(&mut m);
    m
}

fn json(s: &str) -> socketio_v5::codec::Json<'_> {
    socketio_v5::codec::Json::parse(s).unwrap()
}

#[test]
fn connect_waits_for_the_engine_and_then_sends_connect_with_auth() {
    let mut m = Connection::new(16, 10);
    m.connect("/", None);
    m.connect("/admin", Some(json(r#"{"token":"abc"}"#)));
    assert!(
        drain(&mut m).is_empty(),
        "nothing before the Engine.IO session opens"
    );
    m.handle_engine_opened();
    assert_eq!(
        sent(&drain(&mut m)),
        vec!["0", r#"0/admin,{"token":"abc"}"#]
    );
}

#[test]
fn emits_are_buffered_in_order_until_connected() {
    let t0 = Instant::now();
    let mut m = Connection::new(16, 10);
    m.connect("/", None);
    m.emit(t0, "/", "a", r#"["a",1]"#.into(), vec![], None)
        .unwrap();
    m.emit(t0, "/", "b", r#"["b"]"#.into(), vec![], None)
        .unwrap();
    m.handle_engine_opened();
    assert_eq!(sent(&drain(&mut m)), vec!["0"]);
    m.handle_text(t0, r#"0{"sid":"s1"}"#);
    let out = drain(&mut m);
    assert!(matches!(&out[0], Output::Connected { sid, recovered: false, .. } if sid == "s1"));
    assert_eq!(sent(&out), vec![r#"2["a",1]"#, r#"2["b"]"#]);
    assert!(m.is_connected("/"));
}

#[test]
fn the_emit_buffer_is_bounded() {
    let t0 = Instant::now();
    let mut m = Connection::new(2, 10);
    m.connect("/", None);
    for _ in 0..2 {
        m.emit(t0, "/", "x", r#"["x"]"#.into(), vec![], None)
            .unwrap();
    }
    assert_eq!(
        m.emit(t0, "/", "x", r#"["x"]"#.into(), vec![], None),
        Err(EmitError::BufferFull(2, "/".into()))
    );
}

#[test]
fn reserved_names_and_unknown_namespaces_are_refused() {
    let t0 = Instant::now();
    let mut m = Connection::new(2, 10);
    m.connect("/", None);
    assert_eq!(
        m.emit(t0, "/", "connect", r#"["connect"]"#.into(), vec![], None),
        Err(EmitError::Reserved("connect".into()))
    );
    assert_eq!(
        m.emit(t0, "/nope", "x", r#"["x"]"#.into(), vec![], None),
        Err(EmitError::NotConnected("/nope".into()))
    );
}

#[test]
fn acks_resolve_time_out_and_fail_on_disconnect() {
    let t0 = Instant::now();
    let mut m = connected(t0);
    let a = m
        .emit(
            t0,
            "/",
            "q",
            r#"["q"]"#.into(),
            vec![],
            Some(Some(t0 + Duration::from_secs(1))),
        )
        .unwrap()
        .unwrap();
    let b = m
        .emit(
            t0,
            "/",
            "q",
            r#"["q"]"#.into(),
            vec![],
            Some(Some(t0 + Duration::from_secs(5))),
        )
        .unwrap()
        .unwrap();
    let c = m
        .emit(t0, "/", "q", r#"["q"]"#.into(), vec![], Some(None))
        .unwrap()
        .unwrap();
    assert_eq!((a, b, c), (0, 1, 2), "ack ids count from 0");
    assert_eq!(
        sent(&drain(&mut m)),
        vec![r#"20["q"]"#, r#"21["q"]"#, r#"22["q"]"#]
    );
    assert_eq!(m.poll_timeout(), Some(t0 + Duration::from_secs(1)));
    // The answer to 1 arrives; 0 times out; 2 fails when the session drops.
    m.handle_text(t0, r#"31["yes"]"#);
    let out = drain(&mut m);
    assert!(
        matches!(
            &out[..],
            [Output::Ack {
                id: 1,
                result: Ok(_),
                ..
            }]
        ),
        "{out:?}"
    );
    m.handle_timeout(t0 + Duration::from_secs(1));
    assert!(matches!(
        &drain(&mut m)[..],
        [Output::Ack {
            id: 0,
            result: Err(AckError::Timeout),
            ..
        }]
    ));
    m.handle_engine_closed("transport close");
    let out = drain(&mut m);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Ack {
            id: 2,
            result: Err(AckError::Disconnected(_)),
            ..
        }
    )));
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Disconnected {
            reason: DisconnectReason::TransportClose(_),
            ..
        }
    )));
    // A late answer for a finished ack is ignored.
    m.handle_text(t0, r#"30["late"]"#);
    assert!(drain(&mut m).is_empty());
}

#[test]
fn reconnect_sends_connect_again_and_keeps_buffered_emits() {
    let t0 = Instant::now();
    let mut m = Connection::new(16, 10);
    m.connect("/", None);
    m.handle_engine_opened();
    m.handle_text(t0, r#"0{"sid":"s"}"#);
    m.handle_engine_closed("ping timeout");
    drain(&mut m);
    m.emit(
        t0,
        "/",
        "while-away",
        r#"["while-away"]"#.into(),
        vec![],
        None,
    )
    .unwrap();
    assert!(sent(&drain(&mut m)).is_empty());
    m.handle_engine_opened();
    assert_eq!(sent(&drain(&mut m)), vec!["0"]);
    m.handle_text(t0, r#"0{"sid":"s2"}"#);
    assert_eq!(sent(&drain(&mut m)), vec![r#"2["while-away"]"#]);
}

#[test]
fn connect_error_is_terminal_and_fails_buffered_acks() {
    let t0 = Instant::now();
    let mut m = Connection::new(16, 10);
    m.connect("/admin", None);
    m.emit(t0, "/admin", "x", r#"["x"]"#.into(), vec![], Some(None))
        .unwrap();
    m.handle_engine_opened();
    drain(&mut m);
    m.handle_text(
        t0,
        r#"4/admin,{"message":"Not authorized","data":{"code":7}}"#,
    );
    let out = drain(&mut m);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::Ack {
            result: Err(AckError::Refused(_)),
            ..
        }
    )));
    assert!(out.iter().any(|o| matches!(o,
        Output::ConnectError { message, data: Some(d), .. } if message == "Not authorized" && d == r#"{"code":7}"#)));
    m.handle_engine_closed("x");
    m.handle_engine_opened();
    assert!(
        sent(&drain(&mut m)).is_empty(),
        "no automatic retry after a refusal"
    );
}

#[test]
fn server_disconnect_is_terminal() {
    let t0 = Instant::now();
    let mut m = connected(t0);
    m.handle_text(t0, "1");
    assert!(matches!(
        &drain(&mut m)[..],
        [Output::Disconnected {
            reason: DisconnectReason::ServerDisconnect,
            ..
        }]
    ));
    m.handle_engine_closed("x");
    m.handle_engine_opened();
    assert!(sent(&drain(&mut m)).is_empty());
}

#[test]
fn recovery_strips_offsets_buffers_early_events_and_resends_pid() {
    let t0 = Instant::now();
    let mut m = Connection::new(16, 10);
    m.connect("/", Some(json(r#"{"token":"t"}"#)));
    m.handle_engine_opened();
    drain(&mut m);
    m.handle_text(t0, r#"0{"sid":"s","pid":"p1"}"#);
    drain(&mut m);
    m.handle_text(t0, r#"2["status",{"state":"idle"},"offset-1"]"#);
    let out = drain(&mut m);
    let Output::Event { message, .. } = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(
        message.packet.data().unwrap().as_str(),
        r#"["status",{"state":"idle"}]"#,
        "offset stripped"
    );
    m.handle_engine_closed("transport close");
    drain(&mut m);
    m.handle_engine_opened();
    // {pid, offset} and the auth's keys (which would override them).
    assert_eq!(
        sent(&drain(&mut m)),
        vec![r#"0{"offset":"offset-1","pid":"p1","token":"t"}"#]
    );
    // The server replays missed events before its CONNECT answer: they wait for it.
    m.handle_text(t0, r#"2["missed",1,"offset-2"]"#);
    assert!(drain(&mut m).is_empty());
    m.handle_text(t0, r#"0{"sid":"s","pid":"p1"}"#);
    let out = drain(&mut m);
    assert!(
        matches!(
            &out[0],
            Output::Connected {
                recovered: true,
                ..
            }
        ),
        "{out:?}"
    );
    let Output::Event { message, .. } = &out[1] else {
        panic!("{out:?}")
    };
    assert_eq!(message.packet.data().unwrap().as_str(), r#"["missed",1]"#);
}

#[test]
fn binary_events_are_reassembled_and_binary_emits_carry_attachments() {
    let t0 = Instant::now();
    let mut m = connected(t0);
    m.handle_text(t0, r#"51-["file",{"_placeholder":true,"num":0}]"#);
    assert!(drain(&mut m).is_empty());
    m.handle_binary(t0, Bytes::from_static(&[9, 9]));
    let out = drain(&mut m);
    let Output::Event { message, .. } = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(message.attachments, vec![Bytes::from_static(&[9, 9])]);
    m.emit(
        t0,
        "/",
        "up",
        r#"["up",{"_placeholder":true,"num":0}]"#.into(),
        vec![Bytes::from_static(&[1])],
        None,
    )
    .unwrap();
    let out = drain(&mut m);
    assert!(matches!(&out[..], [Output::Send { text, attachments }]
        if text == r#"51-["up",{"_placeholder":true,"num":0}]"# && attachments.len() == 1));
}

#[test]
fn invalid_packets_are_protocol_errors() {
    let t0 = Instant::now();
    let mut m = Connection::new(16, 10);
    m.connect("/", None);
    m.handle_engine_opened();
    drain(&mut m);
    m.handle_text(t0, "2{}");
    assert!(matches!(&drain(&mut m)[..], [Output::ProtocolError(_)]));
    m.handle_binary(t0, Bytes::from_static(&[1]));
    assert!(
        matches!(&drain(&mut m)[..], [Output::ProtocolError(why)] if why.contains("binary attachment"))
    );
}

#[test]
fn answering_a_server_ack() {
    let mut m = Connection::new(16, 10);
    m.connect("/admin", None);
    m.ack("/admin", 7, r#"["ok",1]"#, vec![]);
    m.ack(
        "/admin",
        8,
        r#"[{"_placeholder":true,"num":0}]"#,
        vec![Bytes::from_static(&[1])],
    );
    assert_eq!(
        sent(&drain(&mut m)),
        vec![
            r#"3/admin,7["ok",1]"#,
            r#"61-/admin,8[{"_placeholder":true,"num":0}]"#
        ]
    );
}
