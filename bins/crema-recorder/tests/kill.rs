//! `kill -9` in the middle of a shot, at many points: every sample that reached the recorder
//! more than 250 ms (its journal window) before the kill is in the database afterwards, and the
//! database passes `PRAGMA integrity_check`.

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use meticulous::MachineEvent;
use simulator::{Scenario, Simulator, SimulatorConfig};
use socketio_v5::{Auth, Client, ClientConfig, Event};
use tokio::time::Instant;

const BIN: &str = env!("CARGO_BIN_EXE_crema-recorder");

/// Plays the normal shot at `speed`, kills the recorder `after` the first extracting frame, and
/// checks what is stored.
async fn kill_at(after: Duration) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crema.db");
    let sim = Simulator::start(SimulatorConfig {
        scenario: Scenario::Normal,
        speed: 10.0,
        ..Default::default()
    })
    .await
    .unwrap();
    // A witness beside the recorder: when each sample's frame went out.
    let witness = Client::new(
        ClientConfig::new(&sim.url())
            .unwrap()
            .engine(|e| e.transport(engineio_client::TransportMode::WebSocket)),
    );
    let (_s, mut events) = witness.socket("/", Auth::None).await.unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--machine", &sim.url(), "--db", db.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen: Vec<(i64, Instant)> = Vec::new();
    let mut first: Option<Instant> = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let event = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap()
            .unwrap();
        let Event::Message(event) = event else {
            continue;
        };
        if event.name().as_str() != Some("status") {
            continue;
        }
        let raw = event.raw_args().unwrap();
        let Ok(MachineEvent::Status(status)) =
            MachineEvent::parse("status", &raw[1..raw.len() - 1])
        else {
            continue;
        };
        let now = Instant::now();
        if status.extracting {
            let start = *first.get_or_insert(now);
            if seen.last().is_none_or(|(t, _)| *t != status.time) {
                seen.push((status.time, now));
            }
            if now >= start + after {
                break;
            }
        }
    }
    let killed_at = Instant::now();
    child.kill().unwrap();
    child.wait().unwrap();
    witness.close();
    // Reopen as the next start would: the cut shot is finished as partial.
    let store = storage::Store::open(&db, storage::Options::default()).unwrap();
    let reader = store.reader().unwrap();
    assert_eq!(reader.integrity_check().unwrap(), "ok");
    let shots = reader.all_shots().unwrap();
    let stored: BTreeSet<i64> = match shots.first() {
        Some(shot) => {
            assert_eq!(shot.status, "partial", "{shot:?}");
            reader
                .samples(shot.key)
                .unwrap()
                .iter()
                .map(|raw| {
                    serde_json::from_str::<meticulous::Sample>(raw.get())
                        .unwrap()
                        .time
                })
                .collect()
        }
        None => BTreeSet::new(),
    };
    let due: Vec<i64> = seen
        .iter()
        .filter(|(_, at)| *at + Duration::from_millis(250) < killed_at)
        .map(|(t, _)| *t)
        .collect();
    let missing: Vec<&i64> = due.iter().filter(|t| !stored.contains(t)).collect();
    assert!(
        missing.is_empty(),
        "killed {after:?} into the shot: samples {missing:?} were lost ({} stored)",
        stored.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_nine_mid_shot_loses_no_journaled_sample() {
    for ms in [150, 400, 700, 1000, 1300, 1700, 2100, 2500] {
        kill_at(Duration::from_millis(ms)).await;
    }
}

/// Killed mid-shot and started again while the machine is still in that shot: the recording
/// goes on in the same row, which ends complete (and then gives way to the machine's copy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_shot_goes_on_in_the_same_row() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crema.db");
    let mut sim = Simulator::start(SimulatorConfig {
        scenario: Scenario::Normal,
        speed: 8.0,
        ..Default::default()
    })
    .await
    .unwrap();
    let spawn = || {
        Command::new(BIN)
            .args(["run", "--machine", &sim.url(), "--db", db.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = spawn();
    let api = meticulous::api::Api::new(&sim.url(), Duration::from_secs(2)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        assert!(Instant::now() < deadline, "the shot did not start");
        if api
            .current()
            .await
            .unwrap()
            .is_some_and(|c| c.data.len() > 60)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let mut second = spawn();
    sim.finished().await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    second.kill().unwrap();
    second.wait().unwrap();
    let store = storage::Store::open(&db, storage::Options::default()).unwrap();
    let shots = store.reader().unwrap().all_shots().unwrap();
    assert_eq!(
        shots.len(),
        1,
        "one row for the shot, not a partial beside it: {shots:?}"
    );
    assert_eq!(shots[0].id.as_deref(), Some(sim.saved()[0].id.as_str()));
    assert_eq!(shots[0].status, "complete");
}
