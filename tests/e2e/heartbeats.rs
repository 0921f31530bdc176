//! Heartbeats through the real `vigil up`: created with `vigil heartbeats add`, pinged by the
//! README's `curl` lines exactly as written there (only the address differs): a success keeps
//! it up, a non-zero exit status opens an incident at once with the job's output, the next
//! success resolves it; a run's time from `/start`; pings that stop open a "no ping in time"
//! incident within the period plus grace, and the next success resolves it with the outage's
//! length.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use vigil_e2e::{Proc, bin, free_port, have, wait_for};

/// The README's lines that ping, from its `sh` and `ini` blocks under "Heartbeats".
fn readme_lines() -> (Vec<String>, HashMap<String, String>) {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let section = readme
        .split("\n## Heartbeats\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Heartbeats section in the README");
    let mut shell = Vec::new();
    let mut unit = HashMap::new();
    let mut in_code = false;
    for line in section.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code || !line.contains("/ping/") {
            continue;
        }
        if let Some((key, value)) = line.split_once('=')
            && key.starts_with("Exec")
        {
            unit.insert(key.to_owned(), value.to_owned());
        } else if !line.starts_with('#') && !line.starts_with("vigil ") {
            shell.push(line.to_owned());
        }
    }
    (shell, unit)
}

fn get(url: &str) -> Value {
    reqwest::blocking::get(url)
        .and_then(|r| r.json())
        .unwrap_or(Value::Null)
}

#[test]
fn heartbeats_pinged_by_the_readme_s_curl_lines_open_and_resolve_incidents() {
    if !have("curl") {
        vigil_e2e::skip("curl is not installed");
        return;
    }
    let (shell, unit) = readme_lines();
    assert_eq!(
        shell.len(),
        3,
        "the crontab line, the one-liner and /start: {shell:?}"
    );
    assert!(unit.contains_key("ExecStartPre") && unit.contains_key("ExecStopPost"));

    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let config = dir.path().join("up.toml");
    std::fs::write(
        &config,
        format!(
            "[http]\nlisten = \"127.0.0.1:{port}\"\n[notify]\nexternal_url = \"{base}\"\n\
             [agent.http]\nlisten = \"127.0.0.1:0\"\n[[agent.syslog]]\nlisten = \"127.0.0.1:0\"\n\
             [[agent.netflow]]\nlisten = \"127.0.0.1:0\"\n"
        ),
    )
    .expect("config");
    let mut cmd = Command::new(bin("vigil"));
    cmd.current_dir(dir.path())
        .args(["up", "--config"])
        .arg(&config);
    let up = Proc::spawn("vigil up", cmd, &dir.path().join("up.log"));
    wait_for(
        Duration::from_secs(60),
        "vigil up to answer",
        || up.log_tail(),
        || reqwest::blocking::get(format!("{base}/healthz")).ok(),
    );

    // The job the README's lines run: prints, and exits with $JOB_EXIT.
    let jobs = dir.path().join("bin");
    std::fs::create_dir(&jobs).expect("present");
    let job = jobs.join("backup.sh");
    std::fs::write(
        &job,
        "#!/bin/sh\necho \"copied 42 files\"\nexit ${JOB_EXIT:-0}\n",
    )
    .expect("present");
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&job)
        .status()
        .expect("present");
    let path = format!(
        "{}:{}",
        jobs.display(),
        std::env::var("PATH").unwrap_or_default()
    );

    let out = Command::new(bin("vigil"))
        .args([
            "heartbeats",
            "add",
            "nightly-backup",
            "--period",
            "3s",
            "--grace",
            "2s",
        ])
        .args(["--json", "--url", &base, "--as", "ann"])
        .output()
        .expect("vigil heartbeats add");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hb: Value = serde_json::from_slice(&out.stdout).expect("json");
    let uuid = hb["uuid"].as_str().expect("uuid").to_owned();
    assert_eq!(hb["ping_url"], format!("{base}/ping/{uuid}"));

    let readme_base = "http://127.0.0.1:8080";
    let run = |line: &str, env: &[(&str, &str)]| {
        // A crontab line runs its command after the five time fields.
        let command = if line.starts_with(|c: char| c.is_ascii_digit() || c == '*') {
            line.splitn(6, ' ')
                .nth(5)
                .expect("a crontab command")
                .to_owned()
        } else {
            line.to_owned()
        }
        .replace(readme_base, &base)
        .replace("/ping/UUID", &format!("/ping/{uuid}"));
        let status = Command::new("sh")
            .arg("-c")
            .arg(&command)
            .env("PATH", &path)
            .env("UUID", &uuid)
            .envs(env.iter().copied())
            .status()
            .expect("sh runs");
        assert!(status.success(), "{command}");
    };
    let state = || get(&format!("{base}/api/v1/heartbeats/{uuid}"));
    let heartbeat_incidents = || {
        get(&format!("{base}/api/v1/incidents"))["incidents"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let context = || format!("{}\n{}", state(), up.log_tail());

    // The crontab line: a success.
    run(&shell[0], &[]);
    assert_eq!(state()["status"], "up");
    // The one-liner with a failing job: an incident at once, with its output.
    run(&shell[1], &[("JOB_EXIT", "1")]);
    let s = state();
    assert_eq!(
        (s["status"].as_str(), s["recent"][0]["exit_status"].as_i64()),
        (Some("down"), Some(1))
    );
    assert_eq!(s["recent"][0]["body"], "copied 42 files");
    let failed = heartbeat_incidents();
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(
        failed[0]["title"],
        "Heartbeat nightly-backup: the job exited with an error"
    );
    assert_eq!(failed[0]["status"], "open");
    let id = failed[0]["id"].as_i64().expect("present");
    // The same one-liner with a job that succeeds resolves it.
    run(&shell[1], &[("JOB_EXIT", "0")]);
    let inc = get(&format!("{base}/api/v1/incidents/{id}"));
    assert_eq!(inc["status"], "resolved", "{inc}");

    // /start, then the systemd unit's ExecStartPre and ExecStopPost: a run with its time.
    run(&shell[2], &[]);
    assert_eq!(state()["running"], true);
    let pre = unit["ExecStartPre"].trim_start_matches('-').to_owned();
    run(&pre, &[]);
    run(&unit["ExecStopPost"], &[("EXIT_STATUS", "0")]);
    let s = state();
    assert_eq!(
        (s["running"].as_bool(), s["status"].as_str()),
        (Some(false), Some("up"))
    );
    assert!(s["last_duration_seconds"].as_f64().is_some(), "{s}");

    // No more pings: down within the period and grace (3 s + 2 s), one incident.
    let late = wait_for(
        Duration::from_secs(30),
        "the heartbeat to go down",
        context,
        || {
            let s = state();
            (s["status"] == "down").then_some(s)
        },
    );
    assert_eq!(late["down_reason"], "late");
    let open: Vec<Value> = heartbeat_incidents()
        .into_iter()
        .filter(|i| i["status"] == "open")
        .collect();
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(
        open[0]["title"],
        "Heartbeat nightly-backup: no ping in time"
    );
    let id = open[0]["id"].as_i64().expect("present");
    run(&shell[0], &[]);
    let inc = get(&format!("{base}/api/v1/incidents/{id}"));
    assert_eq!(inc["status"], "resolved", "{inc}");
    let ended = inc["timeline"]
        .as_array()
        .expect("present")
        .iter()
        .find(|e| e["action"] == "outage_ended")
        .cloned()
        .expect("the outage's end on the timeline");
    assert!(
        ended["detail"]["duration_seconds"].as_i64().is_some(),
        "{ended}"
    );

    // An unknown heartbeat: curl -f fails (404), as a job's log would show.
    let unknown = Command::new("curl")
        .args(["-fsS", "-m", "10", "-o", "/dev/null"])
        .arg(format!("{base}/ping/{}", uuid::Uuid::new_v4()))
        .status()
        .expect("curl");
    assert_eq!(unknown.code(), Some(22));
}
