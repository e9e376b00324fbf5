//! `cargo xtask bench scale`: crema on PostgreSQL and Redis, against the same engines used
//! bare, in one run. Private servers from `testbed` (PostgreSQL with `fsync` on, as deployed).
//!
//! * **History import on PostgreSQL**: the fixture shot copied into `SHOTS` shots, imported
//!   through `storage::Store` (`Write::UpsertHistory`, the writer's batches, the advisory write
//!   lock, savepoints, the upsert logic), against a bare batched insert of the same rows with
//!   the same client (tokio-postgres): one transaction, one multi-row `INSERT … unnest()` per
//!   shot. Rounds alternate; samples/s medians (target ≥ 70 %).
//! * **Live shot commit on PostgreSQL**: the simulator's shot at 10×, recorded by the recording
//!   loop into PostgreSQL; falling edge of `extracting` → the shot's `Finish` committed. Median
//!   (target ≤ 50 ms).
//! * **Lossless deliveries through Redis**: one recording's events reach 1,000 subscribers split
//!   over two instances' hubs through the broker (publisher script, `XREAD`, `Hub::accept`),
//!   against the same 1,000 on one in-process hub. The publisher goes as fast as the slowest
//!   subscriber allows without any being dropped (never more than 2,048 events ahead of it; the
//!   hub lets a subscriber fall 4,096 behind, the stream keeps 4,096): deliveries/s, and the
//!   ratio. A run that lost an event anywhere (a lag, a gap, a drop) fails.
//! * **Latency the broker adds**: 10 machines × 10 Hz, two events each (`status`, `sensors`), for
//!   `--secs` seconds: from the recording's sink call to a subscriber of the other instance,
//!   against the in-process hub's publish → subscriber. p50 and p99 (target p99 ≤ 5 ms).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use broker::Broker;
use fanout::Hub;
use serde_json::value::RawValue;
use storage::{Database, Options, Store};
use tokio_util::sync::CancellationToken;

const SHOTS: usize = 200;

/// The same rows with the same client, bare: into a table of samples without constraints
/// (`schema: false`: what the engine does at best), or into crema's own tables, made by its
/// migration, with their keys, indexes and foreign key (`schema: true`): a shot row
/// `RETURNING` its key and one multi-row insert of its samples, per shot, in one transaction.
fn import_bare(url: &str, entries: &[meticulous::Entry], schema: bool) -> anyhow::Result<Duration> {
    if schema {
        Store::open_database(&Database::parse(url), Options::default())?.close();
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        if !schema {
            client
                .batch_execute(
                    "CREATE TABLE samples (shot_key BIGINT NOT NULL, seq BIGINT NOT NULL,
                     sample TEXT NOT NULL, PRIMARY KEY (shot_key, seq))",
                )
                .await?;
        }
        let shot = client
            .prepare(
                "INSERT INTO shots (machine, id, time, name, profile, source, status, db_key,
                                    file, sample_count, updated_at)
                 VALUES ('default', $1, $2, $3, $4, 'history', 'complete', $5, $6, $7, 0)
                 RETURNING key",
            )
            .await;
        let insert = client
            .prepare(
                "INSERT INTO samples (shot_key, seq, sample)
                 SELECT $1, s.n - 1, s.sample FROM unnest($2::text[]) WITH ORDINALITY AS s(sample, n)",
            )
            .await?;
        let started = Instant::now();
        client.batch_execute("BEGIN").await?;
        for (i, e) in entries.iter().enumerate() {
            let texts: Vec<String> = e
                .data
                .iter()
                .map(serde_json::to_string)
                .collect::<Result<_, _>>()?;
            let key: i64 = match (&shot, schema) {
                (Ok(shot), true) => {
                    let profile = e.profile.as_ref().map(|p| p.get());
                    client
                        .query_one(
                            shot,
                            &[&e.id, &e.time, &e.name, &profile, &e.db_key, &e.file, &(texts.len() as i64)],
                        )
                        .await?
                        .get(0)
                }
                _ => i as i64,
            };
            client.execute(&insert, &[&key, &texts]).await?;
        }
        client.batch_execute("COMMIT").await?;
        anyhow::Ok(started.elapsed())
    })
}

fn data(n: u64) -> Box<RawValue> {
    RawValue::from_string(format!("{{\"n\":{n}}}")).expect("JSON")
}

/// Subscribers of `topic` on `hubs` (split evenly), each counting what it receives; answers
/// the counters and the tasks.
fn subscribers(
    hubs: &[Arc<Hub>],
    topic: &str,
    total: usize,
    lost: &Arc<AtomicU64>,
) -> Vec<Arc<AtomicU64>> {
    (0..total)
        .map(|i| {
            let hub = &hubs[i % hubs.len()];
            let mut live = hub.subscribe(topic).live;
            let seen = Arc::new(AtomicU64::new(0));
            let (counter, lost) = (seen.clone(), lost.clone());
            tokio::spawn(async move {
                loop {
                    match live.recv().await {
                        Ok(_) => {
                            counter.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            lost.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(_) => return,
                    }
                }
            });
            seen
        })
        .collect()
}

/// Publishes `events` through `publish` as fast as the slowest subscriber allows; answers
/// deliveries/s and how many were lost.
async fn deliveries(
    publish: impl Fn(u64),
    seen: &[Arc<AtomicU64>],
    lost: &AtomicU64,
    events: u64,
) -> (f64, u64) {
    let slowest = || {
        seen.iter()
            .map(|s| s.load(Ordering::Relaxed))
            .min()
            .unwrap_or(0)
    };
    let started = Instant::now();
    let mut sent = 0;
    while sent < events {
        while sent - slowest() > 2048 {
            tokio::time::sleep(Duration::from_micros(200)).await;
        }
        for _ in 0..64.min(events - sent) {
            sent += 1;
            publish(sent);
        }
        tokio::task::yield_now().await;
    }
    while slowest() < events && lost.load(Ordering::Relaxed) == 0 {
        tokio::time::sleep(Duration::from_micros(200)).await;
        if started.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let delivered: u64 = seen.iter().map(|s| s.load(Ordering::Relaxed)).sum();
    (delivered as f64 / elapsed, lost.load(Ordering::Relaxed))
}

async fn broker_instance(
    url: &str,
    topics: &[String],
    stop: &CancellationToken,
) -> anyhow::Result<(Arc<Hub>, Broker)> {
    let epoch = Broker::epoch(url, "bench").await?;
    let hub = Arc::new(Hub::new(epoch, 1024, 4096));
    for t in topics {
        hub.declare(t);
    }
    let b = Broker::start(url, "bench", hub.clone(), topics.to_vec(), stop.clone())?;
    let started = Instant::now();
    while !b.healthy() {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(10),
            "the broker did not connect"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok((hub, b))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// Sink call → subscriber on the other instance, 10 machines × 10 Hz × 2 events.
async fn latency(
    publish: &[Box<dyn Fn(u64) + Send + Sync>],
    hubs: &[Arc<Hub>],
    topics: &[String],
    secs: u64,
    origin: Instant,
) -> Vec<Duration> {
    let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
    let hub = hubs.last().expect("a hub");
    for topic in topics {
        let mut live = hub.subscribe(topic).live;
        let samples = samples.clone();
        tokio::spawn(async move {
            while let Ok(event) = live.recv().await {
                let now = origin.elapsed();
                let sent: serde_json::Value =
                    serde_json::from_str(event.data.get()).unwrap_or_default();
                if let Some(ns) = sent["n"].as_u64() {
                    samples
                        .lock()
                        .expect("samples")
                        .push(now.saturating_sub(Duration::from_nanos(ns)));
                }
            }
        });
    }
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let until = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < until {
        tick.tick().await;
        for p in publish {
            p(origin.elapsed().as_nanos() as u64);
            p(origin.elapsed().as_nanos() as u64);
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut all = samples.lock().expect("samples").clone();
    all.sort();
    all
}

fn args(args: &[String]) -> anyhow::Result<(usize, u64)> {
    let (mut rounds, mut secs) = (3, 20);
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().context("a flag takes a value")?;
        match flag.as_str() {
            "--rounds" => rounds = value.parse()?,
            "--secs" => secs = value.parse()?,
            other => anyhow::bail!("unexpected argument {other}"),
        }
    }
    Ok((rounds, secs))
}

pub(crate) fn run(argv: &[String]) -> anyhow::Result<()> {
    let (rounds, secs) = args(argv)?;
    let pg = testbed::Postgres::start_durable().context("PostgreSQL is not installed")?;
    let redis = testbed::Redis::start().context("Redis is not installed")?;
    let entries = crate::storage::entries(SHOTS)?;
    let samples: usize = entries.iter().map(|e| e.data.len()).sum();
    println!(
        "scale: PostgreSQL (fsync on) history import of {SHOTS} shots ({samples} samples), {rounds} rounds alternating, medians"
    );
    let (mut ours, mut bare, mut floor) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        floor.push(import_bare(&pg.create_database(), &entries, false)?);
        bare.push(import_bare(&pg.create_database(), &entries, true)?);
        ours.push(crate::storage::import_store(
            &entries,
            &Database::parse(&pg.create_database()),
        )?);
    }
    for v in [&mut ours, &mut bare, &mut floor] {
        v.sort();
    }
    let rate = |d: &[Duration]| samples as f64 / crate::median(d).as_secs_f64();
    let (o, b, f) = (rate(&ours), rate(&bare), rate(&floor));
    println!("\n{:<66} {:>12}", "import", "samples/s");
    println!(
        "{:<66} {:>12.0}",
        "crema storage::Store on PostgreSQL (UpsertHistory)", o
    );
    println!(
        "{:<66} {:>12.0}",
        "bare, crema's tables: shot row + INSERT … unnest(), one tx", b
    );
    println!(
        "{:<66} {:>12.0}",
        "bare, a table without constraints: INSERT … unnest(), one tx", f
    );
    println!(
        "\ncrema vs bare into the same tables: {:.0} % (target ≥ 70 %); vs the unconstrained table: {:.0} %",
        100.0 * o / b,
        100.0 * o / f
    );

    let shots = 5;
    println!(
        "\nlive path on PostgreSQL: falling edge of extracting → shot committed, {shots} shots at 10×"
    );
    crate::storage::report_live(crate::storage::live_latency(
        shots,
        &Database::parse(&pg.create_database()),
    )?);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let stop = CancellationToken::new();
        let url = redis.url();
        let topic = "machine:bench".to_owned();
        let events = 20_000;
        println!("\nlossless deliveries: {events} events of one machine to 1,000 subscribers, {rounds} rounds, medians");
        let (mut via_broker, mut in_process) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let t = format!("{topic}{round}");
            let topics = vec![t.clone()];
            let (a, broker_a) = broker_instance(&url, &topics, &stop).await?;
            let (b, _broker_b) = broker_instance(&url, &topics, &stop).await?;
            let lost = Arc::new(AtomicU64::new(0));
            let seen = subscribers(&[a.clone(), b.clone()], &t, 1000, &lost);
            let sink = broker_a.publisher(&t);
            let (rate, lost_n) = deliveries(|n| sink(1, "sensors", &data(n)), &seen, &lost, events).await;
            let gaps = broker_a.health().gaps.load(Ordering::Relaxed)
                + _broker_b.health().gaps.load(Ordering::Relaxed)
                + broker_a.health().dropped.load(Ordering::Relaxed);
            anyhow::ensure!(lost_n == 0 && gaps == 0, "the broker run lost events ({lost_n} lagged, {gaps} gaps or drops)");
            via_broker.push(rate);

            let hub = Arc::new(Hub::new(1, 1024, 4096));
            let lost = Arc::new(AtomicU64::new(0));
            let seen = subscribers(std::slice::from_ref(&hub), &t, 1000, &lost);
            let (rate, lost_n) = deliveries(
                |n| {
                    hub.publish(&t, "sensors", &data(n), std::time::SystemTime::now());
                },
                &seen,
                &lost,
                events,
            )
            .await;
            anyhow::ensure!(lost_n == 0, "the in-process run lost {lost_n} events");
            in_process.push(rate);
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (r, l) = (med(&mut via_broker), med(&mut in_process));
        println!("{:<60} {:>14}", "", "deliveries/s");
        println!("{:<60} {:>14.0}", "2 instances × 500 subscribers, through Redis", r);
        println!("{:<60} {:>14.0}", "1 instance × 1,000 subscribers, in-process hub", l);
        println!("through Redis vs in-process: {:.0} %", 100.0 * r / l);

        println!("\nlatency: 10 machines × 10 Hz × 2 events for {secs} s, sink → subscriber");
        let topics: Vec<String> = (0..10).map(|i| format!("machine:lat{i}")).collect();
        let (_, broker_a) = broker_instance(&url, &topics, &stop).await?;
        let (b, _broker_b) = broker_instance(&url, &topics, &stop).await?;
        let origin = Instant::now();
        let sinks: Vec<Box<dyn Fn(u64) + Send + Sync>> = topics
            .iter()
            .map(|t| {
                let sink = broker_a.publisher(t);
                Box::new(move |n: u64| sink(1, "status", &data(n))) as Box<dyn Fn(u64) + Send + Sync>
            })
            .collect();
        let through = latency(&sinks, &[b], &topics, secs, origin).await;
        let hub = Arc::new(Hub::new(1, 1024, 4096));
        let local: Vec<Box<dyn Fn(u64) + Send + Sync>> = topics
            .iter()
            .map(|t| {
                let (hub, t) = (hub.clone(), t.clone());
                Box::new(move |n: u64| {
                    hub.publish(&t, "status", &data(n), std::time::SystemTime::now());
                }) as Box<dyn Fn(u64) + Send + Sync>
            })
            .collect();
        let direct = latency(&local, &[hub], &topics, secs, origin).await;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        println!("{:<60} {:>8} {:>8} {:>8}", "", "p50 ms", "p99 ms", "events");
        for (name, v) in [("through Redis, to the other instance", &through), ("in-process hub", &direct)] {
            anyhow::ensure!(!v.is_empty(), "no event arrived ({name})");
            println!(
                "{:<60} {:>8.2} {:>8.2} {:>8}",
                name,
                ms(percentile(v, 0.5)),
                ms(percentile(v, 0.99)),
                v.len()
            );
        }
        println!(
            "the broker adds {:.2} ms at p99 (target ≤ 5 ms)",
            ms(percentile(&through, 0.99)) - ms(percentile(&direct, 0.99))
        );

        // The same, from the field: 10 simulated machines streaming at their own cadence, each
        // recorded by the real recording loop (socket.io client, recorder, store on
        // PostgreSQL), its events through the broker to the other instance, or into the
        // recording instance's own hub. Measured from the event's time (stamped at the sink,
        // millisecond resolution) to a subscriber.
        let db = Database::parse(&pg.create_database());
        let store = Arc::new(Store::open_database(&db, Options::default())?);
        let mut sims = Vec::new();
        for _ in 0..10 {
            sims.push(
                simulator::Simulator::start(simulator::SimulatorConfig {
                    repeat: true,
                    ..simulator::SimulatorConfig::default()
                })
                .await?,
            );
        }
        println!("\nlatency from the field: 10 simulated machines at 1×, recorded on PostgreSQL, {secs} s each way");
        println!("{:<60} {:>8} {:>8} {:>8}", "", "p50 ms", "p99 ms", "events");
        let mut p99s = Vec::new();
        for through_redis in [true, false] {
            let run_stop = CancellationToken::new();
            let topics: Vec<String> = (0..10).map(|i| format!("machine:field{i}{through_redis}")).collect();
            let (hub_a, broker_a) = broker_instance(&url, &topics, &run_stop).await?;
            let (hub_b, _broker_b) = broker_instance(&url, &topics, &run_stop).await?;
            let watched = if through_redis { hub_b } else { hub_a.clone() };
            let samples = Arc::new(std::sync::Mutex::new(Vec::new()));
            for (i, topic) in topics.iter().enumerate() {
                let mut live = watched.subscribe(topic).live;
                let samples = samples.clone();
                tokio::spawn(async move {
                    while let Ok(event) = live.recv().await {
                        if let Ok(at) = humantime::parse_rfc3339(&event.at) {
                            let late = std::time::SystemTime::now().duration_since(at).unwrap_or_default();
                            samples.lock().expect("samples").push(late);
                        }
                    }
                });
                let sink = if through_redis {
                    broker::sink(Some(&broker_a), &hub_a, topic)
                } else {
                    broker::sink(None, &hub_a, topic)
                };
                let name = format!("field{i}{through_redis}");
                tokio::spawn(recorder::record::run(
                    recorder::record::MachineConfig::new(&name, &sims[i].url()),
                    store.clone(),
                    run_stop.clone(),
                    None,
                    Some(sink),
                ));
            }
            tokio::time::sleep(Duration::from_secs(secs)).await;
            run_stop.cancel();
            tokio::time::sleep(Duration::from_millis(500)).await;
            let mut all = samples.lock().expect("samples").clone();
            all.sort();
            anyhow::ensure!(!all.is_empty(), "no event arrived from the field");
            let name = if through_redis { "through Redis, to the other instance" } else { "in-process hub" };
            println!("{:<60} {:>8.2} {:>8.2} {:>8}", name, ms(percentile(&all, 0.5)), ms(percentile(&all, 0.99)), all.len());
            p99s.push(ms(percentile(&all, 0.99)));
        }
        println!("the broker adds {:.2} ms at p99 from the field (target ≤ 5 ms)", p99s[0] - p99s[1]);
        stop.cancel();
        anyhow::Ok(())
    })?;
    drop(pg);
    drop(redis);
    Ok(())
}
