//! What a server may send at once is bounded (`Config::max_payload`): a long-polling answer
//! larger than it, declared or streamed, is not read; the client says why and reconnects.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use engineio_client::{Client, Config, Event, Reconnect, TransportMode};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const OPEN: &str =
    r#"0{"sid":"s1","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#;

/// A server that opens a session, then answers the first poll with `huge` bytes of message
/// packets: with a `Content-Length` when `declared`, else chunked. Counts what it wrote.
async fn oversized_server(huge: u64, declared: bool) -> (String, Arc<AtomicU64>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let written = Arc::new(AtomicU64::new(0));
    let count = written.clone();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if tcp.read_exact(&mut byte).await.is_err() {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                if !head.contains("sid=") {
                    // One request per connection: the client must not reuse this one, which
                    // closes (the next request on it would fail as a transport error).
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{OPEN}",
                        OPEN.len()
                    );
                    let _ = tcp.write_all(answer.as_bytes()).await;
                    return;
                }
                let framing = if declared {
                    format!("Content-Length: {huge}\r\n")
                } else {
                    "Transfer-Encoding: chunked\r\n".to_owned()
                };
                let head = format!("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n{framing}\r\n");
                if tcp.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let packet = "4xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\x1e";
                let block: String = packet.repeat(1024);
                let mut sent = 0u64;
                while sent < huge {
                    let piece = if declared {
                        block.clone().into_bytes()
                    } else {
                        format!("{:x}\r\n{block}\r\n", block.len()).into_bytes()
                    };
                    if tcp.write_all(&piece).await.is_err() {
                        return;
                    }
                    sent += block.len() as u64;
                    count.fetch_add(piece.len() as u64, Ordering::Relaxed);
                }
            });
        }
    });
    (format!("http://{addr}"), written)
}

async fn refused_with(huge: u64, declared: bool) {
    let (url, written) = oversized_server(huge, declared).await;
    let config = Config::new(&url)
        .unwrap()
        .transport(TransportMode::Polling)
        .max_payload(1 << 20)
        .reconnect(Reconnect {
            max_attempts: Some(1),
            ..Reconnect::default()
        });
    let (client, mut events) = Client::connect(config);
    let mut opened = false;
    let why = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(event) = events.recv().await {
            match event {
                Event::Open { .. } => opened = true,
                Event::Close { reason } => return reason.to_string(),
                _ => {}
            }
        }
        String::new()
    })
    .await
    .expect("the client gives the answer up within 20 s");
    assert!(opened);
    assert!(
        why.contains("sent more than 1048576 bytes at once"),
        "{why}"
    );
    client.close();
    // The client stopped reading at its bound: the server could not write the whole answer
    // (what it wrote is in the socket buffers between them, a few MiB on loopback).
    tokio::time::sleep(Duration::from_millis(200)).await;
    let wrote = written.load(Ordering::Relaxed);
    assert!(wrote < 32 << 20, "the server wrote {wrote} bytes of {huge}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_poll_answer_over_the_bound_is_not_read() {
    refused_with(400 << 20, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_poll_answer_over_the_bound_is_refused_at_once() {
    refused_with(400 << 20, true).await;
}
