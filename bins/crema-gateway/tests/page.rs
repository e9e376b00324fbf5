//! The web page in a real headless Chromium (Debian's `chromium`, driven by playwright-core from
//! `xtask/node/page-test.mjs`): it loads, the live chart moves while the simulated machine
//! brews, the finished shot appears in the history without a reload, and the page recovers by
//! itself from a gap, a frozen gateway and a gateway killed and restarted. `cargo xtask ci` (and
//! so CI) requires the browser; a plain `cargo test` without it says so and skips.

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_crema-gateway");

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

#[test]
fn the_page_shows_live_data_and_new_shots() {
    let node_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../xtask/node");
    let ready = chromium().filter(|_| node_dir.join("node_modules/playwright-core").exists());
    let Some(chromium) = ready else {
        assert!(
            std::env::var_os("CREMA_REQUIRE_BROWSER").is_none(),
            "CREMA_REQUIRE_BROWSER is set but Chromium or playwright-core is missing (.ci/run installs them)"
        );
        eprintln!(
            "skipping the browser test: install Debian's chromium and run `npm ci` in xtask/node"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let db = dir.path().join("crema.db");
    let mut gateway = start(&listen, &db);
    let mut node = Command::new("node")
        .arg("page-test.mjs")
        .arg(format!("http://{listen}/"))
        .arg(&chromium)
        .current_dir(&node_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut answers = node.stdin.take().unwrap();
    let mut stdout = String::new();
    // The script asks for what it cannot do from the browser: freeze, thaw, kill and restart.
    for line in BufReader::new(node.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        stdout.push_str(&line);
        stdout.push('\n');
        let Some(what) = line.strip_prefix("need: ") else {
            continue;
        };
        let pid = gateway.id().to_string();
        match what {
            "stop" => signal("-STOP", &pid),
            "cont" => signal("-CONT", &pid),
            "restart" => {
                let _ = gateway.kill();
                let _ = gateway.wait();
                gateway = start(&listen, &db);
            }
            other => panic!("the page test asks for {other}"),
        }
        writeln!(answers, "done").unwrap();
    }
    let out = node.wait_with_output().unwrap();
    signal("-CONT", &gateway.id().to_string());
    let _ = gateway.kill();
    let _ = gateway.wait();
    assert!(
        out.status.success() && stdout.contains("page test: ok"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The demo gateway on `listen`, recording into `db`, once it listens.
fn start(listen: &str, db: &std::path::Path) -> std::process::Child {
    let mut gateway = Command::new(BIN)
        .args(["--demo", "--demo-speed", "6", "--listen", listen, "--db"])
        .arg(db)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if std::net::TcpStream::connect(listen).is_ok() {
            return gateway;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = gateway.kill();
    let _ = gateway.wait();
    panic!("the gateway does not listen on {listen}");
}

fn signal(which: &str, pid: &str) {
    let status = Command::new("kill").args([which, pid]).status().unwrap();
    assert!(status.success(), "kill {which} {pid}");
}
