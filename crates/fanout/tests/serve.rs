//! The server loop over real sockets: slow-header clients are closed after the timeout while
//! others are served, the peer reaches the handlers, heads are bounded, and shutdown ends it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::routing::get;
use fanout::serve::{Connections, ServeConfig, serve};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

async fn start(
    config: ServeConfig,
) -> (
    SocketAddr,
    Arc<Connections>,
    tokio::sync::oneshot::Sender<()>,
) {
    let app = axum::Router::new().route(
        "/peer",
        get(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { peer.to_string() }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let open = Arc::new(Connections::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let counted = open.clone();
    tokio::spawn(async move {
        serve(listener, app, config, counted, async {
            let _ = stopped.await;
        })
        .await;
    });
    (addr, open, stop)
}

async fn get_peer(addr: SocketAddr) -> (String, SocketAddr) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let local = tcp.local_addr().unwrap();
    tcp.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), tcp.read_to_string(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    (answer, local)
}

/// Reads until the server closes; how long that took.
async fn closed_after(tcp: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(limit, tcp.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("still open after {limit:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_closed_while_others_are_served() {
    let config = ServeConfig {
        header_read_timeout: Duration::from_millis(800),
        ..ServeConfig::default()
    };
    let (addr, open, _stop) = start(config).await;
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET /peer HTTP/1.1\r\nHost: x\r\nX-Slow:")
            .await
            .unwrap();
        slow.push(tcp);
    }
    // Someone else is answered at once meanwhile, and the handler sees who asked.
    let started = Instant::now();
    let (answer, local) = get_peer(addr).await;
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.ends_with(&local.to_string()),
        "{answer} from {local}"
    );
    for tcp in &mut slow {
        let took = closed_after(tcp, Duration::from_secs(5)).await;
        assert!(took < Duration::from_secs(3), "closed after {took:?}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(open.open(), 0, "every slow connection is gone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_over_the_limit_is_refused() {
    let (addr, _open, _stop) = start(ServeConfig::default()).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let big = "a".repeat(64 * 1024);
    let request = format!("GET /peer HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    // The server may close before it has read everything: a failed write is an answer too.
    let _ = tcp.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 431"),
        "{answer}"
    );
    assert!(!answer.contains("200 OK"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_accepting() {
    let (addr, _open, stop) = start(ServeConfig::default()).await;
    let (answer, _) = get_peer(addr).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    stop.send(()).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "nothing listens any more"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_cap_connections_wait_for_a_slot() {
    let app = axum::Router::new().route("/", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(Connections::default());
    let config = ServeConfig {
        max_connections: 2,
        ..ServeConfig::default()
    };
    let counted = connections.clone();
    tokio::spawn(serve(
        listener,
        app,
        config,
        counted,
        std::future::pending(),
    ));
    let mut held = Vec::new();
    for _ in 0..2 {
        held.push(TcpStream::connect(addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(connections.open(), 2);
    // A third is accepted by the kernel but not served while both slots are taken.
    let mut third = TcpStream::connect(addr).await.unwrap();
    third
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let waited =
        tokio::time::timeout(Duration::from_millis(500), third.read_to_end(&mut answer)).await;
    assert!(waited.is_err(), "served past the cap: {answer:?}");
    drop(held.pop());
    tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut answer))
        .await
        .expect("served once a slot is free")
        .unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"));
}
