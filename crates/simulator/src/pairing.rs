//! The machine's pairing firmware, as the simulator plays it (`SimulatorConfig::pairing`): what
//! the project's notes on pairing read from the firmware's source. Its own P-256 identity
//! (`GET /api/v1/machine`, `POST /api/v1/identity/challenge`), pairing with a 6-digit code shown
//! "on the screen" (here: [`crate::Simulator::pairing_code`] and the log), device tokens checked
//! on every REST call but the public ones and on the socket.io CONNECT, a device's own revoke,
//! and an identity reset that revokes every device. Unlike the machine, it exempts no loopback
//! caller: the tests connect from 127.0.0.1.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use p256::ecdsa::signature::Signer as _;
use p256::ecdsa::{Signature, SigningKey};
use p256::pkcs8::EncodePublicKey as _;
use rand_core::{OsRng, RngCore as _};
use serde_json::{Value, json};

/// How long a pairing code may be typed.
pub const CODE_TTL: Duration = Duration::from_secs(300);

/// Pairing requests taken per minute before `429`.
const REQUESTS_PER_MINUTE: usize = 5;

/// The machine's identity, pairings and devices.
#[derive(Debug)]
pub struct Firmware {
    serial: String,
    key: SigningKey,
    /// The origins it signs for (its own address).
    origins: Vec<String>,
    pending: HashMap<String, Pending>,
    /// Token → device id.
    devices: HashMap<String, String>,
    requests: Vec<Instant>,
    /// The last code shown on the screen: `(pairing_id, code)`.
    pub shown: Option<(String, String)>,
}

#[derive(Debug)]
struct Pending {
    code: String,
    name: String,
    until: Instant,
    approved: bool,
}

/// The firmware as the routes share it.
pub type Shared = Arc<Mutex<Firmware>>;

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

impl Firmware {
    /// A machine with serial `serial`, a new identity, and no device, signing for `origins`.
    pub fn new(serial: &str, origins: Vec<String>) -> Firmware {
        Firmware {
            serial: serial.to_owned(),
            key: SigningKey::random(&mut OsRng),
            origins,
            pending: HashMap::new(),
            devices: HashMap::new(),
            requests: Vec::new(),
            shown: None,
        }
    }

    /// Its public key, SubjectPublicKeyInfo DER.
    fn public_der(&self) -> Vec<u8> {
        self.key
            .verifying_key()
            .to_public_key_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default()
    }

    /// Its public key, SubjectPublicKeyInfo DER, base64.
    pub fn public_key(&self) -> String {
        B64.encode(self.public_der())
    }

    fn identity(&self) -> Value {
        let der = self.public_der();
        json!({
            "alg": "ES256",
            "public_key": B64.encode(&der),
            "fingerprint": meticulous::identity::fingerprint(&der),
        })
    }

    /// Whether `token` is a paired device's.
    pub fn knows(&self, token: &str) -> bool {
        self.devices.contains_key(token)
    }

    /// Every device forgets its pairing (the owner revoked them all).
    pub fn revoke_all(&mut self) {
        self.devices.clear();
    }

    /// A new identity: a new key, and every device revoked (what a reset does).
    pub fn reset_identity(&mut self) {
        self.key = SigningKey::random(&mut OsRng);
        self.devices.clear();
    }
}

/// The firmware's routes: the public ones, and the revoke (with a token).
pub fn routes(firmware: Shared) -> axum::Router {
    axum::Router::new()
        .route("/api/v1/machine", get(machine))
        .route("/api/v1/pair/request", post(request))
        .route("/api/v1/pair/verify", post(verify))
        .route("/api/v1/pair/status/{id}", get(status))
        .route("/api/v1/pair/devices/self/revoke", post(revoke))
        .route("/api/v1/identity/challenge", post(challenge))
        .with_state(firmware)
}

fn error(status: StatusCode, code: &str) -> Response {
    (status, Json(json!({"error": code}))).into_response()
}

/// The bearer token of a request.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// In front of the routes a device needs its token for: `401 {"error": "Unauthorized"}`
/// without a valid one.
pub async fn require_token(
    State(firmware): State<Shared>,
    request: Request,
    next: Next,
) -> Response {
    let known =
        bearer(request.headers()).is_some_and(|t| firmware.lock().is_ok_and(|f| f.knows(t)));
    if !known {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    next.run(request).await
}

async fn machine(State(firmware): State<Shared>) -> Response {
    let Ok(f) = firmware.lock() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "internal");
    };
    Json(json!({"serial": f.serial, "name": "Simulated Meticulous", "identity": f.identity()}))
        .into_response()
}

async fn request(State(firmware): State<Shared>, Json(body): Json<Value>) -> Response {
    let Some(name) = body["device_name"].as_str() else {
        return error(StatusCode::BAD_REQUEST, "invalid_device_name");
    };
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return error(StatusCode::BAD_REQUEST, "invalid_device_name");
    }
    let Ok(mut f) = firmware.lock() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "internal");
    };
    let now = Instant::now();
    f.requests
        .retain(|at| now.duration_since(*at) < Duration::from_secs(60));
    if f.requests.len() >= REQUESTS_PER_MINUTE {
        return error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    }
    f.requests.push(now);
    let id = random_hex(8);
    let code = format!("{:06}", OsRng.next_u32() % 1_000_000);
    tracing::info!(
        "simulator: a device wants to connect: {name}. To allow it, type this code on the device: {code}"
    );
    f.pending.insert(
        id.clone(),
        Pending {
            code: code.clone(),
            name: name.to_owned(),
            until: now + CODE_TTL,
            approved: false,
        },
    );
    f.shown = Some((id.clone(), code));
    Json(json!({"pairing_id": id, "expires_in": CODE_TTL.as_secs()})).into_response()
}

async fn verify(State(firmware): State<Shared>, Json(body): Json<Value>) -> Response {
    let (Some(id), Some(code)) = (body["pairing_id"].as_str(), body["code"].as_str()) else {
        return error(StatusCode::BAD_REQUEST, "invalid_code");
    };
    let Ok(mut f) = firmware.lock() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "internal");
    };
    let good = f
        .pending
        .get(id)
        .is_some_and(|p| !p.approved && p.until > Instant::now() && p.code == code.trim());
    if !good {
        // Deliberately not 401: a mistyped code must not make a client drop a good token.
        return error(StatusCode::BAD_REQUEST, "invalid_code");
    }
    let name = f.pending.get_mut(id).map(|p| {
        p.approved = true;
        p.name.clone()
    });
    let token = random_hex(32);
    let device = format!("dev-{}", random_hex(4));
    f.devices.insert(token.clone(), device.clone());
    tracing::info!("simulator: paired {}", name.unwrap_or_default());
    Json(json!({
        "status": "approved",
        "token": token,
        "device_id": device,
        "serial": f.serial,
        "identity": f.identity(),
    }))
    .into_response()
}

async fn status(State(firmware): State<Shared>, Path(id): Path<String>) -> Response {
    let Ok(f) = firmware.lock() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "internal");
    };
    match f.pending.get(&id) {
        Some(p) if p.approved => Json(json!({"status": "approved"})).into_response(),
        Some(p) if p.until > Instant::now() => Json(json!({"status": "pending"})).into_response(),
        Some(_) => Json(json!({"status": "expired"})).into_response(),
        None => error(StatusCode::NOT_FOUND, "unknown_pairing"),
    }
}

async fn revoke(State(firmware): State<Shared>, headers: HeaderMap) -> Response {
    let Ok(mut f) = firmware.lock() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "internal");
    };
    match bearer(&headers).and_then(|t| f.devices.remove(t)) {
        Some(device) => Json(json!({"status": "revoked", "device_id": device})).into_response(),
        None => error(StatusCode::UNAUTHORIZED, "Unauthorized"),
    }
}

async fn challenge(State(firmware): State<Shared>, Json(body): Json<Value>) -> Response {
    let nonce = body["nonce"]
        .as_str()
        .and_then(|n| B64.decode(n).ok())
        .filter(|n| n.len() == 32);
    let Some(nonce) = nonce else {
        return error(StatusCode::BAD_REQUEST, "invalid_nonce");
    };
    let Some(origin) = body["origin"]
        .as_str()
        .and_then(|o| meticulous::identity::canonical_origin(o).ok())
        .filter(|o| body["origin"].as_str() == Some(o))
    else {
        return error(StatusCode::BAD_REQUEST, "invalid_origin");
    };
    let Ok(f) = firmware.lock() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "internal");
    };
    if !f.origins.contains(&origin) {
        return error(StatusCode::BAD_REQUEST, "origin_not_mine");
    }
    let message = meticulous::identity::message(&f.serial, &origin, &nonce);
    let signature: Signature = f.key.sign(&message);
    let signature = signature.normalize_s().unwrap_or(signature);
    let mut answer = f.identity();
    answer["serial"] = json!(f.serial);
    answer["origin"] = json!(origin);
    answer["nonce"] = json!(B64.encode(&nonce));
    answer["signature"] = json!(B64.encode(signature.to_bytes()));
    Json(answer).into_response()
}
