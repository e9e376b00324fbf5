//! `cargo xtask bench runs`: a QA run over 10,000 stored shots, and what it does to the live
//! path.
//!
//! * The store: the fixture shot (214 samples) copied into `--shots` history shots.
//! * The run: `recorder::runs::Runs` (what the gateway and `crema-recorder qa` start), QA
//!   over every shot, its event stream (`Runs::events`, what the SSE endpoint frames) consumed
//!   as a client would. Shots/s from the run's own start and end, and events/s over the run.
//! * The floor: a bare rusqlite loop that reads each shot's samples, parses them and runs the
//!   same checks, storing nothing. crema's run against it is the run machinery's cost (results
//!   and progress stored, snapshots published).
//! * The live path: a probe writes what a recording loop writes while a shot is brewing (a
//!   `Journal` of one sample every 100 ms, through the same store) and times each commit, idle
//!   and during the run. Target: the median during the run within 2× idle.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::StreamExt as _;
use meticulous::analysis::{self, QaShot};
use meticulous::{HistoryPage, Sample};
use storage::{Options, RunKind, RunStatus, Store, Write};

use crate::read_fixture;

struct Args {
    rounds: usize,
    shots: usize,
}

fn args(args: &[String]) -> anyhow::Result<Args> {
    let mut parsed = Args {
        rounds: 3,
        shots: 10_000,
    };
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .with_context(|| format!("{flag} takes a number"))?;
        match flag.as_str() {
            "--rounds" => parsed.rounds = value.parse().context("--rounds")?,
            "--shots" => parsed.shots = value.parse().context("--shots")?,
            other => anyhow::bail!("unexpected argument {other}"),
        }
    }
    Ok(parsed)
}

/// A store of `shots` copies of the fixture shot.
async fn fill(store: &Store, shots: usize) -> anyhow::Result<Vec<Sample>> {
    let page: HistoryPage = serde_json::from_str(&read_fixture(
        "fixtures/meticulous/meticulous_history.json",
    )?)?;
    let entry = page.history.into_iter().next().context("an entry")?;
    for chunk in (0..shots).collect::<Vec<_>>().chunks(500) {
        let writes = chunk.iter().map(|&i| {
            let mut e = entry.clone();
            e.id = format!("bench-{i:06}");
            e.db_key = Some(i as i64 + 1);
            e.time = 1.7e9 + i as f64 * 120.0;
            store.write(Write::UpsertHistory {
                machine: "default".into(),
                entry: Box::new(e),
            })
        });
        for result in futures_util::future::join_all(writes).await {
            result?;
        }
    }
    Ok(entry.data)
}

/// The floor: every shot read, parsed and checked with a bare connection; shots/s.
fn bare(path: &std::path::Path) -> anyhow::Result<f64> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    let started = Instant::now();
    let keys: Vec<i64> = conn
        .prepare("SELECT key FROM shots WHERE status <> 'recording' ORDER BY key")?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut read = conn.prepare("SELECT sample FROM samples WHERE shot_key = ?1 ORDER BY seq")?;
    let mut failing = 0usize;
    for &key in &keys {
        let samples = read
            .query_map([key], |r| r.get::<_, String>(0))?
            .map(|text| Ok(serde_json::from_str::<Sample>(&text?)?))
            .collect::<anyhow::Result<Vec<Sample>>>()?;
        let verdicts = analysis::qa(&QaShot {
            samples: &samples,
            live: false,
            end_reason: None,
            age_s: 0.0,
        });
        failing += usize::from(verdicts.iter().any(|v| !v.passed));
    }
    let elapsed = started.elapsed();
    anyhow::ensure!(failing == 0, "the fixture shot fails a check");
    Ok(keys.len() as f64 / elapsed.as_secs_f64())
}

/// Writes one sample every 100 ms as the recording loop does while a shot brews, until `stop`;
/// each commit's latency.
async fn probe(
    store: Arc<Store>,
    key: u64,
    sample: Sample,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<Vec<Duration>> {
    store
        .write(Write::StartShot {
            machine: "probe".into(),
            start: recorder_core::ShotStart {
                key,
                started_unix_s: 1.8e9,
                profile_name: None,
                profile_id: None,
            },
        })
        .await?;
    let mut latencies = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while !stop.load(Ordering::Acquire) {
        tick.tick().await;
        let started = Instant::now();
        store
            .write(Write::Journal {
                key,
                samples: vec![sample.clone()],
            })
            .await?;
        latencies.push(started.elapsed());
    }
    Ok(latencies)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One round's figures.
struct Round {
    run_rate: f64,
    bare_rate: f64,
    events_per_s: f64,
    events: usize,
    idle: Vec<Duration>,
    during: Vec<Duration>,
}

async fn round(
    store: &Arc<Store>,
    path: &std::path::Path,
    sample: &Sample,
    probe_key: u64,
) -> anyhow::Result<Round> {
    // Idle: the probe alone.
    let stop = Arc::new(AtomicBool::new(false));
    let idle = tokio::spawn(probe(
        store.clone(),
        probe_key,
        sample.clone(),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Release);
    let idle = idle.await??;

    // The run, followed as a client follows it, with the probe beside it.
    let runs = recorder::runs::Runs::new(store.clone(), Vec::new(), Vec::new(), None);
    let stop = Arc::new(AtomicBool::new(false));
    let during = tokio::spawn(probe(
        store.clone(),
        probe_key + 1,
        sample.clone(),
        stop.clone(),
    ));
    let run = match runs
        .start(recorder::runs::RunRequest {
            kind: RunKind::Qa,
            shots: None,
            machine: None,
            started_by: "api".into(),
        })
        .await?
    {
        recorder::runs::Started::Started(run) => run,
        recorder::runs::Started::Busy(run) => anyhow::bail!("run {} is active", run.id),
    };
    let events: Vec<_> = runs.events(run.id, 0)?.collect().await;
    stop.store(true, Ordering::Release);
    let during = during.await??;
    let last = &events.last().context("no events")?.run;
    anyhow::ensure!(
        last.status == RunStatus::Succeeded && last.failed == 0,
        "the run ended {:?}: {:?}",
        last.status,
        last.summary
    );
    let seconds = last.finished_at.unwrap_or(0.0) - last.started_at.unwrap_or(0.0);
    let bare_path = path.to_owned();
    let bare_rate = tokio::task::spawn_blocking(move || bare(&bare_path)).await??;
    Ok(Round {
        run_rate: last.done as f64 / seconds,
        bare_rate,
        events_per_s: events.len() as f64 / seconds,
        events: events.len(),
        idle,
        during,
    })
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let Args { rounds, shots } = self::args(args)?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("runs.db");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let store = Arc::new(Store::open(&path, Options::default())?);
        let filling = Instant::now();
        let samples = fill(&store, shots).await?;
        println!(
            "runs: QA over {shots} stored shots ({} samples each, filled in {:.1} s), {rounds} rounds, medians",
            samples.len(),
            filling.elapsed().as_secs_f64()
        );
        let sample = samples[samples.len() / 2].clone();
        let mut all = Vec::new();
        for r in 0..rounds {
            let figures = round(&store, &path, &sample, 1_000_000_000 + 2 * r as u64).await?;
            println!(
                "round {}: run {:.0} shots/s, floor {:.0} shots/s, {} events ({:.1}/s)",
                r + 1,
                figures.run_rate,
                figures.bare_rate,
                figures.events,
                figures.events_per_s
            );
            all.push(figures);
        }
        let median = |f: &dyn Fn(&Round) -> f64| {
            let mut v: Vec<f64> = all.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (run_rate, bare_rate) = (median(&|r| r.run_rate), median(&|r| r.bare_rate));
        println!("\n{:<56} {:>10}", "QA over every stored shot", "shots/s");
        println!(
            "{:<56} {:>10.0}",
            "crema run (results + progress stored, events streamed)", run_rate
        );
        println!(
            "{:<56} {:>10.0}",
            "floor: bare rusqlite read + parse + checks, no writes", bare_rate
        );
        println!("crema vs the floor: {:.0} %", 100.0 * run_rate / bare_rate);
        println!(
            "event stream: {:.1} events/s (coalesced to at most {:.0}/s)",
            median(&|r| r.events_per_s),
            1.0 / recorder::runs::COALESCE.as_secs_f64()
        );
        let mut idle: Vec<Duration> = all.iter().flat_map(|r| r.idle.clone()).collect();
        let mut during: Vec<Duration> = all.iter().flat_map(|r| r.during.clone()).collect();
        idle.sort();
        during.sort();
        println!(
            "\n{:<40} {:>8} {:>8} {:>8}",
            "live-path commit (Journal, 10 Hz)", "n", "p50 ms", "p99 ms"
        );
        for (name, l) in [("idle", &idle), ("during the QA run", &during)] {
            println!(
                "{:<40} {:>8} {:>8.2} {:>8.2}",
                name,
                l.len(),
                ms(percentile(l, 0.5)),
                ms(percentile(l, 0.99))
            );
        }
        println!(
            "during / idle: p50 {:.2}×, p99 {:.2}× (target: p50 ≤ 2×)",
            ms(percentile(&during, 0.5)) / ms(percentile(&idle, 0.5)),
            ms(percentile(&during, 0.99)) / ms(percentile(&idle, 0.99))
        );
        anyhow::Ok(())
    })
}
