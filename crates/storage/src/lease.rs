//! Leases: what a process owns in a store shared with other processes, until a time.
//!
//! A process that records machine `m` holds `machine:m` (the machine's live shots are its); a
//! process executing a run holds `runs` (the active run is its). A lease is taken or renewed by
//! a write ([`crate::Write::Lease`]) and lasts `ttl` from then; its holder renews it well within
//! that. Whether someone else holds a lease:
//!
//! - a holder on this host holds it exactly while its process lives (the same pid with the same
//!   start time): killed with `kill -9`, it frees what it held at once; stalled past its `ttl`
//!   (a full disk, a suspended box, a clock jump), it keeps it;
//! - a holder on another host holds it until the lease expires: its liveness cannot be seen
//!   from here.
//!
//! Every new holder gets a larger `token`. A write fenced with a token
//! ([`crate::Write::Fenced`]) is refused once another process holds the lease, so a process
//! that lost its lease (it stalled past `ttl`) can no longer write what it no longer owns.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::db::{Db, params};
use crate::{StorageError, sql};

/// Who a process is, as a lease holder: a unique id, its pid, its host and its start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Owner {
    /// Unique among processes: `<host>/<pid>/<start time in µs>`.
    pub id: String,
    /// Its process id.
    pub pid: u32,
    /// Its host name.
    pub host: String,
    /// When the process started, in the kernel's clock ticks since boot (0: unknown).
    pub started: u64,
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
            started: started(pid).unwrap_or(0),
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

/// When process `pid` of this host started (`/proc/<pid>/stat`, field 22), if it is alive.
fn started(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold anything: count after it.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process `pid` that started at `since` is alive on this host; `None` where that
/// cannot be told (no `/proc`).
fn alive(pid: u32, since: u64) -> Option<bool> {
    if !std::path::Path::new("/proc/self/stat").exists() {
        return None;
    }
    Some(match started(pid) {
        None => false,
        // A holder whose start is unknown is taken at its pid.
        Some(now) => since == 0 || now == since,
    })
}

/// A lease's row.
#[derive(Clone)]
struct Row {
    owner: String,
    pid: u32,
    host: String,
    started: u64,
    expires_at: f64,
    token: u64,
}

impl Row {
    /// Held by someone other than `me`, now (see the [module docs](self)).
    fn held_against(&self, me: &Owner, now: f64) -> bool {
        // Given up (released) by its holder, or ours.
        if self.owner == me.id || self.expires_at <= 0.0 {
            return false;
        }
        let here = if self.host == me.host {
            alive(self.pid, self.started)
        } else {
            None
        };
        match here {
            Some(alive) => alive,
            None => self.expires_at > now,
        }
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

fn row(conn: &mut dyn Db, name: &str) -> Result<Option<Row>, StorageError> {
    let what = "reading a lease";
    let row = conn
        .query_opt(
            "SELECT owner, pid, host, started, expires_at, token FROM leases WHERE name = ?1",
            params![name],
        )
        .map_err(sql(what))?;
    row.map(|r| {
        Ok(Row {
            owner: r.get(0)?,
            pid: r.get(1)?,
            host: r.get(2)?,
            started: r.get(3)?,
            expires_at: r.get(4)?,
            token: r.get(5)?,
        })
    })
    .transpose()
    .map_err(sql(what))
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
    tx: &mut dyn Db,
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
    tx: &mut dyn Db,
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
    tx: &mut dyn Db,
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
        "INSERT INTO leases (name, owner, pid, host, started, expires_at, token)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
         ON CONFLICT (name) DO UPDATE SET owner = ?2, pid = ?3, host = ?4, started = ?5,
            expires_at = ?6, token = ?7",
        params![
            name,
            &me.id,
            me.pid,
            &me.host,
            me.started as i64,
            now + ttl_s,
            token as i64
        ],
    )
    .map_err(sql("taking a lease"))?;
    Ok(Taken::Held { token, new })
}

/// Renews lease `name` for `me` if `me` still holds it with `token` (nobody took it since):
/// never takes it anew. The holder otherwise.
pub(crate) fn renew(
    tx: &mut dyn Db,
    name: &str,
    token: u64,
    me: &Owner,
    ttl_s: f64,
    now: f64,
) -> Result<Result<(), Option<Holder>>, StorageError> {
    let renewed = tx
        .execute(
            "UPDATE leases SET expires_at = ?4 WHERE name = ?1 AND owner = ?2 AND token = ?3",
            params![name, &me.id, token as i64, now + ttl_s],
        )
        .map_err(sql("renewing a lease"))?;
    if renewed == 1 {
        return Ok(Ok(()));
    }
    Ok(Err(row(tx, name)?.map(|r| r.holder(name))))
}

/// Gives lease `name` up if `me` holds it (it expires now; the token stays, so the next holder
/// gets a larger one).
pub(crate) fn release(tx: &mut dyn Db, name: &str, me: &Owner) -> Result<(), StorageError> {
    tx.execute(
        "UPDATE leases SET expires_at = 0 WHERE name = ?1 AND owner = ?2",
        params![name, &me.id],
    )
    .map_err(sql("releasing a lease"))?;
    Ok(())
}

/// Whether `me` still holds `name` with `token` (nobody took it since): what a fenced write
/// checks. The holder otherwise.
pub(crate) fn check(
    tx: &mut dyn Db,
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
    conn: &mut dyn Db,
    name: &str,
    me: &Owner,
    now: f64,
) -> Result<bool, StorageError> {
    Ok(row(conn, name)?.is_some_and(|r| r.held_against(me, now)))
}

/// Whether process `owner` holds `name` now. Another process: as [`Row::held_against`] says.
/// `me`: while the lease has not expired (a run of this process whose renewer stopped without
/// its end being stored is over once its lease runs out).
pub(crate) fn held_by(
    conn: &mut dyn Db,
    name: &str,
    owner: &str,
    me: &Owner,
    now: f64,
) -> Result<bool, StorageError> {
    Ok(row(conn, name)?.is_some_and(|r| {
        r.owner == owner
            && if r.owner == me.id {
                r.expires_at > now
            } else {
                r.held_against(me, now)
            }
    }))
}

/// The lease name of machine `machine`'s live shots.
pub fn machine(machine: &str) -> String {
    format!("machine:{machine}")
}

/// The lease name of the active run.
pub const RUNS: &str = "runs";

/// The lease name of the outbox's deliverer: one process of those sharing a store delivers.
pub const OUTBOX: &str = "outbox";

/// How many bits of a recording key number a machine's shots: machine slot `s` takes the keys
/// from `s << SLOT_BITS` (slots start at 1; the keys of stores from before slots are below).
pub const SLOT_BITS: u32 = 32;

/// The first recording key free for `machine`'s next live shot: in the machine's slot (given it
/// the first time), above every key stored there.
pub(crate) fn first_key(tx: &mut dyn Db, machine: &str) -> Result<u64, StorageError> {
    let what = "numbering a machine's shots";
    let slot: Option<i64> = tx
        .query_opt(
            "SELECT slot FROM machines WHERE name = ?1",
            params![machine],
        )
        .and_then(|r| r.map(|r| r.get(0)).transpose())
        .map_err(sql(what))?;
    let slot = match slot {
        Some(slot) => slot,
        None => {
            let slot: i64 = tx
                .query_one("SELECT coalesce(max(slot), 0) + 1 FROM machines", params![])
                .and_then(|r| r.get(0))
                .map_err(sql(what))?;
            tx.execute(
                "INSERT INTO machines (name, slot) VALUES (?1, ?2)",
                params![machine, slot],
            )
            .map_err(sql(what))?;
            slot
        }
    };
    let low = slot << SLOT_BITS;
    let high = (slot + 1) << SLOT_BITS;
    let max: Option<i64> = tx
        .query_one(
            "SELECT max(recording_key) FROM shots WHERE recording_key >= ?1 AND recording_key < ?2",
            params![low, high],
        )
        .and_then(|r| r.get(0))
        .map_err(sql(what))?;
    Ok((max.unwrap_or(low) + 1) as u64)
}

/// How long a lease lasts unless renewed: what a process that dies takes from the others at
/// most (on another host; on the same host, a dead holder holds nothing). Holders renew every
/// third of it. 7 s: with a standby's retry every 2 s, a machine whose gateway died on another
/// host is recorded again within 9 s.
pub const TTL: std::time::Duration = std::time::Duration::from_secs(7);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_alive_with_its_own_start_and_not_with_another() {
        let me = Owner::this_process();
        assert!(me.started > 0, "this process's start is read from /proc");
        assert_eq!(alive(me.pid, me.started), Some(true));
        assert_eq!(
            alive(me.pid, 0),
            Some(true),
            "an unknown start is taken at its pid"
        );
        assert_eq!(
            alive(me.pid, me.started + 1),
            Some(false),
            "the same pid with another start is another process"
        );
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert_eq!(alive(pid, 0), Some(false));
    }
}
