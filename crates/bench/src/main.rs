//! The benchmark harness behind `cargo xtask bench …`: our figure and the peers' figures from
//! one run, side by side, as ratios. Always built with `--release`.

use std::time::Duration;

use anyhow::{Context as _, bail};

mod client;
mod codec;
mod fanout;
mod runs;
mod scale;
mod storage;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("codec") => codec::run(&args[1..]),
        Some("client") => client::run(&args[1..]),
        Some("storage") => storage::run(&args[1..]),
        Some("fanout") => fanout::run(&args[1..]),
        Some("runs") => runs::run(&args[1..]),
        Some("scale") => scale::run(&args[1..]),
        _ => bail!(
            "usage: crema-bench codec [--rounds N] | client [--rounds N] [--count N] | storage [--rounds N] | fanout [--secs S] [--subs N,N] | runs [--rounds N] [--shots N] | scale [--rounds N] [--secs S]"
        ),
    }
}

/// The workspace root (for fixtures).
pub(crate) fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

pub(crate) fn read_fixture(path: &str) -> anyhow::Result<String> {
    let full = root().join(path);
    std::fs::read_to_string(&full).with_context(|| format!("cannot read {}", full.display()))
}

pub(crate) fn median(sorted: &[Duration]) -> Duration {
    sorted[sorted.len() / 2]
}

/// Parses `--rounds N` (default `default`).
pub(crate) fn rounds_arg(args: &[String], default: usize) -> anyhow::Result<usize> {
    match args {
        [] => Ok(default),
        [flag, n] if flag == "--rounds" => n.parse().context("--rounds takes a number"),
        other => bail!("unexpected arguments {other:?}"),
    }
}

/// A server process of the benchmarks that prints `listening <port>` once ready; killed when
/// dropped. Its standard input stays open (the Node servers stop when it closes).
pub(crate) struct Listening {
    child: std::process::Child,
    pub(crate) port: u16,
}

impl Listening {
    pub(crate) fn start(mut cmd: std::process::Command) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        use std::io::BufRead as _;
        use std::process::Stdio;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start a server")?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().context("stdout")?).read_line(&mut line)?;
        let port = line
            .trim()
            .strip_prefix("listening ")
            .with_context(|| format!("the server said {line:?}"))?
            .parse()?;
        Ok(Self { child, port })
    }

    /// `http://127.0.0.1:<port>`.
    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's resident memory now.
    pub(crate) fn rss_kb(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        crema_bench::status_kb(&status, "VmRSS:")
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
