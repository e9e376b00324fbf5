//! `/ws` over real sockets on 127.0.0.1: snapshot then ordered events, strict errors that keep
//! the connection, and a client that never reads, which neither slows the others nor loses a
//! control frame.

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
