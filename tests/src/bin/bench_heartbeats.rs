//! Heartbeat pings the collector absorbs, with real parts: a real collector (SQLite, fsync
//! on), a real agent fed syslog over TCP the whole time, and HTTP clients pinging
//! `--heartbeats` heartbeats by uuid, `--concurrency` requests in flight, for `--seconds`.
//!
//! Reports pings per second and their latency (p50, p99, max; each ping answered only once
//! committed), and the syslog events ingested per second before and while the pings run.
//!
//! `cargo run --release -p vigil-e2e --bin bench-heartbeats -- --heartbeats 1000 --concurrency 128 --seconds 10`

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use vigil_e2e::{Agent, Collector, arg, metric};

/// Syslog lines into the agent as fast as it takes them, until `stop`.
fn syslog_load(addr: std::net::SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            // The agent goes away at the end of the run: the load ends with it.
            let sent =
                std::panic::catch_unwind(|| vigil_e2e::send_tcp(addr, "bench-load", i..i + 5_000));
            if sent.is_err() {
                return;
            }
            i += 5_000;
        }
    })
}

/// Events the collector made durable per second over `window`.
fn ingest_rate(url: &str, window: Duration) -> f64 {
    let before = metric(url, "vigil_ingest_events_total");
    std::thread::sleep(window);
    (metric(url, "vigil_ingest_events_total") - before) / window.as_secs_f64()
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn main() {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!(
            "bench-heartbeats [--heartbeats N (1000)] [--concurrency N (128)] [--seconds N (10)]"
        );
        return;
    }
    let n = arg("--heartbeats", 1000) as usize;
    let concurrency = arg("--concurrency", 128) as usize;
    let seconds = arg("--seconds", 10);
    let dir = tempfile::tempdir().expect("tempdir");
    let c = Collector::start_with(dir.path(), 0, "1s", "");
    let a = Agent::start(&dir.path().join("agent"), c.port, "", "");
    let url = c.url();
    let client = reqwest::blocking::Client::new();
    let mut uuids = Vec::with_capacity(n);
    for i in 0..n {
        let hb: serde_json::Value = client
            .post(format!("{url}/api/v1/heartbeats"))
            .json(&serde_json::json!({"slug": format!("job-{i}"), "period": "1h"}))
            .send()
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.json())
            .expect("heartbeat created");
        uuids.push(hb["uuid"].as_str().expect("uuid").to_owned());
    }
    println!(
        "bench-heartbeats: {n} heartbeats, {concurrency} pings in flight, {seconds}s; SQLite, fsync on; syslog load throughout"
    );

    let with_load = arg("--load", 1) == 1;
    let stop = Arc::new(AtomicBool::new(!with_load));
    let load = syslog_load(a.syslog_tcp, stop.clone());
    std::thread::sleep(Duration::from_secs(2));
    let alone = ingest_rate(&url, Duration::from_secs(3));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let uuids = Arc::new(uuids);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let pinging = std::thread::spawn({
        let url = url.clone();
        move || {
            rt.block_on(async move {
                let client = reqwest::Client::builder()
                    .pool_max_idle_per_host(concurrency)
                    .build()
                    .expect("client");
                let mut tasks = Vec::new();
                for t in 0..concurrency {
                    let (client, url, uuids) = (client.clone(), url.clone(), uuids.clone());
                    tasks.push(tokio::spawn(async move {
                        let mut lat = Vec::new();
                        let mut failed = 0u64;
                        let mut i = t;
                        while Instant::now() < deadline {
                            let u = &uuids[i % uuids.len()];
                            i += concurrency;
                            let t0 = Instant::now();
                            match client.get(format!("{url}/ping/{u}")).send().await {
                                Ok(r) if r.status().is_success() => lat.push(t0.elapsed()),
                                Ok(r) => {
                                    failed += 1;
                                    if failed == 1 {
                                        eprintln!("a ping answered {}", r.status());
                                    }
                                }
                                Err(e) => {
                                    failed += 1;
                                    if failed == 1 {
                                        eprintln!("a ping failed: {e}");
                                    }
                                }
                            }
                        }
                        (lat, failed)
                    }));
                }
                let mut all = Vec::new();
                let mut failed = 0;
                for t in tasks {
                    let (l, f) = t.await.expect("task");
                    all.extend(l);
                    failed += f;
                }
                (all, failed)
            })
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    let during = ingest_rate(&url, Duration::from_secs(seconds.saturating_sub(2).max(1)));
    let (mut lat, failed) = pinging.join().expect("pings");
    stop.store(true, Ordering::Relaxed);
    let _ = load.join();
    lat.sort();
    let ok = lat.len();
    println!(
        "pings: {ok} answered OK in {seconds}s = {:.0}/s, {failed} failed; latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ok as f64 / seconds as f64,
        pct(&lat, 0.50),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    );
    println!(
        "syslog ingest: {alone:.0} events/s before the pings, {during:.0} events/s while they run"
    );
    let recorded = metric(&url, "vigil_heartbeat_pings_total");
    println!("pings recorded by the collector: {recorded}");
}
