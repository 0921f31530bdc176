//! The Grafana dashboards in `dashboards/` against what the code exports: every PromQL
//! expression of every panel names only series the collector's or the agent's registry
//! has (a counter's `_total`, a histogram's `_bucket`, `_sum`, `_count`) and only labels
//! their families carry ([`vigil_collector::metrics::LABELS`],
//! [`vigil_agent::metrics::LABELS`]), or the labels Prometheus adds (`instance`, `job`) and a
//! histogram's `le`. Every dashboard is importable: the Prometheus data source is a
//! variable, every panel and query uses it, uids are unique.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use regex::Regex;
use serde_json::Value;

/// Series name → (its family's name, the family's label names).
fn exported() -> BTreeMap<String, (String, BTreeSet<String>)> {
    let mut out = BTreeMap::new();
    for (prefix, text, labels) in [
        (
            "vigil_",
            vigil_collector::metrics::Metrics::new().render(),
            vigil_collector::metrics::LABELS,
        ),
        (
            "vigil_agent_",
            vigil_agent::metrics::Metrics::new().render(),
            vigil_agent::metrics::LABELS,
        ),
    ] {
        // Every family is declared in the registry's text, samples or not.
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("# TYPE ") else {
                continue;
            };
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            let short = name.strip_prefix(prefix).expect("prefixed");
            let own: BTreeSet<String> = labels
                .iter()
                .find(|(n, _)| *n == short)
                .map(|(_, l)| l.iter().map(|s| (*s).to_owned()).collect())
                .unwrap_or_default();
            let series: Vec<String> = match kind {
                "counter" => vec![format!("{name}_total")],
                "histogram" => ["_bucket", "_sum", "_count"]
                    .iter()
                    .map(|s| format!("{name}{s}"))
                    .collect(),
                _ => vec![name.to_owned()],
            };
            for s in series {
                let mut l = own.clone();
                if s.ends_with("_bucket") {
                    l.insert("le".into());
                }
                out.insert(s, (name.to_owned(), l));
            }
        }
        // A family declared with labels must exist.
        for (name, _) in labels {
            assert!(
                text.contains(&format!("# TYPE {prefix}{name} ")),
                "LABELS names {prefix}{name}, which the registry does not have"
            );
        }
    }
    out
}

/// Every panel, rows' panels included.
fn panels(v: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in v["panels"].as_array().into_iter().flatten() {
        out.push(p);
        out.extend(panels(p));
    }
    out
}

/// What is wrong with one PromQL expression, if anything.
fn check_expr(expr: &str, exported: &BTreeMap<String, (String, BTreeSet<String>)>) -> Vec<String> {
    let metric = Regex::new(r"\b(vigil_[a-z0-9_]+)\b(\{([^}]*)\})?").expect("re");
    let matcher = Regex::new(r#"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*""#).expect("re");
    let grouping = Regex::new(r"\b(?:by|without)\s*\(([^)]*)\)").expect("re");
    let mut errors = Vec::new();
    let mut allowed: BTreeSet<String> = ["instance", "job"].map(String::from).into();
    let mut any = false;
    for m in metric.captures_iter(expr) {
        any = true;
        let name = &m[1];
        let Some((_, labels)) = exported.get(name) else {
            errors.push(format!("{name} is not exported"));
            continue;
        };
        for l in m.get(3).map_or("", |s| s.as_str()).split(',') {
            if let Some(c) = matcher.captures(l)
                && !labels.contains(&c[1])
                && !["instance", "job"].contains(&&c[1])
            {
                errors.push(format!("{name} has no label {:?}", &c[1]));
            }
        }
        allowed.extend(labels.iter().cloned());
    }
    if !any {
        errors.push("names no vigil_ series".into());
    }
    for g in grouping.captures_iter(expr) {
        for l in g[1].split(',').map(str::trim).filter(|l| !l.is_empty()) {
            if !allowed.contains(l) {
                errors.push(format!("groups by {l:?}, a label none of its series has"));
            }
        }
    }
    errors
}

#[test]
fn every_panel_queries_only_what_the_code_exports() {
    let exported = exported();
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("dashboards/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "vigil-agents.json",
            "vigil-collector.json",
            "vigil-detections.json",
            "vigil-uptime.json"
        ]
    );
    let mut uids = BTreeSet::new();
    let mut errors = Vec::new();
    let mut exprs = 0;
    for f in &files {
        let file = f.file_name().expect("name").to_string_lossy().into_owned();
        let d: Value = serde_json::from_str(&std::fs::read_to_string(f).expect("read"))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(
            uids.insert(d["uid"].as_str().expect("uid").to_owned()),
            "{file}: uid used twice"
        );
        let vars = d["templating"]["list"].as_array().expect("templating");
        assert!(
            vars.iter().any(|v| v["type"] == "datasource"
                && v["query"] == "prometheus"
                && v["name"] == "datasource"),
            "{file}: the Prometheus data source is a variable named datasource"
        );
        let ps = panels(&d);
        assert!(!ps.is_empty(), "{file}: no panels");
        for p in ps {
            let title = p["title"].as_str().unwrap_or_default();
            if p["type"] == "row" {
                continue;
            }
            assert_eq!(
                p["datasource"]["uid"], "${datasource}",
                "{file}: panel {title:?} does not use the data source variable"
            );
            let targets = p["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{file}: panel {title:?} has no query");
            for t in targets {
                let expr = t["expr"].as_str().expect("expr");
                exprs += 1;
                for e in check_expr(expr, &exported) {
                    errors.push(format!("{file}: {title:?}: {expr}: {e}"));
                }
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert!(exprs >= 40, "{exprs} expressions");
}

/// The checker itself: what it must refuse.
#[test]
fn a_metric_or_label_the_code_does_not_export_is_named() {
    let exported = exported();
    let bad = |e: &str| check_expr(e, &exported);
    assert!(bad("rate(vigil_ingest_events_total[5m])").is_empty());
    assert_eq!(
        bad("rate(vigil_ingest_events[5m])"),
        ["vigil_ingest_events is not exported"],
        "a counter's samples end in _total"
    );
    assert_eq!(
        bad("sum by (customer) (rate(vigil_notify_attempts_total[5m]))"),
        ["groups by \"customer\", a label none of its series has"]
    );
    assert_eq!(
        bad(r#"vigil_notify_attempts_total{colour="red"}"#),
        ["vigil_notify_attempts_total has no label \"colour\""]
    );
    assert!(
        bad("histogram_quantile(0.99, sum by (le, type) (rate(vigil_agent_probe_duration_seconds_bucket[5m])))")
            .is_empty()
    );
    assert_eq!(bad("up"), ["names no vigil_ series"]);
}
