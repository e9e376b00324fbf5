//! One long-polling HTTP body from an untrusted server.
#![no_main]

use engineio_codec::{Packet, decode_payload, encode_payload};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut packets: Vec<Packet<'_>> = Vec::new();
    let mut failed = false;
    for item in decode_payload(data) {
        assert!(!failed, "the decoder stops after its first error");
        match item {
            Ok(p) => packets.push(p),
            Err(e) => {
                assert!(e.offset() <= data.len());
                failed = true;
            }
        }
    }
    if !packets.is_empty() {
        // Decoded records contain no separator, so they always re-encode and decode the same.
        let mut body = Vec::new();
        encode_payload(&packets, &mut body).expect("decoded records re-encode");
        let again: Vec<Packet<'_>> = decode_payload(&body)
            .collect::<Result<_, _>>()
            .expect("re-encoded payload decodes");
        assert_eq!(again, packets);
    }
});
