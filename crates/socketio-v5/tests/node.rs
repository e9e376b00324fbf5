//! The socket.io client against the reference Node server (npm socket.io 4.8), mirroring from
//! the client side the cases of the official socket.io-protocol test suite, plus ordering,
//! server-initiated acks, reconnection with fresh auth and connection state recovery.

#[path = "../../engineio-client/tests/common/node.rs"]
mod node;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
mod common;

use common::{named, next};
use socketio_v5::{Auth, Binary, Client, ClientConfig, DisconnectReason, Event};

fn server() -> Option<(String, node::NodeServer)> {
    if !node::available() {
        return None;
    }
    let server = node::start("socketio-server.mjs", 0, &[]);
    Some((format!("http://127.0.0.1:{}", server.port), server))
}

fn client(url: &str) -> Client {
    client_over(url, engineio_client::TransportMode::PollingThenUpgrade)
}

fn client_over(url: &str, mode: engineio_client::TransportMode) -> Client {
    Client::new(ClientConfig::new(url).unwrap().engine(|e| {
        e.transport(mode).reconnect(engineio_client::Reconnect {
            backoff: engineio_client::Backoff {
                min: Duration::from_millis(50),
                max: Duration::from_millis(200),
                jitter: 0.5,
            },
            ..engineio_client::Reconnect::default()
        })
    }))
}

/// S1, S2, S3, S4: main and custom namespaces, with and without auth, on one connection.
#[tokio::test]
async fn connect_namespaces_with_auth() {
    let Some((url, _server)) = server() else {
        return;
    };
    let client = client(&url);
    let (_main, mut main) = client.socket("/", Auth::None).await.unwrap();
    let (_custom, mut custom) = client
        .socket("/custom", Auth::Static(json!({"token": "abc"})))
        .await
        .unwrap();
    assert!(matches!(next(&mut main).await, Event::Connect { .. }));
    assert_eq!(named(&mut main, "auth").await, "[{}]");
    assert!(matches!(next(&mut custom).await, Event::Connect { .. }));
    assert_eq!(named(&mut custom, "auth").await, r#"[{"token":"abc"}]"#);
}

/// S5: an unknown namespace is refused with "Invalid namespace"; the middleware refusal carries
/// its data. Both are terminal.
#[tokio::test]
async fn refusals() {
    let Some((url, _server)) = server() else {
        return;
    };
    let client = client(&url);
    let (_s, mut random) = client.socket("/random", Auth::None).await.unwrap();
    assert!(matches!(next(&mut random).await,
        Event::ConnectError { message, .. } if message == "Invalid namespace"));
    let (_s, mut refused) = client.socket("/refuse", Auth::None).await.unwrap();
    assert!(matches!(next(&mut refused).await,
        Event::ConnectError { message, data: Some(data) } if message == "Not authorized" && data == r#"{"code":7}"#));
    assert!(refused.recv().await.is_none());
}

/// S9: leaving a custom namespace keeps the main one working.
#[tokio::test]
async fn leave_custom_keep_main() {
    let Some((url, _server)) = server() else {
        return;
    };
    let client = client(&url);
    let (main, mut main_events) = client.socket("/", Auth::None).await.unwrap();
    let (custom, mut custom_events) = client.socket("/custom", Auth::None).await.unwrap();
    assert!(matches!(
        next(&mut custom_events).await,
        Event::Connect { .. }
    ));
    custom.disconnect().await;
    loop {
        match custom_events.recv().await {
            Some(Event::Disconnect(reason)) => {
                assert_eq!(reason, DisconnectReason::ClientDisconnect);
            }
            Some(_) => {}
            None => break,
        }
    }
    main.emit("message", ("message to main namespace",))
        .await
        .unwrap();
    assert_eq!(
        named(&mut main_events, "message-back").await,
        r#"["message to main namespace"]"#
    );
}

/// S10, S12: several arguments, with and without ack.
#[tokio::test]
async fn events_and_acks() {
    let Some((url, _server)) = server() else {
        return;
    };
    let client = client(&url);
    let (socket, mut events) = client.socket("/", Auth::None).await.unwrap();
    socket
        .emit("message", (1, "2", json!({"3": [true]})))
        .await
        .unwrap();
    assert_eq!(
        named(&mut events, "message-back").await,
        r#"[1,"2",{"3":[true]}]"#
    );
    let answer: (i32, String, Value) = socket
        .emit_with_ack(
            "message-with-ack",
            (1, "2", json!({"3": [false]})),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(answer, (1, "2".to_owned(), json!({"3": [false]})));
}

/// S11, S13: binary events and binary acks, two attachments, over each transport (long-polling
/// carries the attachments as `b<base64>` records).
#[tokio::test]
async fn binary_events_and_acks() {
    let Some((url, _server)) = server() else {
        return;
    };
    for mode in [
        engineio_client::TransportMode::Polling,
        engineio_client::TransportMode::WebSocket,
        engineio_client::TransportMode::PollingThenUpgrade,
    ] {
        let client = client_over(&url, mode);
        binary_round_trips(&client).await;
        if mode == engineio_client::TransportMode::Polling {
            let transport = client.state().borrow().transport;
            assert_eq!(transport, Some(engineio_client::Transport::Polling));
        }
        client.close();
    }
}

async fn binary_round_trips(client: &Client) {
    let (socket, mut events) = client.socket("/", Auth::None).await.unwrap();
    let one = Binary::from(vec![1u8, 2, 3]);
    let two = Binary::from(vec![4u8, 5, 6]);
    socket
        .emit("message", (one.clone(), two.clone()))
        .await
        .unwrap();
    loop {
        if let Event::Message(event) = next(&mut events).await
            && event.name().to_string() == "message-back"
        {
            let (a, b): (Binary, Binary) = event.args().unwrap();
            assert_eq!((a, b), (one.clone(), two.clone()));
            break;
        }
    }
    let (a, b): (Binary, Binary) = socket
        .emit_with_ack(
            "message-with-ack",
            (one.clone(), two.clone()),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!((a, b), (one, two));
}

/// The server asks for an ack; the client answers (binary too).
#[tokio::test]
async fn answering_server_acks() {
    let Some((url, _server)) = server() else {
        return;
    };
    let client = client(&url);
    let (socket, mut events) = client.socket("/", Auth::None).await.unwrap();
    socket.emit("server-ack", ("question",)).await.unwrap();
    loop {
        match next(&mut events).await {
            Event::Message(mut event) if event.name().to_string() == "ask" => {
                let (q,): (String,) = event.args().unwrap();
                assert_eq!(q, "question");
                event.ack(("reply", Binary::from(vec![7u8]))).await.unwrap();
            }
            Event::Message(event) if event.name().to_string() == "answer" => {
                let (text, bin): (String, Binary) = event.args().unwrap();
                assert_eq!((text.as_str(), bin.0.as_ref()), ("reply", &[7u8][..]));
                break;
            }
            _ => {}
        }
    }
}

/// Zero-argument events arrive under their own name with no arguments.
#[tokio::test]
async fn zero_argument_events() {
    let Some((url, _server)) = server() else {
        return;
    };
    let client = client(&url);
    let (socket, mut events) = client.socket("/", Auth::None).await.unwrap();
    socket.emit("no-args", ()).await.unwrap();
    assert_eq!(named(&mut events, "done").await, "[]");
}

/// Emits made before the namespace is connected are sent once it is, in order.
#[tokio::test]
async fn emits_before_connect_keep_their_order() {
    let Some((url, _server)) = server() else {
        return;
    };
    let client = client(&url);
    let (socket, mut events) = client.socket("/", Auth::None).await.unwrap();
    for i in 0..200 {
        socket.emit("message", (i,)).await.unwrap();
    }
    for i in 0..200 {
        assert_eq!(named(&mut events, "message-back").await, format!("[{i}]"));
    }
}

/// A server DISCONNECT is terminal for the namespace.
#[tokio::test]
async fn server_disconnect() {
    let Some((url, _server)) = server() else {
        return;
    };
    let client = client(&url);
    let (socket, mut events) = client.socket("/", Auth::None).await.unwrap();
    socket.emit("disconnect-me", ()).await.unwrap();
    loop {
        if let Event::Disconnect(reason) = next(&mut events).await {
            assert_eq!(reason, DisconnectReason::ServerDisconnect);
            break;
        }
    }
    assert!(events.recv().await.is_none());
}

/// The server restarts: the client reconnects with backoff, the namespace connects again, and
/// the auth provider is asked again.
#[tokio::test]
async fn reconnect_after_restart_asks_auth_again() {
    let Some((url, server)) = server() else {
        return;
    };
    let port = server.port;
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let auth = Auth::Provider(Arc::new(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        Box::pin(async move { Some(json!({"attempt": n})) })
    }));
    let client = client(&url);
    let (socket, mut events) = client.socket("/", auth).await.unwrap();
    assert!(matches!(next(&mut events).await, Event::Connect { .. }));
    let first = named(&mut events, "auth").await;
    drop(server);
    loop {
        if let Event::Disconnect(DisconnectReason::TransportClose(_)) = next(&mut events).await {
            break;
        }
    }
    let _server = node::start("socketio-server.mjs", port, &[]);
    loop {
        if let Event::Connect { .. } = next(&mut events).await {
            break;
        }
    }
    let second = named(&mut events, "auth").await;
    assert_ne!(
        first, second,
        "the provider was asked again: {first} then {second}"
    );
    socket.emit("message", ("back",)).await.unwrap();
    assert_eq!(named(&mut events, "message-back").await, r#"["back"]"#);
}

/// Connection state recovery: the transport drops, the server broadcasts while the client is
/// away, the client reconnects with pid and offset and gets what it missed, offsets stripped.
#[tokio::test]
async fn connection_state_recovery_delivers_what_was_missed() {
    let Some((url, _server)) = server() else {
        return;
    };
    let client = client(&url);
    let (socket, mut events) = client.socket("/", Auth::None).await.unwrap();
    assert!(matches!(
        next(&mut events).await,
        Event::Connect {
            recovered: false,
            ..
        }
    ));
    // A broadcast first, so the client has an offset.
    socket.emit("broadcast", (1,)).await.unwrap();
    assert_eq!(
        named(&mut events, "live").await,
        "[0]",
        "the offset argument is stripped"
    );
    socket.emit("drop-and-broadcast", (3,)).await.unwrap();
    loop {
        if let Event::Connect { recovered, .. } = next(&mut events).await {
            assert!(recovered, "the server recovered the session");
            break;
        }
    }
    for i in 0..3 {
        assert_eq!(named(&mut events, "missed").await, format!("[{i}]"));
    }
}

/// TLS with a custom root: the server's self-signed certificate is the only trusted root, and
/// both transports (polling, then the upgrade to wss) go through rustls.
#[tokio::test]
async fn tls_with_a_custom_root() {
    if !node::available() {
        return;
    }
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = std::env::temp_dir().join(format!("crema-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let server = node::start(
        "socketio-server.mjs",
        0,
        &[
            ("TLS_CERT", cert_path.to_str().unwrap()),
            ("TLS_KEY", key_path.to_str().unwrap()),
        ],
    );
    let mut roots = engineio_client::rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).unwrap();
    let tls = engineio_client::rustls::ClientConfig::builder_with_provider(Arc::new(
        engineio_client::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let url = format!("https://localhost:{}", server.port);
    let client = Client::new(
        ClientConfig::new(&url)
            .unwrap()
            .engine(|e| e.tls(Arc::new(tls))),
    );
    let (socket, mut events) = client.socket("/", Auth::None).await.unwrap();
    assert!(matches!(next(&mut events).await, Event::Connect { .. }));
    socket.emit("message", ("over tls",)).await.unwrap();
    assert_eq!(named(&mut events, "message-back").await, r#"["over tls"]"#);
    // The upgrade to wss happens too.
    let mut state = client.state();
    tokio::time::timeout(Duration::from_secs(5), async {
        while state.borrow().transport != Some(engineio_client::Transport::WebSocket) {
            state.changed().await.unwrap();
        }
    })
    .await
    .expect("upgraded to wss");
    let _ = std::fs::remove_dir_all(&dir);

    // Without the custom root the same server is refused: the default roots do not know it.
    let client = Client::new(ClientConfig::new(&url).unwrap().engine(|e| {
        e.reconnect(engineio_client::Reconnect {
            max_attempts: Some(0),
            ..engineio_client::Reconnect::default()
        })
    }));
    let (_socket, mut events) = client.socket("/", Auth::None).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap();
    assert!(end.is_none(), "no connection without the root: {end:?}");
    let error = client
        .state()
        .borrow()
        .last_error
        .clone()
        .unwrap_or_default();
    assert!(
        error.contains("certificate") || error.contains("Unknown"),
        "{error}"
    );
}
