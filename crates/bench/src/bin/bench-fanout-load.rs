//! The load generator of `cargo xtask bench fanout`, in a process of its own: N WebSocket
//! subscribers of one topic, on crema's `/ws` protocol or on socket.io v5 over Engine.IO v4
//! WebSocket (the Node server), and the publisher's remote control.
//!
//! `bench-fanout-load --port P --proto crema|socketio --subs N` connects and subscribes N clients,
//! prints `ready`, then takes commands on standard input:
//! `run RATE SECS` asks the server to publish RATE events per second for SECS seconds, waits until
//! every subscriber has all of them (or 5 s after the end), and prints one JSON line: events
//! published, deliveries, subscribers that missed some, `gap` frames, publish→receive latency
//! percentiles, and how long the last deliveries lagged the scheduled end of publishing.
//!
//! The clients are deliberately lean (one task each, a 16 KiB read buffer, frames parsed in
//! place, the latency read from the event's `"t"` field) so that the server, not the load, is
//! what runs out of CPU first.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Proto {
    Crema,
    SocketIo,
}

/// What every subscriber adds to.
struct Totals {
    /// Events received, per subscriber.
    received: Vec<AtomicU64>,
    gaps: AtomicU64,
    /// Latencies in microseconds, since the last `run` began.
    latencies: Mutex<Vec<u32>>,
    /// When the last event arrived, nanoseconds since the Unix epoch.
    last_at: AtomicU64,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A masked client text frame.
fn client_frame(text: &str) -> Vec<u8> {
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    let len = text.len();
    let mut out = vec![0x81];
    if len < 126 {
        out.push(0x80 | len as u8);
    } else {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

fn pong_frame() -> Vec<u8> {
    vec![0x8a, 0x80, 0, 0, 0, 0]
}

/// Reads the number after `{"t":` in an event.
fn stamp(text: &[u8]) -> Option<u64> {
    let at = text.windows(5).position(|w| w == b"{\"t\":")? + 5;
    let mut t: u64 = 0;
    for &b in &text[at..] {
        if !b.is_ascii_digit() {
            break;
        }
        t = t * 10 + u64::from(b - b'0');
    }
    Some(t)
}

async fn handshake(port: u16, path: &str) -> anyhow::Result<(TcpStream, Vec<u8>)> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    tcp.set_nodelay(true)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            bail!("closed during the handshake");
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            if !buf.starts_with(b"HTTP/1.1 101") {
                bail!("refused: {}", String::from_utf8_lossy(&buf[..end]));
            }
            return Ok((tcp, buf[end + 4..].to_vec()));
        }
    }
}

/// One subscriber: connects, subscribes, then counts events until the process ends.
async fn subscriber(
    port: u16,
    proto: Proto,
    index: usize,
    totals: Arc<Totals>,
    ready: tokio::sync::mpsc::Sender<anyhow::Result<()>>,
) {
    let path = match proto {
        Proto::Crema => "/ws",
        Proto::SocketIo => "/socket.io/?EIO=4&transport=websocket",
    };
    let (mut tcp, mut buf) = match handshake(port, path).await {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(e)).await;
            return;
        }
    };
    if proto == Proto::Crema {
        let sub = client_frame(r#"{"op":"subscribe","topic":"machine:bench"}"#);
        if let Err(e) = tcp.write_all(&sub).await {
            let _ = ready.send(Err(e.into())).await;
            return;
        }
    }
    let mut ready = Some(ready);
    let mut latencies: Vec<u32> = Vec::with_capacity(256);
    let mut start = 0;
    buf.reserve(16 * 1024);
    loop {
        // Parse every whole frame in the buffer.
        let mut replies: Vec<u8> = Vec::new();
        let mut events = 0;
        let mut last = 0;
        loop {
            let b = &buf[start..];
            if b.len() < 2 {
                break;
            }
            let opcode = b[0] & 0x0f;
            let (len, head) = match b[1] & 0x7f {
                126 if b.len() >= 4 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
                127 if b.len() >= 10 => (
                    u64::from_be_bytes(b[2..10].try_into().unwrap_or_default()) as usize,
                    10,
                ),
                126 | 127 => break,
                n => (usize::from(n), 2),
            };
            if b.len() < head + len {
                break;
            }
            let payload = &b[head..head + len];
            start += head + len;
            match opcode {
                0x1 => {
                    if let Some(t) = stamp(payload) {
                        let now = now_ns();
                        latencies
                            .push((now.saturating_sub(t) / 1000).min(u64::from(u32::MAX)) as u32);
                        events += 1;
                        last = now;
                    } else if payload.starts_with(b"{\"type\":\"gap\"") {
                        totals.gaps.fetch_add(1, Ordering::Relaxed);
                    } else if payload.starts_with(b"{\"type\":\"subscribed\"")
                        || payload.starts_with(b"40")
                    {
                        if let Some(ready) = ready.take() {
                            let _ = ready.send(Ok(())).await;
                        }
                    } else if payload.starts_with(b"0{") {
                        replies.extend(client_frame("40"));
                    } else if payload == b"2" {
                        replies.extend(client_frame("3"));
                    }
                }
                0x9 => replies.extend(pong_frame()),
                0x8 => return,
                _ => {}
            }
        }
        if events > 0 {
            totals.received[index].fetch_add(events, Ordering::Relaxed);
            totals.last_at.fetch_max(last, Ordering::Relaxed);
            if let Ok(mut all) = totals.latencies.lock() {
                all.extend_from_slice(&latencies);
            }
            latencies.clear();
        }
        if !replies.is_empty() && tcp.write_all(&replies).await.is_err() {
            return;
        }
        // Keep the unparsed tail, read more (into spare capacity: nothing is zeroed).
        buf.drain(..start);
        start = 0;
        buf.reserve(16 * 1024);
        match tcp.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

async fn post(port: u16, path: &str) -> anyhow::Result<String> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await?;
    // The JSON object in the body, whatever the transfer encoding.
    let body = answer
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| Some(&b[b.find('{')?..=b.rfind('}')?]))
        .with_context(|| format!("no JSON answer in {answer:?}"))?;
    Ok(body.to_owned())
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[i]) / 1000.0
}

async fn window(port: u16, totals: &Totals, rate: f64, secs: f64) -> anyhow::Result<String> {
    let before: Vec<u64> = totals
        .received
        .iter()
        .map(|r| r.load(Ordering::Relaxed))
        .collect();
    let gaps_before = totals.gaps.load(Ordering::Relaxed);
    totals.latencies.lock().map(|mut l| l.clear()).ok();
    // Lateness is counted from when publishing should have ended, not from the server's answer
    // (a saturated server answers late).
    let ended = now_ns() + (secs * 1e9) as u64;
    let answer = post(port, &format!("/bench/publish?rate={rate}&secs={secs}")).await?;
    let published: u64 = serde_json::from_str::<serde_json::Value>(answer.trim())
        .ok()
        .and_then(|v| v["published"].as_u64())
        .with_context(|| format!("unexpected answer {answer:?}"))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let missing = |totals: &Totals| {
        totals
            .received
            .iter()
            .zip(&before)
            .filter(|(r, b)| r.load(Ordering::Relaxed) - **b < published)
            .count()
    };
    while missing(totals) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let delivered: u64 = totals
        .received
        .iter()
        .zip(&before)
        .map(|(r, b)| r.load(Ordering::Relaxed) - b)
        .sum();
    let mut lat = std::mem::take(
        &mut *totals
            .latencies
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?,
    );
    lat.sort_unstable();
    let drain_ms = totals.last_at.load(Ordering::Relaxed).saturating_sub(ended) as f64 / 1e6;
    let incomplete = missing(totals);
    // A server that fell behind still has queues to empty: wait until deliveries stop (half a
    // second without one, two minutes at most) so that the next window starts clean.
    let settle = Instant::now();
    if incomplete > 0 || drain_ms > 1000.0 {
        let mut last = totals.last_at.load(Ordering::Relaxed);
        while settle.elapsed() < Duration::from_secs(120) {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = totals.last_at.load(Ordering::Relaxed);
            if now == last {
                break;
            }
            last = now;
        }
    }
    Ok(serde_json::json!({
        "rate": rate,
        "secs": secs,
        "subs": totals.received.len(),
        "published": published,
        "delivered": delivered,
        "incomplete_subs": incomplete,
        "settle_ms": settle.elapsed().as_millis() as u64,
        "gaps": totals.gaps.load(Ordering::Relaxed) - gaps_before,
        "p50_ms": percentile(&lat, 0.5),
        "p99_ms": percentile(&lat, 0.99),
        "max_ms": percentile(&lat, 1.0),
        "drain_ms": drain_ms,
    })
    .to_string())
}

fn main() -> anyhow::Result<()> {
    let mut port = 0u16;
    let mut proto = Proto::Crema;
    let mut subs = 1000usize;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().context("a flag without its value");
        match a.as_str() {
            "--port" => port = value()?.parse()?,
            "--subs" => subs = value()?.parse()?,
            "--proto" => {
                proto = match value()?.as_str() {
                    "crema" => Proto::Crema,
                    "socketio" => Proto::SocketIo,
                    other => bail!("unknown protocol {other}"),
                }
            }
            other => bail!("unexpected argument {other:?}"),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let totals = Arc::new(Totals {
            received: (0..subs).map(|_| AtomicU64::new(0)).collect(),
            gaps: AtomicU64::new(0),
            latencies: Mutex::new(Vec::new()),
            last_at: AtomicU64::new(0),
        });
        let (tx, mut rx) = tokio::sync::mpsc::channel(subs.max(1));
        // Connect in waves, so that the server's accept backlog is never the limit.
        for chunk in (0..subs).collect::<Vec<_>>().chunks(200) {
            for &i in chunk {
                tokio::spawn(subscriber(port, proto, i, totals.clone(), tx.clone()));
            }
            for _ in chunk {
                rx.recv().await.context("a subscriber vanished")??;
            }
        }
        println!("ready");
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        while let Some(line) = lines.next_line().await? {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["run", rate, secs] => {
                    let report = window(port, &totals, rate.parse()?, secs.parse()?).await?;
                    println!("{report}");
                }
                ["quit"] | [] => break,
                other => bail!("unknown command {other:?}"),
            }
        }
        Ok(())
    })
}
