//! Detection end to end: real syslog through real agents into the collector's Sigma stage,
//! alerts searched beside their evidence.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use vigil_e2e::{AGENT2_ID, AGENT2_TOKEN, Agent, Collector, search, skip, total, wait_for};

fn openssh() -> Option<Vec<String>> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/corpus/syslog/loghub/OpenSSH/OpenSSH_2k.log");
    let text = std::fs::read_to_string(p).ok()?;
    Some(text.lines().map(str::to_owned).collect())
}

/// Failed SSH logins per source address, as (seconds, line number), read from the file by
/// this test's own reading of sshd's "Failed <method> for [invalid user ]U from ADDR port".
fn failures(lines: &[String]) -> BTreeMap<String, Vec<(i64, usize)>> {
    let mut out: BTreeMap<String, Vec<(i64, usize)>> = BTreeMap::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(msg) = l.split_once("]: ").map(|(_, m)| m) else {
            continue;
        };
        if !l.contains(" sshd[") || !msg.starts_with("Failed ") {
            continue;
        }
        let Some((_, tail)) = msg.rsplit_once(" from ") else {
            continue;
        };
        let ip = tail.split(' ').next().unwrap_or_default().to_owned();
        // "Dec 10 06:55:46": the year does not matter for distances within a day.
        let t = chrono::NaiveDateTime::parse_from_str(
            &format!("2025 {}", &l[..15]),
            "%Y %b %e %H:%M:%S",
        )
        .expect("sshd time")
        .and_utc()
        .timestamp();
        out.entry(ip).or_default().push((t, i));
    }
    out
}

/// Whether five of these failures fall within ten minutes (the rule's condition).
fn brute_force(times: &[i64]) -> bool {
    times
        .iter()
        .enumerate()
        .any(|(j, t)| times[..=j].iter().filter(|u| t - *u <= 600).count() >= 5)
}

pub(crate) fn send(addr: std::net::SocketAddr, lines: &[String]) {
    let mut s = TcpStream::connect(addr).expect("connect");
    for l in lines {
        s.write_all(l.as_bytes()).expect("send");
        s.write_all(b"\n").expect("send");
    }
}

fn alerts(url: &str, rule: &str) -> Vec<Value> {
    let r = search(
        url,
        &format!("event.kind:alert AND rule.name:\"{rule}\""),
        1000,
        0,
    )
    .expect("search answers");
    r["hits"].as_array().cloned().unwrap_or_default()
}

#[test]
fn openssh_brute_force_alerts_name_exactly_the_sources_that_brute_force() {
    let Some(lines) = openssh() else {
        skip("../shared/corpus is not beside the workspace");
        return;
    };
    let fails = failures(&lines);
    let expected: BTreeSet<String> = fails
        .iter()
        .filter(|(_, v)| brute_force(&v.iter().map(|(t, _)| *t).collect::<Vec<_>>()))
        .map(|(ip, _)| ip.clone())
        .collect();
    let single: Vec<&String> = fails
        .iter()
        .filter(|(_, v)| v.len() == 1)
        .map(|(ip, _)| ip)
        .collect();
    assert!(
        expected.len() >= 5 && !single.is_empty(),
        "{expected:?} {single:?}"
    );

    // Split the file inside one brute force so that neither agent alone sees five failures
    // of it: the alert then needs the correlation across agents.
    let (straddler, split) = fails
        .iter()
        .filter(|(ip, _)| expected.contains(*ip))
        .find_map(|(ip, v)| {
            let split = v.get(v.len() / 2)?.1;
            let (a, b): (Vec<i64>, Vec<i64>) = (
                v.iter()
                    .filter(|(_, i)| *i < split)
                    .map(|(t, _)| *t)
                    .collect(),
                v.iter()
                    .filter(|(_, i)| *i >= split)
                    .map(|(t, _)| *t)
                    .collect(),
            );
            let others_whole = fails.iter().all(|(o, w)| {
                o == ip
                    || !expected.contains(o)
                    || brute_force(
                        &w.iter()
                            .filter(|(_, i)| *i < split)
                            .map(|(t, _)| *t)
                            .collect::<Vec<_>>(),
                    )
                    || brute_force(
                        &w.iter()
                            .filter(|(_, i)| *i >= split)
                            .map(|(t, _)| *t)
                            .collect::<Vec<_>>(),
                    )
            });
            (!brute_force(&a) && !brute_force(&b) && others_whole).then(|| (ip.clone(), split))
        })
        .expect("a brute force that only the two halves together show");

    let dir = tempfile::tempdir().expect("tempdir");
    let c = Collector::start(dir.path(), 0);
    let a1 = Agent::start(dir.path(), c.port, "", "");
    let a2 = Agent::start_as(
        &dir.path().join("agent2"),
        c.port,
        (AGENT2_ID, AGENT2_TOKEN),
        "",
        "",
    );
    let url = c.url();
    send(a1.syslog_tcp, &lines[..split]);
    wait_for(
        Duration::from_secs(60),
        "the first half",
        || format!("{:?} {}", total(&url, "*"), c.proc.log_tail()),
        || (total(&url, "event.kind:syslog")? >= split as u64).then_some(()),
    );
    send(a2.syslog_tcp, &lines[split..]);
    wait_for(
        Duration::from_secs(60),
        "every line",
        || format!("{:?} {}", total(&url, "*"), c.proc.log_tail()),
        || (total(&url, "event.kind:syslog")? >= lines.len() as u64).then_some(()),
    );
    assert_eq!(total(&url, "event.kind:syslog"), Some(lines.len() as u64));
    // The agents read the failures into fields, so a hunt can pivot on the address.
    let failed_lines: usize = fails.values().map(Vec::len).sum();
    assert_eq!(
        total(&url, "event.action:ssh_login AND event.outcome:failure"),
        Some(failed_lines as u64)
    );

    let brute = alerts(&url, "SSH brute force");
    let alerted: BTreeSet<String> = brute
        .iter()
        .map(|a| {
            a["source.ip"]
                .as_str()
                .expect("source.ip on the alert")
                .to_owned()
        })
        .collect();
    assert_eq!(alerted, expected, "brute-force alerts by source");
    assert!(alerted.contains(&straddler));
    for a in &brute {
        assert_eq!(a["rule.level"], "high");
        assert_eq!(a["alert.type"], "event_count");
        assert!(a["alert.value"].as_f64().is_some_and(|v| v >= 5.0), "{a}");
        let ids = a["alert.event_ids"].as_array().expect("event ids");
        assert!(ids.len() >= 5, "{a}");
        // The ids are those of the failures themselves.
        let ip = a["source.ip"].as_str().unwrap_or_default();
        for id in ids {
            let id = id.as_str().expect("id");
            let hit = search(&url, &format!("event.id:\"{id}\""), 1, 0).expect("search");
            assert_eq!(hit["hits"][0]["source.ip"], ip, "{id}");
            assert_eq!(hit["hits"][0]["event.outcome"], "failure", "{id}");
        }
    }
    // Within a half hour a source alerts once (the rule's suppression).
    let mut per_source: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &brute {
        *per_source
            .entry(a["source.ip"].as_str().unwrap_or_default())
            .or_default() += 1;
    }
    let f = &fails[&straddler];
    let span_h = (f.last().map_or(0, |x| x.0) - f[0].0) as f64 / 3600.0;
    assert!(
        per_source[straddler.as_str()] as f64 <= span_h * 2.0 + 1.0,
        "{per_source:?}"
    );

    // No alert of any kind names a source that failed once.
    let all = search(&url, "event.kind:alert", 1000, 0).expect("search");
    for a in all["hits"].as_array().expect("hits") {
        let ip = a["source.ip"].as_str().unwrap_or_default();
        assert!(!single.iter().any(|s| s.as_str() == ip), "{a}");
    }
    let rules: Value = reqwest::blocking::get(format!("{url}/api/v1/rules"))
        .and_then(|r| r.json())
        .expect("rules");
    let row = rules["rules"]
        .as_array()
        .expect("rules")
        .iter()
        .find(|r| r["title"] == "SSH brute force")
        .expect("the brute-force rule is listed");
    assert_eq!(row["hits"].as_u64(), Some(brute.len() as u64));
    // Each brute-forcing source is one incident in the queue, counting its alerts; the rule
    // is high but does not judge it a probable danger.
    let queue = crate::incidents::vigil_json(&url, &["list", "--limit", "1000"]);
    let mut incidents: BTreeMap<String, i64> = BTreeMap::new();
    for i in queue["incidents"].as_array().expect("incidents") {
        if i["title"] == "SSH brute force" {
            assert_eq!(
                (&i["severity"], &i["danger"]),
                (&"high".into(), &false.into()),
                "{i}"
            );
            let ip = i["group_key"]
                .as_str()
                .and_then(|g| g.strip_prefix("source.ip="));
            *incidents
                .entry(ip.expect("grouped by source").to_owned())
                .or_default() += i["count"].as_i64().expect("count");
        }
    }
    let alerted_per_source: BTreeMap<String, i64> = per_source
        .iter()
        .map(|(ip, n)| ((*ip).to_owned(), *n as i64))
        .collect();
    assert_eq!(incidents, alerted_per_source, "incidents by source");
    println!(
        "openssh: {} failed logins from {} sources; brute-force alerts for {:?} ({} alerts); {} needed both agents",
        failed_lines,
        fails.len(),
        expected,
        brute.len(),
        straddler
    );
}

fn post(url: &str, body: Value) -> (u16, Value) {
    let r = reqwest::blocking::Client::new()
        .post(url)
        .json(&body)
        .send()
        .expect("post");
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

const THREE_PROBES: &str = r#"
title: probe line
id: 11111111-0000-4000-8000-000000000001
name: probe_line
logsource: { product: linux, service: syslog }
detection:
  selection:
    message|contains: reload-probe
  condition: selection
level: low
---
title: three probe lines
id: 11111111-0000-4000-8000-000000000002
name: three_probes
correlation:
  type: event_count
  rules: [probe_line]
  group-by: [host.name]
  timespan: 1h
  condition: { gte: 3 }
level: high
"#;

/// Waits until `n` probe lines are searchable (committed) on `c`.
fn probes_searchable(c: &Collector, n: u64) {
    let url = c.url();
    wait_for(
        Duration::from_secs(30),
        "the probes",
        || c.proc.log_tail(),
        || (total(&url, "message:\"reload-probe\"")? >= n).then_some(()),
    )
}

/// A rules directory under `dir` holding [`THREE_PROBES`] alone, and the `[detect]` table (with
/// `more` keys) that loads it instead of Vigil's rules.
pub(crate) fn probe_rules(dir: &std::path::Path, more: &str) -> (std::path::PathBuf, String) {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).expect("rules dir");
    std::fs::write(rules.join("probes.yml"), THREE_PROBES).expect("rule");
    let extra = format!(
        "[detect]\nbuiltin_rules = false\nrules = [\"{}\"]\n{more}",
        rules.display()
    );
    (rules, extra)
}

#[test]
fn a_reload_and_a_restart_keep_correlation_state_and_bad_rules_are_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (rules, extra) = probe_rules(dir.path(), "");
    let mut c = Collector::start_with(dir.path(), 0, "200ms", &extra);
    let a = Agent::start(dir.path(), c.port, "", "");
    let url = c.url();
    let probe = |host: &str, n: u64| {
        let lines: Vec<String> = (0..n)
            .map(|i| format!("<13>1 - {host} app - - - reload-probe {i}"))
            .collect();
        send(a.syslog_tcp, &lines);
    };
    probe("h1", 2);
    probe("h2", 2);
    probes_searchable(&c, 4);
    assert_eq!(total(&url, "event.kind:alert"), Some(0));

    // A reload that brings a broken rule: it is named, the good rule stays with its state.
    std::fs::write(rules.join("broken.yml"), "title: broken\ndetection: {}\n").expect("rule");
    let (status, body) = post(&format!("{url}/api/v1/rules/reload"), Value::Null);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["rules"], 2, "{body}");
    let errs = body["errors"].as_array().expect("errors");
    assert_eq!(errs.len(), 1, "{body}");
    assert!(
        errs[0]["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("broken.yml")),
        "{body}"
    );
    probe("h1", 1);
    probes_searchable(&c, 5);
    let alert = |host: &str| total(&url, &format!("event.kind:alert AND host.name:{host}"));
    wait_for(
        Duration::from_secs(30),
        "the h1 alert",
        || c.proc.log_tail(),
        || (alert("h1")? == 1).then_some(()),
    );

    // A restart (SIGTERM: state saved) keeps h2's two events.
    assert!(
        c.proc.terminate(Duration::from_secs(30)),
        "collector stops in time"
    );
    c = Collector::start_with(dir.path(), c.port, "200ms", &extra);
    probe("h2", 1);
    probes_searchable(&c, 6);
    wait_for(
        Duration::from_secs(30),
        "the h2 alert",
        || c.proc.log_tail(),
        || (alert("h2")? == 1).then_some(()),
    );
    let rules: Value = reqwest::blocking::get(format!("{url}/api/v1/rules"))
        .and_then(|r| r.json())
        .expect("rules");
    assert_eq!(rules["errors"].as_array().map(Vec::len), Some(1), "{rules}");

    // A rule tried on events without touching the running rules.
    let events: Vec<Value> = (0..3)
        .map(|i| serde_json::json!({"event.kind": "syslog", "host.name": "t", "message": format!("reload-probe {i}")}))
        .collect();
    let (status, body) = post(
        &format!("{url}/api/v1/rules/test"),
        serde_json::json!({"rule": THREE_PROBES, "events": events}),
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["alerts"].as_array().map(Vec::len), Some(1), "{body}");
    let (status, body) = post(
        &format!("{url}/api/v1/rules/test"),
        serde_json::json!({"rule": "title: x\n", "events": []}),
    );
    assert_eq!(status, 400, "{body}");
}

/// A collector killed with SIGKILL keeps its correlation windows: two probe lines before the
/// kill and one after make the alert, once. With saves of the state at every commit (10ms)
/// the saved state has both lines; with one save an hour, the state saved at the first commit
/// lacks the second, and the write-ahead log kept since then brings it back.
#[test]
fn sigkill_keeps_correlation_state() {
    for interval in ["10ms", "1h"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, extra) = probe_rules(dir.path(), &format!("snapshot_interval = \"{interval}\"\n"));
        let mut c = Collector::start_with(dir.path(), 0, "100ms", &extra);
        let a = Agent::start(dir.path(), c.port, "", "");
        let url = c.url();
        let probe = |i: u64| {
            send(
                a.syslog_tcp,
                &[format!("<13>1 - h1 app - - - reload-probe {i}")],
            )
        };
        probe(0);
        probes_searchable(&c, 1);
        probe(1);
        probes_searchable(&c, 2);
        c.proc.kill9();
        c = Collector::start_with(dir.path(), c.port, "100ms", &extra);
        probe(2);
        probes_searchable(&c, 3);
        wait_for(
            Duration::from_secs(30),
            "the alert after the restart",
            || c.proc.log_tail(),
            || (total(&url, "event.kind:alert")? == 1).then_some(()),
        );
        assert_eq!(
            total(&url, "message:\"reload-probe\""),
            Some(3),
            "{interval}"
        );
        // Saved once an hour: the state saved at the first start has neither line, so both
        // come back from the log.
        let again = vigil_e2e::metric(&url, "vigil_detect_replayed_batches_total");
        if interval == "1h" {
            assert_eq!(again, 2.0, "{}", c.proc.log_tail());
        } else {
            assert!(again <= 2.0, "{again}");
        }
    }
}
