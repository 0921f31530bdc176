//! End-to-end throughput: syslog over TCP into a real agent (disk spool on, fsync on) that
//! ships to a real collector (write-ahead log fsync on, Tantivy) on loopback.
//!
//! Prints events/s and MB/s until every event is acknowledged by the collector and until
//! every event is searchable, and the peak RSS of both processes.
//!
//! `cargo run --release -p vigil-e2e --bin bench-pipeline -- --events 1000000 --connections 4`

use std::io::{BufWriter, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use vigil_e2e::{Agent, Collector, arg, total, wait_for};

fn main() {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!(
            "bench-pipeline [--events N (1000000)] [--connections C (4)] [--size BYTES (250)]"
        );
        return;
    }
    let n = arg("--events", 1_000_000);
    let conns = arg("--connections", 4).max(1);
    let size = arg("--size", 250) as usize;
    let dir = tempfile::tempdir().expect("tempdir");
    let c = Collector::start(dir.path(), 0);
    let a = Agent::start(dir.path(), c.port, "max_bytes = 4294967296", "");
    let url = c.url();

    // RFC 3164 lines like a router's, padded to `size` bytes.
    let pad = move |i: u64| {
        let head = format!(
            "<134>Nov 22 10:00:00 edge-router-{} sshd[{}]: Accepted publickey for user{} from 10.{}.{}.{} port {} ssh2 ",
            i % 50,
            i % 30000,
            i % 1000,
            i % 256,
            (i / 256) % 256,
            i % 251,
            1024 + i % 60000
        );
        let fill = size.saturating_sub(head.len() + 1);
        format!("{head}{}\n", "x".repeat(fill))
    };
    let bytes_per = pad(0).len() as u64;
    println!(
        "bench-pipeline: {n} events of ~{bytes_per} bytes over {conns} TCP connection(s); spool fsync on, WAL fsync on"
    );

    let start = Instant::now();
    let senders: Vec<_> = (0..conns)
        .map(|k| {
            let addr = a.syslog_tcp;
            std::thread::spawn(move || {
                let stream = TcpStream::connect(addr).expect("connect");
                let mut w = BufWriter::with_capacity(256 * 1024, stream);
                let mut i = k;
                while i < n {
                    w.write_all(pad(i).as_bytes()).expect("send");
                    i += conns;
                }
                w.flush().expect("flush");
            })
        })
        .collect();
    for s in senders {
        s.join().expect("sender");
    }
    let sent = start.elapsed();
    let logs = || format!("{}\n{}", c.proc.log_tail(), a.proc.log_tail());
    wait_for(
        Duration::from_secs(3600),
        "every event acknowledged",
        logs,
        || (a.metric("vigil_agent_events_acked_total") as u64 >= n).then_some(()),
    );
    let acked = start.elapsed();
    wait_for(
        Duration::from_secs(3600),
        "every event searchable",
        logs,
        || (total(&url, "*")? >= n).then_some(()),
    );
    let searchable = start.elapsed();
    let mb = (n * bytes_per) as f64 / 1e6;
    let rate = |d: Duration| (n as f64 / d.as_secs_f64(), mb / d.as_secs_f64());
    let (s_ev, s_mb) = rate(sent);
    let (a_ev, a_mb) = rate(acked);
    let (q_ev, q_mb) = rate(searchable);
    println!(
        "sent by load generator  {:>8.2} s  {:>10.0} events/s  {:>7.1} MB/s",
        sent.as_secs_f64(),
        s_ev,
        s_mb
    );
    println!(
        "acknowledged (durable)  {:>8.2} s  {:>10.0} events/s  {:>7.1} MB/s",
        acked.as_secs_f64(),
        a_ev,
        a_mb
    );
    println!(
        "searchable              {:>8.2} s  {:>10.0} events/s  {:>7.1} MB/s",
        searchable.as_secs_f64(),
        q_ev,
        q_mb
    );
    // Freshness: single events on an idle pipeline, from the send to the first search that finds them.
    let mut lat: Vec<Duration> = (0..10)
        .map(|i| {
            let t = Instant::now();
            vigil_e2e::send_tcp(a.syslog_tcp, "fresh", i..i + 1);
            let q = format!("\"fresh-{i}\"");
            wait_for(Duration::from_secs(60), "a fresh event", logs, || {
                (total(&url, &q)? == 1).then_some(())
            });
            t.elapsed()
        })
        .collect();
    lat.sort();
    println!(
        "freshness (send → searchable, 10 single events): median {:?}, max {:?}",
        lat[5], lat[9]
    );
    println!(
        "peak RSS: collector {} MiB, agent {} MiB",
        c.proc.peak_rss_kib().unwrap_or(0) / 1024,
        a.proc.peak_rss_kib().unwrap_or(0) / 1024
    );
    println!(
        "CPU time: collector {:.1} s, agent {:.1} s ({:.1} µs of CPU per event in all)",
        c.proc.cpu_seconds().unwrap_or(0.0),
        a.proc.cpu_seconds().unwrap_or(0.0),
        (c.proc.cpu_seconds().unwrap_or(0.0) + a.proc.cpu_seconds().unwrap_or(0.0)) * 1e6
            / n as f64
    );
    println!(
        "collector: {} WAL fsyncs, {} index commits",
        vigil_e2e::metric(&url, "vigil_wal_syncs_total"),
        vigil_e2e::metric(&url, "vigil_index_commits_total")
    );
}
