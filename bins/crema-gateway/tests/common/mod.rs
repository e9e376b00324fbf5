//! What the gateway's test binaries share: starting the binary, and raw HTTP/1.0 requests.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_crema-gateway");

/// The gateway process; killed when dropped.
pub(crate) struct Gateway {
    pub(crate) child: Child,
    pub(crate) addr: String,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the gateway with `args` on a free loopback port; answers once it listens.
pub(crate) async fn start(args: &[&str]) -> Gateway {
    launch(args, Stdio::null()).await
}

/// Starts the gateway with `args` on a free loopback port, its log (`RUST_LOG=info`) going
/// to `log`; answers once it listens.
pub(crate) async fn start_logged(args: &[&str], log: &std::path::Path) -> Gateway {
    launch(args, std::fs::File::create(log).unwrap().into()).await
}

async fn launch(args: &[&str], log: Stdio) -> Gateway {
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(BIN)
        .args(args)
        .args(["--listen", &addr])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let gateway = Gateway { child, addr };
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(&gateway.addr).await.is_ok() {
            return gateway;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the gateway did not listen");
}

/// `(VmRSS, VmHWM)` of a process, KiB.
pub(crate) fn memory(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A gateway and what it runs on: a simulated machine brewing the normal shot (at `speed`),
/// and a folder with its `crema.toml` and database. Each lives as long as this does.
pub(crate) struct Brewing {
    pub(crate) gateway: Gateway,
    pub(crate) sim: simulator::Simulator,
    pub(crate) dir: tempfile::TempDir,
}

/// Starts a simulated machine at `speed`× and a gateway reading `config` (the text of its
/// `crema.toml`) that records it as `kitchen` into `crema.db` in a fresh folder.
pub(crate) async fn brewing(config: &str, speed: f64) -> Brewing {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("crema.toml");
    std::fs::write(&file, config).unwrap();
    let sim = simulator::Simulator::start(simulator::SimulatorConfig {
        scenario: simulator::Scenario::Normal,
        speed,
        ..Default::default()
    })
    .await
    .unwrap();
    let db = dir.path().join("crema.db");
    let gateway = start(&[
        "--config",
        file.to_str().unwrap(),
        "--machine",
        &format!("kitchen={}", sim.url()),
        "--db",
        db.to_str().unwrap(),
    ])
    .await;
    Brewing { gateway, sim, dir }
}

/// One request: status and body.
pub(crate) async fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &str,
    body: &str,
) -> (u16, String) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let text = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\n{headers}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(text.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(60), tcp.read_to_string(&mut answer))
        .await
        .expect("an answer within 60 s")
        .unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (
        head.split(' ').nth(1).unwrap().parse().unwrap(),
        body.to_owned(),
    )
}

/// `GET path` as JSON (Null when it is not JSON).
pub(crate) async fn get_json(addr: &str, path: &str) -> (u16, Value) {
    let (status, text) = request(addr, "GET", path, "", "").await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// `POST path` with a JSON body; the answer as JSON.
pub(crate) async fn post_json(addr: &str, path: &str, body: &Value) -> (u16, Value) {
    let (status, text) = request(addr, "POST", path, "", &body.to_string()).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Polls `check` every 50 ms until it answers `Some`, for at most `limit`.
pub(crate) async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < until,
            "not within {limit:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
