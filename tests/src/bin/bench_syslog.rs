//! Syslog intake, side by side in one run: the same `loggen` load (RFC 5424, octet-counted
//! TCP, 400-byte messages, 1 and 10 connections) into rsyslog (`imptcp` → file) and into
//! vigil-agent (parsing into fields and writing its fsynced disk spool; no collector, so the
//! spool is the end of the line). For each: messages/s and MB/s from the first message sent
//! to the last one written, and the ratio.
//!
//! Needs `rsyslogd` and `loggen` (syslog-ng's; see `../shared/PEERS.md`: unpack
//! syslog-ng-core and point `LOGGEN` at its `usr/bin/loggen`).
//!
//! `LOGGEN=/tmp/sng/root/usr/bin/loggen cargo run --release -p vigil-e2e --bin bench-syslog -- --messages 1000000`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use vigil_e2e::{Agent, Proc, arg, free_port, wait_for};

const SIZE: u64 = 400;

fn loggen(path: &Path, port: u16, n: u64, conns: u64) -> Command {
    let root = path
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("loggen prefix");
    let mut cmd = Command::new(path);
    cmd.env("LD_LIBRARY_PATH", root.join("usr/lib/syslog-ng"))
        .env("SYSLOGNG_PREFIX", root.join("usr"))
        .args([
            "-S",
            "-P",
            "-Q",
            "-s",
            &SIZE.to_string(),
            "-r",
            "100000000",
            "-n",
            &n.to_string(),
        ])
        .arg(format!("--active-connections={conns}"))
        .args(["127.0.0.1", &port.to_string()]);
    cmd
}

fn lines_in(path: &Path) -> u64 {
    std::fs::read(path)
        .map(|d| d.iter().filter(|&&b| b == b'\n').count() as u64)
        .unwrap_or(0)
}

/// Runs loggen against `port` and waits until `done()` reaches `n`; returns the elapsed time.
fn measure(loggen_path: &Path, port: u16, n: u64, conns: u64, done: impl Fn() -> u64) -> Duration {
    let start = Instant::now();
    let status = loggen(loggen_path, port, n, conns)
        .status()
        .expect("loggen runs");
    assert!(status.success(), "loggen failed");
    wait_for(
        Duration::from_secs(600),
        "every message written",
        || format!("{} of {n}", done()),
        || (done() >= n).then_some(()),
    );
    start.elapsed()
}

fn main() {
    let n = arg("--messages", 1_000_000);
    let loggen_path = PathBuf::from(
        std::env::var("LOGGEN").unwrap_or_else(|_| "/tmp/sng/root/usr/bin/loggen".into()),
    );
    assert!(
        loggen_path.exists(),
        "loggen not found at {} (set LOGGEN; see ../shared/PEERS.md)",
        loggen_path.display()
    );
    println!(
        "bench-syslog: {n} RFC 5424 messages of {SIZE} bytes, octet-counted TCP, loggen at full speed"
    );
    println!(
        "{:<12} {:>5} {:>10} {:>12} {:>9}",
        "target", "conns", "seconds", "msg/s", "MB/s"
    );
    for conns in [1, 10] {
        let n = n / conns * conns;
        // rsyslog: imptcp → one file.
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let out = dir.path().join("out.log");
        let conf = dir.path().join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                "global(workDirectory=\"{w}\")\nmodule(load=\"imptcp\")\ninput(type=\"imptcp\" port=\"{port}\" address=\"127.0.0.1\")\naction(type=\"omfile\" file=\"{o}\")\n",
                w = dir.path().display(),
                o = out.display()
            ),
        )
        .expect("conf");
        let mut cmd = Command::new("/usr/sbin/rsyslogd");
        cmd.arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.path().join("pid"));
        let mut rs = Proc::spawn("rsyslogd", cmd, &dir.path().join("rsyslog.log"));
        wait_for(
            Duration::from_secs(30),
            "rsyslog to listen",
            || rs.log_tail(),
            || std::net::TcpStream::connect(("127.0.0.1", port)).ok(),
        );
        // The probe connection above sent nothing, so it adds no line.
        let t_rs = measure(&loggen_path, port, n, conns, || lines_in(&out));
        rs.terminate(Duration::from_secs(10));

        // vigil-agent: parse + spool (fsync on), nothing listening where it ships.
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Agent::start(
            dir.path(),
            free_port(),
            "max_bytes = 17179869184",
            "protocols = [\"tcp\"]\n",
        );
        let t_ag = measure(&loggen_path, a.syslog_tcp.port(), n, conns, || {
            a.metric("vigil_agent_events_spooled_total") as u64
        });
        let row = |name: &str, t: Duration| {
            let s = t.as_secs_f64();
            println!(
                "{name:<12} {conns:>5} {s:>10.2} {:>12.0} {:>9.1}",
                n as f64 / s,
                (n * SIZE) as f64 / 1e6 / s
            );
        };
        row("rsyslog", t_rs);
        row("vigil-agent", t_ag);
        println!(
            "{:<12} {conns:>5}   ratio vigil-agent / rsyslog = {:.2}",
            "",
            t_rs.as_secs_f64() / t_ag.as_secs_f64()
        );
    }
}
