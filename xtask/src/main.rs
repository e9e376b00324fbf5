//! Project automation: `cargo xtask <command>`. `cargo xtask ci` green means CI green.
//!
//! * `ci`: fmt check, clippy (warnings denied), every test, docs (warnings denied), and
//!   `cargo deny` when it is installed.
//! * `bench codec`: the codec benchmark, ours and the peers' side by side (release build).
//! * `soak`: the gateway's fault suite at full length (release build).
//! * `fuzz <target> <seconds>` / `fuzz list`: run a fuzz target (needs nightly and cargo-fuzz),
//!   its corpus seeded from `fixtures/protocol/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

mod fuzz;
#[cfg(test)]
mod tidy;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["ci"] => ci(),
        ["conformance"] => conformance(),
        ["soak"] => soak(),
        ["bench", rest @ ..] => bench(rest),
        ["fuzz", "list"] => {
            for target in fuzz::TARGETS {
                println!("{target}");
            }
            Ok(())
        }
        ["fuzz", target, seconds] => fuzz::run(target, seconds.parse().context("seconds")?),
        _ => {
            eprintln!(
                "usage: cargo xtask <command>\n\n\
                 commands:\n  \
                 ci                        fmt, clippy, tests (Node, Chromium, PostgreSQL, Redis required), docs, cargo-deny: what CI runs\n  \
                 conformance               the client against the reference Node servers (installs them)\n  \
                 bench codec               decode throughput: ours vs serde_json floor vs rust_engineio/rust_socketio\n  \
                 bench client              1M events through a client: ours vs socket.io-client (JS) vs rust_socketio\n  \
                 bench storage             history import vs bare SQLite; falling edge → shot committed\n  \
                 bench fanout              WebSocket fan-out to 1k and 10k subscribers: ours vs Node socket.io\n  \
                 bench runs                QA run over 10,000 shots: shots/s vs a bare loop, events/s, live commits\n  \
                 bench scale               PostgreSQL import vs bare, live commit; deliveries and latency through Redis vs in-process
  \
                 soak                      the fault suite, long: 50 kills -9, a full disk, a minute of flapping, 2,000 slow connections\n  \
                 fuzz list                 the fuzz targets\n  \
                 fuzz <target> <seconds>   run one fuzz target (nightly + cargo-fuzz)"
            );
            bail!("unknown command {:?}", args.join(" "))
        }
    }
}

/// The workspace root.
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the root")
        .to_path_buf()
}

/// The crates published to the public Rust registry, in dependency order; the rest of the
/// workspace is `publish = false`.
const PUBLISHED: [&str; 3] = ["engineio-codec", "engineio-client", "socketio-v5"];

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

pub(crate) fn run(mut cmd: Command) -> anyhow::Result<()> {
    eprintln!("$ {}", describe(&cmd));
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {}", describe(&cmd)))?;
    if !status.success() {
        bail!("{} failed with {status}", describe(&cmd));
    }
    Ok(())
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|s| s.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn ci() -> anyhow::Result<()> {
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    run(fmt)?;

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--locked",
        "--",
        "-D",
        "warnings",
    ]);
    run(clippy)?;

    install_node_servers()?;
    let mut test = cargo();
    test.args(["test", "--workspace", "--locked"])
        .env("CREMA_REQUIRE_NODE", "1")
        .env("CREMA_REQUIRE_BROWSER", "1")
        .env("CREMA_REQUIRE_SERVERS", "1");
    run(test)?;

    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--no-deps", "--locked"])
        .env("RUSTDOCFLAGS", "-D warnings");
    run(doc)?;

    // The crates embedders take from the public registry, packaged as they would be published:
    // each archive is unpacked and built on its own, against the other two as packaged.
    let mut package = cargo();
    package.arg("package");
    for crate_name in PUBLISHED {
        package.args(["-p", crate_name]);
    }
    run(package)?;

    let has_deny = Command::new("cargo")
        .args(["deny", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if has_deny {
        // cargo-deny reads every crate of the graph, for every target: fetch them all first.
        let mut fetch = cargo();
        fetch.args(["fetch", "--locked"]);
        run(fetch)?;
        let mut deny = cargo();
        deny.args(["deny", "--offline", "check", "licenses", "bans", "sources"]);
        run(deny)?;
    } else {
        eprintln!("cargo-deny is not installed: skipping the license and source check");
    }
    eprintln!("xtask ci: all green");
    Ok(())
}

/// `npm ci` in `xtask/node/` unless the installed packages already match the lock file.
fn install_node_servers() -> anyhow::Result<()> {
    let dir = root().join("xtask/node");
    let lock = dir.join("package-lock.json");
    let installed = dir.join("node_modules/.package-lock.json");
    let fresh = match (std::fs::metadata(&lock), std::fs::metadata(&installed)) {
        (Ok(l), Ok(i)) => i.modified()? >= l.modified()?,
        _ => false,
    };
    if fresh {
        return Ok(());
    }
    let mut npm = Command::new("npm");
    npm.current_dir(&dir)
        .args(["ci", "--no-audit", "--no-fund"]);
    run(npm).context("installing the reference Node servers needs node and npm")
}

/// The fault suite of `bins/crema-gateway/tests/faults.rs` at full length (`CREMA_SOAK=1`), on a
/// release build, one case at a time, then the hostile peers of `tests/hostile.rs` together for
/// a minute; each prints its `fault: …` line.
fn soak() -> anyhow::Result<()> {
    for (file, filter) in [("faults", ""), ("hostile", "hostile_peers_together")] {
        let mut test = cargo();
        test.args([
            "test",
            "--release",
            "--locked",
            "-p",
            "crema-gateway",
            "--test",
            file,
            "--",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CREMA_SOAK", "1");
        if !filter.is_empty() {
            test.arg(filter);
        }
        run(test)?;
    }
    Ok(())
}

fn conformance() -> anyhow::Result<()> {
    install_node_servers()?;
    for package in ["engineio-client", "socketio-v5"] {
        let mut test = cargo();
        test.args(["test", "--locked", "-p", package, "--test", "node"])
            .env("CREMA_REQUIRE_NODE", "1");
        run(test)?;
    }
    Ok(())
}

fn bench(args: &[&str]) -> anyhow::Result<()> {
    // The client benchmark runs each Rust client from a binary of its own, built with the
    // `bench-client` profile (whole-program optimization, as an application shipped to a small
    // box would be); the harness finds them beside itself.
    let profile = if args.first() == Some(&"client") {
        install_node_servers()?;
        let mut build = cargo();
        build.args([
            "build",
            "--profile",
            "bench-client",
            "--locked",
            "-p",
            "crema-bench",
            "--bins",
        ]);
        run(build)?;
        "bench-client"
    } else if args.first() == Some(&"fanout") {
        // The fan-out benchmark starts its server and load generator from binaries of their own.
        install_node_servers()?;
        let mut build = cargo();
        build.args([
            "build",
            "--release",
            "--locked",
            "-p",
            "crema-bench",
            "--bins",
        ]);
        run(build)?;
        "release"
    } else {
        "release"
    };
    let mut cmd = cargo();
    cmd.args([
        "run",
        "--profile",
        profile,
        "--locked",
        "-p",
        "crema-bench",
        "--bin",
        "crema-bench",
        "--",
    ])
    .args(args);
    run(cmd)
}
