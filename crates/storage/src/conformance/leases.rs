//! Many processes on one store: leases (taken, refused, renewed, released, expired, freed by a
//! dead holder), fencing, and recovery that leaves alone what a live process holds.

use super::Location;
use std::time::Duration;

use crate::lease::{self, Owner};
use crate::{Applied, Options, RunKind, RunStatus, StorageError, Store, Write};
use recorder_core::ShotStart;

/// A process on a host of its own (its liveness cannot be checked from any other: only expiry
/// frees what it holds).
fn elsewhere(id: &str) -> Owner {
    Owner {
        id: id.into(),
        pid: 1,
        host: format!("host-of-{id}"),
        started: 0,
    }
}

/// A process of this host that has exited.
fn dead_here() -> Owner {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    Owner {
        id: "dead".into(),
        pid,
        host: Owner::this_process().host,
        started: 0,
    }
}

fn open(at: &dyn Location, owner: Owner) -> Store {
    at.open(Options {
        owner,
        ..Options::default()
    })
}

fn take(store: &Store, name: &str, ttl: Duration) -> Applied {
    store
        .write_blocking(Write::Lease {
            name: name.into(),
            ttl,
        })
        .unwrap()
}

fn start(key: u64) -> Write {
    Write::StartShot {
        machine: "kitchen".into(),
        start: ShotStart {
            key,
            started_unix_s: 1_767_254_415.0,
            profile_name: None,
            profile_id: None,
        },
    }
}

fn journal(key: u64) -> Write {
    let sample: meticulous::Sample = serde_json::from_str(
        r#"{"shot":{"pressure":1,"flow":0,"weight":0,"temperature":90,"gravimetric_flow":0},"time":100,"status":"x","sensors":{},"profile_time":0}"#,
    )
    .unwrap();
    Write::Journal {
        key,
        samples: vec![sample],
    }
}

fn recording(store: &Store) -> Vec<(i64, String)> {
    store
        .reader()
        .unwrap()
        .all_shots()
        .unwrap()
        .into_iter()
        .map(|s| (s.key, s.status))
        .collect()
}

pub(crate) fn a_lease_is_refused_while_held_and_fences_the_old_holder_once_taken(
    at: &dyn Location,
) {
    let a = open(at, elsewhere("a"));
    let b = open(at, elsewhere("b"));
    let name = lease::machine("kitchen");
    let Applied::Leased { token: first, .. } = take(&a, &name, Duration::from_secs(60)) else {
        panic!("a takes it")
    };
    // Renewing keeps the token.
    assert!(matches!(
        take(&a, &name, Duration::from_secs(60)),
        Applied::Leased { token, .. } if token == first
    ));
    let Applied::LeaseHeld(holder) = take(&b, &name, Duration::from_secs(60)) else {
        panic!("b is refused")
    };
    assert_eq!(
        (holder.owner.as_str(), holder.host.as_str()),
        ("a", "host-of-a")
    );
    assert!(
        holder
            .to_string()
            .contains("held by process 1 on host-of-a"),
        "{holder}"
    );
    // A fenced write of a's goes through while a holds it.
    a.write_blocking(Write::Fenced {
        lease: name.clone(),
        token: first,
        write: Box::new(start(1)),
    })
    .unwrap();
    a.write_blocking(Write::Release { name: name.clone() })
        .unwrap();
    let Applied::Leased { token: second, .. } = take(&b, &name, Duration::from_secs(60)) else {
        panic!("b takes it once released")
    };
    assert!(second > first, "a new holder gets a larger token");
    // a lost it: its fenced writes are refused and change nothing.
    let refused = a
        .write_blocking(Write::Fenced {
            lease: name.clone(),
            token: first,
            write: Box::new(journal(1)),
        })
        .unwrap_err();
    assert!(
        matches!(&refused, StorageError::LeaseLost { holder: Some(h), .. } if h.owner == "b"),
        "{refused}"
    );
    assert_eq!(
        a.reader().unwrap().shot(1).unwrap().unwrap().sample_count,
        0
    );
}

pub(crate) fn an_expired_lease_or_a_dead_holder_frees_it(at: &dyn Location) {
    let a = open(at, elsewhere("a"));
    let b = open(at, elsewhere("b"));
    assert!(matches!(
        take(&a, "machine:x", Duration::from_millis(50)),
        Applied::Leased { .. }
    ));
    assert!(matches!(
        take(&b, "machine:x", Duration::from_secs(60)),
        Applied::LeaseHeld(_)
    ));
    std::thread::sleep(Duration::from_millis(80));
    assert!(matches!(
        take(&b, "machine:x", Duration::from_secs(60)),
        Applied::Leased { token: 2, .. }
    ));
    // A holder of this host whose process is gone holds nothing, expiry or not.
    let dead = open(at, dead_here());
    assert!(matches!(
        take(&dead, "machine:y", Duration::from_secs(600)),
        Applied::Leased { .. }
    ));
    assert!(
        matches!(
            take(&b, "machine:y", Duration::from_secs(60)),
            Applied::LeaseHeld(_)
        ),
        "from another host only the expiry tells"
    );
    let here = open(at, Owner::this_process());
    assert!(matches!(
        take(&here, "machine:y", Duration::from_secs(60)),
        Applied::Leased { .. }
    ));
}

pub(crate) fn opening_recovers_only_what_no_live_process_holds(at: &dyn Location) {
    let recorder = open(at, elsewhere("recorder"));
    assert!(matches!(
        take(
            &recorder,
            &lease::machine("kitchen"),
            Duration::from_secs(60)
        ),
        Applied::Leased { .. }
    ));
    recorder.write_blocking(start(7)).unwrap();
    recorder.write_blocking(journal(7)).unwrap();
    // A second process (the CLI's `qa`, say) opens the store mid-shot.
    let cli = open(at, Owner::this_process());
    assert!(cli.recovered().is_empty(), "{:?}", cli.recovered());
    assert_eq!(recording(&cli), [(1, "recording".into())]);
    drop(cli);
    // The recorder dies without ending the shot; its lease runs out.
    recorder
        .write_blocking(Write::Lease {
            name: lease::machine("kitchen"),
            ttl: Duration::ZERO,
        })
        .unwrap();
    let next = open(at, elsewhere("next"));
    assert_eq!(next.recovered().len(), 1);
    assert_eq!(next.recovered()[0].key, 7);
    assert_eq!(recording(&next), [(1, "partial".into())]);
}

pub(crate) fn taking_a_machine_from_a_dead_holder_finishes_its_shot(at: &dyn Location) {
    let old = open(at, elsewhere("old"));
    assert!(matches!(
        take(&old, &lease::machine("kitchen"), Duration::from_millis(30)),
        Applied::Leased { .. }
    ));
    old.write_blocking(start(4)).unwrap();
    old.write_blocking(journal(4)).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let new = open(at, elsewhere("new"));
    // Opened after the expiry: the open itself recovered it.
    assert_eq!(new.recovered().len(), 1);
    old.write_blocking(start(5)).unwrap();
    let Applied::Leased { recovered, .. } =
        take(&new, &lease::machine("kitchen"), Duration::from_secs(60))
    else {
        panic!("the new holder takes the machine")
    };
    assert_eq!(
        recovered.iter().map(|r| r.key).collect::<Vec<_>>(),
        [5],
        "what the old holder left recording since is finished as the lease changes hands"
    );
}

pub(crate) fn the_active_run_belongs_to_its_process(at: &dyn Location) {
    let gateway = open(at, elsewhere("gateway"));
    let create = |store: &Store| {
        store
            .write_blocking(Write::CreateRun {
                kind: RunKind::Qa,
                machine: None,
                shots: None,
                started_by: "cli".into(),
            })
            .unwrap()
    };
    let Applied::RunCreated { id, .. } = create(&gateway) else {
        panic!("created")
    };
    // The CLI opens the store beside it: the run stays active, and the CLI's run is refused.
    let cli = open(at, Owner::this_process());
    let run = cli.reader().unwrap().run(id).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Queued);
    assert_eq!(run.started_by.as_deref(), Some("cli"));
    assert_eq!(create(&cli), Applied::RunBusy { active: id });
    // The gateway's lease runs out (it died): the next run interrupts the orphan.
    gateway
        .write_blocking(Write::Lease {
            name: lease::RUNS.into(),
            ttl: Duration::ZERO,
        })
        .unwrap();
    let Applied::RunCreated { id: next, .. } = create(&cli) else {
        panic!("created")
    };
    let reader = cli.reader().unwrap();
    assert_eq!(
        reader.run(id).unwrap().unwrap().status,
        RunStatus::Interrupted
    );
    assert_eq!(reader.active_run().unwrap().unwrap().id, next);
}

pub(crate) fn machines_number_their_shots_apart(at: &dyn Location) {
    let a = open(at, elsewhere("a"));
    let b = open(at, elsewhere("b"));
    let first = |applied: Applied| match applied {
        Applied::Leased {
            first_key: Some(k), ..
        } => k,
        other => panic!("{other:?}"),
    };
    let ka = first(take(&a, &lease::machine("a"), Duration::from_secs(60)));
    let kb = first(take(&b, &lease::machine("b"), Duration::from_secs(60)));
    assert_ne!(
        ka >> lease::SLOT_BITS,
        kb >> lease::SLOT_BITS,
        "each machine numbers its shots in a slot of its own"
    );
    assert!(
        matches!(
            take(&a, lease::RUNS, Duration::from_secs(1)),
            Applied::Leased {
                first_key: None,
                ..
            }
        ),
        "only machine leases number shots"
    );
    let mut shot = start(ka);
    if let Write::StartShot { machine, .. } = &mut shot {
        *machine = "a".into();
    }
    a.write_blocking(shot).unwrap();
    a.write_blocking(Write::Release {
        name: lease::machine("a"),
    })
    .unwrap();
    // Whoever records machine a next goes on above its last key, in the same slot.
    let c = open(at, elsewhere("c"));
    assert_eq!(
        first(take(&c, &lease::machine("a"), Duration::from_secs(60))),
        ka + 1
    );
}

pub(crate) fn a_live_holder_on_this_host_keeps_its_lease_past_its_expiry(at: &dyn Location) {
    // A process of this host (this one, under another id) that stalled past its lease.
    let stalled = Owner {
        id: "stalled".into(),
        ..Owner::this_process()
    };
    let holder = open(at, stalled);
    assert!(matches!(
        take(&holder, "machine:x", Duration::ZERO),
        Applied::Leased { .. }
    ));
    let other = open(at, Owner::this_process());
    assert!(
        matches!(
            take(&other, "machine:x", Duration::from_secs(60)),
            Applied::LeaseHeld(_)
        ),
        "alive on this host: still the holder"
    );
    // From another host only the expiry can be seen.
    let far = open(at, elsewhere("far"));
    assert!(matches!(
        take(&far, "machine:x", Duration::from_secs(60)),
        Applied::Leased { .. }
    ));
}

pub(crate) fn a_renewal_never_takes_a_lease_anew(at: &dyn Location) {
    let a = open(at, elsewhere("a"));
    let b = open(at, elsewhere("b"));
    let Applied::Leased { token, .. } = take(&a, "machine:k", Duration::from_secs(60)) else {
        panic!("a takes it")
    };
    let renew = |store: &Store| {
        store.write_blocking(Write::Renew {
            name: "machine:k".into(),
            token,
            ttl: Duration::from_secs(60),
        })
    };
    assert!(renew(&a).is_ok());
    a.write_blocking(Write::Release {
        name: "machine:k".into(),
    })
    .unwrap();
    assert!(matches!(
        take(&b, "machine:k", Duration::from_secs(60)),
        Applied::Leased { .. }
    ));
    b.write_blocking(Write::Release {
        name: "machine:k".into(),
    })
    .unwrap();
    // Free again, but a took it before b did: a's renewal is refused, and takes nothing.
    let lost = renew(&a).unwrap_err();
    assert!(
        matches!(&lost, StorageError::LeaseLost { holder: Some(h), .. } if h.owner == "b"),
        "{lost}"
    );
    assert!(matches!(
        take(&b, "machine:k", Duration::from_secs(60)),
        Applied::Leased { .. }
    ));
}

/// A run whose process died is ended by another process sharing the store, without that one
/// starting a run: what every gateway does now and then (`Write::InterruptOrphans`).
pub(crate) fn a_dead_processs_run_is_interrupted_by_another(at: &dyn Location) {
    let gateway = open(at, elsewhere("gateway"));
    let Applied::RunCreated { id, .. } = gateway
        .write_blocking(Write::CreateRun {
            kind: RunKind::Qa,
            machine: None,
            shots: None,
            started_by: "api".into(),
        })
        .unwrap()
    else {
        panic!("created")
    };
    let other = open(at, Owner::this_process());
    assert_eq!(
        other.write_blocking(Write::InterruptOrphans).unwrap(),
        Applied::Interrupted(Vec::new()),
        "a live holder's run stays active"
    );
    assert_eq!(
        other.reader().unwrap().active_run().unwrap().map(|r| r.id),
        Some(id)
    );
    gateway
        .write_blocking(Write::Lease {
            name: lease::RUNS.into(),
            ttl: Duration::ZERO,
        })
        .unwrap();
    assert_eq!(
        other.write_blocking(Write::InterruptOrphans).unwrap(),
        Applied::Interrupted(vec![id])
    );
    let run = other.reader().unwrap().run(id).unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Interrupted);
    assert!(other.reader().unwrap().active_run().unwrap().is_none());
}
