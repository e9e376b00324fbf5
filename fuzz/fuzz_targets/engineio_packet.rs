//! One WebSocket frame from an untrusted server: text form and binary form.
#![no_main]

use engineio_codec::{FrameKind, decode, decode_binary, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = decode(data) {
        // Whatever decodes re-encodes into a frame that decodes to the same packet.
        let mut out = Vec::new();
        let again = match encode(&packet, &mut out) {
            FrameKind::Text => decode(&out).expect("re-encoded text decodes"),
            FrameKind::Binary => decode_binary(&out),
        };
        assert_eq!(again, packet);
    }
    let binary = decode_binary(data);
    let mut out = Vec::new();
    assert_eq!(encode(&binary, &mut out), FrameKind::Binary);
    assert_eq!(out, data);
});
