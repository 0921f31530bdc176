//! Watching the watchers: agents report to the collector; `GET /api/v1/agents` lists them; an
//! agent killed with SIGKILL is reported silent within its limit, with an incident naming it,
//! and its return resolves the incident.

use std::time::Duration;

use serde_json::Value;
use vigil_e2e::{AGENT_ID, AGENT2_ID, AGENT2_TOKEN, Agent, Collector, wait_for};

fn get(url: &str) -> Value {
    reqwest::blocking::get(url)
        .and_then(|r| r.json())
        .unwrap_or(Value::Null)
}

fn agent(list: &Value, id: &str) -> Value {
    list["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["id"] == id))
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn an_agent_killed_with_sigkill_is_reported_silent_and_its_return_resolves_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The collector's configuration ends with edge-2's [[ingest.agents]] table: this line
    // is edge-2's limit.
    let c = Collector::start_with(dir.path(), 0, "100ms", "silent_after = \"3s\"\n");
    let url = c.url();
    let agent_dir = dir.path().join("edge-2");
    let mut a = Agent::start_as(&agent_dir, c.port, (AGENT2_ID, AGENT2_TOKEN), "", "");
    let logs = |a: &Agent| format!("{}\n{}", c.proc.log_tail(), a.proc.log_tail());

    let up = wait_for(
        Duration::from_secs(30),
        "edge-2's first report",
        || logs(&a),
        || {
            let e = agent(&get(&format!("{url}/api/v1/agents")), AGENT2_ID);
            (e["status"] == "up").then_some(e)
        },
    );
    assert_eq!(up["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(up["silent_after_seconds"], 3);
    assert_eq!(up["report_interval_seconds"], 1.0);
    assert_eq!(up["spool_batches"], 0);
    let list = get(&format!("{url}/api/v1/agents"));
    assert_eq!(agent(&list, AGENT_ID)["status"], "never_seen", "{list}");

    a.proc.kill9();
    let silent = wait_for(
        Duration::from_secs(30),
        "edge-2 reported silent",
        || logs(&a),
        || {
            let e = agent(&get(&format!("{url}/api/v1/agents")), AGENT2_ID);
            (e["status"] == "silent").then_some(e)
        },
    );
    let seen = |a: &Value| {
        chrono::DateTime::parse_from_rfc3339(a["last_seen"].as_str().expect("last seen"))
            .expect("a time")
    };
    let last_seen = seen(&silent);
    let open = get(&format!("{url}/api/v1/incidents?status=open"));
    let incidents = open["incidents"].as_array().cloned().unwrap_or_default();
    assert_eq!(incidents.len(), 1, "{open}");
    assert_eq!(
        incidents[0]["title"],
        "Heartbeat agent edge-2: no ping in time"
    );
    assert_eq!(incidents[0]["group_key"], "heartbeat=agent.edge-2");
    let id = incidents[0]["id"].as_i64().expect("present");
    let opened = get(&format!("{url}/api/v1/incidents/{id}"));
    let said = opened["timeline"][0]["detail"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(said.contains("last success at"), "{opened}");

    let a = Agent::start_as(&agent_dir, c.port, (AGENT2_ID, AGENT2_TOKEN), "", "");
    let resolved = wait_for(
        Duration::from_secs(30),
        "the incident resolved",
        || logs(&a),
        || {
            let i = get(&format!("{url}/api/v1/incidents/{id}"));
            (i["status"] == "resolved").then_some(i)
        },
    );
    assert!(
        resolved["timeline"]
            .as_array()
            .expect("present")
            .iter()
            .any(|e| e["action"] == "outage_ended"),
        "{resolved}"
    );
    let back = agent(&get(&format!("{url}/api/v1/agents")), AGENT2_ID);
    assert_eq!(back["status"], "up");
    assert!(seen(&back) > last_seen);
}

/// Vigil's own heartbeat, pinged to another Vigil: while a watched Vigil is ready its pings
/// keep its heartbeat up; killed, its silence opens an incident; when its incident database
/// goes away it reports the failure, and the incident says why.
#[test]
fn a_vigil_pings_its_heartbeat_to_another_and_its_death_and_failure_are_noticed() {
    let Some(pg) = vigil_e2e::postgres::Postgres::fresh() else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    for d in ["watcher", "b", "c"] {
        std::fs::create_dir(dir.path().join(d)).expect("dir");
    }
    let watcher = Collector::start(&dir.path().join("watcher"), 0);
    let wurl = watcher.url();
    let ping_url = |slug: &str| {
        let hb: Value = reqwest::blocking::Client::new()
            .post(format!("{wurl}/api/v1/heartbeats"))
            .json(&serde_json::json!({"slug": slug, "period": "2s", "grace": "1s"}))
            .send()
            .and_then(|r| r.json())
            .expect("heartbeat created");
        // The watcher runs without external_url: its URLs name the default address.
        hb["ping_url"]
            .as_str()
            .expect("ping url")
            .replace("http://127.0.0.1:8080", &wurl)
    };
    let watched = |name: &str, db: &str, url: String| {
        let extra = format!("{db}[heartbeats]\nreport_to = \"{url}\"\nreport_every = \"1s\"\n");
        Collector::start_with(&dir.path().join(name), 0, "500ms", &extra)
    };
    let mut b = watched("b", "", ping_url("vigil-b"));
    let c = watched(
        "c",
        &format!("[incidents]\ndatabase = \"{}\"\n", pg.url),
        ping_url("vigil-c"),
    );
    let state = |slug: &str| get(&format!("{wurl}/api/v1/heartbeats/{slug}"));
    let logs = || format!("{}\n{}", state("vigil-b"), state("vigil-c"));
    for slug in ["vigil-b", "vigil-c"] {
        wait_for(
            Duration::from_secs(30),
            "the watched Vigils' pings",
            logs,
            || (state(slug)["status"] == "up").then_some(()),
        );
    }

    // b killed: silent, an incident.
    b.proc.kill9();
    let dead = wait_for(Duration::from_secs(30), "b's silence noticed", logs, || {
        let s = state("vigil-b");
        (s["status"] == "down").then_some(s)
    });
    assert_eq!(dead["down_reason"], "late", "{dead}");

    // c's incident database gone: not ready, and it says why.
    drop(pg);
    let failed = wait_for(
        Duration::from_secs(30),
        "c's failure reported",
        || format!("{}\n{}", logs(), c.proc.log_tail()),
        || {
            let s = state("vigil-c");
            (s["status"] == "down").then_some(s)
        },
    );
    assert_eq!(failed["down_reason"], "failed", "{failed}");
    let said = failed["recent"][0]["body"].as_str().unwrap_or_default();
    assert!(
        said.contains("\"incident_database\":\"unreachable\""),
        "{said}"
    );

    let open = get(&format!("{wurl}/api/v1/incidents?status=open"));
    let mut titles: Vec<&str> = open["incidents"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i["title"].as_str())
        .collect();
    titles.sort_unstable();
    assert_eq!(
        titles,
        [
            "Heartbeat vigil-b: no ping in time",
            "Heartbeat vigil-c: the job reported a failure"
        ],
        "{open}"
    );
}
