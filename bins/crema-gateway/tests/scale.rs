//! Two gateway processes on one PostgreSQL store and one Redis broker, recording one simulated
//! machine: the deployment the scale-out guide describes, with real servers (`testbed`).
//!
//! - a WebSocket client on the standby sees every event of the machine the other records, in
//!   order, with the same numbers and frames as on the recorder;
//! - an SSE client moves from one gateway to the other with `Last-Event-ID` and loses nothing;
//! - `kill -9` the recorder mid-shot: the standby records the machine within 10 s, the shot is
//!   stored once, and `/api/v1/shots` is the same on both gateways;
//! - runs asked of both at once: never two active in the whole deployment (the others `409`
//!   naming the active one), and a run's progress stream is readable from the gateway that
//!   does not execute it.
//!
//! Without PostgreSQL or Redis installed the test says so and passes, unless
//! `CREMA_REQUIRE_SERVERS` is set (CI).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use simulator::{Scenario, Simulator, SimulatorConfig};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio_tungstenite::tungstenite::Message;

mod common;
use common::{Gateway, eventually, get_json, post_json, request, start};

/// A metric of machine `kitchen` on the gateway at `addr`.
async fn metric(addr: &str, name: &str) -> Option<f64> {
    let (status, text) = request(addr, "GET", "/metrics", "", "").await;
    assert_eq!(status, 200);
    let prefix = format!("{name}{{machine=\"kitchen\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

async fn connected(addr: &str) -> bool {
    metric(addr, "crema_machine_connected").await == Some(1.0)
}

/// Events `from..=to` of the machine's topic, read over a WebSocket on `addr`, by number.
async fn ws_events(addr: &str, count: usize) -> BTreeMap<u64, String> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    ws.send(Message::Text(
        json!({"op": "subscribe", "topic": "machine:kitchen"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let mut seen = BTreeMap::new();
    let mut live = 0;
    while live < count {
        let Message::Text(text) = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("an event within 10 s")
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
                assert!(
                    seen.insert(seq, text.to_string()).is_none(),
                    "event {seq} twice"
                );
                live += 1;
            }
            other => panic!("{other:?}: {frame}"),
        }
    }
    seen
}

/// An open SSE stream of the machine's events.
struct Sse {
    lines: tokio::io::Lines<BufReader<tokio::net::TcpStream>>,
}

impl Sse {
    async fn open(addr: &str, last_id: Option<&str>) -> Sse {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let resume = last_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
        tcp.write_all(
            format!("GET /api/v1/machines/kitchen/events HTTP/1.1\r\nHost: {addr}\r\n{resume}\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut lines = BufReader::new(tcp).lines();
        let status = lines.next_line().await.unwrap().unwrap();
        assert!(status.contains(" 200 "), "{status}");
        Sse { lines }
    }

    /// The next event: `(name, id)`.
    async fn next(&mut self) -> (String, String) {
        let (mut name, mut id) = (None, None);
        loop {
            let line = tokio::time::timeout(Duration::from_secs(10), self.lines.next_line())
                .await
                .expect("an SSE line within 10 s")
                .unwrap()
                .unwrap();
            if let Some(v) = line.strip_prefix("event: ") {
                name = Some(v.to_owned());
            } else if let Some(v) = line.strip_prefix("id: ") {
                id = Some(v.to_owned());
            } else if line.is_empty()
                && let Some(name) = name.take()
            {
                return (name, id.take().unwrap_or_default());
            }
        }
    }
}

fn seq_of(id: &str) -> u64 {
    id.rsplit('-').next().unwrap().parse().unwrap()
}

async fn shots(addr: &str) -> Vec<Value> {
    let (status, body) = get_json(addr, "/api/v1/shots?limit=100").await;
    assert_eq!(status, 200, "{body}");
    body["shots"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_one_store_one_broker() {
    let (Some(pg), Some(redis)) = (testbed::Postgres::start(), testbed::Redis::start()) else {
        return;
    };
    let db = pg.create_database();
    let broker = redis.url();
    let sim = Simulator::start(SimulatorConfig {
        scenario: Scenario::Normal,
        speed: 10.0,
        repeat: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let machine = format!("kitchen={}", sim.url());
    let args = ["--machine", &machine, "--db", &db, "--broker", &broker];
    let a = start(&args).await;
    eventually(
        Duration::from_secs(20),
        "a gateway records the machine",
        || async { connected(&a.addr).await.then_some(()) },
    )
    .await;
    let b = start(&args).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!connected(&b.addr).await, "one recording per machine");
    let (status, health) = get_json(&b.addr, "/healthz").await;
    assert_eq!(
        status, 200,
        "the standby is healthy: it sees the machine through the broker: {health}"
    );

    // The same events, numbers and frames on both; none missing on the standby.
    let (on_a, on_b) = tokio::join!(ws_events(&a.addr, 80), ws_events(&b.addr, 80));
    let common: Vec<u64> = on_a
        .keys()
        .filter(|k| on_b.contains_key(k))
        .copied()
        .collect();
    assert!(common.len() >= 40, "{} events in common", common.len());
    for seq in &common {
        assert_eq!(
            on_a[seq], on_b[seq],
            "event {seq} differs between the gateways"
        );
    }
    let live: Vec<u64> = on_b.keys().copied().collect();
    let tail = &live[live.len() - 60..];
    assert!(
        tail.windows(2).all(|w| w[1] == w[0] + 1),
        "the standby's live events have no hole: {tail:?}"
    );

    // An SSE client moves from a to b with Last-Event-ID: exactly what it missed, then live.
    let mut sse = Sse::open(&a.addr, None).await;
    let mut last = String::new();
    for _ in 0..20 {
        last = sse.next().await.1;
    }
    drop(sse);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut sse = Sse::open(&b.addr, Some(&last)).await;
    for expect in seq_of(&last) + 1..seq_of(&last) + 21 {
        let (name, id) = sse.next().await;
        assert_ne!(name, "gap", "nothing lost moving between gateways");
        assert_eq!(seq_of(&id), expect, "resumed exactly after {last}");
    }
    drop(sse);

    // kill -9 the recorder mid-shot: the standby records the machine within 10 s, and the
    // shot is stored once.
    eventually(Duration::from_secs(60), "a shot in progress", || async {
        (metric(&a.addr, "crema_recorder_recording").await == Some(1.0)
            && metric(&a.addr, "crema_recorder_shot_samples")
                .await
                .unwrap_or(0.0)
                > 20.0)
            .then_some(())
    })
    .await;
    let mut a = a;
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    let killed = Instant::now();
    eventually(
        Duration::from_secs(10),
        "the standby took the machine over",
        || async { connected(&b.addr).await.then_some(()) },
    )
    .await;
    let took = killed.elapsed();
    eventually(
        Duration::from_secs(60),
        "the cut shot finished on the standby",
        || async {
            let list = shots(&b.addr).await;
            list.iter()
                .all(|s| s["status"] != "recording")
                .then_some(())
                .filter(|()| !list.is_empty())
        },
    )
    .await;
    let after = shots(&b.addr).await;
    let mut ids: Vec<&str> = after.iter().map(|s| s["id"].as_str().unwrap()).collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "every shot stored once: {after:?}");
    eprintln!("taken over {took:?} after the kill; {count} shot(s): {after:?}");

    // The first gateway again, as a standby: the same shots on both. The machine goes on
    // pulling shots, so one may be recording (its sample count moving between two reads) or
    // end between them: the finished shots are compared whole, and must agree within a few
    // reads.
    let a2: Gateway = start(&args).await;
    let finished = |list: Vec<Value>| -> Vec<Value> {
        list.into_iter()
            .filter(|s| s["status"] != "recording")
            .collect()
    };
    eventually(
        Duration::from_secs(10),
        "the same finished shots on both gateways",
        || async {
            let on_a = finished(shots(&a2.addr).await);
            let on_b = finished(shots(&b.addr).await);
            (on_a == on_b && !on_a.is_empty()).then_some(())
        },
    )
    .await;

    // Runs asked of both at once: one active in the whole deployment at any moment. A QA
    // run over one shot can end inside the burst, so a later ask may start the next one;
    // what must hold is that every refusal names an accepted run and that no two accepted
    // runs overlap in time.
    let asks = (0..6).map(|i| {
        let addr = if i % 2 == 0 {
            a2.addr.clone()
        } else {
            b.addr.clone()
        };
        async move {
            (
                addr.clone(),
                post_json(&addr, "/api/v1/runs", &json!({"kind": "qa"})).await,
            )
        }
    });
    let answers = futures_util::future::join_all(asks).await;
    let accepted: Vec<&(String, (u16, Value))> = answers.iter().filter(|a| a.1.0 == 202).collect();
    assert!(!accepted.is_empty(), "{answers:?}");
    let accepted_ids: Vec<i64> = accepted
        .iter()
        .map(|a| a.1.1["id"].as_i64().unwrap())
        .collect();
    for (_, (status, body)) in &answers {
        if *status != 202 {
            assert_eq!(*status, 409, "{body}");
            let named = body["run"]["id"].as_i64();
            assert!(
                named.is_some_and(|id| accepted_ids.contains(&id)),
                "a refusal names an accepted run {accepted_ids:?}: {body}"
            );
        }
    }
    let (runner, (_, run)) = accepted[0];
    let id = run["id"].as_i64().unwrap();
    let other = if *runner == a2.addr {
        &b.addr
    } else {
        &a2.addr
    };
    let (status, body) = request(other, "GET", &format!("/api/v1/runs/{id}/events"), "", "").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("event: finished"),
        "the other gateway streams it to its end: {body}"
    );
    let mut runs = Vec::new();
    for id in &accepted_ids {
        let run = eventually(
            Duration::from_secs(60),
            "every accepted run ends",
            || async {
                let (_, run) = get_json(other, &format!("/api/v1/runs/{id}")).await;
                run["finished_at"].is_number().then_some(run)
            },
        )
        .await;
        assert_eq!(run["status"], "succeeded", "{run}");
        runs.push(run);
    }
    runs.sort_by_key(|r| r["id"].as_i64());
    for pair in runs.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        assert!(
            after["created_at"].as_f64() >= before["finished_at"].as_f64(),
            "a run was accepted while another was active: {before} then {after}"
        );
    }
    drop(pg);
    drop(redis);
}

/// `/healthz`'s problems, by what they are about.
async fn problems(addr: &str) -> Vec<String> {
    let (_, health) = get_json(addr, "/healthz").await;
    health["problems"]
        .as_array()
        .map(|p| {
            p.iter()
                .map(|p| p["what"].as_str().unwrap_or("").to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The number of the latest event a WebSocket on `addr` receives.
async fn latest_seq(addr: &str) -> u64 {
    *ws_events(addr, 3).await.keys().last().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_redis_or_postgres_is_recovered_from() {
    let (Some(mut pg), Some(mut redis)) = (testbed::Postgres::start(), testbed::Redis::start())
    else {
        return;
    };
    let db = pg.create_database();
    let broker = redis.url();
    let sim = Simulator::start(SimulatorConfig {
        scenario: Scenario::Normal,
        speed: 10.0,
        repeat: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let machine = format!("kitchen={}", sim.url());
    let gw = start(&["--machine", &machine, "--db", &db, "--broker", &broker]).await;
    eventually(Duration::from_secs(20), "healthy", || async {
        problems(&gw.addr).await.is_empty().then_some(())
    })
    .await;
    let before = latest_seq(&gw.addr).await;

    // Redis goes away: /healthz and /metrics say so while it lasts; then the live view resumes
    // by itself, its numbers going on.
    redis.stop();
    eventually(
        Duration::from_secs(10),
        "the broker's outage in /healthz",
        || async {
            problems(&gw.addr)
                .await
                .contains(&"broker".to_owned())
                .then_some(())
        },
    )
    .await;
    let (_, text) = request(&gw.addr, "GET", "/metrics", "", "").await;
    assert!(text.contains("crema_broker_up{role=\"read\"} 0"), "{text}");
    redis.restart();
    eventually(Duration::from_secs(15), "the broker back", || async {
        (!problems(&gw.addr).await.contains(&"broker".to_owned())).then_some(())
    })
    .await;
    let after = latest_seq(&gw.addr).await;
    assert!(
        after > before,
        "live events resume with larger numbers: {before} then {after}"
    );

    // PostgreSQL goes away: the live view goes on, /healthz says storage fails while it
    // lasts, and once it is back every shot is stored, none twice.
    pg.stop();
    eventually(
        Duration::from_secs(15),
        "the store's outage in /healthz",
        || async {
            problems(&gw.addr)
                .await
                .contains(&"storage".to_owned())
                .then_some(())
        },
    )
    .await;
    let during = latest_seq(&gw.addr).await;
    assert!(during > after, "the live view goes on without the store");
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.restart();
    eventually(Duration::from_secs(30), "the store back", || async {
        (!problems(&gw.addr).await.contains(&"storage".to_owned())).then_some(())
    })
    .await;
    let recorded = metric(&gw.addr, "crema_recorder_shots_recorded_total")
        .await
        .unwrap_or(0.0);
    eventually(
        Duration::from_secs(60),
        "a shot recorded after the outage",
        || async {
            (metric(&gw.addr, "crema_recorder_shots_recorded_total")
                .await
                .unwrap_or(0.0)
                > recorded)
                .then_some(())
        },
    )
    .await;
    let list = shots(&gw.addr).await;
    let mut ids: Vec<&str> = list.iter().map(|s| s["id"].as_str().unwrap()).collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "{list:?}");
    assert!(list.iter().any(|s| s["status"] == "complete"), "{list:?}");
}
