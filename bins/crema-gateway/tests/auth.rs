//! Auth on every route: each route × each kind of caller, the status code of every cell
//! asserted, against the real binary with token auth, a simulated machine and a stored shot.

mod common;

use std::time::Duration;

use common::{eventually, request, start};
use serde_json::Value;
use simulator::{Scenario, Simulator, SimulatorConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The callers: the headers each sends.
const CALLERS: [(&str, &str); 7] = [
    ("no credentials", ""),
    ("wrong token", "Authorization: Bearer nope\r\n"),
    (
        "another machine's token",
        "Authorization: Bearer other-key-0123456789\r\n",
    ),
    (
        "read token",
        "Authorization: Bearer read-key-0123456789\r\n",
    ),
    (
        "token with runs",
        "Authorization: Bearer run-key-0123456789\r\n",
    ),
    (
        "cookie from a foreign origin",
        "Cookie: crema_token=run-key-0123456789\r\nOrigin: https://evil.example\r\nSec-Fetch-Site: cross-site\r\n",
    ),
    (
        "cookie from the gateway's page",
        "Cookie: crema_token=run-key-0123456789\r\nOrigin: http://{addr}\r\nSec-Fetch-Site: same-origin\r\n",
    ),
];

/// Only the status line of an answer (streams never end).
async fn status(addr: &str, method: &str, path: &str, headers: &str, body: &str) -> u16 {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let upgrade = if path == "/ws" {
        "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    } else {
        ""
    };
    let text = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{upgrade}{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(text.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(20), tcp.read(&mut buf))
            .await
            .expect("an answer within 20 s")
            .unwrap();
        assert!(n > 0, "closed before answering {method} {path}");
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    head.split(' ').nth(1).unwrap().parse().unwrap()
}

async fn json(addr: &str, path: &str, headers: &str) -> Value {
    let (code, body) = request(addr, "GET", path, headers, "").await;
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

async fn no_active_run(addr: &str) {
    eventually(Duration::from_secs(30), "the run to end", || async {
        let (code, _) = request(
            addr,
            "GET",
            "/api/v1/runs/current",
            "Authorization: Bearer run-key-0123456789\r\n",
            "",
        )
        .await;
        (code == 404).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_for_every_caller() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(SimulatorConfig {
        scenario: Scenario::Normal,
        speed: 20.0,
        ..Default::default()
    })
    .await
    .unwrap();
    let config = dir.path().join("crema.toml");
    std::fs::write(
        &config,
        format!(
            r#"
db = "{db}"
[[machines]]
name = "kitchen"
url = "{url}"
[auth]
mode = "token"
tokens = [
  {{ token = "read-key-0123456789", topics = ["machine:kitchen"], name = "reader" }},
  {{ token = "run-key-0123456789", topics = ["machine:*"], actions = ["runs"] }},
  {{ token = "other-key-0123456789", topics = ["machine:other"] }},
]
"#,
            db = dir.path().join("crema.db").display(),
            url = sim.url(),
        ),
    )
    .unwrap();
    let gw = start(&["--config", config.to_str().unwrap()]).await;
    let addr = gw.addr.as_str();
    let runner = "Authorization: Bearer run-key-0123456789\r\n";
    // A stored shot and a finished run to ask about. The shot is named by its store key, which
    // names it for good (its public `id` becomes the machine's UUID when the history is read).
    let shot = eventually(Duration::from_secs(60), "a stored shot", || async {
        let shots = json(addr, "/api/v1/shots", runner).await;
        shots["shots"][0]["key"].as_i64().map(|key| key.to_string())
    })
    .await;
    let (code, body) = request(addr, "POST", "/api/v1/runs", runner, r#"{"kind":"qa"}"#).await;
    assert_eq!(code, 202, "{body}");
    let run = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_i64()
        .unwrap();
    no_active_run(addr).await;
    eventually(Duration::from_secs(30), "a healthy gateway", || async {
        (status(addr, "GET", "/healthz", "", "").await == 200).then_some(())
    })
    .await;

    // Each row: method, path, body, and the status for each caller in CALLERS' order.
    let shot_path = format!("/api/v1/shots/{shot}");
    let rows: Vec<(&str, String, &str, [u16; 7])> = vec![
        ("GET", "/healthz".into(), "", [200; 7]),
        ("GET", "/".into(), "", [200; 7]),
        // The page's chart library, as public as the page.
        ("GET", "/assets/uplot.js".into(), "", [200; 7]),
        ("GET", "/assets/uplot.css".into(), "", [200; 7]),
        // /metrics needs the `metrics` action, from loopback too (a proxy on this host would
        // pass everyone's requests on as its own); `metrics_loopback = true` lets local peers in
        // (`metrics_needs_the_action_off_this_host` in crates/fanout/tests/guard.rs).
        (
            "GET",
            "/metrics".into(),
            "",
            [401, 401, 403, 403, 403, 403, 403],
        ),
        (
            "GET",
            "/api/v1/machines".into(),
            "",
            [401, 401, 200, 200, 200, 200, 200],
        ),
        (
            "GET",
            "/api/v1/shots".into(),
            "",
            [401, 401, 200, 200, 200, 200, 200],
        ),
        (
            "GET",
            shot_path.clone(),
            "",
            [401, 401, 403, 200, 200, 200, 200],
        ),
        (
            "GET",
            format!("{shot_path}/file"),
            "",
            [401, 401, 403, 200, 200, 200, 200],
        ),
        (
            "GET",
            format!("{shot_path}/analyses"),
            "",
            [401, 401, 403, 200, 200, 200, 200],
        ),
        (
            "GET",
            "/api/v1/runs".into(),
            "",
            [401, 401, 200, 200, 200, 200, 200],
        ),
        (
            "GET",
            "/api/v1/runs/current".into(),
            "",
            [401, 401, 404, 404, 404, 404, 404],
        ),
        (
            "GET",
            format!("/api/v1/runs/{run}"),
            "",
            [401, 401, 403, 200, 200, 200, 200],
        ),
        (
            "GET",
            format!("/api/v1/runs/{run}/events"),
            "",
            [401, 401, 403, 200, 200, 200, 200],
        ),
        (
            "GET",
            "/api/v1/machines/kitchen/events".into(),
            "",
            [401, 401, 403, 200, 200, 200, 200],
        ),
        ("GET", "/ws".into(), "", [401, 401, 101, 101, 101, 403, 101]),
        (
            "POST",
            "/api/v1/runs".into(),
            r#"{"kind":"qa"}"#,
            [401, 401, 403, 403, 202, 403, 202],
        ),
        (
            "POST",
            format!("/api/v1/runs/{run}/cancel"),
            "",
            [401, 401, 403, 403, 202, 403, 202],
        ),
    ];
    let mut wrong = Vec::new();
    for (method, path, body, expected) in &rows {
        for ((caller, headers), want) in CALLERS.iter().zip(expected) {
            let headers = headers.replace("{addr}", addr);
            let got = status(addr, method, path, &headers, body).await;
            if got != *want {
                wrong.push(format!(
                    "{method} {path} by {caller}: {got}, expected {want}"
                ));
            }
            if method == &"POST" && got == 202 {
                no_active_run(addr).await;
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    // What the answers hold: only what the caller may read.
    let other = "Authorization: Bearer other-key-0123456789\r\n";
    let reader = "Authorization: Bearer read-key-0123456789\r\n";
    assert_eq!(
        json(addr, "/api/v1/machines", other).await,
        Value::Array(vec![])
    );
    assert_eq!(
        json(addr, "/api/v1/machines", reader).await[0]["name"],
        "kitchen"
    );
    assert_eq!(
        json(addr, "/api/v1/shots", other).await["shots"],
        Value::Array(vec![])
    );
    assert_eq!(
        json(addr, "/api/v1/shots", reader).await["shots"][0]["key"].to_string(),
        shot
    );
    assert_eq!(
        json(addr, "/api/v1/runs", other).await["runs"],
        Value::Array(vec![])
    );
    let runs = json(addr, "/api/v1/runs", reader).await;
    assert!(
        runs["runs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == run),
        "{runs}"
    );
    // A refusal says why, in JSON.
    let (code, body) = request(addr, "POST", "/api/v1/runs", reader, r#"{"kind":"qa"}"#).await;
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (code, body["error"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    assert!(body["message"].as_str().unwrap().contains("runs"), "{body}");
    let foreign = CALLERS[5].1;
    let (code, body) = request(addr, "POST", "/api/v1/runs", foreign, r#"{"kind":"qa"}"#).await;
    assert_eq!(code, 403);
    assert!(body.contains("https://evil.example"), "{body}");
}
