//! `cargo xtask bench client`: one client consumes 1,000,000 small events from a client-bound
//! server (`xtask/node/blaster.mjs`: pre-encoded `42["sensors",1,{…}]` frames as fast as the
//! socket drains, then `42["done",N]`), over WebSocket. Contenders, each in its own process and
//! from its own binary (`src/bin/`), pinned to the other core than the server when `taskset`
//! exists: crema's `socketio::Client`, the JS `socket.io-client` 4.8, and `rust_socketio` 0.6
//! (async). Each prints events, seconds, CPU seconds (user + system, from the request of the
//! stream to its end) and peak RSS.

use anyhow::{Context as _, bail};
use crema_bench::Figures;
use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};

use crate::root;

fn taskset(core: &str, program: &str) -> Command {
    let has_taskset = Command::new("taskset")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if has_taskset {
        let mut c = Command::new("taskset");
        c.args(["-c", core, program]);
        c
    } else {
        Command::new(program)
    }
}

fn run_contender(mut cmd: Command) -> anyhow::Result<Figures> {
    let output = cmd
        .stderr(Stdio::inherit())
        .output()
        .context("cannot start a client")?;
    if !output.status.success() {
        bail!("a client failed: {}", output.status);
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let line = text.lines().last().context("no output")?;
    serde_json::from_str(line).with_context(|| format!("unexpected output {line:?}"))
}

/// The harness: `crema-bench client [--rounds N] [--count N]`.
pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let mut rounds = 5;
    let mut count: u64 = 1_000_000;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--rounds" => rounds = it.next().context("--rounds N")?.parse()?,
            "--count" => count = it.next().context("--count N")?.parse()?,
            other => bail!("unexpected argument {other:?}"),
        }
    }
    let node_dir = root().join("xtask/node");
    if !node_dir.join("node_modules/ws").exists() {
        bail!(
            "the Node peers are not installed: run `npm ci --prefix xtask/node` (or cargo xtask conformance)"
        );
    }
    let mut blaster = taskset("0", "node")
        .arg("blaster.mjs")
        .current_dir(&node_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("cannot start node")?;
    let mut line = String::new();
    BufReader::new(blaster.stdout.take().context("stdout")?).read_line(&mut line)?;
    let port: u16 = line
        .trim()
        .strip_prefix("listening ")
        .context("blaster did not start")?
        .parse()?;
    let url = format!("http://127.0.0.1:{port}");
    // Each Rust client runs from a binary of its own, as an application embedding it would.
    let dir = std::env::current_exe()?
        .parent()
        .context("the harness binary has no folder")?
        .to_path_buf();
    let crema = dir.join("bench-client-crema");
    let crema = crema.to_str().context("path")?;
    let rust_socketio = dir.join("bench-client-rust-socketio");
    let rust_socketio = rust_socketio.to_str().context("path")?;
    println!(
        "client: {count} events per round, {rounds} rounds, WebSocket, server and client pinned to different cores, medians"
    );

    let names = [
        "crema socketio::Client",
        "JS socket.io-client 4.8",
        "rust_socketio 0.6 async",
    ];
    let mut results: Vec<Vec<Figures>> = vec![Vec::new(); names.len()];
    for _ in 0..rounds {
        for (i, result) in results.iter_mut().enumerate() {
            let cmd = match i {
                0 => {
                    let mut c = taskset("1", crema);
                    c.args([&url, &count.to_string()]);
                    c
                }
                1 => {
                    let mut c = taskset("1", "node");
                    c.arg("client-js.mjs")
                        .arg(&url)
                        .arg(count.to_string())
                        .current_dir(&node_dir);
                    c
                }
                _ => {
                    let mut c = taskset("1", rust_socketio);
                    c.args([&url, &count.to_string()]);
                    c
                }
            };
            let figures = run_contender(cmd)?;
            if figures.events != count {
                bail!("{} received {} of {count} events", names[i], figures.events);
            }
            result.push(figures);
        }
    }
    let _ = blaster.kill();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut rows = Vec::new();
    for (name, figures) in names.iter().zip(&results) {
        let mut secs: Vec<f64> = figures.iter().map(|f| f.seconds).collect();
        let mut cpu: Vec<f64> = figures.iter().map(|f| f.cpu_seconds).collect();
        let mut rss: Vec<f64> = figures.iter().map(|f| f.peak_rss_kb as f64).collect();
        rows.push((name, median(&mut secs), median(&mut cpu), median(&mut rss)));
    }
    println!(
        "\n{:<28} {:>12} {:>18} {:>12}",
        "client", "msg/s", "CPU µs / event", "peak RSS MB"
    );
    for (name, secs, cpu, rss) in &rows {
        println!(
            "{:<28} {:>12.0} {:>18.2} {:>12.1}",
            name,
            count as f64 / secs,
            cpu * 1e6 / count as f64,
            rss / 1024.0
        );
    }
    let (ours, js, rs) = (rows[0], rows[1], rows[2]);
    println!(
        "\ncrema CPU per event vs JS: {:.2}× (target ≤ 0.20×); vs rust_socketio: {:.2}×",
        ours.2 / js.2,
        ours.2 / rs.2
    );
    println!(
        "crema peak RSS vs rust_socketio: {:.2}× (target ≤ 1.00×); msg/s vs JS: {:.2}×",
        ours.3 / rs.3,
        js.1 / ours.1
    );
    Ok(())
}
