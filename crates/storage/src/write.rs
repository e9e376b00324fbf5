//! The writer thread and what each write does in SQL.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};

use crate::lease::{self, Owner, Taken};
use crate::{Applied, StorageError, Upserted, Write, schema, sql};
use recorder_core::{EndReason, ShotKey, ShotStatus};

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The read-write connection: WAL, `synchronous=FULL`, foreign keys, busy timeout, migrated.
pub(crate) fn open_writer(path: &Path) -> Result<Connection, StorageError> {
    let open = |source| StorageError::Open {
        path: path.to_owned(),
        source,
    };
    let mut conn = Connection::open(path).map_err(open)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(open)?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(%mode, path = %path.display(), "SQLite refused WAL mode; writes are slower");
    }
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA foreign_keys = ON;
         PRAGMA busy_timeout = 5000;",
    )
    .map_err(open)?;
    // Two processes opening a new file at once both see version 0; the one that migrates
    // second fails on tables the first just made. Read the version again and go on: what is
    // left to do (often nothing) is done on the next try.
    let mut tries = 0;
    loop {
        match schema::migrations().to_latest(&mut conn) {
            Ok(()) => break,
            Err(_) if tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20 + 10 * tries));
            }
            Err(source) => {
                return Err(StorageError::Migrate {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
    Ok(conn)
}

/// Finishes what a stopped process left open and no live process holds: live shots still
/// recording become partial, and runs still active become interrupted (their ids are the
/// second part of the answer).
pub(crate) fn recover(
    conn: &mut Connection,
    me: &Owner,
) -> Result<(Vec<crate::Recovered>, Vec<i64>), StorageError> {
    let what = "recovering unfinished shots";
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sql(what))?;
    let now = unix_now();
    let machines: Vec<String> = tx
        .prepare("SELECT DISTINCT machine FROM shots WHERE status = 'recording'")
        .map_err(sql(what))?
        .query_map([], |r| r.get(0))
        .map_err(sql(what))?
        .collect::<Result<_, _>>()
        .map_err(sql(what))?;
    let mut recovered = Vec::new();
    for machine in machines {
        if !lease::held_by_other(&tx, &lease::machine(&machine), me, now)? {
            recovered.extend(finish_recording(&tx, &machine, now)?);
        }
    }
    recovered.sort_by_key(|r| r.key);
    let interrupted = crate::runs::interrupt_orphans(&tx, me, now)?;
    tx.commit().map_err(sql(what))?;
    Ok((recovered, interrupted))
}

/// Finishes `machine`'s live shots still recording as partial (`end_reason = crash`); returns
/// them.
fn finish_recording(
    tx: &Connection,
    machine: &str,
    now: f64,
) -> Result<Vec<crate::Recovered>, StorageError> {
    let what = "recovering unfinished shots";
    let mut stmt = tx
        .prepare(
            "UPDATE shots SET status = 'partial', end_reason = 'crash', updated_at = ?1
             WHERE status = 'recording' AND machine = ?2
             RETURNING recording_key, id, sample_count, key, time",
        )
        .map_err(sql(what))?;
    let rows = stmt
        .query_map(params![now, machine], |r| {
            Ok((
                r.get::<_, Option<i64>>(0)?,
                r.get::<_, Option<String>>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, f64>(4)?,
            ))
        })
        .map_err(sql(what))?;
    let mut recovered = Vec::new();
    let mut cut = Vec::new();
    for row in rows {
        let (key, id, samples, row_key, started_unix_s) = row.map_err(sql(what))?;
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
    drop(stmt);
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

/// The SQLite writer: the read-write connection, and the process it writes for (leases).
pub(crate) struct SqliteWriter {
    pub(crate) conn: Connection,
    pub(crate) me: Owner,
}

impl crate::Writer for SqliteWriter {
    fn apply(&mut self, writes: &[&Write]) -> Vec<Result<Applied, StorageError>> {
        apply_batch(&mut self.conn, writes, &self.me)
    }

    fn close(&mut self) {
        if let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);") {
            tracing::warn!("checkpoint on close failed: {e}");
        }
    }
}

fn apply_batch(
    conn: &mut Connection,
    jobs: &[&Write],
    me: &Owner,
) -> Vec<Result<Applied, StorageError>> {
    let mut tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let e = e.to_string();
            return jobs
                .iter()
                .map(|_| Err(sql("starting a write transaction")(text_error(&e))))
                .collect();
        }
    };
    let mut results = Vec::with_capacity(jobs.len());
    for job in jobs {
        let result = match tx.savepoint() {
            Ok(sp) => match apply(&sp, job, me) {
                Ok(applied) => sp.commit().map(|()| applied).map_err(sql("saving a write")),
                // The savepoint rolls back when dropped: this write alone is undone.
                Err(e) => Err(e),
            },
            Err(e) => Err(sql("opening a savepoint")(e)),
        };
        if let Err(e) = &result {
            tracing::error!("a database write failed and was not applied: {e}");
        }
        results.push(result);
    }
    if let Err(e) = tx.commit() {
        tracing::error!(
            "committing {} write(s) failed, none of them is stored: {e}",
            jobs.len()
        );
        let e = e.to_string();
        return jobs
            .iter()
            .map(|_| Err(sql("committing")(text_error(&e))))
            .collect();
    }
    results
}

/// The same failure for every caller of a batch (rusqlite errors are not `Clone`).
fn text_error(message: &str) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
        Some(message.to_owned()),
    )
}

/// The row of a live shot: `(key, source is history, status)`.
fn live_row(tx: &Connection, key: ShotKey) -> Result<Option<(i64, bool, String)>, StorageError> {
    tx.query_row(
        "SELECT key, source = 'history', status FROM shots WHERE recording_key = ?1",
        [key as i64],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .optional()
    .map_err(sql("finding a live shot"))
}

fn apply(tx: &Connection, write: &Write, me: &Owner) -> Result<Applied, StorageError> {
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
                    start.profile_name,
                    start.profile_id,
                    unix_now()
                ],
            )
            .map_err(sql("starting a shot"))?;
        }
        Write::Journal { key, samples } => {
            let Some((row, history, status)) = live_row(tx, *key)? else {
                return Err(sql("journaling samples")(
                    rusqlite::Error::QueryReturnedNoRows,
                ));
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
        } => {
            let Some((row, history, _)) = live_row(tx, *key)? else {
                return Ok(Applied::Done);
            };
            if history {
                return Ok(Applied::Done);
            }
            let other: Option<i64> = tx
                .query_row("SELECT key FROM shots WHERE id = ?1", [id], |r| r.get(0))
                .optional()
                .map_err(sql("identifying a shot"))?;
            match other {
                Some(other) if other != row => {
                    let other_is_history: bool = tx
                        .query_row(
                            "SELECT source = 'history' FROM shots WHERE key = ?1",
                            [other],
                            |r| r.get(0),
                        )
                        .map_err(sql("identifying a shot"))?;
                    if other_is_history {
                        // History got there first: it wins, and takes the recorder's key so
                        // later live writes for this shot find it and leave it alone.
                        tx.execute("DELETE FROM shots WHERE key = ?1", [row])
                            .map_err(sql("identifying a shot"))?;
                    } else {
                        // An earlier live copy of the same shot (cut by a crash or a
                        // disconnect): this recording goes on in it.
                        move_samples(tx, row, other)?;
                        crate::outbox::resumed(tx, other)?;
                        tx.execute("DELETE FROM shots WHERE key = ?1", [row])
                            .map_err(sql("identifying a shot"))?;
                        tx.execute(
                            "UPDATE shots SET status = 'recording', end_reason = NULL WHERE key = ?1",
                            [other],
                        )
                        .map_err(sql("identifying a shot"))?;
                    }
                    tx.execute(
                        "UPDATE shots SET recording_key = ?1 WHERE key = ?2",
                        params![*key as i64, other],
                    )
                    .map_err(sql("identifying a shot"))?;
                }
                _ => {
                    tx.execute(
                        "UPDATE shots SET id = ?1, time = ?2, updated_at = ?3 WHERE key = ?4",
                        params![id, started_unix_s, unix_now(), row],
                    )
                    .map_err(sql("identifying a shot"))?;
                }
            }
        }
        Write::Merge { from, into } => {
            let (Some((from_row, _, _)), Some((into_row, into_history, _))) =
                (live_row(tx, *from)?, live_row(tx, *into)?)
            else {
                return Ok(Applied::Done);
            };
            if into_history {
                tx.execute("DELETE FROM shots WHERE key = ?1", [from_row])
                    .map_err(sql("merging shots"))?;
                return Ok(Applied::Done);
            }
            move_samples(tx, from_row, into_row)?;
            crate::outbox::resumed(tx, into_row)?;
            tx.execute("DELETE FROM shots WHERE key = ?1", [from_row])
                .map_err(sql("merging shots"))?;
            tx.execute(
                "UPDATE shots SET status = 'recording', end_reason = NULL, updated_at = ?1,
                 sample_count = (SELECT count(*) FROM samples WHERE shot_key = ?2)
                 WHERE key = ?2",
                params![unix_now(), into_row],
            )
            .map_err(sql("merging shots"))?;
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
                [*key as i64],
            )
            .map_err(sql("discarding a shot"))?;
        }
        Write::UpsertHistory { machine, entry } => {
            return upsert_history(tx, machine, entry).map(Applied::History);
        }
    }
    Ok(Applied::Done)
}

/// Appends the samples of shot row `from` to row `into`, in order, and recounts `into`.
fn move_samples(tx: &Connection, from: i64, into: i64) -> Result<(), StorageError> {
    let what = "moving samples between shots";
    let offset: i64 = tx
        .query_row(
            "SELECT coalesce(max(seq) + 1, 0) FROM samples WHERE shot_key = ?1",
            [into],
            |r| r.get(0),
        )
        .map_err(sql(what))?;
    tx.execute(
        "UPDATE samples SET shot_key = ?1, seq = seq + ?2 WHERE shot_key = ?3",
        params![into, offset, from],
    )
    .map_err(sql(what))?;
    tx.execute(
        "UPDATE shots SET sample_count = (SELECT count(*) FROM samples WHERE shot_key = ?1)
         WHERE key = ?1",
        [into],
    )
    .map_err(sql(what))?;
    Ok(())
}

fn insert_samples(
    tx: &Connection,
    row: i64,
    samples: &[meticulous::Sample],
) -> Result<(), StorageError> {
    let next: i64 = tx
        .query_row(
            "SELECT coalesce(max(seq) + 1, 0) FROM samples WHERE shot_key = ?1",
            [row],
            |r| r.get(0),
        )
        .map_err(sql("storing samples"))?;
    let mut insert = tx
        .prepare_cached("INSERT INTO samples (shot_key, seq, sample) VALUES (?1, ?2, ?3)")
        .map_err(sql("storing samples"))?;
    let mut text = String::new();
    for (i, sample) in samples.iter().enumerate() {
        text.clear();
        // Writing JSON into a String cannot fail for these plain types.
        if let Ok(json) = serde_json::to_string(sample) {
            text.push_str(&json);
        }
        insert
            .execute(params![row, next + i as i64, text])
            .map_err(sql("storing samples"))?;
    }
    tx.execute(
        "UPDATE shots SET sample_count = sample_count + ?1 WHERE key = ?2",
        params![samples.len() as i64, row],
    )
    .map_err(sql("storing samples"))?;
    Ok(())
}

fn upsert_history(
    tx: &Connection,
    machine: &str,
    entry: &meticulous::Entry,
) -> Result<Upserted, StorageError> {
    let existing: Option<(i64, bool, i64, Option<i64>)> = tx
        .query_row(
            "SELECT key, source = 'history', sample_count, db_key FROM shots WHERE id = ?1",
            [&entry.id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()
        .map_err(sql("storing a history shot"))?;
    let profile = entry.profile.as_ref().map(|p| p.get().to_owned());
    let count = entry.data.len() as i64;
    let row = match existing {
        Some((_, true, stored, db_key)) if stored == count && db_key == entry.db_key => {
            return Ok(Upserted::Unchanged);
        }
        Some((row, _, _, _)) => {
            tx.execute(
                "UPDATE shots SET machine = ?1, time = ?2, name = ?3, profile = ?4,
                 source = 'history', status = 'complete', end_reason = NULL, sample_count = 0,
                 db_key = ?5, file = ?6, updated_at = ?7
                 WHERE key = ?8",
                params![
                    machine,
                    entry.time,
                    entry.name,
                    profile,
                    entry.db_key,
                    entry.file,
                    unix_now(),
                    row
                ],
            )
            .map_err(sql("storing a history shot"))?;
            tx.execute("DELETE FROM samples WHERE shot_key = ?1", [row])
                .map_err(sql("storing a history shot"))?;
            row
        }
        None => {
            tx.execute(
                "INSERT INTO shots (machine, id, time, name, profile, source, status, db_key, file, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'history', 'complete', ?6, ?7, ?8)",
                params![
                    machine,
                    entry.id,
                    entry.time,
                    entry.name,
                    profile,
                    entry.db_key,
                    entry.file,
                    unix_now()
                ],
            )
            .map_err(sql("storing a history shot"))?;
            tx.last_insert_rowid()
        }
    };
    insert_samples(tx, row, &entry.data)?;
    Ok(if existing.is_some() {
        Upserted::Replaced
    } else {
        Upserted::Inserted
    })
}
