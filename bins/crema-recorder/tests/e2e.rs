//! crema-recorder as a user runs it, against the simulated machine at high speed.

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use simulator::{Scenario, Simulator, SimulatorConfig};

mod common;
use common::terminate;

const BIN: &str = env!("CARGO_BIN_EXE_crema-recorder");

fn recorder(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn start_run(url: &str, db: &Path) -> Child {
    Command::new(BIN)
        .args([
            "run",
            "--machine",
            url,
            "--db",
            db.to_str().unwrap(),
            "--log-format",
            "json",
        ])
        .stdout(Stdio::null())
        // Into a file beside the database: a pipe nobody reads would stop the process once
        // full.
        .stderr(std::fs::File::create(db.with_extension("log")).unwrap())
        .spawn()
        .unwrap()
}

fn shots(db: &Path) -> Vec<serde_json::Value> {
    let out = recorder(&["shots", "--db", db.to_str().unwrap(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["shots"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_the_shot_reconciles_it_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crema.db");
    let mut sim = Simulator::start(SimulatorConfig {
        scenario: Scenario::Normal,
        speed: 20.0,
        ..Default::default()
    })
    .await
    .unwrap();
    let mut child = start_run(&sim.url(), &db);
    sim.finished().await;
    // The live copy is replaced by the machine's own as soon as its history has it.
    let mut list = Vec::new();
    for _ in 0..100 {
        list = shots(&db);
        if list.len() == 1 && list[0]["source"] == "history" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(terminate(&mut child).success());
    assert_eq!(list.len(), 1, "{list:?}");
    let shot = &list[0];
    assert_eq!(shot["source"], "history");
    assert_eq!(shot["status"], "complete");
    assert_eq!(shot["sample_count"], 214);
    assert_eq!(shot["id"], sim.saved()[0].id.as_str());
    assert_eq!(shot["profile_name"], "Fixture Classic 9 bar");
    // The export is the machine's shot file.
    let out = recorder(&[
        "export",
        "--db",
        db.to_str().unwrap(),
        "--id",
        shot["id"].as_str().unwrap(),
    ]);
    assert!(out.status.success());
    let file: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(file["data"].as_array().unwrap().len(), 214);
    assert_eq!(file["id"], shot["id"]);
    // A sync afterwards finds nothing new.
    let out = recorder(&[
        "sync",
        "--machine",
        &sim.url(),
        "--db",
        db.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 on the machine, 0 fetched"), "{text}");
    // QA: the recorded shot passes; a second run has nothing new; --all checks it again.
    let db_arg = db.to_str().unwrap();
    for (args, expected) in [
        (
            &["qa", "--db", db_arg][..],
            "1 of 1 shots checked: 1 passed every check",
        ),
        (&["qa", "--db", db_arg][..], "0 of 0 shots checked"),
        (
            &["qa", "--db", db_arg, "--all"][..],
            "1 of 1 shots checked: 1 passed every check",
        ),
    ] {
        let out = recorder(args);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains(expected),
            "{args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_copies_the_history_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crema.db");
    let mut sim = Simulator::start(SimulatorConfig {
        scenario: Scenario::Aborted,
        speed: 20.0,
        ..Default::default()
    })
    .await
    .unwrap();
    sim.finished().await;
    let db_arg = db.to_str().unwrap().to_owned();
    let url = sim.url();
    let first = tokio::task::spawn_blocking({
        let (url, db_arg) = (url.clone(), db_arg.clone());
        move || recorder(&["sync", "--machine", &url, "--db", &db_arg])
    })
    .await
    .unwrap();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("1 on the machine, 1 fetched: 1 new"));
    let second = tokio::task::spawn_blocking(move || {
        recorder(&["sync", "--machine", &url, "--db", &db_arg])
    })
    .await
    .unwrap();
    assert!(String::from_utf8_lossy(&second.stdout).contains("1 on the machine, 0 fetched"));
    assert_eq!(shots(&db).len(), 1);
}

#[test]
fn bad_input_gets_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crema.db");
    let out = recorder(&[
        "run",
        "--machine",
        "ftp://machine",
        "--db",
        db.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ftp://machine is not a machine URL"), "{err}");
    assert!(!db.exists(), "nothing is created for a wrong URL");
    let out = recorder(&[
        "run",
        "--machine",
        "http://127.0.0.1:9",
        "--db",
        "/nonexistent-dir/crema.db",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot open the database /nonexistent-dir/crema.db"),
        "{err}"
    );
    let out = recorder(&["shots", "--db", "/nonexistent-dir/crema.db"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("there is no database at"));
    let out = recorder(&["export", "--db", db.to_str().unwrap(), "--id", "nope"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn an_unreachable_machine_is_retried_and_a_signal_still_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crema.db");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = start_run(&format!("http://127.0.0.1:{port}"), &db);
    std::thread::sleep(Duration::from_millis(2500));
    assert!(child.try_wait().unwrap().is_none(), "it keeps trying");
    assert!(terminate(&mut child).success());
    let log = std::fs::read_to_string(db.with_extension("log")).unwrap();
    assert!(log.contains("connection attempt failed"), "{log}");
    assert!(log.contains("reconnecting"), "{log}");
    assert!(shots(&db).is_empty());
}

/// Text logs going to a file (or a pipe, or a journal) carry no terminal colour codes.
#[test]
fn logs_to_a_file_are_plain_text() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crema.db");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut child = Command::new(BIN)
        .args(["run", "--machine", &format!("http://127.0.0.1:{port}")])
        .args(["--db", db.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(terminate(&mut child).success());
    let mut log = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert!(log.contains("reconnecting"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "no ANSI escapes in a piped log: {log:?}"
    );
}
