//! The schema, as versioned migrations with their way back (`PRAGMA user_version`).

use rusqlite_migration::{M, Migrations};

/// Every migration, oldest first. Never edit one that has shipped: add the next.
pub(crate) fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        // 1: shots and their samples, analyses, runs, QA results.
        M::up(
            "CREATE TABLE shots (
                key INTEGER PRIMARY KEY,
                machine TEXT NOT NULL,
                -- The machine's shot UUID, once known.
                id TEXT UNIQUE,
                -- The recorder's number for a live shot (its ShotKey).
                recording_key INTEGER UNIQUE,
                time REAL NOT NULL,
                name TEXT,
                profile_id TEXT,
                profile TEXT,
                source TEXT NOT NULL CHECK (source IN ('live', 'history')),
                status TEXT NOT NULL CHECK (status IN ('recording', 'complete', 'partial')),
                end_reason TEXT,
                sample_count INTEGER NOT NULL DEFAULT 0,
                db_key INTEGER,
                file TEXT,
                updated_at REAL NOT NULL
            ) STRICT;
            CREATE INDEX shots_by_time ON shots (time DESC, key DESC);
            CREATE INDEX shots_recording ON shots (status) WHERE status = 'recording';
            -- One row per sample: the journal of a shot being recorded, and its data after.
            CREATE TABLE samples (
                shot_key INTEGER NOT NULL REFERENCES shots (key) ON DELETE CASCADE,
                seq INTEGER NOT NULL,
                sample TEXT NOT NULL,
                PRIMARY KEY (shot_key, seq)
            ) STRICT, WITHOUT ROWID;
            CREATE TABLE analyses (
                shot_key INTEGER NOT NULL REFERENCES shots (key) ON DELETE CASCADE,
                analyzer TEXT NOT NULL,
                result TEXT NOT NULL,
                created_at REAL NOT NULL,
                PRIMARY KEY (shot_key, analyzer)
            ) STRICT;
            CREATE TABLE runs (
                id INTEGER PRIMARY KEY,
                kind TEXT NOT NULL,
                status TEXT NOT NULL,
                total INTEGER NOT NULL DEFAULT 0,
                done INTEGER NOT NULL DEFAULT 0,
                passed INTEGER NOT NULL DEFAULT 0,
                failed INTEGER NOT NULL DEFAULT 0,
                created_at REAL NOT NULL,
                started_at REAL,
                finished_at REAL,
                error TEXT
            ) STRICT;
            CREATE TABLE qa_results (
                shot_key INTEGER NOT NULL REFERENCES shots (key) ON DELETE CASCADE,
                check_name TEXT NOT NULL,
                passed INTEGER NOT NULL,
                message TEXT NOT NULL,
                checked_at REAL NOT NULL,
                PRIMARY KEY (shot_key, check_name)
            ) STRICT;",
        )
        .down(
            "DROP TABLE qa_results;
            DROP TABLE runs;
            DROP TABLE analyses;
            DROP TABLE samples;
            DROP TABLE shots;",
        ),
        // 2: runs know their machine and shots, their kind and status are checked, and at most
        // one is active (queued or running) at a time.
        M::up(
            "CREATE TABLE runs_v2 (
                id INTEGER PRIMARY KEY,
                kind TEXT NOT NULL CHECK (kind IN ('sync', 'qa', 'analyze')),
                status TEXT NOT NULL CHECK (status IN
                    ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted')),
                machine TEXT,
                -- The shot keys asked for, as a JSON array; NULL: every stored shot.
                shots TEXT,
                total INTEGER NOT NULL DEFAULT 0,
                done INTEGER NOT NULL DEFAULT 0,
                passed INTEGER NOT NULL DEFAULT 0,
                failed INTEGER NOT NULL DEFAULT 0,
                created_at REAL NOT NULL,
                started_at REAL,
                finished_at REAL,
                error TEXT,
                -- What a finished run did, for a person.
                summary TEXT
            ) STRICT;
            -- Earlier runs that fit are kept; one left active is over.
            INSERT INTO runs_v2 (id, kind, status, total, done, passed, failed, created_at,
                                 started_at, finished_at, error)
                SELECT id, kind,
                       CASE WHEN status IN ('queued', 'running') THEN 'interrupted' ELSE status END,
                       total, done, passed, failed, created_at, started_at, finished_at, error
                FROM runs
                WHERE kind IN ('sync', 'qa', 'analyze') AND status IN
                    ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted');
            DROP TABLE runs;
            ALTER TABLE runs_v2 RENAME TO runs;
            CREATE UNIQUE INDEX one_active_run ON runs ((0)) WHERE status IN ('queued', 'running');",
        )
        .down(
            "CREATE TABLE runs_v1 (
                id INTEGER PRIMARY KEY,
                kind TEXT NOT NULL,
                status TEXT NOT NULL,
                total INTEGER NOT NULL DEFAULT 0,
                done INTEGER NOT NULL DEFAULT 0,
                passed INTEGER NOT NULL DEFAULT 0,
                failed INTEGER NOT NULL DEFAULT 0,
                created_at REAL NOT NULL,
                started_at REAL,
                finished_at REAL,
                error TEXT
            ) STRICT;
            INSERT INTO runs_v1 (id, kind, status, total, done, passed, failed, created_at,
                                 started_at, finished_at, error)
                SELECT id, kind, status, total, done, passed, failed, created_at, started_at,
                       finished_at, error FROM runs;
            DROP TABLE runs;
            ALTER TABLE runs_v1 RENAME TO runs;",
        ),
        // 3: many processes on one store. A lease names what a process owns (`machine:<name>`:
        // its live shots; `runs`: the active run) until it expires; `token` grows with every
        // new holder (fencing). Each machine gets a slot: its live shots take the recording keys
        // of that slot, whichever process records it. Runs remember the process that executes
        // them and what started them.
        M::up(
            "CREATE TABLE leases (
                name TEXT PRIMARY KEY,
                -- The holder: unique per process (host, pid and start time).
                owner TEXT NOT NULL,
                pid INTEGER NOT NULL,
                host TEXT NOT NULL,
                -- The holder's start, in the kernel's clock ticks since boot (0: unknown): a
                -- pid reused by another process is not the holder.
                started INTEGER NOT NULL,
                expires_at REAL NOT NULL,
                token INTEGER NOT NULL
            ) STRICT;
            CREATE TABLE machines (
                name TEXT PRIMARY KEY,
                slot INTEGER NOT NULL UNIQUE CHECK (slot > 0)
            ) STRICT;
            ALTER TABLE runs ADD COLUMN owner TEXT;
            ALTER TABLE runs ADD COLUMN started_by TEXT;",
        )
        .down(
            "ALTER TABLE runs DROP COLUMN started_by;
            ALTER TABLE runs DROP COLUMN owner;
            DROP TABLE machines;
            DROP TABLE leases;",
        ),
        // 4: the durable outbox (`outbox.rs`). Every live shot's end is recorded with it
        // (`finished`); the deliverer plans one delivery per target (`outbox`), each under
        // its idempotency key, and records each outcome.
        M::up(
            "CREATE TABLE finished (
                id INTEGER PRIMARY KEY,
                shot_key INTEGER NOT NULL REFERENCES shots (key) ON DELETE CASCADE,
                samples INTEGER NOT NULL,
                at REAL NOT NULL,
                -- When to plan it: at once for a shot that ended, later for one a crash cut
                -- (its recording may still be resumed, and the resumed end then replaces it).
                due_at REAL NOT NULL,
                expanded INTEGER NOT NULL DEFAULT 0 CHECK (expanded IN (0, 1))
            ) STRICT;
            CREATE INDEX finished_unexpanded ON finished (id) WHERE expanded = 0;
            CREATE TABLE outbox (
                id INTEGER PRIMARY KEY,
                -- webhook:<name> or analyzer:<name>
                target TEXT NOT NULL,
                -- The idempotency key, the same on every try.
                delivery TEXT NOT NULL,
                shot_key INTEGER NOT NULL REFERENCES shots (key) ON DELETE CASCADE,
                status TEXT NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
                attempts INTEGER NOT NULL DEFAULT 0,
                next_at REAL NOT NULL,
                last_error TEXT,
                created_at REAL NOT NULL,
                done_at REAL,
                UNIQUE (target, delivery)
            ) STRICT;
            CREATE INDEX outbox_due ON outbox (next_at) WHERE status = 'pending';",
        )
        .down(
            "DROP TABLE outbox;
            DROP TABLE finished;",
        ),
        // 5: the `upload` run (history shots to Visualizer). SQLite changes a CHECK by
        // rebuilding the table; nothing references `runs`.
        M::up(
            "CREATE TABLE runs_v5 (
                id INTEGER PRIMARY KEY,
                kind TEXT NOT NULL CHECK (kind IN ('sync', 'qa', 'analyze', 'upload')),
                status TEXT NOT NULL CHECK (status IN
                    ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted')),
                machine TEXT,
                shots TEXT,
                total INTEGER NOT NULL DEFAULT 0,
                done INTEGER NOT NULL DEFAULT 0,
                passed INTEGER NOT NULL DEFAULT 0,
                failed INTEGER NOT NULL DEFAULT 0,
                created_at REAL NOT NULL,
                started_at REAL,
                finished_at REAL,
                error TEXT,
                summary TEXT,
                owner TEXT,
                started_by TEXT
            ) STRICT;
            INSERT INTO runs_v5 (id, kind, status, machine, shots, total, done, passed, failed, created_at,
                started_at, finished_at, error, summary, owner, started_by)
                SELECT id, kind, status, machine, shots, total, done, passed, failed, created_at,
                started_at, finished_at, error, summary, owner, started_by FROM runs;
            DROP TABLE runs;
            ALTER TABLE runs_v5 RENAME TO runs;
            CREATE UNIQUE INDEX one_active_run ON runs ((0)) WHERE status IN ('queued', 'running');",
        )
        .down(
            "CREATE TABLE runs_v4 (
                id INTEGER PRIMARY KEY,
                kind TEXT NOT NULL CHECK (kind IN ('sync', 'qa', 'analyze')),
                status TEXT NOT NULL CHECK (status IN
                    ('queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted')),
                machine TEXT,
                shots TEXT,
                total INTEGER NOT NULL DEFAULT 0,
                done INTEGER NOT NULL DEFAULT 0,
                passed INTEGER NOT NULL DEFAULT 0,
                failed INTEGER NOT NULL DEFAULT 0,
                created_at REAL NOT NULL,
                started_at REAL,
                finished_at REAL,
                error TEXT,
                summary TEXT,
                owner TEXT,
                started_by TEXT
            ) STRICT;
            INSERT INTO runs_v4 (id, kind, status, machine, shots, total, done, passed, failed, created_at,
                started_at, finished_at, error, summary, owner, started_by)
                SELECT id, kind, status, machine, shots, total, done, passed, failed, created_at,
                started_at, finished_at, error, summary, owner, started_by FROM runs WHERE kind <> 'upload';
            DROP TABLE runs;
            ALTER TABLE runs_v4 RENAME TO runs;
            CREATE UNIQUE INDEX one_active_run ON runs ((0)) WHERE status IN ('queued', 'running');",
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid_and_go_both_ways() {
        migrations().validate().unwrap();
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        let m = migrations();
        m.to_latest(&mut conn).unwrap();
        m.to_version(&mut conn, 0).unwrap();
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0);
        m.to_latest(&mut conn).unwrap();
    }

    /// Version 2 keeps version 1's runs that fit (one left running becomes interrupted), holds
    /// at most one active run, and goes back to version 1 with its runs.
    #[test]
    fn runs_move_to_version_2_and_back() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        let m = migrations();
        m.to_version(&mut conn, 1).unwrap();
        conn.execute_batch(
            "INSERT INTO runs (kind, status, created_at) VALUES ('qa', 'succeeded', 1), ('qa', 'running', 2),
                ('weird', 'queued', 3);",
        )
        .unwrap();
        m.to_latest(&mut conn).unwrap();
        let statuses: Vec<String> = conn
            .prepare("SELECT status FROM runs ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(statuses, ["succeeded", "interrupted"]);
        conn.execute(
            "INSERT INTO runs (kind, status, created_at) VALUES ('qa', 'queued', 4)",
            [],
        )
        .unwrap();
        let second = conn.execute(
            "INSERT INTO runs (kind, status, created_at) VALUES ('sync', 'running', 5)",
            [],
        );
        assert!(second.is_err(), "a second active run is refused");
        let bad = conn.execute(
            "INSERT INTO runs (kind, status, created_at) VALUES ('qa', 'paused', 5)",
            [],
        );
        assert!(bad.is_err(), "statuses are checked");
        m.to_version(&mut conn, 1).unwrap();
        let count: i64 = conn
            .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
            .unwrap();
        assert_eq!(count, 3);
    }
}
