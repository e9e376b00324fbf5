//! The identity proof against a second implementation: `fixtures/meticulous/identity/vectors.json`
//! was made with Python's `cryptography` package and the standard library
//! (`fixtures/meticulous/identity/make_vectors.py`): canonical origins, the signed message's
//! bytes, fingerprints, and answers signed by the machine's key, by another key, and with a
//! high S.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use meticulous::identity::{
    Challenge, ChallengeAnswer, IdentityError, PinnedKey, canonical_origin, fingerprint, message,
};
use proptest::prelude::*;
use serde_json::Value;

fn vectors() -> Value {
    let text = include_str!("../../../fixtures/meticulous/identity/vectors.json");
    serde_json::from_str(text).unwrap()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

#[test]
fn canonical_origins_as_the_second_implementation_makes_them() {
    let v = vectors();
    for case in v["origins"].as_array().unwrap() {
        let url = s(&case["url"]);
        match case["origin"].as_str() {
            Some(expected) => assert_eq!(canonical_origin(url).unwrap(), expected, "{url}"),
            None => assert!(
                matches!(canonical_origin(url), Err(IdentityError::Origin { .. })),
                "{url}: {:?}",
                canonical_origin(url)
            ),
        }
    }
}

/// A `%` and a `[` in the path are no IPv6 zone id.
#[test]
fn only_the_host_decides_the_origin() {
    assert_eq!(
        canonical_origin("http://meticulous.local/a%20b[1]?q=%5B").unwrap(),
        "http://meticulous.local"
    );
    assert!(canonical_origin("http://[fe80::1%eth0]:80/").is_err());
}

#[test]
fn messages_and_fingerprints_are_byte_for_byte_the_same() {
    let v = vectors();
    let der = B64.decode(s(&v["public_key"])).unwrap();
    assert_eq!(fingerprint(&der), s(&v["fingerprint"]));
    let pinned = PinnedKey::from_base64(s(&v["public_key"])).unwrap();
    assert_eq!(pinned.fingerprint(), s(&v["fingerprint"]));
    assert_eq!(pinned.to_base64(), s(&v["public_key"]));
    for case in v["signatures"].as_array().unwrap() {
        let nonce = B64.decode(s(&case["nonce"])).unwrap();
        let bytes = message(s(&case["serial"]), s(&case["origin"]), &nonce);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, s(&case["message_hex"]));
    }
}

/// A case's challenge (its nonce, for its origin), the pinned key and the answer.
fn case(v: &Value, i: usize) -> (Challenge, PinnedKey, ChallengeAnswer) {
    let case = &v["signatures"][i];
    let nonce: [u8; 32] = B64.decode(s(&case["nonce"])).unwrap().try_into().unwrap();
    let challenge = Challenge::new(s(&case["origin"]), nonce).unwrap();
    let pinned = PinnedKey::from_base64(s(&v["public_key"])).unwrap();
    let answer: ChallengeAnswer =
        ChallengeAnswer::parse(case["answer"].to_string().as_bytes()).unwrap();
    (challenge, pinned, answer)
}

#[test]
fn the_machines_answers_verify_under_the_pinned_key() {
    let v = vectors();
    for i in 0..v["signatures"].as_array().unwrap().len() {
        let (challenge, pinned, answer) = case(&v, i);
        assert_eq!(challenge.verify(&pinned, &answer).unwrap(), answer.serial);
        assert_eq!(challenge.body()["origin"], answer.origin);
    }
}

#[test]
fn every_wrong_answer_is_refused_with_its_reason() {
    let v = vectors();
    let (challenge, pinned, good) = case(&v, 0);
    let refused = |change: &dyn Fn(&mut ChallengeAnswer)| {
        let mut answer = good.clone();
        change(&mut answer);
        challenge.verify(&pinned, &answer).unwrap_err()
    };
    let high_s = s(&v["signatures"][0]["high_s"]).to_owned();
    assert_eq!(
        refused(&|a| a.signature = high_s.clone()),
        IdentityError::HighS
    );
    let other = s(&v["signatures"][0]["by_another_key"]).to_owned();
    assert_eq!(
        refused(&|a| a.signature = other.clone()),
        IdentityError::Signature
    );
    let der = s(&v["signatures"][0]["der"]).to_owned();
    assert!(matches!(
        refused(&|a| a.signature = der.clone()),
        IdentityError::SignatureLength(n) if n > 64
    ));
    assert_eq!(
        refused(&|a| a.signature = "not base64!".into()),
        IdentityError::Base64("signature")
    );
    assert_eq!(
        refused(&|a| a.alg = "ES384".into()),
        IdentityError::Algorithm("ES384".into())
    );
    let nonce = s(&v["signatures"][1]["nonce"]).to_owned();
    assert_eq!(refused(&|a| a.nonce = nonce.clone()), IdentityError::Nonce);
    assert!(matches!(
        refused(&|a| a.origin = "http://192.168.1.20".into()),
        IdentityError::OriginEchoed(_)
    ));
    // Another machine's key, presented whole: an impostor, or an identity reset.
    let other_key = s(&v["other_public_key"]).to_owned();
    let other_fp = s(&v["other_fingerprint"]).to_owned();
    assert_eq!(
        refused(&|a| {
            a.public_key = other_key.clone();
            a.fingerprint = other_fp.clone();
        }),
        IdentityError::KeyChanged {
            pinned: s(&v["fingerprint"]).to_owned(),
            presented: other_fp.clone()
        }
    );
    // The signed serial is the one the answer names: another serial breaks the signature.
    assert_eq!(
        refused(&|a| a.serial = "MET-OTHER".into()),
        IdentityError::Signature
    );
    // Another origin asked: the answer for the first is no proof for it.
    let elsewhere = Challenge::new("http://meticulous.local:8080", [0; 32]).unwrap();
    assert!(elsewhere.verify(&pinned, &good).is_err());
    // A key that is not P-256 cannot be pinned; an answer that is not JSON is no answer.
    assert_eq!(
        PinnedKey::from_base64(s(&v["p384_public_key"])).unwrap_err(),
        IdentityError::NotP256("pinned")
    );
    for body in [&b"not json"[..], b"{}", br#"{"alg":"ES256"}"#] {
        assert!(matches!(
            ChallengeAnswer::parse(body),
            Err(IdentityError::NotJson(_))
        ));
    }
}

proptest! {
    /// A canonical origin is its own canonical origin.
    #[test]
    fn canonical_origins_are_fixed_points(
        scheme in "(?i)https?",
        host in "[A-Za-z0-9-]{1,12}(\\.[A-Za-z0-9-]{1,8}){0,2}\\.?",
        port in proptest::option::of(1u16..),
        path in "(/[a-z0-9?#=&]{0,8}){0,2}",
    ) {
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let url = format!("{scheme}://{host}{port}{path}");
        if let Ok(origin) = canonical_origin(&url) {
            prop_assert_eq!(canonical_origin(&origin).unwrap(), origin.clone());
            prop_assert!(!origin.ends_with('/') && !origin.ends_with('.'));
            prop_assert_eq!(origin.to_ascii_lowercase(), origin);
        }
    }
}
