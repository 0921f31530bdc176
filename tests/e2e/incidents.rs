//! The incident queue end to end: alerts of a real collector become incidents once, even when
//! the collector is killed before its index commits; the desk works them with `vigil incidents`.

use std::time::Duration;

use serde_json::Value;
use vigil_e2e::{Agent, Collector, metric, total, vigil_cli, wait_for};

use crate::detect::{probe_rules, send};

/// `vigil incidents ARGS --url URL`: (success, stdout, stderr).
pub fn vigil(url: &str, args: &[&str]) -> (bool, String, String) {
    vigil_cli("incidents", args, url)
}

/// `vigil incidents ARGS --json`, which must succeed.
pub fn vigil_json(url: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (ok, out, err) = vigil(url, &all);
    assert!(ok, "vigil incidents {args:?}: {err}");
    serde_json::from_str(out.trim()).expect("JSON answer")
}

fn queue(url: &str) -> Vec<Value> {
    vigil_json(url, &["list"])["incidents"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn alerts_become_incidents_once_even_across_a_crash_and_the_desk_works_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, extra) = probe_rules(dir.path(), "");
    // No commit for an hour: the alert is in the queue (handed over before indexing) while
    // neither it nor its evidence is committed, so the kill below leaves it to the replay.
    let mut c = Collector::start_with(dir.path(), 0, "1h", &extra);
    let a = Agent::start(dir.path(), c.port, "", "");
    let url = c.url();
    let lines: Vec<String> = (0..3)
        .map(|i| format!("<13>1 - h1 app - - - reload-probe {i}"))
        .collect();
    send(a.syslog_tcp, &lines);
    wait_for(
        Duration::from_secs(30),
        "the incident",
        || c.proc.log_tail(),
        || (queue(&url).len() == 1).then_some(()),
    );
    assert_eq!(
        total(&url, "event.kind:alert"),
        Some(0),
        "nothing committed yet"
    );

    // Killed before the commit: the replay indexes the batches and derives the same alert,
    // which the queue already has.
    c.proc.kill9();
    c = Collector::start_with(dir.path(), c.port, "1h", &extra);
    assert_eq!(
        total(&url, "event.kind:alert"),
        Some(1),
        "{}",
        c.proc.log_tail()
    );
    assert_eq!(
        metric(&url, "vigil_incidents_alerts_total{outcome=\"duplicate\"}"),
        1.0,
        "{}",
        c.proc.log_tail()
    );
    let list = queue(&url);
    assert_eq!(list.len(), 1, "{list:?}");
    let inc = &list[0];
    assert_eq!(inc["title"], "three probe lines");
    assert_eq!(inc["group_key"], "host.name=h1");
    assert_eq!(inc["status"], "open");
    assert_eq!(inc["count"], 1);
    assert_eq!(
        (&inc["severity"], &inc["danger"]),
        (&"high".into(), &false.into()),
        "danger is a rule's judgement (its tag), not its level"
    );
    let id = inc["id"].to_string();
    let id = id.as_str();

    // The desk: acknowledge, comment, assign, then retract the false alarm.
    let done = vigil_json(&url, &["ack", id, "--as", "alice"]);
    assert_eq!(done["status"], "acknowledged");
    let (ok, _, err) = vigil(&url, &["ack", id, "--as", "bob"]);
    assert!(
        !ok && err.contains("cannot ack an incident that is acknowledged") && err.contains("409"),
        "{err}"
    );
    vigil_json(
        &url,
        &["comment", id, "probe traffic from the lab", "--as", "alice"],
    );
    vigil_json(&url, &["assign", id, "noc", "--as", "alice"]);
    let (ok, _, err) = vigil(&url, &["retract", id, "--reason", " ", "--as", "bob"]);
    assert!(!ok && err.contains("reason must not be empty"), "{err}");
    let done = vigil_json(
        &url,
        &["retract", id, "--reason", "lab test", "--as", "bob"],
    );
    assert_eq!(done["status"], "retracted");
    assert_eq!(done["assignee"], "noc");
    let steps: Vec<(&str, &str)> = done["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|s| {
            (
                s["actor"].as_str().unwrap_or_default(),
                s["action"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("vigil", "opened"),
            ("alice", "ack"),
            ("alice", "comment"),
            ("alice", "assign"),
            ("bob", "retract"),
        ]
    );
    let (ok, table, err) = vigil(&url, &["show", id]);
    assert!(ok, "{err}");
    assert!(
        table.contains("retracted") && table.contains("reason=lab test"),
        "{table}"
    );
    let (ok, table, err) = vigil(&url, &["list", "--status", "retracted"]);
    assert!(
        ok && table.contains("three probe lines") && table.contains("1 incidents"),
        "{table}{err}"
    );
    assert!(queue(&url).iter().all(|i| i["status"] == "retracted"));

    // Bad requests are named, with a status that fits.
    let client = reqwest::blocking::Client::new();
    for (path, body, status) in [
        (format!("incidents/{id}/close"), "{}", 400),
        (format!("incidents/{id}/retract"), "{}", 400),
        (format!("incidents/{id}/ack"), "[1", 400),
        ("incidents/999999/ack".into(), "{}", 404),
        ("incidents/x/ack".into(), "{}", 400),
    ] {
        let r = client
            .post(format!("{url}/api/v1/{path}"))
            .body(body)
            .send()
            .expect("post");
        assert_eq!(r.status().as_u16(), status, "{path} {body}");
        let v: Value = r.json().expect("JSON error");
        assert!(v["error"]["message"].as_str().is_some(), "{v}");
    }
    for q in ["status=closed", "severity=urgent", "limit=0", "colour=red"] {
        let r = client
            .get(format!("{url}/api/v1/incidents?{q}"))
            .send()
            .expect("get");
        assert_eq!(r.status().as_u16(), 400, "{q}");
    }
    let ready: Value = client
        .get(format!("{url}/readyz"))
        .send()
        .and_then(|r| r.json())
        .expect("readyz");
    assert_eq!(ready["components"]["incidents"], "ok", "{ready}");
    drop(a);
}
