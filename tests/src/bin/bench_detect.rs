//! Detection, side by side in one run: the same rules and the same events (loghub syslog
//! parsed by the agent's parser, and flows, multiplied to `--events`, written as NDJSON) through
//! Vigil's detection stage on one thread and through the rsigma CLI (`rsigma engine eval`, the
//! same engine without Vigil's routing). Prints events/s for each, the ratio, and the hit
//! counts; then the time the stage adds per event (p50, p99).
//!
//! Rules: Vigil's own (`rules/`, with their correlations) and SigmaHQ's `rules/linux/builtin/`.
//! Both read the NDJSON file themselves, so JSON parsing counts on both sides. The rsigma CLI
//! also prints every match of the rules that only feed correlations (Sigma's `generate:
//! false`, which Vigil keeps silent): those lines are part of its time and are left out of its
//! hit count.
//!
//! `cargo install rsigma --version 0.23.0 --locked`, then
//! `cargo run --release -p vigil-e2e --bin bench-detect -- --events 1000000`
//! (`RSIGMA=/path/to/rsigma` if it is not on PATH).

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use chrono::{DateTime, Duration as TimeDelta, Utc};
use vigil_collector::detect::DetectConfig;
use vigil_collector::detect::engine::RuleEngine;
use vigil_e2e::arg;
use vigil_e2e::workload::{flow, loghub, workspace};
use vigil_schema::Event;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn write_events(path: &Path, total: u64) -> u64 {
    let start = DateTime::parse_from_rfc3339("2026-11-01T00:00:00Z")
        .expect("time")
        .with_timezone(&Utc);
    let mut base = loghub(start);
    // One timeline: the loghub files span years; sorted, and each round after the last.
    base.sort_by_key(|e| e.timestamp());
    let first = base.iter().find_map(Event::timestamp).unwrap_or(start);
    let last = base
        .iter()
        .rev()
        .find_map(Event::timestamp)
        .unwrap_or(start);
    let span = last - first + TimeDelta::days(1);
    let mut w = BufWriter::new(std::fs::File::create(path).expect("create"));
    let mut n = 0u64;
    let mut round = 0i64;
    while n < total {
        // Each round comes after the one before and varies the host, so rounds are new
        // events, not repeats the correlations would fold together.
        for (i, ev) in base.iter().enumerate() {
            if n >= total {
                break;
            }
            let mut ev = ev.clone();
            let at = ev.timestamp().unwrap_or(first) + span * round as i32;
            ev.set_timestamp(at);
            ev.set_str("host.name", format!("host-{}", round % 50));
            serde_json::to_writer(&mut w, &ev).expect("write");
            w.write_all(b"\n").expect("write");
            n += 1;
            if n < total {
                // A flow at the same moment, so the file keeps one timeline.
                let t = at + TimeDelta::milliseconds(i as i64 % 1000);
                serde_json::to_writer(&mut w, &flow(n, t)).expect("write");
                w.write_all(b"\n").expect("write");
                n += 1;
            }
        }
        round += 1;
    }
    w.flush().expect("flush");
    n
}

/// The rule directory both engines load: Vigil's rules and SigmaHQ's linux/builtin.
fn rules_dir(dir: &Path) -> PathBuf {
    let out = dir.join("rules");
    std::fs::create_dir_all(&out).expect("mkdir");
    for e in std::fs::read_dir(workspace().join("rules")).expect("rules") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "yml") {
            std::fs::copy(&p, out.join(p.file_name().expect("name"))).expect("copy");
        }
    }
    let status = Command::new("cp")
        .arg("-r")
        .arg(workspace().join("../shared/corpus/sigma/rules/linux/builtin"))
        .arg(out.join("sigmahq-linux-builtin"))
        .status()
        .expect("cp");
    assert!(status.success());
    out
}

/// Titles of the rules that only feed correlations (Sigma's `generate: false`, the default):
/// Vigil does not alert on their matches, the rsigma CLI prints them anyway.
fn correlation_bases(rules: &Path) -> std::collections::BTreeSet<String> {
    let mut titles = std::collections::BTreeMap::new();
    let mut bases = Vec::new();
    for e in std::fs::read_dir(rules).expect("rules") {
        let p = e.expect("entry").path();
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        for doc in text.split("\n---") {
            let top = |key: &str| {
                doc.lines()
                    .find_map(|l| l.strip_prefix(key))
                    .map(|v| v.trim().trim_matches('"').to_owned())
            };
            if let (Some(name), Some(title)) = (top("name:"), top("title:")) {
                titles.insert(name, title);
            }
            if doc.contains("\ncorrelation:") && !doc.contains("generate: true") {
                let mut in_rules = false;
                for l in doc.lines() {
                    if l.trim_start().starts_with("rules:") {
                        in_rules = true;
                    } else if in_rules && l.trim_start().starts_with("- ") {
                        bases.push(l.trim_start()[2..].trim().to_owned());
                    } else if in_rules {
                        in_rules = false;
                    }
                }
            }
        }
    }
    bases
        .iter()
        .filter_map(|n| titles.get(n).cloned())
        .collect()
}

fn main() {
    let total = arg("--events", 1_000_000);
    let rsigma = std::env::var("RSIGMA").unwrap_or_else(|_| "rsigma".into());
    let dir = tempfile::tempdir().expect("tempdir");
    let events = dir.path().join("events.ndjson");
    let n = write_events(&events, total);
    let size = std::fs::metadata(&events).map(|m| m.len()).unwrap_or(0);
    let rules = rules_dir(dir.path());
    println!(
        "bench-detect: {n} events ({:.0} MB NDJSON, syslog and flows), rules: Vigil's and SigmaHQ linux/builtin",
        size as f64 / 1e6
    );

    // Vigil: read and parse the NDJSON, route, evaluate, on this thread.
    let cfg = DetectConfig {
        builtin_rules: false,
        rules: vec![rules.clone()],
        ..DetectConfig::default()
    };
    let (mut engine, errors) = cfg.load().expect("mapping");
    let loaded = engine.rules().len();
    let mut lat = Vec::with_capacity(n as usize);
    let mut hits = 0u64;
    let mut per_rule = std::collections::BTreeMap::<String, u64>::new();
    let t = Instant::now();
    let f = std::io::BufReader::new(std::fs::File::open(&events).expect("open"));
    for line in f.lines() {
        let line = line.expect("line");
        let ev: Event = serde_json::from_str(&line).expect("event");
        let t0 = Instant::now();
        let h = engine.process(&ev);
        lat.push(t0.elapsed().as_nanos() as u64);
        hits += h.len() as u64;
        for x in h {
            *per_rule.entry(x.title).or_default() += 1;
        }
    }
    let vigil_s = t.elapsed().as_secs_f64();
    println!(
        "vigil   {loaded} rules ({} rejected): {n} events in {vigil_s:.2} s = {:.0} events/s, {hits} hits",
        errors.len(),
        n as f64 / vigil_s
    );
    for (rule, c) in &per_rule {
        println!("          {c:>8}  {rule}");
    }
    // What saving the correlation state costs at this size.
    let t = Instant::now();
    let state = engine.export_state().to_string();
    println!(
        "        correlation state: {} entries, {} KB as JSON, exported in {:.1} ms",
        engine.state_entries(),
        state.len() / 1000,
        t.elapsed().as_secs_f64() * 1000.0
    );

    // rsigma CLI on the same file and rules.
    let t = Instant::now();
    let child = Command::new(&rsigma)
        .args([
            "engine",
            "eval",
            "--output-format",
            "ndjson",
            "--timestamp-field",
            "@timestamp",
            "-r",
        ])
        .arg(&rules)
        .arg("-e")
        .arg(format!("@{}", events.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(child) = child else {
        println!(
            "rsigma: not found (set RSIGMA; `cargo install rsigma --version 0.23.0 --locked`)"
        );
        return;
    };
    let out = child.wait_with_output().expect("rsigma runs");
    let rs_s = t.elapsed().as_secs_f64();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let bases = correlation_bases(&rules);
    let mut rs_rule = std::collections::BTreeMap::<String, u64>::new();
    for l in stdout.lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
        let title = v["rule_title"]
            .as_str()
            .or(v["title"].as_str())
            .unwrap_or("?")
            .to_owned();
        *rs_rule.entry(title).or_default() += 1;
    }
    let rs_hits: u64 = rs_rule
        .iter()
        .filter(|(t, _)| !bases.contains(*t))
        .map(|(_, c)| c)
        .sum();
    println!(
        "rsigma  {n} events in {rs_s:.2} s = {:.0} events/s, {rs_hits} hits (exit {})",
        n as f64 / rs_s,
        out.status
    );
    for (rule, c) in &rs_rule {
        let note = if bases.contains(rule) {
            "   (feeds a correlation: not an alert, not counted)"
        } else {
            ""
        };
        println!("          {c:>8}  {rule}{note}");
    }
    if !out.status.success() {
        println!(
            "rsigma stderr: {}",
            String::from_utf8_lossy(&out.stderr)
                .chars()
                .take(2000)
                .collect::<String>()
        );
    }
    println!(
        "ratio vigil / rsigma = {:.2}; hit counts {}",
        rs_s / vigil_s,
        if hits == rs_hits { "equal" } else { "DIFFER" }
    );
    lat.sort_unstable();
    let q = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "added latency per event (evaluation only): p50 {:.1} µs, p99 {:.1} µs, max {:.1} µs",
        q(0.50) as f64 / 1e3,
        q(0.99) as f64 / 1e3,
        *lat.last().unwrap_or(&0) as f64 / 1e3
    );
}
