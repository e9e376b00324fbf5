//! The storage conformance suite on the PostgreSQL backend: every behaviour a named test, each
//! on a database of its own on one private server (`testbed`). Without PostgreSQL installed the
//! suite says so and runs nothing, unless `CREMA_REQUIRE_SERVERS` is set (CI).

use std::path::Path;
use std::sync::Arc;

use libtest_mimic::{Arguments, Trial};
use storage::conformance::{BEHAVIOURS, Location};
use storage::{Database, Options, Store};
use testbed::Postgres;

struct PostgresAt {
    server: Arc<Postgres>,
    database: Database,
    scratch: tempfile::TempDir,
}

impl PostgresAt {
    fn new(server: Arc<Postgres>) -> Self {
        let database = Database::parse(&server.create_database());
        Self {
            server,
            database,
            scratch: tempfile::tempdir().unwrap(),
        }
    }
}

impl Location for PostgresAt {
    fn open(&self, options: Options) -> Store {
        Store::open_database(&self.database, options).unwrap()
    }

    fn scratch(&self) -> &Path {
        self.scratch.path()
    }

    fn fresh(&self) -> Box<dyn Location> {
        Box::new(PostgresAt::new(self.server.clone()))
    }
}

fn main() {
    let args = Arguments::from_args();
    let Some(server) = Postgres::start().map(Arc::new) else {
        libtest_mimic::run(&args, Vec::new()).exit();
    };
    let mut trials: Vec<Trial> = BEHAVIOURS
        .iter()
        .map(|&(name, check)| {
            let server = server.clone();
            Trial::test(name, move || {
                check(&PostgresAt::new(server));
                Ok(())
            })
        })
        .collect();
    let server_for_migrations = server.clone();
    trials.push(Trial::test(
        "postgres::migrations_go_both_ways",
        move || {
            let url = server_for_migrations.create_database();
            let database = Database::parse(&url);
            let store = Store::open_database(&database, Options::default()).unwrap();
            drop(store);
            storage::postgres::migrate_to(&url, 0).unwrap();
            let reader = database.reader().unwrap();
            assert!(
                reader.shot_count().is_err(),
                "at version 0 there is no shots table"
            );
            drop(reader);
            let store = Store::open_database(&database, Options::default()).unwrap();
            assert_eq!(store.reader().unwrap().shot_count().unwrap(), 0);
            Ok(())
        },
    ));
    let conclusion = libtest_mimic::run(&args, trials);
    drop(server);
    conclusion.exit();
}
