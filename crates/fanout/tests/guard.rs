//! The guard in front of an API, through a real router: public paths, refusals, origins, and
//! the metrics path with the `metrics` action (or, when allowed, for a peer on this host).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::{Extension, Router};
use fanout::auth::{Auth, Identity, TokenGrant};
use fanout::guard::{Policy, guard};
use tower::ServiceExt as _;

fn app(metrics_loopback: bool) -> Router {
    let auth = Auth::Token(vec![
        TokenGrant {
            token: "scraper".into(),
            actions: vec!["metrics".into()],
            ..TokenGrant::default()
        },
        TokenGrant {
            token: "reader".into(),
            topics: vec!["machine:*".into()],
            ..TokenGrant::default()
        },
    ]);
    let policy = Arc::new(Policy {
        auth,
        origins: Some(vec!["https://crema.example".into()]),
        public: vec!["/healthz".into()],
        metrics: Some("/metrics".into()),
        metrics_loopback,
    });
    let who = |Extension(identity): Extension<Identity>| async move {
        identity.id.unwrap_or_else(|| "everyone".into())
    };
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/metrics", get(who))
        .route("/api", get(who).post(who))
        .layer(axum::middleware::from_fn_with_state(policy, guard))
}

async fn call(method: &str, path: &str, peer: &str, headers: &[(&str, &str)]) -> StatusCode {
    call_with(false, method, path, peer, headers).await
}

async fn call_with(
    metrics_loopback: bool,
    method: &str,
    path: &str,
    peer: &str,
    headers: &[(&str, &str)],
) -> StatusCode {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "box:8080");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let mut request = request.body(Body::empty()).unwrap();
    let peer: SocketAddr = peer.parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    app(metrics_loopback)
        .oneshot(request)
        .await
        .unwrap()
        .status()
}

const REMOTE: &str = "192.0.2.7:40000";

#[tokio::test]
async fn metrics_needs_the_action_off_this_host() {
    let bearer = |t: &str| format!("Bearer {t}");
    assert_eq!(
        call("GET", "/metrics", REMOTE, &[]).await,
        StatusCode::UNAUTHORIZED
    );
    let reader = bearer("reader");
    let scraper = bearer("scraper");
    assert_eq!(
        call("GET", "/metrics", REMOTE, &[("authorization", &reader)]).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        call("GET", "/metrics", REMOTE, &[("authorization", &scraper)]).await,
        StatusCode::OK
    );
    // A peer on this host needs credentials too, unless the operator says no proxy on this
    // host passes requests on without saying so (`metrics_loopback`).
    assert_eq!(
        call("GET", "/metrics", "127.0.0.1:40000", &[]).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call_with(true, "GET", "/metrics", "127.0.0.1:40000", &[]).await,
        StatusCode::OK
    );
    assert_eq!(
        call_with(true, "GET", "/metrics", "[::1]:40000", &[]).await,
        StatusCode::OK
    );
    // A reverse proxy on this host passes on a request from elsewhere.
    let proxied = [("x-forwarded-for", "198.51.100.4")];
    assert_eq!(
        call_with(true, "GET", "/metrics", "127.0.0.1:40000", &proxied).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn public_paths_pass_and_the_rest_is_guarded() {
    assert_eq!(call("GET", "/healthz", REMOTE, &[]).await, StatusCode::OK);
    assert_eq!(
        call("GET", "/api", REMOTE, &[]).await,
        StatusCode::UNAUTHORIZED
    );
    let nope = [("authorization", "Bearer nope")];
    assert_eq!(
        call("GET", "/api", REMOTE, &nope).await,
        StatusCode::UNAUTHORIZED
    );
    let reader = [("authorization", "Bearer reader")];
    assert_eq!(call("GET", "/api", REMOTE, &reader).await, StatusCode::OK);
}

#[tokio::test]
async fn cookies_change_things_only_from_allowed_pages() {
    let cookie = ("cookie", "crema_token=reader");
    for (origin, site, expected) in [
        ("https://evil.example", "cross-site", StatusCode::FORBIDDEN),
        ("https://crema.example", "cross-site", StatusCode::OK),
        ("http://box:8080", "same-origin", StatusCode::OK),
        ("http://box:8080", "", StatusCode::OK),
        ("null", "", StatusCode::FORBIDDEN),
    ] {
        let mut headers = vec![cookie, ("origin", origin)];
        if !site.is_empty() {
            headers.push(("sec-fetch-site", site));
        }
        assert_eq!(
            call("POST", "/api", REMOTE, &headers).await,
            expected,
            "{origin} {site}"
        );
        // Reading is not changing: a foreign page's GET passes (the browser keeps the answer
        // from it).
        assert_eq!(call("GET", "/api", REMOTE, &headers).await, StatusCode::OK);
    }
    // A bearer token is sent by code that holds it, never by a browser on its own.
    let bearer = [
        ("authorization", "Bearer reader"),
        ("origin", "https://evil.example"),
    ];
    assert_eq!(call("POST", "/api", REMOTE, &bearer).await, StatusCode::OK);
}
