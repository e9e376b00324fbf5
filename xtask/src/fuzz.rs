//! `cargo xtask fuzz <target> <seconds>`: seeds the corpus from the protocol vectors and runs
//! cargo-fuzz on nightly.

use std::process::Command;

use anyhow::{Context as _, bail};
use serde_json::Value;

/// Every fuzz target under `fuzz/fuzz_targets/`.
pub(crate) const TARGETS: [&str; 8] = [
    "engineio_packet",
    "engineio_payload",
    "socketio_packet",
    "socketio_binary",
    "ws_client_frames",
    "ws_control",
    "machine_event",
    "identity_answer",
];

pub(crate) fn run(target: &str, seconds: u64) -> anyhow::Result<()> {
    if !TARGETS.contains(&target) {
        bail!("unknown fuzz target {target:?}; one of {TARGETS:?}");
    }
    let corpus = crate::root().join("fuzz/corpus").join(target);
    std::fs::create_dir_all(&corpus)
        .with_context(|| format!("cannot create {}", corpus.display()))?;
    let seeds = seeds(target)?;
    for (i, seed) in seeds.iter().enumerate() {
        std::fs::write(corpus.join(format!("vector-{i:03}")), seed)?;
    }
    eprintln!("seeded {} inputs from fixtures/protocol", seeds.len());
    let mut cmd = Command::new("cargo");
    cmd.current_dir(crate::root().join("fuzz"))
        .args(["+nightly", "fuzz", "run", "-O", target])
        .arg(&corpus)
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg("-print_final_stats=1");
    crate::run(cmd)
}

/// Inputs from `fixtures/protocol/*.json`, shaped for the target.
fn seeds(target: &str) -> anyhow::Result<Vec<Vec<u8>>> {
    let read = |name: &str| -> anyhow::Result<Value> {
        let path = crate::root().join("fixtures/protocol").join(name);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Ok(serde_json::from_str(&text)?)
    };
    let strings = |v: &Value, group: &str, field: &str| -> Vec<Vec<u8>> {
        v[group]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c[field].as_str())
            .map(|s| s.as_bytes().to_vec())
            .collect()
    };
    Ok(match target {
        "engineio_packet" => strings(&read("engineio.json")?, "packets", "text"),
        "engineio_payload" => strings(&read("engineio.json")?, "payloads", "body"),
        "socketio_packet" => strings(&read("socketio.json")?, "packets", "text"),
        // The machine's answers of the identity vectors.
        "identity_answer" => read("../meticulous/identity/vectors.json")?["signatures"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|case| case["answer"].to_string().into_bytes())
            .collect(),
        // A piece size, 0 (one request's text as it is), then the request.
        "ws_control" => [
            r#"{"op":"subscribe","topic":"machine:kitchen"}"#,
            r#"{"op":"unsubscribe","topic":"run:12"}"#,
            r#"{"op":"publish","topic":"t","extra":[1,2,{"a":null}]}"#,
        ]
        .iter()
        .map(|text| [&[64u8, 0][..], text.as_bytes()].concat())
        .collect(),
        _ => {
            // Cap byte, then messages separated by 0xff, each tagged 0 (text) or 1 (binary).
            let v = read("socketio.json")?;
            v["sequences"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|case| {
                    let mut seed = vec![10u8];
                    for m in case["messages"].as_array().into_iter().flatten() {
                        if let Some(text) = m["text"].as_str() {
                            seed.push(0);
                            seed.extend_from_slice(text.as_bytes());
                        } else {
                            seed.push(1);
                            seed.extend_from_slice(m["binary"].as_str().unwrap_or("").as_bytes());
                        }
                        seed.push(0xff);
                    }
                    seed
                })
                .collect()
        }
    })
}
