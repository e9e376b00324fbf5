//! The fault suite, against the real binary: `kill -9` at random moments during shots, runs and
//! webhook deliveries, with a restart each time; a full disk mid-shot; a machine whose link
//! flaps; 2,000 connections that never finish their headers. Each case asserts what must hold
//! and prints what it measured (`fault: …` lines), the gateway's peak memory among them.
//!
//! Here the short version runs (a few kills, seconds of flapping). `cargo xtask soak` runs the
//! same cases with `CREMA_SOAK=1` (50 kills, a minute of flapping), on a release build; its
//! figures are in docs/benchmarks.md.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::{BIN, eventually, free_port, get_json, memory, post_json, request};
use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use simulator::{Scenario, Simulator, SimulatorConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message;

/// The cases run one at a time, whatever the test runner's threads: each starts processes and
/// measures timings that another case's load would blur.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long and how hard: short in the tests, long under `cargo xtask soak`.
struct Soak {
    kills: usize,
    flap_for: Duration,
}

fn soak() -> Soak {
    if std::env::var_os("CREMA_SOAK").is_some() {
        // CREMA_SOAK_FLAP_S flaps longer, to see the memory level off.
        let flap_s = std::env::var("CREMA_SOAK_FLAP_S")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(60);
        Soak {
            kills: 50,
            flap_for: Duration::from_secs(flap_s),
        }
    } else {
        Soak {
            kills: 6,
            flap_for: Duration::from_secs(12),
        }
    }
}

/// A gateway process: its log goes to a file (printed when a case fails), its memory is
/// watched.
struct Gateway {
    child: Child,
    addr: String,
    log: PathBuf,
    /// The largest peak resident size of any process of this case, KiB.
    peak_kib: u64,
}

impl Gateway {
    async fn start(args: &[String], log: &Path) -> Gateway {
        let addr = format!("127.0.0.1:{}", free_port());
        let gateway = Gateway {
            child: spawn(args, &addr, log),
            addr,
            log: log.to_owned(),
            peak_kib: 0,
        };
        gateway.listening().await;
        gateway
    }

    async fn listening(&self) {
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(&self.addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the gateway does not listen\n{}", self.tail());
    }

    /// Until its machine is connected.
    async fn connected(&self) {
        let addr = self.addr.clone();
        eventually(Duration::from_secs(20), "the machine connected", || {
            let addr = addr.clone();
            async move {
                let (_, machines) = get_json(&addr, "/api/v1/machines").await;
                (machines[0]["connected"] == true).then_some(())
            }
        })
        .await;
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Notes the process's peak resident size.
    fn watch_memory(&mut self) -> u64 {
        let (rss, peak) = memory(self.pid());
        self.peak_kib = self.peak_kib.max(peak);
        rss
    }

    /// `kill -9`, then the same process again on the same address and database.
    async fn kill_and_restart(&mut self, args: &[String]) {
        self.watch_memory();
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.child = spawn(args, &self.addr, &self.log);
        self.listening().await;
    }

    /// A clean stop (SIGTERM), waited for.
    fn stop(&mut self) {
        self.watch_memory();
        signal("-TERM", self.pid());
        let until = Instant::now() + Duration::from_secs(20);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the gateway did not stop on SIGTERM\n{}", self.tail());
    }

    fn tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(args: &[String], addr: &str, log: &Path) -> Child {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(BIN)
        .args(args)
        .args(["--listen", addr])
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(out)
        .spawn()
        .unwrap()
}

fn signal(which: &str, pid: u32) {
    let status = Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {which} {pid}");
}

/// A small random source for the moments of the faults (the seed is printed).
struct Rng(u64);

impl Rng {
    fn new() -> (Rng, u64) {
        let seed = std::env::var("CREMA_SOAK_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        (Rng(seed), seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// What the machine emitted, seen by an independent socket.io client: the `time` of each
/// extracting `status`, and when it came, shot by shot.
type Emitted = Arc<Mutex<Vec<Vec<(i64, Instant)>>>>;

async fn watch_machine(url: &str) -> Emitted {
    let emitted: Emitted = Arc::default();
    let client = socketio_v5::Client::new(socketio_v5::ClientConfig::new(url).unwrap());
    let (socket, mut events) = client.socket("/", socketio_v5::Auth::None).await.unwrap();
    let seen = emitted.clone();
    tokio::spawn(async move {
        let _keep = (client, socket);
        let mut in_shot = false;
        while let Some(event) = events.recv().await {
            let socketio_v5::Event::Message(event) = event else {
                continue;
            };
            if event.name().as_str() != Some("status") {
                continue;
            }
            let Ok((status,)) = event.args::<(Value,)>() else {
                continue;
            };
            let mut shots = seen.lock().unwrap();
            if status["extracting"] == true {
                if !in_shot {
                    shots.push(Vec::new());
                    in_shot = true;
                }
                if let (Some(shot), Some(time)) = (shots.last_mut(), status["time"].as_i64()) {
                    shot.push((time, Instant::now()));
                }
            } else {
                in_shot = false;
            }
        }
    });
    emitted
}

/// A simulated machine brewing shot after shot at `speed`, its history on or off.
async fn machine(speed: f64, history: bool) -> Simulator {
    Simulator::start(SimulatorConfig {
        scenario: Scenario::Normal,
        speed,
        repeat: true,
        history,
        ..SimulatorConfig::default()
    })
    .await
    .unwrap()
}

/// The gateway's arguments: machine `kitchen` at `url`, the database `db`, and `more`.
fn arguments(url: &str, db: &Path, more: &[String]) -> Vec<String> {
    let mut args = vec![
        "--machine".into(),
        format!("kitchen={url}"),
        "--db".into(),
        db.display().to_string(),
    ];
    args.extend_from_slice(more);
    args
}

/// A webhook receiver that answers after `delay`; how many times it accepted each delivery.
async fn receiver(delay: Duration) -> (String, Arc<Mutex<BTreeMap<String, u32>>>) {
    let accepted: Arc<Mutex<BTreeMap<String, u32>>> = Arc::default();
    let seen = accepted.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap| {
            let seen = seen.clone();
            async move {
                tokio::time::sleep(delay).await;
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                *seen.lock().unwrap().entry(key).or_default() += 1;
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, accepted)
}

fn open_store(db: &Path) -> storage::Store {
    storage::Store::open(db, storage::Options::default()).unwrap()
}

fn sample_times(reader: &dyn storage::Reader, key: i64) -> Vec<i64> {
    reader
        .samples(key)
        .unwrap()
        .iter()
        .map(|raw| {
            serde_json::from_str::<Value>(raw.get()).unwrap()["time"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

/// `kill -9` at random moments, a restart each time; the machine's history is off, so what is
/// stored is only what was recorded live. Nothing older than 250 ms before a death is lost, no
/// shot is stored twice, every finished shot's webhook is accepted exactly once, the database
/// is intact and no run is left active.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_nothing() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let soak = soak();
    let (mut rng, seed) = Rng::new();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crema.db");
    let sim = machine(10.0, false).await;
    let emitted = watch_machine(&sim.url()).await;
    // A receiver that takes a moment to answer: some deaths come mid-delivery.
    let (hook, accepted) = receiver(Duration::from_millis(150)).await;
    let args = arguments(
        &sim.url(),
        &db,
        &["--webhook".into(), format!("log={hook}")],
    );
    let mut gw = Gateway::start(&args, &dir.path().join("gateway.log")).await;
    gw.connected().await;
    let mut deaths: Vec<(Instant, Instant)> = Vec::new();
    let mut runs_started = 0;
    for _ in 0..soak.kills {
        if rng.below(3) == 0 {
            let (code, _) = post_json(&gw.addr, "/api/v1/runs", &json!({"kind": "qa"})).await;
            runs_started += u32::from(code == 202);
        }
        tokio::time::sleep(Duration::from_millis(300 + rng.below(2700))).await;
        let died = Instant::now();
        gw.kill_and_restart(&args).await;
        gw.connected().await;
        deaths.push((died, Instant::now()));
    }
    // Let the shot in progress end, and its delivery be made.
    let settle = Instant::now();
    loop {
        let in_shot = emitted
            .lock()
            .unwrap()
            .last()
            .and_then(|s| s.last())
            .is_some_and(|(_, at)| at.elapsed() < Duration::from_secs(1));
        if !in_shot || settle.elapsed() > Duration::from_secs(30) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    eventually(Duration::from_secs(30), "no run left active", || async {
        let (code, _) = request(&gw.addr, "GET", "/api/v1/runs/current", "", "").await;
        (code == 404).then_some(())
    })
    .await;
    // Every delivery made (a shot a crash cut and nobody resumed waits 30 s first).
    eventually(Duration::from_secs(60), "every delivery made", || async {
        let (_, metrics) = request(&gw.addr, "GET", "/metrics", "", "").await;
        (!metrics.contains("status=\"pending\"") && metrics.contains("crema_outbox_unplanned 0"))
            .then_some(())
    })
    .await;
    // The shot in progress at the stop stays recording (the next start finishes or resumes
    // it): no delivery is due for it yet.
    let (_, listed) = get_json(&gw.addr, "/api/v1/shots?limit=1000").await;
    let recording: BTreeSet<i64> = listed["shots"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "recording")
        .filter_map(|s| s["key"].as_i64())
        .collect();
    gw.stop();
    // The stop ends recording like a death: what comes after is not the gateway's to keep.
    let stopped = Instant::now();
    deaths.push((stopped, stopped + Duration::from_secs(3600)));

    let store = open_store(&db);
    let reader = store.reader().unwrap();
    assert_eq!(reader.integrity_check().unwrap(), "ok");
    assert!(
        reader.active_run().unwrap().is_none(),
        "a run was left active"
    );
    let shots = reader.all_shots().unwrap();
    // A shot begun meanwhile is saved by the machine once it ends.
    let stored_ids: BTreeSet<String> = shots.iter().filter_map(|s| s.id.clone()).collect();
    let saved = eventually(
        Duration::from_secs(20),
        "the machine's last shot saved",
        || async {
            let saved = sim.saved();
            let made: BTreeSet<String> = saved.iter().map(|e| e.id.clone()).collect();
            stored_ids.is_subset(&made).then_some(saved)
        },
    )
    .await;
    // No shot stored twice, and none the machine did not make.
    let ids: Vec<&str> = shots.iter().filter_map(|s| s.id.as_deref()).collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "a shot stored twice: {ids:?}");
    assert_eq!(
        ids.len(),
        shots.len(),
        "a shot without the machine's id: {shots:?}"
    );
    let made: BTreeSet<&str> = saved.iter().map(|e| e.id.as_str()).collect();
    assert!(unique.is_subset(&made), "{unique:?} not all in {made:?}");
    // Every sample the machine saved is stored, unless it came within 250 ms (and the 50 ms
    // the commit itself may take) before a death, or while the gateway was down.
    let emitted = emitted.lock().unwrap().clone();
    assert!(emitted.len() >= saved.len(), "the watcher missed a shot");
    let (mut lost_in_deaths, mut lost_outside, mut oldest_lost) = (0, Vec::new(), Duration::ZERO);
    for (i, entry) in saved.iter().enumerate() {
        let stored = shots.iter().find(|s| s.id.as_deref() == Some(&entry.id));
        let times = stored
            .map(|s| sample_times(&*reader, s.key))
            .unwrap_or_default();
        let distinct: BTreeSet<i64> = times.iter().copied().collect();
        assert_eq!(
            distinct.len(),
            times.len(),
            "a sample stored twice in {}",
            entry.id
        );
        let when: BTreeMap<i64, Instant> = emitted[i].iter().copied().collect();
        for sample in &entry.data {
            if distinct.contains(&sample.time) {
                continue;
            }
            let Some(at) = when.get(&sample.time) else {
                continue; // not seen by the watcher either (between two status frames)
            };
            let death = deaths.iter().find(|(died, back)| {
                *at + Duration::from_millis(300) >= *died
                    && *at <= *back + Duration::from_millis(50)
            });
            match death {
                Some((died, _)) => {
                    lost_in_deaths += 1;
                    if *at < *died {
                        oldest_lost = oldest_lost.max(died.duration_since(*at));
                    }
                }
                None => lost_outside.push((entry.id.clone(), sample.time)),
            }
        }
    }
    assert!(
        lost_outside.is_empty(),
        "samples lost away from any death (seed {seed}): {lost_outside:?}\n{}",
        gw.tail()
    );
    // Every finished shot's webhook accepted exactly once.
    let accepted = accepted.lock().unwrap().clone();
    assert!(accepted.values().all(|n| *n == 1), "{accepted:?}");
    for shot in shots.iter().filter(|s| !recording.contains(&s.key)) {
        let prefix = format!("shot-{}-", shot.key);
        let deliveries = accepted.keys().filter(|k| k.starts_with(&prefix)).count();
        assert_eq!(
            deliveries, 1,
            "shot {} delivered {deliveries} times: {accepted:?}",
            shot.key
        );
    }
    println!(
        "fault: kill -9 ×{} (seed {seed}): {} shots made, {} stored once each, {} webhooks accepted once each, \
         {runs_started} runs started; {lost_in_deaths} samples lost at deaths, the oldest {:.0?} before its death; \
         peak RSS {} KiB",
        deaths.len() - 1,
        saved.len(),
        shots.len(),
        accepted.len(),
        oldest_lost,
        gw.peak_kib
    );
}

/// Unmounts on drop.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A tmpfs of `mib` MiB at `at`, or why not (mounting needs root).
fn mount_tmpfs(at: &Path, mib: u32) -> Result<Mounted, String> {
    std::fs::create_dir_all(at).unwrap();
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
        .arg(at)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(Mounted(at.to_owned()))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// Fills the filesystem of `dir` until it refuses: the bytes written.
fn fill(dir: &Path) -> u64 {
    use std::io::Write as _;
    let mut file = std::fs::File::create(dir.join("filler")).unwrap();
    let chunk = vec![0u8; 256 * 1024];
    let mut written = 0;
    while file.write_all(&chunk).is_ok() {
        written += chunk.len() as u64;
    }
    let _ = file.sync_all();
    written
}

/// The database on a small filesystem filled mid-shot: the live stream to a WebSocket client
/// never pauses more than 1 s, `/healthz` turns 503 naming the storage, and once space is
/// freed the next shot is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_mid_shot_keeps_the_live_stream() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let disk = dir.path().join("disk");
    let _mounted = match mount_tmpfs(&disk, 16) {
        Ok(mounted) => mounted,
        Err(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs as root and must mount a tmpfs for the full-disk case: {why}"
            );
            eprintln!(
                "fault: cannot mount a tmpfs ({why}; it needs root): the full-disk case is not run here"
            );
            return;
        }
    };
    let sim = machine(4.0, true).await;
    let args = arguments(&sim.url(), &disk.join("crema.db"), &[]);
    let mut gw = Gateway::start(&args, &dir.path().join("gateway.log")).await;
    gw.connected().await;
    // A browser's view: every frame's arrival, and whether the machine is extracting.
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", gw.addr))
        .await
        .unwrap();
    ws.send(Message::Text(
        json!({"op": "subscribe", "topic": "machine:kitchen"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    let frames: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let extracting = Arc::new(AtomicBool::new(false));
    let (seen, brewing) = (frames.clone(), extracting.clone());
    tokio::spawn(async move {
        while let Some(Ok(Message::Text(text))) = ws.next().await {
            seen.lock().unwrap().push(Instant::now());
            let frame: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
            if frame["name"] == "status" {
                brewing.store(frame["data"]["extracting"] == true, Ordering::Relaxed);
            }
        }
    });
    eventually(Duration::from_secs(60), "a shot under way", || async {
        extracting.load(Ordering::Relaxed).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let filled_at = Instant::now();
    let filled = tokio::task::spawn_blocking({
        let disk = disk.clone();
        move || fill(&disk)
    })
    .await
    .unwrap();
    let health = eventually(Duration::from_secs(15), "/healthz 503", || async {
        let (code, body) = request(&gw.addr, "GET", "/healthz", "", "").await;
        (code == 503 && body.contains("storage")).then_some(body)
    })
    .await;
    // The shot goes on while nothing can be stored.
    tokio::time::sleep(Duration::from_secs(3)).await;
    gw.watch_memory();
    let pause = {
        let frames = frames.lock().unwrap();
        let during: Vec<Instant> = frames.iter().copied().filter(|t| *t >= filled_at).collect();
        let mut edges = vec![filled_at];
        edges.extend(during);
        edges.push(Instant::now());
        edges.windows(2).map(|w| w[1] - w[0]).max().unwrap()
    };
    assert!(
        pause < Duration::from_secs(1),
        "the live stream paused {pause:?}"
    );
    std::fs::remove_file(disk.join("filler")).unwrap();
    let freed_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    eventually(Duration::from_secs(20), "/healthz 200 again", || async {
        let (code, _) = request(&gw.addr, "GET", "/healthz", "", "").await;
        (code == 200).then_some(())
    })
    .await;
    // The next shot, begun after the space came back, is recorded whole.
    let next = eventually(
        Duration::from_secs(90),
        "the next shot recorded",
        || async {
            let (_, shots) = get_json(&gw.addr, "/api/v1/shots").await;
            shots["shots"].as_array()?.iter().find_map(|s| {
                (s["time"].as_f64()? > freed_at && s["status"] == "complete").then(|| s.clone())
            })
        },
    )
    .await;
    assert!(next["sample_count"].as_i64().unwrap() >= 200, "{next}");
    gw.stop();
    println!(
        "fault: full disk mid-shot ({} MiB filled): live stream's longest pause {pause:.0?}, /healthz said {health}, \
         the next shot recorded with {} samples; peak RSS {} KiB",
        filled >> 20,
        next["sample_count"],
        gw.peak_kib
    );
}

/// A TCP proxy that can cut every connection and refuse new ones for a while: a machine link
/// that flaps.
struct Flaky {
    addr: String,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Flaky {
    async fn start(upstream: std::net::SocketAddr) -> Flaky {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (is_up, all) = (up.clone(), conns.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !is_up.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                all.lock().unwrap().push(task);
            }
        });
        Flaky { addr, up, conns }
    }

    fn cut(&self, down: bool) {
        self.up.store(!down, Ordering::SeqCst);
        if down {
            for task in self.conns.lock().unwrap().drain(..) {
                task.abort();
            }
        }
    }
}

/// The machine's link cut every few seconds: the gateway keeps answering, its memory stays
/// flat, and once the link holds it records the next shot, stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flapping_machine_link() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let soak = soak();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crema.db");
    let sim = machine(4.0, true).await;
    let link = Flaky::start(sim.addr()).await;
    let args = arguments(&format!("http://{}", link.addr), &db, &[]);
    let mut gw = Gateway::start(&args, &dir.path().join("gateway.log")).await;
    gw.connected().await;
    let first_rss = gw.watch_memory();
    let started = Instant::now();
    let (mut cuts, mut slowest, mut rss) = (0, Duration::ZERO, Vec::new());
    while started.elapsed() < soak.flap_for {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        link.cut(true);
        cuts += 1;
        let asked = Instant::now();
        let (code, _) = request(&gw.addr, "GET", "/healthz", "", "").await;
        slowest = slowest.max(asked.elapsed());
        assert!(code == 200 || code == 503, "{code}");
        tokio::time::sleep(Duration::from_millis(500)).await;
        link.cut(false);
        rss.push(gw.watch_memory());
    }
    let flapped_until = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    gw.connected().await;
    let next = eventually(
        Duration::from_secs(90),
        "a shot after the flapping",
        || async {
            let (_, shots) = get_json(&gw.addr, "/api/v1/shots").await;
            shots["shots"].as_array()?.iter().find_map(|s| {
                (s["time"].as_f64()? > flapped_until && s["status"] == "complete")
                    .then(|| s.clone())
            })
        },
    )
    .await;
    assert!(
        slowest < Duration::from_secs(1),
        "/healthz took {slowest:?}"
    );
    let last_rss = gw.watch_memory();
    gw.stop();
    let store = open_store(&db);
    let reader = store.reader().unwrap();
    assert_eq!(reader.integrity_check().unwrap(), "ok");
    let shots = reader.all_shots().unwrap();
    let ids: Vec<&str> = shots.iter().filter_map(|s| s.id.as_deref()).collect();
    let unique: BTreeSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "a shot stored twice: {ids:?}");
    println!(
        "fault: machine link cut {cuts} times in {:.0?}: /healthz answered within {slowest:.0?}, {} shots stored once each, \
         the next shot with {} samples; RSS {first_rss} KiB after connecting, by quarter of the cuts {:?} KiB, \
         {last_rss} KiB at the end, peak {} KiB",
        soak.flap_for,
        shots.len(),
        next["sample_count"],
        [1, 2, 3, 4].map(|q| rss[(rss.len() * q / 4).saturating_sub(1)]),
        gw.peak_kib
    );
}

/// 2,000 connections that never finish their headers: `/healthz` still answers within 1 s and
/// they are closed after the 10 s header timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_connections_are_closed_and_health_answers() {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(SimulatorConfig::default()).await.unwrap();
    let args = arguments(&sim.url(), &dir.path().join("crema.db"), &[]);
    let mut gw = Gateway::start(&args, &dir.path().join("gateway.log")).await;
    let opened = Instant::now();
    let mut slow = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let mut tcp = tokio::net::TcpStream::connect(&gw.addr).await.unwrap();
        tcp.write_all(b"GET /api/v1/shots HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await
            .unwrap();
        slow.push((tcp, Instant::now()));
    }
    let mut slowest = Duration::ZERO;
    while opened.elapsed() < Duration::from_secs(8) {
        let asked = Instant::now();
        let (code, _) = request(&gw.addr, "GET", "/healthz", "", "").await;
        slowest = slowest.max(asked.elapsed());
        assert!(code == 200 || code == 503, "{code}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let held_rss = gw.watch_memory();
    assert!(
        slowest < Duration::from_secs(1),
        "/healthz took {slowest:?}"
    );
    // How long after its own opening each one was closed, the longest.
    let mut closed_by = Duration::ZERO;
    for (tcp, at) in &mut slow {
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match tcp.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        })
        .await;
        assert!(
            read.is_ok(),
            "a slow connection still open after {:?}",
            at.elapsed()
        );
        closed_by = closed_by.max(at.elapsed());
    }
    assert!(
        closed_by < Duration::from_secs(13),
        "closed only after {closed_by:?}"
    );
    drop(slow);
    gw.stop();
    println!(
        "fault: 2,000 connections without headers: /healthz within {slowest:.0?}, all closed by {closed_by:.1?}; \
         RSS {held_rss} KiB while they were held, peak {} KiB",
        gw.peak_kib
    );
}
