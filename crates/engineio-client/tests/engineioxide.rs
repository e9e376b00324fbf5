//! The client against an independent Rust Engine.IO server (engineioxide), in-process on
//! 127.0.0.1: handshake, messages both ways on every transport, the upgrade, the heartbeat,
//! server close and reconnection.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use engineio_client::{
    Backoff, Client, CloseReason, Config, Event, Events, Payload, Reconnect, Transport,
    TransportMode,
};
use engineioxide::config::EngineIoConfig;
use engineioxide::handler::EngineIoHandler;
use engineioxide::layer::EngineIoLayer;
use engineioxide::{DisconnectReason, Socket, Str};

/// Echoes every message; a text message `close` makes the server close the session.
#[derive(Debug, Default, Clone)]
struct Echo;

impl EngineIoHandler for Echo {
    type Data = ();

    fn on_connect(self: Arc<Self>, _socket: Arc<Socket<()>>) {}

    fn on_disconnect(&self, _socket: Arc<Socket<()>>, _reason: DisconnectReason) {}

    fn on_message(self: &Arc<Self>, msg: Str, socket: Arc<Socket<()>>) {
        if msg.as_str() == "close" {
            socket.close(DisconnectReason::TransportClose);
        } else {
            socket.emit(msg).ok();
        }
    }

    fn on_binary(self: &Arc<Self>, data: Bytes, socket: Arc<Socket<()>>) {
        socket.emit_binary(data).ok();
    }
}

/// An engineioxide server on its own runtime: dropping it kills the server and every connection
/// at once, as a crashed process would.
struct Server(Option<tokio::runtime::Runtime>);

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

fn serve(addr: std::net::SocketAddr) -> (std::net::SocketAddr, Server) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = std::net::TcpListener::bind(addr).unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let config = EngineIoConfig::builder()
        .ping_interval(Duration::from_millis(300))
        .ping_timeout(Duration::from_millis(200))
        .build();
    let layer = EngineIoLayer::from_config(Arc::new(Echo), config);
    let app = axum::Router::new().layer(layer);
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        axum::serve(listener, app).await.ok();
    });
    (addr, Server(Some(rt)))
}

async fn server() -> (String, Server) {
    let (addr, server) = serve(([127, 0, 0, 1], 0).into());
    (format!("http://{addr}"), server)
}

/// The next event, or a failure after 5 s.
async fn next(events: &mut Events) -> Event {
    tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .expect("an event within 5 s")
        .expect("the stream goes on")
}

/// Skips to the next message.
async fn message(events: &mut Events) -> Payload {
    loop {
        if let Event::Message(p) = next(events).await {
            return p;
        }
    }
}

fn config(url: &str, mode: TransportMode) -> Config {
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

async fn echo_round_trip(mode: TransportMode, expected: Transport) {
    let (url, _server) = server().await;
    let (client, mut events) = Client::connect(config(&url, mode));
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

#[tokio::test]
async fn websocket_echo() {
    echo_round_trip(TransportMode::WebSocket, Transport::WebSocket).await;
}

#[tokio::test]
async fn polling_echo() {
    echo_round_trip(TransportMode::Polling, Transport::Polling).await;
}

#[tokio::test]
async fn upgrade_then_echo_over_websocket_loses_nothing() {
    let (url, _server) = server().await;
    let (client, mut events) = Client::connect(config(&url, TransportMode::PollingThenUpgrade));
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

#[tokio::test]
async fn heartbeat_keeps_the_session_alive_on_every_transport() {
    let (url, _server) = server().await;
    for mode in [
        TransportMode::WebSocket,
        TransportMode::Polling,
        TransportMode::PollingThenUpgrade,
    ] {
        let (client, mut events) = Client::connect(config(&url, mode));
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

#[tokio::test]
async fn server_close_then_reconnect() {
    let (url, _server) = server().await;
    let (client, mut events) = Client::connect(config(&url, TransportMode::WebSocket));
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

#[tokio::test]
async fn server_restart_reconnects_with_backoff() {
    let (addr, server) = serve(([127, 0, 0, 1], 0).into());
    let (client, mut events) =
        Client::connect(config(&format!("http://{addr}"), TransportMode::WebSocket));
    assert!(matches!(next(&mut events).await, Event::Open { .. }));
    drop(server);
    // The server is gone: the session ends (ping timeout or transport close), then attempts fail.
    let mut attempts = 0;
    while attempts < 3 {
        if let Event::Reconnecting { attempt, .. } = next(&mut events).await {
            attempts = attempt;
        }
    }
    assert!(!client.state().borrow().connected);
    assert!(client.state().borrow().last_error.is_some());
    let (_, _server) = serve(addr);
    loop {
        if let Event::Open { .. } = next(&mut events).await {
            break;
        }
    }
    client.send("back").await.unwrap();
    assert_eq!(message(&mut events).await, Payload::from("back"));
}

#[tokio::test]
async fn unreachable_server_gives_up_after_max_attempts() {
    // A port nobody listens on.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let mut config = config(&format!("http://{addr}"), TransportMode::Polling);
    config = config.reconnect(Reconnect {
        max_attempts: Some(2),
        backoff: Backoff {
            min: Duration::from_millis(10),
            max: Duration::from_millis(20),
            jitter: 0.0,
        },
        ..Reconnect::default()
    });
    let (client, mut events) = Client::connect(config);
    let mut seen = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
    {
        seen.push(event);
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    let Event::Reconnecting { error, .. } = &seen[0] else {
        panic!("{seen:?}")
    };
    assert!(error.contains("cannot reach"), "{error}");
    assert!(client.send("x").await.is_err());
}
