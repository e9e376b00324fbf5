//! Visualizer uploads end to end: `crema-recorder run --visualizer URL` records a shot from the
//! simulated machine and uploads it to a Visualizer stand-in on 127.0.0.1
//! (`simulator::visualizer`), signed in with HTTP Basic from the environment. The stand-in
//! answers the first try `429` with `Retry-After: 1`, and the recorder is stopped before the
//! next one: after its restart the shot is uploaded, once, as a file Visualizer's Meticulous
//! parser reads, and its id is stored. The shot's export reads the same way.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use simulator::visualizer::{SERIES, StandIn, read_shot_file};
use simulator::{Scenario, Simulator, SimulatorConfig};

mod common;
use common::terminate;

const BIN: &str = env!("CARGO_BIN_EXE_crema-recorder");
const USER: &str = "barista@example.com";
const PASSWORD: &str = "correct horse";

/// `crema-recorder run` uploading to `visualizer`, its stderr into `log`.
fn run(machine: &str, db: &Path, visualizer: &str, log: &Path) -> Child {
    Command::new(BIN)
        .args(["run", "--machine", machine, "--db", db.to_str().unwrap()])
        .args(["--visualizer", visualizer])
        .env("VISUALIZER_USERNAME", USER)
        .env("VISUALIZER_PASSWORD", PASSWORD)
        .env_remove("VISUALIZER_TOKEN")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

async fn until<T>(
    what: &str,
    within: Duration,
    log: &Path,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() >= deadline {
            let said = std::fs::read_to_string(log).unwrap_or_default();
            panic!("timed out waiting for {what}; the recorder said:\n{said}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Checks what Visualizer reads of a file: every series as long as the time axis, the time
/// axis in seconds and rising, and at least one stage change.
fn check_read(file: &[u8]) -> simulator::visualizer::ReadShot {
    let read = read_shot_file(file).unwrap_or_else(|e| panic!("Visualizer would not read it: {e}"));
    assert!(!read.timeframe.is_empty());
    assert!(
        read.timeframe.windows(2).all(|w| w[0] <= w[1]),
        "time rises"
    );
    assert!(
        *read.timeframe.last().unwrap() < 600.0,
        "point times are milliseconds (read as seconds)"
    );
    for (series, (name, _)) in read.series.iter().zip(SERIES) {
        assert_eq!(series.len(), read.timeframe.len(), "{name}");
    }
    let pressure = &read.series[0];
    assert!(
        pressure.iter().any(|v| v.as_f64().is_some_and(|p| p > 1.0)),
        "the pressure is there"
    );
    assert!(!read.stages.is_empty(), "stages are told apart");
    read
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_shot_is_uploaded_once_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crema.db");
    let stand_in = StandIn::start(USER, PASSWORD, "unused-token")
        .await
        .unwrap();
    stand_in.answer_next(1, 429, Some(1));
    let sim = Simulator::start(SimulatorConfig {
        scenario: Scenario::Normal,
        speed: 4.0,
        ..Default::default()
    })
    .await
    .unwrap();
    let log = dir.path().join("first.log");
    let mut first = run(&sim.url(), &db, &stand_in.url(), &log);
    // The shot ends, and its first upload is refused for now.
    until("the first try", Duration::from_secs(60), &log, || {
        (stand_in.requests() >= 1).then_some(())
    })
    .await;
    terminate(&mut first);
    assert!(stand_in.uploads().is_empty(), "the first try was refused");

    let log = dir.path().join("second.log");
    let mut second = run(&sim.url(), &db, &stand_in.url(), &log);
    let upload = until(
        "the upload after the restart",
        Duration::from_secs(30),
        &log,
        || stand_in.uploads().into_iter().next(),
    )
    .await;
    // A while longer: nothing is uploaded twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    terminate(&mut second);
    let uploads = stand_in.uploads();
    assert_eq!(
        uploads.len(),
        1,
        "one upload: {:?}",
        uploads.iter().map(|u| &u.id).collect::<Vec<_>>()
    );

    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    assert_eq!(upload.authorization, format!("Basic {basic}"));
    assert!(
        upload
            .filename
            .as_deref()
            .is_some_and(|f| f.ends_with(".shot.json")),
        "{:?}",
        upload.filename
    );
    let read = check_read(&upload.file);
    assert!(
        String::from_utf8_lossy(&upload.file).contains("\"NaN\""),
        "the live stream's NaN readings travel as the string \"NaN\""
    );

    // The store knows the shot by Visualizer's id. The live recording was reconciled with
    // the machine's history when it ended: one shot, the machine's own record of it.
    let reader = storage::open_reader(&db).unwrap();
    let shots = reader.all_shots().unwrap();
    assert_eq!(shots.len(), 1, "{shots:?}");
    let shot = &shots[0];
    assert!((shot.time - read.start_time).abs() < 1.0);
    let stored = recorder::document::visualizer_id(&*reader, shot.key).unwrap();
    assert_eq!(stored.as_deref(), Some(upload.id.as_str()));

    // Its export, in the history's shape, is read the same way.
    let id = recorder::document::public_id(shot);
    let out = Command::new(BIN)
        .args(["export", "--db", db.to_str().unwrap(), "--id", &id])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exported = check_read(&out.stdout);
    assert_eq!(exported.profile_title, read.profile_title);
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"NaN\""));
}

/// `crema-recorder upload`: the history a sync stored goes to Visualizer as an `upload` run,
/// signed in with a bearer token; a second run finds nothing left to send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upload_run_sends_the_history_not_uploaded_yet() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crema.db");
    let db_arg = db.to_str().unwrap();
    let stand_in = StandIn::start(USER, PASSWORD, "tk_history").await.unwrap();
    let sim = Simulator::start(SimulatorConfig {
        scenario: Scenario::Normal,
        speed: 50.0,
        repeat: true,
        pause: Duration::from_secs(1),
        ..Default::default()
    })
    .await
    .unwrap();
    // A machine with a few shots in its history.
    let deadline = Instant::now() + Duration::from_secs(60);
    while sim.saved().len() < 3 {
        assert!(Instant::now() < deadline, "the simulator saved no shots");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let synced = Command::new(BIN)
        .args(["sync", "--machine", &sim.url(), "--db", db_arg])
        .output()
        .unwrap();
    assert!(
        synced.status.success(),
        "{}",
        String::from_utf8_lossy(&synced.stderr)
    );
    let stored = storage::open_reader(&db).unwrap().all_shots().unwrap();
    assert!(!stored.is_empty(), "the sync stored the history");

    let upload = |token: &str| {
        Command::new(BIN)
            .args(["upload", "--db", db_arg, "--visualizer", &stand_in.url()])
            .env_remove("VISUALIZER_USERNAME")
            .env_remove("VISUALIZER_PASSWORD")
            .env("VISUALIZER_TOKEN", token)
            .output()
            .unwrap()
    };
    // One answer of the rate limit on the way: the run waits as told and goes on.
    stand_in.answer_next(1, 429, Some(1));
    let out = upload("tk_history");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let n = stored.len();
    assert!(
        said.contains(&format!(
            "{n} of {n} shots sent to Visualizer: {n} uploaded, 0 failed"
        )),
        "{said}"
    );
    let uploads = stand_in.uploads();
    assert_eq!(uploads.len(), n);
    for u in &uploads {
        assert_eq!(u.authorization, "Bearer tk_history");
        check_read(&u.file);
    }
    let reader = storage::open_reader(&db).unwrap();
    for shot in &stored {
        assert!(
            recorder::document::visualizer_id(&*reader, shot.key)
                .unwrap()
                .is_some(),
            "shot {} has its Visualizer id",
            shot.key
        );
    }

    // Nothing left to send.
    let out = upload("tk_history");
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("0 of 0 shots sent"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(stand_in.uploads().len(), n);

    // No credentials in the environment: refused before anything is sent, saying what to set.
    let out = upload("");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no credentials"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
