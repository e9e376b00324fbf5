//! Table-driven tests over `fixtures/protocol/socketio.json`: every example of the socket.io v5
//! spec and test suite, binary reassembly sequences, and malformed input. One test per vector.

use libtest_mimic::{Arguments, Trial};
use serde_json::{Value, json};
use socketio_v5::codec::{
    DecodeError, EventName, Message, Packet, PacketKind, Reassembler, decode, encode,
};

fn main() {
    let args = Arguments::from_args();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/protocol/socketio.json"
    );
    let fixtures: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture file")).expect("JSON");
    let mut trials = Vec::new();
    for (group, check) in [
        ("packet", check_packet as fn(&Value)),
        ("sequence", check_sequence as fn(&Value)),
    ] {
        for case in fixtures[format!("{group}s")].as_array().unwrap().clone() {
            let name = format!("{group}: {}", case["name"].as_str().unwrap());
            trials.push(Trial::test(name, move || {
                check(&case);
                Ok(())
            }));
        }
    }
    libtest_mimic::run(&args, trials).exit();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

fn kind_name(kind: PacketKind) -> &'static str {
    match kind {
        PacketKind::Connect => "connect",
        PacketKind::Disconnect => "disconnect",
        PacketKind::Event => "event",
        PacketKind::Ack => "ack",
        PacketKind::ConnectError => "connect_error",
        PacketKind::BinaryEvent => "binary_event",
        PacketKind::BinaryAck => "binary_ack",
    }
}

/// The JSON description of a decoded packet, as written in the fixtures.
fn describe(packet: &Packet<'_>) -> Value {
    let mut d = json!({"kind": kind_name(packet.kind()), "namespace": packet.namespace()});
    if let Some(id) = packet.id() {
        d["id"] = id.into();
    }
    if packet.kind().is_binary() {
        d["attachments"] = packet.attachments().into();
    }
    if let Some(name) = packet.event_name() {
        d["event"] = match name {
            EventName::Str(s) => Value::from(s.as_ref()),
            EventName::Number(n) => Value::Number(n.clone()),
        };
    }
    if let Some(data) = packet.data() {
        d["data"] = data.deserialize().expect("decoded JSON re-parses");
    }
    d
}

fn describe_message(message: &Message<'_>) -> Value {
    let mut d = describe(&message.packet);
    if message.packet.kind().is_binary() {
        d["binary"] = message.attachments.iter().map(|a| hex(a)).collect();
    }
    d
}

fn describe_error(e: &DecodeError) -> Value {
    json!({"code": e.kind().code(), "offset": e.offset()})
}

fn check_packet(case: &Value) {
    let name = case["name"].as_str().unwrap();
    let text = case["text"].as_str().unwrap();
    match (decode(text), case.get("error")) {
        (Ok(packet), None) => {
            assert_eq!(describe(&packet), case["expect"], "{name}");
            if case["canonical"] != json!(false) {
                let mut out = Vec::new();
                encode(&packet, &mut out);
                assert_eq!(String::from_utf8(out).unwrap(), text, "{name}: re-encoding");
            }
            // Building the same packet from its parts gives the same packet.
            let rebuilt = Packet::checked(
                packet.kind(),
                packet.namespace(),
                packet.id(),
                packet.attachments(),
                packet.data().cloned(),
            )
            .unwrap();
            assert_eq!(describe(&rebuilt), describe(&packet), "{name}: from parts");
        }
        (Err(e), Some(expected)) => {
            assert_eq!(&describe_error(&e), expected, "{name}: {e}");
            assert!(e.to_string().contains(&format!("at byte {}", e.offset())));
        }
        (Ok(p), Some(_)) => panic!("{name}: expected an error, decoded {p:?}"),
        (Err(e), None) => panic!("{name}: unexpected error {e}"),
    }
}

fn check_sequence(case: &Value) {
    let name = case["name"].as_str().unwrap();
    let max = case["max_attachments"].as_u64().map_or(10, |n| n as usize);
    let mut reassembler = Reassembler::new(max);
    let mut out = Vec::new();
    let mut error = None;
    for message in case["messages"].as_array().unwrap() {
        let result = if let Some(text) = message["text"].as_str() {
            reassembler
                .text(text)
                .map(|m| m.map(|m| describe_message(&m)))
        } else {
            let bytes = unhex(message["binary"].as_str().unwrap());
            reassembler
                .binary(bytes.into())
                .map(|m| m.map(|m| describe_message(&m)))
        };
        match result {
            Ok(Some(described)) => out.push(described),
            Ok(None) => {}
            Err(e) => {
                error = Some(describe_error(&e));
                break;
            }
        }
    }
    assert_eq!(Value::from(out), case["expect"], "{name}");
    assert_eq!(error, case.get("error").cloned(), "{name}: error");
    if error.is_some() {
        assert!(
            !reassembler.is_pending(),
            "{name}: an error resets the reassembler"
        );
    }
}
