//! Scenarios shared by the suites against each server (engineioxide in-process, the Node
//! reference server): each takes the server's URL.
#![allow(dead_code, unreachable_pub)]

pub mod node;

use std::time::Duration;

use engineio_client::{
    Backoff, Client, CloseReason, Config, Event, Events, Payload, Reconnect, Transport,
    TransportMode,
};

/// The next event, or a failure after 5 s.
pub async fn next(events: &mut Events) -> Event {
    tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event within 5 s")
        .expect("the stream goes on")
}

/// Skips to the next message.
pub async fn message(events: &mut Events) -> Payload {
    loop {
        if let Event::Message(p) = next(events).await {
            return p;
        }
    }
}

pub fn config(url: &str, mode: TransportMode) -> Config {
    Config::new(url)
        .unwrap()
        .transport(mode)
        .reconnect(Reconnect {
            backoff: Backoff {
                min: Duration::from_millis(50),
                max: Duration::from_millis(200),
                jitter: 0.5,
            },
            ..Reconnect::default()
        })
}

pub async fn echo_round_trip(url: &str, mode: TransportMode, expected: Transport) {
    let (client, mut events) = Client::connect(config(url, mode));
    let Event::Open {
        handshake,
        transport,
    } = next(&mut events).await
    else {
        panic!("the first event is Open");
    };
    assert_eq!(transport, expected);
    assert_eq!(handshake.ping_interval_ms, 300);
    assert!(client.state().borrow().connected);
    client.send("hello ☕").await.unwrap();
    client.send(vec![1u8, 2, 3, 4]).await.unwrap();
    client.send("").await.unwrap();
    assert_eq!(message(&mut events).await, Payload::from("hello ☕"));
    assert_eq!(
        message(&mut events).await,
        Payload::from(vec![1u8, 2, 3, 4])
    );
    assert_eq!(message(&mut events).await, Payload::from(""));
    client.close();
    loop {
        match events.recv().await {
            Some(Event::Close { reason }) => {
                assert_eq!(reason, CloseReason::ClientClose);
                break;
            }
            Some(_) => {}
            None => panic!("Close comes before the end"),
        }
    }
    assert_eq!(events.recv().await, None, "no reconnect after close()");
}

pub async fn upgrade_then_echo_over_websocket_loses_nothing(url: &str) {
    let (client, mut events) = Client::connect(config(url, TransportMode::PollingThenUpgrade));
    assert!(matches!(
        next(&mut events).await,
        Event::Open {
            transport: Transport::Polling,
            ..
        }
    ));
    // Messages sent while the upgrade runs are neither lost nor reordered.
    for i in 0..50 {
        client.send(format!("m{i}")).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut upgraded = false;
    while seen.len() < 50 || !upgraded {
        match next(&mut events).await {
            Event::Message(Payload::Text(t)) => seen.push(t.to_string()),
            Event::Upgrade { transport } => {
                assert_eq!(transport, Transport::WebSocket);
                upgraded = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let expected: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    assert_eq!(seen, expected);
    assert_eq!(
        client.state().borrow().transport,
        Some(Transport::WebSocket)
    );
    client.send("after").await.unwrap();
    assert_eq!(message(&mut events).await, Payload::from("after"));
}

pub async fn heartbeat_keeps_the_session_alive_on_every_transport(url: &str) {
    for mode in [
        TransportMode::WebSocket,
        TransportMode::Polling,
        TransportMode::PollingThenUpgrade,
    ] {
        let (client, mut events) = Client::connect(config(url, mode));
        assert!(matches!(next(&mut events).await, Event::Open { .. }));
        // Six ping intervals: the server closes a client that does not answer within 200 ms.
        tokio::time::sleep(Duration::from_millis(1800)).await;
        client.send("still here").await.unwrap();
        loop {
            match next(&mut events).await {
                Event::Message(p) => {
                    assert_eq!(p, Payload::from("still here"));
                    break;
                }
                Event::Upgrade { .. } => {}
                other => panic!("{mode:?}: unexpected {other:?}"),
            }
        }
        client.close();
    }
}

pub async fn server_close_then_reconnect(url: &str) {
    let (client, mut events) = Client::connect(config(url, TransportMode::WebSocket));
    let Event::Open {
        handshake: first, ..
    } = next(&mut events).await
    else {
        panic!()
    };
    client.send("close").await.unwrap();
    assert!(matches!(next(&mut events).await, Event::Close { .. }));
    assert!(matches!(
        next(&mut events).await,
        Event::Reconnecting { attempt: 1, .. }
    ));
    let Event::Open {
        handshake: second, ..
    } = next(&mut events).await
    else {
        panic!()
    };
    assert_ne!(first.sid, second.sid, "a new session");
    client.send("again").await.unwrap();
    assert_eq!(message(&mut events).await, Payload::from("again"));
}
