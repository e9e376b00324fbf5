//! The recording loop (`record::run`, what `crema-recorder run` runs) against every scenario of
//! the simulated machine, at twenty times the real speed.

use std::sync::Arc;
use std::time::Duration;

use recorder::record::{self, MachineConfig, Stored};
use recorder_core::Output;
use simulator::{Scenario, Simulator, SimulatorConfig};
use storage::{Options, ShotSummary, Store};
use tokio_util::sync::CancellationToken;

/// Plays `scenario` once while recording; returns the stored shots and what the loop stored.
async fn record(scenario: Scenario) -> (Vec<ShotSummary>, Vec<Output>, Simulator) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("crema.db"), Options::default()).unwrap());
    let mut sim = Simulator::start(SimulatorConfig {
        scenario,
        speed: 20.0,
        ..Default::default()
    })
    .await
    .unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Stored>(4096);
    let stop = CancellationToken::new();
    let mut machine = MachineConfig::new("default", &sim.url());
    machine.reconcile_for = Duration::from_secs(3);
    // The machine's 12 s stall lasts 0.6 s at this speed: stall sooner.
    machine.recorder.stall_after = Duration::from_millis(200);
    let task = tokio::spawn(record::run(
        machine,
        store.clone(),
        stop.clone(),
        Some(tx),
        None,
    ));
    sim.finished().await;
    // Let the last writes and the reconciliation land.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.cancel();
    task.await.unwrap().unwrap();
    let mut outputs = Vec::new();
    while let Ok(stored) = rx.try_recv() {
        outputs.push(stored.output);
    }
    let shots = store.reader().unwrap().all_shots().unwrap();
    (shots, outputs, sim)
}

fn finishes(outputs: &[Output]) -> usize {
    outputs
        .iter()
        .filter(|o| matches!(o, Output::Finish(_)))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_one_shot_reconciled_with_history() {
    let (shots, outputs, sim) = record(Scenario::Normal).await;
    assert_eq!(finishes(&outputs), 1);
    assert_eq!(shots.len(), 1, "{shots:?}");
    assert_eq!(
        (
            shots[0].source.as_str(),
            shots[0].status.as_str(),
            shots[0].sample_count
        ),
        ("history", "complete", 214)
    );
    assert_eq!(shots[0].id.as_deref(), Some(sim.saved()[0].id.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_is_never_a_shot() {
    let (shots, outputs, sim) = record(Scenario::Flush).await;
    assert!(sim.saved().is_empty());
    assert!(shots.is_empty(), "{shots:?}");
    assert!(!outputs.iter().any(|o| matches!(o, Output::Started(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aborted_shot_is_kept_with_its_home_samples() {
    let (shots, outputs, sim) = record(Scenario::Aborted).await;
    assert_eq!(finishes(&outputs), 1);
    assert_eq!(shots.len(), 1, "{shots:?}");
    assert!(shots[0].sample_count >= 20);
    assert_eq!(shots[0].id.as_deref(), Some(sim.saved()[0].id.as_str()));
    assert_eq!(shots[0].status, "complete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_shot_keeps_the_partial_live_copy() {
    let (shots, outputs, sim) = record(Scenario::RestartMidShot).await;
    assert!(sim.saved().is_empty(), "the machine lost the shot");
    assert_eq!(shots.len(), 1, "{shots:?}");
    assert_eq!(
        (shots[0].source.as_str(), shots[0].status.as_str()),
        ("live", "partial")
    );
    assert!(shots[0].sample_count > 0);
    // Nothing starts after the reconnect: the frames are no longer extracting.
    assert_eq!(
        outputs
            .iter()
            .filter(|o| matches!(o, Output::Started(_)))
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_controller_ends_the_shot() {
    let (shots, outputs, _sim) = record(Scenario::Stalled).await;
    // Flagged as stalled, then ended; one unique sample before the stall is too short to keep.
    let stalled = outputs
        .iter()
        .position(|o| matches!(o, Output::Stalled { .. }));
    let discarded = outputs
        .iter()
        .position(|o| matches!(o, Output::Discard { .. }));
    assert!(stalled.is_some() && discarded > stalled, "{outputs:?}");
    assert!(shots.iter().all(|s| s.source == "history"), "{shots:?}");
}

/// Two machines recording into one store at the same time, as the gateway runs them: each shot is
/// its own, whole, under its own machine (their recording keys never collide).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_machines_shooting_at_once_keep_their_own_shots() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("crema.db"), Options::default()).unwrap());
    let stop = CancellationToken::new();
    let mut sims = Vec::new();
    let mut tasks = Vec::new();
    let mut notices = Vec::new();
    for name in ["left", "right"] {
        let sim = Simulator::start(SimulatorConfig {
            scenario: Scenario::Normal,
            speed: 20.0,
            ..Default::default()
        })
        .await
        .unwrap();
        let mut machine = MachineConfig::new(name, &sim.url());
        machine.reconcile_for = Duration::from_secs(3);
        let (tx, rx) = tokio::sync::mpsc::channel::<Stored>(4096);
        notices.push(rx);
        tasks.push(tokio::spawn(record::run(
            machine,
            store.clone(),
            stop.clone(),
            Some(tx),
            None,
        )));
        sims.push(sim);
    }
    for sim in &mut sims {
        sim.finished().await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.cancel();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    // Each live recording went into a shot of its own machine.
    let reader = store.reader().unwrap();
    for (rx, name) in notices.iter_mut().zip(["left", "right"]) {
        let mut finished = Vec::new();
        while let Ok(stored) = rx.try_recv() {
            if let Output::Finish(shot) = stored.output {
                finished.push(shot.key);
            }
        }
        assert_eq!(finished.len(), 1, "{name}: {finished:?}");
        let key = reader.key_of_recording(finished[0]).unwrap().unwrap();
        assert_eq!(reader.shot(key).unwrap().unwrap().machine, name);
    }
    let mut shots: Vec<(String, i64, String)> = store
        .reader()
        .unwrap()
        .all_shots()
        .unwrap()
        .into_iter()
        .map(|s| (s.machine, s.sample_count, s.id.unwrap_or_default()))
        .collect();
    shots.sort();
    let expected: Vec<(String, i64, String)> = ["left", "right"]
        .iter()
        .zip(&sims)
        .map(|(name, sim)| (name.to_string(), 214, sim.saved()[0].id.clone()))
        .collect();
    assert_eq!(shots, expected);
}

/// A database that refuses every commit (a full disk): the writes are retried, then the loop
/// stops with an error that says so, instead of dropping samples.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_refuses_writes_stops_the_loop_loudly() {
    let dir = tempfile::tempdir().unwrap();
    // Every commit after the first (the machine's lease, taken as the loop starts) fails.
    let options = Options {
        fail_commit: Some(Arc::new(|n| n > 1)),
        ..Options::default()
    };
    let store = Arc::new(Store::open(&dir.path().join("crema.db"), options).unwrap());
    let sim = Simulator::start(SimulatorConfig {
        scenario: Scenario::Normal,
        speed: 20.0,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut machine = MachineConfig::new("default", &sim.url());
    machine.give_up_after = Duration::from_millis(500);
    let stats = machine.stats.clone();
    let result = tokio::time::timeout(
        Duration::from_secs(20),
        record::run(machine, store, CancellationToken::new(), None, None),
    )
    .await
    .expect("the loop stops by itself");
    let error = format!("{:#}", result.unwrap_err());
    assert!(error.contains("the database refused writes"), "{error}");
    assert!(error.contains("committing"), "{error}");
    assert!(
        !stats.connected.load(std::sync::atomic::Ordering::Relaxed),
        "a loop that stopped is not connected, whatever the machine's last event said"
    );
}
