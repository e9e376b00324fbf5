//! crema-gateway as a user runs it, against the simulated machine: the REST API, the WebSocket
//! and SSE streams of a machine, and the refusals.

use std::process::Command;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use simulator::{Scenario, Simulator, SimulatorConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::{BIN, request, start};

/// `GET path`: status and body.
async fn get(addr: &str, path: &str) -> (u16, String) {
    request(addr, "GET", path, "", "").await
}

async fn get_json(addr: &str, path: &str) -> Value {
    let (status, body) = get(addr, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_and_recorded_shots() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crema.db");
    let mut sim = Simulator::start(SimulatorConfig {
        scenario: Scenario::Normal,
        speed: 20.0,
        ..Default::default()
    })
    .await
    .unwrap();
    let gw = start(&[
        "--machine",
        &format!("kitchen={}", sim.url()),
        "--db",
        db.to_str().unwrap(),
    ])
    .await;
    // Healthy once the machine is connected (503 naming it before).
    let mut health = get(&gw.addr, "/healthz").await;
    for _ in 0..400 {
        if health.0 == 200 {
            break;
        }
        let body: Value = serde_json::from_str(&health.1).unwrap();
        assert_eq!(
            (health.0, body["problems"][0]["machine"].as_str()),
            (503, Some("kitchen"))
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
        health = get(&gw.addr, "/healthz").await;
    }
    assert_eq!(
        (health.0, serde_json::from_str::<Value>(&health.1).unwrap()),
        (200, json!({"status": "ok"}))
    );
    // The machine's live events over the WebSocket: the snapshot, then events in order.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", gw.addr))
        .await
        .unwrap();
    ws.send(Message::Text(
        json!({"op": "subscribe", "topic": "machine:kitchen"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let mut statuses = 0;
    let mut last_seq = 0;
    while statuses < 50 {
        let Message::Text(text) = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        else {
            continue;
        };
        let frame: Value = serde_json::from_str(text.as_str()).unwrap();
        match frame["type"].as_str() {
            Some("subscribed") => {}
            Some("event") => {
                let seq = frame["seq"].as_u64().unwrap();
                assert!(seq > last_seq, "in order");
                last_seq = seq;
                if frame["name"] == "status" {
                    assert!(frame["data"]["state"].is_string());
                    statuses += 1;
                }
            }
            other => panic!("{other:?}: {frame}"),
        }
    }
    let machines = get_json(&gw.addr, "/api/v1/machines").await;
    assert_eq!(machines[0]["name"], "kitchen");
    assert_eq!(machines[0]["connected"], true);
    // The machine's SSE stream starts with its snapshot.
    let (status, _) = get(&gw.addr, "/api/v1/machines/nowhere/events").await;
    assert_eq!(status, 404);
    let mut tcp = tokio::net::TcpStream::connect(&gw.addr).await.unwrap();
    let head = format!(
        "GET /api/v1/machines/kitchen/events HTTP/1.1\r\nHost: {}\r\n\r\n",
        gw.addr
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    while !seen.contains("event: status") {
        let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(
        seen.contains("text/event-stream") && seen.contains("id: "),
        "{seen}"
    );
    drop(tcp);
    // The shot, recorded and reconciled.
    sim.finished().await;
    let mut shots = Value::Null;
    for _ in 0..100 {
        shots = get_json(&gw.addr, "/api/v1/shots").await;
        if shots["shots"][0]["source"] == "history" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(shots["shots"].as_array().unwrap().len(), 1, "{shots}");
    let shot = &shots["shots"][0];
    assert_eq!(
        (shot["machine"].as_str(), shot["sample_count"].as_u64()),
        (Some("kitchen"), Some(214))
    );
    // One shape: `id` is the machine's UUID once known, `key` the store's; both address it.
    let key = shot["key"].as_i64().unwrap();
    let uuid = shot["id"].as_str().unwrap();
    assert!(uuid.parse::<i64>().is_err(), "the machine's UUID: {uuid}");
    assert!(shot.get("uuid").is_none(), "{shot}");
    let detail = get_json(&gw.addr, &format!("/api/v1/shots/{key}")).await;
    assert_eq!(detail["data"].as_array().unwrap().len(), 214);
    assert_eq!(
        (detail["id"].as_str(), detail["key"].as_i64()),
        (Some(uuid), Some(key))
    );
    let by_uuid = get_json(&gw.addr, &format!("/api/v1/shots/{uuid}/file")).await;
    assert_eq!(by_uuid["data"].as_array().unwrap().len(), 214);
    assert_eq!(by_uuid["id"], uuid);
    // Analyzed in the background once recorded.
    let mut analyses = Value::Null;
    for _ in 0..100 {
        analyses = get_json(&gw.addr, &format!("/api/v1/shots/{uuid}/analyses")).await;
        if !analyses["analyses"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        analyses["analyses"][0]["analyzer"], "shot-facts/1",
        "{analyses}"
    );
    assert_eq!(
        analyses["analyses"][0]["result"]["samples"], 214,
        "{analyses}"
    );
    let (status, body) = get(&gw.addr, "/api/v1/shots/999999").await;
    assert_eq!(status, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["error"],
        "no_such_shot"
    );
    let (_, metrics) = get(&gw.addr, "/metrics").await;
    assert!(
        metrics.contains("crema_machine_connected{machine=\"kitchen\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("crema_ws_connections 1"), "{metrics}");
    assert!(
        metrics.contains("crema_events_published_total"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("crema_events_published_total 0\n"),
        "{metrics}"
    );
    assert!(metrics.contains("crema_shots 1\n"), "{metrics}");
    let m = parse_metrics(&metrics);
    let at = |key: &str| {
        *m.get(key)
            .unwrap_or_else(|| panic!("no {key} in\n{metrics}"))
    };
    let kitchen = |name: &str| at(&format!("{name}{{machine=\"kitchen\"}}"));
    assert_eq!(kitchen("crema_recorder_shots_recorded_total"), 1.0);
    assert_eq!(kitchen("crema_recorder_recording"), 0.0);
    assert_eq!(kitchen("crema_recorder_shot_samples"), 214.0);
    assert!(kitchen("crema_machine_events_total") >= 214.0);
    assert!(at("crema_events_published_total") >= kitchen("crema_machine_events_total"));
    assert!(kitchen("crema_sync_last_success_timestamp_seconds") > 1.7e9);
    assert_eq!(kitchen("crema_sync_running"), 0.0);
    // That sync was a run, started by the schedule once the machine was connected.
    let (status, runs) = get(&gw.addr, "/api/v1/runs?limit=5").await;
    assert_eq!(status, 200);
    let runs: Value = serde_json::from_str(&runs).unwrap();
    let scheduled: Vec<&Value> = runs["runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["started_by"] == "schedule")
        .collect();
    assert_eq!(scheduled.len(), 1, "{runs}");
    assert_eq!(
        (
            scheduled[0]["kind"].as_str(),
            scheduled[0]["status"].as_str()
        ),
        (Some("sync"), Some("succeeded")),
        "{runs}"
    );
    assert_eq!(
        at("crema_subscribers{topic=\"machine:kitchen\"}"),
        1.0,
        "the open WebSocket"
    );
    assert_eq!(at("crema_sse_streams"), 0.0, "the SSE stream was closed");
    assert!(at("crema_sse_events_sent_total") >= 1.0);
    assert!(at("crema_ws_frames_sent_total") > 214.0);
    let commits = at("crema_storage_commit_seconds_count");
    assert!(commits >= 2.0, "{metrics}");
    assert_eq!(
        at("crema_storage_commit_seconds_bucket{le=\"+Inf\"}"),
        commits
    );
    assert!(at("crema_storage_commit_seconds_sum") > 0.0);
    assert_eq!(at("crema_storage_commit_failures_total"), 0.0);
}

/// Prometheus text into `name{labels}` → value, checking the format as it goes: every sample's
/// family has HELP and TYPE before it, every value is a number, and histogram buckets grow.
fn parse_metrics(text: &str) -> std::collections::HashMap<String, f64> {
    let mut typed = std::collections::HashSet::new();
    let mut values = std::collections::HashMap::new();
    let mut last_bucket = 0.0;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            typed.insert(rest.split(' ').next().unwrap().to_owned());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (key, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        let name = key.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
            .unwrap_or(name);
        assert!(typed.contains(family), "{name} has no TYPE before it");
        let value: f64 = value.parse().unwrap_or_else(|_| panic!("{line:?}"));
        if name.ends_with("_bucket") {
            assert!(value >= last_bucket, "buckets grow: {line}");
            last_bucket = value;
        }
        assert!(
            values.insert(key.to_owned(), value).is_none(),
            "{key} twice"
        );
    }
    values
}

#[test]
fn refusals_are_one_line() {
    let out = Command::new(BIN)
        .args(["--machine", "http://127.0.0.1:9", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refusing to listen on 0.0.0.0:0 without auth"),
        "{err}"
    );
    let out = Command::new(BIN).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no machine"));
    let out = Command::new(BIN)
        .args(["--machine", "bad name=http://x"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("machine name"));
    // Webhooks and analyzers are checked before anything starts.
    for (flags, says) in [
        (["--webhook", "http://x/hook"], "write NAME=URL"),
        (["--ntfy", "phone=ftp://x/topic"], "must be http or https"),
        (
            ["--analyzer", "shot-facts/2=http://x/"],
            "shot-facts is the built-in analyzer's",
        ),
    ] {
        let out = Command::new(BIN)
            .args(["--machine", "http://127.0.0.1:9"])
            .args(flags)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(says) && err.lines().count() == 1, "{err}");
    }
}
