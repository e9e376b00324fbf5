//! Starts the reference Node servers from `xtask/node/` (installed by `cargo xtask conformance`
//! or `.ci/run`). When they are not installed and `CREMA_REQUIRE_NODE` is not set, the Node suite
//! says so and skips; CI sets it, so there a missing server fails the run.

#![allow(unreachable_pub, dead_code)]

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A running Node server; killed when dropped (and it exits by itself when our stdin pipe closes).
pub struct NodeServer {
    child: Child,
    pub port: u16,
}

impl Drop for NodeServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn node_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../xtask/node")
}

/// Whether the Node servers can run here; panics when they must (`CREMA_REQUIRE_NODE=1`).
pub fn available() -> bool {
    let installed = node_dir().join("node_modules/engine.io").exists();
    if !installed {
        assert!(
            std::env::var_os("CREMA_REQUIRE_NODE").is_none(),
            "CREMA_REQUIRE_NODE is set but the Node servers are not installed: run `npm ci --prefix xtask/node`"
        );
        eprintln!(
            "skipping: the Node reference servers are not installed (`cargo xtask conformance` installs and runs them)"
        );
    }
    installed
}

/// Starts `script` with `env` on `port` (0: any free port) and waits for "listening <port>".
pub fn start(script: &str, port: u16, env: &[(&str, &str)]) -> NodeServer {
    let mut child = Command::new("node")
        .arg(script)
        .current_dir(node_dir())
        .env("PORT", port.to_string())
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node is installed");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("the server says it listens");
    let port = line
        .trim()
        .strip_prefix("listening ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line from {script}: {line:?}"));
    NodeServer { child, port }
}
