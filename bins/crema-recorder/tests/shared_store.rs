//! Many processes, one store. A `crema-recorder run` records a shot from the simulated machine;
//! mid-shot, other processes list the shots, run QA, sync the history, hold a run of their
//! own, and try to record the same machine. The live shot stays recording until it ends and
//! then ends complete with every sample; a run active in one process stays active while
//! another opens the store, and refuses the other's run; the second recorder is refused at
//! once, naming the first.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use simulator::{Scenario, Simulator, SimulatorConfig};
use storage::{RunKind, RunStatus};

mod common;
use common::terminate;

const BIN: &str = env!("CARGO_BIN_EXE_crema-recorder");

fn recorder(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

/// A recorder process whose stderr goes to the file `log` (a pipe nobody reads would stop the
/// process once full).
fn spawn(args: &[&str], log: &Path) -> Child {
    let log = std::fs::File::create(log).unwrap();
    Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `(status, sample_count)` of every stored shot of machine `default`, by
/// `crema-recorder shots --json`.
fn shots(db: &str) -> Vec<(String, u64)> {
    let out = recorder(&["shots", "--db", db, "--json"]);
    assert!(out.status.success(), "{}", text(&out));
    parse(&out)
}

/// As [`shots`], `None` while the database is not there yet.
fn shots_once_created(db: &str) -> Option<Vec<(String, u64)>> {
    let out = recorder(&["shots", "--db", db, "--json"]);
    out.status.success().then(|| parse(&out))
}

fn parse(out: &Output) -> Vec<(String, u64)> {
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["shots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["machine"] == "default")
        .map(|s| {
            (
                s["status"].as_str().unwrap().to_owned(),
                s["sample_count"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn active_run(db: &Path) -> Option<storage::Run> {
    storage::open_reader(db).unwrap().active_run().unwrap()
}

async fn until<T>(what: &str, within: Duration, check: impl FnMut() -> Option<T>) -> T {
    match wait_for(within, check).await {
        Some(v) => v,
        None => panic!("timed out waiting for {what}"),
    }
}

/// `check`'s first `Some` within `within`, polled every 50 ms.
async fn wait_for<T>(within: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a recorder process said on stderr (its `log`), once stopped: a failure's message.
fn stop_and_read(child: &mut Child, log: &Path) -> String {
    let _ = child.kill();
    let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
    let said = std::fs::read_to_string(log).unwrap_or_default();
    format!("{status}\n{said}")
}

/// A machine URL whose HTTP API accepts connections and never answers: a sync against it stays
/// running until it is stopped.
async fn silent_machine() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (url, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_beside_a_recorder_never_touch_its_live_shot_or_its_run() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("crema.db");
    let db = db_path.to_str().unwrap();
    // The shot is extracting from about 6 s to 17 s after the start.
    let mut sim = Simulator::start(SimulatorConfig {
        scenario: Scenario::Normal,
        speed: 2.5,
        ..Default::default()
    })
    .await
    .unwrap();
    let url = sim.url();
    let first_log = dir.path().join("first.log");
    let mut first = spawn(&["run", "--machine", &url, "--db", db], &first_log);
    // Beside it, another machine recorded by another process into the same file.
    let mut other_sim = Simulator::start(SimulatorConfig {
        scenario: Scenario::Normal,
        speed: 2.5,
        ..Default::default()
    })
    .await
    .unwrap();
    let other_url = other_sim.url();
    let other_log = dir.path().join("other.log");
    let mut other = spawn(
        &[
            "run",
            "--machine",
            &other_url,
            "--name",
            "other",
            "--db",
            db,
        ],
        &other_log,
    );
    let live = wait_for(Duration::from_secs(30), || {
        shots_once_created(db).filter(|s| {
            s.first()
                .is_some_and(|(status, n)| status == "recording" && *n > 0)
        })
    })
    .await;
    if live.is_none() {
        let shots = shots_once_created(db);
        panic!(
            "no live shot within 30 s; shots {shots:?}\n--- the recorder: {}\n--- the other: {}",
            stop_and_read(&mut first, &first_log),
            stop_and_read(&mut other, &other_log)
        );
    }
    // The recorder's own scheduled sync is over by now (the machine's history is short).
    until("the scheduled sync to end", Duration::from_secs(5), || {
        active_run(&db_path).is_none().then_some(())
    })
    .await;

    // A second recorder of the same machine on the same store is refused at once.
    let started = Instant::now();
    let second = recorder(&["run", "--machine", &url, "--db", db]);
    assert!(!second.status.success(), "{}", text(&second));
    assert!(started.elapsed() < Duration::from_secs(5));
    let said = String::from_utf8_lossy(&second.stderr);
    assert!(
        said.contains(&format!("held by process {}", first.id())),
        "the refusal names the recording process: {said}"
    );

    // sync and qa from other processes: they run, and leave the live shot alone.
    let synced = recorder(&["sync", "--machine", &url, "--db", db]);
    assert!(synced.status.success(), "{}", text(&synced));
    let checked = recorder(&["qa", "--db", db, "--all"]);
    assert!(checked.status.success(), "{}", text(&checked));
    let now = shots(db);
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(
        now[0].0, "recording",
        "the live shot is still the recorder's"
    );

    // A process holding a run (a sync against a machine that never answers): a second process
    // opening the store leaves it active, and its own run is refused, naming the active one.
    let (silent, _server) = silent_machine().await;
    let mut holder = spawn(
        &["sync", "--machine", &silent, "--db", db],
        &dir.path().join("holder.log"),
    );
    let run = until("the holder's run", Duration::from_secs(10), || {
        active_run(&db_path)
    })
    .await;
    assert_eq!(run.kind, RunKind::Sync);
    let refused = recorder(&["qa", "--db", db]);
    assert!(!refused.status.success(), "{}", text(&refused));
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains(&format!("run {} (sync) is", run.id)),
        "the refusal names the active run: {said}"
    );
    let still = active_run(&db_path).expect("the run is still active");
    assert_eq!(still.id, run.id);
    assert!(still.status.is_active());
    terminate(&mut holder);
    let ended = storage::open_reader(&db_path)
        .unwrap()
        .run(run.id)
        .unwrap()
        .unwrap();
    assert!(
        matches!(ended.status, RunStatus::Cancelled | RunStatus::Interrupted),
        "{ended:?}"
    );

    // Still recording; then the shot ends, complete, with every sample the machine saved.
    assert_eq!(shots(db)[0].0, "recording");
    sim.finished().await;
    let saved = sim.saved()[0].data.len() as u64;
    let end = until("the shot to end", Duration::from_secs(20), || {
        let list = shots(db);
        (list.len() == 1 && list[0].0 != "recording").then(|| list[0].clone())
    })
    .await;
    assert_eq!(end, ("complete".to_owned(), saved));
    // The other machine's shot, recorded at the same time by the other process, is whole and
    // its own: the two processes never numbered a shot alike.
    other_sim.finished().await;
    let other_saved = other_sim.saved()[0].data.len() as i64;
    until("the other machine's shot", Duration::from_secs(20), || {
        let reader = storage::open_reader(&db_path).unwrap();
        let theirs: Vec<_> = reader
            .all_shots()
            .unwrap()
            .into_iter()
            .filter(|s| s.machine == "other")
            .collect();
        (theirs.len() == 1 && theirs[0].status == "complete").then_some(())
    })
    .await;
    let all = storage::open_reader(&db_path).unwrap().all_shots().unwrap();
    assert_eq!(all.len(), 2, "{all:?}");
    for shot in &all {
        let expected = if shot.machine == "other" {
            other_saved
        } else {
            saved as i64
        };
        assert_eq!(
            (shot.status.as_str(), shot.sample_count),
            ("complete", expected),
            "{shot:?}"
        );
    }
    terminate(&mut first);
    terminate(&mut other);
}
