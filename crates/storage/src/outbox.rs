//! The durable outbox: the work after every finished live shot (its webhook deliveries and
//! external analyzers), kept in the store so that it survives a crash and is done once.
//!
//! 1. Every `Finish` of a live shot records a [`Finished`] event in the same transaction: a
//!    crash between the shot's end and its deliveries cannot lose them. A shot a crash cut,
//!    finished as partial by recovery, gets one too, due after [`RECOVERED_GRACE_S`]: when the
//!    next recorder resumes the shot (a merge into it), that event is void and the resumed end
//!    is the one delivered, so a crash mid-shot still gives one delivery.
//! 2. The process that delivers (it holds the [`crate::lease::OUTBOX`] lease) *expands* each
//!    event into one [`Delivery`] per target it is configured with ([`Write::Expand`]), each
//!    under its idempotency key, unique per target: expanding twice changes nothing.
//! 3. It tries each due delivery and records the outcome ([`Write::Delivered`], with an
//!    analyzer's answer in the same transaction, or [`Write::DeliveryFailed`] with the time of
//!    the next try, or none: failed for good).
//!
//! Delivered and failed rows, and expanded events, are kept 30 days.
//!
//! [`Write::Expand`]: crate::Write::Expand
//! [`Write::Delivered`]: crate::Write::Delivered
//! [`Write::DeliveryFailed`]: crate::Write::DeliveryFailed

use serde::Serialize;

use crate::db::{Db, each, params};
use crate::{StorageError, sql};

/// How long delivered and failed rows are kept, seconds.
const KEEP_S: f64 = 30.0 * 24.0 * 3600.0;

/// How long the end of a shot a crash cut waits before its deliveries are planned, seconds: the
/// next recorder of the machine resumes the shot within this if the machine is still in it,
/// and then only the resumed end is delivered.
pub const RECOVERED_GRACE_S: f64 = 30.0;

/// A live shot that ended, whose deliveries are not planned yet.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finished {
    /// The event's id.
    pub id: i64,
    /// The shot (the store's key).
    pub shot_key: i64,
    /// Its samples when it ended (a shot cut by a disconnect and resumed ends twice, with
    /// different counts: two events, two deliveries).
    pub samples: i64,
    /// When it ended, Unix seconds.
    pub at: f64,
}

/// One delivery to make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewDelivery {
    /// Who gets it: `webhook:<name>` or `analyzer:<name>`.
    pub target: String,
    /// Its idempotency key, the same on every try.
    pub delivery: String,
}

/// A delivery due or waiting.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    /// Its id.
    pub id: i64,
    /// See [`NewDelivery::target`].
    pub target: String,
    /// See [`NewDelivery::delivery`].
    pub delivery: String,
    /// The shot.
    pub shot_key: i64,
    /// Tries so far.
    pub attempts: u32,
    /// When it is due, Unix seconds.
    pub next_at: f64,
}

/// Records that live shot `recording_key` ended (within the `Finish` write).
pub(crate) fn shot_finished(
    tx: &mut dyn Db,
    recording_key: i64,
    now: f64,
) -> Result<(), StorageError> {
    tx.execute(
        "INSERT INTO finished (shot_key, samples, at, due_at)
         SELECT key, sample_count, ?2, ?2 FROM shots WHERE recording_key = ?1",
        params![recording_key, now],
    )
    .map_err(sql("recording a finished shot for its deliveries"))?;
    Ok(())
}

/// Records that shot `shot_key`, which a crash cut, was finished by recovery: planned after
/// [`RECOVERED_GRACE_S`] unless its recording is resumed first ([`resumed`]).
pub(crate) fn shot_recovered(
    tx: &mut dyn Db,
    shot_key: i64,
    samples: i64,
    now: f64,
) -> Result<(), StorageError> {
    tx.execute(
        "INSERT INTO finished (shot_key, samples, at, due_at) VALUES (?1, ?2, ?3, ?4)",
        params![shot_key, samples, now, now + RECOVERED_GRACE_S],
    )
    .map_err(sql("recording a recovered shot for its deliveries"))?;
    Ok(())
}

/// Shot `shot_key` is being recorded again (a merge): its ends not planned yet are void; its
/// next end is the one delivered.
pub(crate) fn resumed(tx: &mut dyn Db, shot_key: i64) -> Result<(), StorageError> {
    tx.execute(
        "DELETE FROM finished WHERE shot_key = ?1 AND expanded = 0",
        params![shot_key],
    )
    .map_err(sql("resuming a shot's deliveries"))?;
    Ok(())
}

/// Plans event `finished`'s deliveries and marks it expanded; prunes old rows.
pub(crate) fn expand(
    tx: &mut dyn Db,
    finished: i64,
    deliveries: &[NewDelivery],
    now: f64,
) -> Result<(), StorageError> {
    let what = "planning a finished shot's deliveries";
    let shot: Option<i64> = tx
        .query_opt(
            "UPDATE finished SET expanded = 1 WHERE id = ?1 AND expanded = 0 RETURNING shot_key",
            params![finished],
        )
        .and_then(|r| r.map(|r| r.get(0)).transpose())
        .map_err(sql(what))?;
    if let Some(shot) = shot {
        for d in deliveries {
            tx.execute(
                "INSERT INTO outbox (target, delivery, shot_key, next_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?4) ON CONFLICT (target, delivery) DO NOTHING",
                params![&d.target, &d.delivery, shot, now],
            )
            .map_err(sql(what))?;
        }
    }
    tx.execute(
        "DELETE FROM outbox WHERE status != 'pending' AND done_at < ?1",
        params![now - KEEP_S],
    )
    .map_err(sql("pruning old deliveries"))?;
    tx.execute(
        "DELETE FROM finished WHERE expanded = 1 AND at < ?1",
        params![now - KEEP_S],
    )
    .map_err(sql("pruning old deliveries"))?;
    Ok(())
}

/// Delivery `id` was accepted. Ignored unless it is pending (a second answer changes nothing).
pub(crate) fn delivered(tx: &mut dyn Db, id: i64, now: f64) -> Result<bool, StorageError> {
    let changed = tx
        .execute(
            "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, done_at = ?2,
             last_error = NULL WHERE id = ?1 AND status = 'pending'",
            params![id, now],
        )
        .map_err(sql("recording a delivery"))?;
    Ok(changed == 1)
}

/// Delivery `id` failed: due again at `retry_at`, or failed for good.
pub(crate) fn failed(
    tx: &mut dyn Db,
    id: i64,
    error: &str,
    retry_at: Option<f64>,
    now: f64,
) -> Result<(), StorageError> {
    let what = "recording a failed delivery";
    match retry_at {
        Some(at) => tx.execute(
            "UPDATE outbox SET attempts = attempts + 1, next_at = ?2, last_error = ?3
             WHERE id = ?1 AND status = 'pending'",
            params![id, at, error],
        ),
        None => tx.execute(
            "UPDATE outbox SET status = 'failed', attempts = attempts + 1, done_at = ?2,
             last_error = ?3 WHERE id = ?1 AND status = 'pending'",
            params![id, now, error],
        ),
    }
    .map_err(sql(what))?;
    Ok(())
}

/// Events not expanded yet and due by `due_by` (all, when `None`), oldest first.
pub(crate) fn unexpanded(
    conn: &mut dyn Db,
    due_by: Option<f64>,
    limit: usize,
) -> Result<Vec<Finished>, StorageError> {
    conn.query(
        "SELECT id, shot_key, samples, at FROM finished WHERE expanded = 0 AND due_at <= ?1
         ORDER BY id LIMIT ?2",
        params![due_by.unwrap_or(f64::MAX), limit as i64],
    )
    .and_then(|rows| {
        each(rows, |r| {
            Ok(Finished {
                id: r.get(0)?,
                shot_key: r.get(1)?,
                samples: r.get(2)?,
                at: r.get(3)?,
            })
        })
    })
    .map_err(sql("reading finished shots"))
}

/// Pending deliveries to `target` (or all), soonest first: those due by `due_by` when it is
/// given, else all.
pub(crate) fn pending(
    conn: &mut dyn Db,
    target: Option<&str>,
    due_by: Option<f64>,
    limit: usize,
) -> Result<Vec<Delivery>, StorageError> {
    conn.query(
        "SELECT id, target, delivery, shot_key, attempts, next_at FROM outbox
         WHERE status = 'pending' AND next_at <= ?1 AND (?2 IS NULL OR target = ?2)
         ORDER BY next_at, id LIMIT ?3",
        params![due_by.unwrap_or(f64::MAX), target, limit as i64],
    )
    .and_then(|rows| {
        each(rows, |r| {
            Ok(Delivery {
                id: r.get(0)?,
                target: r.get(1)?,
                delivery: r.get(2)?,
                shot_key: r.get(3)?,
                attempts: r.get(4)?,
                next_at: r.get(5)?,
            })
        })
    })
    .map_err(sql("reading pending deliveries"))
}

/// Finished shots whose deliveries are not planned yet, due or not.
pub(crate) fn unplanned(conn: &mut dyn Db) -> Result<u64, StorageError> {
    conn.query_one(
        "SELECT count(*) FROM finished WHERE expanded = 0",
        params![],
    )
    .and_then(|r| r.get(0))
    .map_err(sql("counting finished shots"))
}

/// `(target, status, count)` over the outbox.
pub(crate) fn counts(conn: &mut dyn Db) -> Result<Vec<(String, String, u64)>, StorageError> {
    conn.query(
        "SELECT target, status, count(*) FROM outbox GROUP BY target, status
         ORDER BY target, status",
        params![],
    )
    .and_then(|rows| each(rows, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))))
    .map_err(sql("counting deliveries"))
}
