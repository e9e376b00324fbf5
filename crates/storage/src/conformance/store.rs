//! The store on a real SQLite file: the live path, history reconciliation, recovery after a
//! crash, merges, exports, and injected commit failures.

use super::Location;
use std::path::PathBuf;
use std::sync::Arc;

use crate::{Applied, Options, Store, Upserted, Write};
use meticulous::{Entry, HistoryPage, Sample};
use recorder_core::{EndReason, Shot, ShotStart, ShotStatus};

pub(super) fn history() -> Entry {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/meticulous/meticulous_history.json");
    let text = std::fs::read_to_string(path).unwrap();
    serde_json::from_str::<HistoryPage>(&text)
        .unwrap()
        .history
        .remove(0)
}

fn start(key: u64) -> Write {
    Write::StartShot {
        machine: "default".into(),
        start: ShotStart {
            key,
            started_unix_s: 1_767_254_415.0,
            profile_name: Some("Fixture Classic 9 bar".into()),
            profile_id: Some("0f1c2e3d-4b5a-4c6d-8e7f-9a0b1c2d3e4f".into()),
        },
    }
}

fn finish(key: u64, samples: usize, status: ShotStatus) -> Write {
    Write::Finish(Shot {
        key,
        id: None,
        started_unix_s: 0.0,
        status,
        reason: EndReason::Finished,
        samples,
    })
}

/// The live writes of the fixture shot: start, journal in batches of 16, identify, finish.
pub(super) fn live_writes(key: u64, entry: &Entry) -> Vec<Write> {
    let mut writes = vec![start(key)];
    for chunk in entry.data.chunks(16) {
        writes.push(Write::Journal {
            key,
            samples: chunk.to_vec(),
        });
    }
    writes.push(Write::Identify {
        key,
        id: entry.id.clone(),
        started_unix_s: entry.time,
    });
    writes.push(finish(key, entry.data.len(), ShotStatus::Complete));
    writes
}

/// The complete end of live shot `key` with `samples` samples.
pub(super) fn finish_shot(key: u64, samples: usize) -> Write {
    finish(key, samples, ShotStatus::Complete)
}

fn open(at: &dyn Location) -> Store {
    at.open(Options::default())
}

fn samples_of(store: &Store, key: i64) -> Vec<Sample> {
    store
        .reader()
        .unwrap()
        .samples(key)
        .unwrap()
        .iter()
        .map(|raw| serde_json::from_str(raw.get()).unwrap())
        .collect()
}

pub(crate) fn a_live_shot_then_its_history_copy_replaces_it_once(at: &dyn Location) {
    let store = open(at);
    let entry = history();
    for w in live_writes(1, &entry) {
        store.write_blocking(w).unwrap();
    }
    let reader = store.reader().unwrap();
    let shots = reader.all_shots().unwrap();
    assert_eq!(shots.len(), 1);
    let live = &shots[0];
    assert_eq!(
        (
            live.source.as_str(),
            live.status.as_str(),
            live.sample_count
        ),
        ("live", "complete", 214)
    );
    assert_eq!(live.id.as_deref(), Some(entry.id.as_str()));
    assert_eq!(samples_of(&store, live.key), entry.data);
    // History wins, by UUID, in place; a second sync changes nothing.
    let upsert = || Write::UpsertHistory {
        machine: "default".into(),
        entry: Box::new(entry.clone()),
    };
    assert_eq!(
        store.write_blocking(upsert()).unwrap(),
        Applied::History(Upserted::Replaced)
    );
    assert_eq!(
        store.write_blocking(upsert()).unwrap(),
        Applied::History(Upserted::Unchanged)
    );
    let shots = reader.all_shots().unwrap();
    assert_eq!(shots.len(), 1, "never duplicated");
    assert_eq!(
        (shots[0].key, shots[0].source.as_str()),
        (live.key, "history")
    );
    assert_eq!(
        shots[0].profile_name.as_deref(),
        Some("Fixture Classic 9 bar")
    );
    assert_eq!(samples_of(&store, live.key), entry.data);
    // Live writes for that shot arriving late leave the history copy alone.
    store
        .write_blocking(Write::Journal {
            key: 1,
            samples: entry.data[..3].to_vec(),
        })
        .unwrap();
    store
        .write_blocking(finish(1, 3, ShotStatus::Partial))
        .unwrap();
    store.write_blocking(Write::Discard { key: 1 }).unwrap();
    let shots = reader.all_shots().unwrap();
    assert_eq!(
        (shots.len(), shots[0].sample_count, shots[0].status.as_str()),
        (1, 214, "complete")
    );
    assert_eq!(reader.history_ids("default").unwrap().len(), 1);
}

pub(crate) fn history_first_then_the_live_copy_gives_way(at: &dyn Location) {
    let store = open(at);
    let entry = history();
    store
        .write_blocking(Write::UpsertHistory {
            machine: "default".into(),
            entry: Box::new(entry.clone()),
        })
        .unwrap();
    for w in live_writes(5, &entry) {
        store.write_blocking(w).unwrap();
    }
    let shots = store.reader().unwrap().all_shots().unwrap();
    assert_eq!(shots.len(), 1);
    assert_eq!(
        (shots[0].source.as_str(), shots[0].sample_count),
        ("history", 214)
    );
}

pub(crate) fn a_crash_leaves_recording_shots_that_reopen_as_partial(at: &dyn Location) {
    let entry = history();
    {
        let store = open(at);
        store.write_blocking(start(3)).unwrap();
        store
            .write_blocking(Write::Journal {
                key: 3,
                samples: entry.data[..40].to_vec(),
            })
            .unwrap();
        // No finish: the process "dies" here (the store closes, the shot is still recording).
    }
    let store = open(at);
    assert_eq!(
        store.recovered(),
        &[crate::Recovered {
            machine: "default".into(),
            key: 3,
            id: None,
            samples: 40,
            started_unix_s: 1_767_254_415.0,
        }]
    );
    let reader = store.reader().unwrap();
    let shot = &reader.all_shots().unwrap()[0];
    assert_eq!((shot.status.as_str(), shot.sample_count), ("partial", 40));
    assert_eq!(reader.integrity_check().unwrap(), "ok");
}

pub(crate) fn a_merge_moves_the_samples_into_the_interrupted_shot(at: &dyn Location) {
    let store = open(at);
    let data = history().data;
    store.write_blocking(start(1)).unwrap();
    store
        .write_blocking(Write::Journal {
            key: 1,
            samples: data[..10].to_vec(),
        })
        .unwrap();
    store
        .write_blocking(finish(1, 10, ShotStatus::Partial))
        .unwrap();
    store.write_blocking(start(2)).unwrap();
    store
        .write_blocking(Write::Journal {
            key: 2,
            samples: data[10..30].to_vec(),
        })
        .unwrap();
    store
        .write_blocking(Write::Merge { from: 2, into: 1 })
        .unwrap();
    store
        .write_blocking(Write::Journal {
            key: 1,
            samples: data[30..50].to_vec(),
        })
        .unwrap();
    store
        .write_blocking(finish(1, 50, ShotStatus::Complete))
        .unwrap();
    let shots = store.reader().unwrap().all_shots().unwrap();
    assert_eq!(shots.len(), 1);
    assert_eq!(
        (shots[0].status.as_str(), shots[0].sample_count),
        ("complete", 50)
    );
    assert_eq!(samples_of(&store, shots[0].key), data[..50].to_vec());
}

pub(crate) fn a_short_shot_is_discarded_and_the_export_is_a_shot_file(at: &dyn Location) {
    let store = open(at);
    let entry = history();
    store.write_blocking(start(1)).unwrap();
    store
        .write_blocking(Write::Journal {
            key: 1,
            samples: entry.data[..5].to_vec(),
        })
        .unwrap();
    store.write_blocking(Write::Discard { key: 1 }).unwrap();
    assert!(store.reader().unwrap().all_shots().unwrap().is_empty());
    store
        .write_blocking(Write::UpsertHistory {
            machine: "default".into(),
            entry: Box::new(entry.clone()),
        })
        .unwrap();
    let reader = store.reader().unwrap();
    let key = reader.find(&entry.id).unwrap().unwrap().key;
    let path = at.scratch().join("shot.json");
    assert!(reader.export(key, &path).unwrap());
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(file["id"], entry.id.as_str());
    assert_eq!(file["profile_name"], "Fixture Classic 9 bar");
    assert_eq!(file["time"], entry.time);
    assert_eq!(file["data"].as_array().unwrap().len(), 214);
    assert_eq!(file["profile"]["name"], "Fixture Classic 9 bar");
    assert!(!reader.export(key + 100, &path).unwrap());
    // Nothing but the export is left in the folder (the temporary file was renamed).
    let names: Vec<String> = std::fs::read_dir(at.scratch())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("crema.db"))
        .collect();
    assert_eq!(names, vec!["shot.json".to_owned()]);
}

pub(crate) fn shots_page_by_cursor(at: &dyn Location) {
    let store = open(at);
    let mut entry = history();
    for i in 0..25 {
        entry.id = format!("shot-{i}");
        entry.time = 1_700_000_000.0 + f64::from(i);
        entry.data.truncate(3);
        store
            .write_blocking(Write::UpsertHistory {
                machine: "default".into(),
                entry: Box::new(entry.clone()),
            })
            .unwrap();
    }
    let reader = store.reader().unwrap();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = reader.shots(10, cursor.as_deref()).unwrap();
        seen.extend(page.shots.iter().map(|s| s.id.clone().unwrap()));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let expected: Vec<String> = (0..25).rev().map(|i| format!("shot-{i}")).collect();
    assert_eq!(seen, expected);
    assert_eq!(reader.shot_count().unwrap(), 25);
}

/// Every commit from the n-th fails once; the writer's callers retry what failed. Whatever the
/// failing commit, the database ends exactly as without faults: nothing lost, nothing doubled.
pub(crate) fn failing_the_nth_commit_loses_nothing(at: &dyn Location) {
    let entry = history();
    let writes = live_writes(1, &entry);
    let reference = {
        let at = at.fresh();
        let store = open(&*at);
        for w in &writes {
            store.write_blocking(w.clone()).unwrap();
        }
        let shot = store.reader().unwrap().all_shots().unwrap().remove(0);
        (shot.status, shot.sample_count, samples_of(&store, shot.key))
    };
    for n in 1..=writes.len() as u64 + 2 {
        let at = at.fresh();
        let options = Options {
            fail_commit: Some(Arc::new(move |commit| commit == n)),
            ..Options::default()
        };
        let store = at.open(options);
        let mut failures = 0;
        for w in &writes {
            loop {
                match store.write_blocking(w.clone()) {
                    Ok(_) => break,
                    Err(e) => {
                        assert!(e.to_string().contains("committing"), "{e}");
                        failures += 1;
                        assert!(failures < 5, "a write keeps failing");
                    }
                }
            }
        }
        // The n-th commit is one of this run's commits for every n up to the number of writes.
        assert_eq!(
            failures,
            usize::from(n <= writes.len() as u64),
            "commit {n}"
        );
        let reader = store.reader().unwrap();
        let shot = reader.all_shots().unwrap().remove(0);
        assert_eq!(
            (shot.status, shot.sample_count, samples_of(&store, shot.key)),
            reference,
            "commit {n} failed"
        );
        assert_eq!(reader.integrity_check().unwrap(), "ok");
    }
}

/// Two live copies of the same shot (a cut the recorder did not resume): when the second is
/// identified, it goes on in the first row.
pub(crate) fn a_second_live_copy_of_the_same_shot_joins_the_first(at: &dyn Location) {
    let store = open(at);
    let data = history().data;
    store.write_blocking(start(1)).unwrap();
    store
        .write_blocking(Write::Journal {
            key: 1,
            samples: data[..10].to_vec(),
        })
        .unwrap();
    store
        .write_blocking(Write::Identify {
            key: 1,
            id: "shot-x".into(),
            started_unix_s: 1.0,
        })
        .unwrap();
    store
        .write_blocking(finish(1, 10, ShotStatus::Partial))
        .unwrap();
    store.write_blocking(start(2)).unwrap();
    store
        .write_blocking(Write::Journal {
            key: 2,
            samples: data[10..25].to_vec(),
        })
        .unwrap();
    store
        .write_blocking(Write::Identify {
            key: 2,
            id: "shot-x".into(),
            started_unix_s: 1.0,
        })
        .unwrap();
    store
        .write_blocking(Write::Journal {
            key: 2,
            samples: data[25..40].to_vec(),
        })
        .unwrap();
    store
        .write_blocking(finish(2, 40, ShotStatus::Complete))
        .unwrap();
    let shots = store.reader().unwrap().all_shots().unwrap();
    assert_eq!(shots.len(), 1, "{shots:?}");
    assert_eq!(
        (shots[0].status.as_str(), shots[0].sample_count),
        ("complete", 40)
    );
    assert_eq!(samples_of(&store, shots[0].key), data[..40].to_vec());
}

/// Several processes creating the store at once (a recorder and a gateway started together):
/// every one of them opens it.
pub(crate) fn opening_a_new_store_at_once_from_many_places(at: &dyn Location) {
    std::thread::scope(|scope| {
        let opening: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| drop(at.open(Options::default()))))
            .collect();
        for open in opening {
            assert!(open.join().is_ok(), "every opener gets the store");
        }
    });
    let store = at.open(Options::default());
    assert_eq!(store.reader().unwrap().shot_count().unwrap(), 0);
}
