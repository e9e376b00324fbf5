//! `/ws` over real sockets on 127.0.0.1: snapshot then ordered events, strict errors that keep
//! the connection, a client that never reads, which neither slows the others nor loses a
//! control frame, and one that asks without reading the answers, which is stopped being read
//! and dropped.

use std::sync::Arc;
use std::time::Duration;

use fanout::Hub;
use fanout::ws::{Limits, WsState};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_then_events_in_order() {
    let hub = Arc::new(Hub::new(1, 64, 1024));
    publish(&hub, "machine:a", "status", r#"{"state":"idle"}"#);
    publish(&hub, "machine:a", "sensors", r#"{"p":1}"#);
    publish(&hub, "machine:a", "status", r#"{"state":"brewing"}"#);
    let url = serve(hub.clone(), Limits::default()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    send(&mut ws, json!({"op": "subscribe", "topic": "machine:a"})).await;
    let subscribed = next_json(&mut ws).await;
    assert_eq!(subscribed["type"], "subscribed");
    let snapshot: Vec<(String, u64)> = subscribed["snapshot"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["seq"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        snapshot,
        vec![("sensors".to_owned(), 2), ("status".to_owned(), 3)]
    );
    assert_eq!(subscribed["snapshot"][1]["data"]["state"], "brewing");
    for i in 0..100 {
        publish(&hub, "machine:a", "sensors", &format!(r#"{{"p":{i}}}"#));
    }
    for i in 0..100u64 {
        let event = next_json(&mut ws).await;
        assert_eq!(
            (event["type"].as_str(), event["seq"].as_u64()),
            (Some("event"), Some(4 + i))
        );
        assert_eq!(event["data"]["p"], i);
    }
    send(&mut ws, json!({"op": "unsubscribe", "topic": "machine:a"})).await;
    assert_eq!(
        next_json(&mut ws).await,
        json!({"type": "unsubscribed", "topic": "machine:a"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_errors_keep_the_connection() {
    let hub = Arc::new(Hub::new(1, 64, 1024));
    hub.declare("t");
    hub.declare("u");
    let url = serve(
        hub.clone(),
        Limits {
            max_subscriptions: 1,
            ..Limits::default()
        },
    )
    .await;
    let (mut ws, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    for (request, code) in [
        (json!({"op": "publish", "topic": "t"}), "bad_request"),
        (
            json!({"op": "subscribe", "topic": "t", "extra": 1}),
            "bad_request",
        ),
        (json!({"op": "subscribe"}), "bad_request"),
        (json!({"op": "unsubscribe", "topic": "t"}), "not_subscribed"),
        // A name nothing publishes: answered, and not made a topic.
        (
            json!({"op": "subscribe", "topic": "machine:nope"}),
            "not_found",
        ),
    ] {
        send(&mut ws, request).await;
        let error = next_json(&mut ws).await;
        assert_eq!(
            (error["type"].as_str(), error["code"].as_str()),
            (Some("error"), Some(code)),
            "{error}"
        );
        assert!(!error["message"].as_str().unwrap().is_empty());
    }
    ws.send(Message::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await["code"], "bad_request");
    assert!(
        !hub.exists("machine:nope"),
        "a client's subscription creates no topic"
    );
    send(&mut ws, json!({"op": "subscribe", "topic": "t"})).await;
    assert_eq!(next_json(&mut ws).await["type"], "subscribed");
    send(&mut ws, json!({"op": "subscribe", "topic": "t"})).await;
    assert_eq!(next_json(&mut ws).await["code"], "already_subscribed");
    send(&mut ws, json!({"op": "subscribe", "topic": "u"})).await;
    assert_eq!(next_json(&mut ws).await["code"], "too_many_subscriptions");
    // Too large a message ends the connection (a client only ever sends small requests).
    ws.send(Message::Text("x".repeat(10_000).into())).await.ok();
    let end = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .unwrap();
    assert!(!matches!(end, Some(Ok(Message::Text(_)))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_gets_a_gap_and_slows_nobody() {
    let hub = Arc::new(Hub::new(1, 64, 100_000));
    hub.declare("t");
    let state = WsState::new(
        hub.clone(),
        Limits {
            data_bytes: 1 << 20,
            ..Limits::default()
        },
    );
    let url = serve_state(state.clone()).await;
    let (mut stalled, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    let (mut reader, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    for ws in [&mut stalled, &mut reader] {
        send(ws, json!({"op": "subscribe", "topic": "t"})).await;
    }
    assert_eq!(next_json(&mut reader).await["type"], "subscribed");
    // 30 MB of events, 10 every 2 ms: far more than the stalled client's queue (1 MiB) and the
    // socket buffers between us hold.
    let payload = format!(r#"{{"pad":"{}"}}"#, "x".repeat(3000));
    let count = 10_000u64;
    let publisher = {
        let hub = hub.clone();
        tokio::spawn(async move {
            for i in 0..count {
                publish(&hub, "t", "e", &payload);
                if i % 10 == 9 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        })
    };
    for i in 0..count {
        let event = next_json(&mut reader).await;
        assert_eq!(
            event["seq"].as_u64(),
            Some(i + 1),
            "the reading client loses nothing"
        );
    }
    publisher.await.unwrap();
    // Now the stalled client reads: its control frame first, then a gap, then the newest data.
    assert_eq!(next_json(&mut stalled).await["type"], "subscribed");
    let mut gap = 0;
    let mut last_seq = 0;
    loop {
        let frame = next_json(&mut stalled).await;
        match frame["type"].as_str() {
            Some("gap") => gap += frame["dropped"].as_u64().unwrap(),
            Some("event") => last_seq = frame["seq"].as_u64().unwrap(),
            other => panic!("unexpected {other:?}"),
        }
        if last_seq == count {
            break;
        }
    }
    assert!(gap > 0, "the stalled client was told what it missed");
    assert_eq!(state.dropped(), gap, "the gateway counts what it dropped");
    assert!(state.sent() >= count);
}

/// A raw client: the handshake by hand, masked frames out, frames in.
struct Raw(tokio::net::TcpStream, Vec<u8>);

impl Raw {
    async fn connect(url: &str) -> Raw {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let addr = url.trim_start_matches("ws://").trim_end_matches("/ws");
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .unwrap();
        let mut buf = Vec::new();
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut chunk = [0u8; 512];
            let n = tcp.read(&mut chunk).await.unwrap();
            assert!(n > 0);
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&buf).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        // RFC 6455 §1.3's own example key and answer.
        assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        Raw(tcp, buf[end..].to_vec())
    }

    async fn send(&mut self, first: u8, payload: &[u8]) {
        use tokio::io::AsyncWriteExt as _;
        let mask = [1, 2, 3, 4];
        let mut out = vec![first, 0x80 | payload.len() as u8];
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.0.write_all(&out).await.unwrap();
    }

    /// The next frame: (opcode, payload); `None` when the server closed the socket.
    async fn frame(&mut self) -> Option<(u8, Vec<u8>)> {
        use tokio::io::AsyncReadExt as _;
        loop {
            if self.1.len() >= 2 {
                let len = usize::from(self.1[1] & 0x7f);
                let (len, head) = if len == 126 && self.1.len() >= 4 {
                    (usize::from(u16::from_be_bytes([self.1[2], self.1[3]])), 4)
                } else {
                    (len, 2)
                };
                if (len < 126 || head == 4) && self.1.len() >= head + len {
                    let opcode = self.1[0] & 0x0f;
                    let payload = self.1[head..head + len].to_vec();
                    self.1.drain(..head + len);
                    return Some((opcode, payload));
                }
            }
            let mut chunk = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), self.0.read(&mut chunk))
                .await
                .expect("a frame within 5 s")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.1.extend_from_slice(&chunk[..n]);
        }
    }
}

/// The hand-written server side of RFC 6455, byte by byte: the accept key, pong for ping,
/// fragmented and binary messages refused with the connection kept, the close code echoed,
/// server pings, and a silent client dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_websocket_layer_over_a_raw_socket() {
    let hub = Arc::new(Hub::new(1, 64, 1024));
    hub.declare("t");
    let url = serve(
        hub.clone(),
        Limits {
            ping_every: Duration::from_millis(200),
            silence: Duration::from_millis(700),
            ..Limits::default()
        },
    )
    .await;
    let mut raw = Raw::connect(&url).await;
    raw.send(0x89, b"are you there").await;
    assert_eq!(raw.frame().await, Some((0xa, b"are you there".to_vec())));
    raw.send(0x01, br#"{"op":"#).await;
    raw.send(0x80, br#""subscribe","topic":"t"}"#).await;
    let (op, text) = raw.frame().await.unwrap();
    assert_eq!(op, 1);
    assert!(String::from_utf8(text).unwrap().contains("fragmented"));
    raw.send(0x82, b"\x01").await;
    let (_, text) = raw.frame().await.unwrap();
    assert!(
        String::from_utf8(text)
            .unwrap()
            .contains("send JSON text frames")
    );
    // Still open: a request is answered.
    raw.send(0x81, br#"{"op":"subscribe","topic":"t"}"#).await;
    let (_, text) = raw.frame().await.unwrap();
    assert!(
        String::from_utf8(text)
            .unwrap()
            .starts_with(r#"{"type":"subscribed""#)
    );
    raw.send(0x88, &[0x0f, 0xa0]).await;
    assert_eq!(
        raw.frame().await,
        Some((0x8, vec![0x0f, 0xa0])),
        "code 4000 echoed"
    );
    assert_eq!(raw.frame().await, None, "then the server closes");

    // An unmasked frame is a protocol error (1002).
    let mut raw = Raw::connect(&url).await;
    {
        use tokio::io::AsyncWriteExt as _;
        raw.0.write_all(b"\x81\x02hi").await.unwrap();
    }
    assert_eq!(raw.frame().await, Some((0x8, vec![0x03, 0xea])));

    // A client that never answers is pinged, then dropped.
    let mut raw = Raw::connect(&url).await;
    let started = std::time::Instant::now();
    assert_eq!(raw.frame().await.map(|f| f.0), Some(0x9), "a ping");
    let mut frames = 0;
    while raw.frame().await.is_some() {
        frames += 1;
    }
    let silent = started.elapsed();
    assert!(
        silent >= Duration::from_millis(650) && silent < Duration::from_secs(3),
        "dropped after {silent:?} and {frames} more frames"
    );
}

/// A masked client text frame.
fn masked(text: &str) -> Vec<u8> {
    let payload = text.as_bytes();
    let mask = [7u8, 99, 3, 250];
    let mut out = vec![0x81, 0x80 | payload.len() as u8];
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// A client that sends 20 MB of subscribe/unsubscribe pairs and never reads the answers: the
/// answers waiting for it stay within the control lane's bound (they grew without bound
/// before), it is no longer read, and it is dropped once silent for `silence`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_asks_without_reading_is_bounded_and_dropped() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let hub = Arc::new(Hub::new(1, 64, 1024));
    // A snapshot of a few hundred bytes in every `subscribed` answer.
    publish(
        &hub,
        "t",
        "status",
        &format!(r#"{{"pad":"{}"}}"#, "x".repeat(300)),
    );
    let limits = Limits {
        ping_every: Duration::from_secs(1),
        silence: Duration::from_secs(2),
        ..Limits::default()
    };
    let bound = limits.control_bytes;
    let state = WsState::new(hub.clone(), limits);
    let url = serve_state(state.clone()).await;
    let addr = url.trim_start_matches("ws://").trim_end_matches("/ws");
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(
        format!(
            "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let mut pair = masked(r#"{"op":"subscribe","topic":"t"}"#);
    pair.extend(masked(r#"{"op":"unsubscribe","topic":"t"}"#));
    let chunk: Vec<u8> = pair
        .iter()
        .copied()
        .cycle()
        .take(pair.len() * 1000)
        .collect();
    let (_reader, mut writer) = tcp.into_split();
    let flood = tokio::spawn(async move {
        let mut sent = 0usize;
        while sent < 20_000_000 {
            if writer.write_all(&chunk).await.is_err() {
                return (sent, true);
            }
            sent += chunk.len();
        }
        (sent, false)
    });
    let started = std::time::Instant::now();
    let mut most = 0;
    while !flood.is_finished() && started.elapsed() < Duration::from_secs(20) {
        most = most.max(state.control_bytes());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (sent, cut) = flood.await.unwrap();
    assert!(
        cut,
        "the connection is still open after {sent} bytes and {:?}",
        started.elapsed()
    );
    assert!(
        most <= bound + 4096,
        "{most} bytes of answers waited for a client that does not read them (bound {bound})"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "dropped only after {:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(state.control_bytes(), 0, "nothing is kept once it is gone");
    assert_eq!(state.connections(), 0);
}
