//! The index on real data: every loghub sample and the NetFlow/IPFIX captures of the flow
//! corpus (logstash-codec-netflow, akvorado, pmacct), indexed through the writer thread over three days of arrival
//! (a controlled clock), then searched and aggregated. Every expected count is computed from
//! the events themselves, in this file, without Tantivy; each query must match something.
//! The answers must not change after a restart, and after retention drops the oldest
//! partition they must equal the counts over what remains.

#[path = "../../tests/support/skip.rs"]
mod skip_support;

use skip_support::skip;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;
use vigil_collector::index::IndexSchema;
use vigil_collector::index::aggregate::AggregateRequest;
use vigil_collector::index::partition::Partitions;
use vigil_collector::index::retention::Policy;
use vigil_collector::index::search::{SearchRequest, SearchResult, Searcher};
use vigil_collector::index::writer::{self, Clock, IngestRequest, Msg, Outcome, WriterConfig};
use vigil_collector::metrics::Metrics;
use vigil_schema::{Batch, Event};

fn corpus() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    p.is_dir().then_some(p)
}

/// Every loghub line as the agent parses it (received on a fixed day, so RFC 3164 years are
/// the same on every run), customer = the sample's name.
fn loghub(root: &Path) -> Vec<Event> {
    let received = Utc
        .with_ymd_and_hms(2026, 6, 1, 0, 0, 0)
        .single()
        .expect("valid");
    let mut names: Vec<String> = std::fs::read_dir(root.join("syslog/loghub"))
        .expect("loghub")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for name in &names {
        let path = root.join(format!("syslog/loghub/{name}/{name}_2k.log"));
        let text = String::from_utf8_lossy(&std::fs::read(path).expect("sample")).into_owned();
        let origin = vigil_agent::syslog::parse::Origin {
            agent_id: "edge-1",
            agent_name: "edge-1",
            customer: Some(name),
            peer: Some("192.0.2.10".parse().expect("valid")),
            received,
            truncated: false,
            tz: chrono_tz::UTC,
        };
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            out.push(vigil_agent::syslog::parse::to_event(line, &origin).0);
        }
    }
    out
}

/// Every flow of logstash-codec-netflow's captures (templates before data, per device).
fn flows(root: &Path) -> Vec<Event> {
    let dir = root.join("netflow/logstash-codec-netflow");
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("netflow")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".dat"))
        .collect();
    files.sort_by_key(|f| (!f.contains("tpl"), f.clone()));
    let now = Utc
        .with_ymd_and_hms(2026, 6, 1, 0, 0, 0)
        .single()
        .expect("valid");
    // One decoder for all; each device (the file name before `_tpl`/`_data`) is an exporter.
    let mut dec = vigil_agent::flow::netflow::Decoder::new(None, 1000);
    let mut exporters: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::new();
    for f in &files {
        let device = ["_tpl", "_data", "_opttpl"]
            .iter()
            .filter_map(|m| f.find(m))
            .min()
            .map_or(f.as_str(), |i| &f[..i]);
        let next = exporters.len();
        let i = *exporters.entry(device.to_owned()).or_insert(next);
        let mut fl = Vec::new();
        let from = format!("10.9.{}.{}:2055", i / 250, i % 250 + 1);
        let bytes = std::fs::read(dir.join(f)).expect("read");
        dec.decode(from.parse().expect("valid"), &bytes, now, &mut fl);
        out.extend(fl.into_iter().map(|f| f.into_event(now)));
    }
    // And the captures of akvorado and pmacct: UDP payloads from their exporters, template
    // captures first. (A template another case reuses may decode a record differently than
    // the agent's corpus test expects; here only what is indexed matters.)
    let mut pcaps: Vec<PathBuf> = Vec::new();
    for sub in ["akvorado/netflow", "pmacct", "pmacct-test-automation"] {
        for e in std::fs::read_dir(root.join("netflow").join(sub)).expect("dir") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "pcap") {
                pcaps.push(p);
            }
        }
    }
    pcaps.sort_by_key(|p| (!p.to_string_lossy().contains("template"), p.clone()));
    for p in pcaps {
        let (link, frames) = vigil_agent::flow::pcap::read(&p).expect("pcap");
        for fr in frames {
            let Ok(pk) = vigil_agent::flow::packet::decode(link, &fr.data) else {
                continue;
            };
            if pk.proto == 17 && !pk.payload.is_empty() {
                let mut fl = Vec::new();
                dec.decode((pk.src, pk.sport).into(), pk.payload, now, &mut fl);
                out.extend(fl.into_iter().map(|f| f.into_event(now)));
            }
        }
    }
    out
}

/// A writer and the partitions it writes, as the collector runs them.
struct Node {
    parts: Partitions,
    tx: mpsc::Sender<Msg>,
    handle: std::thread::JoinHandle<()>,
    metrics: Arc<Metrics>,
}

impl Node {
    fn open(dir: &Path, clock: Clock, retention: Policy) -> Node {
        let parts = Partitions::open(&dir.join("index"), IndexSchema::new()).expect("open");
        let cfg = WriterConfig {
            wal_dir: writer::wal_dir(dir),
            commit_interval: Duration::from_secs(3600),
            fsync: false,
            memory_budget_bytes: 64 << 20,
            threads: 1,
            detect_state: dir.join("detect-state.json"),
            snapshot_interval: Duration::from_secs(10),
            retention,
            clock,
            incidents: None,
        };
        let metrics = Arc::new(Metrics::new());
        let (tx, handle) = writer::start(
            parts.clone(),
            cfg,
            metrics.clone(),
            None,
            Arc::new(AtomicBool::new(true)),
            tokio::runtime::Handle::current(),
        )
        .expect("writer");
        Node {
            parts,
            tx,
            handle,
            metrics,
        }
    }

    async fn ingest(&self, batch: Batch) -> Outcome {
        let (reply, rx) = oneshot::channel();
        let frame = batch.encode().into();
        self.tx
            .send(Msg::Ingest(IngestRequest {
                batch,
                frame,
                reply,
            }))
            .await
            .expect("send");
        rx.await.expect("reply").expect("ingest")
    }

    /// Commits and stops, as the collector does at shutdown.
    async fn stop(self) -> Partitions {
        let (done, rx) = oneshot::channel();
        self.tx.send(Msg::Shutdown(done)).await.expect("send");
        rx.await.expect("stopped");
        tokio::task::spawn_blocking(move || self.handle.join().expect("join"))
            .await
            .expect("join");
        self.parts
    }
}

fn batch(events: &[Event]) -> Batch {
    Batch {
        batch_id: Uuid::now_v7(),
        agent_id: "edge-1".into(),
        seq: 0,
        events: events.to_vec(),
    }
}

fn day(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, d, 12, 0, 0)
        .single()
        .expect("valid")
}

fn manual_clock(at: DateTime<Utc>) -> (Arc<Mutex<DateTime<Utc>>>, Clock) {
    let now = Arc::new(Mutex::new(at));
    let n = now.clone();
    (now, Arc::new(move || *n.lock().expect("valid")))
}

// ---- The oracle: what each query must find, computed from the events alone. ----

fn s<'a>(e: &'a Event, f: &str) -> Option<&'a str> {
    e.get(f).and_then(Value::as_str)
}
fn n(e: &Event, f: &str) -> Option<u64> {
    e.get(f).and_then(Value::as_u64)
}
fn ip(e: &Event, f: &str) -> Option<IpAddr> {
    s(e, f)?.parse().ok()
}
fn in_net(addr: Option<IpAddr>, net: &str) -> bool {
    let (base, len) = net.split_once('/').expect("valid");
    let len: u32 = len.parse().expect("valid");
    match (addr, base.parse::<IpAddr>().expect("valid")) {
        (Some(IpAddr::V4(a)), IpAddr::V4(b)) => {
            let m = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(a) & m == u32::from(b) & m
        }
        (Some(IpAddr::V6(a)), IpAddr::V6(b)) => {
            let m = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(a) & m == u128::from(b) & m
        }
        _ => false,
    }
}
/// Tantivy's default tokenizer: alphanumeric runs, lowercased, none longer than 40 bytes.
fn tokens(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty() && t.len() < 40)
        .map(str::to_lowercase)
        .collect()
}
fn phrase(e: &Event, words: &[&str]) -> bool {
    let t = tokens(s(e, "message").unwrap_or(""));
    t.windows(words.len())
        .any(|w| w.iter().zip(words).all(|(a, b)| a == b))
}
/// Whether some word of the message (as [`tokens`] cuts them) is one `f` takes.
fn word(e: &Event, f: impl Fn(&str) -> bool) -> bool {
    tokens(s(e, "message").unwrap_or("")).iter().any(|w| f(w))
}
fn at(e: &Event) -> i64 {
    e.timestamp().expect("timestamp").timestamp_micros()
}

type Pred = Box<dyn Fn(&Event) -> bool>;
/// A query, its time range, and which events it must find.
type Case = (String, Option<(DateTime<Utc>, DateTime<Utc>)>, Pred);

/// Each query with the events it must find.
fn cases(from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<Case> {
    let (f, t) = (from.timestamp_micros(), to.timestamp_micros());
    let c = |q: &str, p: Pred| (q.to_owned(), None, p);
    vec![
        c(
            "customer:OpenSSH",
            Box::new(|e| s(e, "customer") == Some("OpenSSH")),
        ),
        c(
            "process.name:sshd",
            Box::new(|e| s(e, "process.name") == Some("sshd")),
        ),
        c(
            "message:\"authentication failure\"",
            Box::new(|e| phrase(e, &["authentication", "failure"])),
        ),
        c(
            "customer:Linux AND message:\"session opened\"",
            Box::new(|e| s(e, "customer") == Some("Linux") && phrase(e, &["session", "opened"])),
        ),
        c(
            "source.ip:10.0.0.0/8",
            Box::new(|e| in_net(ip(e, "source.ip"), "10.0.0.0/8")),
        ),
        c(
            "source.ip:192.168.0.0/16 OR destination.ip:192.168.0.0/16",
            Box::new(|e| {
                in_net(ip(e, "source.ip"), "192.168.0.0/16")
                    || in_net(ip(e, "destination.ip"), "192.168.0.0/16")
            }),
        ),
        // IPv4 addresses are IPv4-mapped IPv6 inside: `::/0` is every address.
        c(
            "source.ip:\"::/0\"",
            Box::new(|e| ip(e, "source.ip").is_some()),
        ),
        c(
            "source.ip:\"fe80::/10\"",
            Box::new(|e| in_net(ip(e, "source.ip"), "fe80::/10")),
        ),
        c(
            "source.ip:\"fe80::20c:29ff:fe83:0/112\" OR destination.ip:\"fe80::20c:29ff:fe83:0/112\"",
            Box::new(|e| {
                in_net(ip(e, "source.ip"), "fe80::20c:29ff:fe83:0/112")
                    || in_net(ip(e, "destination.ip"), "fe80::20c:29ff:fe83:0/112")
            }),
        ),
        c(
            "network.bytes:[1000 TO 100000]",
            Box::new(|e| n(e, "network.bytes").is_some_and(|b| (1000..=100_000).contains(&b))),
        ),
        // Fields without a field of their own (the exporters' extra elements).
        c(
            "netflow.direction:1",
            Box::new(|e| n(e, "netflow.direction") == Some(1)),
        ),
        c(
            "netflow.ip_class_of_service:[1 TO 255] AND event.kind:flow",
            Box::new(|e| {
                n(e, "netflow.ip_class_of_service").is_some_and(|v| (1..=255).contains(&v))
            }),
        ),
        c(
            "netflow.firewall_event:*",
            Box::new(|e| {
                e.get("netflow.firewall_event")
                    .is_some_and(|v| !v.is_null())
            }),
        ),
        c(
            "destination.port:*",
            Box::new(|e| n(e, "destination.port").is_some()),
        ),
        c(
            "event.kind:flow AND NOT network.transport:udp",
            Box::new(|e| {
                s(e, "event.kind") == Some("flow") && s(e, "network.transport") != Some("udp")
            }),
        ),
        c(
            "(source.ip:10.0.0.0/8 OR destination.ip:10.0.0.0/8) AND destination.port:[0 TO 1023]",
            Box::new(|e| {
                (in_net(ip(e, "source.ip"), "10.0.0.0/8")
                    || in_net(ip(e, "destination.ip"), "10.0.0.0/8"))
                    && n(e, "destination.port").is_some_and(|p| p <= 1023)
            }),
        ),
        // Wildcards and regular expressions: whole terms, lowercase on text fields (as
        // the tokenizer leaves them), exact on keyword fields.
        c(
            "message:fail*",
            Box::new(|e| word(e, |w| w.starts_with("fail"))),
        ),
        c("fail*", Box::new(|e| word(e, |w| w.starts_with("fail")))),
        c(
            "(fail* OR message:accepted) AND process.name:sshd",
            Box::new(|e| {
                (word(e, |w| w.starts_with("fail")) || word(e, |w| w == "accepted"))
                    && s(e, "process.name") == Some("sshd")
            }),
        ),
        c(
            "message:authenticat*",
            Box::new(|e| word(e, |w| w.starts_with("authenticat"))),
        ),
        c(
            "message:FAIL?D",
            Box::new(|e| {
                word(e, |w| {
                    w.len() == 6 && w.starts_with("fail") && w.ends_with('d')
                })
            }),
        ),
        c(
            "message:/fail.*/",
            Box::new(|e| word(e, |w| w.starts_with("fail"))),
        ),
        c(
            "message:/fail(ed|ure)/",
            Box::new(|e| word(e, |w| w == "failed" || w == "failure")),
        ),
        c(
            "message:/[0-9]{4}/",
            Box::new(|e| word(e, |w| w.len() == 4 && w.bytes().all(|b| b.is_ascii_digit()))),
        ),
        c(
            "process.name:sshd*",
            Box::new(|e| s(e, "process.name").is_some_and(|p| p.starts_with("sshd"))),
        ),
        c(
            "process.name:/(sshd|su|cron.*)/",
            Box::new(|e| {
                s(e, "process.name")
                    .is_some_and(|p| p == "sshd" || p == "su" || p.starts_with("cron"))
            }),
        ),
        c(
            "customer:Open*",
            Box::new(|e| s(e, "customer").is_some_and(|c| c.starts_with("Open"))),
        ),
        // Pure and leading negation: everything but.
        c(
            "NOT message:preauth",
            Box::new(|e| !word(e, |w| w == "preauth")),
        ),
        c(
            "-message:preauth",
            Box::new(|e| !word(e, |w| w == "preauth")),
        ),
        c(
            "NOT process.name:sshd AND customer:Linux",
            Box::new(|e| s(e, "process.name") != Some("sshd") && s(e, "customer") == Some("Linux")),
        ),
        c(
            "message:invalid OR NOT customer:OpenSSH",
            Box::new(|e| word(e, |w| w == "invalid") || s(e, "customer") != Some("OpenSSH")),
        ),
        // AND binds tighter than OR; parentheses group.
        c(
            "message:failed OR message:accepted AND message:password",
            Box::new(|e| {
                word(e, |w| w == "failed")
                    || (word(e, |w| w == "accepted") && word(e, |w| w == "password"))
            }),
        ),
        c(
            "(message:failed OR message:accepted) AND message:password",
            Box::new(|e| {
                (word(e, |w| w == "failed") || word(e, |w| w == "accepted"))
                    && word(e, |w| w == "password")
            }),
        ),
        c(
            "message:fail* AND NOT (process.name:sshd OR customer:Linux)",
            Box::new(|e| {
                word(e, |w| w.starts_with("fail"))
                    && s(e, "process.name") != Some("sshd")
                    && s(e, "customer") != Some("Linux")
            }),
        ),
        (
            "*".to_owned(),
            Some((from, to)),
            Box::new(move |e| (f..t).contains(&at(e))),
        ),
        (
            "event.kind:syslog".to_owned(),
            Some((from, to)),
            Box::new(move |e| s(e, "event.kind") == Some("syslog") && (f..t).contains(&at(e))),
        ),
    ]
}

/// What every case finds: its total and the event ids of its newest 20 hits.
/// The newest `limit` hits of a case.
fn run(searcher: &Searcher, (q, range, _): &Case, limit: usize) -> SearchResult {
    searcher
        .search(&SearchRequest {
            q: q.clone(),
            from: range.map(|r| r.0),
            to: range.map(|r| r.1),
            limit,
            offset: 0,
        })
        .unwrap_or_else(|e| panic!("{q}: {e}"))
}

fn answers(searcher: &Searcher, cases: &[Case]) -> Vec<(usize, Vec<Value>)> {
    cases
        .iter()
        .map(|case| {
            let r = run(searcher, case, 20);
            let ids = r.hits.iter().map(|h| h["event.id"].clone()).collect();
            (r.total, ids)
        })
        .collect()
}

/// Every case answers what the events say. On the whole corpus (`whole`) every case must
/// match something, for the test to mean anything; a part of it (what retention leaves) may
/// hold none of a rare case's events, and must then answer none.
fn check(searcher: &Searcher, events: &[Event], cases: &[Case], whole: bool) {
    for case in cases {
        let (q, _, pred) = case;
        let want = events.iter().filter(|e| pred(e)).count();
        assert!(
            want > 0 || !whole,
            "{q}: the corpus must hold matches for this test to mean anything"
        );
        let r = run(searcher, case, 50);
        assert_eq!(r.total, want, "{q}");
        let times: Vec<&str> = r
            .hits
            .iter()
            .filter_map(|h| h["@timestamp"].as_str())
            .collect();
        let mut sorted = times.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(times, sorted, "{q}: newest first");
        assert_eq!(r.hits.len(), want.min(50), "{q}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corpus_counts_hold_across_partitions_restart_and_retention() {
    let Some(root) = corpus() else {
        skip("../shared/corpus is not beside the workspace");
        return;
    };
    let mut events = loghub(&root);
    let syslog = events.len();
    events.extend(flows(&root));
    assert!(
        syslog >= 32_000 && events.len() >= syslog + 4_000,
        "{} events",
        events.len()
    );

    // Three days of arrival: event i arrives on day 1 + i % 3, so every day holds events of
    // every kind from across the corpus's time span.
    let dir = tempfile::tempdir().expect("tempdir");
    let (now, clock) = manual_clock(day(1));
    let node = Node::open(dir.path(), clock.clone(), Policy::default());
    let mut by_day: [Vec<Event>; 3] = Default::default();
    for (i, e) in events.iter().enumerate() {
        by_day[i % 3].push(e.clone());
    }
    for (d, evs) in by_day.iter().enumerate() {
        *now.lock().expect("valid") = day(1 + d as u32);
        for chunk in evs.chunks(500) {
            assert!(matches!(
                node.ingest(batch(chunk)).await,
                Outcome::Accepted { .. }
            ));
        }
    }
    // A batch retried after the day changed is still recognised.
    let b = batch(&events[..3]);
    assert!(matches!(
        node.ingest(b.clone()).await,
        Outcome::Accepted { .. }
    ));
    by_day[2].extend_from_slice(&events[..3]);
    *now.lock().expect("valid") = day(4);
    assert_eq!(node.ingest(b).await, Outcome::Duplicate);
    let parts = node.stop().await;
    let days: Vec<String> = parts.all().iter().map(|p| p.day.to_string()).collect();
    assert_eq!(days, ["2026-11-01", "2026-11-02", "2026-11-03"]);
    let all = by_day.concat();

    // A time range in the middle of the corpus's span; every partition holds some of it.
    let mut times: Vec<i64> = events.iter().map(at).collect();
    times.sort_unstable();
    let mid =
        |q: usize| DateTime::from_timestamp_micros(times[times.len() * q / 100]).expect("valid");
    let (from, to) = (mid(30), mid(70));
    assert_eq!(parts.overlapping(Some(from), Some(to)).len(), 3);
    let far = Utc
        .with_ymd_and_hms(2200, 1, 1, 0, 0, 0)
        .single()
        .expect("valid");
    assert!(
        parts
            .overlapping(Some(far), Some(far + chrono::Days::new(1)))
            .is_empty()
    );
    let cases = cases(from, to);
    let searcher = Searcher::new(parts);
    check(&searcher, &all, &cases, true);
    // Forms that are refused with the reason, never run as another query.
    for (q, says) in [
        ("message:/.*/", "more than 10000 different terms"),
        ("message:fail~1", "fuzzy terms"),
        ("message:/fail", "must end with `/`"),
        ("message:/fail[/", "not a valid regular expression"),
        ("source.port:2*", "text and keyword fields only"),
    ] {
        let e = searcher
            .search(&SearchRequest {
                q: q.to_owned(),
                from: None,
                to: None,
                limit: 10,
                offset: 0,
            })
            .err()
            .unwrap_or_else(|| panic!("{q} must be refused"));
        assert!(
            matches!(&e, vigil_collector::index::search::SearchError::Query(m) if m.contains(says)),
            "{q}: {e}"
        );
    }
    let before = answers(&searcher, &cases);
    aggregations(&searcher, &all, from, to);
    drop(searcher);

    // Restart: the same answers, hit for hit.
    let node = Node::open(dir.path(), clock.clone(), Policy::default());
    let searcher = Searcher::new(node.parts.clone());
    assert_eq!(answers(&searcher, &cases), before);
    node.stop().await;

    // 31 days after day 1, with 30 days of retention: day 1 goes, days 2 and 3 stay.
    *now.lock().expect("valid") = day(1) + chrono::Days::new(31);
    let policy = Policy {
        max_age_days: Some(30),
        max_bytes: None,
    };
    let node = Node::open(dir.path(), clock.clone(), policy);
    let days: Vec<String> = node.parts.all().iter().map(|p| p.day.to_string()).collect();
    assert_eq!(days, ["2026-11-02", "2026-11-03"]);
    assert!(!dir.path().join("index/2026-11-01").exists());
    let dropped = node.metrics.render();
    assert!(
        dropped.contains("vigil_index_partitions_dropped_total{reason=\"age\"} 1"),
        "{dropped}"
    );
    let rest: Vec<Event> = by_day[1..].concat();
    let searcher = Searcher::new(node.parts.clone());
    check(&searcher, &rest, &cases, false);
    let newest = node.parts.all().last().expect("partition").disk_bytes();
    node.stop().await;

    // And by size: a limit below two partitions leaves only the newest.
    let policy = Policy {
        max_age_days: None,
        max_bytes: Some(newest + 1),
    };
    let node = Node::open(dir.path(), clock, policy);
    let days: Vec<String> = node.parts.all().iter().map(|p| p.day.to_string()).collect();
    assert_eq!(days, ["2026-11-03"]);
    assert!(
        node.metrics
            .render()
            .contains("vigil_index_partitions_dropped_total{reason=\"size\"} 1")
    );
    node.stop().await;
    // Dropping touched nothing else: reopened, day 3 answers as before for its own events.
    let node = Node::open(
        dir.path(),
        manual_clock(day(3) + chrono::Days::new(31)).1,
        Policy::default(),
    );
    let searcher = Searcher::new(node.parts.clone());
    check(&searcher, &by_day[2], &cases, false);
    node.stop().await;
}

/// Top values (by count and by summed bytes), a histogram and statistics against the events.
fn aggregations(searcher: &Searcher, events: &[Event], from: DateTime<Utc>, to: DateTime<Utc>) {
    let flows: Vec<&Event> = events
        .iter()
        .filter(|e| s(e, "event.kind") == Some("flow"))
        .collect();
    let req = AggregateRequest {
        q: "event.kind:flow".into(),
        terms: Some("source.ip".into()),
        size: 5,
        sum: Some("network.bytes".into()),
        stats: Some("network.bytes".into()),
        ..Default::default()
    };
    let r = searcher.aggregate(&req).expect("aggregate");
    assert_eq!(r.total, flows.len());
    // Top talkers by bytes.
    let mut bytes: HashMap<String, (u64, u64)> = HashMap::new();
    for e in &flows {
        if let Some(a) = ip(e, "source.ip") {
            let v = bytes.entry(a.to_string()).or_default();
            v.0 += 1;
            v.1 += n(e, "network.bytes").unwrap_or(0);
        }
    }
    let mut top: Vec<(String, (u64, u64))> = bytes.into_iter().collect();
    top.sort_by(|a, b| b.1.1.cmp(&a.1.1).then(a.0.cmp(&b.0)));
    let terms = r.terms.expect("terms");
    assert_eq!(terms.buckets.len(), 5);
    for (b, (key, (count, sum))) in terms.buckets.iter().zip(&top) {
        assert_eq!(b.key.as_str(), Some(key.as_str()));
        assert_eq!((b.count, b.sum), (*count, Some(*sum as f64)), "{key}");
    }
    let with_ip = flows
        .iter()
        .filter(|e| ip(e, "source.ip").is_some())
        .count() as u64;
    let in_top: u64 = terms.buckets.iter().map(|b| b.count).sum();
    assert_eq!(terms.other_count, with_ip - in_top);
    let st = r.stats.expect("stats");
    let values: Vec<u64> = flows.iter().filter_map(|e| n(e, "network.bytes")).collect();
    assert_eq!(st.count, values.len() as u64);
    assert_eq!(st.sum, values.iter().sum::<u64>() as f64);
    assert_eq!(st.min, values.iter().min().map(|&v| v as f64));
    assert_eq!(st.max, values.iter().max().map(|&v| v as f64));
    let median = st.percentiles["50"].as_f64().expect("p50");
    assert!(median >= st.min.expect("valid") && median <= st.max.expect("valid"));

    // Top values of a field without a field of its own.
    let req = AggregateRequest {
        q: "event.kind:flow".into(),
        terms: Some("netflow.direction".into()),
        size: 5,
        ..Default::default()
    };
    let r = searcher.aggregate(&req).expect("aggregate");
    let mut want: HashMap<u64, u64> = HashMap::new();
    for e in &flows {
        if let Some(d) = n(e, "netflow.direction") {
            *want.entry(d).or_default() += 1;
        }
    }
    let got: HashMap<u64, u64> = r
        .terms
        .expect("terms")
        .buckets
        .iter()
        .map(|b| (b.key.as_u64().expect("a whole number"), b.count))
        .collect();
    assert!(want.len() <= 5 && !want.is_empty(), "{want:?}");
    assert_eq!(got, want);

    // Events per bucket (whole hours, about 1,000 buckets) over the middle of the span,
    // across all three partitions.
    let hours = ((to - from).num_hours() / 1000).max(1) as u64;
    let req = AggregateRequest {
        q: "*".into(),
        from: Some(from),
        to: Some(to),
        histogram: Some(Duration::from_secs(3600 * hours)),
        ..Default::default()
    };
    let r = searcher.aggregate(&req).expect("histogram");
    let h = r.histogram.expect("histogram");
    let hour = 3_600_000_000i64 * hours as i64;
    let mut want: HashMap<i64, u64> = HashMap::new();
    for e in events {
        let t = at(e);
        if (from.timestamp_micros()..to.timestamp_micros()).contains(&t) {
            *want.entry(t.div_euclid(hour) * hour).or_default() += 1;
        }
    }
    let total: u64 = h.buckets.iter().map(|b| b.count).sum();
    assert_eq!(total as usize, r.total);
    assert_eq!(total, want.values().sum::<u64>());
    for b in &h.buckets {
        let start = DateTime::parse_from_rfc3339(b.key.as_str().expect("time"))
            .expect("rfc3339")
            .timestamp_micros();
        assert_eq!(b.count, want.get(&start).copied().unwrap_or(0), "{}", b.key);
    }
    // Only `from` (as `--since 2d` asks): the buckets run up to now, empty ones included.
    let req = AggregateRequest {
        from: Some(Utc::now() - chrono::Days::new(2)),
        histogram: Some(Duration::from_secs(3600)),
        ..Default::default()
    };
    let r = searcher.aggregate(&req).expect("histogram");
    let h = r.histogram.expect("histogram");
    assert!((48..=49).contains(&h.buckets.len()), "{}", h.buckets.len());
    assert!(h.buckets.iter().all(|b| b.count == 0));

    // Bad requests are errors, not panics.
    for bad in [
        AggregateRequest {
            terms: Some("message".into()),
            size: 5,
            ..Default::default()
        },
        AggregateRequest {
            terms: Some("nosuchfield".into()),
            size: 5,
            ..Default::default()
        },
        AggregateRequest {
            stats: Some("host.name".into()),
            ..Default::default()
        },
        AggregateRequest {
            terms: Some("source.ip".into()),
            size: 1_000_000,
            ..Default::default()
        },
        AggregateRequest {
            from: Some(from),
            to: Some(to + chrono::Days::new(365)),
            histogram: Some(Duration::from_millis(1)),
            ..Default::default()
        },
        AggregateRequest::default(),
    ] {
        assert!(searcher.aggregate(&bad).is_err(), "{bad:?}");
    }
}
