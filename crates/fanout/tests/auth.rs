//! Auth modes and the origin check on `/ws`, over real sockets: tokens, introspection against a
//! server of ours on 127.0.0.1, refusals, and topics checked at subscribe.

use std::sync::Arc;
use std::time::Duration;

use axum::http::HeaderMap;
use fanout::Hub;
use fanout::admission::{Admission, Caps};
use fanout::auth::{Auth, TokenGrant};
use fanout::ws::{Limits, WsState, router};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::{Error, Message};

async fn listen(app: axum::Router) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(fanout::ws::listener(listener), app).await.ok();
    });
    addr
}

async fn gateway(auth: Auth, origins: Option<Vec<String>>) -> String {
    let hub = Arc::new(Hub::new(1, 8, 64));
    // The topics the tests read: as a gateway declares its machines' at start.
    for topic in [
        "machine:kitchen",
        "machine:office",
        "machine:a",
        "machine:b",
        "run:1",
    ] {
        hub.declare(topic);
    }
    let admission = Admission::new(Caps::default());
    let state = WsState::with_auth(hub, Limits::default(), auth, origins, admission);
    format!("ws://{}/ws", listen(router(state)).await)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str, headers: &[(&str, &str)]) -> Result<Ws, u16> {
    let mut request = url.into_client_request().unwrap();
    for (k, v) in headers {
        request.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(ws),
        Err(Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

async fn subscribe(ws: &mut Ws, topic: &str) -> Value {
    ws.send(Message::Text(
        json!({"op": "subscribe", "topic": topic})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_tokens() {
    let url = gateway(
        Auth::Token(vec![TokenGrant {
            token: "kitchen-key".into(),
            topics: vec!["machine:kitchen".into()],
            ..TokenGrant::default()
        }]),
        None,
    )
    .await;
    assert_eq!(connect(&url, &[]).await.err(), Some(401));
    assert_eq!(
        connect(&url, &[("authorization", "Bearer wrong")])
            .await
            .err(),
        Some(401)
    );
    let mut ws = connect(&url, &[("authorization", "Bearer kitchen-key")])
        .await
        .unwrap();
    assert_eq!(
        subscribe(&mut ws, "machine:kitchen").await["type"],
        "subscribed"
    );
    let refused = subscribe(&mut ws, "machine:office").await;
    assert_eq!(
        (refused["type"].as_str(), refused["code"].as_str()),
        (Some("error"), Some("forbidden"))
    );
    let mut ws = connect(&url, &[("cookie", "crema_token=kitchen-key")])
        .await
        .unwrap();
    assert_eq!(
        subscribe(&mut ws, "machine:kitchen").await["type"],
        "subscribed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspection_once_per_connection() {
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    let who = listen(axum::Router::new().route(
        "/whoami",
        axum::routing::get(move |headers: HeaderMap| {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let cookie = headers
                    .get("cookie")
                    .and_then(|c| c.to_str().ok())
                    .unwrap_or("");
                if cookie.contains("session=good") {
                    (
                        axum::http::StatusCode::OK,
                        axum::Json(json!({"id": "ada", "topics": ["machine:*"]})),
                    )
                } else {
                    (axum::http::StatusCode::UNAUTHORIZED, axum::Json(json!({})))
                }
            }
        }),
    ))
    .await;
    let url = gateway(
        Auth::introspect(format!("http://{who}/whoami"), Duration::from_secs(2)).unwrap(),
        None,
    )
    .await;
    assert_eq!(
        connect(&url, &[("cookie", "session=bad")]).await.err(),
        Some(401)
    );
    let mut ws = connect(&url, &[("cookie", "session=good")]).await.unwrap();
    for topic in ["machine:a", "machine:b"] {
        assert_eq!(subscribe(&mut ws, topic).await["type"], "subscribed");
    }
    assert_eq!(subscribe(&mut ws, "run:1").await["code"], "forbidden");
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "once per connection, never per subscribe"
    );
    // The introspection server gone: a clear refusal, not a hang.
    let url = gateway(
        Auth::introspect("http://127.0.0.1:9/whoami", Duration::from_secs(2)).unwrap(),
        None,
    )
    .await;
    assert_eq!(
        connect(&url, &[("cookie", "session=good")]).await.err(),
        Some(503)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_allow_list() {
    let url = gateway(Auth::None, Some(vec!["http://localhost:8080".into()])).await;
    assert_eq!(
        connect(&url, &[("origin", "http://evil.example")])
            .await
            .err(),
        Some(403)
    );
    assert!(
        connect(&url, &[("origin", "http://localhost:8080")])
            .await
            .is_ok()
    );
    assert!(
        connect(&url, &[]).await.is_ok(),
        "non-browser clients send no Origin"
    );
}

/// Introspection: only `Authorization: Bearer` without a cookie is an explicit credential (a
/// browser attaches cookies and cached Basic credentials by itself); an answer is kept for the
/// same credentials; the introspection server failing is 503, not "not signed in".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn introspected_credentials_cache_and_failures() {
    use fanout::auth::Credential;
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    let who = listen(axum::Router::new().route(
        "/whoami",
        axum::routing::get(move |headers: HeaderMap| {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let sent = |name: &str| headers.get(name).is_some();
                if headers.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer boom")
                {
                    return (axum::http::StatusCode::BAD_GATEWAY, axum::Json(json!({})));
                }
                if sent("cookie") || sent("authorization") {
                    let answer = json!({"id": "ada", "topics": ["machine:*"], "actions": ["runs"]});
                    (axum::http::StatusCode::OK, axum::Json(answer))
                } else {
                    (axum::http::StatusCode::UNAUTHORIZED, axum::Json(json!({})))
                }
            }
        }),
    ))
    .await;
    let auth = Auth::introspect(format!("http://{who}/whoami"), Duration::from_secs(2)).unwrap();
    let headers = |pairs: &[(&'static str, &'static str)]| {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    };
    let credential = |pairs: &'static [(&'static str, &'static str)]| {
        let auth = auth.clone();
        let h = headers(pairs);
        async move { auth.authenticate(&h).await.unwrap().credential }
    };
    assert_eq!(
        credential(&[("authorization", "Bearer t1")]).await,
        Credential::Bearer
    );
    assert_eq!(
        credential(&[("cookie", "session=s")]).await,
        Credential::Cookie
    );
    assert_eq!(
        credential(&[("authorization", "Basic YTpi")]).await,
        Credential::Cookie,
        "cached Basic credentials are a browser's, like a cookie"
    );
    assert_eq!(
        credential(&[("authorization", "Bearer t2"), ("cookie", "session=s")]).await,
        Credential::Cookie
    );
    let id = auth
        .authenticate(&headers(&[("cookie", "session=s")]))
        .await
        .unwrap();
    assert!(id.may("runs") && !id.may("metrics"), "{id:?}");
    let before = calls.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..5 {
        auth.authenticate(&headers(&[("cookie", "session=s")]))
            .await
            .unwrap();
    }
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        before,
        "kept for the same credentials"
    );
    let refused = auth.authenticate(&headers(&[])).await.unwrap_err();
    assert_eq!(refused.status, axum::http::StatusCode::UNAUTHORIZED);
    let failed = auth
        .authenticate(&headers(&[("authorization", "Bearer boom")]))
        .await
        .unwrap_err();
    assert_eq!(
        failed.status,
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        "{failed}"
    );
}
