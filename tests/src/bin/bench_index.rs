//! Indexing and search, side by side in one run.
//!
//! Indexing: the same events (loghub lines as the agent parses them, and flows, multiplied
//! to `--events`) into Vigil's index and into **tantivy-cli** with the same schema (Vigil's,
//! written by the library into the index's meta.json) and the same threads and memory. Vigil
//! gets the events as the collector does, in encoded batches (what agents send), and does what
//! the collector's writer does: decode, write-ahead log (no fsync: tantivy-cli does not sync
//! either), enrich, index, commit. tantivy-cli reads the same events as NDJSON, each with its
//! `_source` string and the fields without a field of their own under `_extra`. MB/s are of the events' NDJSON size, on both sides.
//!
//! Search: `--search-events` events over 7 days of arrival (each day's events stamped within
//! that day), then p50 and p99 of a term query over 1 h, a CIDR query over the 7 days, the top
//! 10 source addresses over a day and a 1-minute histogram over a day, through the same
//! searcher the API uses (in process, no HTTP). Prints the index size per million events.
//!
//! `cargo install tantivy-cli --locked`, then
//! `cargo run --release -p vigil-e2e --bin bench-index -- --events 1000000 --search-events 10000000`
//! (`TANTIVY=/path/to/tantivy` if it is not on PATH; `--search-events 0` skips the search part).

use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;
use vigil_collector::index::aggregate::AggregateRequest;
use vigil_collector::index::partition::Partitions;
use vigil_collector::index::retention::Policy;
use vigil_collector::index::search::{SearchRequest, Searcher};
use vigil_collector::index::writer::{self, IngestRequest, Msg, WriterConfig};
use vigil_collector::index::{EXTRA, FIELDS, IndexSchema};
use vigil_collector::metrics::Metrics;
use vigil_e2e::arg;
use vigil_e2e::workload::{flow, loghub};
use vigil_schema::{Batch, Event};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const THREADS: usize = 2;
const MEMORY: usize = 256 << 20;
const BATCH: usize = 2_000;

/// User + system CPU seconds of this process (`self`) or of its waited-for children.
fn cpu(children: bool) -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, r)| r)
        .split_whitespace()
        .collect();
    // After the name: state is field 3; utime 14, stime 15, cutime 16, cstime 17.
    let at = |n: usize| {
        fields
            .get(n - 3)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let ticks = if children {
        at(16) + at(17)
    } else {
        at(14) + at(15)
    };
    ticks / 100.0
}

/// The events of the indexing run: loghub lines and flows, alternating, each round of the
/// loghub lines on its own host and later in time.
fn events(n: usize, start: DateTime<Utc>) -> Vec<Event> {
    let base = loghub(start);
    let mut out = Vec::with_capacity(n);
    let mut round = 0u64;
    while out.len() < n {
        for (i, e) in base.iter().enumerate() {
            if out.len() >= n {
                break;
            }
            let mut e = e.clone();
            e.set_str("host.name", format!("host-{}", round % 50));
            out.push(e);
            let k = out.len() as u64;
            out.push(flow(
                k,
                start + chrono::Duration::milliseconds((round * 2000 + i as u64) as i64),
            ));
        }
        round += 1;
    }
    out.truncate(n);
    out
}

struct Node {
    parts: Partitions,
    tx: mpsc::Sender<Msg>,
    handle: std::thread::JoinHandle<()>,
}

fn open(dir: &Path, clock: writer::Clock) -> Node {
    let parts = Partitions::open(&dir.join("index"), IndexSchema::new()).expect("open");
    let cfg = WriterConfig {
        wal_dir: writer::wal_dir(dir),
        commit_interval: Duration::from_secs(1),
        fsync: false,
        memory_budget_bytes: MEMORY,
        threads: THREADS,
        detect_state: dir.join("detect-state.json"),
        snapshot_interval: Duration::from_secs(10),
        retention: Policy::default(),
        clock,
        incidents: None,
    };
    let (tx, handle) = writer::start(
        parts.clone(),
        cfg,
        Arc::new(Metrics::new()),
        None,
        Arc::new(AtomicBool::new(true)),
        tokio::runtime::Handle::current(),
    )
    .expect("writer");
    Node { parts, tx, handle }
}

impl Node {
    /// Sends every frame (decoding each as ingest does), waits for every acknowledgement, then
    /// commits and stops.
    async fn ingest_all(self, frames: impl Iterator<Item = Vec<u8>>) -> Partitions {
        let mut replies = Vec::new();
        for frame in frames {
            let batch = Batch::decode(&frame).expect("decode");
            let (reply, rx) = oneshot::channel();
            self.tx
                .send(Msg::Ingest(IngestRequest {
                    batch,
                    frame: frame.into(),
                    reply,
                }))
                .await
                .expect("send");
            replies.push(rx);
        }
        for r in replies {
            r.await.expect("reply").expect("accepted");
        }
        let (done, rx) = oneshot::channel();
        self.tx.send(Msg::Shutdown(done)).await.expect("send");
        rx.await.expect("stopped");
        tokio::task::spawn_blocking(move || self.handle.join().expect("join"))
            .await
            .expect("join");
        self.parts
    }
}

fn frame(events: &[Event]) -> Vec<u8> {
    Batch {
        batch_id: Uuid::now_v7(),
        agent_id: "bench".into(),
        seq: 0,
        events: events.to_vec(),
    }
    .encode()
}

fn dir_bytes(p: &Path) -> u64 {
    let out = Command::new("du").arg("-sb").arg(p).output().expect("du");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn indexing(rt: &tokio::runtime::Runtime, work: &Path, n: usize, tantivy: &str) {
    let start = Utc
        .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
        .single()
        .expect("time");
    eprintln!("making {n} events...");
    let evs = events(n, start);
    let ndjson = work.join("events.ndjson");
    let with_source = work.join("tantivy.ndjson");
    let mut bytes = 0u64;
    {
        let mut a = BufWriter::new(std::fs::File::create(&ndjson).expect("create"));
        let mut b = BufWriter::new(std::fs::File::create(&with_source).expect("create"));
        for e in &evs {
            let line = serde_json::to_string(e).expect("json");
            bytes += line.len() as u64 + 1;
            writeln!(a, "{line}").expect("write");
            // What Vigil's writer indexes: the typed fields, the others under `_extra`, and
            // the whole event as `_source`.
            let (mut obj, extra): (serde_json::Map<_, _>, serde_json::Map<_, _>) = e
                .to_json_map()
                .into_iter()
                .partition(|(k, _)| k == "@timestamp" || FIELDS.iter().any(|(name, _)| name == k));
            obj.insert("_source".into(), serde_json::Value::String(line));
            obj.insert(EXTRA.into(), serde_json::Value::Object(extra));
            serde_json::to_writer(&mut b, &obj).expect("write");
            b.write_all(b"\n").expect("write");
        }
    }
    let frames: Vec<Vec<u8>> = evs.chunks(BATCH).map(frame).collect();
    drop(evs);
    let mb = bytes as f64 / 1e6;

    // Vigil.
    let vdir = work.join("vigil");
    let (cpu0, t0) = (cpu(false), Instant::now());
    let parts = rt.block_on(async {
        open(&vdir, writer::system_clock())
            .ingest_all(frames.into_iter())
            .await
    });
    let (vt, vcpu) = (t0.elapsed().as_secs_f64(), cpu(false) - cpu0);
    assert_eq!(parts.num_docs() as usize, n, "Vigil indexed every event");

    // tantivy-cli, on an index the library creates with Vigil's schema.
    let tdir = work.join("tantivy");
    std::fs::create_dir_all(&tdir).expect("mkdir");
    tantivy::Index::create_in_dir(&tdir, IndexSchema::new().schema).expect("create");
    let input = std::fs::File::open(&with_source).expect("open");
    let (cpu0, t0) = (cpu(true), Instant::now());
    let out = Command::new(tantivy)
        .args(["index", "-i"])
        .arg(&tdir)
        .args([
            "-t",
            &THREADS.to_string(),
            // tantivy-cli hands `-m / -t` to the writer as its whole budget.
            "-m",
            &(MEMORY * THREADS).to_string(),
        ])
        .stdin(input)
        .stdout(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{tantivy}: {e} (cargo install tantivy-cli --locked)"));
    let (tt, tcpu) = (t0.elapsed().as_secs_f64(), cpu(true) - cpu0);
    assert!(
        out.status.success(),
        "tantivy-cli: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tdocs = tantivy::Index::open_in_dir(&tdir)
        .and_then(|i| i.reader())
        .map(|r| r.searcher().num_docs())
        .expect("tantivy-cli's index");
    assert_eq!(tdocs as usize, n, "tantivy-cli indexed every event");

    println!(
        "indexing {n} events, {mb:.0} MB of NDJSON, {THREADS} indexing threads, {} MiB",
        MEMORY >> 20
    );
    for (name, t, c, dir) in [("vigil", vt, vcpu, &vdir), ("tantivy-cli", tt, tcpu, &tdir)] {
        println!(
            "  {name:12} {:>9.0} docs/s  {:>6.1} MB/s  {:>5.1} MB/s per CPU-second  ({t:.1} s, {c:.1} CPU-s, index {} MB)",
            n as f64 / t,
            mb / t,
            mb / c,
            dir_bytes(dir) / 1_000_000
        );
    }
    println!("  ratio vigil / tantivy-cli (docs/s): {:.2}", tt / vt);
}

fn percentiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn searching(rt: &tokio::runtime::Runtime, work: &Path, n: usize) {
    let day0 = Utc
        .with_ymd_and_hms(2026, 11, 1, 0, 0, 0)
        .single()
        .expect("time");
    let per_day = n / 7;
    let base = loghub(day0);
    let dir = work.join("search");
    let now = Arc::new(Mutex::new(day0));
    let clock: writer::Clock = {
        let now = now.clone();
        Arc::new(move || *now.lock().expect("clock"))
    };
    let t0 = Instant::now();
    let mut parts = None;
    for d in 0..7u32 {
        let start = day0 + chrono::Days::new(d.into());
        *now.lock().expect("clock") = start + chrono::Duration::hours(12);
        let step = 86_400_000_000i64 / per_day as i64;
        let frames = (0..per_day).step_by(BATCH).map(|first| {
            let evs: Vec<Event> = (first..(first + BATCH).min(per_day))
                .map(|i| {
                    let at = start + chrono::Duration::microseconds(step * i as i64);
                    let k = (d as usize * per_day + i) as u64;
                    if i % 4 == 0 {
                        let mut e = base[(k as usize / 4) % base.len()].clone();
                        e.set_timestamp(at);
                        e.set_str("host.name", format!("host-{}", k % 50));
                        e
                    } else {
                        flow(k, at)
                    }
                })
                .collect();
            frame(&evs)
        });
        let node = rt.block_on(async { open(&dir, clock.clone()) });
        parts = Some(rt.block_on(node.ingest_all(frames)));
        eprintln!(
            "day {} of 7 indexed ({:.0} s)",
            d + 1,
            t0.elapsed().as_secs_f64()
        );
    }
    let parts = parts.expect("partitions");
    assert_eq!(parts.len(), 7);
    let total = parts.num_docs();
    let searcher = Searcher::new(parts);
    let day = |d: u64| day0 + chrono::Days::new(d);
    let noon = day(3) + chrono::Duration::hours(12);
    let runs = 30;
    let time = |f: &dyn Fn() -> usize| {
        f();
        let mut v = Vec::new();
        let mut hits = 0;
        for _ in 0..runs {
            let t = Instant::now();
            hits = f();
            v.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        let (p50, p99) = percentiles(v);
        (p50, p99, hits)
    };
    let search = |q: &str, from, to| {
        let q = q.to_owned();
        let s = searcher.clone();
        move || {
            s.search(&SearchRequest {
                q: q.clone(),
                from,
                to,
                limit: 100,
                offset: 0,
            })
            .expect("search")
            .total
        }
    };
    let agg = |req: AggregateRequest| {
        let s = searcher.clone();
        move || s.aggregate(&req).expect("aggregate").total
    };
    type Case<'a> = (&'a str, Box<dyn Fn() -> usize + 'a>);
    let cases: Vec<Case> = vec![
        (
            "term destination.port:22, 1 h",
            Box::new(search(
                "destination.port:22",
                Some(noon),
                Some(noon + chrono::Duration::hours(1)),
            )),
        ),
        (
            "CIDR source.ip:10.1.3.0/24, 7 days",
            Box::new(search("source.ip:10.1.3.0/24", Some(day(0)), Some(day(7)))),
        ),
        (
            "top 10 source.ip, 1 day",
            Box::new(agg(AggregateRequest {
                q: "*".into(),
                from: Some(day(3)),
                to: Some(day(4)),
                terms: Some("source.ip".into()),
                size: 10,
                ..Default::default()
            })),
        ),
        (
            "1 min histogram, 1 day",
            Box::new(agg(AggregateRequest {
                q: "*".into(),
                from: Some(day(3)),
                to: Some(day(4)),
                histogram: Some(Duration::from_secs(60)),
                ..Default::default()
            })),
        ),
    ];
    println!(
        "search over {total} events in 7 daily partitions ({:.0} s to index), {} MB on disk = {:.0} MB per million events",
        t0.elapsed().as_secs_f64(),
        dir_bytes(&dir.join("index")) / 1_000_000,
        dir_bytes(&dir.join("index")) as f64 / 1e6 / (total as f64 / 1e6)
    );
    for (name, f) in &cases {
        let (p50, p99, hits) = time(f.as_ref());
        println!("  {name:36} p50 {p50:>7.1} ms  p99 {p99:>7.1} ms  ({hits} events)");
    }
}

fn main() {
    let n = arg("--events", 1_000_000) as usize;
    let search_n = arg("--search-events", 10_000_000) as usize;
    let tantivy = std::env::var("TANTIVY").unwrap_or_else(|_| "tantivy".into());
    let work = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    if n > 0 {
        indexing(&rt, work.path(), n, &tantivy);
    }
    if search_n > 0 {
        searching(&rt, work.path(), search_n);
    }
}
