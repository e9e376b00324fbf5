//! Runs (history sync, QA, analysis over many shots), their QA results and analyses: the types,
//! the writes and the reads. At most one run is active (queued or running) at a time: the schema
//! holds that with a unique partial index, and [`Write::CreateRun`](crate::Write::CreateRun)
//! answers with the active run instead of a second one.

use serde::{Deserialize, Serialize};

use crate::db::{Db, DbError, Row, each, params};
use crate::lease::{self, Owner};
use crate::{StorageError, sql};

/// What a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    /// History sync of one machine, or of every machine.
    Sync,
    /// Quality checks over shots.
    Qa,
    /// Shot analysis over shots.
    Analyze,
    /// History shots not yet on Visualizer, uploaded.
    Upload,
}

impl RunKind {
    /// Its name in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            RunKind::Sync => "sync",
            RunKind::Qa => "qa",
            RunKind::Analyze => "analyze",
            RunKind::Upload => "upload",
        }
    }

    fn parse(s: &str) -> Option<RunKind> {
        [
            RunKind::Sync,
            RunKind::Qa,
            RunKind::Analyze,
            RunKind::Upload,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Where a run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Created, not started.
    Queued,
    /// Working.
    Running,
    /// Done, every item handled.
    Succeeded,
    /// Stopped by an error (in `error`).
    Failed,
    /// Stopped on request.
    Cancelled,
    /// The process stopped while it was active (found so at the next start).
    Interrupted,
}

impl RunStatus {
    /// Its name in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// Queued or running.
    pub fn is_active(self) -> bool {
        matches!(self, RunStatus::Queued | RunStatus::Running)
    }

    fn parse(s: &str) -> Option<RunStatus> {
        [
            RunStatus::Queued,
            RunStatus::Running,
            RunStatus::Succeeded,
            RunStatus::Failed,
            RunStatus::Cancelled,
            RunStatus::Interrupted,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A run's snapshot: what the API shows and the SSE stream sends.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Run {
    /// Its id.
    pub id: i64,
    /// What it does.
    pub kind: RunKind,
    /// Where it is.
    pub status: RunStatus,
    /// The machine a sync run covers (`None`: every machine, or not a sync).
    pub machine: Option<String>,
    /// The shots asked for (`None`: every stored shot). Not part of the snapshot's JSON.
    #[serde(skip)]
    pub shots: Option<Vec<i64>>,
    /// Items to handle (shots, or history shots to fetch), once known.
    pub total: u64,
    /// Items handled.
    pub done: u64,
    /// Items that passed (QA: every check passed; otherwise: handled without error).
    pub passed: u64,
    /// Items that failed.
    pub failed: u64,
    /// When it was created, started and finished, Unix seconds.
    pub created_at: f64,
    /// See `created_at`.
    pub started_at: Option<f64>,
    /// See `created_at`.
    pub finished_at: Option<f64>,
    /// Why it failed or was interrupted.
    pub error: Option<String>,
    /// What it did, for a person (once finished).
    pub summary: Option<String>,
    /// What started it: `api`, `cli` or `schedule` (`None` for runs older than that record).
    pub started_by: Option<String>,
}

/// Progress of a run, as written.
#[derive(Debug, Clone, PartialEq)]
pub struct RunProgress {
    /// The run.
    pub id: i64,
    /// Where it is now (a finished status also sets `finished_at`; `running` sets `started_at`).
    pub status: RunStatus,
    /// See [`Run`].
    pub total: u64,
    /// See [`Run`].
    pub done: u64,
    /// See [`Run`].
    pub passed: u64,
    /// See [`Run`].
    pub failed: u64,
    /// See [`Run`].
    pub error: Option<String>,
    /// See [`Run`].
    pub summary: Option<String>,
}

/// One QA check's verdict on one shot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QaResult {
    /// The check's stable name (`too_short`, …).
    pub check: String,
    /// Whether the shot passed it.
    pub passed: bool,
    /// What a person should know.
    pub message: String,
}

/// One analyzer's result on one shot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Analysis {
    /// The shot's key.
    pub shot: i64,
    /// The analyzer's name (`shot-facts/1`, …).
    pub analyzer: String,
    /// Its result, JSON text.
    pub result: String,
}

const RUN: &str = "SELECT id, kind, status, machine, shots, total, done, passed, failed,
    created_at, started_at, finished_at, error, summary, started_by, owner FROM runs";

fn run_row(r: &Row) -> Result<Run, DbError> {
    let kind: String = r.get(1)?;
    let status: String = r.get(2)?;
    let shots: Option<String> = r.get(4)?;
    let unknown = |column, found| DbError::Column {
        column,
        wanted: "a known run kind or status",
        found,
    };
    Ok(Run {
        id: r.get(0)?,
        kind: RunKind::parse(&kind).ok_or(unknown(1, "an unknown kind"))?,
        status: RunStatus::parse(&status).ok_or(unknown(2, "an unknown status"))?,
        machine: r.get(3)?,
        shots: shots.and_then(|s| serde_json::from_str(&s).ok()),
        total: r.get(5)?,
        done: r.get(6)?,
        passed: r.get(7)?,
        failed: r.get(8)?,
        created_at: r.get(9)?,
        started_at: r.get(10)?,
        finished_at: r.get(11)?,
        error: r.get(12)?,
        summary: r.get(13)?,
        started_by: r.get(14)?,
    })
}

/// The runs `sql` selects (after [`RUN`]).
fn select_runs(
    conn: &mut dyn Db,
    what: &'static str,
    sql_text: &str,
    params: &[crate::db::Param<'_>],
) -> Result<Vec<Run>, StorageError> {
    conn.query(sql_text, params)
        .and_then(|rows| each(rows, run_row))
        .map_err(sql(what))
}

pub(crate) fn get(conn: &mut dyn Db, id: i64) -> Result<Option<Run>, StorageError> {
    Ok(select_runs(
        conn,
        "reading a run",
        &format!("{RUN} WHERE id = ?1"),
        params![id],
    )?
    .pop())
}

pub(crate) fn active(conn: &mut dyn Db) -> Result<Option<Run>, StorageError> {
    Ok(select_runs(
        conn,
        "reading the active run",
        &format!("{RUN} WHERE status IN ('queued', 'running') ORDER BY id LIMIT 1"),
        params![],
    )?
    .pop())
}

pub(crate) fn latest(conn: &mut dyn Db, limit: usize) -> Result<Vec<Run>, StorageError> {
    select_runs(
        conn,
        "listing runs",
        &format!("{RUN} ORDER BY id DESC LIMIT ?1"),
        params![limit as i64],
    )
}

/// A run to create.
pub(crate) struct NewRun<'a> {
    pub(crate) kind: RunKind,
    pub(crate) machine: Option<&'a str>,
    pub(crate) shots: Option<&'a [i64]>,
    pub(crate) started_by: &'a str,
}

/// The active runs' ids and the processes executing them (at most one is active, but a
/// store from before that rule may hold more).
fn active_owners(conn: &mut dyn Db) -> Result<Vec<(i64, Option<String>)>, StorageError> {
    conn.query(
        "SELECT id, owner FROM runs WHERE status IN ('queued', 'running') ORDER BY id",
        params![],
    )
    .and_then(|rows| each(rows, |r| Ok((r.get(0)?, r.get(1)?))))
    .map_err(sql("reading the active run"))
}

/// Creates a queued run executed by `me` (who takes the runs lease), or answers the active
/// one. An active run whose process holds no lease any more is interrupted first.
pub(crate) fn create(
    tx: &mut dyn Db,
    run: NewRun<'_>,
    me: &Owner,
    now: f64,
) -> Result<crate::Applied, StorageError> {
    if let Some((id, owner)) = active_owners(tx)?.into_iter().next() {
        let alive = match &owner {
            Some(owner) => lease::held_by(tx, lease::RUNS, owner, me, now)?,
            None => false,
        };
        if alive {
            return Ok(crate::Applied::RunBusy { active: id });
        }
        interrupt(tx, id, now)?;
    }
    // No run is active: whoever held the runs lease holds nothing any more.
    let lease_token = lease::take_over(tx, lease::RUNS, me, lease::TTL.as_secs_f64(), now)?;
    let shots = run
        .shots
        .map(|s| serde_json::to_string(s).unwrap_or_else(|_| "[]".into()));
    let id = tx
        .query_one(
            "INSERT INTO runs (kind, status, machine, shots, created_at, owner, started_by)
             VALUES (?1, 'queued', ?2, ?3, ?4, ?5, ?6) RETURNING id",
            params![
                run.kind.as_str(),
                run.machine,
                &shots,
                now,
                &me.id,
                run.started_by
            ],
        )
        .and_then(|r| r.get(0))
        .map_err(sql("creating a run"))?;
    Ok(crate::Applied::RunCreated { id, lease_token })
}

/// Writes a run's progress, unless it already finished (a late write never revives it).
pub(crate) fn progress(
    tx: &mut dyn Db,
    p: &RunProgress,
    me: &Owner,
    now: f64,
) -> Result<(), StorageError> {
    let finished = !p.status.is_active();
    tx.execute(
        "UPDATE runs SET status = ?2, total = ?3, done = ?4, passed = ?5, failed = ?6,
            error = coalesce(?7, error), summary = coalesce(?10, summary),
            started_at = CASE WHEN ?2 <> 'queued' AND started_at IS NULL THEN ?8 ELSE started_at END,
            finished_at = CASE WHEN ?9 THEN ?8 ELSE finished_at END
         WHERE id = ?1 AND status IN ('queued', 'running')",
        params![
            p.id,
            p.status.as_str(),
            p.total as i64,
            p.done as i64,
            p.passed as i64,
            p.failed as i64,
            &p.error,
            now,
            finished,
            &p.summary
        ],
    )
    .map_err(sql("recording a run's progress"))?;
    if finished {
        lease::release(tx, lease::RUNS, me)?;
    }
    Ok(())
}

/// Marks run `id` interrupted: the process executing it stopped.
fn interrupt(tx: &mut dyn Db, id: i64, now: f64) -> Result<(), StorageError> {
    tx.execute(
        "UPDATE runs SET status = 'interrupted', finished_at = ?2,
            error = 'the process executing the run stopped while it was active'
         WHERE id = ?1 AND status IN ('queued', 'running')",
        params![id, now],
    )
    .map_err(sql("marking a run interrupted"))?;
    Ok(())
}

/// At start: the active run, if its process no longer holds the runs lease (it stopped
/// before it could end the run), is interrupted. Returns the ids interrupted.
pub(crate) fn interrupt_orphans(
    tx: &mut dyn Db,
    me: &Owner,
    now: f64,
) -> Result<Vec<i64>, StorageError> {
    let mut ids = Vec::new();
    for (id, owner) in active_owners(tx)? {
        let alive = match &owner {
            Some(owner) => lease::held_by(tx, lease::RUNS, owner, me, now)?,
            None => false,
        };
        if !alive {
            interrupt(tx, id, now)?;
            ids.push(id);
        }
    }
    Ok(ids)
}

pub(crate) fn store_qa(
    tx: &mut dyn Db,
    shot: i64,
    results: &[QaResult],
    now: f64,
) -> Result<(), StorageError> {
    for r in results {
        tx.execute(
            "INSERT INTO qa_results (shot_key, check_name, passed, message, checked_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (shot_key, check_name) DO UPDATE SET
                passed = excluded.passed, message = excluded.message, checked_at = excluded.checked_at",
            params![shot, &r.check, r.passed, &r.message, now],
        )
        .map_err(sql("storing QA results"))?;
    }
    Ok(())
}

pub(crate) fn qa_results(conn: &mut dyn Db, shot: i64) -> Result<Vec<QaResult>, StorageError> {
    conn.query(
        "SELECT check_name, passed, message FROM qa_results WHERE shot_key = ?1 ORDER BY check_name",
        params![shot],
    )
    .and_then(|rows| {
        each(rows, |r| {
            Ok(QaResult {
                check: r.get(0)?,
                passed: r.get(1)?,
                message: r.get(2)?,
            })
        })
    })
    .map_err(sql("reading QA results"))
}

pub(crate) fn store_analysis(
    tx: &mut dyn Db,
    shot: i64,
    analyzer: &str,
    result: &str,
    now: f64,
) -> Result<(), StorageError> {
    tx.execute(
        "INSERT INTO analyses (shot_key, analyzer, result, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (shot_key, analyzer) DO UPDATE SET result = excluded.result, created_at = excluded.created_at",
        params![shot, analyzer, result, now],
    )
    .map_err(sql("storing an analysis"))?;
    Ok(())
}
