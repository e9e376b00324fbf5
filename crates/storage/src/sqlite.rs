//! The SQLite backend, the embedded default for one box: one file, WAL, `synchronous=FULL`,
//! foreign keys, a busy timeout, versioned migrations with their way back. Readers are
//! read-only connections of their own; WAL lets them read while the writer writes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::read::SqliteReader;
use crate::write::{self, SqliteWriter};
use crate::{Backend, Opened, Options, Reader, StorageError};

/// The SQLite store at a path.
#[derive(Debug)]
struct Sqlite {
    path: PathBuf,
}

impl Backend for Sqlite {
    fn reader(&self) -> Result<Box<dyn Reader>, StorageError> {
        Ok(Box::new(SqliteReader::open(&self.path)?))
    }

    fn location(&self) -> String {
        self.path.display().to_string()
    }
}

/// Opens (creating if needed) the database at `path`, migrates it, and finishes what a stopped
/// process left open and no live process holds.
pub fn open(path: &Path, options: &Options) -> Result<Opened, StorageError> {
    let mut conn = write::open_writer(path)?;
    let (recovered, interrupted) = write::recover(&mut conn, &options.owner)?;
    if let Some(fault) = options.fail_commit.clone() {
        let mut commits = 0u64;
        conn.commit_hook(Some(move || {
            commits += 1;
            fault(commits)
        }));
    }
    Ok(Opened {
        backend: Arc::new(Sqlite {
            path: path.to_owned(),
        }),
        writer: Box::new(SqliteWriter {
            conn,
            me: options.owner.clone(),
        }),
        recovered,
        interrupted,
    })
}
