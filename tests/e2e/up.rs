//! `vigil up` with no configuration beyond ports, fed by util-linux `logger`, read back with
//! `vigil search` and the HTTP API.

use std::process::Command;
use std::time::Duration;

use vigil_e2e::{Proc, bin, read_ports, wait_for};

#[test]
fn logger_over_tcp_and_udp_is_searchable_with_the_cli_and_the_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("up.toml");
    // Only the ports differ from the embedded defaults, so tests can run side by side.
    std::fs::write(
        &config,
        "[http]\nlisten = \"127.0.0.1:0\"\n[agent.http]\nlisten = \"127.0.0.1:0\"\n[[agent.syslog]]\nlisten = \"127.0.0.1:0\"\n[[agent.netflow]]\nlisten = \"127.0.0.1:0\"\n",
    )
    .expect("config");
    let ports = dir.path().join("ports.json");
    let mut cmd = Command::new(bin("vigil"));
    cmd.current_dir(dir.path())
        .arg("up")
        .arg("--config")
        .arg(&config)
        .arg("--ports-file")
        .arg(&ports);
    let mut up = Proc::spawn("vigil up", cmd, &dir.path().join("up.log"));
    let addrs = read_ports(&ports, &up);
    let url = format!("http://{}", addrs["http"].as_str().expect("http"));
    let tcp = addrs["agent"]["syslog_tcp"][0]
        .as_str()
        .expect("tcp")
        .to_owned();
    let udp = addrs["agent"]["syslog_udp"][0]
        .as_str()
        .expect("udp")
        .to_owned();
    let port = |a: &str| a.rsplit(':').next().expect("port").to_owned();

    for (proto, addr, msg) in [
        ("--tcp", &tcp, "hello vigil over tcp"),
        ("--udp", &udp, "hello vigil over udp"),
    ] {
        let ok = Command::new("logger")
            .args([
                proto,
                "-n",
                "127.0.0.1",
                "-P",
                &port(addr),
                "-t",
                "e2e-app",
                msg,
            ])
            .status()
            .expect("logger runs");
        assert!(ok.success());
    }
    let ok = Command::new("logger")
        .args([
            "--tcp",
            "--octet-count",
            "-n",
            "127.0.0.1",
            "-P",
            &port(&tcp),
            "-t",
            "e2e-app",
            "hello vigil octet counted",
        ])
        .status()
        .expect("logger runs");
    assert!(ok.success());

    let search = |args: &[&str]| {
        let out = Command::new(bin("vigil"))
            .arg("search")
            .args(args)
            .args(["--url", &url])
            .output()
            .expect("vigil search runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let table = wait_for(
        Duration::from_secs(20),
        "three hello events",
        || up.log_tail(),
        || {
            let t = search(&["hello", "--since", "1h"]);
            t.contains("3 of 3 events").then_some(t)
        },
    );
    assert!(table.starts_with("TIME"), "{table}");
    for m in [
        "hello vigil over tcp",
        "hello vigil over udp",
        "hello vigil octet counted",
    ] {
        assert!(table.contains(m), "{m} missing from\n{table}");
    }

    let json = search(&["message:octet", "--json"]);
    let ev: serde_json::Value =
        serde_json::from_str(json.lines().next().expect("one hit")).expect("json");
    assert_eq!(ev["message"], "hello vigil octet counted");
    assert_eq!(ev["event.kind"], "syslog");
    assert_eq!(ev["agent.id"], "local");
    assert_eq!(ev["process.name"], "e2e-app");
    assert_eq!(ev["observer.ip"], "127.0.0.1");
    assert!(ev["host.name"].as_str().is_some_and(|h| !h.is_empty()));
    let ts = ev["@timestamp"].as_str().expect("timestamp");
    assert!(chrono_like(ts), "{ts}");

    let api: serde_json::Value =
        reqwest::blocking::get(format!("{url}/api/v1/search?q=hello&limit=2"))
            .expect("api")
            .json()
            .expect("json");
    assert_eq!(api["total"], 3);
    assert_eq!(api["hits"].as_array().map(Vec::len), Some(2));

    assert!(
        up.terminate(Duration::from_secs(30)),
        "vigil up did not stop cleanly\n{}",
        up.log_tail()
    );
    // Defaults: data under ./vigil-data of the working directory, a partition per day.
    let index = dir.path().join("vigil-data/index");
    let partitions: Vec<String> = std::fs::read_dir(&index)
        .expect("index dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("meta.json").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !partitions.is_empty()
            && partitions
                .iter()
                .all(|p| chrono::NaiveDate::parse_from_str(p, "%Y-%m-%d").is_ok()),
        "{partitions:?}"
    );
}

fn chrono_like(ts: &str) -> bool {
    ts.len() >= 20 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T'
}
