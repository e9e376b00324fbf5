//! The client against an independent Rust Engine.IO server (engineioxide), in-process on
//! 127.0.0.1: handshake, messages both ways on every transport, the upgrade, the heartbeat,
//! server close and reconnection.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use engineio_client::{Backoff, Client, Event, Payload, Reconnect, Transport, TransportMode};
mod common;

use common::{config, message, next};
use engineioxide::config::EngineIoConfig;
use engineioxide::handler::EngineIoHandler;
use engineioxide::layer::EngineIoLayer;
use engineioxide::{DisconnectReason, Socket, Str};

/// Echoes every message; a text message `close` makes the server close the session, and
/// `big N` makes it send a message of N bytes.
#[derive(Debug, Default, Clone)]
struct Echo;

impl EngineIoHandler for Echo {
    type Data = ();

    fn on_connect(self: Arc<Self>, _socket: Arc<Socket<()>>) {}

    fn on_disconnect(&self, _socket: Arc<Socket<()>>, _reason: DisconnectReason) {}

    fn on_message(self: &Arc<Self>, msg: Str, socket: Arc<Socket<()>>) {
        if msg.as_str() == "close" {
            socket.close(DisconnectReason::TransportClose);
        } else if let Some(n) = msg.as_str().strip_prefix("big ") {
            socket.emit("x".repeat(n.parse().unwrap_or(0))).ok();
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

#[tokio::test]
async fn websocket_echo() {
    let (url, _server) = server().await;
    common::echo_round_trip(&url, TransportMode::WebSocket, Transport::WebSocket).await;
}

/// A message over `Config::max_payload` from the server is not read, on either transport: the
/// session ends saying why, and the client connects again; one within it still arrives.
#[tokio::test]
async fn a_message_over_max_payload_ends_the_session_saying_why() {
    let (url, _server) = server().await;
    for mode in [TransportMode::WebSocket, TransportMode::Polling] {
        let (client, mut events) = Client::connect(config(&url, mode).max_payload(64 * 1024));
        assert!(matches!(next(&mut events).await, Event::Open { .. }));
        client.send("big 60000").await.unwrap();
        let Payload::Text(text) = message(&mut events).await else {
            panic!("{mode:?}: not text")
        };
        assert_eq!(text.len(), 60_000, "{mode:?}");
        client.send("big 100000").await.unwrap();
        let why = loop {
            match next(&mut events).await {
                Event::Close { reason } => break reason.to_string(),
                Event::Message(_) => panic!("{mode:?}: the large message was read"),
                _ => {}
            }
        };
        assert!(why.contains("max_payload"), "{mode:?}: {why}");
        loop {
            if let Event::Open { .. } = next(&mut events).await {
                break;
            }
        }
        client.close();
    }
}

#[tokio::test]
async fn polling_echo() {
    let (url, _server) = server().await;
    common::echo_round_trip(&url, TransportMode::Polling, Transport::Polling).await;
}

#[tokio::test]
async fn upgrade_then_echo_over_websocket_loses_nothing() {
    let (url, _server) = server().await;
    common::upgrade_then_echo_over_websocket_loses_nothing(&url).await;
}

#[tokio::test]
async fn heartbeat_keeps_the_session_alive_on_every_transport() {
    let (url, _server) = server().await;
    common::heartbeat_keeps_the_session_alive_on_every_transport(&url).await;
}

#[tokio::test]
async fn server_close_then_reconnect() {
    let (url, _server) = server().await;
    common::server_close_then_reconnect(&url).await;
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
    let Event::Reconnecting { cause, .. } = &seen[0] else {
        panic!("{seen:?}")
    };
    let engineio_client::Lost::Failed(error) = cause else {
        panic!("{cause:?}")
    };
    assert!(error.is_refused(), "{error:?}");
    assert!(error.to_string().contains("cannot reach"), "{error}");
    assert!(client.send("x").await.is_err());
}
