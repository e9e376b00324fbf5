//! Reads, once for every engine: shot lists, shot files, exports.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::db::{Db, DbError, Dialect, Row, each, params};
use crate::{QaResult, Run, StorageError, sql};

/// A reader on any engine: a connection of its own (`RefCell`: a reader is used by one
/// thread at a time, and the seam's reads take `&self`).
#[derive(Debug)]
pub(crate) struct SqlReader<D> {
    db: RefCell<D>,
}

impl<D> SqlReader<D> {
    pub(crate) fn new(db: D) -> Self {
        Self {
            db: RefCell::new(db),
        }
    }
}

/// One shot in a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShotSummary {
    /// The store's key (stable; the REST API's shot id).
    pub key: i64,
    /// The machine's shot UUID, once known. Not serialized: the public shape of a shot
    /// (`recorder::document`) says `id` for the machine's UUID or, until it is known, the key.
    #[serde(skip)]
    pub id: Option<String>,
    /// The machine's name.
    pub machine: String,
    /// Start time, Unix seconds.
    pub time: f64,
    /// The profile's name (the machine's `name`).
    pub name: Option<String>,
    /// The profile's id.
    pub profile_id: Option<String>,
    /// The profile's name, from the stored profile when there is one.
    pub profile_name: Option<String>,
    /// `live` or `history`.
    pub source: String,
    /// `recording`, `complete` or `partial`.
    pub status: String,
    /// How many samples.
    pub sample_count: i64,
    /// How a live recording ended (`finished`, `stalled`, `disconnected`, `crash`, …).
    pub end_reason: Option<String>,
}

/// A page of shots, newest first, and the cursor of the next page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShotsPage {
    /// The shots.
    pub shots: Vec<ShotSummary>,
    /// Pass as `before` for the next page; `None` at the end.
    pub next: Option<String>,
}

/// A shot in the Meticulous shot-file format (`{time, profile_name, data, id, profile}`, what
/// Visualizer ingests), with its samples as stored.
#[derive(Debug, Clone, Serialize)]
pub struct ShotFile {
    /// Start time, Unix seconds.
    pub time: f64,
    /// The profile's name.
    pub profile_name: Option<String>,
    /// The samples.
    pub data: Vec<Box<serde_json::value::RawValue>>,
    /// The machine's shot UUID (the store's key as text for a shot the machine never named).
    pub id: String,
    /// The profile, as the machine sent it.
    pub profile: Option<Box<serde_json::value::RawValue>>,
}

/// The columns of a [`ShotSummary`], from `shots`.
fn summary_sql(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => {
            "SELECT key, id, machine, time, name, profile_id,
             coalesce(json_extract(profile, '$.name'), name), source, status, sample_count, end_reason
             FROM shots"
        }
        Dialect::Postgres => {
            "SELECT key, id, machine, time, name, profile_id,
             coalesce(profile::json ->> 'name', name), source, status, sample_count, end_reason
             FROM shots"
        }
    }
}

fn summary(r: &Row) -> Result<ShotSummary, DbError> {
    Ok(ShotSummary {
        key: r.get(0)?,
        id: r.get(1)?,
        machine: r.get(2)?,
        time: r.get(3)?,
        name: r.get(4)?,
        profile_id: r.get(5)?,
        profile_name: r.get(6)?,
        source: r.get(7)?,
        status: r.get(8)?,
        sample_count: r.get(9)?,
        end_reason: r.get(10)?,
    })
}

impl<D: Db> SqlReader<D> {
    /// The shots `tail` (after the summary's columns) selects.
    fn summaries(
        &self,
        what: &'static str,
        tail: &str,
        params: &[crate::db::Param<'_>],
    ) -> Result<Vec<ShotSummary>, StorageError> {
        let mut db = self.db.borrow_mut();
        let text = format!("{} {tail}", summary_sql(db.dialect()));
        db.query(&text, params)
            .and_then(|rows| each(rows, summary))
            .map_err(sql(what))
    }

    /// The first column of every row `text` selects.
    fn column<T: crate::db::FromValue>(
        &self,
        what: &'static str,
        text: &str,
        params: &[crate::db::Param<'_>],
    ) -> Result<Vec<T>, StorageError> {
        self.db
            .borrow_mut()
            .query(text, params)
            .and_then(|rows| each(rows, |r| r.get(0)))
            .map_err(sql(what))
    }
}

impl<D: Db + Send> crate::Reader for SqlReader<D> {
    fn shots(&self, limit: usize, before: Option<&str>) -> Result<ShotsPage, StorageError> {
        let (time, key) = before
            .and_then(parse_cursor)
            .unwrap_or((f64::INFINITY, i64::MAX));
        let limit = limit.clamp(1, 1000);
        let mut shots = self.summaries(
            "listing shots",
            "WHERE time < ?1 OR (time = ?1 AND key < ?2) ORDER BY time DESC, key DESC LIMIT ?3",
            params![time, key, limit as i64 + 1],
        )?;
        let next = if shots.len() > limit {
            shots.truncate(limit);
            shots.last().map(|s| format!("{}_{}", s.time, s.key))
        } else {
            None
        };
        Ok(ShotsPage { shots, next })
    }

    fn all_shots(&self) -> Result<Vec<ShotSummary>, StorageError> {
        self.summaries("listing shots", "ORDER BY time DESC, key DESC", params![])
    }

    fn shot_count(&self) -> Result<u64, StorageError> {
        Ok(self
            .column("counting shots", "SELECT count(*) FROM shots", params![])?
            .pop()
            .unwrap_or(0))
    }

    fn shot(&self, key: i64) -> Result<Option<ShotSummary>, StorageError> {
        Ok(self
            .summaries("reading a shot", "WHERE key = ?1", params![key])?
            .pop())
    }

    fn find(&self, id_or_key: &str) -> Result<Option<ShotSummary>, StorageError> {
        let by_id = self
            .summaries("reading a shot", "WHERE id = ?1", params![id_or_key])?
            .pop();
        match (by_id, id_or_key.parse::<i64>()) {
            (Some(s), _) => Ok(Some(s)),
            (None, Ok(key)) => self.shot(key),
            (None, Err(_)) => Ok(None),
        }
    }

    fn samples(&self, key: i64) -> Result<Vec<Box<serde_json::value::RawValue>>, StorageError> {
        let texts: Vec<String> = self.column(
            "reading samples",
            "SELECT sample FROM samples WHERE shot_key = ?1 ORDER BY seq",
            params![key],
        )?;
        texts
            .into_iter()
            .map(|text| {
                serde_json::value::RawValue::from_string(text).map_err(|source| {
                    StorageError::Corrupt {
                        what: "sample",
                        source,
                    }
                })
            })
            .collect()
    }

    fn shot_file(&self, key: i64) -> Result<Option<ShotFile>, StorageError> {
        let Some(head) = self.shot(key)? else {
            return Ok(None);
        };
        let profile: Option<String> = self
            .column(
                "reading a shot",
                "SELECT profile FROM shots WHERE key = ?1",
                params![key],
            )?
            .pop()
            .flatten();
        let profile = profile
            .map(serde_json::value::RawValue::from_string)
            .transpose()
            .map_err(|source| StorageError::Corrupt {
                what: "profile",
                source,
            })?;
        Ok(Some(ShotFile {
            time: head.time,
            profile_name: head.profile_name,
            data: self.samples(key)?,
            id: head.id.unwrap_or_else(|| key.to_string()),
            profile,
        }))
    }

    fn history_ids(&self, machine: &str) -> Result<BTreeSet<String>, StorageError> {
        Ok(self
            .column(
                "listing history shots",
                "SELECT id FROM shots WHERE machine = ?1 AND source = 'history' AND id IS NOT NULL",
                params![machine],
            )?
            .into_iter()
            .collect())
    }

    fn run(&self, id: i64) -> Result<Option<Run>, StorageError> {
        crate::runs::get(&mut *self.db.borrow_mut(), id)
    }

    fn active_run(&self) -> Result<Option<Run>, StorageError> {
        crate::runs::active(&mut *self.db.borrow_mut())
    }

    fn runs(&self, limit: usize) -> Result<Vec<Run>, StorageError> {
        crate::runs::latest(&mut *self.db.borrow_mut(), limit)
    }

    fn run_counts(&self) -> Result<Vec<(String, String, u64)>, StorageError> {
        self.db
            .borrow_mut()
            .query(
                "SELECT kind, status, count(*) FROM runs GROUP BY kind, status ORDER BY kind, status",
                params![],
            )
            .and_then(|rows| each(rows, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))))
            .map_err(sql("counting runs"))
    }

    fn qa_results(&self, key: i64) -> Result<Vec<QaResult>, StorageError> {
        crate::runs::qa_results(&mut *self.db.borrow_mut(), key)
    }

    fn unchecked_shot_keys(&self) -> Result<Vec<i64>, StorageError> {
        self.column(
            "listing unchecked shots",
            "SELECT key FROM shots WHERE status <> 'recording'
             AND NOT EXISTS (SELECT 1 FROM qa_results WHERE shot_key = shots.key)
             ORDER BY time, key",
            params![],
        )
    }

    fn key_of_recording(&self, recording_key: u64) -> Result<Option<i64>, StorageError> {
        Ok(self
            .column(
                "finding a live shot",
                "SELECT key FROM shots WHERE recording_key = ?1",
                params![recording_key as i64],
            )?
            .pop())
    }

    fn shot_keys(&self) -> Result<Vec<i64>, StorageError> {
        self.column(
            "listing shots",
            "SELECT key FROM shots WHERE status <> 'recording' ORDER BY time, key",
            params![],
        )
    }

    fn analyses(&self, key: i64) -> Result<Vec<serde_json::Value>, StorageError> {
        let rows: Vec<(String, String, f64)> = self
            .db
            .borrow_mut()
            .query(
                "SELECT analyzer, result, created_at FROM analyses WHERE shot_key = ?1 ORDER BY analyzer",
                params![key],
            )
            .and_then(|rows| each(rows, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))))
            .map_err(sql("reading analyses"))?;
        rows.into_iter()
            .map(|(analyzer, result, created_at)| {
                let result: serde_json::Value =
                    serde_json::from_str(&result).map_err(|source| StorageError::Corrupt {
                        what: "analysis",
                        source,
                    })?;
                Ok(serde_json::json!({"analyzer": analyzer, "result": result, "created_at": created_at}))
            })
            .collect()
    }

    fn integrity_check(&self) -> Result<String, StorageError> {
        let mut db = self.db.borrow_mut();
        match db.dialect() {
            Dialect::Sqlite => db
                .query_one("PRAGMA integrity_check", params![])
                .and_then(|r| r.get(0))
                .map_err(sql("checking integrity")),
            // The server checks its own pages; what a reader can tell is that every table
            // reads.
            Dialect::Postgres => {
                for table in [
                    "SELECT count(*) FROM shots",
                    "SELECT count(*) FROM samples",
                    "SELECT count(*) FROM runs",
                    "SELECT count(*) FROM leases",
                    "SELECT count(*) FROM outbox",
                ] {
                    db.query_one(table, params![])
                        .map_err(sql("checking integrity"))?;
                }
                Ok("ok".to_owned())
            }
        }
    }

    fn unexpanded(
        &self,
        due_by: Option<f64>,
        limit: usize,
    ) -> Result<Vec<crate::Finished>, StorageError> {
        crate::outbox::unexpanded(&mut *self.db.borrow_mut(), due_by, limit)
    }

    fn pending_deliveries(
        &self,
        target: Option<&str>,
        due_by: Option<f64>,
        limit: usize,
    ) -> Result<Vec<crate::Delivery>, StorageError> {
        crate::outbox::pending(&mut *self.db.borrow_mut(), target, due_by, limit)
    }

    fn delivery_counts(&self) -> Result<Vec<(String, String, u64)>, StorageError> {
        crate::outbox::counts(&mut *self.db.borrow_mut())
    }

    fn unplanned(&self) -> Result<u64, StorageError> {
        crate::outbox::unplanned(&mut *self.db.borrow_mut())
    }
}

fn parse_cursor(cursor: &str) -> Option<(f64, i64)> {
    let (time, key) = cursor.rsplit_once('_')?;
    Some((time.parse().ok()?, key.parse().ok()?))
}

/// Writes `bytes` to `path` through a temporary file, fsync and rename.
pub(crate) fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let io = |source| StorageError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map_or_else(|| "export".into(), |n| n.to_string_lossy().into_owned());
    let tmp: PathBuf = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename itself is durable once the folder is synced.
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}
