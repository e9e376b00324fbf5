//! What a browser may send the gateway's `/ws`, through the frame decoder and then the request
//! reader, as the connection does: every text message is read as a request; a request names a
//! topic of bounded length, and a refusal quotes only a little of what was sent.
#![no_main]

use fanout::frames::{Decoder, Inbound, MAX_TOPIC, Request};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // First byte: the piece size; the rest: the bytes as they arrive, or (when the second
    // byte is 0) one request's text as it is.
    let Some((&piece, rest)) = data.split_first() else {
        return;
    };
    if let Some((0, text)) = rest.split_first().map(|(&b, t)| (b, t)) {
        if let Ok(text) = std::str::from_utf8(text) {
            check(text);
        }
        return;
    }
    let mut decoder = Decoder::new(4096);
    for chunk in rest.chunks(usize::from(piece).max(1)) {
        decoder.push(chunk);
        loop {
            match decoder.decode() {
                Ok(Some(Inbound::Text(text))) => check(&text),
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});

fn check(text: &str) {
    match Request::parse(text) {
        Ok(request) => {
            assert!(!request.topic.is_empty() && request.topic.len() <= MAX_TOPIC);
            // What was read is what was sent: the same request read again.
            let again = serde_json::json!({"op": match request.op {
                fanout::frames::Op::Subscribe => "subscribe",
                fanout::frames::Op::Unsubscribe => "unsubscribe",
            }, "topic": request.topic});
            assert_eq!(Request::parse(&again.to_string()), Ok(request));
        }
        Err(why) => assert!(why.len() <= 400, "{} bytes of refusal", why.len()),
    }
}
