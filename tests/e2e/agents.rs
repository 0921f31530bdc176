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
