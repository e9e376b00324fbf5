//! `crema-recorder run --config crema.toml`: the gateway's file drives a recorder. Its machine,
//! database, `listen` and `[visualizer]` are taken, the gateway's own keys are named and left
//! alone, and a mistake in the file stops the recorder at start with the file, the key and why.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use simulator::collector::Collector;
use simulator::visualizer::StandIn;
use simulator::{Scenario, Simulator, SimulatorConfig};

mod common;
use common::{get, listening, terminate};

const BIN: &str = env!("CARGO_BIN_EXE_crema-recorder");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_file_drives_a_recorder() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("from-config.db");
    let stand_in = StandIn::start("me@example.com", "pw", "tk").await.unwrap();
    let collector = Collector::start().await.unwrap();
    let sim = Simulator::start(SimulatorConfig {
        scenario: Scenario::Normal,
        speed: 4.0,
        ..Default::default()
    })
    .await
    .unwrap();
    let config = dir.path().join("crema.toml");
    std::fs::write(
        &config,
        format!(
            r#"db = "{db}"
listen = "127.0.0.1:0"
broker = "redis://127.0.0.1:1"
origins = ["https://crema.example"]

[auth]
mode = "token"
tokens = [{{ token = "t", topics = ["machine:*"] }}]

[[machines]]
name = "kitchen"
url = "{machine}"

[visualizer]
url = "{visualizer}"
token = "tk"

[otlp]
endpoint = "{collector}"
interval_s = 1

[tuning]
min_samples = 10
ws_ping_s = 10
"#,
            db = db.display(),
            machine = sim.url(),
            visualizer = stand_in.url(),
            collector = collector.url(),
        ),
    )
    .unwrap();
    let log = dir.path().join("recorder.log");
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let addr = tokio::task::block_in_place(|| listening(&log, &mut child));
    let deadline = Instant::now() + Duration::from_secs(60);
    while stand_in.uploads().is_empty() {
        assert!(
            Instant::now() < deadline,
            "no upload: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, text) = tokio::task::block_in_place(|| get(&addr, "/metrics"));
    assert_eq!(status, 200);
    assert!(
        text.contains("crema_machine_connected{machine=\"kitchen\"} 1"),
        "the machine's name from the file: {text}"
    );
    // The same instruments reach the file's OTLP collector, as the recorder's.
    let pushed = collector.exports().into_iter().rev().find(|e| {
        e.metric("crema_machine_connected")
            .is_some_and(|m| m.points.iter().any(|p| p.value == 1.0))
    });
    let pushed = pushed.expect("a push with the machine connected (one a second)");
    assert_eq!(
        pushed.resource.get("service.name").map(String::as_str),
        Some("crema-recorder")
    );
    let pushes = collector.exports().len();
    assert!(terminate(&mut child).success());
    assert!(
        collector.exports().len() > pushes,
        "the last values are pushed as the recorder stops"
    );
    let said = std::fs::read_to_string(&log).unwrap();
    assert!(
        said.contains("broker, auth, origins are the gateway's; the recorder leaves them"),
        "{said}"
    );
    assert!(
        said.contains("tuning ws_ping_s are the gateway's fan-out's; the recorder leaves them"),
        "{said}"
    );
    let shots = storage::open_reader(&db).unwrap().all_shots().unwrap();
    assert_eq!(shots.len(), 1, "recorded into the file's database");
    assert_eq!(shots[0].machine, "kitchen");
    assert_eq!(stand_in.uploads()[0].authorization, "Bearer tk");
}

#[test]
fn a_mistake_in_the_file_stops_the_recorder_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("crema.toml");
    for (text, says) in [
        ("dbb = \"crema.db\"\n", "unknown field `dbb`"),
        (
            "[[machines]]\nname = \"a\"\nurl = \"http://127.0.0.1:9\"\n[[machines]]\nname = \"b\"\nurl = \"http://127.0.0.1:9\"\n",
            "2 machines are configured",
        ),
        (
            "[[machines]]\nname = \"the kitchen\"\nurl = \"http://127.0.0.1:9\"\n",
            "the kitchen",
        ),
        (
            "[[machines]]\nname = \"a\"\nurl = \"http://127.0.0.1:9\"\n[visualizer]\nusername = \"me\"\n",
            "needs its password",
        ),
        ("[otlp]\nendpoint = \"collector:4318\"\n", "otlp"),
        (
            "[otlp]\nendpoint = \"http://collector:4318\"\ninterval_s = 0.01\n",
            "at least 1 s",
        ),
    ] {
        std::fs::write(&config, text).unwrap();
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .arg("--db")
            .arg(dir.path().join("crema.db"))
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text}: {said}");
        assert!(said.contains(says), "{text}: {said}");
    }
}
