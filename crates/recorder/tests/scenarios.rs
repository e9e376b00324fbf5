//! The recording loop (`record::run`, what `crema-recorder run` runs) against every scenario of
//! the simulated machine, at twenty times the real speed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// A store whose commits fail while `full` is set (a full disk), and the recording loop of a
/// simulated machine on it, started (its lease taken) before the disk fills.
async fn on_a_filling_disk(
    machine: impl FnOnce(&mut MachineConfig),
) -> (
    Arc<AtomicBool>,
    Arc<Mutex<Vec<Instant>>>,
    tokio::sync::mpsc::Receiver<Stored>,
    Arc<record::MachineStats>,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), record::RecordError>>,
    Simulator,
    tempfile::TempDir,
    Arc<Store>,
) {
    let dir = tempfile::tempdir().unwrap();
    let full = Arc::new(AtomicBool::new(false));
    let failing = full.clone();
    let options = Options {
        fail_commit: Some(Arc::new(move |_| failing.load(Ordering::SeqCst))),
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
    let mut config = MachineConfig::new("default", &sim.url());
    config.reconcile_for = Duration::from_secs(1);
    machine(&mut config);
    let stats = config.stats.clone();
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let sink: record::EventSink =
        Arc::new(move |_, _, _| seen.lock().unwrap().push(Instant::now()));
    let (tx, rx) = tokio::sync::mpsc::channel::<Stored>(4096);
    let recording = record::Recording::start(config, store.clone(), Some(tx), Some(sink))
        .await
        .unwrap();
    full.store(true, Ordering::SeqCst);
    let stop = CancellationToken::new();
    let task = tokio::spawn(recording.run(stop.clone()));
    (full, events, rx, stats, stop, task, sim, dir, store)
}

/// The longest pause between two events in `window`.
fn longest_pause(events: &[Instant], window: (Instant, Instant)) -> Duration {
    let inside: Vec<Instant> = events
        .iter()
        .copied()
        .filter(|t| *t >= window.0 && *t <= window.1)
        .collect();
    let mut edges = vec![window.0];
    edges.extend(inside);
    edges.push(window.1);
    edges
        .windows(2)
        .map(|w| w[1].duration_since(w[0]))
        .max()
        .unwrap_or_default()
}

/// A database that refuses every commit for a while (a full disk) mid-shot: the machine's events
/// keep reaching the live view, what is read is held and retried, and once the disk has room
/// the shot is stored whole, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_mid_shot_keeps_the_live_view_and_the_whole_shot() {
    let (full, events, mut rx, stats, stop, task, mut sim, _dir, store) =
        on_a_filling_disk(|_| {}).await;
    let from = Instant::now();
    // The shot starts 0.75 s in and lasts 1.4 s at this speed: the disk is full for most of it.
    let mut held = 0;
    while from.elapsed() < Duration::from_millis(1600) {
        held = held.max(stats.unstored_samples.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(stats.storage_failing.load(Ordering::Relaxed));
    assert!(held > 0, "samples were held while the disk was full");
    let pause = longest_pause(&events.lock().unwrap(), (from, Instant::now()));
    assert!(
        pause < Duration::from_millis(500),
        "the live view paused {pause:?}"
    );
    full.store(false, Ordering::SeqCst);
    sim.finished().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.cancel();
    task.await.unwrap().unwrap();
    let mut finished = Vec::new();
    while let Ok(stored) = rx.try_recv() {
        if let Output::Finish(shot) = stored.output {
            finished.push(shot);
        }
    }
    assert_eq!(finished.len(), 1, "{finished:?}");
    assert_eq!(finished[0].status, recorder_core::ShotStatus::Complete);
    assert_eq!(stats.samples_lost.load(Ordering::Relaxed), 0);
    assert!(!stats.storage_failing.load(Ordering::Relaxed));
    let shots = store.reader().unwrap().all_shots().unwrap();
    assert_eq!(shots.len(), 1, "{shots:?}");
    assert_eq!(
        (shots[0].status.as_str(), shots[0].sample_count),
        ("complete", 214)
    );
}

/// Past the bound of held samples, the shot is lost (said at once), ends partial once the disk
/// has room, and a stop while the disk is still full ends the loop without hanging.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shot_past_the_bound_is_lost_and_ends_partial() {
    let (full, _events, mut rx, stats, stop, task, mut sim, _dir, _store) =
        on_a_filling_disk(|machine| {
            machine.max_unstored_samples = 40;
            machine.drain_on_stop = Duration::from_millis(300);
        })
        .await;
    sim.finished().await;
    assert!(stats.samples_lost.load(Ordering::Relaxed) > 0);
    assert!(stats.unstored_samples.load(Ordering::Relaxed) <= 40);
    full.store(false, Ordering::SeqCst);
    let finish = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(Stored {
                output: Output::Finish(shot),
                ..
            }) = rx.recv().await
            {
                return shot;
            }
        }
    })
    .await
    .expect("the lost shot's end is stored once the disk has room");
    assert_eq!(finish.status, recorder_core::ShotStatus::Partial);
    // A stop while writes fail gives up after drain_on_stop, and says what it lost.
    full.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("a stop on a full disk does not hang")
        .unwrap()
        .unwrap();
}
