//! A machine's answer to the identity challenge (untrusted JSON) through
//! `meticulous::identity`: read, then verified under a pinned key for a fixed challenge. Any
//! bytes: an error is a value, never a panic; an answer is accepted only when it presents the
//! pinned key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meticulous::identity::{Challenge, ChallengeAnswer, PinnedKey};

/// The machine key of `fixtures/meticulous/identity/vectors.json`.
const PINNED: &str = "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEGjdN10IfkKhrUG3P58oS8aFGb6UiWRvwIFRHeRMQjEQwwzjjfq0Yb99KVeNf/Cm3a7yI1b5YsbpwxJ49egNQqw==";

fuzz_target!(|data: &[u8]| {
    let Ok(answer) = ChallengeAnswer::parse(data) else {
        return;
    };
    let pinned = PinnedKey::from_base64(PINNED).unwrap();
    let challenge = Challenge::new("http://meticulous.local", [7; 32]).unwrap();
    if challenge.verify(&pinned, &answer).is_ok() {
        assert_eq!(answer.public_key.trim(), PINNED);
    }
    let _ = PinnedKey::from_base64(&answer.public_key);
    let _ = meticulous::identity::canonical_origin(&answer.origin);
});
