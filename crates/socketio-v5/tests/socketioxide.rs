//! The socket.io client against an independent Rust server (socketioxide), in-process on
//! 127.0.0.1, with the handlers of the official socket.io-protocol test-suite server: `auth` on
//! connect, `message` → `message-back`, `message-with-ack` → ack, plus server-initiated acks,
//! server disconnect and a refusing middleware.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
mod common;

use common::{message, next};
use socketio_v5::{Auth, Binary, Client, ClientConfig, DisconnectReason, Event};
use socketioxide::SocketIo;
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::handler::ConnectHandler as _;

async fn on_connect(socket: SocketRef, Data(auth): Data<Value>) {
    socket.emit("auth", &auth).ok();
    // socketioxide's Data<Value> takes the first argument only: three-argument events use a
    // tuple (emitted spread, one argument each).
    socket.on("message", async |s: SocketRef, Data::<Value>(data)| {
        s.emit("message-back", &data).ok();
    });
    socket.on(
        "message3",
        async |s: SocketRef, Data::<(Value, Value, Value)>(data)| {
            s.emit("message-back", &data).ok();
        },
    );
    socket.on(
        "message-with-ack",
        async |Data::<(Value, Value, Value)>(data), ack: AckSender| {
            ack.send(&data).ok();
        },
    );
    socket.on("server-ack", async |s: SocketRef, Data::<Value>(data)| {
        if let Ok(stream) = s.emit_with_ack::<_, (String, i32)>("ask", &data) {
            if let Ok(answer) = stream.await {
                s.emit("answer", &answer).ok();
            }
        }
    });
    socket.on("no-args", async |s: SocketRef| {
        s.emit("done", &()).ok();
    });
    socket.on("disconnect-me", async |s: SocketRef| {
        s.disconnect().ok();
    });
    socket.on(
        "binary",
        async |s: SocketRef, Data::<(String, Bytes)>((name, bytes))| {
            s.emit("binary-back", &(name, bytes)).ok();
        },
    );
}

async fn refuse(_socket: SocketRef) -> Result<(), String> {
    Err("Not authorized".to_owned())
}

struct Server(Option<tokio::runtime::Runtime>);

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

fn server() -> (String, Server) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        let (layer, io) = SocketIo::builder()
            .ping_interval(Duration::from_millis(300))
            .ping_timeout(Duration::from_millis(200))
            .build_layer();
        io.ns("/", on_connect);
        io.ns("/custom", on_connect);
        io.ns("/refuse", on_connect.with(refuse));
        let app = axum::Router::new().layer(layer);
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        axum::serve(listener, app).await.ok();
    });
    (format!("http://{addr}"), Server(Some(rt)))
}

fn client(url: &str) -> Client {
    Client::new(ClientConfig::new(url).unwrap())
}

/// S1, S2: connect to the main namespace, with and without an auth payload.
#[tokio::test]
async fn connect_main_namespace_with_auth() {
    let (url, _server) = server();
    let client = client(&url);
    let (_socket, mut events) = client
        .socket("/", Auth::Static(json!({"token": "123"})))
        .await
        .unwrap();
    assert!(matches!(
        next(&mut events).await,
        Event::Connect {
            recovered: false,
            ..
        }
    ));
    assert_eq!(
        message(&mut events).await,
        ("auth".into(), r#"[{"token":"123"}]"#.into())
    );
}

/// S3, S4: a custom namespace multiplexed on the same connection as the main one.
#[tokio::test]
async fn namespaces_share_one_connection() {
    let (url, _server) = server();
    let client = client(&url);
    let (main, mut main_events) = client.socket("/", Auth::None).await.unwrap();
    let (custom, mut custom_events) = client
        .socket("/custom", Auth::Static(json!({"token": "abc"})))
        .await
        .unwrap();
    assert!(matches!(
        next(&mut main_events).await,
        Event::Connect { .. }
    ));
    assert!(matches!(
        next(&mut custom_events).await,
        Event::Connect { .. }
    ));
    assert_eq!(message(&mut custom_events).await.1, r#"[{"token":"abc"}]"#);
    main.emit("message", ("to main",)).await.unwrap();
    custom.emit("message", ("to custom",)).await.unwrap();
    assert_eq!(
        message(&mut custom_events).await,
        ("message-back".to_owned(), r#"["to custom"]"#.to_owned())
    );
    assert_eq!(message(&mut main_events).await.0, "auth");
    assert_eq!(
        message(&mut main_events).await,
        ("message-back".to_owned(), r#"["to main"]"#.to_owned())
    );
}

/// Emits made right after joining, before the server accepted, are all sent once it does.
/// (socketioxide runs event handlers concurrently, so the echo order is not the send order; the
/// Node suite checks the order.)
#[tokio::test]
async fn emits_before_connect_are_buffered_not_lost() {
    let (url, _server) = server();
    let client = client(&url);
    let (socket, mut events) = client.socket("/", Auth::None).await.unwrap();
    for i in 0..20 {
        socket.emit("message", (i,)).await.unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 20 {
        let (name, args) = message(&mut events).await;
        if name == "message-back" {
            got.push(args);
        }
    }
    got.sort_by_key(|a| {
        a.trim_matches(|c| c == '[' || c == ']')
            .parse::<u32>()
            .unwrap()
    });
    let expected: Vec<String> = (0..20).map(|i| format!("[{i}]")).collect();
    assert_eq!(got, expected);
}

/// S10, S12: plain events and events with ack, typed answers.
#[tokio::test]
async fn events_and_acks() {
    let (url, _server) = server();
    let client = client(&url);
    let (socket, mut events) = client.socket("/", Auth::None).await.unwrap();
    let answer: (i32, String, Value) = socket
        .emit_with_ack(
            "message-with-ack",
            (1, "2", json!({"3": [false]})),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(answer, (1, "2".to_owned(), json!({"3": [false]})));
    socket
        .emit("message3", (1, "2", json!({"3": [true]})))
        .await
        .unwrap();
    loop {
        let (name, args) = message(&mut events).await;
        if name == "message-back" {
            assert_eq!(args, r#"[1,"2",{"3":[true]}]"#);
            break;
        }
    }
}

/// An ack the server never sends fails with a timeout.
#[tokio::test]
async fn ack_timeout() {
    let (url, _server) = server();
    let client = client(&url);
    let (socket, _events) = client.socket("/", Auth::None).await.unwrap();
    let result: Result<(Value,), _> = socket
        .emit_with_ack("message", ("no ack here",), Duration::from_millis(300))
        .await;
    assert!(
        matches!(
            result,
            Err(socketio_v5::Error::Ack(socketio_v5::AckError::Timeout))
        ),
        "{result:?}"
    );
}

/// The socketioxide extra case: the server asks the client for an ack, and gets it.
#[tokio::test]
async fn answering_server_acks() {
    let (url, _server) = server();
    let client = client(&url);
    let (socket, mut events) = client.socket("/", Auth::None).await.unwrap();
    socket.emit("server-ack", ("question",)).await.unwrap();
    loop {
        match next(&mut events).await {
            Event::Message(mut event) if event.name().to_string() == "ask" => {
                assert!(event.wants_ack());
                let (q,): (String,) = event.args().unwrap();
                assert_eq!(q, "question");
                event.ack(("reply", 42)).await.unwrap();
            }
            Event::Message(event) if event.name().to_string() == "answer" => {
                assert_eq!(event.raw_args().unwrap(), r#"["reply",42]"#);
                break;
            }
            _ => {}
        }
    }
}

/// S11: binary attachments both ways.
#[tokio::test]
async fn binary_event() {
    let (url, _server) = server();
    let client = client(&url);
    let (socket, mut events) = client.socket("/", Auth::None).await.unwrap();
    socket
        .emit("binary", ("blob", Binary::from(vec![1u8, 2, 3])))
        .await
        .unwrap();
    loop {
        if let Event::Message(event) = next(&mut events).await
            && event.name().to_string() == "binary-back"
        {
            let (name, data): (String, Binary) = event.args().unwrap();
            assert_eq!(name, "blob");
            assert_eq!(data.0.as_ref(), &[1, 2, 3]);
            break;
        }
    }
}

/// S5-like: a middleware refuses the namespace: CONNECT_ERROR with the message, terminal.
#[tokio::test]
async fn refused_namespace_is_terminal() {
    let (url, _server) = server();
    let client = client(&url);
    let (socket, mut events) = client.socket("/refuse", Auth::None).await.unwrap();
    match next(&mut events).await {
        Event::ConnectError { message, .. } => assert_eq!(message, "Not authorized"),
        other => panic!("{other:?}"),
    }
    assert!(
        tokio::time::timeout(Duration::from_secs(5), events.recv())
            .await
            .unwrap()
            .is_none()
    );
    assert!(socket.emit("message", ()).await.is_err());
}

/// A server DISCONNECT ends the namespace without reconnection.
#[tokio::test]
async fn server_disconnect_is_terminal() {
    let (url, _server) = server();
    let client = client(&url);
    let (socket, mut events) = client.socket("/", Auth::None).await.unwrap();
    socket.emit("disconnect-me", ()).await.unwrap();
    loop {
        if let Event::Disconnect(reason) = next(&mut events).await {
            assert_eq!(reason, DisconnectReason::ServerDisconnect);
            break;
        }
    }
}

/// Reserved names are refused before anything is sent.
#[tokio::test]
async fn reserved_names_are_refused() {
    let (url, _server) = server();
    let client = client(&url);
    let (socket, _events) = client.socket("/", Auth::None).await.unwrap();
    for name in [
        "connect",
        "disconnect",
        "connect_error",
        "disconnecting",
        "newListener",
        "removeListener",
    ] {
        assert!(matches!(
            socket.emit(name, ()).await,
            Err(socketio_v5::Error::Emit(socketio_v5::EmitError::Reserved(
                _
            )))
        ));
    }
}

/// A zero-argument emit reaches its handler (socketioxide answers with a unit, `[null]`; the
/// codec vectors and the Node suite cover receiving `["done"]`).
#[tokio::test]
async fn zero_argument_emits_reach_the_server() {
    let (url, _server) = server();
    let client = client(&url);
    let (socket, mut events) = client.socket("/", Auth::None).await.unwrap();
    socket.emit("no-args", ()).await.unwrap();
    loop {
        let (name, args) = message(&mut events).await;
        if name == "done" {
            assert_eq!(args, "[null]");
            break;
        }
    }
}

/// Typed streams: `Socket::on::<T>(name)` takes the events of that name, first argument
/// deserialized; every other event stays in the namespace's stream.
#[tokio::test]
async fn a_typed_stream_takes_its_events_and_leaves_the_rest() {
    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Status {
        state: String,
        pressure: f64,
    }
    let (url, _server) = server();
    let client = client(&url);
    let (socket, mut events) = client.socket("/", Auth::None).await.unwrap();
    let mut status = socket.on::<Status>("message-back").await.unwrap();
    assert!(matches!(next(&mut events).await, Event::Connect { .. }));
    assert_eq!(message(&mut events).await.0, "auth");
    socket
        .emit("message", (json!({"state": "brewing", "pressure": 8.5}),))
        .await
        .unwrap();
    socket
        .emit("message", (json!({"state": 3}),))
        .await
        .unwrap();
    socket.emit("no-args", ()).await.unwrap();
    // socketioxide runs each event's handler as a task of its own, so the two answers may come
    // back in either order.
    let mut answers = Vec::new();
    for _ in 0..2 {
        let answer = tokio::time::timeout(Duration::from_secs(5), status.recv())
            .await
            .unwrap()
            .unwrap();
        answers.push(answer);
    }
    let typed: Vec<&Status> = answers.iter().filter_map(|a| a.as_ref().ok()).collect();
    assert_eq!(
        typed,
        [&Status {
            state: "brewing".into(),
            pressure: 8.5
        }]
    );
    assert!(
        answers.iter().any(Result::is_err),
        "another shape is an error, and the stream goes on"
    );
    // `done` was not asked for: it comes through the namespace's stream, after the others.
    assert_eq!(message(&mut events).await.0, "done");
    client.close();
    assert!(
        tokio::time::timeout(Duration::from_secs(5), status.recv())
            .await
            .unwrap()
            .is_none(),
        "the typed stream ends with the client"
    );
}

/// Dropping a typed stream sends its event name back to the namespace's stream.
#[tokio::test]
async fn a_dropped_typed_stream_gives_its_events_back() {
    let (url, _server) = server();
    let client = client(&url);
    let (socket, mut events) = client.socket("/", Auth::None).await.unwrap();
    let typed = socket.on::<Value>("message-back").await.unwrap();
    assert!(matches!(next(&mut events).await, Event::Connect { .. }));
    assert_eq!(message(&mut events).await.0, "auth");
    drop(typed);
    socket.emit("message", (json!({"n": 1}),)).await.unwrap();
    assert_eq!(
        message(&mut events).await,
        ("message-back".into(), r#"[{"n":1}]"#.into())
    );
}
