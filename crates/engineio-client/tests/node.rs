//! The client against the reference Node Engine.IO server (npm engine.io 6.6), configured as the
//! official engine.io-protocol test suite wants it (pingInterval 300 ms, pingTimeout 200 ms,
//! maxPayload 1e6). Each case mirrors, from the client side, a case of that suite.

mod common;

use std::time::Duration;

use common::node::{self, NodeServer};
use common::{config, message, next};
use engineio_client::{Client, CloseReason, Event, Payload, Transport, TransportMode};

fn server() -> Option<(String, NodeServer)> {
    if !node::available() {
        return None;
    }
    let server = node::start("engineio-server.mjs", 0, &[]);
    Some((format!("http://127.0.0.1:{}", server.port), server))
}

/// E1, E5: the handshake over polling and over WebSocket.
#[tokio::test]
async fn handshake_over_polling_and_websocket() {
    let Some((url, _server)) = server() else {
        return;
    };
    for (mode, upgrades) in [
        (TransportMode::Polling, vec!["websocket".to_owned()]),
        (TransportMode::WebSocket, vec![]),
    ] {
        let (client, mut events) = Client::connect(config(&url, mode));
        let Event::Open { handshake, .. } = next(&mut events).await else {
            panic!("Open first")
        };
        assert_eq!(handshake.upgrades, upgrades, "{mode:?}");
        assert_eq!(handshake.ping_interval_ms, 300);
        assert_eq!(handshake.ping_timeout_ms, 200);
        assert_eq!(handshake.max_payload, Some(1_000_000));
        client.close();
    }
}

/// E8-E10, E13-E14: text and binary messages, one and several, over each transport.
#[tokio::test]
async fn messages_over_websocket() {
    let Some((url, _server)) = server() else {
        return;
    };
    common::echo_round_trip(&url, TransportMode::WebSocket, Transport::WebSocket).await;
}

#[tokio::test]
async fn messages_over_polling() {
    let Some((url, _server)) = server() else {
        return;
    };
    common::echo_round_trip(&url, TransportMode::Polling, Transport::Polling).await;
}

/// E16, E18: ping/pong over several short intervals, on each transport.
#[tokio::test]
async fn heartbeat() {
    let Some((url, _server)) = server() else {
        return;
    };
    common::heartbeat_keeps_the_session_alive_on_every_transport(&url).await;
}

/// E17, E18 from the client's side: a server that stops pinging is declared dead after
/// pingInterval + pingTimeout.
#[tokio::test]
async fn ping_timeout_is_detected() {
    let Some((url, _server)) = server() else {
        return;
    };
    for mode in [TransportMode::WebSocket, TransportMode::Polling] {
        let (client, mut events) = Client::connect(config(&url, mode));
        assert!(matches!(next(&mut events).await, Event::Open { .. }));
        client.send("stop-pings").await.unwrap();
        let started = tokio::time::Instant::now();
        loop {
            if let Event::Close { reason } = next(&mut events).await {
                assert_eq!(reason, CloseReason::PingTimeout, "{mode:?}");
                break;
            }
        }
        // The last ping came at most 300 ms before; the deadline is 500 ms after it.
        assert!(started.elapsed() < Duration::from_millis(1500), "{mode:?}");
        client.close();
    }
}

/// E19: the server closes the session: a `1` on polling, a closed socket on WebSocket.
#[tokio::test]
async fn server_close() {
    let Some((url, _server)) = server() else {
        return;
    };
    for (mode, expected) in [
        (TransportMode::Polling, CloseReason::ServerClose),
        (TransportMode::WebSocket, CloseReason::TransportClose),
    ] {
        let (client, mut events) = Client::connect(config(&url, mode));
        assert!(matches!(next(&mut events).await, Event::Open { .. }));
        client.send("close").await.unwrap();
        loop {
            if let Event::Close { reason } = next(&mut events).await {
                assert_eq!(reason, expected, "{mode:?}");
                break;
            }
        }
        client.close();
    }
}

/// E20-E21: the upgrade with the noop release of the pending GET; nothing lost.
#[tokio::test]
async fn upgrade() {
    let Some((url, _server)) = server() else {
        return;
    };
    common::upgrade_then_echo_over_websocket_loses_nothing(&url).await;
}

/// Payloads are batched within maxPayload: many large messages over polling all arrive (the
/// server would close a session whose POST exceeds 1 MB).
#[tokio::test]
async fn polling_batches_within_max_payload() {
    let Some((url, _server)) = server() else {
        return;
    };
    let (client, mut events) = Client::connect(config(&url, TransportMode::Polling));
    assert!(matches!(next(&mut events).await, Event::Open { .. }));
    let big = "x".repeat(300_000);
    for i in 0..8 {
        client.send(format!("{i}{big}")).await.unwrap();
    }
    for i in 0..8 {
        let Payload::Text(text) = message(&mut events).await else {
            panic!("text")
        };
        assert_eq!(text.len(), 300_001);
        assert!(text.starts_with(&i.to_string()));
    }
}

/// The server restarts on the same port: the client reconnects with backoff.
#[tokio::test]
async fn reconnects_after_a_server_restart() {
    let Some((url, server)) = server() else {
        return;
    };
    let port = server.port;
    let (client, mut events) = Client::connect(config(&url, TransportMode::WebSocket));
    assert!(matches!(next(&mut events).await, Event::Open { .. }));
    drop(server);
    let mut attempt = 0;
    while attempt < 2 {
        if let Event::Reconnecting { attempt: a, .. } = next(&mut events).await {
            attempt = a;
        }
    }
    let _server = node::start("engineio-server.mjs", port, &[]);
    loop {
        if let Event::Open { .. } = next(&mut events).await {
            break;
        }
    }
    client.send("back").await.unwrap();
    assert_eq!(message(&mut events).await, Payload::from("back"));
}
