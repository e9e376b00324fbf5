//! Leases: what a process owns in a store shared with other processes, until a time.
//!
//! A process that records machine `m` holds `machine:m` (the machine's live shots are its); a
//! process executing a run holds `runs` (the active run is its). A lease is taken or renewed by
//! a write ([`crate::Write::Lease`]) and lasts `ttl` from then; its holder renews it well within
//! that. A lease counts as held while it has not expired and, when its holder is on this host,
//! while the holder's process is alive: a holder killed with `kill -9` frees what it held at
//! once for a process on the same host, and after `ttl` for any other.
//!
//! Every new holder gets a larger `token`. A write fenced with a token
//! ([`crate::Write::Fenced`]) is refused once another process holds the lease, so a process
//! that lost its lease (it stalled past `ttl`) can no longer write what it no longer owns.

use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension as _, params};
use serde::Serialize;

use crate::{StorageError, sql};

/// Who a process is, as a lease holder: a unique id, its pid and its host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    /// Unique among processes: `<host>/<pid>/<start time in µs>`.
    pub id: String,
    /// Its process id.
    pub pid: u32,
    /// Its host name.
    pub host: String,
}

impl Owner {
    /// This process.
    pub fn this_process() -> Owner {
        let pid = std::process::id();
        let host = host_name();
        let micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        Owner {
            id: format!("{host}/{pid}/{micros}"),
            pid,
            host,
        }
    }
}

/// The holder of a lease someone else holds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Holder {
    /// The lease.
    pub name: String,
    /// Its holder's id.
    pub owner: String,
    /// Its holder's pid.
    pub pid: u32,
    /// Its holder's host.
    pub host: String,
    /// When it expires unless renewed, Unix seconds.
    pub expires_at: f64,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is held by process {} on {} (its lease runs {:.0} s more unless renewed)",
            self.name,
            self.pid,
            self.host,
            (self.expires_at - now()).max(0.0)
        )
    }
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The host's name (the kernel's, else `/etc/hostname`, else `localhost`).
fn host_name() -> String {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .find_map(|p| {
            let name = std::fs::read_to_string(p).ok()?;
            let name = name.trim();
            (!name.is_empty()).then(|| name.to_owned())
        })
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Whether process `pid` of this host is alive. Where that cannot be told (no `/proc`), it is
/// taken as alive and only the lease's expiry frees what it held.
fn alive(pid: u32) -> bool {
    let proc = std::path::Path::new("/proc");
    !proc.join("self").exists() || proc.join(pid.to_string()).exists()
}

/// A lease's row.
#[derive(Clone)]
struct Row {
    owner: String,
    pid: u32,
    host: String,
    expires_at: f64,
    token: u64,
}

impl Row {
    /// Held by someone other than `me`, now.
    fn held_against(&self, me: &Owner, now: f64) -> bool {
        // A holder on another host is taken at its word until it expires; one on this host
        // also has to be alive.
        self.owner != me.id && self.expires_at > now && (self.host != me.host || alive(self.pid))
    }

    fn holder(self, name: &str) -> Holder {
        Holder {
            name: name.to_owned(),
            owner: self.owner,
            pid: self.pid,
            host: self.host,
            expires_at: self.expires_at,
        }
    }
}

fn row(conn: &Connection, name: &str) -> Result<Option<Row>, StorageError> {
    conn.query_row(
        "SELECT owner, pid, host, expires_at, token FROM leases WHERE name = ?1",
        [name],
        |r| {
            Ok(Row {
                owner: r.get(0)?,
                pid: r.get::<_, i64>(1)?.max(0) as u32,
                host: r.get(2)?,
                expires_at: r.get(3)?,
                token: r.get::<_, i64>(4)?.max(0) as u64,
            })
        },
    )
    .optional()
    .map_err(sql("reading a lease"))
}

/// What taking a lease did.
pub(crate) enum Taken {
    /// `me` holds it now, with this token; `new` when it was not `me`'s before.
    Held { token: u64, new: bool },
    /// Someone else holds it.
    Refused(Holder),
}

/// Takes or renews lease `name` for `me` until `now + ttl_s`.
pub(crate) fn take(
    tx: &Connection,
    name: &str,
    me: &Owner,
    ttl_s: f64,
    now: f64,
) -> Result<Taken, StorageError> {
    let current = row(tx, name)?;
    if let Some(r) = current.as_ref().filter(|r| r.held_against(me, now)) {
        return Ok(Taken::Refused(r.clone().holder(name)));
    }
    seize(tx, name, current, me, ttl_s, now)
}

/// Takes lease `name` for `me` whoever holds it: for a lease whose meaning is gone (the runs
/// lease when no run is active).
pub(crate) fn take_over(
    tx: &Connection,
    name: &str,
    me: &Owner,
    ttl_s: f64,
    now: f64,
) -> Result<u64, StorageError> {
    let current = row(tx, name)?;
    match seize(tx, name, current, me, ttl_s, now)? {
        Taken::Held { token, .. } => Ok(token),
        Taken::Refused(_) => unreachable!("seize always takes"),
    }
}

fn seize(
    tx: &Connection,
    name: &str,
    current: Option<Row>,
    me: &Owner,
    ttl_s: f64,
    now: f64,
) -> Result<Taken, StorageError> {
    let (token, new) = match current {
        // Still ours: nobody took it meanwhile (a taker changes the owner), same token.
        Some(r) if r.owner == me.id => (r.token, false),
        Some(r) => (r.token + 1, true),
        None => (1, true),
    };
    tx.execute(
        "INSERT INTO leases (name, owner, pid, host, expires_at, token)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (name) DO UPDATE SET owner = ?2, pid = ?3, host = ?4, expires_at = ?5,
            token = ?6",
        params![name, me.id, me.pid, me.host, now + ttl_s, token as i64],
    )
    .map_err(sql("taking a lease"))?;
    Ok(Taken::Held { token, new })
}

/// Gives lease `name` up if `me` holds it (it expires now; the token stays, so the next holder
/// gets a larger one).
pub(crate) fn release(tx: &Connection, name: &str, me: &Owner) -> Result<(), StorageError> {
    tx.execute(
        "UPDATE leases SET expires_at = 0 WHERE name = ?1 AND owner = ?2",
        params![name, me.id],
    )
    .map_err(sql("releasing a lease"))?;
    Ok(())
}

/// Whether `me` still holds `name` with `token` (nobody took it since): what a fenced write
/// checks. The holder otherwise.
pub(crate) fn check(
    tx: &Connection,
    name: &str,
    token: u64,
    me: &Owner,
) -> Result<Result<(), Option<Holder>>, StorageError> {
    match row(tx, name)? {
        Some(r) if r.owner == me.id && r.token == token => Ok(Ok(())),
        Some(r) => Ok(Err(Some(r.holder(name)))),
        None => Ok(Err(None)),
    }
}

/// Whether someone other than `me` holds `name` now.
pub(crate) fn held_by_other(
    conn: &Connection,
    name: &str,
    me: &Owner,
    now: f64,
) -> Result<bool, StorageError> {
    Ok(row(conn, name)?.is_some_and(|r| r.held_against(me, now)))
}

/// Whether process `owner` holds `name` now (from `me`'s point of view: on `me`'s host, a dead
/// holder holds nothing).
pub(crate) fn held_by(
    conn: &Connection,
    name: &str,
    owner: &str,
    me: &Owner,
    now: f64,
) -> Result<bool, StorageError> {
    Ok(row(conn, name)?
        .is_some_and(|r| r.owner == owner && (r.owner == me.id || r.held_against(me, now))))
}

/// The lease name of machine `machine`'s live shots.
pub fn machine(machine: &str) -> String {
    format!("machine:{machine}")
}

/// The lease name of the active run.
pub const RUNS: &str = "runs";

/// How long a lease lasts unless renewed: what a process that dies takes from the others at
/// most (on another host; on the same host, a dead holder holds nothing). Holders renew every
/// third of it.
pub const TTL: std::time::Duration = std::time::Duration::from_secs(10);
