//! `cargo xtask bench fanout`: N WebSocket subscribers of one topic, events of about 200 bytes
//! published at a fixed rate, against crema's fan-out (`src/bin/bench-fanout-server.rs`: the
//! gateway's `fanout::Hub` and `/ws`) and against a Node socket.io 4.8 server broadcasting with
//! `io.emit` (`xtask/node/fanout-server.mjs`), in the same run. Each server is a process of its
//! own; so is the load generator (`src/bin/bench-fanout-load.rs`), the same program for both
//! servers, speaking each one's wire protocol.
//!
//! For each server and subscriber count: the resident memory each idle subscribed connection
//! adds to the server; the highest rate delivered without loss (a ladder of rates, each window
//! `--secs` long: a rate passes when every subscriber received every event, no `gap` was
//! reported, and the last delivery came less than a second after publishing ended); and, at
//! 1,000 subscribers, the publish→receive latency at 1,000 events per second.

use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::{Listening, root};

/// The load generator, connected.
struct Load {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Load {
    fn start(program: &str, port: u16, proto: &str, subs: usize) -> anyhow::Result<Load> {
        let mut child = Command::new(program)
            .args(["--port", &port.to_string(), "--proto", proto])
            .args(["--subs", &subs.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the load generator")?;
        let stdin = child.stdin.take().context("stdin")?;
        let mut stdout = BufReader::new(child.stdout.take().context("stdout")?);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        if line.trim() != "ready" {
            bail!("the load generator said {line:?}");
        }
        Ok(Load {
            child,
            stdin,
            stdout,
        })
    }

    fn window(&mut self, rate: f64, secs: f64) -> anyhow::Result<Value> {
        writeln!(self.stdin, "run {rate} {secs}")?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        serde_json::from_str(&line).with_context(|| format!("the load generator said {line:?}"))
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.child.wait();
    }
}

fn lossless(w: &Value) -> bool {
    let subs = w["subs"].as_u64().unwrap_or(0);
    w["delivered"].as_u64() == w["published"].as_u64().map(|p| p * subs)
        && w["gaps"].as_u64() == Some(0)
        && w["drain_ms"].as_f64().is_some_and(|d| d < 1000.0)
}

/// What one server did with one subscriber count.
struct Row {
    server: &'static str,
    subs: usize,
    rss_per_conn_kb: f64,
    /// Deliveries per second at the highest lossless rate.
    lossless: f64,
    /// At 1,000 events per second: (lossless, p50 ms, p99 ms).
    latency: Option<(bool, f64, f64)>,
}

fn measure(
    server: &'static str,
    start: &dyn Fn() -> anyhow::Result<Listening>,
    load: &str,
    proto: &str,
    subs: usize,
    secs: f64,
) -> anyhow::Result<Row> {
    let srv = start()?;
    std::thread::sleep(Duration::from_millis(300));
    let before = srv.rss_kb();
    let mut generator = Load::start(load, srv.port, proto, subs)?;
    std::thread::sleep(Duration::from_secs(1));
    let after = srv.rss_kb();
    let rss_per_conn_kb = after.saturating_sub(before) as f64 / subs as f64;
    println!("{server} × {subs}: {rss_per_conn_kb:.2} KiB RSS per idle subscribed connection");
    // Double the rate until a window loses, then bisect four times.
    let mut rate = (100_000.0 / subs as f64).max(1.0);
    let (mut good, mut bad): (f64, Option<f64>) = (0.0, None);
    for _ in 0..20 {
        let w = generator.window(rate.round(), secs)?;
        let pass = lossless(&w);
        println!(
            "  {:>8.0} events/s = {:>10.0} deliveries/s: {} (p50 {:.1} ms, p99 {:.1} ms, last delivery {:.0} ms after the scheduled end)",
            rate.round(),
            rate.round() * subs as f64,
            if pass { "lossless" } else { "LOST or late" },
            w["p50_ms"].as_f64().unwrap_or(f64::NAN),
            w["p99_ms"].as_f64().unwrap_or(f64::NAN),
            w["drain_ms"].as_f64().unwrap_or(f64::NAN),
        );
        if pass {
            good = good.max(rate.round());
        } else {
            bad = Some(bad.map_or(rate, |b: f64| b.min(rate)));
        }
        rate = match bad {
            None => rate * 2.0,
            Some(b) if b / good.max(1.0) > 1.1 => (good + b) / 2.0,
            Some(_) => break,
        };
    }
    let latency = if subs == 1000 {
        let w = generator.window(1000.0, secs)?;
        Some((
            lossless(&w),
            w["p50_ms"].as_f64().unwrap_or(f64::NAN),
            w["p99_ms"].as_f64().unwrap_or(f64::NAN),
        ))
    } else {
        None
    };
    Ok(Row {
        server,
        subs,
        rss_per_conn_kb,
        lossless: good * subs as f64,
        latency,
    })
}

/// The harness: `crema-bench fanout [--secs S] [--subs N,N…]`.
pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let mut secs = 3.0;
    let mut counts = vec![1000, 10_000];
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--secs" => secs = it.next().context("--secs S")?.parse()?,
            "--subs" => {
                counts = it
                    .next()
                    .context("--subs N,N")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?;
            }
            other => bail!("unexpected argument {other:?}"),
        }
    }
    let node_dir = root().join("xtask/node");
    if !node_dir.join("node_modules/socket.io").exists() {
        bail!("the Node peers are not installed: run `npm ci --prefix xtask/node`");
    }
    let dir = std::env::current_exe()?
        .parent()
        .context("the harness binary has no folder")?
        .to_path_buf();
    let crema_server = dir.join("bench-fanout-server");
    let load = dir.join("bench-fanout-load");
    let load = load.to_str().context("path")?;
    let start_crema = || Listening::start(Command::new(&crema_server));
    let start_node = || {
        let mut c = Command::new("node");
        c.arg("fanout-server.mjs").current_dir(&node_dir);
        Listening::start(c)
    };
    println!("fanout: one topic, events of about 200 bytes, windows of {secs} s, all on 127.0.0.1");
    let mut rows = Vec::new();
    for &subs in &counts {
        rows.push(measure("crema", &start_crema, load, "crema", subs, secs)?);
        rows.push(measure(
            "node socket.io 4.8",
            &start_node,
            load,
            "socketio",
            subs,
            secs,
        )?);
    }
    println!(
        "\n{:<20} {:>7} {:>22} {:>18} {:>26}",
        "server", "subs", "lossless deliveries/s", "RSS/idle conn KiB", "1k ev/s: p50 / p99 ms"
    );
    for r in &rows {
        let latency = r.latency.map_or(String::from("-"), |(ok, p50, p99)| {
            format!(
                "{p50:.1} / {p99:.1}{}",
                if ok { "" } else { " (lost or late)" }
            )
        });
        println!(
            "{:<20} {:>7} {:>22.0} {:>18.2} {:>26}",
            r.server, r.subs, r.lossless, r.rss_per_conn_kb, latency
        );
    }
    println!();
    for pair in rows.chunks(2) {
        if let [ours, node] = pair {
            println!(
                "{} subscribers: crema delivers {:.1}× Node's lossless rate (target ≥ 30×); {:.2} KiB vs {:.2} KiB per idle connection",
                ours.subs,
                ours.lossless / node.lossless.max(1.0),
                ours.rss_per_conn_kb,
                node.rss_per_conn_kb
            );
        }
    }
    println!(
        "targets: ≥ 3 M deliveries/s at 1,000 subscribers, ≥ 2 M/s at 10,000, p99 ≤ 20 ms at 1,000 × 1,000 ev/s, ≤ 8 KB RSS per idle connection"
    );
    Ok(())
}
