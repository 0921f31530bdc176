//! The web console under load, in a real headless Chromium: a desk of `--incidents` active
//! incidents and a hunt over `--events` events of the last 24 hours.
//!
//! The events are indexed in process the way the collector's writer does (encoded batches,
//! write-ahead log, index, commit) into a data directory; the incidents are recorded into its
//! incident database; then the real `vigil collector` opens that directory and Chromium
//! (through chromedriver) logs in and loads each page `--runs` times. For each page: the
//! median time to first contentful paint and to interactive (the DOMContentLoaded handlers
//! done: the deferred script has bound every control), both from the navigation's start,
//! and the bytes the page took (the document and, on the first load, its stylesheet and
//! script; as sent, after compression).
//!
//! `cargo build --release --workspace --bins && cargo run --release -p vigil-e2e --bin bench-console -- --incidents 10000 --events 10000000`

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::json;
use tokio::sync::oneshot;
use uuid::Uuid;
use vigil_collector::incidents::{Alert, Store};
use vigil_collector::index::IndexSchema;
use vigil_collector::index::partition::Partitions;
use vigil_collector::index::retention::Policy;
use vigil_collector::index::writer::{self, IngestRequest, Msg, WriterConfig};
use vigil_collector::metrics::Metrics;
use vigil_e2e::browser::Browser;
use vigil_e2e::workload::{flow, loghub};
use vigil_e2e::{Collector, arg, collector_config};
use vigil_schema::{Batch, Event};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: usize = 5_000;

/// `n` events spread over the 24 hours before `now`: a quarter log lines of 50 hosts, the
/// rest flows.
async fn index(data: &Path, n: usize) {
    let parts = Partitions::open(&data.join("index"), IndexSchema::new()).expect("index");
    let cfg = WriterConfig {
        wal_dir: writer::wal_dir(data),
        commit_interval: Duration::from_secs(5),
        fsync: false,
        memory_budget_bytes: 512 << 20,
        threads: 2,
        detect_state: data.join("detect-state.json"),
        snapshot_interval: Duration::from_secs(60),
        retention: Policy::default(),
        clock: writer::system_clock(),
        incidents: None,
    };
    let (tx, handle) = writer::start(
        parts,
        cfg,
        Arc::new(Metrics::new()),
        None,
        Arc::new(AtomicBool::new(true)),
        tokio::runtime::Handle::current(),
    )
    .expect("writer");
    let now = Utc::now();
    let start = now - chrono::Duration::hours(24);
    let step = 86_400_000_000i64 / n.max(1) as i64;
    let base = loghub(start);
    let t0 = Instant::now();
    let mut pending = Vec::new();
    for first in (0..n).step_by(BATCH) {
        let events: Vec<Event> = (first..(first + BATCH).min(n))
            .map(|i| {
                let at = start + chrono::Duration::microseconds(step * i as i64);
                if i % 4 == 0 {
                    let mut e = base[(i / 4) % base.len()].clone();
                    e.set_timestamp(at);
                    e.set_str("host.name", format!("host-{}", i % 50));
                    e
                } else {
                    flow(i as u64, at)
                }
            })
            .collect();
        let frame = Batch {
            batch_id: Uuid::now_v7(),
            agent_id: "bench".into(),
            seq: 0,
            events,
        }
        .encode();
        let batch = Batch::decode(&frame).expect("decode");
        let (reply, rx) = oneshot::channel();
        tx.send(Msg::Ingest(IngestRequest {
            batch,
            frame: frame.into(),
            reply,
        }))
        .await
        .expect("send");
        pending.push(rx);
        if pending.len() >= 64 {
            for r in pending.drain(..) {
                r.await.expect("reply").expect("accepted");
            }
        }
        if first % 1_000_000 < BATCH && first > 0 {
            eprintln!(
                "{first} events indexed ({:.0} s)",
                t0.elapsed().as_secs_f64()
            );
        }
    }
    for r in pending {
        r.await.expect("reply").expect("accepted");
    }
    let (done, rx) = oneshot::channel();
    tx.send(Msg::Shutdown(done)).await.expect("send");
    rx.await.expect("stopped");
    tokio::task::spawn_blocking(move || handle.join().expect("join"))
        .await
        .expect("join");
    eprintln!("{n} events indexed in {:.0} s", t0.elapsed().as_secs_f64());
}

/// `n` active incidents, each of its own host, of five rules and ten customers.
async fn incidents(data: &Path, n: usize) -> i64 {
    let url = format!("sqlite://{}", data.join("incidents.db").display());
    let store = Store::open(&url).await.expect("incidents");
    let now = Utc::now();
    let mut last = 0;
    for first in (0..n).step_by(500) {
        let alerts: Vec<Alert> = (first..(first + 500).min(n))
            .map(|i| Alert {
                id: format!("bench.a{i}"),
                rule_id: format!("rule-{}", i % 5),
                title: format!("Bench detection {} on host-{i}", i % 5),
                severity: ["low", "medium", "high", "critical"][i % 4].into(),
                customer: Some(format!("customer-{}", i % 10)),
                group_key: format!("host.name=host-{i}"),
                at: now - chrono::Duration::seconds((n - i) as i64),
                message: Some(format!("bench line {i}")),
                danger: i % 50 == 0,
                affected: Vec::new(),
                tags: Vec::new(),
                seen: Default::default(),
            })
            .collect();
        let r = store.record(&alerts).await.expect("record");
        last = r.opened.last().copied().unwrap_or(last);
    }
    store.close().await;
    last
}

/// One load of `path`: (first contentful paint ms, interactive ms, document bytes as sent,
/// document bytes, stylesheet and script bytes as sent).
fn load(b: &Browser, base: &str, path: &str) -> (f64, f64, u64, u64, u64) {
    b.go(&format!("{base}{path}"));
    // The paint is recorded a frame or two after it happens: wait for it (buffered).
    let m = b.run_async(
        "const done = arguments[arguments.length - 1];
         new PerformanceObserver((list, obs) => {
           const fcp = list.getEntriesByName('first-contentful-paint')[0];
           if (!fcp) return;
           obs.disconnect();
           const nav = performance.getEntriesByType('navigation')[0];
           const res = performance.getEntriesByType('resource')
              .reduce((n, r) => n + (r.transferSize || 0), 0);
           done([fcp.startTime, nav.domContentLoadedEventEnd,
                 nav.transferSize || 0, nav.decodedBodySize || 0, res]);
         }).observe({type: 'paint', buffered: true});",
        json!([]),
    );
    let f = |i: usize| m[i].as_f64().unwrap_or(-1.0);
    (f(0), f(1), f(2) as u64, f(3) as u64, f(4) as u64)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let n_incidents = arg("--incidents", 10_000) as usize;
    let n_events = arg("--events", 10_000_000) as usize;
    let runs = arg("--runs", 5) as usize;
    let work = tempfile::tempdir().expect("tempdir");
    let data = work.path().join("collector-data");
    std::fs::create_dir_all(&data).expect("data dir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(index(&data, n_events));
    let one = rt.block_on(incidents(&data, n_incidents));
    eprintln!("{n_incidents} incidents recorded");

    let c = Collector::start_text(work.path(), &collector_config(work.path(), 0, "1s"));
    let base = c.url();
    let b = Browser::start(work.path(), "bench", 1280, 720);
    // The login page on an empty cache: the stylesheet and script it fetches are what every
    // page needs, fetched once.
    let (_, _, _, _, assets) = load(&b, &base, "/login");
    b.type_into(&b.find("#name"), "bench");
    b.click(&b.find("#login"));
    b.find("#queue");
    let pages = [
        ("desk", "/desk".to_owned()),
        ("desk, danger only", "/desk?danger=yes".to_owned()),
        ("incident", format!("/incidents/{one}")),
        ("hunt, all events", "/hunt".to_owned()),
        (
            "hunt, one host",
            "/hunt?q=host.name%3A%22host-8%22".to_owned(),
        ),
        (
            "hunt, flows to port 53",
            "/hunt?q=event.kind%3Aflow+AND+destination.port%3A53&field=source.ip".to_owned(),
        ),
    ];
    println!(
        "console, {n_incidents} incidents, {n_events} events, median of {runs} loads (Chromium {}x{}):",
        1280, 720
    );
    println!("| page | first paint | interactive | page bytes sent | page bytes |");
    println!("|---|---|---|---|---|");
    for (name, path) in &pages {
        let mut paints = Vec::new();
        let mut ready = Vec::new();
        let mut sent = 0;
        let mut size = 0;
        for _ in 0..runs {
            let (p, i, s, d, _) = load(&b, &base, path);
            paints.push(p);
            ready.push(i);
            (sent, size) = (s, d);
        }
        b.screenshot(&name.replace([' ', ','], "-"));
        if let Some(total) = b.text_now("#total") {
            eprintln!("{name}: {total} events match");
        }
        println!(
            "| {name} | {:.0} ms | {:.0} ms | {sent} | {size} |",
            median(paints),
            median(ready),
        );
    }
    println!(
        "stylesheet and script, fetched once by the login page (then cached for an hour): {assets} bytes sent"
    );
    drop(c);
}
