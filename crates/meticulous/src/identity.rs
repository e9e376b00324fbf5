//! The machine's identity proof, as the pairing firmware defines it (facts in the project's
//! shared notes on pairing): pure, no IO, no clock, no randomness (the caller draws the nonce).
//!
//! A paired client pins the machine's public key (ECDSA P-256, SubjectPublicKeyInfo DER) and,
//! before it sends its token to an address, asks the address to sign a fresh nonce for the
//! origin it is talking to. [`Challenge::verify`] says whether the answer proves the pinned key:
//! the same algorithm, the nonce and origin sent echoed back, the pinned key presented, and a
//! valid low-S signature under it over the length-prefixed [`message`]. Anything else is an
//! [`IdentityError`]: the token must not go to that address.
//!
//! ```
//! use meticulous::identity::{canonical_origin, message};
//! assert_eq!(canonical_origin("http://Meticulous.local:80/api").unwrap(), "http://meticulous.local");
//! let m = message("MET-1", "http://meticulous.local", &[7; 32]);
//! assert_eq!(&m[..2], &[0, 30]); // the length of "meticulous-machine-identity/v1"
//! ```

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use p256::ecdsa::signature::Verifier as _;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey as _;
use sha2::Digest as _;

/// The first field of every signed message.
pub const DOMAIN: &str = "meticulous-machine-identity/v1";

/// The only algorithm the firmware signs with.
pub const ALG: &str = "ES256";

/// Why an answer proves nothing, or an origin or key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The URL has no canonical origin.
    #[error("{url:?} has no origin the machine can sign for: {reason}")]
    Origin {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The answer is not the JSON object the firmware sends.
    #[error("the identity answer is not the firmware's JSON: {0}")]
    NotJson(String),
    /// Signed with another algorithm.
    #[error("the identity answer is signed with {0:?}, not ES256")]
    Algorithm(String),
    /// A field that should be base64 is not.
    #[error("the identity answer's {0} is not base64")]
    Base64(&'static str),
    /// A public key that is not a P-256 SubjectPublicKeyInfo.
    #[error("the {0} public key is not an ECDSA P-256 key")]
    NotP256(&'static str),
    /// The nonce sent is not the one echoed back.
    #[error("the identity answer is for another nonce")]
    Nonce,
    /// The origin sent is not the one echoed back.
    #[error("the identity answer is for the origin {0:?}, not the one asked")]
    OriginEchoed(String),
    /// The address presents another key than the one pinned: an impostor, or a machine whose
    /// identity was reset.
    #[error("the machine presents the key {presented}, not the pinned {pinned}")]
    KeyChanged {
        /// The pinned key's fingerprint.
        pinned: String,
        /// The presented key's fingerprint.
        presented: String,
    },
    /// A signature that is not 64 bytes (`r‖s`).
    #[error("the signature is {0} bytes, not 64 (r‖s)")]
    SignatureLength(usize),
    /// A signature with a high S (the firmware signs with low S only).
    #[error("the signature's S is high (the firmware signs with low S)")]
    HighS,
    /// The signature does not verify under the pinned key.
    #[error("the signature does not verify under the pinned key")]
    Signature,
}

/// The canonical origin of `url`: scheme (`http` or `https`) and host lowercased, a trailing
/// dot dropped, IPv6 compressed and bracketed (zone ids refused), the default port left out;
/// no userinfo, path, query or fragment. `http://Meticulous.local:80/` is
/// `http://meticulous.local`.
pub fn canonical_origin(url: &str) -> Result<String, IdentityError> {
    let fail = |reason| IdentityError::Origin {
        url: url.to_owned(),
        reason,
    };
    // The URL standard reads `http:host` and `http:///host` as `http://host`; an origin is
    // written whole (as RFC 3986 and the firmware read it, these have no host).
    match url.trim().split_once("://") {
        Some((_, rest)) if !rest.is_empty() && !rest.starts_with('/') => {}
        _ => return Err(fail("no host after `scheme://`")),
    }
    let parsed = url::Url::parse(url.trim()).map_err(|_| fail("it does not parse"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(fail("the scheme is not http or https"));
    }
    let host = match parsed.host() {
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.');
            if name.is_empty() {
                return Err(fail("no host"));
            }
            name.to_ascii_lowercase()
        }
        Some(url::Host::Ipv4(v4)) => v4.to_string(),
        // The URL standard's form: hex groups, the longest run of zeros compressed, and an
        // IPv4-mapped address in hex too (`[::ffff:c0a8:114]`), as Python's `ipaddress`
        // writes it; Rust's `Ipv6Addr` would write `::ffff:192.168.1.20`.
        Some(url::Host::Ipv6(v6)) => url::Host::<String>::Ipv6(v6).to_string(),
        None => return Err(fail("no host")),
    };
    // `url` leaves the scheme's default port out already.
    Ok(match parsed.port() {
        Some(port) => format!("{}://{host}:{port}", parsed.scheme()),
        None => format!("{}://{host}", parsed.scheme()),
    })
}

/// The bytes the machine signs: `lp(DOMAIN) ‖ lp(serial) ‖ lp(origin) ‖ lp(nonce)`, each field
/// preceded by its length as two bytes, big-endian.
pub fn message(serial: &str, origin: &str, nonce: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + DOMAIN.len() + serial.len() + origin.len() + nonce.len());
    for field in [
        DOMAIN.as_bytes(),
        serial.as_bytes(),
        origin.as_bytes(),
        nonce,
    ] {
        let len = u16::try_from(field.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&field[..usize::from(len)]);
    }
    out
}

/// The lowercase hex SHA-256 of a key's SubjectPublicKeyInfo DER: how the firmware names it.
pub fn fingerprint(spki_der: &[u8]) -> String {
    sha2::Sha256::digest(spki_der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The machine's key as pinned when it was paired.
#[derive(Clone)]
pub struct PinnedKey {
    key: VerifyingKey,
    der: Vec<u8>,
    fingerprint: String,
}

impl std::fmt::Debug for PinnedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinnedKey")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

impl PinnedKey {
    /// The key from its SubjectPublicKeyInfo DER, base64 (as the firmware sends it).
    pub fn from_base64(public_key: &str) -> Result<PinnedKey, IdentityError> {
        let der = B64
            .decode(public_key.trim())
            .map_err(|_| IdentityError::Base64("public_key"))?;
        let key = VerifyingKey::from_public_key_der(&der)
            .map_err(|_| IdentityError::NotP256("pinned"))?;
        Ok(PinnedKey {
            fingerprint: fingerprint(&der),
            key,
            der,
        })
    }

    /// Its fingerprint.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Its SubjectPublicKeyInfo DER, base64 (what is stored).
    pub fn to_base64(&self) -> String {
        B64.encode(&self.der)
    }
}

/// `POST /api/v1/identity/challenge`'s answer, as the firmware sends it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct ChallengeAnswer {
    /// `ES256`.
    pub alg: String,
    /// The machine's serial (signed).
    pub serial: String,
    /// The origin it signed for (the one asked).
    pub origin: String,
    /// The nonce it signed (the one sent), base64.
    pub nonce: String,
    /// Its key, SubjectPublicKeyInfo DER, base64.
    pub public_key: String,
    /// Its key's fingerprint.
    pub fingerprint: String,
    /// `r‖s`, base64.
    pub signature: String,
}

impl ChallengeAnswer {
    /// Reads an answer's body.
    pub fn parse(body: &[u8]) -> Result<ChallengeAnswer, IdentityError> {
        serde_json::from_slice(body).map_err(|e| IdentityError::NotJson(e.to_string()))
    }
}

/// A challenge sent: the nonce and the canonical origin it was sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    nonce: [u8; 32],
    origin: String,
}

impl Challenge {
    /// A challenge of `nonce` (32 fresh random bytes: the caller's to draw) for the machine at
    /// `url`.
    pub fn new(url: &str, nonce: [u8; 32]) -> Result<Challenge, IdentityError> {
        Ok(Challenge {
            nonce,
            origin: canonical_origin(url)?,
        })
    }

    /// The origin it is for.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The request's body: `{"nonce", "origin"}`.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"nonce": B64.encode(self.nonce), "origin": self.origin})
    }

    /// Whether `answer` proves that the address holds `pinned`; the serial it signed when it
    /// does.
    pub fn verify(
        &self,
        pinned: &PinnedKey,
        answer: &ChallengeAnswer,
    ) -> Result<String, IdentityError> {
        if answer.alg != ALG {
            return Err(IdentityError::Algorithm(answer.alg.clone()));
        }
        let nonce = B64
            .decode(answer.nonce.trim())
            .map_err(|_| IdentityError::Base64("nonce"))?;
        if nonce != self.nonce {
            return Err(IdentityError::Nonce);
        }
        if answer.origin != self.origin {
            return Err(IdentityError::OriginEchoed(answer.origin.clone()));
        }
        let presented = B64
            .decode(answer.public_key.trim())
            .map_err(|_| IdentityError::Base64("public_key"))?;
        if presented != pinned.der || !answer.fingerprint.eq_ignore_ascii_case(&pinned.fingerprint)
        {
            return Err(IdentityError::KeyChanged {
                pinned: pinned.fingerprint.clone(),
                presented: fingerprint(&presented),
            });
        }
        let signature = B64
            .decode(answer.signature.trim())
            .map_err(|_| IdentityError::Base64("signature"))?;
        if signature.len() != 64 {
            return Err(IdentityError::SignatureLength(signature.len()));
        }
        let signature = Signature::from_slice(&signature).map_err(|_| IdentityError::Signature)?;
        if signature.normalize_s().is_some() {
            return Err(IdentityError::HighS);
        }
        pinned
            .key
            .verify(
                &message(&answer.serial, &self.origin, &self.nonce),
                &signature,
            )
            .map_err(|_| IdentityError::Signature)?;
        Ok(answer.serial.clone())
    }
}
