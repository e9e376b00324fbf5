//! Every `toml` block of the documentation is a configuration the gateway takes as it is
//! (`crema-gateway --check`): the keys, their values, the URLs of hooks and analyzers.

mod common;

/// The ```toml blocks of a document.
fn toml_blocks(doc: &str) -> Vec<&str> {
    doc.split("```toml\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap_or_default())
        .collect()
}

#[test]
fn the_documented_configurations_read() {
    let blocks: Vec<&str> = [
        include_str!("../../../README.md"),
        include_str!("../../../docs/protocol.md"),
        include_str!("../../../docs/deploy.md"),
    ]
    .into_iter()
    .flat_map(toml_blocks)
    .collect();
    assert!(blocks.len() >= 2, "{blocks:?}");
    let dir = tempfile::tempdir().unwrap();
    for (i, block) in blocks.iter().enumerate() {
        let path = dir.path().join(format!("crema-{i}.toml"));
        std::fs::write(&path, block).unwrap();
        let out = std::process::Command::new(common::BIN)
            .arg("--config")
            .arg(&path)
            .args(["--check", "--demo"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}\nin\n{block}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `--check` fails, naming what is wrong, on a configuration the gateway would refuse.
#[test]
fn check_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crema.toml");
    std::fs::write(
        &path,
        "[[machines]]\nname = \"a\"\nurl = \"http://127.0.0.1:1\"\nwrong = 1\n",
    )
    .unwrap();
    let out = std::process::Command::new(common::BIN)
        .arg("--config")
        .arg(&path)
        .arg("--check")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrong"));
}
