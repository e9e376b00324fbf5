//! Read-only connections: shot lists, shot files, exports.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension as _, params};
use serde::Serialize;

use crate::{QaResult, Run, StorageError, sql};

/// A read-only connection to a SQLite store.
#[derive(Debug)]
pub(crate) struct SqliteReader {
    conn: Connection,
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

const SUMMARY: &str = "SELECT key, id, machine, time, name, profile_id,
    coalesce(json_extract(profile, '$.name'), name), source, status, sample_count, end_reason
    FROM shots";

fn summary(r: &rusqlite::Row<'_>) -> rusqlite::Result<ShotSummary> {
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

impl SqliteReader {
    pub(crate) fn open(path: &Path) -> Result<Self, StorageError> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|source| StorageError::Open {
            path: path.to_owned(),
            source,
        })?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql("setting the busy timeout"))?;
        Ok(Self { conn })
    }

    /// Opens a database read-only without the writer (for `shots` and `export` commands).
    pub(crate) fn open_existing(path: &Path) -> Result<Self, StorageError> {
        Self::open(path)
    }
}

impl crate::Reader for SqliteReader {
    fn shots(&self, limit: usize, before: Option<&str>) -> Result<ShotsPage, StorageError> {
        let (time, key) = before
            .and_then(parse_cursor)
            .unwrap_or((f64::INFINITY, i64::MAX));
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "{SUMMARY} WHERE time < ?1 OR (time = ?1 AND key < ?2)
                 ORDER BY time DESC, key DESC LIMIT ?3"
            ))
            .map_err(sql("listing shots"))?;
        let limit = limit.clamp(1, 1000);
        let shots = stmt
            .query_map(params![time, key, limit as i64 + 1], summary)
            .map_err(sql("listing shots"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql("listing shots"))?;
        let mut shots = shots;
        let next = if shots.len() > limit {
            shots.truncate(limit);
            shots.last().map(|s| format!("{}_{}", s.time, s.key))
        } else {
            None
        };
        Ok(ShotsPage { shots, next })
    }

    fn all_shots(&self) -> Result<Vec<ShotSummary>, StorageError> {
        let mut stmt = self
            .conn
            .prepare(&format!("{SUMMARY} ORDER BY time DESC, key DESC"))
            .map_err(sql("listing shots"))?;
        stmt.query_map([], summary)
            .map_err(sql("listing shots"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(sql("listing shots"))
    }

    fn shot_count(&self) -> Result<u64, StorageError> {
        self.conn
            .query_row("SELECT count(*) FROM shots", [], |r| r.get::<_, i64>(0))
            .map(|n| n.max(0) as u64)
            .map_err(sql("counting shots"))
    }

    fn shot(&self, key: i64) -> Result<Option<ShotSummary>, StorageError> {
        self.conn
            .query_row(&format!("{SUMMARY} WHERE key = ?1"), [key], summary)
            .optional()
            .map_err(sql("reading a shot"))
    }

    fn find(&self, id_or_key: &str) -> Result<Option<ShotSummary>, StorageError> {
        let by_id = self
            .conn
            .query_row(&format!("{SUMMARY} WHERE id = ?1"), [id_or_key], summary)
            .optional()
            .map_err(sql("reading a shot"))?;
        match (by_id, id_or_key.parse::<i64>()) {
            (Some(s), _) => Ok(Some(s)),
            (None, Ok(key)) => self.shot(key),
            (None, Err(_)) => Ok(None),
        }
    }

    fn samples(&self, key: i64) -> Result<Vec<Box<serde_json::value::RawValue>>, StorageError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT sample FROM samples WHERE shot_key = ?1 ORDER BY seq")
            .map_err(sql("reading samples"))?;
        let rows = stmt
            .query_map([key], |r| r.get::<_, String>(0))
            .map_err(sql("reading samples"))?;
        let mut out = Vec::new();
        for row in rows {
            let text = row.map_err(sql("reading samples"))?;
            out.push(
                serde_json::value::RawValue::from_string(text).map_err(|source| {
                    StorageError::Corrupt {
                        what: "sample",
                        source,
                    }
                })?,
            );
        }
        Ok(out)
    }

    fn shot_file(&self, key: i64) -> Result<Option<ShotFile>, StorageError> {
        /// time, profile name, id, profile.
        type Head = (f64, Option<String>, Option<String>, Option<String>);
        let row: Option<Head> = self
            .conn
            .query_row(
                "SELECT time, coalesce(json_extract(profile, '$.name'), name), id, profile
                 FROM shots WHERE key = ?1",
                [key],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
            .map_err(sql("reading a shot"))?;
        let Some((time, profile_name, id, profile)) = row else {
            return Ok(None);
        };
        let profile = profile
            .map(serde_json::value::RawValue::from_string)
            .transpose()
            .map_err(|source| StorageError::Corrupt {
                what: "profile",
                source,
            })?;
        Ok(Some(ShotFile {
            time,
            profile_name,
            data: self.samples(key)?,
            id: id.unwrap_or_else(|| key.to_string()),
            profile,
        }))
    }

    fn history_ids(&self, machine: &str) -> Result<BTreeSet<String>, StorageError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id FROM shots WHERE machine = ?1 AND source = 'history' AND id IS NOT NULL",
            )
            .map_err(sql("listing history shots"))?;
        stmt.query_map([machine], |r| r.get(0))
            .map_err(sql("listing history shots"))?
            .collect::<Result<_, _>>()
            .map_err(sql("listing history shots"))
    }

    fn run(&self, id: i64) -> Result<Option<Run>, StorageError> {
        crate::runs::get(&self.conn, id)
    }

    fn active_run(&self) -> Result<Option<Run>, StorageError> {
        crate::runs::active(&self.conn)
    }

    fn runs(&self, limit: usize) -> Result<Vec<Run>, StorageError> {
        crate::runs::latest(&self.conn, limit)
    }

    fn run_counts(&self) -> Result<Vec<(String, String, u64)>, StorageError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT kind, status, count(*) FROM runs GROUP BY kind, status ORDER BY kind, status",
            )
            .map_err(sql("counting runs"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)?.max(0) as u64))
            })
            .map_err(sql("counting runs"))?;
        rows.collect::<Result<_, _>>().map_err(sql("counting runs"))
    }

    fn qa_results(&self, key: i64) -> Result<Vec<QaResult>, StorageError> {
        crate::runs::qa_results(&self.conn, key)
    }

    fn unchecked_shot_keys(&self) -> Result<Vec<i64>, StorageError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT key FROM shots WHERE status <> 'recording'
                 AND NOT EXISTS (SELECT 1 FROM qa_results WHERE shot_key = shots.key)
                 ORDER BY time, key",
            )
            .map_err(sql("listing unchecked shots"))?;
        let rows = stmt
            .query_map([], |r| r.get(0))
            .map_err(sql("listing unchecked shots"))?;
        rows.collect::<Result<_, _>>()
            .map_err(sql("listing unchecked shots"))
    }

    fn key_of_recording(&self, recording_key: u64) -> Result<Option<i64>, StorageError> {
        self.conn
            .query_row(
                "SELECT key FROM shots WHERE recording_key = ?1",
                [recording_key as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql("finding a live shot"))
    }

    fn shot_keys(&self) -> Result<Vec<i64>, StorageError> {
        let mut stmt = self
            .conn
            .prepare("SELECT key FROM shots WHERE status <> 'recording' ORDER BY time, key")
            .map_err(sql("listing shots"))?;
        let rows = stmt
            .query_map([], |r| r.get(0))
            .map_err(sql("listing shots"))?;
        rows.collect::<Result<_, _>>().map_err(sql("listing shots"))
    }

    fn analyses(&self, key: i64) -> Result<Vec<serde_json::Value>, StorageError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT analyzer, result, created_at FROM analyses WHERE shot_key = ?1 ORDER BY analyzer",
            )
            .map_err(sql("reading analyses"))?;
        let rows = stmt
            .query_map([key], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, f64>(2)?,
                ))
            })
            .map_err(sql("reading analyses"))?;
        let mut out = Vec::new();
        for row in rows {
            let (analyzer, result, created_at) = row.map_err(sql("reading analyses"))?;
            let result: serde_json::Value =
                serde_json::from_str(&result).map_err(|source| StorageError::Corrupt {
                    what: "analysis",
                    source,
                })?;
            out.push(serde_json::json!({"analyzer": analyzer, "result": result, "created_at": created_at}));
        }
        Ok(out)
    }

    fn integrity_check(&self) -> Result<String, StorageError> {
        self.conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .map_err(sql("checking integrity"))
    }

    fn unexpanded(
        &self,
        due_by: Option<f64>,
        limit: usize,
    ) -> Result<Vec<crate::Finished>, StorageError> {
        crate::outbox::unexpanded(&self.conn, due_by, limit)
    }

    fn pending_deliveries(
        &self,
        target: Option<&str>,
        due_by: Option<f64>,
        limit: usize,
    ) -> Result<Vec<crate::Delivery>, StorageError> {
        crate::outbox::pending(&self.conn, target, due_by, limit)
    }

    fn delivery_counts(&self) -> Result<Vec<(String, String, u64)>, StorageError> {
        crate::outbox::counts(&self.conn)
    }

    fn unplanned(&self) -> Result<u64, StorageError> {
        crate::outbox::unplanned(&self.conn)
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
