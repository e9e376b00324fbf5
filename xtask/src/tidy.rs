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
        "crates/socketio-v5",
        "crates/meticulous",
        "crates/recorder-core",
        "crates/recorder",
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

/// `cargo metadata` of the workspace's own packages.
fn metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .current_dir(root())
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("cargo metadata answers JSON")
}

/// Each package's name, its directory relative to the root, its dependencies (name, kind:
/// `normal`, `dev` or `build`, and path if it is one of ours) and its target kinds.
type Package = (
    String,
    PathBuf,
    Vec<(String, String, Option<PathBuf>)>,
    Vec<String>,
);

fn packages() -> Vec<Package> {
    let meta = metadata();
    let rel = |p: &str| {
        Path::new(p)
            .strip_prefix(root())
            .map(Path::to_path_buf)
            .unwrap_or_else(|_| PathBuf::from(p))
    };
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| {
            let dir = rel(p["manifest_path"].as_str().unwrap())
                .parent()
                .unwrap()
                .to_path_buf();
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    (
                        d["name"].as_str().unwrap().to_owned(),
                        d["kind"].as_str().unwrap_or("normal").to_owned(),
                        d["path"].as_str().map(rel),
                    )
                })
                .collect();
            let kinds = p["targets"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|t| t["kind"].as_array().unwrap().iter())
                .map(|k| k.as_str().unwrap().to_owned())
                .collect();
            (p["name"].as_str().unwrap().to_owned(), dir, deps, kinds)
        })
        .collect()
}

#[test]
fn published_crates_are_complete_and_depend_only_on_published_crates() {
    let meta = metadata();
    let packages = meta["packages"].as_array().expect("packages");
    let names: Vec<&str> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for crate_name in crate::PUBLISHED {
        assert!(names.contains(&crate_name), "{crate_name} is a member");
    }
    for p in packages {
        let name = p["name"].as_str().unwrap();
        // `null`: any registry; `[]`: publish = false.
        let publishable = p["publish"].is_null();
        if !crate::PUBLISHED.contains(&name) {
            assert!(
                !publishable,
                "{name} is publishable: only {:?} are, the rest stays `publish = false`",
                crate::PUBLISHED
            );
            continue;
        }
        assert!(
            publishable,
            "{name} is in PUBLISHED but has publish = false"
        );
        for field in [
            "description",
            "license",
            "readme",
            "repository",
            "rust_version",
        ] {
            assert!(
                p[field].as_str().is_some_and(|v| !v.is_empty()),
                "{name} has no {field}"
            );
        }
        for field in ["keywords", "categories"] {
            assert!(
                p[field].as_array().is_some_and(|v| !v.is_empty()),
                "{name} has no {field}"
            );
        }
        assert!(
            p["metadata"]["docs"]["rs"].is_object(),
            "{name} has no [package.metadata.docs.rs]"
        );
        for d in p["dependencies"].as_array().unwrap() {
            let Some(path) = d["path"].as_str() else {
                continue;
            };
            let dep = d["name"].as_str().unwrap();
            let kind = d["kind"].as_str().unwrap_or("normal");
            if kind == "dev" && d["req"] == "*" {
                // Dropped from the published manifest.
                continue;
            }
            assert!(
                crate::PUBLISHED.contains(&dep),
                "{name} depends on {dep} ({path}), which is not published"
            );
            assert_ne!(
                d["req"], "*",
                "{name} depends on {dep} by path only: give it a version too"
            );
        }
    }
}

#[test]
fn no_package_depends_on_a_binary_package() {
    let packages = packages();
    assert!(packages.len() >= 10, "read the workspace's packages");
    for (name, dir, deps, kinds) in &packages {
        for (dep, _, path) in deps {
            assert!(
                !path.as_ref().is_some_and(|p| p.starts_with("bins")),
                "{name} depends on {dep}, a binary package: move what it needs into a library \
                 crate under crates/"
            );
        }
        if dir.starts_with("bins") {
            assert!(
                !kinds.iter().any(|k| k == "lib"),
                "{name} has a library target: binaries only parse, wire and exit; the library \
                 belongs under crates/"
            );
        }
    }
}

#[test]
fn libraries_have_typed_errors_and_no_cli() {
    // anyhow and clap belong to binaries (and to the benchmark harness, which is one).
    for (name, dir, deps, _) in packages() {
        if !dir.starts_with("crates") || name == "crema-bench" {
            continue;
        }
        for (dep, kind, _) in &deps {
            assert!(
                !(kind == "normal" && (dep == "anyhow" || dep == "clap")),
                "{name} depends on {dep}: a library answers typed errors (thiserror) and parses \
                 no command line"
            );
        }
    }
}

#[test]
fn binaries_stay_thin() {
    for bin in ["bins/crema-gateway", "bins/crema-recorder"] {
        let lines: usize = rust_files(&root().join(bin).join("src"))
            .iter()
            .map(|f| read(f).lines().count())
            .sum();
        assert!(
            lines < 1_200,
            "{bin}/src has {lines} lines of Rust: what is not CLI, configuration, wiring or (for \
             the gateway) HTTP handlers belongs in crates/recorder"
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
    // Pure modules of crates that also hold a driver: the socket.io packet codec and protocol
    // state, and the fan-out's per-connection queue and client-frame decoder.
    sources.extend(rust_files(&root().join("crates/socketio-v5/src/codec")));
    for file in [
        "crates/socketio-v5/src/connection.rs",
        "crates/fanout/src/outbound.rs",
        "crates/fanout/src/frames.rs",
    ] {
        sources.push(root().join(file));
    }
    assert!(sources.len() >= 5, "found the pure sources");
    for file in sources {
        // Code only: a doc example may show how a driver reads the clock to pass it in.
        let text: String = read(&file)
            .lines()
            .filter(|line| !line.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
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
fn the_pure_socketio_core_builds_without_tokio() {
    // What the fuzz targets build: the codec and the protocol state, no IO crate under them.
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    for (package, flags) in [
        ("socketio-v5", &["--no-default-features"][..]),
        ("engineio-codec", &[][..]),
        ("recorder-core", &[][..]),
    ] {
        let out = std::process::Command::new(&cargo)
            .current_dir(root())
            .args([
                "tree",
                "--offline",
                "-e",
                "normal",
                "--prefix",
                "none",
                "-p",
                package,
            ])
            .args(flags)
            .output()
            .expect("cargo tree runs");
        assert!(
            out.status.success(),
            "cargo tree: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let tree = String::from_utf8_lossy(&out.stdout);
        for io in ["tokio ", "engineio-client ", "hyper ", "tungstenite "] {
            assert!(
                !tree.lines().any(|l| l.starts_with(io)),
                "{package} {flags:?} depends on {io}: the pure core must build without IO crates\n{tree}"
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

/// The page's chart library is uPlot as its npm package ships it: the version the lock file of
/// `xtask/node` pins, and (where the packages are installed, as in CI) the same bytes.
#[test]
fn the_vendored_uplot_is_the_npm_package() {
    let vendored = root().join("bins/crema-gateway/assets/uplot");
    let js = read(&vendored.join("uPlot.iife.min.js"));
    let lock: serde_json::Value =
        serde_json::from_str(&read(&root().join("xtask/node/package-lock.json"))).unwrap();
    let version = lock["packages"]["node_modules/uplot"]["version"]
        .as_str()
        .expect("uplot in xtask/node/package-lock.json");
    assert!(
        js.starts_with(&format!(
            "/*! https://github.com/leeoniya/uPlot (v{version}) */"
        )),
        "bins/crema-gateway/assets/uplot is not uPlot {version}"
    );
    assert!(read(&vendored.join("LICENSE")).contains("MIT License"));
    let installed = root().join("xtask/node/node_modules/uplot");
    if !installed.exists() {
        assert!(
            std::env::var_os("CREMA_REQUIRE_NODE").is_none(),
            "xtask/node/node_modules/uplot is not installed (npm ci in xtask/node)"
        );
        return;
    }
    for (ours, theirs) in [
        ("uPlot.iife.min.js", "dist/uPlot.iife.min.js"),
        ("uPlot.min.css", "dist/uPlot.min.css"),
        ("LICENSE", "LICENSE"),
    ] {
        assert!(
            read(&vendored.join(ours)) == read(&installed.join(theirs)),
            "bins/crema-gateway/assets/uplot/{ours} differs from the npm package's {theirs}"
        );
    }
}
