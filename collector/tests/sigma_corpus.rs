//! Third-party Sigma: every SigmaHQ rule of `../shared/corpus/sigma/` loads (or its rejection
//! is listed below with the reason), and each correlation type of the Sigma specification's
//! tests (`sigma-correlation/spec-tests`) loads and fires on events built from its spec,
//! and stays silent when one event short.

#[path = "../../tests/support/skip.rs"]
mod skip_support;

use skip_support::skip;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{Value, json};
use vigil_collector::detect::engine::RuleEngine;
use vigil_collector::detect::mapping::Mapping;
use vigil_collector::detect::ruleset::Ruleset;
use vigil_collector::detect::{DetectConfig, test_events};
use vigil_schema::Event;

fn corpus() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    p.exists().then_some(p)
}

/// SigmaHQ rules Vigil does not load, with why. Empty: all of them load.
const SIGMAHQ_REJECTED: &[(&str, &str)] = &[];

#[test]
fn every_sigmahq_rule_loads() {
    let Some(root) = corpus() else {
        skip("../shared/corpus is not beside the workspace");
        return;
    };
    let (engine, errors) = DetectConfig {
        builtin_rules: false,
        rules: vec![root.join("sigma")],
        ..DetectConfig::default()
    }
    .load()
    .expect("builtin mapping");
    let rejected: Vec<(String, String)> = errors
        .iter()
        .map(|e| {
            let file = e.file.rsplit('/').next().unwrap_or_default().to_owned();
            (file, e.reason.clone())
        })
        .collect();
    for (file, reason) in &rejected {
        assert!(
            SIGMAHQ_REJECTED
                .iter()
                .any(|(f, why)| f == file && reason.contains(why)),
            "{file} rejected, not in the expectation list: {reason}"
        );
    }
    assert_eq!(rejected.len(), SIGMAHQ_REJECTED.len(), "{rejected:?}");
    let rules = engine.rules();
    let seeing = rules.iter().filter(|r| !r.sources.is_empty()).count();
    println!(
        "sigmahq: {} rules loaded, {seeing} of them see Vigil's events (linux syslog, \
         sshd, auth, cron, webserver, proxy, firewall and zeek conn logsources); {} rejected",
        rules.len(),
        rejected.len()
    );
    assert_eq!(rules.len() + rejected.len(), 314);
    // The logsources the mapping covers are routed: an sshd rule sees sshd events.
    assert!(
        rules
            .iter()
            .any(|r| r.sources.iter().any(|s| s == "linux-sshd")),
        "no SigmaHQ rule routed to sshd"
    );
}

const SPEC_MAPPING: &str =
    "sources: [{name: spec, logsource: {product: spec}, events: {event.kind: spec}}]";

/// A detection rule standing for `reference` (an id or a name): it matches events whose
/// `spec.rule` is the reference.
/// SigmaHQ's webserver and proxy rules, unchanged, fire on access log lines as nginx sends
/// them over syslog and as the agent parses them; an ordinary request raises nothing.
#[test]
fn sigmahq_web_rules_fire_on_access_logs() {
    let Some(root) = corpus() else {
        skip("../shared/corpus is not beside the workspace");
        return;
    };
    let (mut engine, errors) = DetectConfig {
        builtin_rules: false,
        rules: vec![root.join("sigma")],
        ..DetectConfig::default()
    }
    .load()
    .expect("builtin mapping");
    assert!(errors.is_empty(), "{errors:?}");
    let origin = origin();
    let line = |request: &str, ua: &str| {
        format!(
            "<190>Nov 23 10:00:00 web1 nginx: 203.0.113.9 - - [23/Nov/2026:10:00:00 +0000] \
             \"{request}\" 200 153 \"-\" \"{ua}\""
        )
    };
    let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    let cases: &[(String, &[&str])] = &[
        (
            line("GET /index.php?page=../../../etc/passwd HTTP/1.1", firefox),
            &["Path Traversal Exploitation Attempts"],
        ),
        (
            line("GET /Basic/Command/Base64/d2hvYW1p HTTP/1.1", firefox),
            &["JNDIExploit Pattern"],
        ),
        (
            line("GET /item.php?id=1%20order%20by%203-- HTTP/1.1", firefox),
            &["SQL Injection Strings In URI"],
        ),
        (
            line("GET / HTTP/1.1", "sqlmap/1.7.2#stable (https://sqlmap.org)"),
            &["Suspicious User-Agents Related To Recon Tools"],
        ),
        (
            line("CONNECT api.telegram.org:443 HTTP/1.1", "curl/8.5.0"),
            &["Telegram API Access"],
        ),
        (line("GET /index.html HTTP/1.1", firefox), &[]),
    ];
    for (text, want) in cases {
        let (ev, parsed) = vigil_agent::syslog::parse::to_event(text, &origin);
        assert!(parsed, "{text}");
        assert_eq!(ev.get_str("event.category"), Some("web"), "{text}");
        let titles: std::collections::BTreeSet<String> = test_events(&mut engine, &mut [ev])
            .iter()
            .filter_map(|a| a.get_str("rule.name").map(str::to_owned))
            .collect();
        for t in *want {
            assert!(titles.contains(*t), "{text}: {titles:?}");
        }
        if want.is_empty() {
            assert!(titles.is_empty(), "{text}: {titles:?}");
        }
    }
}

/// SigmaHQ's firewall rule `net_firewall_cleartext_protocols` tests `action` and `blocked`.
/// Flows carry `event.action` where the exporter reports a verdict (forwarding status, NSEL
/// firewall events), which the mapping gives the rule as `action`; `blocked` no flow
/// carries, and `vigil rules check` says so.
#[test]
fn net_firewall_cleartext_protocols_fires_where_flows_carry_an_action() {
    let Some(root) = corpus() else {
        skip("../shared/corpus is not beside the workspace");
        return;
    };
    let dir = root.join("sigma/rules/network/firewall");
    let (mut engine, errors) = DetectConfig {
        builtin_rules: false,
        rules: vec![dir.clone()],
        ..DetectConfig::default()
    }
    .load()
    .expect("builtin mapping");
    assert!(errors.is_empty(), "{errors:?}");
    let info = &engine.rules()[0];
    assert_eq!(info.title, "Cleartext Protocol Usage");
    assert_eq!(info.unseen_fields, ["blocked"]);
    // Flows as the collector completes them: the exporter's elements, raw.
    let flow = |port: u64, extra: Option<(&'static str, u64)>| {
        let mut e = Event::new(vigil_schema::EventKind::Flow, chrono::Utc::now());
        e.set_str("source.ip", "10.0.0.1");
        e.set_str("destination.ip", "10.0.0.2");
        e.set_u64("destination.port", port);
        e.set_str("network.iana_number", "6");
        if let Some((name, v)) = extra {
            e.set_u64(name, v);
        }
        vigil_schema::flow::complete(&mut e);
        e
    };
    for (what, ev, fires) in [
        // Forwarding status 1 (forwarded) in the top bits: 0x40.
        (
            "forwarded telnet",
            flow(23, Some(("netflow.forwarding_status", 0x40))),
            true,
        ),
        (
            "dropped telnet",
            flow(23, Some(("netflow.forwarding_status", 0x80))),
            false,
        ),
        (
            "NSEL flow created, ftp",
            flow(21, Some(("netflow.firewall_event", 1))),
            true,
        ),
        (
            "NSEL flow denied, ftp",
            flow(21, Some(("netflow.firewall_event", 3))),
            false,
        ),
        (
            "forwarded ssh",
            flow(22, Some(("netflow.forwarding_status", 0x40))),
            false,
        ),
        ("telnet without a verdict", flow(23, None), false),
    ] {
        let alerts = test_events(&mut engine, &mut [ev]);
        assert_eq!(!alerts.is_empty(), fires, "{what}: {alerts:?}");
    }
    // Firewalls' own syslog lines, through the agent's parser.
    let origin = origin();
    for (line, fires) in [
        (
            "<4>Dec  2 08:00:00 gw kernel: [12.5] ACCEPT IN=eth0 OUT=eth1 SRC=192.0.2.7 \
             DST=10.0.0.5 LEN=60 PROTO=TCP SPT=40000 DPT=23 SYN",
            true,
        ),
        (
            "<4>Dec  2 08:00:00 gw kernel: [12.5] DROP IN=eth0 OUT= SRC=192.0.2.7 \
             DST=10.0.0.5 LEN=60 PROTO=TCP SPT=40000 DPT=23 SYN",
            false,
        ),
        (
            "<166>%ASA-6-106100: access-list outside_in permitted tcp \
             outside/192.0.2.7(40000) -> inside/10.0.0.5(21) hit-cnt 1 first hit [0x1, 0x0]",
            true,
        ),
        (
            "<164>%ASA-4-106023: Deny tcp src outside:192.0.2.7/40000 dst inside:10.0.0.5/21 \
             by access-group \"outside_in\" [0x0, 0x0]",
            false,
        ),
    ] {
        let (ev, _) = vigil_agent::syslog::parse::to_event(line, &origin);
        assert_eq!(
            ev.get_str("event.category"),
            Some("network"),
            "{line}: {ev:?}"
        );
        let alerts = test_events(&mut engine, &mut [ev]);
        assert_eq!(!alerts.is_empty(), fires, "{line}: {alerts:?}");
    }
    // The CLI warns, and fails with --strict.
    let mut out = Vec::new();
    let ok = vigil_collector::cli::rules_check(std::slice::from_ref(&dir), &[], false, &mut out)
        .expect("check");
    let text = String::from_utf8_lossy(&out);
    assert!(ok, "{text}");
    assert!(
        text.contains("tests `blocked`, which no event it sees (firewall) carries"),
        "{text}"
    );
    let strict =
        vigil_collector::cli::rules_check(&[dir], &[], true, &mut Vec::new()).expect("check");
    assert!(!strict);
}

/// What the agent's listener knows of a line received now.
fn origin() -> vigil_agent::syslog::parse::Origin<'static> {
    vigil_agent::syslog::parse::Origin {
        agent_id: "edge-1",
        agent_name: "edge-1",
        customer: None,
        peer: None,
        received: chrono::Utc::now(),
        truncated: false,
        tz: chrono_tz::UTC,
    }
}

fn base_rule(reference: &str) -> String {
    let key = if uuid_like(reference) { "id" } else { "name" };
    format!(
        "title: base {reference}\n{key}: {reference}\nlogsource: {{product: spec}}\n\
         detection:\n  selection:\n    spec.rule: '{reference}'\n  condition: selection\n"
    )
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}

fn event(rule: &str, groups: &[String], at: i64, extra: &[(&str, Value)]) -> Event {
    let mut e = Event::default();
    e.set_str("event.kind", "spec");
    e.set_str("spec.rule", rule);
    for g in groups {
        e.set_str(g.clone(), "g1");
    }
    for (k, v) in extra {
        e.set(k.to_string(), v.clone());
    }
    e.set_timestamp(chrono::DateTime::from_timestamp(1_800_000_000 + at, 0).expect("time"));
    e
}

/// Events that meet the correlation's condition (`complete`), or fall one short of it.
fn spec_events(corr: &yaml_serde::Value, complete: bool) -> Vec<Event> {
    let c = &corr["correlation"];
    let s = |v: &yaml_serde::Value| v.as_str().map(str::to_owned);
    let rules: Vec<String> = c["rules"]
        .as_sequence()
        .expect("rules")
        .iter()
        .filter_map(s)
        .collect();
    let groups: Vec<String> = c["group-by"]
        .as_sequence()
        .map(|g| g.iter().filter_map(s).collect())
        .unwrap_or_default();
    let cond = &c["condition"];
    let field = cond["field"].as_str().unwrap_or("value").to_owned();
    let bound = ["gte", "gt", "lte", "lt", "eq"]
        .iter()
        .find_map(|op| cond[*op].as_u64().map(|n| (*op, n)));
    let r0 = rules[0].as_str();
    match c["type"].as_str().expect("type") {
        "event_count" => {
            let (_, n) = bound.expect("bound");
            let n = if complete { n } else { n - 1 };
            (0..n as i64).map(|i| event(r0, &groups, i, &[])).collect()
        }
        "value_count" => {
            let (_, n) = bound.expect("bound");
            let n = if complete { n } else { n - 1 };
            (0..n as i64)
                .map(|i| event(r0, &groups, i, &[(field.as_str(), json!(format!("v{i}")))]))
                .collect()
        }
        "temporal" => {
            // Any order; one rule missing is incomplete.
            let take = if complete {
                rules.len()
            } else {
                rules.len() - 1
            };
            rules
                .iter()
                .rev()
                .take(take)
                .enumerate()
                .map(|(i, r)| event(r, &groups, i as i64, &[]))
                .collect()
        }
        "temporal_ordered" => {
            // In order; the same events in reverse order are not the sequence.
            let order: Vec<&String> = if complete {
                rules.iter().collect()
            } else {
                rules.iter().rev().collect()
            };
            order
                .into_iter()
                .enumerate()
                .map(|(i, r)| event(r, &groups, i as i64, &[]))
                .collect()
        }
        "value_sum" => {
            let (_, x) = bound.expect("bound");
            // Two events summing to x + 2 (over a gt/gte bound), or to exactly x (not over gt).
            let each = if complete { x / 2 + 1 } else { x / 2 };
            (0..2)
                .map(|i| event(r0, &groups, i, &[(field.as_str(), json!(each))]))
                .collect()
        }
        "value_avg" => {
            let (_, x) = bound.expect("bound");
            let v = if complete { x + 100 } else { x };
            (0..3)
                .map(|i| event(r0, &groups, i, &[(field.as_str(), json!(v))]))
                .collect()
        }
        "value_percentile" => {
            // lte: values at or under the bound meet it; well over it do not.
            let (_, x) = bound.expect("bound");
            let v = if complete { x } else { x + 1000 };
            (0..5)
                .map(|i| event(r0, &groups, i, &[(field.as_str(), json!(v))]))
                .collect()
        }
        other => panic!("unknown correlation type {other}"),
    }
}

#[test]
fn every_correlation_type_of_the_spec_tests_loads_and_fires() {
    let Some(root) = corpus() else {
        skip("../shared/corpus is not beside the workspace");
        return;
    };
    let dir = root.join("sigma-correlation/spec-tests/tests/schema/correlation");
    let mapping = Arc::new(Mapping::parse(SPEC_MAPPING, "spec mapping").expect("mapping"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("spec tests")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut types = std::collections::BTreeSet::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("read");
        let corr: yaml_serde::Value = yaml_serde::from_str(&text).expect("yaml");
        let ctype = corr["correlation"]["type"]
            .as_str()
            .expect("type")
            .to_owned();
        types.insert(ctype.clone());
        for complete in [true, false] {
            let mut set = Ruleset::default();
            set.add_text(&path.display().to_string(), &text);
            for r in corr["correlation"]["rules"].as_sequence().expect("rules") {
                let r = r.as_str().expect("rule ref");
                set.add_text(&format!("base {r}"), &base_rule(r));
            }
            let (mut engine, errors) = DetectConfig::default().build(set, mapping.clone());
            assert!(errors.is_empty(), "{}: {errors:?}", path.display());
            assert!(
                engine.rules().iter().any(|r| r.kind == ctype),
                "{}: correlation not loaded",
                path.display()
            );
            let mut events = spec_events(&corr, complete);
            let fired: Vec<Event> = test_events(&mut engine, &mut events)
                .into_iter()
                .filter(|a| a.get_str("alert.type") == Some(ctype.as_str()))
                .collect();
            if complete {
                assert!(!fired.is_empty(), "{}: did not fire", path.display());
                let group = fired[0].get_str("alert.group_key").unwrap_or_default();
                assert!(
                    group.contains("g1") || corr["correlation"]["group-by"].is_null(),
                    "{group}"
                );
            } else {
                assert!(
                    fired.is_empty(),
                    "{}: fired one event short: {fired:?}",
                    path.display()
                );
            }
        }
    }
    assert_eq!(types.len(), 7, "{types:?}");
}

#[test]
fn spec_examples_load_or_are_fragments() {
    let Some(root) = corpus() else {
        skip("../shared/corpus is not beside the workspace");
        return;
    };
    // Code blocks cut out of the specification's prose: complete documents load, fragments
    // (a correlation without type, rules referenced but not given) are refused with a reason.
    let dir = root.join("sigma-correlation/spec-extracted");
    let mut loaded = 0;
    let mut refused = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .map(|e| e.expect("e").path())
        .collect();
    files.sort();
    for path in &files {
        let mut set = Ruleset::default();
        set.add_text(
            &path.display().to_string(),
            &std::fs::read_to_string(path).expect("read"),
        );
        let (engine, errors) = DetectConfig::default().build(set, Arc::new(Mapping::builtin()));
        loaded += engine.rules().len();
        for e in errors {
            assert!(!e.reason.is_empty());
            refused.push(format!(
                "{}: {}",
                path.file_name().unwrap_or_default().to_string_lossy(),
                e.reason
            ));
        }
    }
    println!("spec examples: {loaded} rules loaded; refused: {refused:#?}");
    // example_12 is the only self-contained correlation chain: all four documents load.
    assert!(loaded >= 4, "{loaded}");
}
