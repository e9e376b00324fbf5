//! After every live shot: webhooks (JSON with a retry, ntfy, a dead one) and external
//! analyzers (one that answers, one that fails), against receivers on 127.0.0.1 and the
//! simulated machine brewing shot after shot; then an analysis run asks the same analyzers.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::{eventually, free_port, get_json, post_json, request, start, start_logged};
use serde_json::{Value, json};
use simulator::{Scenario, Simulator, SimulatorConfig};

/// What the receivers saw.
#[derive(Default)]
struct Seen {
    /// JSON hook: when each try of each delivery id came, and the bodies it accepted.
    tries: BTreeMap<String, Vec<std::time::Instant>>,
    accepted: Vec<Value>,
    /// ntfy: (Title, Authorization, body) of each notification.
    ntfy: Vec<(String, String, String)>,
    /// Tries of the hook that answers 401.
    refused: u32,
    /// Shots the analyzer was sent: (shot id, sample count), in order.
    analyzed: Vec<(i64, usize)>,
}

async fn receivers(seen: Arc<Mutex<Seen>>) -> String {
    let hook = {
        let seen = seen.clone();
        move |headers: HeaderMap, body: String| async move {
            let key = headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let mut seen = seen.lock().unwrap();
            let tries = seen.tries.entry(key).or_default();
            tries.push(std::time::Instant::now());
            if tries.len() == 1 {
                // Every first try fails: the gateway must try again, once, as soon as asked (its
                // own first wait would be 2 s).
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [("retry-after", "0")],
                    "busy",
                );
            }
            seen.accepted.push(serde_json::from_str(&body).unwrap());
            (StatusCode::OK, [("retry-after", "0")], "ok")
        }
    };
    let ntfy = {
        let seen = seen.clone();
        move |headers: HeaderMap, body: String| async move {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            seen.lock()
                .unwrap()
                .ntfy
                .push((header("title"), header("authorization"), body));
            "{}"
        }
    };
    let analyze = {
        let seen = seen.clone();
        move |body: String| async move {
            let shot: Value = serde_json::from_str(&body).unwrap();
            let samples = shot["data"].as_array().map_or(0, Vec::len);
            seen.lock()
                .unwrap()
                .analyzed
                .push((shot["key"].as_i64().unwrap(), samples));
            axum::Json(json!({"verdict": "fine", "samples": samples}))
        }
    };
    let refuse = {
        let seen = seen.clone();
        move || async move {
            seen.lock().unwrap().refused += 1;
            (StatusCode::UNAUTHORIZED, "bad token")
        }
    };
    let app = Router::new()
        .route("/hook", post(hook))
        .route("/refuse", post(refuse))
        .route("/ntfy", post(ntfy))
        .route("/analyze", post(analyze))
        .route(
            "/broken",
            post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "model overloaded") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_finished_shot_reaches_its_webhooks_once_and_its_analyzers() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let at = receivers(seen.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crema.db");
    let config = dir.path().join("crema.toml");
    // Nothing listens at the dead hook's port.
    let dead = free_port();
    std::fs::write(
        &config,
        format!(
            r#"
[[webhooks]]
name = "log"
url = "http://{at}/hook"

[[webhooks]]
name = "phone"
url = "http://{at}/ntfy"
format = "ntfy"
token = "tk_test"

[[webhooks]]
name = "refused"
url = "http://{at}/refuse?key=hook-secret-1"

[[webhooks]]
name = "dead"
url = "http://127.0.0.1:{dead}/hook-secret-2"
attempts = 2

[[analyzers]]
name = "coach"
url = "http://{at}/analyze"

[[analyzers]]
name = "broken"
url = "http://{at}/broken?key=hook-secret-3"
timeout_s = 5
"#
        ),
    )
    .unwrap();
    let _sim = Simulator::start(SimulatorConfig {
        scenario: Scenario::Normal,
        speed: 20.0,
        repeat: true,
        pause: Duration::from_secs(10),
        ..Default::default()
    })
    .await
    .unwrap();
    let log = dir.path().join("gateway.log");
    let gw = start_logged(
        &[
            "--config",
            config.to_str().unwrap(),
            "--machine",
            &format!("kitchen={}", _sim.url()),
            "--db",
            db.to_str().unwrap(),
        ],
        &log,
    )
    .await;
    // Two shots recorded, each delivered and analyzed.
    // The first two shots, once both have ended (the machine may be brewing a third).
    let shots: Vec<Value> = eventually(Duration::from_secs(60), "two shots", || async {
        let (_, page) = get_json(&gw.addr, "/api/v1/shots").await;
        let mut shots: Vec<Value> = page["shots"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s["status"] != "recording")
            .collect();
        shots.sort_by_key(|s| s["key"].as_i64());
        (shots.len() >= 2).then(|| shots[..2].to_vec())
    })
    .await;
    let ids: Vec<i64> = shots.iter().map(|s| s["key"].as_i64().unwrap()).collect();
    eventually(Duration::from_secs(30), "deliveries", || async {
        let seen = seen.lock().unwrap();
        (seen.accepted.len() >= 2 && seen.ntfy.len() >= 2 && seen.analyzed.len() >= 2).then_some(())
    })
    .await;
    // The dead hook gives up after its two tries, the recording going on meanwhile.
    let metrics = eventually(
        Duration::from_secs(30),
        "the dead hook gives up",
        || async {
            let (_, text) = request(&gw.addr, "GET", "/metrics", "", "").await;
            (metric(
                &text,
                "crema_webhook_deliveries_total{webhook=\"dead\",result=\"failed\"}",
            ) >= 2.0)
                .then_some(text)
        },
    )
    .await;
    {
        let seen = seen.lock().unwrap();
        // Each shot accepted once, after one refused try; delivery ids are the shots'.
        for (id, shot) in ids.iter().zip(&shots).take(2) {
            let key = format!("shot-{id}-{}", shot["sample_count"]);
            let tries = seen.tries.get(&key).map(Vec::as_slice).unwrap_or_default();
            assert_eq!(tries.len(), 2, "{:?}", seen.tries.keys());
            assert!(
                tries[1] - tries[0] < Duration::from_millis(1500),
                "Retry-After: 0 is honoured"
            );
            let accepted: Vec<&Value> = seen
                .accepted
                .iter()
                .filter(|body| body["delivery"] == key.as_str())
                .collect();
            assert_eq!(accepted.len(), 1, "{:?}", seen.accepted);
            let body = accepted[0];
            assert_eq!(body["event"], "shot_finished");
            assert_eq!(body["shot"]["key"], *id);
            assert_eq!(
                body["shot"]["id"], shot["id"],
                "the same shape as the REST list"
            );
            assert_eq!(body["shot"]["machine"], "kitchen");
            assert_eq!(body["facts"]["analyzer"], "shot-facts/1");
            assert_eq!(body["facts"]["samples"], 214);
            assert_eq!(
                seen.analyzed
                    .iter()
                    .filter(|a| a.0 == *id)
                    .collect::<Vec<_>>(),
                [&(*id, 214)]
            );
        }
        for (title, authorization, text) in &seen.ntfy[..2] {
            assert_eq!(title, "Shot finished on kitchen");
            assert_eq!(authorization, "Bearer tk_test");
            assert!(text.contains(" g in ") && text.contains(" bar"), "{text}");
        }
    }
    assert!(
        metric(
            &metrics,
            "crema_webhook_deliveries_total{webhook=\"log\",result=\"delivered\"}"
        ) >= 2.0
    );
    assert!(metric(&metrics, "crema_webhook_retries_total{webhook=\"log\"}") >= 2.0);
    assert_eq!(
        metric(
            &metrics,
            "crema_webhook_deliveries_total{webhook=\"log\",result=\"failed\"}"
        ),
        0.0
    );
    assert!(
        metric(
            &metrics,
            "crema_webhook_deliveries_total{webhook=\"phone\",result=\"delivered\"}"
        ) >= 2.0
    );
    // A 401 is final: one try per shot, no retries.
    let refused = metric(
        &metrics,
        "crema_webhook_deliveries_total{webhook=\"refused\",result=\"failed\"}",
    );
    assert!(refused >= 2.0, "{metrics}");
    assert_eq!(
        metric(&metrics, "crema_webhook_retries_total{webhook=\"refused\"}"),
        0.0
    );
    assert!(f64::from(seen.lock().unwrap().refused) >= refused);
    assert!(
        metric(
            &metrics,
            "crema_analyzer_answers_total{analyzer=\"broken\",result=\"failed\"}"
        ) >= 2.0
    );
    // The analyzer's answer is stored under its name, beside the built-in analysis.
    let (_, analyses) = get_json(&gw.addr, &format!("/api/v1/shots/{}/analyses", ids[0])).await;
    let by_name: BTreeMap<&str, &Value> = analyses["analyses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["analyzer"].as_str().unwrap(), &a["result"]))
        .collect();
    assert_eq!(
        by_name.get("coach"),
        Some(&&json!({"verdict": "fine", "samples": 214})),
        "{analyses}"
    );
    assert!(by_name.contains_key("shot-facts/1"), "{analyses}");
    assert!(!by_name.contains_key("broken"), "{analyses}");

    // An analysis run asks the same analyzers about the chosen shot; the broken one fails it.
    let asked = |seen: &Seen| seen.analyzed.iter().filter(|a| a.0 == ids[0]).count();
    let before = asked(&seen.lock().unwrap());
    let (status, run) = post_json(
        &gw.addr,
        "/api/v1/runs",
        &json!({"kind": "analyze", "shots": [ids[0].to_string()]}),
    )
    .await;
    assert_eq!(status, 202, "{run}");
    let path = format!("/api/v1/runs/{}", run["id"]);
    let run = eventually(Duration::from_secs(30), "the run ends", || async {
        let (_, run) = get_json(&gw.addr, &path).await;
        (run["status"] != "queued" && run["status"] != "running").then_some(run)
    })
    .await;
    assert_eq!(
        (&run["status"], &run["done"], &run["failed"]),
        (&json!("succeeded"), &json!(1), &json!(1)),
        "{run}"
    );
    let summary = run["summary"].as_str().unwrap();
    assert!(
        summary.contains("coach") && summary.contains("analyzer broken"),
        "{summary}"
    );
    assert_eq!(asked(&seen.lock().unwrap()), before + 1);
    let (_, metrics) = request(&gw.addr, "GET", "/metrics", "", "").await;
    assert_eq!(
        metric(
            &metrics,
            "crema_runs{kind=\"analyze\",status=\"succeeded\"}"
        ),
        1.0
    );
    assert_eq!(metric(&metrics, "crema_run_active"), 0.0);
    assert_eq!(metric(&metrics, "crema_run_total"), 0.0);
    // The failures were told (the refused hook, the dead one, the broken analyzer) without
    // the URLs' secrets: not in the log, the run's summary, nor anywhere in the database
    // (the outbox's last errors).
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("127.0.0.1"), "{logged}");
    let mut stored = std::fs::read(&db).unwrap();
    stored.extend(std::fs::read(dir.path().join("crema.db-wal")).unwrap_or_default());
    for (what, text) in [
        ("the log", logged),
        ("the run", summary.to_owned()),
        (
            "the database",
            String::from_utf8_lossy(&stored).into_owned(),
        ),
    ] {
        assert!(
            !text.contains("hook-secret"),
            "a URL's secret in {what}: {text}"
        );
    }
}

/// A webhook's deliveries are kept in the store: a receiver that is down when the gateway is
/// killed with `kill -9` gets every shot once it is back, from the restarted gateway, under the
/// same `Idempotency-Key`, and accepts each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_survives_kill_9_and_is_accepted_once() {
    #[derive(Default)]
    struct Receiver {
        up: bool,
        tries: BTreeMap<String, u32>,
        accepted: BTreeMap<String, u32>,
    }
    let receiver = Arc::new(Mutex::new(Receiver::default()));
    let state = receiver.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap| {
            let state = state.clone();
            async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let mut r = state.lock().unwrap();
                *r.tries.entry(key.clone()).or_default() += 1;
                if !r.up {
                    return (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "1")]);
                }
                *r.accepted.entry(key).or_default() += 1;
                (StatusCode::OK, [("retry-after", "0")])
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let at = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crema.db");
    let hook = format!("log=http://{at}/hook");
    let args = [
        "--demo",
        "--demo-speed",
        "20",
        "--db",
        db.to_str().unwrap(),
        "--webhook",
        &hook,
    ];
    let mut gateway = start(&args).await;
    // A shot finished and its delivery is being retried while the receiver is down.
    let waiting = eventually(Duration::from_secs(60), "a refused delivery", || async {
        let r = receiver.lock().unwrap();
        r.tries
            .iter()
            .find(|(_, n)| **n >= 2)
            .map(|(k, _)| k.clone())
    })
    .await;
    gateway.child.kill().unwrap();
    gateway.child.wait().unwrap();
    receiver.lock().unwrap().up = true;
    drop(gateway);
    let _gateway = start(&args).await;
    eventually(
        Duration::from_secs(30),
        "the delivery made after the restart",
        || async {
            receiver
                .lock()
                .unwrap()
                .accepted
                .contains_key(&waiting)
                .then_some(())
        },
    )
    .await;
    // A few seconds more: nothing is delivered twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let r = receiver.lock().unwrap();
    assert!(
        r.accepted.values().all(|n| *n == 1),
        "each delivery accepted once: {:?}",
        r.accepted
    );
}
