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

/// A database file crema makes holds its shots and what services answered: readable by its
/// owner only, its WAL too (SQLite made it 0644 less the umask).
#[cfg(unix)]
fn a_new_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;
    let at = SqliteAt::new();
    let store = at.open(Options::default());
    for name in ["crema.db", "crema.db-wal"] {
        let mode = std::fs::metadata(at.dir.path().join(name))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{name}: {mode:o}");
    }
    drop(store);
    // An existing file keeps its mode (crema warns about it).
    let other = at.dir.path().join("shared.db");
    std::fs::write(&other, b"").unwrap();
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(Store::open(&other, Options::default()).unwrap());
    let mode = std::fs::metadata(&other).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644);
}

fn main() {
    let mut trials: Vec<Trial> = BEHAVIOURS
        .iter()
        .map(|&(name, check)| {
            Trial::test(name, move || {
                check(&SqliteAt::new());
                Ok(())
            })
        })
        .collect();
    #[cfg(unix)]
    trials.push(Trial::test(
        "a_new_file_is_readable_by_its_owner_only",
        || {
            a_new_file_is_readable_by_its_owner_only();
            Ok(())
        },
    ));
    libtest_mimic::run(&Arguments::from_args(), trials).exit();
}
