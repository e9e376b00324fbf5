//! What a browser may send the gateway's `/ws`, through the frame decoder, in arbitrary pieces.
#![no_main]

use fanout::frames::{Decoder, Inbound};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte: the piece size; the rest: the bytes as they arrive.
    let Some((&piece, rest)) = data.split_first() else {
        return;
    };
    let max = 256;
    let mut decoder = Decoder::new(max);
    for chunk in rest.chunks(usize::from(piece).max(1)) {
        decoder.push(chunk);
        loop {
            match decoder.decode() {
                Ok(Some(Inbound::Ping(p))) => assert!(p.len() <= 125),
                Ok(Some(Inbound::Text(t))) => assert!(t.len() <= max),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(fault) => {
                    assert!(matches!(fault.code, 1002 | 1007 | 1009), "{fault:?}");
                    return;
                }
            }
        }
        // While waiting, at most one frame (header included) is held.
        assert!(decoder.buffered() <= max + 14);
    }
});
