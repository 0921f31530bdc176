//! The `vigil-agent` command line (this file also makes `cargo test` build the binary that
//! the end-to-end tests in `tests/` run).

use std::process::Command;

#[test]
fn check_reports_unknown_keys_and_accepts_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = dir.path().join("a.toml");
    std::fs::write(
        &bad,
        "id = \"edge\"\n[[syslog]]\nlisten = \"127.0.0.1:0\"\nprotocol = [\"tcp\"]\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_vigil-agent"))
        .args(["--check", "--config"])
        .arg(&bad)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("protocol") && err.contains("line 4"), "{err}");

    let out = Command::new(env!("CARGO_BIN_EXE_vigil-agent"))
        .arg("--check")
        .output()
        .expect("runs");
    assert!(out.status.success());
}
