//! Repository policy, enforced as tests (`cargo test -p xtask`, part of `cargo xtask ci`).

use std::path::{Path, PathBuf};

use crate::root;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The `members = [...]` entries of the root manifest.
fn members() -> Vec<PathBuf> {
    let manifest = read(&root().join("Cargo.toml"));
    let start = manifest.find("members = [").expect("members list");
    let end = start + manifest[start..].find(']').expect("end of members");
    manifest[start..end]
        .lines()
        .skip(1)
        .filter_map(|l| l.trim().strip_prefix('"')?.split('"').next())
        .map(|m| root().join(m))
        .collect()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out
}

/// The text of a manifest's `[dependencies]` table.
fn dependencies(manifest: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in manifest.lines() {
        if line.starts_with('[') {
            inside = line.trim() == "[dependencies]";
        } else if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[test]
fn workspace_has_every_crate_of_the_design() {
    let names: Vec<String> = members()
        .iter()
        .map(|p| p.strip_prefix(root()).unwrap().display().to_string())
        .collect();
    for expected in [
        "crates/engineio-codec",
        "crates/engineio-client",
        "crates/socketio",
        "crates/meticulous",
        "crates/recorder-core",
        "crates/storage",
        "crates/fanout",
        "crates/simulator",
        "bins/crema-gateway",
        "bins/crema-recorder",
        "xtask",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "missing member {expected}"
        );
    }
}

#[test]
fn every_member_uses_the_workspace_lints() {
    for member in members() {
        let manifest = read(&member.join("Cargo.toml"));
        assert!(
            manifest.contains("[lints]\nworkspace = true"),
            "{} must opt into the workspace lints with `[lints] workspace = true`",
            member.display()
        );
    }
}

#[test]
fn pure_crates_never_read_the_clock_nor_use_tokio() {
    let pure = [
        root().join("crates/engineio-codec"),
        root().join("crates/recorder-core"),
    ];
    for krate in &pure {
        let deps = dependencies(&read(&krate.join("Cargo.toml")));
        assert!(
            !deps.contains("tokio"),
            "{} must not depend on tokio",
            krate.display()
        );
    }
    let mut sources: Vec<PathBuf> = pure
        .iter()
        .flat_map(|k| rust_files(&k.join("src")))
        .collect();
    // The socket.io packet codec is a pure module of its crate.
    sources.extend(rust_files(&root().join("crates/socketio/src/codec")));
    assert!(sources.len() >= 5, "found the pure sources");
    for file in sources {
        let text = read(&file);
        for forbidden in [
            "Instant::now",
            "SystemTime::now",
            "tokio::",
            "std::net",
            "std::fs",
        ] {
            assert!(
                !text.contains(forbidden),
                "{} is pure but mentions {forbidden}: pass time and bytes in instead",
                file.display()
            );
        }
    }
}

#[test]
fn ci_runs_the_readme_test_command() {
    let readme = read(&root().join("README.md"));
    let command = readme
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("cargo xtask ci")
                .map(|_| "cargo xtask ci")
        })
        .expect("README gives `cargo xtask ci` as the test command");
    let ci = read(&root().join(".ci/run"));
    assert!(
        ci.lines().any(|l| l.trim() == command),
        ".ci/run must call the README's test command `{command}` verbatim"
    );
}

#[test]
fn every_fuzz_target_is_known_to_xtask() {
    let manifest = read(&root().join("fuzz/Cargo.toml"));
    let declared: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("name = \""))
        .filter_map(|l| l.strip_suffix('"'))
        .filter(|n| *n != "crema-fuzz")
        .collect();
    assert_eq!(declared, crate::fuzz::TARGETS, "fuzz/Cargo.toml vs xtask");
    for target in crate::fuzz::TARGETS {
        assert!(
            root()
                .join(format!("fuzz/fuzz_targets/{target}.rs"))
                .exists()
        );
    }
}
