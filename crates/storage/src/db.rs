//! One connection's statements, whichever engine runs them: the seam inside this crate that
//! lets every write and read be written once for SQLite and PostgreSQL.
//!
//! Statements are written in the SQL both engines speak (`ON CONFLICT … DO UPDATE`,
//! `RETURNING`, `coalesce`, savepoints), with `?1`, `?2`, … placeholders; the few that differ
//! are chosen by [`Dialect`]. Parameters are typed ([`Param`]), so that PostgreSQL prepares
//! each statement with the types it is given instead of guessing them; rows come back as
//! [`Value`]s, read with [`Row::get`].

/// Which engine a connection speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// A statement's parameter.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<&'a str>),
    Bool(bool),
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Param::Int(Some(v))
    }
}
impl From<u32> for Param<'_> {
    fn from(v: u32) -> Self {
        Param::Int(Some(i64::from(v)))
    }
}
impl From<Option<i64>> for Param<'_> {
    fn from(v: Option<i64>) -> Self {
        Param::Int(v)
    }
}
impl From<f64> for Param<'_> {
    fn from(v: f64) -> Self {
        Param::Real(Some(v))
    }
}
impl From<Option<f64>> for Param<'_> {
    fn from(v: Option<f64>) -> Self {
        Param::Real(v)
    }
}
impl From<bool> for Param<'_> {
    fn from(v: bool) -> Self {
        Param::Bool(v)
    }
}
impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Param::Text(Some(v))
    }
}
impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Param::Text(Some(v))
    }
}
impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(v: Option<&'a str>) -> Self {
        Param::Text(v)
    }
}
impl<'a> From<&'a Option<String>> for Param<'a> {
    fn from(v: &'a Option<String>) -> Self {
        Param::Text(v.as_deref())
    }
}

/// `params![a, b, …]`: a statement's parameters, each converted by `Param::from`.
macro_rules! params {
    ($($p:expr),* $(,)?) => {
        &[$($crate::db::Param::from($p)),*] as &[$crate::db::Param<'_>]
    };
}
pub(crate) use params;

/// A column's value in a row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
}

/// One row of a query's answer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Row(pub(crate) Vec<Value>);

impl Row {
    /// Column `i`, as `T`.
    pub(crate) fn get<T: FromValue>(&self, i: usize) -> Result<T, DbError> {
        let value = self.0.get(i).ok_or(DbError::Column {
            column: i,
            wanted: T::WANTED,
            found: "missing",
        })?;
        T::from_value(value).ok_or(DbError::Column {
            column: i,
            wanted: T::WANTED,
            found: match value {
                Value::Null => "NULL",
                Value::Int(_) => "an integer",
                Value::Real(_) => "a real",
                Value::Text(_) => "text",
            },
        })
    }
}

/// A Rust type a column reads as.
pub(crate) trait FromValue: Sized {
    const WANTED: &'static str;
    fn from_value(value: &Value) -> Option<Self>;
}

impl FromValue for i64 {
    const WANTED: &'static str = "an integer";
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }
}
impl FromValue for u64 {
    const WANTED: &'static str = "a count";
    fn from_value(value: &Value) -> Option<Self> {
        i64::from_value(value).map(|v| v.max(0) as u64)
    }
}
impl FromValue for u32 {
    const WANTED: &'static str = "a small count";
    fn from_value(value: &Value) -> Option<Self> {
        i64::from_value(value).and_then(|v| u32::try_from(v.max(0)).ok())
    }
}
impl FromValue for f64 {
    const WANTED: &'static str = "a real";
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Real(v) => Some(*v),
            Value::Int(v) => Some(*v as f64),
            _ => None,
        }
    }
}
impl FromValue for bool {
    const WANTED: &'static str = "a boolean";
    fn from_value(value: &Value) -> Option<Self> {
        i64::from_value(value).map(|v| v != 0)
    }
}
impl FromValue for String {
    const WANTED: &'static str = "text";
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Text(v) => Some(v.clone()),
            _ => None,
        }
    }
}
impl<T: FromValue> FromValue for Option<T> {
    const WANTED: &'static str = T::WANTED;
    fn from_value(value: &Value) -> Option<Self> {
        match value {
            Value::Null => Some(None),
            v => T::from_value(v).map(Some),
        }
    }
}

/// Why a statement failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// SQLite's reason (a full disk reads "database or disk is full").
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL's reason, or why the connection to it failed.
    #[error("{}", postgres_reason(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// A column did not hold what the statement's reader expected.
    #[error("column {column} is {found}, not {wanted}")]
    Column {
        /// Its index.
        column: usize,
        /// What was expected.
        wanted: &'static str,
        /// What it held.
        found: &'static str,
    },
    /// A statement that must answer a row answered none.
    #[error("no row answered")]
    NoRow,
    /// Every write of a batch fails the same way when its commit fails; this is that
    /// failure, for each of them.
    #[error("{0}")]
    Batch(String),
}

/// tokio-postgres says "db error" and keeps the server's message in its source.
fn postgres_reason(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "PostgreSQL: {}: {} ({})",
            db.severity(),
            db.message(),
            db.code().code()
        ),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("PostgreSQL: {e}: {cause}"),
            None => format!("PostgreSQL: {e}"),
        },
    }
}

/// One connection: what the writer and the readers run their statements on.
pub(crate) trait Db {
    /// The engine.
    fn dialect(&self) -> Dialect;
    /// Runs a statement; answers how many rows it changed.
    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, DbError>;
    /// Runs a query; answers its rows.
    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, DbError>;
    /// Runs statements without parameters (transaction control, savepoints).
    fn batch(&mut self, sql: &str) -> Result<(), DbError>;
    /// Opens the write transaction: one writer at a time on the store, whatever process.
    fn begin_write(&mut self) -> Result<(), DbError>;
    /// Appends `samples` (JSON text) to shot row `shot` from sequence number `first_seq` on,
    /// the fastest way the engine has.
    fn append_samples(
        &mut self,
        shot: i64,
        first_seq: i64,
        samples: &[String],
    ) -> Result<(), DbError>;

    /// The first row of a query, if any.
    fn query_opt(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }
    /// The first row of a query that must answer one.
    fn query_one(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Row, DbError> {
        self.query_opt(sql, params)?.ok_or(DbError::NoRow)
    }
}

/// Reads every row of `rows` with `read`.
pub(crate) fn each<T>(
    rows: Vec<Row>,
    read: impl Fn(&Row) -> Result<T, DbError>,
) -> Result<Vec<T>, DbError> {
    rows.iter().map(read).collect()
}

// SQLite: rusqlite's connection, statements cached.

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value as V, ValueRef};
        Ok(match *self {
            Param::Int(Some(v)) => ToSqlOutput::Owned(V::Integer(v)),
            Param::Real(Some(v)) => ToSqlOutput::Owned(V::Real(v)),
            Param::Text(Some(v)) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Param::Bool(v) => ToSqlOutput::Owned(V::Integer(i64::from(v))),
            Param::Int(None) | Param::Real(None) | Param::Text(None) => ToSqlOutput::Owned(V::Null),
        })
    }
}

impl Db for rusqlite::Connection {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&mut self, sql: &str, params: &[Param<'_>]) -> Result<u64, DbError> {
        let mut stmt = self.prepare_cached(sql)?;
        Ok(stmt.execute(rusqlite::params_from_iter(params))? as u64)
    }

    fn query(&mut self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>, DbError> {
        use rusqlite::types::ValueRef;
        let mut stmt = self.prepare_cached(sql)?;
        let columns = stmt.column_count();
        let mut rows = stmt.query(rusqlite::params_from_iter(params))?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(match r.get_ref(i)? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(v) => Value::Int(v),
                    ValueRef::Real(v) => Value::Real(v),
                    ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    ValueRef::Blob(_) => {
                        return Err(DbError::Column {
                            column: i,
                            wanted: "a value",
                            found: "a blob",
                        });
                    }
                });
            }
            out.push(Row(values));
        }
        Ok(out)
    }

    fn batch(&mut self, sql: &str) -> Result<(), DbError> {
        Ok(self.execute_batch(sql)?)
    }

    fn begin_write(&mut self) -> Result<(), DbError> {
        // IMMEDIATE: the write lock now, so that a busy database waits here (busy timeout)
        // rather than failing a statement halfway.
        Ok(self.execute_batch("BEGIN IMMEDIATE")?)
    }

    fn append_samples(
        &mut self,
        shot: i64,
        first_seq: i64,
        samples: &[String],
    ) -> Result<(), DbError> {
        // In process, a prepared statement per row is as fast as SQLite goes.
        let mut insert =
            self.prepare_cached("INSERT INTO samples (shot_key, seq, sample) VALUES (?1, ?2, ?3)")?;
        for (i, sample) in samples.iter().enumerate() {
            insert.execute(rusqlite::params![shot, first_seq + i as i64, sample])?;
        }
        Ok(())
    }
}
