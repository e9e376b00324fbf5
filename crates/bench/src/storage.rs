//! `cargo xtask bench storage`: the store against bare SQLite, and the live path's latency.
//!
//! * History import: the fixture shot (214 samples) copied into `SHOTS` shots with distinct ids,
//!   imported through `storage::Store` (`Write::UpsertHistory`, one write per shot, committed
//!   in the writer's batches), against the limit: a bare rusqlite loop over one prepared
//!   `INSERT` of the same sample JSON, in one transaction, WAL and `synchronous=FULL` alike.
//!   Rounds alternate; samples/s medians.
//! * Live path: the simulator replays the normal shot ten times faster, again and again; the
//!   recording loop of `crema-recorder` stores it; the time from the arrival of the falling edge
//!   of `extracting` at the recorder to the answer of the shot's `Finish` commit (the journal
//!   flush before it included). Median over the shots.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use meticulous::{Entry, HistoryPage};
use storage::{Database, Options, Store, Write};

use crate::read_fixture;

const SHOTS: usize = 200;

pub(crate) fn entries(shots: usize) -> anyhow::Result<Vec<Entry>> {
    let page: HistoryPage = serde_json::from_str(&read_fixture(
        "fixtures/meticulous/meticulous_history.json",
    )?)?;
    let entry = page.history.into_iter().next().context("an entry")?;
    Ok((0..shots)
        .map(|i| {
            let mut e = entry.clone();
            e.id = format!("bench-{i:06}");
            e.db_key = Some(i as i64 + 1);
            e.time += i as f64 * 120.0;
            e
        })
        .collect())
}

/// Imports `entries` into a new store at `db` through `storage::Store` (one `UpsertHistory`
/// each, sent without waiting, as a sync pipeline would); answers how long until every write
/// was answered.
pub(crate) fn import_store(entries: &[Entry], db: &Database) -> anyhow::Result<Duration> {
    let store = Store::open_database(db, Options::default())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    rt.block_on(async {
        let store = &store;
        let writes = entries.iter().map(|e| {
            store.write(Write::UpsertHistory {
                machine: "default".into(),
                entry: Box::new(e.clone()),
            })
        });
        for result in futures_util::future::join_all(writes).await {
            result?;
        }
        anyhow::Ok(())
    })?;
    let elapsed = started.elapsed();
    store.close();
    Ok(elapsed)
}

fn import_bare(entries: &[Entry], dir: &std::path::Path) -> anyhow::Result<Duration> {
    let path = dir.join("bare.db");
    let mut conn = rusqlite::Connection::open(&path)?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         CREATE TABLE samples (shot_key INTEGER NOT NULL, seq INTEGER NOT NULL, sample TEXT NOT NULL,
                               PRIMARY KEY (shot_key, seq)) STRICT, WITHOUT ROWID;",
    )?;
    let started = Instant::now();
    let tx = conn.transaction()?;
    {
        let mut insert =
            tx.prepare("INSERT INTO samples (shot_key, seq, sample) VALUES (?1, ?2, ?3)")?;
        for (shot, e) in entries.iter().enumerate() {
            for (seq, sample) in e.data.iter().enumerate() {
                insert.execute(rusqlite::params![
                    shot as i64,
                    seq as i64,
                    serde_json::to_string(sample)?
                ])?;
            }
        }
    }
    tx.commit()?;
    let elapsed = started.elapsed();
    drop(conn);
    std::fs::remove_file(&path).ok();
    Ok(elapsed)
}

/// Falling edge → `Finish` committed, for `shots` shots of the simulator at 10×.
pub(crate) fn live_latency(shots: usize, db: &Database) -> anyhow::Result<Vec<Duration>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let sim = simulator::Simulator::start(simulator::SimulatorConfig {
            scenario: simulator::Scenario::Normal,
            speed: 10.0,
            repeat: true,
            pause: Duration::from_secs(1),
            ..simulator::SimulatorConfig::default()
        })
        .await?;
        let store = Arc::new(Store::open_database(db, Options::default())?);
        let (tx, mut stored) = tokio::sync::mpsc::channel(1024);
        let stop = tokio_util::sync::CancellationToken::new();
        let recording = tokio::spawn(recorder::record::run(
            recorder::record::MachineConfig::new("default", &sim.url()),
            store.clone(),
            stop.clone(),
            Some(tx),
            None,
        ));
        let mut latencies = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60 + 12 * shots as u64);
        while latencies.len() < shots {
            tokio::select! {
                Some(done) = stored.recv() => {
                    if let recorder_core::Output::Finish(_) = &done.output {
                        latencies.push(done.at.saturating_duration_since(done.caused_at));
                    }
                }
                () = tokio::time::sleep_until(deadline) => {
                    stop.cancel();
                    let why = match recording.await {
                        Ok(Ok(())) => "the recording loop ran".to_owned(),
                        Ok(Err(e)) => format!("the recording loop failed: {e:#}"),
                        Err(e) => format!("the recording loop panicked: {e}"),
                    };
                    anyhow::bail!("only {} of {shots} shots were stored in time ({why})", latencies.len());
                }
            }
        }
        stop.cancel();
        recording.await??;
        anyhow::Ok(latencies)
    })
}

pub(crate) fn run(args: &[String]) -> anyhow::Result<()> {
    let rounds = crate::rounds_arg(args, 5)?;
    let entries = entries(SHOTS)?;
    let samples: usize = entries.iter().map(|e| e.data.len()).sum();
    let dir = tempfile::tempdir()?;
    println!(
        "storage: history import of {SHOTS} shots ({samples} samples), {rounds} rounds alternating, WAL + synchronous=FULL, medians"
    );
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        bare.push(import_bare(&entries, dir.path())?);
        let path = dir.path().join("store.db");
        ours.push(import_store(&entries, &Database::Sqlite(path.clone()))?);
        std::fs::remove_file(&path).ok();
    }
    ours.sort();
    bare.sort();
    let rate = |d: Duration| samples as f64 / d.as_secs_f64();
    let (o, b) = (rate(crate::median(&ours)), rate(crate::median(&bare)));
    println!("\n{:<52} {:>12}", "import", "samples/s");
    println!(
        "{:<52} {:>12.0}",
        "crema storage::Store (UpsertHistory, batched commits)", o
    );
    println!(
        "{:<52} {:>12.0}",
        "limit: bare rusqlite prepared INSERT, one transaction", b
    );
    println!(
        "\ncrema vs the limit: {:.0} % (target ≥ 70 %)",
        100.0 * o / b
    );

    let shots = 5;
    println!(
        "\nlive path: falling edge of extracting → shot committed, {shots} shots of the simulator at 10×"
    );
    report_live(live_latency(
        shots,
        &Database::Sqlite(dir.path().join("live.db")),
    )?);
    Ok(())
}

/// Prints the live path's latencies, sorted, and their median against the target.
pub(crate) fn report_live(mut latencies: Vec<Duration>) {
    latencies.sort();
    let ms: Vec<String> = latencies
        .iter()
        .map(|d| format!("{:.1}", d.as_secs_f64() * 1e3))
        .collect();
    println!("latencies ms: {}", ms.join(", "));
    println!(
        "median {:.1} ms (target ≤ 50 ms)",
        crate::median(&latencies).as_secs_f64() * 1e3
    );
}
