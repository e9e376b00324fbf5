//! The SQLite backend, the embedded default for one box: one file, WAL, `synchronous=FULL`,
//! foreign keys, a busy timeout, versioned migrations with their way back. Readers are
//! read-only connections of their own; WAL lets them read while the writer writes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rusqlite::{Connection, OpenFlags};

use crate::read::SqlReader;
use crate::write::{self, SqlWriter};
use crate::{Backend, Opened, Options, Reader, StorageError, schema, sql};

/// Statements each connection keeps prepared (rusqlite's default is 16; the store has more).
const STATEMENTS: usize = 64;

/// The SQLite store at a path.
#[derive(Debug)]
struct Sqlite {
    path: PathBuf,
}

impl Backend for Sqlite {
    fn reader(&self) -> Result<Box<dyn Reader>, StorageError> {
        Ok(Box::new(SqlReader::new(open_read_only(&self.path)?)))
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }
}

/// Opens (creating if needed) the database at `path`, migrates it, and finishes what a stopped
/// process left open and no live process holds.
pub fn open(path: &Path, options: &Options) -> Result<Opened, StorageError> {
    let mut conn = open_writer(path)?;
    let (recovered, interrupted) = write::recover(&mut conn, &options.owner)?;
    Ok(Opened {
        backend: Arc::new(Sqlite {
            path: path.to_owned(),
        }),
        writer: Box::new(SqlWriter {
            db: conn,
            me: options.owner.clone(),
            fault: options.fail_commit.clone(),
            commits: 0,
            on_close: Some("PRAGMA wal_checkpoint(TRUNCATE);"),
        }),
        recovered,
        interrupted,
    })
}

/// A read-only connection to the store at `path`.
pub(crate) fn open_read_only(path: &Path) -> Result<Connection, StorageError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StorageError::Open {
        location: path.display().to_string(),
        source: source.into(),
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| sql("setting the busy timeout")(e.into()))?;
    conn.set_prepared_statement_cache_capacity(STATEMENTS);
    Ok(conn)
}

/// Makes the database file, when there is none, readable and writable by its owner only
/// (`0600`; SQLite would make it `0644` less the umask, and its `-wal` and `-shm` files take the
/// main file's mode): it holds the shots, and what other services answered. Says once when an
/// existing file is readable by others. An empty file is a new database to SQLite.
fn private_file(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let made = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        if made.is_err()
            && let Ok(meta) = std::fs::metadata(path)
            && meta.is_file()
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                "the database {} can be read by other users of this host (mode {:o}); `chmod 600` it",
                path.display(),
                meta.permissions().mode() & 0o777
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// The read-write connection: WAL, `synchronous=FULL`, foreign keys, busy timeout, migrated.
fn open_writer(path: &Path) -> Result<Connection, StorageError> {
    let open = |source: rusqlite::Error| StorageError::Open {
        location: path.display().to_string(),
        source: source.into(),
    };
    private_file(path);
    // Two processes opening a new file at once: switching it to WAL takes a lock that SQLite
    // refuses at once (busy, without waiting: the two would deadlock) to the second.
    let (mut conn, mode) = opening_race(busy, || {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        Ok((conn, mode))
    })
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
    conn.set_prepared_statement_cache_capacity(STATEMENTS);
    // Two processes opening a new file at once both see version 0; the one that migrates
    // second fails on tables the first just made. Read the version again and go on: what is
    // left to do (often nothing) is done on the next try.
    opening_race(|_| true, || schema::migrations().to_latest(&mut conn)).map_err(|source| {
        StorageError::Migrate {
            location: path.display().to_string(),
            reason: source.to_string(),
        }
    })?;
    Ok(conn)
}

/// `step` of opening a file another process may be opening at the same moment, tried again
/// (50 times, about 15 s in all, the pause growing) while it fails with an error `again` takes.
fn opening_race<T, E>(
    again: impl Fn(&E) -> bool,
    mut step: impl FnMut() -> Result<T, E>,
) -> Result<T, E> {
    let mut tries = 0;
    loop {
        match step() {
            Err(e) if again(&e) && tries < 50 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(20 + 10 * tries));
            }
            done => return done,
        }
    }
}

/// Whether SQLite answered busy or locked (another connection holds what it needs).
fn busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many processes opening one new file at the same moment (threads here: SQLite's locks
    /// are per file): every one opens it, none is told the database is locked.
    #[test]
    fn many_openers_of_a_new_file_all_open_it() {
        for round in 0..10 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("crema.db");
            let start = Arc::new(std::sync::Barrier::new(8));
            let openers: Vec<_> = (0..8)
                .map(|_| {
                    let (path, start) = (path.clone(), start.clone());
                    std::thread::spawn(move || {
                        start.wait();
                        open_writer(&path).map(|_| ())
                    })
                })
                .collect();
            for opener in openers {
                let opened = opener.join().unwrap();
                assert!(opened.is_ok(), "round {round}: {:?}", opened.err());
            }
        }
    }
}
