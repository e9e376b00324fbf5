//! The durable outbox: every live shot's end is recorded with it, planned once per target,
//! delivered once, and kept across a reopen (a crash between a shot's end and its deliveries).

use super::Location;
use super::store::{history, live_writes};
use crate::{Analysis, Applied, NewDelivery, Options, Store, Write};

fn open(at: &dyn Location) -> Store {
    at.open(Options::default())
}

fn deliveries(shot: i64, samples: i64) -> Vec<NewDelivery> {
    ["webhook:log", "analyzer:coach"]
        .into_iter()
        .map(|target| NewDelivery {
            target: target.into(),
            delivery: format!("shot-{shot}-{samples}"),
        })
        .collect()
}

pub(crate) fn a_finished_shot_is_planned_once_and_delivered_once(at: &dyn Location) {
    let store = open(at);
    let entry = history();
    for write in live_writes(7, &entry) {
        store.write_blocking(write).unwrap();
    }
    let reader = store.reader().unwrap();
    let events = reader.unexpanded(None, 10).unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    let event = events[0].clone();
    assert_eq!(event.samples, entry.data.len() as i64);
    assert_eq!(reader.unplanned().unwrap(), 1);
    // Planned twice (a retry, or two processes): the same two deliveries.
    for _ in 0..2 {
        let planned = store.write_blocking(Write::Expand {
            finished: event.id,
            deliveries: deliveries(event.shot_key, event.samples),
        });
        assert_eq!(planned.unwrap(), Applied::Done);
    }
    assert!(reader.unexpanded(None, 10).unwrap().is_empty());
    assert_eq!(reader.unplanned().unwrap(), 0);
    let due = reader.pending_deliveries(None, Some(f64::MAX), 10).unwrap();
    assert_eq!(due.len(), 2, "{due:?}");
    assert!(
        due.iter()
            .all(|d| d.shot_key == event.shot_key && d.attempts == 0)
    );
    let (hook, coach) = (
        due.iter().find(|d| d.target == "webhook:log").unwrap().id,
        due.iter()
            .find(|d| d.target == "analyzer:coach")
            .unwrap()
            .id,
    );
    // The analyzer's answer is stored with its delivery, once.
    let answer = Write::Delivered {
        id: coach,
        analysis: Some(Analysis {
            shot: event.shot_key,
            analyzer: "coach".into(),
            result: r#"{"grind":"finer"}"#.into(),
        }),
    };
    assert_eq!(store.write_blocking(answer.clone()).unwrap(), Applied::Done);
    assert_eq!(store.write_blocking(answer).unwrap(), Applied::AlreadyDone);
    let analyses = reader.analyses(event.shot_key).unwrap();
    assert_eq!(analyses.len(), 1, "{analyses:?}");
    // The webhook fails, is due again later, then fails for good.
    let later = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        + 3600.0;
    store
        .write_blocking(Write::DeliveryFailed {
            id: hook,
            error: "HTTP 503".into(),
            retry_at: Some(later),
        })
        .unwrap();
    assert!(
        reader
            .pending_deliveries(None, Some(later - 1.0), 10)
            .unwrap()
            .is_empty()
    );
    let waiting = reader.pending_deliveries(None, None, 10).unwrap();
    assert_eq!((waiting.len(), waiting[0].attempts), (1, 1));
    let hooks_only = reader.pending_deliveries(Some("webhook:log"), None, 10);
    assert_eq!(hooks_only.unwrap().len(), 1);
    let other = reader.pending_deliveries(Some("webhook:other"), None, 10);
    assert!(other.unwrap().is_empty());
    store
        .write_blocking(Write::DeliveryFailed {
            id: hook,
            error: "HTTP 401".into(),
            retry_at: None,
        })
        .unwrap();
    assert!(
        reader
            .pending_deliveries(None, None, 10)
            .unwrap()
            .is_empty()
    );
    let counts = reader.delivery_counts().unwrap();
    assert_eq!(
        counts,
        vec![
            ("analyzer:coach".into(), "delivered".into(), 1),
            ("webhook:log".into(), "failed".into(), 1)
        ]
    );
    // A failed delivery is not delivered by a late answer.
    let late = Write::Delivered {
        id: hook,
        analysis: None,
    };
    assert_eq!(store.write_blocking(late).unwrap(), Applied::AlreadyDone);
    store.close();
}

pub(crate) fn the_outbox_survives_a_reopen(at: &dyn Location) {
    let store = open(at);
    let entry = history();
    for write in live_writes(9, &entry) {
        store.write_blocking(write).unwrap();
    }
    // The process dies after the shot's end, before planning its deliveries.
    store.close();
    let store = open(at);
    let events = store.reader().unwrap().unexpanded(None, 10).unwrap();
    assert_eq!(events.len(), 1, "the shot's end is still due: {events:?}");
    store
        .write_blocking(Write::Expand {
            finished: events[0].id,
            deliveries: deliveries(events[0].shot_key, events[0].samples),
        })
        .unwrap();
    // And again after planning: the deliveries are still due, with their keys.
    store.close();
    let store = open(at);
    let due = store
        .reader()
        .unwrap()
        .pending_deliveries(None, None, 10)
        .unwrap();
    assert_eq!(due.len(), 2, "{due:?}");
    let key = format!("shot-{}-{}", events[0].shot_key, entry.data.len());
    assert!(due.iter().all(|d| d.delivery == key), "{due:?}");
    store.close();
}

pub(crate) fn a_shot_cut_by_a_crash_is_delivered_once(at: &dyn Location) {
    let entry = history();
    let store = open(at);
    let mut writes = live_writes(11, &entry);
    writes.truncate(writes.len() - 2); // the process dies mid-shot
    for write in writes {
        store.write_blocking(write).unwrap();
    }
    store.close();
    // Reopened: the shot is finished as partial, its end due after the grace.
    let store = open(at);
    let reader = store.reader().unwrap();
    assert!(reader.unexpanded(Some(0.0), 10).unwrap().is_empty());
    assert_eq!(
        reader.unexpanded(None, 10).unwrap().len(),
        1,
        "the recovered end is kept"
    );
    assert_eq!(reader.unplanned().unwrap(), 1, "counted while it waits");
    // The next recorder resumes it: that end is void, the resumed end is the one delivered.
    let resumed = live_writes(12, &entry);
    store.write_blocking(resumed[0].clone()).unwrap();
    store
        .write_blocking(Write::Merge { from: 12, into: 11 })
        .unwrap();
    assert!(reader.unexpanded(None, 10).unwrap().is_empty());
    let finish = super::store::finish_shot(11, entry.data.len());
    store.write_blocking(finish).unwrap();
    let events = reader.unexpanded(None, 10).unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    store.close();
}
