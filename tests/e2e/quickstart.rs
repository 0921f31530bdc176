//! The README's quick start, run as written: `vigil up` with its embedded defaults, then every
//! command of the quick start's blocks, pasted into `bash`. It runs in a network namespace of
//! its own, so the fixed default ports collide with nothing, with this build's `vigil` first
//! on `PATH`.
//!
//! What the commands print is checked against what was sent: the syslog text of the README's
//! own `logger` line, and the bytes of the flows against `tcpdump -r` of the pcap the quick
//! start records.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use vigil_e2e::{Netns, Proc, bin_dir, have, skip, tcpdump_totals, wait_for};

/// The ```sh blocks of the README's "Quick start" section, in order.
fn quick_start_blocks(readme: &str) -> Vec<String> {
    let section = readme
        .split("\n## ")
        .find(|s| s.starts_with("Quick start"))
        .expect("the README has a Quick start section");
    section
        .split("```sh\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap_or_default().to_owned())
        .collect()
}

/// `script` run by bash inside `ns`, in `dir`, with this build's programs first on PATH.
fn sh(ns: &str, dir: &Path, script: &str) -> Output {
    let path = format!(
        "{}:{}",
        bin_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = Netns::exec(ns, "bash");
    c.args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", path)
        .env_remove("VIGIL_URL")
        .env_remove("VIGIL_TOKEN");
    c.output().expect("bash runs")
}

fn text(o: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn the_readme_quick_start_works_as_written() {
    let missing: Vec<_> = ["logger", "tcpdump", "softflowd", "curl", "bash"]
        .into_iter()
        .filter(|p| !have(p))
        .collect();
    if let Some(why) = Netns::unavailable() {
        skip(&format!(
            "the quick start test needs a network namespace: {why}"
        ));
        return;
    }
    if !missing.is_empty() {
        skip(&format!("the quick start needs {}", missing.join(", ")));
        return;
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("read README.md");
    let blocks = quick_start_blocks(&readme);
    assert_eq!(
        blocks.len(),
        4,
        "install and start, syslog, flows, queries: {blocks:#?}"
    );
    // The first block installs and starts; this build's binaries stand for the installed ones.
    assert!(
        blocks[0].lines().any(|l| l.trim() == "vigil up"),
        "{}",
        blocks[0]
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let (_netns, ns) = Netns::alone("qs");
    let mut up = Netns::exec(&ns, &bin_dir().join("vigil").display().to_string());
    up.arg("up").current_dir(dir.path());
    let up = Proc::spawn("vigil up", up, &dir.path().join("up.log"));
    wait_for(
        Duration::from_secs(60),
        "vigil up to be ready on its default port",
        || up.log_tail(),
        || {
            sh(&ns, dir.path(), "curl -sf http://127.0.0.1:8080/readyz")
                .status
                .success()
                .then_some(())
        },
    );

    for block in &blocks[1..3] {
        let out = sh(&ns, dir.path(), block);
        assert!(
            out.status.success(),
            "{block}\n{}\nvigil up: {}",
            text(&out),
            up.log_tail()
        );
    }
    let sent = blocks[1]
        .split('"')
        .nth(1)
        .expect("the logger line quotes its message")
        .to_owned();
    let pcap = blocks[2]
        .split_whitespace()
        .find(|w| w.ends_with(".pcap"))
        .expect("the flow block names its pcap")
        .to_owned();
    let recorded: u64 = tcpdump_totals(Path::new(&pcap)).values().map(|t| t.0).sum();
    assert!(recorded > 0, "tcpdump recorded the quick start's traffic");

    let queries: Vec<&str> = blocks[3].lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(queries.len(), 4, "{queries:#?}");
    // Each query is run until it shows what was sent (the index commits every second).
    let run_until = |query: &str, shows: &dyn Fn(&str) -> bool| {
        let last = std::cell::RefCell::new(String::new());
        wait_for(
            Duration::from_secs(30),
            query,
            || format!("{}\nvigil up: {}", last.borrow(), up.log_tail()),
            || {
                let out = sh(&ns, dir.path(), query);
                let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                *last.borrow_mut() = text(&out);
                (out.status.success() && shows(&stdout)).then_some(())
            },
        );
    };
    let json = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    run_until(queries[0], &|out| out.contains(&sent));
    run_until(queries[1], &|out| out.contains("127.0.0.1"));
    run_until(queries[2], &|out| {
        json(out)["hits"]
            .as_array()
            .is_some_and(|h| h.iter().any(|e| e["message"] == sent.as_str()))
    });
    // Every flow of the pcap goes from 127.0.0.1 to 127.0.0.1: one bucket holding all of it.
    run_until(queries[3], &|out| {
        let b = &json(out)["terms"]["buckets"];
        b[0]["key"] == "127.0.0.1" && b[0]["sum"].as_f64() == Some(recorded as f64)
    });
}
