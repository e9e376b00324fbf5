//! A sequence of Engine.IO messages (text and binary) through the attachment reassembler.
#![no_main]

use libfuzzer_sys::fuzz_target;
use socketio_v5::codec::Reassembler;

fuzz_target!(|data: &[u8]| {
    // First byte: the attachment cap; then messages split on 0xff, each tagged by its first byte
    // (even: text, odd: binary).
    let Some((&cap, rest)) = data.split_first() else {
        return;
    };
    let mut reassembler = Reassembler::new(usize::from(cap % 16));
    for chunk in rest.split(|&b| b == 0xff) {
        let Some((&tag, body)) = chunk.split_first() else {
            continue;
        };
        let result = if tag % 2 == 0 {
            match std::str::from_utf8(body) {
                Ok(text) => reassembler.text(text).map(|m| m.map(|m| m.into_owned())),
                Err(_) => continue,
            }
        } else {
            reassembler.binary(body.to_vec().into())
        };
        if let Ok(Some(message)) = result {
            assert_eq!(message.attachments.len(), message.packet.attachments());
        }
    }
});
