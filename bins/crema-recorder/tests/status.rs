//! `crema-recorder run --listen`: `/healthz` and `/metrics` of a recorder recording the simulated
//! machine; connections that send nothing are closed; `/healthz` answers `503` naming the
//! machine once it is gone; a nonsense `--listen` is refused at start with a line that says what
//! to write.

use std::io::{ErrorKind, Read as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use simulator::{Simulator, SimulatorConfig};

mod common;
use common::{get, listening};

const BIN: &str = env!("CARGO_BIN_EXE_crema-recorder");

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "not within 30 s: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_on_listen() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crema.db");
    let log = dir.path().join("recorder.log");
    // The machine on a runtime of its own: shutting it down closes every connection at once,
    // as a machine switched off does.
    let machine_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let sim = machine_rt
        .spawn(Simulator::start(SimulatorConfig::default()))
        .await
        .unwrap()
        .unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--machine", &sim.url(), "--db", db.to_str().unwrap()])
        .args(["--listen", "0"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let addr = tokio::task::block_in_place(|| listening(&log, &mut child));
    assert!(
        addr.starts_with("127.0.0.1:"),
        "a bare port is loopback: {addr}"
    );
    tokio::task::block_in_place(|| {
        eventually("healthy", || {
            get(&addr, "/healthz") == (200, r#"{"status":"ok"}"#.into())
        });
        let (status, text) = get(&addr, "/metrics");
        assert_eq!(status, 200);
        for line in [
            "crema_healthy 1",
            "crema_storage_healthy 1",
            "crema_machine_connected{machine=\"default\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(
            text.contains("# TYPE crema_storage_commit_seconds histogram"),
            "{text}"
        );
        assert_eq!(get(&addr, "/nothing").0, 404);
    });

    // Clients that connect and send nothing, as many as the endpoint holds (32), are closed
    // after 10 s; then it answers again: nobody can keep the port (or the process's file
    // descriptors) by holding connections open.
    tokio::task::block_in_place(|| {
        let silent: Vec<TcpStream> = (0..32)
            .map(|_| TcpStream::connect(&addr).unwrap())
            .collect();
        let started = Instant::now();
        for mut stream in silent {
            stream
                .set_read_timeout(Some(Duration::from_secs(25)))
                .unwrap();
            let mut buf = [0u8; 256];
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        panic!(
                            "a silent connection still open after {:?}",
                            started.elapsed()
                        )
                    }
                    Err(_) => break,
                }
            }
        }
        let closed_after = started.elapsed();
        assert!(
            closed_after >= Duration::from_secs(8),
            "closed too early: {closed_after:?}"
        );
        assert_eq!(get(&addr, "/healthz").0, 200);
    });

    // The machine goes away: unhealthy, and why.
    drop(sim);
    machine_rt.shutdown_background();
    tokio::task::block_in_place(|| {
        eventually("unhealthy", || get(&addr, "/healthz").0 == 503);
        let (_, body) = get(&addr, "/healthz");
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(health["status"], "unhealthy");
        assert_eq!(health["problems"][0]["what"], "machine");
        assert_eq!(health["problems"][0]["machine"], "default");
    });
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_nonsense_listen_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["run", "--machine", "http://127.0.0.1:9", "--db"])
        .arg(dir.path().join("crema.db"))
        .args(["--listen", "everywhere"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("PORT or ADDRESS:PORT"), "{said}");
}
