//! The storage conformance suite on the SQLite backend: every behaviour a named test, each on a
//! store of its own in a temporary folder.

use std::path::{Path, PathBuf};

use libtest_mimic::{Arguments, Trial};
use storage::conformance::{BEHAVIOURS, Location};
use storage::{Options, Store};

struct SqliteAt {
    dir: tempfile::TempDir,
}

impl SqliteAt {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn file(&self) -> PathBuf {
        self.dir.path().join("crema.db")
    }
}

impl Location for SqliteAt {
    fn open(&self, options: Options) -> Store {
        Store::open(&self.file(), options).unwrap()
    }

    fn scratch(&self) -> &Path {
        self.dir.path()
    }

    fn fresh(&self) -> Box<dyn Location> {
        Box::new(SqliteAt::new())
    }
}

fn main() {
    let trials = BEHAVIOURS
        .iter()
        .map(|&(name, check)| {
            Trial::test(name, move || {
                check(&SqliteAt::new());
                Ok(())
            })
        })
        .collect();
    libtest_mimic::run(&Arguments::from_args(), trials).exit();
}
