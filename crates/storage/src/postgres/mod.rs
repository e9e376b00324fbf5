//! The PostgreSQL backend, for many gateways on one store: `--db postgres://user:pass@host:port/db`.
//!
//! - **The same promises as SQLite.** Every write and read is the one `write.rs` and `read.rs`
//!   run on SQLite (the crate's connection trait, `db::Db`); a batch is one transaction with a savepoint per write,
//!   answered after its `COMMIT` (`synchronous_commit = on`: after the server's WAL flush).
//! - **One writer at a time, across processes.** Each write transaction first takes one
//!   transaction-scoped advisory lock (`WRITING`), as SQLite's `BEGIN IMMEDIATE` takes its
//!   file's write lock: the read-then-write logic of leases, runs and the outbox sees what the
//!   last writer committed, whichever gateway wrote it. A gateway batches its writes, so that
//!   is one lock per batch; readers never take it.
//! - **Sync seam, async driver.** The connections are tokio-postgres clients whose IO runs on
//!   one background runtime of the process (`runtime`); the seam's calls wait for their
//!   answers with `futures::executor::block_on`, which is safe on any thread, a tokio worker
//!   included (it waits on a channel, never drives IO), as a SQLite call would block.
//! - **Statements** are prepared once per connection, typed from their parameters.
//! - **Readers** come from a small pool of connections (`Pool`); a closed one is dropped and
//!   replaced. The writer reconnects on the next batch after its connection is lost, so a
//!   restarted server is written to again without a restart here.
//! - **Samples** are appended with one `INSERT … SELECT FROM unnest($3::text[])` per journal
//!   write or history shot: one round trip however many samples.

mod schema;

use std::collections::HashMap;
use std::future::Future;
use std::str::FromStr as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Config, NoTls, Statement};

use crate::db::{Db, DbError, Dialect, Param, Row, Value};
use crate::read::SqlReader;
use crate::write::{self, SqlWriter};
use crate::{Backend, Opened, Options, Reader, StorageError};

pub(crate) use schema::latest;

/// The advisory lock every write transaction takes first (transaction-scoped).
pub(crate) const WRITING: i64 = 0x6372_656d_615f_7772; // "crema_wr"

/// How many idle reader connections are kept.
const IDLE_READERS: usize = 16;

/// How long connecting may take before it is an error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The background runtime that drives every PostgreSQL connection's IO in this process: one
/// thread of its own, started with the first connection.
fn runtime() -> &'static tokio::runtime::Handle {
    static RUNTIME: OnceLock<tokio::runtime::Handle> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        // Without a thread or a timer the process cannot do anything else either.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("cannot start the PostgreSQL IO runtime");
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("crema-postgres".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .expect("cannot start the PostgreSQL IO thread");
        handle
    })
}

/// Waits for `future` on this thread.
fn wait<F: Future>(future: F) -> F::Output {
    futures_executor::block_on(future)
}

/// A URL's place without its password (nor a query that may carry one: `?password=`), for
/// log lines.
pub(crate) fn redact(url: &str) -> String {
    let url = match url.split_once('?') {
        Some((place, query)) if query.to_ascii_lowercase().contains("pass") => {
            return format!("{}?…", redact(place));
        }
        _ => url,
    };
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (auth, place) = match rest.rsplit_once('@') {
                Some((auth, place)) => (Some(auth), place),
                None => (None, rest),
            };
            match auth {
                Some(auth) => {
                    let user = auth.split(':').next().unwrap_or_default();
                    format!("{scheme}://{user}@{place}")
                }
                None => format!("{scheme}://{place}"),
            }
        }
        None => url.to_owned(),
    }
}

/// Connects to the server `config` names, its IO spawned on the background runtime.
fn connect(config: &Config) -> Result<Client, DbError> {
    let mut config = config.clone();
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    let task = runtime().spawn(async move {
        let (client, connection) = config.connect(NoTls).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!("a PostgreSQL connection ended: {e}");
            }
        });
        Ok::<_, tokio_postgres::Error>(client)
    });
    match wait(task) {
        Ok(connected) => Ok(connected?),
        Err(_) => Err(DbError::Batch(
            "the PostgreSQL IO thread stopped while connecting".into(),
        )),
    }
}

/// `?1` → `$1`: the statements are written once with SQLite's numbered placeholders.
fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c == '?' && !quoted && chars.peek().is_some_and(char::is_ascii_digit) {
            out.push('$');
        } else {
            out.push(c);
        }
    }
    out
}

fn pg_type(p: &Param<'_>) -> Type {
    match p {
        Param::Int(_) => Type::INT8,
        Param::Real(_) => Type::FLOAT8,
        Param::Text(_) => Type::TEXT,
        Param::Bool(_) => Type::BOOL,
    }
}

fn to_sql<'a>(p: &'a Param<'a>) -> &'a (dyn ToSql + Sync) {
    match p {
        Param::Int(v) => v,
        Param::Real(v) => v,
        Param::Text(v) => v,
        Param::Bool(v) => v,
    }
}

fn value(row: &tokio_postgres::Row, i: usize) -> Result<Value, DbError> {
    fn read<'a, T: tokio_postgres::types::FromSql<'a>>(
        row: &'a tokio_postgres::Row,
        i: usize,
        to: impl FnOnce(T) -> Value,
    ) -> Result<Value, DbError> {
        Ok(row.try_get::<_, Option<T>>(i)?.map_or(Value::Null, to))
    }
    let ty = row.columns()[i].type_().clone();
    match ty {
        Type::BOOL => read(row, i, |v: bool| Value::Int(i64::from(v))),
        Type::INT8 => read(row, i, Value::Int),
        Type::INT4 => read(row, i, |v: i32| Value::Int(i64::from(v))),
        Type::INT2 => read(row, i, |v: i16| Value::Int(i64::from(v))),
        Type::FLOAT8 => read(row, i, Value::Real),
        Type::FLOAT4 => read(row, i, |v: f32| Value::Real(f64::from(v))),
        // TEXT, VARCHAR, NAME, …: whatever reads as a string.
        _ => read(row, i, Value::Text),
    }
}

/// One connection: its client, its prepared statements, and how to connect again.
pub(crate) struct PgConn {
    config: Arc<Config>,
    client: Client,
    statements: HashMap<String, Statement>,
    /// Savepoint statements not sent yet: they go with the next statement, pipelined in one
    /// round trip (a write's savepoint costs no wait of its own).
    pending: String,
}

impl std::fmt::Debug for PgConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgConn")
            .field("closed", &self.client.is_closed())
            .field("statements", &self.statements.len())
            .finish()
    }
}

impl PgConn {
    fn open(config: Arc<Config>) -> Result<Self, DbError> {
        let client = connect(&config)?;
        Ok(Self {
            config,
            client,
            statements: HashMap::new(),
            pending: String::new(),
        })
    }

    /// Connects again if the connection was lost (the server restarted, say).
    fn reopen_if_lost(&mut self) -> Result<(), DbError> {
        if self.client.is_closed() {
            tracing::info!("reconnecting to PostgreSQL");
            self.client = connect(&self.config)?;
            self.statements.clear();
            self.pending.clear();
        }
        Ok(())
    }

    fn statement(&mut self, sql: &str, types: &[Type]) -> Result<Statement, DbError> {
        let mut key = String::with_capacity(sql.len() + types.len() + 1);
        for t in types {
            key.push(match *t {
                Type::INT8 => 'i',
                Type::FLOAT8 => 'r',
                Type::BOOL => 'b',
                Type::TEXT_ARRAY => 'a',
                _ => 't',
            });
        }
        key.push('|');
        key.push_str(sql);
        if let Some(statement) = self.statements.get(&key) {
            return Ok(statement.clone());
        }
        // A failed write's transaction accepts nothing, a prepare included, until its
        // pending `ROLLBACK TO` is sent.
        self.flush()?;
        let statement = wait(self.client.prepare_typed(&placeholders(sql), types))?;
        self.statements.insert(key, statement.clone());
        Ok(statement)
    }

    /// Sends what is pending, and waits.
    fn flush(&mut self) -> Result<(), DbError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let text = std::mem::take(&mut self.pending);
        Ok(wait(self.client.batch_execute(&text))?)
    }

    /// Waits for `statement`, with what is pending sent before it on the same round trip.
    fn pipelined<T>(
        client: &Client,
        pending: &mut String,
        statement: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, DbError> {
        if pending.is_empty() {
            return Ok(wait(statement)?);
        }
        let text = std::mem::take(pending);
        // `join` polls the control statements first: they are sent first.
        let (control, answer) = wait(futures_util::future::join(
            client.batch_execute(&text),
            statement,
        ));
        control?;
        Ok(answer?)
    }

    fn typed(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Statement, DbError> {
        let types: Vec<Type> = params.iter().map(pg_type).collect();
        self.statement(sql, &types)
    }
}

impl Db for PgConn {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, DbError> {
        let statement = self.typed(sql, params)?;
        let values: Vec<_> = params.iter().map(to_sql).collect();
        Self::pipelined(
            &self.client,
            &mut self.pending,
            self.client.execute(&statement, &values),
        )
    }

    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, DbError> {
        let statement = self.typed(sql, params)?;
        let values: Vec<_> = params.iter().map(to_sql).collect();
        let rows = Self::pipelined(
            &self.client,
            &mut self.pending,
            self.client.query(&statement, &values),
        )?;
        rows.iter()
            .map(|r| (0..r.len()).map(|i| value(r, i)).collect::<Result<_, _>>())
            .map(|values| values.map(Row))
            .collect()
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        // Savepoints wait for the next statement; anything else (BEGIN, COMMIT, ROLLBACK)
        // goes now, with them.
        if sql.starts_with("SAVEPOINT")
            || sql.starts_with("RELEASE")
            || sql.starts_with("ROLLBACK TO")
        {
            if !self.pending.is_empty() {
                self.pending.push_str("; ");
            }
            self.pending.push_str(sql);
            return Ok(());
        }
        let text = if self.pending.is_empty() {
            sql.to_owned()
        } else {
            format!("{}; {sql}", std::mem::take(&mut self.pending))
        };
        Ok(wait(self.client.batch_execute(&text))?)
    }

    fn begin_write(&mut self) -> Result<(), DbError> {
        self.reopen_if_lost()?;
        self.pending.clear();
        self.batch(&format!("BEGIN; SELECT pg_advisory_xact_lock({WRITING})"))
    }

    fn append_samples(
        &mut self,
        shot: i64,
        first_seq: i64,
        samples: &[String],
    ) -> Result<(), DbError> {
        let statement = self.statement(
            "INSERT INTO samples (shot_key, seq, sample)
             SELECT ?1, ?2 + s.n - 1, s.sample FROM unnest(?3::text[]) WITH ORDINALITY AS s(sample, n)",
            &[Type::INT8, Type::INT8, Type::TEXT_ARRAY],
        )?;
        Self::pipelined(
            &self.client,
            &mut self.pending,
            self.client
                .execute(&statement, &[&shot, &first_seq, &samples]),
        )?;
        Ok(())
    }
}

/// The idle reader connections of one store.
#[derive(Debug)]
pub(crate) struct Pool {
    config: Arc<Config>,
    idle: Mutex<Vec<PgConn>>,
}

impl Pool {
    fn get(self: &Arc<Self>) -> Result<Pooled, DbError> {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match idle {
                Some(conn) if conn.client.is_closed() => continue,
                Some(conn) => {
                    return Ok(Pooled {
                        conn: Some(conn),
                        pool: self.clone(),
                    });
                }
                None => {
                    return Ok(Pooled {
                        conn: Some(PgConn::open(self.config.clone())?),
                        pool: self.clone(),
                    });
                }
            }
        }
    }
}

/// A reader's connection, back to the pool when the reader is dropped.
#[derive(Debug)]
pub(crate) struct Pooled {
    conn: Option<PgConn>,
    pool: Arc<Pool>,
}

impl Pooled {
    fn conn(&mut self) -> &mut PgConn {
        // Only `drop` takes it.
        self.conn
            .as_mut()
            .expect("a pooled connection is present until dropped")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && !conn.client.is_closed()
        {
            let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < IDLE_READERS {
                idle.push(conn);
            }
        }
    }
}

impl Db for Pooled {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, DbError> {
        self.conn().execute(sql, params)
    }
    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, DbError> {
        self.conn().query(sql, params)
    }
    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.conn().batch(sql)
    }
    fn begin_write(&mut self) -> Result<(), DbError> {
        self.conn().begin_write()
    }
    fn append_samples(
        &mut self,
        shot: i64,
        first_seq: i64,
        samples: &[String],
    ) -> Result<(), DbError> {
        self.conn().append_samples(shot, first_seq, samples)
    }
}

/// A store on a PostgreSQL server.
#[derive(Debug)]
struct Postgres {
    pool: Arc<Pool>,
    location: String,
}

impl Backend for Postgres {
    fn reader(&self) -> Result<Box<dyn Reader>, StorageError> {
        let conn = self.pool.get().map_err(|source| StorageError::Open {
            location: self.location.clone(),
            source,
        })?;
        Ok(Box::new(SqlReader::new(conn)))
    }

    fn location(&self) -> String {
        self.location.clone()
    }
}

/// Parses a `postgres://` URL (or a `key=value` connection string).
fn config(url: &str) -> Result<Config, StorageError> {
    Config::from_str(url).map_err(|e| StorageError::Location {
        location: redact(url),
        reason: format!("{e} (expected postgres://user:password@host:port/database?options)"),
    })
}

/// Opens the store at `url`: connects, migrates (one process at a time), and finishes what
/// a stopped process left open and no live process holds.
pub fn open(url: &str, options: &Options) -> Result<Opened, StorageError> {
    let location = redact(url);
    let config = Arc::new(config(url)?);
    let opening = |source| StorageError::Open {
        location: location.clone(),
        source,
    };
    let mut writer = PgConn::open(config.clone()).map_err(opening)?;
    writer
        .batch("SET synchronous_commit = on")
        .map_err(opening)?;
    wait(schema::to_version(&writer.client, latest())).map_err(|e| StorageError::Migrate {
        location: location.clone(),
        reason: e.to_string(),
    })?;
    let (recovered, interrupted) = write::recover(&mut writer, &options.owner)?;
    Ok(Opened {
        backend: Arc::new(Postgres {
            pool: Arc::new(Pool {
                config,
                idle: Mutex::new(Vec::new()),
            }),
            location,
        }),
        writer: Box::new(SqlWriter {
            db: writer,
            me: options.owner.clone(),
            fault: options.fail_commit.clone(),
            commits: 0,
            on_close: None,
        }),
        recovered,
        interrupted,
    })
}

/// A reader of the store at `url`, without a writer (for commands that only read).
pub fn reader(url: &str) -> Result<Box<dyn Reader>, StorageError> {
    let location = redact(url);
    let conn = PgConn::open(Arc::new(config(url)?))
        .map_err(|source| StorageError::Open { location, source })?;
    Ok(Box::new(SqlReader::new(conn)))
}

/// Brings the store at `url` to schema `version` (tests; and, one day, `crema-recorder
/// migrate`).
pub fn migrate_to(url: &str, version: i64) -> Result<(), StorageError> {
    let location = redact(url);
    let config = config(url)?;
    let client = connect(&config).map_err(|source| StorageError::Open {
        location: location.clone(),
        source,
    })?;
    wait(schema::to_version(&client, version)).map_err(|e| StorageError::Migrate {
        location,
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_quotes() {
        assert_eq!(
            placeholders("SELECT ?1, '?2', ?10 FROM t WHERE a = ?2"),
            "SELECT $1, '?2', $10 FROM t WHERE a = $2"
        );
    }

    #[test]
    fn a_url_is_told_without_its_password() {
        assert_eq!(
            redact("postgres://crema:s3cr%40t@db.local:5432/crema"),
            "postgres://crema@db.local:5432/crema"
        );
        assert_eq!(
            redact("postgres://db.local/crema"),
            "postgres://db.local/crema"
        );
        // tokio-postgres also takes the password as a parameter.
        assert_eq!(
            redact("postgres://crema@db.local/crema?password=s3cret&sslmode=disable"),
            "postgres://crema@db.local/crema?…"
        );
        let db = crate::Database::parse("postgres://crema:s3cret@db.local/crema?password=s3cret");
        assert!(!format!("{db:?} {db}").contains("s3cret"));
    }
}
