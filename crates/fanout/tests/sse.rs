//! SSE over a real socket: ids, the snapshot, resume with and without a ring hit.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use fanout::Hub;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[derive(serde::Deserialize)]
struct Q {
    last_event_id: Option<String>,
}

async fn serve(hub: Arc<Hub>) -> std::net::SocketAddr {
    let app = axum::Router::new()
        .route(
            "/events",
            axum::routing::get(
                |State(hub): State<Arc<Hub>>, headers: HeaderMap, Query(q): Query<Q>| async move {
                    let id = fanout::sse::last_event_id(&headers, q.last_event_id.as_deref())
                        .map(str::to_owned);
                    fanout::sse::stream(hub, "machine:a", id.as_deref(), None)
                },
            ),
        )
        .with_state(hub);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(fanout::ws::listener(listener), app).await.ok();
    });
    addr
}

fn publish(hub: &Hub, name: &str, data: &str) {
    let raw = serde_json::value::RawValue::from_string(data.to_owned()).unwrap();
    hub.publish("machine:a", name, &raw, SystemTime::now());
}

/// Reads the stream until `want` events with an id came; returns the text so far (lower case)
/// and the `(id, event, data)`s.
async fn read(
    addr: std::net::SocketAddr,
    request_headers: &str,
    path: &str,
    want: usize,
) -> (String, Vec<(String, String, String)>) {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n{request_headers}\r\n").as_bytes())
        .await
        .unwrap();
    let mut text = String::new();
    let mut buf = [0u8; 8192];
    let events = loop {
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "the stream ended: {text}");
        text.push_str(&String::from_utf8_lossy(&buf[..n]));
        let events: Vec<(String, String, String)> = text
            .split("\n\n")
            .filter_map(|block| {
                let field = |name: &str| {
                    block
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(|v| v.trim().to_owned())
                };
                Some((
                    field("id:")?,
                    field("event:").unwrap_or_default(),
                    field("data:").unwrap_or_default(),
                ))
            })
            .collect();
        if events.len() >= want {
            break events;
        }
    };
    (text.to_ascii_lowercase(), events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_ids_and_resume() {
    let hub = Arc::new(Hub::new(42, 4, 1024));
    publish(&hub, "status", r#"{"state":"idle"}"#);
    publish(&hub, "sensors", r#"{"p":1}"#);
    publish(&hub, "status", r#"{"state":"brewing"}"#);
    let addr = serve(hub.clone()).await;
    // A new client: the snapshot (latest of each name), with ids.
    let (head, events) = read(addr, "", "/events", 2).await;
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    assert!(head.contains("x-accel-buffering: no"), "{head}");
    assert!(head.contains("retry: 2000"), "{head}");
    assert_eq!(
        events[0],
        ("42-2".into(), "sensors".into(), r#"{"p":1}"#.into())
    );
    assert_eq!(
        events[1],
        (
            "42-3".into(),
            "status".into(),
            r#"{"state":"brewing"}"#.into()
        )
    );
    // Resume inside the ring: exactly what was missed, by header or by query.
    publish(&hub, "sensors", r#"{"p":2}"#);
    let (_, events) = read(addr, "Last-Event-ID: 42-2\r\n", "/events", 2).await;
    let ids: Vec<&str> = events.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(ids, vec!["42-3", "42-4"]);
    let (_, events) = read(addr, "", "/events?last_event_id=42-3", 1).await;
    assert_eq!(events[0].0, "42-4");
    // Outside the ring, or another epoch: the snapshot.
    for _ in 0..5 {
        publish(&hub, "sensors", r#"{"p":3}"#);
    }
    for stale in ["42-1", "7-8"] {
        let (_, events) = read(addr, &format!("Last-Event-ID: {stale}\r\n"), "/events", 2).await;
        assert_eq!(events[0].1, "status", "{stale}: snapshot first");
        assert_eq!(events[0].0, "42-3");
        assert_eq!(events[1].0, "42-9");
    }
    // Live events follow.
    let reader =
        tokio::spawn(async move { read(addr, "Last-Event-ID: 42-9\r\n", "/events", 1).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    publish(&hub, "status", r#"{"state":"idle"}"#);
    let (_, events) = reader.await.unwrap();
    assert_eq!(
        events[0],
        (
            "42-10".into(),
            "status".into(),
            r#"{"state":"idle"}"#.into()
        )
    );
}

/// An event whose name SSE cannot carry (a line break) reached the hub: SSE leaves it out, in
/// the snapshot and live, and the stream goes on (it panicked, and every later stream of the
/// topic got no answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_with_a_line_break_is_left_out_and_the_stream_goes_on() {
    let hub = Arc::new(Hub::new(5, 16, 1024));
    publish(&hub, "status", r#"{"state":"idle"}"#);
    publish(&hub, "evil\nname", r#"{"x":1}"#);
    let addr = serve(hub.clone()).await;
    for _ in 0..2 {
        let (_, events) = read(addr, "", "/events", 1).await;
        assert_eq!(events[0].1, "status");
    }
    let reader = tokio::spawn(async move { read(addr, "", "/events", 2).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    publish(&hub, "evil\r\nid: 1", "2");
    publish(&hub, "sensors", r#"{"p":1}"#);
    let (text, events) = reader.await.unwrap();
    let names: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
    assert_eq!(names, ["status", "sensors"]);
    assert!(!text.contains("evil"), "{text}");
}
