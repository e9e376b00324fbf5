//! Private servers for tests and benchmarks: a PostgreSQL cluster and a Redis server of their
//! own, each on a free loopback port, in a temporary folder, stopped when dropped — and by a
//! watchdog when the test process dies without dropping them (a panic that aborts, `kill -9`).
//!
//! The servers are Debian's packages (`postgresql`, `redis-server`; `.ci/run` installs them).
//! When one is not installed, [`Postgres::start`] and [`Redis::start`] say so and answer `None`,
//! unless `CREMA_REQUIRE_SERVERS` is set (`cargo xtask ci` sets it): then a missing server
//! fails the test. PostgreSQL refuses to run as root; as root, its cluster belongs to the
//! `postgres` user the package creates and runs as that user (`setpriv`).

use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Whether a missing server is a failure here (`CREMA_REQUIRE_SERVERS`).
fn required() -> bool {
    std::env::var_os("CREMA_REQUIRE_SERVERS").is_some()
}

/// Says why a server cannot run here, and skips (or fails, where servers are required).
fn missing(what: &str, why: &str) -> Option<std::convert::Infallible> {
    assert!(
        !required(),
        "CREMA_REQUIRE_SERVERS is set but {what} cannot run: {why} (.ci/run installs it)"
    );
    eprintln!(
        "skipping: {what} cannot run here: {why} (`.ci/run` installs it; `cargo xtask ci` requires it)"
    );
    None
}

/// A free loopback port (free when asked: the server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

/// Stops `pid` with `signal` once this process is gone: a shell that polls for it.
fn watchdog(pid: u32, signal: &str) -> Option<Child> {
    let me = std::process::id();
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while kill -0 {me} 2>/dev/null && kill -0 {pid} 2>/dev/null; do sleep 0.5; done; kill -{signal} {pid} 2>/dev/null"
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// A private PostgreSQL cluster. Superuser `crema`, trust authentication on loopback only.
#[derive(Debug)]
pub struct Postgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    /// Its port on 127.0.0.1.
    pub port: u16,
    server: Option<Child>,
    watchdog: Option<Child>,
    databases: AtomicU32,
    as_postgres: bool,
    durable: bool,
}

/// Where Debian's PostgreSQL server programs are (the newest version installed), or the
/// folder of `initdb` on the `PATH`.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .find(|p| p.join("initdb").exists() && p.join("postgres").exists())
    })
}

impl Postgres {
    /// Starts a new cluster with `fsync` off (tests: fast, and nothing here outlives the
    /// machine); `None` when PostgreSQL is not installed and not required.
    pub fn start() -> Option<Postgres> {
        Self::start_with(false)
    }

    /// Starts a new cluster that keeps PostgreSQL's durability (`fsync` on): for
    /// benchmarks, whose figures must be the ones users get.
    pub fn start_durable() -> Option<Postgres> {
        Self::start_with(true)
    }

    fn start_with(durable: bool) -> Option<Postgres> {
        let Some(bin) = postgres_bin() else {
            missing(
                "PostgreSQL",
                "no initdb/postgres found (Debian package postgresql)",
            )?;
            unreachable!()
        };
        let as_postgres = is_root();
        if as_postgres
            && Command::new("id")
                .arg("postgres")
                .output()
                .map_or(true, |o| !o.status.success())
        {
            missing(
                "PostgreSQL",
                "running as root and there is no postgres user to run it as",
            )?;
        }
        let dir = tempfile::Builder::new()
            .prefix("crema-pg-")
            .tempdir()
            .expect("a temporary folder");
        let mut pg = Postgres {
            bin,
            dir,
            port: 0,
            server: None,
            watchdog: None,
            databases: AtomicU32::new(0),
            as_postgres,
            durable,
        };
        if as_postgres {
            let status = Command::new("chown")
                .args(["-R", "postgres:"])
                .arg(pg.dir.path())
                .status()
                .expect("chown runs");
            assert!(
                status.success(),
                "cannot give the cluster's folder to postgres"
            );
        }
        let data = pg.data();
        let out = pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                "crema",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .expect("initdb runs");
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        pg.launch();
        Some(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A command of the cluster's programs, as the user the cluster runs as.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            // setpriv execs the program itself (runuser would stay its parent and keep
            // the signals meant for it).
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                "--",
            ])
            .arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn launch(&mut self) {
        for _ in 0..5 {
            let port = if self.port == 0 {
                free_port()
            } else {
                self.port
            };
            let fsync = if self.durable { "on" } else { "off" };
            let log =
                std::fs::File::create(self.dir.path().join("server.log")).expect("a log file");
            let mut child = self
                .command("postgres")
                .arg("-D")
                .arg(self.data())
                .args(["-p", &port.to_string(), "-k"])
                .arg(self.dir.path())
                .args([
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    &format!("fsync={fsync}"),
                    "-c",
                    "max_connections=300",
                    "-c",
                    "shared_buffers=64MB",
                ])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("the log file"))
                .stderr(log)
                .spawn()
                .expect("postgres starts");
            let start = Instant::now();
            let ready = loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break false;
                }
                if self.ready(port) {
                    break true;
                }
                if start.elapsed() > Duration::from_secs(30) {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(25));
            };
            if ready {
                self.port = port;
                self.watchdog = watchdog(child.id(), "INT");
                self.server = Some(child);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("PostgreSQL did not start: {}", self.log());
    }

    fn ready(&self, port: u16) -> bool {
        self.command("pg_isready")
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    /// What the server logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// A URL of database `db` on this server.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://crema@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates a new empty database and answers its URL.
    pub fn create_database(&self) -> String {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("crema_{}_{n}", std::process::id());
        let out = Command::new(self.bin.join("createdb"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "crema",
                &name,
            ])
            .output()
            .expect("createdb runs");
        assert!(
            out.status.success(),
            "createdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.url(&name)
    }

    /// Stops the server at once, as a crash would (`SIGQUIT`: no checkpoint), and waits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = Command::new("kill")
                .args(["-QUIT", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }

    /// Starts the stopped server again on the same port, with the same data.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    /// The folder of the cluster (its `server.log` among others).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A private Redis server: no persistence, loopback only.
#[derive(Debug)]
pub struct Redis {
    dir: tempfile::TempDir,
    /// Its port on 127.0.0.1.
    pub port: u16,
    server: Option<Child>,
    watchdog: Option<Child>,
}

impl Redis {
    /// Starts a server; `None` when Redis is not installed and not required.
    pub fn start() -> Option<Redis> {
        let installed = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !installed {
            missing("Redis", "no redis-server (Debian package redis-server)")?;
        }
        let dir = tempfile::Builder::new()
            .prefix("crema-redis-")
            .tempdir()
            .expect("a temporary folder");
        let mut redis = Redis {
            dir,
            port: 0,
            server: None,
            watchdog: None,
        };
        redis.launch();
        Some(redis)
    }

    fn launch(&mut self) {
        for _ in 0..5 {
            let port = if self.port == 0 {
                free_port()
            } else {
                self.port
            };
            let log =
                std::fs::File::create(self.dir.path().join("server.log")).expect("a log file");
            let mut child = Command::new("redis-server")
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .arg("--dir")
                .arg(self.dir.path())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("the log file"))
                .stderr(log)
                .spawn()
                .expect("redis-server starts");
            let start = Instant::now();
            let ready = loop {
                if let Ok(Some(_)) = child.try_wait() {
                    break false;
                }
                if ping(port) {
                    break true;
                }
                if start.elapsed() > Duration::from_secs(10) {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(10));
            };
            if ready {
                self.port = port;
                self.watchdog = watchdog(child.id(), "TERM");
                self.server = Some(child);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "Redis did not start: {}",
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server at once (`SIGKILL`) and waits.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }

    /// Starts the stopped server again on the same port (empty: it keeps nothing).
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a Redis server answers `PING` on `port`.
fn ping(port: u16) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    stream.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_starts_answers_and_stops() {
        let Some(mut pg) = Postgres::start() else {
            return;
        };
        let url = pg.create_database();
        assert!(url.starts_with("postgres://crema@127.0.0.1:"));
        let port = pg.port;
        pg.restart();
        assert_eq!(pg.port, port, "a restart keeps the port");
        pg.stop();
        assert!(!pg.ready(port), "a stopped server answers nothing");
    }

    #[test]
    fn redis_starts_answers_and_stops() {
        let Some(mut redis) = Redis::start() else {
            return;
        };
        assert!(ping(redis.port));
        redis.stop();
        assert!(!ping(redis.port));
    }
}
