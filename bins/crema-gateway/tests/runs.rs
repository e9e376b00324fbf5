//! `/api/v1/runs` of the gateway binary over a store of 600 shots: one run at a time under
//! concurrent requests, the SSE stream (snapshot, progress, finished) and its resume, cancel,
//! and a run cut by `kill -9` found `interrupted` by the next start.

use std::time::Duration;

use serde_json::{Value, json};
use storage::{Options, Store, Write};

const SHOTS: usize = 600;

mod common;
use common::{Gateway, request};

/// The gateway over `db`, with a machine nobody answers at: runs need only the store. The
/// scheduled history sync waits for the machine to be connected, so the runs a test starts are
/// the only ones.
async fn start(db: &std::path::Path) -> Gateway {
    let gw = common::start(&[
        "--machine",
        "http://127.0.0.1:9",
        "--db",
        db.to_str().unwrap(),
    ])
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, list) = get(&gw.addr, "/api/v1/runs?limit=5").await;
    assert_eq!(status, 200, "{list}");
    assert!(
        list["runs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["started_by"] != "schedule"),
        "no sync is scheduled while the machine is unreachable: {list}"
    );
    gw
}

async fn post(addr: &str, path: &str, body: Value) -> (u16, Value) {
    let (status, text) = request(addr, "POST", path, "", &body.to_string()).await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn get(addr: &str, path: &str) -> (u16, Value) {
    let (status, text) = request(addr, "GET", path, "", "").await;
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A whole SSE stream: (event, id, data) in order.
async fn events(addr: &str, path: &str, last_id: Option<&str>) -> Vec<(String, String, Value)> {
    let header = last_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
    let (status, body) = request(addr, "GET", path, &header, "").await;
    assert_eq!(status, 200, "{body}");
    let mut out = Vec::new();
    for block in body.split("\n\n") {
        let field = |name: &str| {
            block
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .map(str::to_owned)
        };
        if let (Some(event), Some(id), Some(data)) = (field("event"), field("id"), field("data")) {
            out.push((event, id, serde_json::from_str(&data).unwrap()));
        }
    }
    out
}

async fn store_shots(db: &std::path::Path) {
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/meticulous/meticulous_history.json"),
    )
    .unwrap();
    let entry = serde_json::from_str::<meticulous::HistoryPage>(&text)
        .unwrap()
        .history
        .remove(0);
    let store = Store::open(db, Options::default()).unwrap();
    let writes: Vec<_> = (0..SHOTS)
        .map(|i| {
            let mut e = entry.clone();
            e.id = format!("00000000-0000-4000-8000-{i:012}");
            e.time += i as f64;
            store.write(Write::UpsertHistory {
                machine: "default".into(),
                entry: Box::new(e),
            })
        })
        .collect();
    for w in futures_util::future::join_all(writes).await {
        w.unwrap();
    }
    tokio::task::spawn_blocking(move || store.close())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_over_http_and_sse() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crema.db");
    store_shots(&db).await;
    let gw = start(&db).await;
    let addr = gw.addr.clone();

    assert_eq!(get(&addr, "/api/v1/runs/current").await.0, 404);
    assert_eq!(get(&addr, "/api/v1/runs/999").await.0, 404);
    // A body over 64 KiB is refused before any handler reads it.
    let big = json!({"kind": "qa", "shots": vec!["x".repeat(100); 700]});
    let (status, _) = request(&addr, "POST", "/api/v1/runs", "", &big.to_string()).await;
    assert_eq!(status, 413);
    let (status, body) = post(&addr, "/api/v1/runs", json!({"kind": "paint"})).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("bad_request")));
    let (status, body) = post(
        &addr,
        "/api/v1/runs",
        json!({"kind": "qa", "shots": ["nope"]}),
    )
    .await;
    assert_eq!(status, 400, "{body}");

    // Six at once: one is accepted, five are told which run is active.
    let answers = futures_util::future::join_all(
        (0..6).map(|_| post(&addr, "/api/v1/runs", json!({"kind": "qa"}))),
    )
    .await;
    let accepted: Vec<&Value> = answers
        .iter()
        .filter(|a| a.0 == 202)
        .map(|a| &a.1)
        .collect();
    assert_eq!(accepted.len(), 1, "{answers:?}");
    let id = accepted[0]["id"].as_i64().unwrap();
    for (status, body) in &answers {
        if *status != 202 {
            assert_eq!(*status, 409);
            assert_eq!(body["error"], "run_active");
            assert_eq!(body["run"]["id"].as_i64(), Some(id));
        }
    }

    // Its stream: the snapshot, progress, then one finished event; every data is the run.
    let path = format!("/api/v1/runs/{id}/events");
    let seen = events(&addr, &path, None).await;
    let names: Vec<&str> = seen.iter().map(|e| e.0.as_str()).collect();
    assert_eq!(names.first(), Some(&"snapshot"), "{names:?}");
    assert_eq!(names.last(), Some(&"finished"), "{names:?}");
    assert!(
        names[1..names.len() - 1].iter().all(|n| *n == "progress"),
        "{names:?}"
    );
    for (i, (_, event_id, data)) in seen.iter().enumerate() {
        assert_eq!(event_id, &format!("{id}-{i}"));
        assert_eq!(data["id"].as_i64(), Some(id));
    }
    let dones: Vec<u64> = seen.iter().map(|e| e.2["done"].as_u64().unwrap()).collect();
    assert!(dones.windows(2).all(|w| w[0] <= w[1]), "{dones:?}");
    let last = &seen.last().unwrap().2;
    assert_eq!(last["status"], "succeeded");
    assert_eq!(
        (last["total"].as_u64(), last["done"].as_u64()),
        (Some(SHOTS as u64), Some(SHOTS as u64))
    );
    // At most ten progress events a second.
    let took = last["finished_at"].as_f64().unwrap() - last["started_at"].as_f64().unwrap();
    assert!(
        (names.len() as f64) <= 3.0 + took * 10.0 + 2.0,
        "{} events in {took:.2} s",
        names.len()
    );

    // The shot's page carries its verdicts.
    let (_, shot) = get(&addr, "/api/v1/shots/00000000-0000-4000-8000-000000000000").await;
    let qa = shot["qa"].as_array().unwrap();
    assert_eq!(qa.len(), 6, "{shot}");
    assert!(
        qa.iter()
            .all(|v| v["passed"] == true && v["message"].is_string())
    );

    // Resume after event 1: the snapshot again, numbered after it, then the end.
    let resumed = events(&addr, &path, Some(&format!("{id}-1"))).await;
    let resumed: Vec<(&str, &str)> = resumed
        .iter()
        .map(|e| (e.0.as_str(), e.1.as_str()))
        .collect();
    assert_eq!(
        resumed,
        [
            ("snapshot", &*format!("{id}-2")),
            ("finished", &*format!("{id}-3"))
        ]
    );
    assert_eq!(
        get(&addr, &format!("/api/v1/runs/{id}")).await.1["status"],
        "succeeded"
    );

    // Cancel an analysis of every shot.
    let (status, run) = post(&addr, "/api/v1/runs", json!({"kind": "analyze"})).await;
    assert_eq!(status, 202, "{run}");
    let next = run["id"].as_i64().unwrap();
    let (status, _) = post(&addr, &format!("/api/v1/runs/{next}/cancel"), json!({})).await;
    assert_eq!(status, 202);
    let seen = events(&addr, &format!("/api/v1/runs/{next}/events"), None).await;
    let last = &seen.last().unwrap().2;
    assert_eq!(last["status"], "cancelled", "{last}");
    assert!(last["done"].as_u64().unwrap() < SHOTS as u64);
    assert_eq!(get(&addr, "/api/v1/runs/current").await.0, 404);

    // The list: newest first, as many as asked for.
    let (status, list) = get(&addr, "/api/v1/runs?limit=2").await;
    assert_eq!(status, 200);
    let listed: Vec<(i64, &str)> = list["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["id"].as_i64().unwrap(), r["status"].as_str().unwrap()))
        .collect();
    assert_eq!(listed, [(next, "cancelled"), (id, "succeeded")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cut_by_kill_9_is_interrupted_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crema.db");
    store_shots(&db).await;
    let mut gw = start(&db).await;
    let (status, run) = post(&gw.addr, "/api/v1/runs", json!({"kind": "qa"})).await;
    assert_eq!(status, 202);
    let id = run["id"].as_i64().unwrap();
    // Wait until it has stored some progress, then kill it mid-run.
    loop {
        let (_, run) = get(&gw.addr, &format!("/api/v1/runs/{id}")).await;
        assert!(
            run["status"] == "queued" || run["status"] == "running",
            "still active: {run}"
        );
        if run["done"].as_u64().unwrap() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gw.child.kill().unwrap();
    gw.child.wait().unwrap();
    let gw = start(&db).await;
    let (status, run) = get(&gw.addr, &format!("/api/v1/runs/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(run["status"], "interrupted", "{run}");
    assert!(run["finished_at"].is_number());
    assert_eq!(get(&gw.addr, "/api/v1/runs/current").await.0, 404);
    assert_eq!(
        post(&gw.addr, "/api/v1/runs", json!({"kind": "qa"}))
            .await
            .0,
        202,
        "a new run may start"
    );
}
