//! The text of one socket.io packet from an untrusted server.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketio_v5::codec::{Packet, decode, decode_shared, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The shared-buffer decoder reads exactly what `decode` reads.
    let shared = decode_shared(&engineio_codec::Text::from(text));
    assert_eq!(shared, decode(text).map(Packet::into_owned));
    match decode(text) {
        Ok(packet) => {
            // The fast scanner never lets through JSON that serde_json refuses.
            if let Some(data) = packet.data() {
                serde_json::from_str::<serde::de::IgnoredAny>(data.as_str())
                    .expect("accepted payloads are valid JSON");
            }
            let mut out = Vec::new();
            encode(&packet, &mut out);
            let again = String::from_utf8(out).expect("encoding keeps UTF-8");
            assert_eq!(decode(&again).expect("re-encoded packet decodes"), packet);
            // Reading the arguments lazily never panics either.
            let _ = packet.raw_args();
            let _ = packet.args::<Vec<serde_json_ignored::Any>>();
            let _ = packet.connect_ack();
            let _ = packet.connect_error();
        }
        Err(e) => assert!(e.offset() <= text.len()),
    }
});

mod serde_json_ignored {
    /// Accepts any JSON value.
    pub type Any = serde::de::IgnoredAny;
}
