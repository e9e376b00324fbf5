//! Table-driven tests over `fixtures/protocol/engineio.json`: every example of the Engine.IO v4
//! spec and test suite, plus malformed input.

use engineio_codec::{
    Data, DecodeError, Packet, decode, decode_binary, decode_payload, decode_str, encode,
    encode_payload,
};
use serde_json::{Value, json};

fn main() {
    let args = libtest_mimic::Arguments::from_args();
    let fixtures = fixtures();
    let mut trials = Vec::new();
    for (group, check) in [
        ("packet", check_packet as fn(&Value)),
        ("payload", check_payload as fn(&Value)),
    ] {
        for case in fixtures[format!("{group}s")].as_array().unwrap().clone() {
            let name = format!("{group}: {}", case["name"].as_str().unwrap());
            trials.push(libtest_mimic::Trial::test(name, move || {
                check(&case);
                Ok(())
            }));
        }
    }
    for (name, test) in [
        (
            "polling refuses a separator in text and writes nothing of it",
            polling_refuses_a_separator_in_text_and_writes_nothing_of_it as fn(),
        ),
        ("record_len is exact", record_len_is_exact),
        ("errors read well", errors_read_well),
    ] {
        trials.push(libtest_mimic::Trial::test(name, move || {
            test();
            Ok(())
        }));
    }
    libtest_mimic::run(&args, trials).exit();
}

fn fixtures() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/protocol/engineio.json"
    );
    let text = std::fs::read_to_string(path).expect("fixture file");
    serde_json::from_str(&text).expect("fixture JSON")
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

/// The JSON description of a decoded packet, as written in the fixtures.
fn describe(packet: &Packet<'_>) -> Value {
    match packet {
        Packet::Open(h) => json!({"type": "open", "handshake": serde_json::to_value(h).unwrap()}),
        Packet::Close => json!({"type": "close"}),
        Packet::Ping(d) => json!({"type": "ping", "data": d}),
        Packet::Pong(d) => json!({"type": "pong", "data": d}),
        Packet::Message(Data::Text(t)) => json!({"type": "message", "text": t}),
        Packet::Message(Data::Binary(b)) => json!({"type": "message", "binary": hex(b)}),
        Packet::Upgrade => json!({"type": "upgrade"}),
        Packet::Noop => json!({"type": "noop"}),
    }
}

fn describe_error(e: &DecodeError) -> Value {
    json!({"code": e.kind().code(), "offset": e.offset()})
}

fn check_packet(case: &Value) {
    {
        let name = case["name"].as_str().unwrap();
        let (input, decoded) = if let Some(text) = case["text"].as_str() {
            // The text form must decode the same from bytes and from a str.
            let from_bytes = decode(text.as_bytes());
            assert_eq!(from_bytes, decode_str(text), "{name}: bytes vs str");
            (text.as_bytes().to_vec(), from_bytes)
        } else if let Some(frame) = case["binary_frame"].as_str() {
            let bytes = unhex(frame);
            let packet = decode_binary(&bytes);
            let described = describe(&packet);
            assert_eq!(described, case["expect"], "{name}");
            let mut out = Vec::new();
            assert_eq!(encode(&packet, &mut out), engineio_codec::FrameKind::Binary);
            assert_eq!(out, bytes, "{name}: re-encoding");
            return;
        } else {
            let bytes = unhex(case["bytes_hex"].as_str().unwrap());
            let error = decode(&bytes).expect_err("raw byte vectors are all malformed");
            assert_eq!(&describe_error(&error), &case["error"], "{name}: {error}");
            return;
        };
        match (&decoded, case.get("error")) {
            (Ok(packet), None) => {
                assert_eq!(describe(packet), case["expect"], "{name}");
                if case["canonical"] != json!(false) {
                    let mut out = Vec::new();
                    assert_eq!(encode(packet, &mut out), engineio_codec::FrameKind::Text);
                    assert_eq!(
                        String::from_utf8_lossy(&out),
                        String::from_utf8_lossy(&input),
                        "{name}: re-encoding"
                    );
                }
            }
            (Err(e), Some(expected)) => {
                assert_eq!(&describe_error(e), expected, "{name}: {e}");
                // Every error message names the byte and a reason a person can act on.
                assert!(e.to_string().contains(&format!("at byte {}", e.offset())));
            }
            (Ok(p), Some(_)) => panic!("{name}: expected an error, decoded {p:?}"),
            (Err(e), None) => panic!("{name}: unexpected error {e}"),
        }
    }
}

fn check_payload(case: &Value) {
    {
        let name = case["name"].as_str().unwrap();
        let body = case["body"].as_str().unwrap();
        let mut packets = Vec::new();
        let mut error = None;
        for item in decode_payload(body.as_bytes()) {
            match item {
                Ok(p) => packets.push(p),
                Err(e) => {
                    assert!(
                        error.is_none(),
                        "{name}: the decoder must stop after an error"
                    );
                    error = Some(e);
                }
            }
        }
        let described: Vec<Value> = packets.iter().map(describe).collect();
        assert_eq!(Value::from(described), case["expect"], "{name}");
        assert_eq!(
            error.as_ref().map(describe_error),
            case.get("error").cloned(),
            "{name}: error"
        );
        if error.is_none() && case["canonical"] != json!(false) {
            let mut out = Vec::new();
            encode_payload(&packets, &mut out).unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), body, "{name}: re-encoding");
        }
    }
}

fn polling_refuses_a_separator_in_text_and_writes_nothing_of_it() {
    let mut out = Vec::new();
    let err =
        encode_payload(&[Packet::text("ok"), Packet::text("a\u{1e}b")], &mut out).unwrap_err();
    assert_eq!(
        err,
        engineio_codec::EncodeError::RecordSeparator { offset: 1 }
    );
    assert_eq!(
        out, b"4ok",
        "the good record stays, the bad one and its separator do not"
    );
    assert!(err.to_string().contains("long-polling"));
}

fn record_len_is_exact() {
    let handshake =
        decode_str(r#"0{"sid":"s","upgrades":[],"pingInterval":1,"pingTimeout":2}"#).unwrap();
    let bytes: Vec<u8> = (0..=255).collect();
    for packet in [
        Packet::text("héllo"),
        Packet::binary(&[]),
        Packet::binary(&[1]),
        Packet::binary(&[1, 2]),
        Packet::binary(&[1, 2, 3]),
        Packet::binary(&bytes),
        Packet::Ping("probe"),
        Packet::Noop,
        handshake,
    ] {
        let mut out = Vec::new();
        engineio_codec::encode_record(&packet, &mut out).unwrap();
        assert_eq!(engineio_codec::record_len(&packet), out.len(), "{packet:?}");
    }
}

fn errors_read_well() {
    let e = decode(b"abc").unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid Engine.IO packet at byte 0: unknown packet type \"a\": expected a type character '0'..='6' (is the peer an Engine.IO v4 server?)"
    );
    let e = decode_payload(b"4ok\x1ebAQ!D").nth(1).unwrap().unwrap_err();
    assert_eq!(e.offset(), 7, "offset counts from the start of the body");
    assert!(e.to_string().contains("not valid base64"), "{e}");
}
