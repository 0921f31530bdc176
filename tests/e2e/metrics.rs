//! A real Prometheus server scrapes both binaries: every target `up` with no scrape error,
//! and the series the dashboards read are there through its query API, with the values the
//! binaries' own `/metrics` give.

use std::time::Duration;

use vigil_e2e::prometheus::{self, Prometheus};
use vigil_e2e::{Agent, Collector, send_tcp, skip, wait_for};

#[test]
fn prometheus_scrapes_the_collector_and_the_agent_without_errors() {
    if let Some(why) = prometheus::unavailable() {
        skip(&why);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let c = Collector::start_with_commit_interval(dir.path(), 0, "100ms");
    let a = Agent::start(&dir.path().join("agent"), c.port, "", "");
    send_tcp(a.syslog_tcp, "METRICS-TEST", 0..250);
    let logs = || format!("{}\n{}", c.proc.log_tail(), a.proc.log_tail());
    wait_for(
        Duration::from_secs(60),
        "the events searchable",
        logs,
        || (vigil_e2e::total(&c.url(), "message:METRICS*")? >= 250).then_some(()),
    );
    let p = Prometheus::start(
        dir.path(),
        &[
            ("vigil", format!("127.0.0.1:{}", c.port)),
            ("vigil-agent", a.http.to_string()),
        ],
    );
    // Both targets up, each scraped at least once without an error.
    let targets = wait_for(
        Duration::from_secs(60),
        "both targets up",
        || format!("{:?}\n{}", p.targets(), p.proc.log_tail()),
        || {
            let t = p.targets();
            (t.len() == 2 && t.iter().all(|t| t["health"] == "up")).then_some(t)
        },
    );
    for t in &targets {
        assert_eq!(t["lastError"], "", "{t}");
    }
    let up = p.query("up");
    assert_eq!(up.len(), 2, "{up:?}");
    assert!(up.iter().all(|s| s["value"][1] == "1"), "{up:?}");
    // Series of each binary, as the dashboards read them, with the values they export.
    let value = |q: &str| -> f64 {
        wait_for(
            Duration::from_secs(30),
            q,
            || format!("{:?}", p.query(q)),
            || {
                p.query(q).first()?["value"][1]
                    .as_str()?
                    .parse::<f64>()
                    .ok()
            },
        )
    };
    assert!(value("vigil_ingest_events_total") >= 250.0);
    assert!(value(r#"sum(vigil_agent_events_received_total{job="vigil-agent"})"#) >= 250.0);
    assert!(value("vigil_index_docs") >= 250.0);
    assert!(value("sum(vigil_index_partition_docs)") >= 250.0);
    assert!(value("sum(vigil_index_partition_bytes)") > 0.0);
    assert!(value("sum(vigil_ingest_agent_events_total)") >= 250.0);
    assert!(value("sum(vigil_index_commit_duration_seconds_count)") >= 1.0);
    assert_eq!(value("vigil_agent_spool_batches"), 0.0);
    assert_eq!(value("vigil_agent_batches_in_flight"), 0.0);
    assert!(value("sum(vigil_agent_ship_duration_seconds_count)") >= 1.0);
    assert!(value("vigil_notify_outbox_oldest_seconds") >= 0.0);
    let rules = p.query("sum by (state) (vigil_detect_rules)");
    assert!(
        rules.iter().any(|s| s["metric"]["state"] == "loaded"),
        "{rules:?}"
    );
    // No series with a name Prometheus had to reject or rename.
    let names = reqwest::blocking::get(format!("{}/api/v1/label/__name__/values", p.url))
        .and_then(|r| r.json::<serde_json::Value>())
        .expect("names");
    let names: Vec<&str> = names["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|n| n.as_str())
        .filter(|n| n.starts_with("vigil"))
        .collect();
    assert!(names.len() >= 20, "{names:?}");
}
