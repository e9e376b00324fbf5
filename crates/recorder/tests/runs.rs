//! Runs over a real store: QA finds each defect in purpose-built shots and passes the clean one,
//! analysis stores `shot-facts/1`, one run at a time under concurrency, progress that only moves
//! forward, and cancel.

use std::sync::Arc;

use meticulous::{Entry, HistoryPage};
use recorder::runs::{RunRequest, Runs, Started};
use storage::{Options, RunKind, RunStatus, Store, Write};

fn fixture() -> Entry {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/meticulous/meticulous_history.json");
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str::<HistoryPage>(&text)
        .unwrap()
        .history
        .remove(0)
}

/// The clean fixture shot and one shot per defect, stored as history copies; their UUIDs.
async fn defects(store: &Store) -> Vec<(String, Option<&'static str>)> {
    let clean = fixture();
    let mut shots: Vec<(Entry, Option<&'static str>)> = Vec::new();
    shots.push((clean.clone(), None));
    let mut short = clean.clone();
    short.data.truncate(10);
    shots.push((short, Some("too_short")));
    let mut dropout = clean.clone();
    dropout.data.retain(|s| !(5_000..7_000).contains(&s.time));
    shots.push((dropout, Some("sensor_dropout")));
    let mut frozen = clean.clone();
    let again = frozen.data[50].clone();
    frozen.data.insert(51, again);
    shots.push((frozen, Some("stalled_controller")));
    let mut no_scale = clean.clone();
    for s in &mut no_scale.data {
        s.shot.weight = None;
    }
    shots.push((no_scale, Some("scale_absent")));
    let mut out = Vec::new();
    for (i, (mut entry, defect)) in shots.into_iter().enumerate() {
        entry.id = format!("00000000-0000-4000-8000-00000000000{i}");
        entry.time += i as f64;
        out.push((entry.id.clone(), defect));
        store
            .write(Write::UpsertHistory {
                machine: "default".into(),
                entry: Box::new(entry),
            })
            .await
            .unwrap();
    }
    out
}

fn request(kind: RunKind) -> RunRequest {
    RunRequest {
        kind,
        shots: None,
        machine: None,
        started_by: "api".into(),
    }
}

/// Follows run `id` to its end; every snapshot seen, in order.
async fn follow(runs: &Runs, id: i64) -> Vec<storage::Run> {
    let mut seen = Vec::new();
    let Some(mut rx) = runs.watch(id) else {
        return vec![runs.get(id).unwrap()];
    };
    loop {
        let run = rx.borrow_and_update().clone();
        let done = !run.status.is_active();
        seen.push(run);
        if done || rx.changed().await.is_err() {
            break;
        }
    }
    seen.push(runs.get(id).unwrap());
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qa_finds_each_defect_and_passes_the_clean_shot() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("crema.db"), Options::default()).unwrap());
    let shots = defects(&store).await;
    let runs = Runs::new(store.clone(), Vec::new(), Vec::new(), None);
    let Started::Started(run) = runs.start(request(RunKind::Qa)).await.unwrap() else {
        panic!("nothing else runs")
    };
    let seen = follow(&runs, run.id).await;
    for w in seen.windows(2) {
        assert!(w[1].done >= w[0].done, "progress only moves forward");
    }
    let last = seen.last().unwrap();
    assert_eq!(last.status, RunStatus::Succeeded, "{last:?}");
    assert_eq!(
        (last.total, last.done, last.passed, last.failed),
        (5, 5, 1, 4)
    );
    assert!(
        last.summary
            .as_deref()
            .unwrap()
            .contains("1 passed every check")
    );
    let reader = store.reader().unwrap();
    for (uuid, defect) in shots {
        let key = reader.find(&uuid).unwrap().unwrap().key;
        let failed: Vec<String> = reader
            .qa_results(key)
            .unwrap()
            .into_iter()
            .filter(|r| !r.passed)
            .map(|r| r.check)
            .collect();
        assert_eq!(
            failed,
            defect.into_iter().map(String::from).collect::<Vec<_>>(),
            "{uuid}"
        );
    }
    // Idempotent: again, the same verdicts, no duplicates.
    let Started::Started(again) = runs.start(request(RunKind::Qa)).await.unwrap() else {
        panic!()
    };
    follow(&runs, again.id).await;
    let key = reader.shot_keys().unwrap()[0];
    assert_eq!(reader.qa_results(key).unwrap().len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn analysis_stores_shot_facts_for_the_shots_asked() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("crema.db"), Options::default()).unwrap());
    let shots = defects(&store).await;
    let runs = Runs::new(store.clone(), Vec::new(), Vec::new(), None);
    let ask = RunRequest {
        kind: RunKind::Analyze,
        shots: Some(vec![shots[0].0.clone()]),
        machine: None,
        started_by: "api".into(),
    };
    let Started::Started(run) = runs.start(ask).await.unwrap() else {
        panic!()
    };
    let last = follow(&runs, run.id).await.pop().unwrap();
    assert_eq!(
        (last.status, last.total, last.done),
        (RunStatus::Succeeded, 1, 1)
    );
    let reader = store.reader().unwrap();
    let key = reader.find(&shots[0].0).unwrap().unwrap().key;
    let analyses = reader.analyses(key).unwrap();
    assert_eq!(analyses[0]["analyzer"], "shot-facts/1");
    assert_eq!(analyses[0]["result"]["total_time_s"], 28.268);
    assert!(
        reader.analyses(key + 1).unwrap().is_empty(),
        "only the shot asked"
    );
    // Unknown shots are refused before anything starts.
    let bad = RunRequest {
        kind: RunKind::Qa,
        shots: Some(vec!["nope".into()]),
        machine: None,
        started_by: "api".into(),
    };
    assert!(
        runs.start(bad)
            .await
            .unwrap_err()
            .to_string()
            .contains("no shot nope")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_at_a_time_and_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("crema.db"), Options::default()).unwrap());
    // Enough shots that the run is still going when the others ask.
    let entry = fixture();
    for i in 0..400 {
        let mut e = entry.clone();
        e.id = format!("00000000-0000-4000-8000-{i:012}");
        e.time += f64::from(i);
        store
            .write(Write::UpsertHistory {
                machine: "default".into(),
                entry: Box::new(e),
            })
            .await
            .unwrap();
    }
    let runs = Runs::new(store.clone(), Vec::new(), Vec::new(), None);
    let starts = futures_util::future::join_all((0..8).map(|_| {
        let runs = runs.clone();
        async move { runs.start(request(RunKind::Qa)).await.unwrap() }
    }))
    .await;
    let started: Vec<i64> = starts
        .iter()
        .filter_map(|s| match s {
            Started::Started(run) => Some(run.id),
            Started::Busy(_) => None,
        })
        .collect();
    assert_eq!(started.len(), 1, "exactly one of 8 concurrent starts runs");
    let id = started[0];
    for s in &starts {
        if let Started::Busy(active) = s {
            assert_eq!(active.id, id, "the others are told which run is active");
        }
    }
    assert_eq!(runs.current().unwrap().unwrap().id, id);
    let cancelled = runs.cancel(id).unwrap();
    assert_eq!(cancelled.id, id);
    let last = follow(&runs, id).await.pop().unwrap();
    assert_eq!(last.status, RunStatus::Cancelled, "{last:?}");
    assert!(last.done < 400, "stopped early: {last:?}");
    assert!(runs.current().unwrap().is_none());
    let stored = store.reader().unwrap().run(id).unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.done),
        (RunStatus::Cancelled, last.done)
    );
    // And now another may start.
    assert!(matches!(
        runs.start(request(RunKind::Analyze)).await.unwrap(),
        Started::Started(_)
    ));
}
