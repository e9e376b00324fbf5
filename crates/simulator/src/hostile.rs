//! Machines gone wrong, for the tests and `cargo xtask soak`: what a broken or hostile device on
//! the LAN could send a recorder. Each listens on 127.0.0.1 and stops when dropped.
//!
//! - [`Hostility::Names`]: a socket.io server (socketioxide) that emits event names of its
//!   choosing, with a `status` between them: ever new names, or names no stream format can
//!   carry (`"evil\nname"`).
//! - [`Hostility::Refuse`]: a socket.io server that refuses every CONNECT with a message of
//!   its choosing (a forged log line, say).
//! - [`Hostility::Flood`]: an Engine.IO server that opens a long-polling session, then answers
//!   every poll and every other request (the history API) with an endless body of nonsense.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;
use socketioxide::handler::ConnectHandler as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// How the machine misbehaves.
#[derive(Debug, Clone)]
pub enum Hostility {
    /// Emits each of `names` in turn (data `{}`), each followed by a `status`, one every
    /// `every`, over and over.
    Names {
        /// The event names.
        names: Vec<String>,
        /// Between two events.
        every: Duration,
    },
    /// Refuses every socket.io CONNECT with this message.
    Refuse(String),
    /// Answers a long-polling handshake properly, then every other request with `bytes` of
    /// Engine.IO-looking nonsense (and without end when `bytes` is `u64::MAX`).
    Flood {
        /// How much each answer holds.
        bytes: u64,
    },
}

/// A running hostile machine. Dropping it stops it.
#[derive(Debug)]
pub struct Hostile {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Hostile {
    /// Binds a free loopback port and serves `hostility` on the current runtime.
    pub async fn start(hostility: Hostility) -> std::io::Result<Hostile> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = match hostility {
            Hostility::Flood { bytes } => tokio::spawn(flood(listener, bytes)),
            other => {
                let (layer, io) = SocketIo::builder().build_layer();
                match other {
                    Hostility::Names { names, every } => {
                        io.ns("/", async move |socket: SocketRef| {
                            tokio::spawn(emit(socket, names, every));
                        });
                    }
                    Hostility::Refuse(message) => {
                        let refuse = async move || Err::<(), String>(message.clone());
                        io.ns("/", (async |_: SocketRef| {}).with(refuse));
                    }
                    Hostility::Flood { .. } => {}
                }
                let app = Router::new()
                    .route(
                        "/api/v1/history",
                        get(|| async { axum::Json(serde_json::json!({"history": []})) }),
                    )
                    .route(
                        "/api/v1/history/current",
                        get(|| async { axum::Json(serde_json::Value::Null) }),
                    )
                    .layer(layer);
                tokio::spawn(async move {
                    axum::serve(listener, app).await.ok();
                })
            }
        };
        Ok(Hostile { addr, task })
    }

    /// Its base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn emit(socket: SocketRef, names: Vec<String>, every: Duration) {
    let status = serde_json::json!({"state": "idle", "extracting": false, "time": -1});
    for name in names.iter().cycle() {
        if socket.emit(name.as_str(), &serde_json::json!({})).is_err()
            || socket.emit("status", &status).is_err()
        {
            return;
        }
        tokio::time::sleep(every).await;
    }
}

const OPEN: &str = r#"0{"sid":"hostile","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;

async fn flood(listener: tokio::net::TcpListener, bytes: u64) {
    while let Ok((tcp, _)) = listener.accept().await {
        tokio::spawn(answer(tcp, bytes));
    }
}

/// One connection: the handshake properly, a POST with `ok`, anything else a flood.
async fn answer(mut tcp: tokio::net::TcpStream, bytes: u64) {
    loop {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() > 16 * 1024 || tcp.read_exact(&mut byte).await.is_err() {
                return;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        let body_len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0u8; body_len.min(1 << 20)];
        if tcp.read_exact(&mut body).await.is_err() {
            return;
        }
        let small = |text: &str| {
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{text}",
                text.len()
            )
        };
        let answer = if head.starts_with("POST") {
            small("ok")
        } else if head.contains("transport=polling") && !head.contains("sid=") {
            small(OPEN)
        } else {
            break;
        };
        if tcp.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n";
    if tcp.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let block =
        "42[\"status\",{\"state\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\x1e".repeat(512);
    let chunk = format!("{:x}\r\n{block}\r\n", block.len());
    let mut sent = 0u64;
    while sent < bytes {
        if tcp.write_all(chunk.as_bytes()).await.is_err() {
            return;
        }
        sent = sent.saturating_add(block.len() as u64);
    }
    let _ = tcp.write_all(b"0\r\n\r\n").await;
}
