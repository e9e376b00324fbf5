//! The web page in a real headless Chromium (Debian's `chromium`, driven by playwright-core from
//! `xtask/node/page-test.mjs`): it loads, the live chart moves while the simulated machine
//! brews, and the finished shot appears in the history without a reload. `cargo xtask ci` (and
//! so CI) requires the browser; a plain `cargo test` without it says so and skips.

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
    let mut gateway = Command::new(BIN)
        .args(["--demo", "--demo-speed", "6", "--listen", &listen, "--db"])
        .arg(dir.path().join("crema.db"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(&listen).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = Command::new("node")
        .arg("page-test.mjs")
        .arg(format!("http://{listen}/"))
        .arg(&chromium)
        .current_dir(&node_dir)
        .output()
        .unwrap();
    let _ = gateway.kill();
    let _ = gateway.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("page test: ok"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
