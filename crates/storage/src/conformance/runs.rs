//! Runs on a real SQLite file: one active at a time, progress that never revives a finished run,
//! interrupted on the next open, and QA results and analyses that replace their earlier copy.

use super::Location;
use crate::{Analysis, Applied, Options, QaResult, RunKind, RunProgress, RunStatus, Store, Write};

fn progress(id: i64, status: RunStatus, done: u64) -> Write {
    Write::RunProgress(RunProgress {
        id,
        status,
        total: 10,
        done,
        passed: done,
        failed: 0,
        error: None,
        summary: None,
    })
}

fn create(store: &Store, kind: RunKind) -> Applied {
    store
        .write_blocking(Write::CreateRun {
            kind,
            machine: None,
            shots: Some(vec![3, 1, 2]),
            started_by: "api".into(),
        })
        .unwrap()
}

pub(crate) fn one_active_run_and_its_life(at: &dyn Location) {
    let store = at.open(Options::default());
    let Applied::RunCreated { id, .. } = create(&store, RunKind::Qa) else {
        panic!("the first run is created")
    };
    assert_eq!(
        create(&store, RunKind::Sync),
        Applied::RunBusy { active: id }
    );
    let reader = store.reader().unwrap();
    let run = reader.active_run().unwrap().unwrap();
    assert_eq!(
        (run.id, run.kind, run.status),
        (id, RunKind::Qa, RunStatus::Queued)
    );
    assert_eq!(run.shots, Some(vec![3, 1, 2]));
    assert!(run.started_at.is_none());

    store
        .write_blocking(progress(id, RunStatus::Running, 4))
        .unwrap();
    let run = reader.run(id).unwrap().unwrap();
    assert_eq!(
        (run.status, run.done, run.total),
        (RunStatus::Running, 4, 10)
    );
    assert!(run.started_at.is_some() && run.finished_at.is_none());
    let json = serde_json::to_value(&run).unwrap();
    for field in [
        "id",
        "kind",
        "status",
        "total",
        "done",
        "passed",
        "failed",
        "created_at",
        "started_at",
        "finished_at",
        "error",
    ] {
        assert!(json.get(field).is_some(), "{field} in {json}");
    }
    assert_eq!(json["status"], "running");

    store
        .write_blocking(progress(id, RunStatus::Succeeded, 10))
        .unwrap();
    // A late progress write does not revive it.
    store
        .write_blocking(progress(id, RunStatus::Running, 7))
        .unwrap();
    let run = reader.run(id).unwrap().unwrap();
    assert_eq!((run.status, run.done), (RunStatus::Succeeded, 10));
    assert!(run.finished_at.is_some());
    assert!(reader.active_run().unwrap().is_none());
    let Applied::RunCreated { id: next, .. } = create(&store, RunKind::Analyze) else {
        panic!("a run after the first ended is created")
    };
    assert!(next > id);
    assert_eq!(reader.runs(10).unwrap().len(), 2);
}

pub(crate) fn an_active_run_is_interrupted_by_a_restart(at: &dyn Location) {
    // The first process is one of this host's that has exited since (as a killed one has).
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let gone = crate::Owner {
        id: "gone".into(),
        pid: child.id(),
        host: crate::Owner::this_process().host,
        started: 0,
    };
    child.wait().unwrap();
    let id = {
        let options = Options {
            owner: gone,
            ..Options::default()
        };
        let store = at.open(options);
        let Applied::RunCreated { id, .. } = create(&store, RunKind::Qa) else {
            panic!()
        };
        store
            .write_blocking(progress(id, RunStatus::Running, 3))
            .unwrap();
        // Dropped without finishing the run: as a kill would leave it.
        id
    };
    let store = at.open(Options::default());
    let run = store.reader().unwrap().run(id).unwrap().unwrap();
    assert_eq!((run.status, run.done), (RunStatus::Interrupted, 3));
    assert!(run.finished_at.is_some());
    assert!(run.error.unwrap().contains("stopped"));
    assert!(matches!(
        create(&store, RunKind::Qa),
        Applied::RunCreated { .. }
    ));
}

pub(crate) fn qa_results_and_analyses_replace_their_earlier_copy(at: &dyn Location) {
    let store = at.open(Options::default());
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fixtures/meticulous/meticulous_history.json"),
    )
    .unwrap();
    let entry = serde_json::from_str::<meticulous::HistoryPage>(&text)
        .unwrap()
        .history
        .remove(0);
    store
        .write_blocking(Write::UpsertHistory {
            machine: "default".into(),
            entry: Box::new(entry),
        })
        .unwrap();
    // A shot still recording is not offered to runs.
    store
        .write_blocking(Write::StartShot {
            machine: "default".into(),
            start: recorder_core::ShotStart {
                key: 1,
                started_unix_s: 1.9e9,
                profile_name: None,
                profile_id: None,
            },
        })
        .unwrap();
    let reader = store.reader().unwrap();
    assert_eq!(reader.all_shots().unwrap().len(), 2);
    let keys = reader.shot_keys().unwrap();
    assert_eq!(keys.len(), 1, "only the finished shot");
    let key = keys[0];
    let verdict = |passed: bool, message: &str| QaResult {
        check: "too_short".into(),
        passed,
        message: message.into(),
    };
    for (passed, message) in [(false, "first"), (true, "second")] {
        store
            .write_blocking(Write::QaResults(vec![(
                key,
                vec![verdict(passed, message)],
            )]))
            .unwrap();
        store
            .write_blocking(Write::Analyses(vec![Analysis {
                shot: key,
                analyzer: "shot-facts/1".into(),
                result: format!(r#"{{"message":"{message}"}}"#),
            }]))
            .unwrap();
    }
    assert_eq!(
        reader.qa_results(key).unwrap(),
        vec![verdict(true, "second")]
    );
    let analyses = reader.analyses(key).unwrap();
    assert_eq!(analyses.len(), 1);
    assert_eq!(analyses[0]["result"]["message"], "second");
}
