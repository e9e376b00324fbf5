//! `cargo xtask bench client`: one client consumes 1,000,000 small events from a client-bound
//! server (`xtask/node/blaster.mjs`: pre-encoded `42["sensors",1,{…}]` frames as fast as the
//! socket drains, then `42["done",N]`), over WebSocket. Contenders, each in its own process,
//! pinned to the other core than the server when `taskset` exists: crema's `socketio::Client`,
//! the JS `socket.io-client` 4.8, and `rust_socketio` 0.6 (async). Each prints events, seconds,
//! CPU seconds (user + system, from the request of the stream to its end) and peak RSS.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use crate::root;

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Figures {
    events: u64,
    seconds: f64,
    cpu_seconds: f64,
    peak_rss_kb: u64,
}

/// CPU seconds (user + system) of this process so far, from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Linux reports in USER_HZ, 100 on every mainstream configuration.
    (ticks(11) + ticks(12)) / 100.0
}

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Our client, in this process: `crema-bench client-crema URL COUNT`.
pub(crate) fn run_crema(url: &str, count: u64) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let figures = rt.block_on(async {
        let config = socketio::ClientConfig::new(url)?
            .engine(|e| e.transport(engineio_client::TransportMode::WebSocket));
        let client = socketio::Client::new(config);
        let (socket, mut events) = client.socket("/", socketio::Auth::None).await?;
        let mut received = 0u64;
        let mut start = None;
        let mut batch = Vec::with_capacity(256);
        'outer: while events.recv_many(&mut batch, 256).await > 0 {
            for event in batch.drain(..) {
                match event {
                    socketio::Event::Connect { .. } => {
                        start = Some((Instant::now(), cpu_seconds()));
                        socket
                            .emit("go", (serde_json::json!({ "count": count }),))
                            .await?;
                    }
                    socketio::Event::Message(event) => {
                        if event.name().as_str() == Some("done") {
                            break 'outer;
                        }
                        received += 1;
                    }
                    _ => {}
                }
            }
        }
        let (t0, cpu0) = start.context("never connected")?;
        client.close();
        anyhow::Ok(Figures {
            events: received,
            seconds: t0.elapsed().as_secs_f64(),
            cpu_seconds: cpu_seconds() - cpu0,
            peak_rss_kb: peak_rss_kb(),
        })
    })?;
    println!("{}", serde_json::to_string(&figures)?);
    Ok(())
}

/// rust_socketio 0.6 (async), in this process: `crema-bench client-rust-socketio URL COUNT`.
pub(crate) fn run_rust_socketio(url: &str, count: u64) -> anyhow::Result<()> {
    use futures_util::FutureExt as _;
    use rust_socketio::TransportType;
    use rust_socketio::asynchronous::ClientBuilder;

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let figures = rt.block_on(async {
        let received = Arc::new(AtomicU64::new(0));
        let (done_tx, mut done_rx) = tokio::sync::mpsc::channel::<()>(1);
        let (open_tx, mut open_rx) = tokio::sync::mpsc::channel::<()>(1);
        let counter = received.clone();
        let client = ClientBuilder::new(url)
            .transport_type(TransportType::Websocket)
            .on("open", move |_, _| {
                let tx = open_tx.clone();
                async move {
                    let _ = tx.send(()).await;
                }
                .boxed()
            })
            .on("sensors", move |_, _| {
                counter.fetch_add(1, Ordering::Relaxed);
                async {}.boxed()
            })
            .on("done", move |_, _| {
                let tx = done_tx.clone();
                async move {
                    let _ = tx.send(()).await;
                }
                .boxed()
            })
            .connect()
            .await?;
        let _ = tokio::time::timeout(Duration::from_secs(5), open_rx.recv()).await;
        let t0 = Instant::now();
        let cpu0 = cpu_seconds();
        client
            .emit("go", serde_json::json!({ "count": count }))
            .await?;
        done_rx.recv().await;
        let figures = Figures {
            events: received.load(Ordering::Relaxed),
            seconds: t0.elapsed().as_secs_f64(),
            cpu_seconds: cpu_seconds() - cpu0,
            peak_rss_kb: peak_rss_kb(),
        };
        let _ = client.disconnect().await;
        anyhow::Ok(figures)
    })?;
    println!("{}", serde_json::to_string(&figures)?);
    Ok(())
}

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
    let me = std::env::current_exe()?;
    let me = me.to_str().context("path")?;
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
                    let mut c = taskset("1", me);
                    c.args(["client-crema", &url, &count.to_string()]);
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
                    let mut c = taskset("1", me);
                    c.args(["client-rust-socketio", &url, &count.to_string()]);
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
