//! Vigil's own rules against their tests in `rules/tests/`: for each case, the events go
//! through the detection engine (the builtin mapping, routing and correlation) and the
//! alerts raised must be exactly the expected ones.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use vigil_collector::detect::mapping::Mapping;
use vigil_collector::detect::ruleset::Ruleset;
use vigil_collector::detect::{DetectConfig, test_events};
use vigil_schema::Event;

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    rule: OneOrMany,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn files(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    #[serde(default)]
    start: Option<String>,
    events: Vec<serde_json::Map<String, Value>>,
    alerts: Vec<Expected>,
}

#[derive(Deserialize, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
#[serde(deny_unknown_fields)]
struct Expected {
    rule: String,
    #[serde(default)]
    group: Option<String>,
}

/// Expands `_repeat`/`_every`/`{n}` templates into events with increasing times.
fn expand(case: &Case) -> Vec<Event> {
    let mut at: DateTime<Utc> = case
        .start
        .as_deref()
        .unwrap_or("2026-11-22T10:00:00Z")
        .parse()
        .expect("start is RFC 3339");
    let mut out = Vec::new();
    for tpl in &case.events {
        let repeat = tpl.get("_repeat").and_then(Value::as_u64).unwrap_or(1);
        let every = tpl
            .get("_every")
            .and_then(Value::as_str)
            .map(|s| vigil_schema::config::parse_duration(s).expect("_every is a duration"))
            .unwrap_or(std::time::Duration::from_secs(1));
        for n in 0..repeat {
            let mut ev = Event::default();
            for (k, v) in tpl {
                if k.starts_with('_') {
                    continue;
                }
                let v = match v {
                    Value::String(s) if s.contains("{n}") => {
                        let s = s.replace("{n}", &n.to_string());
                        s.parse::<u64>().map_or(Value::String(s), Value::from)
                    }
                    v => v.clone(),
                };
                ev.set(vigil_schema::fields::intern(k), v);
            }
            if ev.get("@timestamp").is_none() {
                ev.set_timestamp(at);
            }
            out.push(ev);
            at += every;
        }
    }
    out
}

#[test]
fn every_vigil_rule_passes_its_tests() {
    let dir = rules_dir();
    let mapping = Arc::new(Mapping::builtin());
    let mut tested = std::collections::BTreeSet::new();
    let mut files: Vec<_> = std::fs::read_dir(dir.join("tests"))
        .expect("rules/tests")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    let mut failures = Vec::new();
    for path in &files {
        let t: TestFile = yaml_serde::from_str(&std::fs::read_to_string(path).expect("read"))
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let rule_files = t.rule.files();
        tested.extend(rule_files.iter().cloned());
        for case in &t.cases {
            let mut set = Ruleset::default();
            for f in &rule_files {
                let text = std::fs::read_to_string(dir.join(f)).expect("rule file");
                set.add_text(f, &text);
            }
            let (mut engine, errors) = DetectConfig::default().build(set, mapping.clone());
            assert!(errors.is_empty(), "{}: {errors:?}", path.display());
            let mut events = expand(case);
            let mut got: Vec<Expected> = test_events(&mut engine, &mut events)
                .iter()
                .map(|a| Expected {
                    rule: a.get_str("rule.name").unwrap_or_default().to_owned(),
                    group: a.get_str("alert.group_key").map(str::to_owned),
                })
                .collect();
            let mut want = case.alerts.clone();
            got.sort();
            want.sort();
            if got != want {
                failures.push(format!(
                    "{} / {}: expected {want:?}, got {got:?}",
                    path.display(),
                    case.name
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Every rule Vigil ships has a test.
    for entry in std::fs::read_dir(&dir).expect("rules") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".yml") {
            assert!(
                tested.contains(&name),
                "rules/{name} has no test in rules/tests/"
            );
        }
    }
}

#[test]
fn vigil_rules_all_load_and_see_events() {
    let (engine, errors) = DetectConfig::default().load().expect("builtin mapping");
    assert!(errors.is_empty(), "{errors:?}");
    use vigil_collector::detect::engine::RuleEngine;
    let rules = engine.rules();
    // Every rule of every file of rules/ (one `title:` each), and nothing else.
    let titles: usize = std::fs::read_dir(rules_dir())
        .expect("rules/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("rule file");
            text.lines().filter(|l| l.starts_with("title:")).count()
        })
        .sum();
    assert_eq!(rules.len(), titles, "{rules:#?}");
    for r in rules {
        assert!(!r.sources.is_empty(), "{} sees no events", r.title);
        assert!(r.file.starts_with("rules/"), "{r:?}");
        // Vigil's own rules test only fields their events carry.
        assert!(r.unseen_fields.is_empty(), "{r:?}");
    }
}

/// A backlog that arrives late (an agent sending its spool after an outage, while others
/// sent newer events meanwhile) still correlates: brute force from an address in the backlog
/// gives exactly one alert, however many newer events are evaluated between its failures.
#[test]
fn late_events_still_correlate_and_stay_suppressed() {
    let (mut engine, errors) = DetectConfig::default().load().expect("builtin rules");
    assert!(errors.is_empty(), "{errors:?}");
    let newer: DateTime<Utc> = "2026-11-22T10:00:00Z".parse().expect("time");
    // Two hours of outage on the agent that saw the brute force.
    let older = newer - chrono::Duration::hours(2);
    let mut events = Vec::new();
    for i in 0..12i64 {
        // A thousand flows of now between two failures of two hours ago: the engine's
        // periodic eviction runs several times in the middle of the brute force.
        for j in 0..1000i64 {
            let mut f = Event::default();
            f.set_str("event.kind", "flow");
            f.set_str("source.ip", "10.0.0.1");
            f.set_str("destination.ip", "10.0.0.2");
            f.set_u64("destination.port", 443);
            f.set_timestamp(newer + chrono::Duration::milliseconds(i * 1000 + j));
            events.push(f);
        }
        let mut ev = Event::default();
        ev.set_str("event.kind", "syslog");
        ev.set_str("process.name", "sshd");
        ev.set_str("event.action", "ssh_login");
        ev.set_str("event.outcome", "failure");
        ev.set_str("source.ip", "203.0.113.9");
        ev.set_str("user.name", "root");
        ev.set_str(
            "message",
            "Failed password for root from 203.0.113.9 port 4242 ssh2",
        );
        ev.set_timestamp(older + chrono::Duration::seconds(i * 10));
        events.push(ev);
    }
    let alerts = test_events(&mut engine, &mut events);
    let brute: Vec<&Event> = alerts
        .iter()
        .filter(|a| a.get_str("rule.name") == Some("SSH brute force"))
        .collect();
    assert_eq!(brute.len(), 1, "{alerts:#?}");
    assert_eq!(brute[0].get_str("source.ip"), Some("203.0.113.9"));
}

/// Each rule is counted on the events its logsource sees, and on no others.
#[test]
fn evaluations_are_counted_per_rule_on_the_events_it_sees() {
    use vigil_collector::detect::engine::RuleEngine;
    let mapping = Arc::new(Mapping::builtin());
    let mut set = Ruleset::default();
    set.add_text(
        "t.yml",
        "title: on syslog\nid: 33333333-0000-4000-8000-000000000001\n\
         logsource: { product: linux, service: syslog }\n\
         detection: { s: { message|contains: x }, condition: s }\n---\n\
         title: on sshd\nid: 33333333-0000-4000-8000-000000000002\n\
         logsource: { product: linux, service: sshd }\n\
         detection: { s: { message|contains: x }, condition: s }\n",
    );
    let (mut engine, errors) = DetectConfig::default().build(set, mapping);
    assert!(errors.is_empty(), "{errors:?}");
    let event = |kind: &str, app: &str| {
        let mut e = Event::new(vigil_schema::EventKind::Syslog, Utc::now());
        e.set_str("event.kind", kind);
        e.set_str("process.name", app);
        e.set_str("message", "nothing");
        e
    };
    // Three syslog lines, one of them sshd's; a flow, which neither rule sees.
    let mut events = vec![
        event("syslog", "cron"),
        event("syslog", "cron"),
        event("syslog", "sshd"),
        event("flow", ""),
    ];
    test_events(&mut engine, &mut events);
    let mut got = engine.take_evaluations();
    got.sort();
    assert_eq!(
        got,
        [
            ("33333333-0000-4000-8000-000000000001".to_owned(), 3),
            ("33333333-0000-4000-8000-000000000002".to_owned(), 1)
        ]
    );
    assert!(engine.take_evaluations().is_empty(), "taken once");
}
