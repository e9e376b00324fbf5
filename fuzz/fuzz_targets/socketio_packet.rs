//! The text of one socket.io packet from an untrusted server.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketio::codec::{decode, encode};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match decode(text) {
        Ok(packet) => {
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
