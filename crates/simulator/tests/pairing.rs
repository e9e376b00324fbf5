//! The simulated pairing firmware seen from outside, its identity proofs checked with crema's
//! own verifier (`meticulous::identity`): tokens required on REST and on the socket.io CONNECT,
//! pairing with the code on the screen, the identity challenge, a device's revoke, an identity
//! reset; and an open machine without any of it.

use std::time::Duration;

use base64::Engine as _;
use meticulous::identity::{Challenge, ChallengeAnswer, IdentityError, PinnedKey};
use serde_json::{Value, json};
use simulator::{Simulator, SimulatorConfig};
use socketio_v5::{Auth, Client, ClientConfig, Event};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// One HTTP/1.0 request: the status and the body as JSON (`Null` when it is not).
async fn call(
    sim: &Simulator,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &Value,
) -> (u16, Value) {
    let mut tcp = tokio::net::TcpStream::connect(sim.addr()).await.unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    tcp.write_all(
        format!(
            "{method} {path} HTTP/1.0\r\nHost: sim\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// Pairs as a person at the machine would: asks, reads the code off the screen, types it.
async fn pair(sim: &Simulator) -> Value {
    let (status, asked) = call(
        sim,
        "POST",
        "/api/v1/pair/request",
        None,
        &json!({"device_name": "crema test"}),
    )
    .await;
    assert_eq!(status, 200, "{asked}");
    let (id, code) = sim.pairing_code().unwrap();
    assert_eq!(asked["pairing_id"], id.as_str());
    let (status, wrong) = call(
        sim,
        "POST",
        "/api/v1/pair/verify",
        None,
        &json!({"pairing_id": id, "code": "000000x"}),
    )
    .await;
    assert_eq!((status, &wrong["error"]), (400, &json!("invalid_code")));
    let (status, paired) = call(
        sim,
        "POST",
        "/api/v1/pair/verify",
        None,
        &json!({"pairing_id": id, "code": code}),
    )
    .await;
    assert_eq!(status, 200, "{paired}");
    assert_eq!(paired["status"], "approved");
    paired
}

/// The identity challenge for the simulator's own origin, answered and verified under `pinned`.
async fn prove(sim: &Simulator, pinned: &PinnedKey) -> Result<String, IdentityError> {
    let mut nonce = [0u8; 32];
    nonce
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = i as u8 ^ 0x5a);
    let challenge = Challenge::new(&sim.url(), nonce).unwrap();
    let (status, answer) = call(
        sim,
        "POST",
        "/api/v1/identity/challenge",
        None,
        &challenge.body(),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let answer = ChallengeAnswer::parse(answer.to_string().as_bytes())?;
    challenge.verify(pinned, &answer)
}

async fn connects(sim: &Simulator, auth: Auth) -> bool {
    let client = Client::new(ClientConfig::new(&sim.url()).unwrap());
    let (_socket, mut events) = client.socket("/", auth).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match events.recv().await {
                Some(Event::Connect { .. }) => return true,
                Some(Event::ConnectError { .. }) | None => return false,
                _ => {}
            }
        }
    })
    .await
    .expect("an answer to the CONNECT");
    client.close();
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paired_device_and_the_identity_it_pinned() {
    let sim = Simulator::start(SimulatorConfig {
        pairing: true,
        ..Default::default()
    })
    .await
    .unwrap();
    // Without a token: 401 on REST, a refused CONNECT; the public routes answer.
    let (status, body) = call(&sim, "GET", "/api/v1/history", None, &Value::Null).await;
    assert_eq!((status, body), (401, json!({"error": "Unauthorized"})));
    assert!(!connects(&sim, Auth::None).await);
    let (status, machine) = call(&sim, "GET", "/api/v1/machine", None, &Value::Null).await;
    assert_eq!(status, 200);
    let pinned =
        PinnedKey::from_base64(machine["identity"]["public_key"].as_str().unwrap()).unwrap();
    assert_eq!(machine["identity"]["fingerprint"], pinned.fingerprint());

    let paired = pair(&sim).await;
    let token = paired["token"].as_str().unwrap().to_owned();
    assert_eq!(paired["identity"]["fingerprint"], pinned.fingerprint());
    let (status, _) = call(&sim, "GET", "/api/v1/history", Some(&token), &Value::Null).await;
    assert_eq!(status, 200);
    assert!(connects(&sim, Auth::Static(json!({"token": token}))).await);
    assert!(!connects(&sim, Auth::Static(json!({"token": "not-a-token"}))).await);

    // The machine proves its pinned key for its own origin, and only for it.
    assert_eq!(
        prove(&sim, &pinned).await.unwrap(),
        paired["serial"].as_str().unwrap()
    );
    let elsewhere = Challenge::new("http://meticulous.local", [1; 32]).unwrap();
    let (status, refused) = call(
        &sim,
        "POST",
        "/api/v1/identity/challenge",
        None,
        &elsewhere.body(),
    )
    .await;
    assert_eq!(
        (status, &refused["error"]),
        (400, &json!("origin_not_mine"))
    );
    let short = json!({"nonce": base64::engine::general_purpose::STANDARD.encode([0u8; 16]), "origin": sim.url()});
    let (status, refused) = call(&sim, "POST", "/api/v1/identity/challenge", None, &short).await;
    assert_eq!((status, &refused["error"]), (400, &json!("invalid_nonce")));

    // The device forgets itself: its token no longer opens anything.
    let (status, _) = call(
        &sim,
        "POST",
        "/api/v1/pair/devices/self/revoke",
        Some(&token),
        &Value::Null,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(&sim, "GET", "/api/v1/history", Some(&token), &Value::Null).await;
    assert_eq!(status, 401);

    // An identity reset: a new key, every device revoked; the pinned key is no longer proven.
    let again = pair(&sim).await["token"].as_str().unwrap().to_owned();
    sim.firmware().unwrap().lock().unwrap().reset_identity();
    let (status, _) = call(&sim, "GET", "/api/v1/history", Some(&again), &Value::Null).await;
    assert_eq!(status, 401);
    assert!(matches!(
        prove(&sim, &pinned).await,
        Err(IdentityError::KeyChanged { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_requests_are_rate_limited() {
    let sim = Simulator::start(SimulatorConfig {
        pairing: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let (status, _) = call(
            &sim,
            "POST",
            "/api/v1/pair/request",
            None,
            &json!({"device_name": "crema"}),
        )
        .await;
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429]);
    let (status, _) = call(
        &sim,
        "POST",
        "/api/v1/pair/request",
        None,
        &json!({"device_name": "two\nlines"}),
    )
    .await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_machine_needs_nothing() {
    let sim = Simulator::start(SimulatorConfig::default()).await.unwrap();
    let (status, _) = call(&sim, "GET", "/api/v1/history", None, &Value::Null).await;
    assert_eq!(status, 200);
    let (status, machine) = call(&sim, "GET", "/api/v1/machine", None, &Value::Null).await;
    assert_eq!(status, 200);
    assert!(machine.get("identity").is_none(), "{machine}");
    assert!(connects(&sim, Auth::None).await);
}
