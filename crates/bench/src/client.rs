//! `cargo xtask bench client`: one socket.io client consuming a server's stream of small
//! `sensors` events over WebSocket, against four servers in the same run:
//!
//! - **corked**: `xtask/node/blaster.mjs corked`, pre-framed frames 256 to a socket write: every
//!   client reads full buffers; what it costs to decode and deliver, and nothing else;
//! - **frames**: `blaster.mjs frames`, `ws.send` once per frame: one frame per socket write
//!   whenever the reader keeps up, as servers write;
//! - **socket.io**: `xtask/node/emitter.mjs`, the reference socket.io 4.8 server's
//!   `socket.emit` as fast as it goes (bursts of 500 per turn of its loop, with engine.io's
//!   own backpressure); each event stamped with its emit time;
//! - **10 Hz**: the same server at a machine's 10 Hz, two events back to back per tick (a
//!   machine's status and sensors), for the latency a user sees.
//!
//! Contenders, each in its own process and from its own binary (`src/bin/`), pinned to the other
//! core than the server when `taskset` exists: crema's `socketio_v5::Client`, the JS
//! `socket.io-client` 4.8, and `rust_socketio` 0.6 (async); and crema again with receive
//! coalescing off, to show what it buys. Each deserializes every event into
//! the same typed struct and reports user and system CPU, wake-ups (voluntary context switches),
//! peak RSS and latencies (`crema_bench::Figures`). When `perf` can count system calls here, each
//! contender runs under `perf stat` for its read calls too. Rounds interleave servers and
//! contenders; medians per cell, latencies pooled over rounds.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, bail};
use crema_bench::Figures;

use crate::{Listening, root};

fn has(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `program` pinned to `core` when taskset exists.
fn pinned(core: &str, program: &str, taskset: bool) -> Command {
    if taskset {
        let mut c = Command::new("taskset");
        c.args(["-c", core, program]);
        c
    } else {
        Command::new(program)
    }
}

/// The system calls that read a socket, counted by `perf stat` (Node reads with `read`, tokio with
/// `recvfrom`).
const READ_CALLS: [&str; 4] = [
    "syscalls:sys_enter_read",
    "syscalls:sys_enter_recvfrom",
    "syscalls:sys_enter_readv",
    "syscalls:sys_enter_recvmsg",
];

/// One contender run: its figures, and its read calls when counted.
struct Run {
    figures: Figures,
    reads: Option<u64>,
}

fn run_contender(mut cmd: Command, perf_out: Option<&Path>) -> anyhow::Result<Run> {
    let output = cmd
        .stderr(Stdio::inherit())
        .output()
        .context("cannot start a client")?;
    if !output.status.success() {
        bail!("a client failed: {}", output.status);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("no output")?;
    let figures = serde_json::from_str(line)
        .map_err(|e| anyhow::anyhow!("unexpected output ({e}): {line:.200}"))?;
    let reads = match perf_out {
        Some(path) => {
            let text = std::fs::read_to_string(path)?;
            let mut total = 0;
            for line in text.lines() {
                let mut fields = line.split(',');
                let (Some(count), Some(_), Some(event)) =
                    (fields.next(), fields.next(), fields.next())
                else {
                    continue;
                };
                if READ_CALLS.contains(&event) {
                    total += count.parse::<u64>().unwrap_or(0);
                }
            }
            Some(total)
        }
        None => None,
    };
    Ok(Run { figures, reads })
}

/// A Node load source, on core 0.
fn server(
    node_dir: &Path,
    taskset: bool,
    script: &str,
    args: &[&str],
) -> anyhow::Result<Listening> {
    let mut cmd = pinned("0", "node", taskset);
    cmd.arg(script).args(args).current_dir(node_dir);
    Listening::start(cmd).with_context(|| format!("{script} did not start"))
}

struct Scenario {
    name: String,
    server: usize,
    count: u64,
    hz: u64,
}

const CONTENDERS: [&str; 4] = [
    "crema socketio_v5::Client",
    "JS socket.io-client 4.8",
    "rust_socketio 0.6 async",
    "crema, coalescing off",
];

/// The harness: `crema-bench client [--rounds N] [--count N] [--sio-count N] [--latency-secs N]
/// [--only corked|frames|socketio|10hz] [--decode typed|count]`. `--decode count`: crema counts
/// its events without deserializing them (as reports before 2026-12-02 measured it; the other
/// clients parse every event whatever they are asked).
pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let mut rounds = 5;
    let mut count: u64 = 1_000_000;
    let mut sio_count: u64 = 300_000;
    let mut latency_secs: u64 = 10;
    let mut only: Option<String> = None;
    let mut count_only = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rounds" => rounds = it.next().context("--rounds N")?.parse()?,
            "--count" => count = it.next().context("--count N")?.parse()?,
            "--sio-count" => sio_count = it.next().context("--sio-count N")?.parse()?,
            "--latency-secs" => latency_secs = it.next().context("--latency-secs N")?.parse()?,
            "--only" => only = Some(it.next().context("--only SCENARIO")?.clone()),
            "--decode" => match it.next().map(String::as_str) {
                Some("typed") => count_only = false,
                Some("count") => count_only = true,
                _ => bail!("--decode typed|count"),
            },
            other => bail!("unexpected argument {other:?}"),
        }
    }
    let node_dir = root().join("xtask/node");
    if !node_dir.join("node_modules/ws").exists() {
        bail!(
            "the Node peers are not installed: run `npm ci --prefix xtask/node` (or cargo xtask conformance)"
        );
    }
    let taskset = has("taskset", &["--version"]);
    let perf = has(
        "perf",
        &[
            "stat",
            "-x,",
            "-o",
            "/dev/null",
            "-e",
            READ_CALLS[1],
            "true",
        ],
    );
    let servers = [
        server(&node_dir, taskset, "blaster.mjs", &["corked"])?,
        server(&node_dir, taskset, "blaster.mjs", &["frames"])?,
        server(&node_dir, taskset, "emitter.mjs", &[])?,
    ];
    let scenarios: Vec<Scenario> = [
        (
            "corked",
            "corked blaster: 256 pre-framed frames per write",
            0,
            count,
            0,
        ),
        (
            "frames",
            "one frame per write: ws.send per event",
            1,
            count,
            0,
        ),
        (
            "socketio",
            "Node socket.io 4.8 server, socket.emit at full rate",
            2,
            sio_count,
            0,
        ),
        (
            "10hz",
            "Node socket.io 4.8 server, 10 Hz, two socket.emit per tick (status and sensors)",
            2,
            latency_secs * 20,
            10,
        ),
    ]
    .into_iter()
    .filter(|(key, ..)| only.as_deref().is_none_or(|o| o == *key))
    .map(|(_, name, server, count, hz)| Scenario {
        name: name.to_owned(),
        server,
        count,
        hz,
    })
    .collect();
    if scenarios.is_empty() {
        bail!("--only takes corked, frames, socketio or 10hz");
    }
    // Each Rust client runs from a binary of its own, as an application embedding it would.
    let dir = std::env::current_exe()?
        .parent()
        .context("the harness binary has no folder")?
        .to_path_buf();
    let binary = |name: &str| -> anyhow::Result<String> {
        Ok(dir.join(name).to_str().context("path")?.to_owned())
    };
    let crema = binary("bench-client-crema")?;
    let rust_socketio = binary("bench-client-rust-socketio")?;
    let perf_dir = tempfile::tempdir()?;
    let perf_out: PathBuf = perf_dir.path().join("perf.csv");
    println!(
        "client: {rounds} rounds interleaved, WebSocket, server on core 0 and client on core 1{}, medians per cell, latencies pooled; crema {}; read calls {}",
        if taskset {
            ""
        } else {
            " (no taskset: unpinned)"
        },
        if count_only {
            "counts events without deserializing them"
        } else {
            "deserializes every event into a typed struct, as the others parse it"
        },
        if perf {
            "counted by perf stat"
        } else {
            "not counted (perf cannot count system calls here)"
        },
    );

    let mut results: Vec<Vec<Vec<Run>>> = scenarios
        .iter()
        .map(|_| CONTENDERS.iter().map(|_| Vec::new()).collect())
        .collect();
    for round in 0..rounds {
        for (s, scenario) in scenarios.iter().enumerate() {
            let url = &servers[scenario.server].url();
            for (c, name) in CONTENDERS.iter().enumerate() {
                let (program, node) = match c {
                    0 | 3 => (crema.as_str(), false),
                    1 => ("node", true),
                    _ => (rust_socketio.as_str(), false),
                };
                let mut cmd = if perf {
                    let mut cmd = Command::new("perf");
                    cmd.args(["stat", "-x,", "-o"]).arg(&perf_out);
                    for event in READ_CALLS {
                        cmd.args(["-e", event]);
                    }
                    cmd.arg("--");
                    if taskset {
                        cmd.args(["taskset", "-c", "1"]);
                    }
                    cmd.arg(program);
                    cmd
                } else {
                    pinned("1", program, taskset)
                };
                if node {
                    cmd.arg("client-js.mjs").current_dir(&node_dir);
                }
                cmd.args([url, &scenario.count.to_string(), &scenario.hz.to_string()]);
                if c == 3 {
                    cmd.env("CREMA_BENCH_COALESCING_US", "0");
                }
                if count_only && matches!(c, 0 | 3) {
                    cmd.env("CREMA_BENCH_DECODE", "count");
                }
                let run = run_contender(cmd, perf.then_some(perf_out.as_path()))?;
                if run.figures.events != scenario.count {
                    bail!(
                        "{name} received {} of {} events ({})",
                        run.figures.events,
                        scenario.count,
                        scenario.name
                    );
                }
                results[s][c].push(run);
            }
        }
        eprintln!("round {} of {rounds} done", round + 1);
    }
    drop(servers);
    for (scenario, runs) in scenarios.iter().zip(&results) {
        report(scenario, runs);
    }
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted[at]) / 1000.0
}

/// One contender's medians in one scenario.
struct Row {
    rate: f64,
    cpu_us: f64,
    user_us: f64,
    system_us: f64,
    wakeups: f64,
    reads: Option<f64>,
    rss_mb: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn row(runs: &[Run]) -> Row {
    let per_event = |f: &dyn Fn(&Figures) -> f64| {
        median(
            runs.iter()
                .map(|r| f(&r.figures) / r.figures.events as f64)
                .collect(),
        )
    };
    let mut latencies: Vec<u32> = runs
        .iter()
        .flat_map(|r| r.figures.latency_us.iter().copied())
        .collect();
    latencies.sort_unstable();
    Row {
        rate: median(
            runs.iter()
                .map(|r| r.figures.events as f64 / r.figures.seconds)
                .collect(),
        ),
        cpu_us: per_event(&|f| f.cpu_seconds * 1e6),
        user_us: per_event(&|f| f.user_seconds * 1e6),
        system_us: per_event(&|f| f.system_seconds * 1e6),
        wakeups: per_event(&|f| f.wakeups as f64),
        reads: runs.iter().all(|r| r.reads.is_some()).then(|| {
            median(
                runs.iter()
                    .map(|r| r.reads.unwrap_or(0) as f64 / r.figures.events as f64)
                    .collect(),
            )
        }),
        rss_mb: median(
            runs.iter()
                .map(|r| r.figures.peak_rss_kb as f64 / 1024.0)
                .collect(),
        ),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
    }
}

fn report(scenario: &Scenario, runs: &[Vec<Run>]) {
    let rows: Vec<Row> = runs.iter().map(|r| row(r)).collect();
    println!("\n{} ({} events)", scenario.name, scenario.count);
    println!(
        "{:<25} {:>10} {:>9} {:>8} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "client",
        "msg/s",
        "CPU µs/ev",
        "user",
        "system",
        "wakeup/ev",
        "read/ev",
        "RSS MB",
        "p50 ms",
        "p99 ms"
    );
    let ms = |v: f64| {
        if v.is_nan() {
            "-".to_owned()
        } else {
            format!("{v:.2}")
        }
    };
    for (name, r) in CONTENDERS.iter().zip(&rows) {
        println!(
            "{:<25} {:>10.0} {:>9.2} {:>8.2} {:>8.2} {:>9.3} {:>8} {:>8.1} {:>8} {:>8}",
            name,
            r.rate,
            r.cpu_us,
            r.user_us,
            r.system_us,
            r.wakeups,
            r.reads.map_or("-".to_owned(), |v| format!("{v:.3}")),
            r.rss_mb,
            ms(r.p50_ms),
            ms(r.p99_ms),
        );
    }
    let (ours, js, rs) = (&rows[0], &rows[1], &rows[2]);
    println!(
        "crema vs JS: CPU per event {:.2}×, throughput {:.2}×; vs rust_socketio: CPU {:.2}×, peak RSS {:.2}×",
        ours.cpu_us / js.cpu_us,
        ours.rate / js.rate,
        ours.cpu_us / rs.cpu_us,
        ours.rss_mb / rs.rss_mb,
    );
    let off = &rows[3];
    println!(
        "receive coalescing (500 µs) vs off: CPU per event {:.2} → {:.2} µs, throughput {:.0} → {:.0} msg/s",
        off.cpu_us, ours.cpu_us, off.rate, ours.rate
    );
    if !ours.p99_ms.is_nan() && !js.p99_ms.is_nan() {
        println!(
            "latency emit → delivery: crema p50 {:.2} / p99 {:.2} ms (coalescing off: {:.2} / {:.2}), JS p50 {:.2} / p99 {:.2} ms",
            ours.p50_ms, ours.p99_ms, off.p50_ms, off.p99_ms, js.p50_ms, js.p99_ms
        );
    }
}
