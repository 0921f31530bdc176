//! Schedule drift of uptime checks, with real parts: a real collector holding `--checks` HTTP
//! checks (interval `--interval` seconds) in its configuration, one real agent running all of
//! them against a local HTTP server (keep-alive, answers 200 at once), measured over
//! `--rounds` intervals after one interval of warm-up (the first runs are spread over it).
//!
//! Reports the probes run, how late they started against their schedule (p50, p99 and the
//! largest, from the agent's `vigil_agent_probe_drift_seconds` histogram: bucket bounds), and
//! the agent's CPU per probe (from /proc).
//!
//! `cargo run --release -p vigil-e2e --bin bench-checks -- --checks 10000 --interval 60 --rounds 3`

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use vigil_e2e::{AGENT_ID, AGENT_TOKEN, Agent, Collector, agent_config_as, arg};

/// A minimal HTTP/1.1 server: every request on a connection answered `200 ok`.
async fn serve(l: tokio::net::TcpListener) {
    loop {
        let Ok((mut s, _)) = l.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            let mut have = 0;
            loop {
                let Ok(n) = s.read(&mut buf[have..]).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                have += n;
                // Requests without bodies (GET): each ends with an empty line.
                while let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
                    if s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await
                        .is_err()
                    {
                        return;
                    }
                    buf.copy_within(end + 4..have, 0);
                    have -= end + 4;
                }
                if have == buf.len() {
                    return;
                }
            }
        });
    }
}

/// The cumulative counts of the drift histogram's buckets: (upper bound, count).
fn drift_buckets(agent: &Agent) -> Vec<(f64, f64)> {
    let text = reqwest::blocking::get(format!("http://{}/metrics", agent.http))
        .and_then(|r| r.text())
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| l.strip_prefix("vigil_agent_probe_drift_seconds_bucket{le=\""))
        .filter_map(|rest| {
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.split_whitespace().next()?.parse().ok()?))
        })
        .collect()
}

/// The bound of the bucket that holds quantile `q` of the counts in `delta`.
fn quantile(delta: &[(f64, f64)], q: f64) -> f64 {
    let total = delta.last().map_or(0.0, |(_, c)| *c);
    delta
        .iter()
        .find(|(_, c)| *c >= total * q)
        .map_or(f64::NAN, |(le, _)| *le)
}

/// The CPU seconds process `pid` has used.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // `after` starts at field 3 (the state, not a number): utime is f[10], stime f[11].
    (f.get(10).copied().unwrap_or(0.0) + f.get(11).copied().unwrap_or(0.0)) / 100.0
}

fn main() {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!("bench-checks [--checks N (10000)] [--interval SECONDS (60)] [--rounds N (3)]");
        return;
    }
    let n = arg("--checks", 10_000);
    let interval = arg("--interval", 60);
    let rounds = arg("--rounds", 3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    rt.spawn(serve(listener));

    let dir = tempfile::tempdir().expect("tempdir");
    let mut extra = String::with_capacity(n as usize * 120);
    for i in 0..n {
        extra.push_str(&format!(
            "[[checks]]\nid = \"c{i}\"\nname = \"c{i}\"\ntype = \"http\"\n\
             target = \"http://127.0.0.1:{port}/c/{i}\"\ninterval = \"{interval}s\"\ntimeout = \"5s\"\n"
        ));
    }
    let c = Collector::start_with(dir.path(), 0, "1s", &extra);
    let adir = dir.path().join("agent");
    let config = agent_config_as(&adir, c.port, (AGENT_ID, AGENT_TOKEN), "", "")
        .replace("checks_refresh = \"1s\"", "checks_refresh = \"30s\"")
        .replace("report_interval = \"1s\"", "report_interval = \"15s\"");
    let a = Agent::start_with_config(&adir, &config);
    println!(
        "bench-checks: {n} HTTP checks every {interval}s on one agent, {rounds} rounds measured after one of warm-up"
    );
    // Warm-up: every check has started (each first runs within one interval).
    let deadline = std::time::Instant::now() + Duration::from_secs(interval * 3 + 60);
    while a.metric("vigil_agent_checks") < n as f64 {
        assert!(
            std::time::Instant::now() < deadline,
            "the agent has {} of {n} checks",
            a.metric("vigil_agent_checks")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(interval));
    let (b0, p0, cpu0) = (
        drift_buckets(&a),
        a.metric("vigil_agent_probes_total"),
        cpu_seconds(a.proc.pid()),
    );
    let window = Duration::from_secs(interval * rounds);
    std::thread::sleep(window);
    let (b1, p1, cpu1) = (
        drift_buckets(&a),
        a.metric("vigil_agent_probes_total"),
        cpu_seconds(a.proc.pid()),
    );
    let delta: Vec<(f64, f64)> = b1
        .iter()
        .zip(&b0)
        .map(|((le, c1), (_, c0))| (*le, c1 - c0))
        .collect();
    let probes = p1 - p0;
    let expected = (n * rounds) as f64;
    let cpu = cpu1 - cpu0;
    println!(
        "probes: {probes:.0} in {}s ({:.1}% of {expected:.0} scheduled), {:.0}/s",
        window.as_secs(),
        probes / expected * 100.0,
        probes / window.as_secs_f64()
    );
    println!(
        "drift (bucket bounds): p50 <= {} s, p99 <= {} s, max <= {} s",
        quantile(&delta, 0.5),
        quantile(&delta, 0.99),
        quantile(&delta, 1.0)
    );
    println!(
        "agent CPU: {cpu:.1} s over {}s ({:.1}% of a core), {:.0} µs per probe",
        window.as_secs(),
        cpu / window.as_secs_f64() * 100.0,
        cpu / probes * 1e6
    );
    drop(a);
    drop(c);
}
