//! What each write does in SQL, once for every engine ([`crate::db::Db`]), and the batch
//! around them: one write transaction, a savepoint per write, answers after the commit.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::db::{Db, DbError, params};
use crate::lease::{self, Owner, Taken};
use crate::{Applied, CommitFault, StorageError, Upserted, Write, sql};
use recorder_core::{EndReason, ShotKey, ShotStatus};

pub(crate) fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// Finishes what a stopped process left open and no live process holds: live shots still
/// recording become partial, and runs still active become interrupted (their ids are the
/// second part of the answer).
pub(crate) fn recover(
    db: &mut dyn Db,
    me: &Owner,
) -> Result<(Vec<crate::Recovered>, Vec<i64>), StorageError> {
    let what = "recovering unfinished shots";
    db.begin_write().map_err(sql(what))?;
    let result = (|| {
        let now = unix_now();
        let machines: Vec<String> = db
            .query(
                "SELECT DISTINCT machine FROM shots WHERE status = 'recording'",
                params![],
            )
            .and_then(|rows| crate::db::each(rows, |r| r.get(0)))
            .map_err(sql(what))?;
        let mut recovered = Vec::new();
        for machine in machines {
            if !lease::held_by_other(db, &lease::machine(&machine), me, now)? {
                recovered.extend(finish_recording(db, &machine, now)?);
            }
        }
        recovered.sort_by_key(|r| r.key);
        let interrupted = crate::runs::interrupt_orphans(db, me, now)?;
        Ok((recovered, interrupted))
    })();
    match result {
        Ok(done) => {
            db.batch("COMMIT").map_err(sql(what))?;
            Ok(done)
        }
        Err(e) => {
            let _ = db.batch("ROLLBACK");
            Err(e)
        }
    }
}

/// Finishes `machine`'s live shots still recording as partial (`end_reason = crash`); returns
/// them.
fn finish_recording(
    tx: &mut dyn Db,
    machine: &str,
    now: f64,
) -> Result<Vec<crate::Recovered>, StorageError> {
    let what = "recovering unfinished shots";
    let rows = tx
        .query(
            "UPDATE shots SET status = 'partial', end_reason = 'crash', updated_at = ?1
             WHERE status = 'recording' AND machine = ?2
             RETURNING recording_key, id, sample_count, key, time",
            params![now, machine],
        )
        .map_err(sql(what))?;
    let mut recovered = Vec::new();
    let mut cut = Vec::new();
    for r in &rows {
        let read = || -> Result<_, DbError> {
            Ok((
                r.get::<Option<i64>>(0)?,
                r.get::<Option<String>>(1)?,
                r.get::<i64>(2)?,
                r.get::<i64>(3)?,
                r.get::<f64>(4)?,
            ))
        };
        let (key, id, samples, row_key, started_unix_s) = read().map_err(sql(what))?;
        cut.push((row_key, samples));
        if let Some(key) = key {
            recovered.push(crate::Recovered {
                machine: machine.to_owned(),
                key: key as ShotKey,
                id,
                samples: samples.max(0) as usize,
                started_unix_s,
            });
        }
    }
    // Only a shot the recorder would have kept is told about (fewer samples: a flush).
    let kept = recorder_core::Config::default().min_samples as i64;
    for (row_key, samples) in cut {
        if samples >= kept {
            crate::outbox::shot_recovered(tx, row_key, samples, now)?;
        }
    }
    recovered.sort_by_key(|r| r.key);
    Ok(recovered)
}

/// A backend's writer, on any engine: the read-write connection, the process it writes for
/// (leases), and the commit fault of the tests.
pub(crate) struct SqlWriter<D> {
    pub(crate) db: D,
    pub(crate) me: Owner,
    pub(crate) fault: Option<CommitFault>,
    pub(crate) commits: u64,
    /// What closing does (SQLite checkpoints its WAL).
    pub(crate) on_close: Option<&'static str>,
}

impl<D: Db + Send + 'static> crate::Writer for SqlWriter<D> {
    fn apply(&mut self, writes: &[&Write]) -> Vec<Result<Applied, StorageError>> {
        self.commits += 1;
        let refuse = self.fault.as_ref().is_some_and(|f| f(self.commits));
        apply_batch(&mut self.db, writes, &self.me, refuse)
    }

    fn close(&mut self) {
        if let Some(statement) = self.on_close
            && let Err(e) = self.db.batch(statement)
        {
            tracing::warn!("closing the database: {statement} failed: {e}");
        }
    }
}

/// Applies `jobs` in one write transaction, each in a savepoint, and commits (or, `refuse`,
/// fails the commit as a full disk would: the tests' fault).
fn apply_batch(
    db: &mut dyn Db,
    jobs: &[&Write],
    me: &Owner,
    refuse: bool,
) -> Vec<Result<Applied, StorageError>> {
    let all_fail = |what: &'static str, e: &DbError| {
        let e = e.to_string();
        jobs.iter()
            .map(|_| Err(sql(what)(DbError::Batch(e.clone()))))
            .collect()
    };
    if let Err(e) = db.begin_write() {
        let _ = db.batch("ROLLBACK");
        return all_fail("starting a write transaction", &e);
    }
    let mut results = Vec::with_capacity(jobs.len());
    // Each write in a savepoint of its own; the end of one and the start of the next go in
    // one round trip (what a server backend pays per statement).
    let mut opened = db.batch("SAVEPOINT w");
    for (i, job) in jobs.iter().enumerate() {
        let last = i + 1 == jobs.len();
        let result = match opened {
            Ok(()) => match apply(db, job, me) {
                Ok(applied) => {
                    let next = if last {
                        "RELEASE w"
                    } else {
                        "RELEASE w; SAVEPOINT w"
                    };
                    match db.batch(next) {
                        Ok(()) => Ok(applied),
                        Err(e) => {
                            if !last {
                                opened = db.batch("SAVEPOINT w");
                            }
                            Err(sql("saving a write")(e))
                        }
                    }
                }
                Err(e) => {
                    // This write alone is undone.
                    let next = if last {
                        "ROLLBACK TO w; RELEASE w"
                    } else {
                        "ROLLBACK TO w; RELEASE w; SAVEPOINT w"
                    };
                    if let Err(undo) = db.batch(next) {
                        tracing::error!("undoing a failed write failed: {undo}");
                        if !last {
                            opened = db.batch("SAVEPOINT w");
                        }
                    }
                    Err(e)
                }
            },
            Err(e) => {
                let failed = Err(sql("opening a savepoint")(e));
                opened = db.batch("SAVEPOINT w");
                failed
            }
        };
        if let Err(e) = &result {
            tracing::error!("a database write failed and was not applied: {e}");
        }
        results.push(result);
    }
    let committed = if refuse {
        let _ = db.batch("ROLLBACK");
        Err(DbError::Batch(
            "the commit was refused (injected fault: database or disk is full)".into(),
        ))
    } else {
        db.batch("COMMIT")
    };
    if let Err(e) = committed {
        // A failed COMMIT may leave the transaction open (SQLite, busy): close it.
        let _ = db.batch("ROLLBACK");
        tracing::error!(
            "committing {} write(s) failed, none of them is stored: {e}",
            jobs.len()
        );
        return all_fail("committing", &e);
    }
    results
}

/// The row of a live shot: `(key, source is history, status)`.
fn live_row(tx: &mut dyn Db, key: ShotKey) -> Result<Option<(i64, bool, String)>, StorageError> {
    let what = "finding a live shot";
    let row = tx
        .query_opt(
            "SELECT key, source = 'history', status FROM shots WHERE recording_key = ?1",
            params![key as i64],
        )
        .map_err(sql(what))?;
    row.map(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .transpose()
        .map_err(sql(what))
}

fn apply(tx: &mut dyn Db, write: &Write, me: &Owner) -> Result<Applied, StorageError> {
    match write {
        Write::Fenced {
            lease: name,
            token,
            write,
        } => {
            return match lease::check(tx, name, *token, me)? {
                Ok(()) => apply(tx, write, me),
                Err(holder) => Err(StorageError::LeaseLost {
                    lease: name.clone(),
                    holder,
                }),
            };
        }
        Write::Lease { name, ttl } => {
            let now = unix_now();
            return Ok(match lease::take(tx, name, me, ttl.as_secs_f64(), now)? {
                Taken::Refused(holder) => Applied::LeaseHeld(holder),
                Taken::Held { token, new } => {
                    let machine = name.strip_prefix("machine:");
                    let recovered = match machine {
                        Some(machine) if new => finish_recording(tx, machine, now)?,
                        _ => Vec::new(),
                    };
                    let first_key = machine.map(|m| lease::first_key(tx, m)).transpose()?;
                    Applied::Leased {
                        token,
                        recovered,
                        first_key,
                    }
                }
            });
        }
        Write::Renew { name, token, ttl } => {
            return match lease::renew(tx, name, *token, me, ttl.as_secs_f64(), unix_now())? {
                Ok(()) => Ok(Applied::Leased {
                    token: *token,
                    recovered: Vec::new(),
                    first_key: None,
                }),
                Err(holder) => Err(StorageError::LeaseLost {
                    lease: name.clone(),
                    holder,
                }),
            };
        }
        Write::Release { name } => lease::release(tx, name, me)?,
        Write::Expand {
            finished,
            deliveries,
        } => crate::outbox::expand(tx, *finished, deliveries, unix_now())?,
        Write::Delivered { id, analysis } => {
            if !crate::outbox::delivered(tx, *id, unix_now())? {
                return Ok(Applied::AlreadyDone);
            }
            if let Some(a) = analysis {
                crate::runs::store_analysis(tx, a.shot, &a.analyzer, &a.result, unix_now())?;
            }
        }
        Write::DeliveryFailed {
            id,
            error,
            retry_at,
        } => crate::outbox::failed(tx, *id, error, *retry_at, unix_now())?,
        Write::CreateRun {
            kind,
            machine,
            shots,
            started_by,
        } => {
            return crate::runs::create(
                tx,
                crate::runs::NewRun {
                    kind: *kind,
                    machine: machine.as_deref(),
                    shots: shots.as_deref(),
                    started_by,
                },
                me,
                unix_now(),
            );
        }
        Write::RunProgress(progress) => crate::runs::progress(tx, progress, me, unix_now())?,
        Write::InterruptOrphans => {
            return crate::runs::interrupt_orphans(tx, me, unix_now()).map(Applied::Interrupted);
        }
        Write::QaResults(shots) => {
            for (shot, results) in shots {
                crate::runs::store_qa(tx, *shot, results, unix_now())?;
            }
        }
        Write::Analyses(analyses) => {
            for a in analyses {
                crate::runs::store_analysis(tx, a.shot, &a.analyzer, &a.result, unix_now())?;
            }
        }
        Write::StartShot { machine, start } => {
            tx.execute(
                "INSERT INTO shots (machine, recording_key, time, name, profile_id, source, status, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'live', 'recording', ?6)
                 ON CONFLICT (recording_key) DO NOTHING",
                params![
                    machine,
                    start.key as i64,
                    start.started_unix_s,
                    &start.profile_name,
                    &start.profile_id,
                    unix_now()
                ],
            )
            .map_err(sql("starting a shot"))?;
        }
        Write::Journal { key, samples } => {
            let Some((row, history, status)) = live_row(tx, *key)? else {
                return Err(sql("journaling samples")(DbError::NoRow));
            };
            if history || status != "recording" {
                // History replaced it, or it already ended: nothing to add.
                return Ok(Applied::Done);
            }
            insert_samples(tx, row, samples)?;
        }
        Write::Identify {
            key,
            id,
            started_unix_s,
        } => identify(tx, *key, id, *started_unix_s)?,
        Write::Merge { from, into } => {
            let what = "merging shots";
            let (Some((from_row, _, _)), Some((into_row, into_history, _))) =
                (live_row(tx, *from)?, live_row(tx, *into)?)
            else {
                return Ok(Applied::Done);
            };
            if into_history {
                tx.execute("DELETE FROM shots WHERE key = ?1", params![from_row])
                    .map_err(sql(what))?;
                return Ok(Applied::Done);
            }
            move_samples(tx, from_row, into_row)?;
            crate::outbox::resumed(tx, into_row)?;
            tx.execute("DELETE FROM shots WHERE key = ?1", params![from_row])
                .map_err(sql(what))?;
            tx.execute(
                "UPDATE shots SET status = 'recording', end_reason = NULL, updated_at = ?1,
                 sample_count = (SELECT count(*) FROM samples WHERE shot_key = ?2)
                 WHERE key = ?2",
                params![unix_now(), into_row],
            )
            .map_err(sql(what))?;
        }
        Write::Finish(shot) => {
            let status = match shot.status {
                ShotStatus::Complete => "complete",
                ShotStatus::Partial => "partial",
            };
            let reason = match shot.reason {
                EndReason::Finished => "finished",
                EndReason::MachineIdle => "machine_idle",
                EndReason::Stalled => "stalled",
                EndReason::Disconnected => "disconnected",
            };
            tx.execute(
                "UPDATE shots SET status = ?1, end_reason = ?2, updated_at = ?3,
                 sample_count = (SELECT count(*) FROM samples WHERE shot_key = shots.key)
                 WHERE recording_key = ?4 AND source = 'live'",
                params![status, reason, unix_now(), shot.key as i64],
            )
            .map_err(sql("finishing a shot"))?;
            crate::outbox::shot_finished(tx, shot.key as i64, unix_now())?;
        }
        Write::Discard { key } => {
            tx.execute(
                "DELETE FROM shots WHERE recording_key = ?1 AND source = 'live'",
                params![*key as i64],
            )
            .map_err(sql("discarding a shot"))?;
        }
        Write::UpsertHistory { machine, entry } => {
            return upsert_history(tx, machine, entry).map(Applied::History);
        }
    }
    Ok(Applied::Done)
}

/// The machine's UUID and start time for live shot `key`; history that holds the shot wins,
/// and an earlier live copy of it takes this recording in.
fn identify(
    tx: &mut dyn Db,
    key: ShotKey,
    id: &str,
    started_unix_s: f64,
) -> Result<(), StorageError> {
    let what = "identifying a shot";
    let Some((row, history, _)) = live_row(tx, key)? else {
        return Ok(());
    };
    if history {
        return Ok(());
    }
    let other: Option<(i64, bool)> = tx
        .query_opt(
            "SELECT key, source = 'history' FROM shots WHERE id = ?1",
            params![id],
        )
        .and_then(|r| r.map(|r| Ok((r.get(0)?, r.get(1)?))).transpose())
        .map_err(sql(what))?;
    match other {
        Some((other, other_is_history)) if other != row => {
            if other_is_history {
                // History got there first: it wins, and takes the recorder's key so later
                // live writes for this shot find it and leave it alone.
                tx.execute("DELETE FROM shots WHERE key = ?1", params![row])
                    .map_err(sql(what))?;
            } else {
                // An earlier live copy of the same shot (cut by a crash or a disconnect):
                // this recording goes on in it.
                move_samples(tx, row, other)?;
                crate::outbox::resumed(tx, other)?;
                tx.execute("DELETE FROM shots WHERE key = ?1", params![row])
                    .map_err(sql(what))?;
                tx.execute(
                    "UPDATE shots SET status = 'recording', end_reason = NULL WHERE key = ?1",
                    params![other],
                )
                .map_err(sql(what))?;
            }
            tx.execute(
                "UPDATE shots SET recording_key = ?1 WHERE key = ?2",
                params![key as i64, other],
            )
            .map_err(sql(what))?;
        }
        _ => {
            tx.execute(
                "UPDATE shots SET id = ?1, time = ?2, updated_at = ?3 WHERE key = ?4",
                params![id, started_unix_s, unix_now(), row],
            )
            .map_err(sql(what))?;
        }
    }
    Ok(())
}

/// The next sequence number of shot row `row`.
fn next_seq(tx: &mut dyn Db, row: i64) -> Result<i64, DbError> {
    tx.query_one(
        "SELECT coalesce(max(seq) + 1, 0) FROM samples WHERE shot_key = ?1",
        params![row],
    )?
    .get(0)
}

/// Appends the samples of shot row `from` to row `into`, in order, and recounts `into`.
fn move_samples(tx: &mut dyn Db, from: i64, into: i64) -> Result<(), StorageError> {
    let what = "moving samples between shots";
    let offset = next_seq(tx, into).map_err(sql(what))?;
    tx.execute(
        "UPDATE samples SET shot_key = ?1, seq = seq + ?2 WHERE shot_key = ?3",
        params![into, offset, from],
    )
    .map_err(sql(what))?;
    tx.execute(
        "UPDATE shots SET sample_count = (SELECT count(*) FROM samples WHERE shot_key = ?1)
         WHERE key = ?1",
        params![into],
    )
    .map_err(sql(what))?;
    Ok(())
}

/// Appends `samples` to shot row `row` and counts them.
fn insert_samples(
    tx: &mut dyn Db,
    row: i64,
    samples: &[meticulous::Sample],
) -> Result<(), StorageError> {
    let what = "storing samples";
    let next = next_seq(tx, row).map_err(sql(what))?;
    tx.append_samples(row, next, &texts(samples))
        .map_err(sql(what))?;
    tx.execute(
        "UPDATE shots SET sample_count = sample_count + ?1 WHERE key = ?2",
        params![samples.len() as i64, row],
    )
    .map_err(sql(what))?;
    Ok(())
}

/// The samples as JSON text (writing these plain types into a String cannot fail).
fn texts(samples: &[meticulous::Sample]) -> Vec<String> {
    samples
        .iter()
        .map(|s| serde_json::to_string(s).unwrap_or_default())
        .collect()
}

fn upsert_history(
    tx: &mut dyn Db,
    machine: &str,
    entry: &meticulous::Entry,
) -> Result<Upserted, StorageError> {
    let what = "storing a history shot";
    let profile = entry.profile.as_ref().map(|p| p.get());
    let count = entry.data.len() as i64;
    // A shot the store does not have (the common case of an import): one statement makes
    // its row, counted, and one appends its samples.
    let inserted: Option<i64> = tx
        .query_opt(
            "INSERT INTO shots (machine, id, time, name, profile, source, status, db_key, file,
                                sample_count, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'history', 'complete', ?6, ?7, ?8, ?9)
             ON CONFLICT (id) DO NOTHING
             RETURNING key",
            params![
                machine,
                &entry.id,
                entry.time,
                &entry.name,
                profile,
                entry.db_key,
                &entry.file,
                count,
                unix_now()
            ],
        )
        .and_then(|r| r.map(|r| r.get(0)).transpose())
        .map_err(sql(what))?;
    if let Some(row) = inserted {
        tx.append_samples(row, 0, &texts(&entry.data))
            .map_err(sql(what))?;
        return Ok(Upserted::Inserted);
    }
    let (row, history, stored, db_key): (i64, bool, i64, Option<i64>) = tx
        .query_one(
            "SELECT key, source = 'history', sample_count, db_key FROM shots WHERE id = ?1",
            params![&entry.id],
        )
        .and_then(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .map_err(sql(what))?;
    if history && stored == count && db_key == entry.db_key {
        return Ok(Upserted::Unchanged);
    }
    // The live copy (or an older history copy) gives way, in place: its key stays.
    tx.execute(
        "UPDATE shots SET machine = ?1, time = ?2, name = ?3, profile = ?4,
         source = 'history', status = 'complete', end_reason = NULL, sample_count = ?5,
         db_key = ?6, file = ?7, updated_at = ?8
         WHERE key = ?9",
        params![
            machine,
            entry.time,
            &entry.name,
            profile,
            count,
            entry.db_key,
            &entry.file,
            unix_now(),
            row
        ],
    )
    .map_err(sql(what))?;
    tx.execute("DELETE FROM samples WHERE shot_key = ?1", params![row])
        .map_err(sql(what))?;
    tx.append_samples(row, 0, &texts(&entry.data))
        .map_err(sql(what))?;
    Ok(Upserted::Replaced)
}
