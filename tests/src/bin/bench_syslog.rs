//! Syslog intake, side by side in one run: the same `loggen` load (RFC 5424, octet-counted
//! TCP, 400-byte messages, 1 and 10 connections) into rsyslog (`imptcp` → file) and into
//! vigil-agent (parsing into fields and writing its fsynced disk spool; no collector, so the
//! spool is the end of the line). For each: messages/s and MB/s from the first message sent
//! to the last one written, and the ratio. Then UDP at rising rates (2 s of loggen at each
//! rate, both with a 4 MiB socket buffer: rsyslog as root forces its size, the agent asks for 8 MiB and gets net.core.rmem_max, 4 MiB here): messages lost at each rate, and the highest rate
//! each one takes without loss.
//!
//! Needs `rsyslogd` and `loggen` (syslog-ng's; see `../shared/PEERS.md`: unpack
//! syslog-ng-core and point `LOGGEN` at its `usr/bin/loggen`).
//!
//! `LOGGEN=/tmp/sng/root/usr/bin/loggen cargo run --release -p vigil-e2e --bin bench-syslog -- --messages 1000000`

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use vigil_e2e::{Agent, Proc, arg, free_port, settled, wait_for};

const SIZE: u64 = 400;

/// `n` messages in all, over `conns` connections (loggen's `-n` counts per connection).
fn loggen(path: &Path, port: u16, n: u64, conns: u64) -> Command {
    loggen_with(
        path,
        port,
        n / conns,
        &["-S", &format!("--active-connections={conns}")],
        100_000_000,
    )
}

fn loggen_with(path: &Path, port: u16, n: u64, transport: &[&str], rate: u64) -> Command {
    let root = path
        .parent()
        .and_then(Path::parent)
        .and_then(Path::parent)
        .expect("loggen prefix");
    let mut cmd = Command::new(path);
    cmd.env("LD_LIBRARY_PATH", root.join("usr/lib/syslog-ng"))
        .env("SYSLOGNG_PREFIX", root.join("usr"))
        .args(transport)
        .args([
            "-P",
            "-Q",
            "-s",
            &SIZE.to_string(),
            "-r",
            &rate.to_string(),
            "-n",
            &n.to_string(),
            // loggen stops after --interval (10 s by default) even before -n messages.
            "-I",
            "3600",
        ])
        .args(["127.0.0.1", &port.to_string()]);
    cmd
}

/// Starts rsyslogd in `dir` with one `input` module (listening on 127.0.0.1 with `params`)
/// writing to one file, whose path it returns.
fn rsyslog(dir: &Path, input: &str, params: &str) -> (Proc, PathBuf) {
    let out = dir.join("out.log");
    let conf = dir.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            "global(workDirectory=\"{w}\")\nmodule(load=\"{input}\")\n\
             input(type=\"{input}\" address=\"127.0.0.1\" {params})\n\
             action(type=\"omfile\" file=\"{o}\")\n",
            w = dir.display(),
            o = out.display()
        ),
    )
    .expect("conf");
    let mut cmd = Command::new("/usr/sbin/rsyslogd");
    cmd.arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(dir.join("pid"));
    (Proc::spawn("rsyslogd", cmd, &dir.join("rsyslog.log")), out)
}

/// The lines of a file that only grows, each byte read once: rereading a file of gigabytes
/// at every poll would make rsyslog look slower than it is.
struct Lines {
    path: PathBuf,
    read: std::cell::Cell<(u64, u64)>,
}

impl Lines {
    fn new(path: &Path) -> Lines {
        Lines {
            path: path.to_owned(),
            read: Default::default(),
        }
    }

    fn count(&self) -> u64 {
        use std::io::{Read, Seek, SeekFrom};
        let (mut offset, mut lines) = self.read.get();
        if let Ok(mut f) = std::fs::File::open(&self.path)
            && f.seek(SeekFrom::Start(offset)).is_ok()
        {
            let mut chunk = vec![0u8; 1 << 20];
            while let Ok(n @ 1..) = f.read(&mut chunk) {
                offset += n as u64;
                lines += chunk[..n].iter().filter(|&&b| b == b'\n').count() as u64;
            }
        }
        self.read.set((offset, lines));
        lines
    }
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

/// Sends 2 s of UDP at each rate to `port` and returns the messages lost at each.
fn udp_losses(loggen_path: &Path, port: u16, rates: &[u64], count: impl Fn() -> u64) -> Vec<u64> {
    let mut before = count();
    rates
        .iter()
        .map(|&rate| {
            let n = rate * 2;
            let status = loggen_with(loggen_path, port, n, &["-i", "-D"], rate)
                .status()
                .expect("loggen runs");
            assert!(status.success(), "loggen failed");
            let after = settled(&count);
            let lost = n.saturating_sub(after - before);
            before = after;
            lost
        })
        .collect()
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
        "{:<12} {:>5} {:>10} {:>12} {:>9} {:>12}",
        "target", "conns", "seconds", "msg/s", "MB/s", "CPU µs/msg"
    );
    for conns in [1, 10] {
        let n = n / conns * conns;
        // rsyslog: imptcp → one file.
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let (mut rs, out) = rsyslog(dir.path(), "imptcp", &format!("port=\"{port}\""));
        wait_for(
            Duration::from_secs(30),
            "rsyslog to listen",
            || rs.log_tail(),
            || std::net::TcpStream::connect(("127.0.0.1", port)).ok(),
        );
        // The probe connection above sent nothing, so it adds no line.
        let lines = Lines::new(&out);
        let cpu = rs.cpu_seconds().unwrap_or(0.0);
        let t_rs = measure(&loggen_path, port, n, conns, || lines.count());
        let cpu_rs = rs.cpu_seconds().unwrap_or(0.0) - cpu;
        rs.terminate(Duration::from_secs(10));

        // vigil-agent: parse + spool (fsync on), nothing listening where it ships.
        let dir = tempfile::tempdir().expect("tempdir");
        let a = Agent::start(
            dir.path(),
            free_port(),
            "max_bytes = 17179869184",
            "protocols = [\"tcp\"]\n",
        );
        let cpu = a.proc.cpu_seconds().unwrap_or(0.0);
        let t_ag = measure(&loggen_path, a.syslog_tcp.port(), n, conns, || {
            a.metric("vigil_agent_events_spooled_total") as u64
        });
        let cpu_ag = a.proc.cpu_seconds().unwrap_or(0.0) - cpu;
        // CPU time per message is steadier than the rate on a shared machine, where the
        // receiver competes with loggen for the cores.
        let row = |name: &str, t: Duration, cpu: f64| {
            let s = t.as_secs_f64();
            println!(
                "{name:<12} {conns:>5} {s:>10.2} {:>12.0} {:>9.1} {:>12.2}",
                n as f64 / s,
                (n * SIZE) as f64 / 1e6 / s,
                cpu * 1e6 / n as f64
            );
        };
        row("rsyslog", t_rs, cpu_rs);
        row("vigil-agent", t_ag, cpu_ag);
        println!(
            "{:<12} {conns:>5}   ratio vigil-agent / rsyslog = {:.2}",
            "",
            t_rs.as_secs_f64() / t_ag.as_secs_f64()
        );
    }

    udp(&loggen_path);
}

fn udp(loggen_path: &Path) {
    let rates = [10_000, 20_000, 40_000, 80_000, 160_000, 320_000];
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let (mut rs, out) = rsyslog(
        dir.path(),
        "imudp",
        &format!("port=\"{port}\" rcvbufSize=\"4m\""),
    );
    let lines = Lines::new(&out);
    // rsyslog is ready once its first line (a probe datagram) is in the file.
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    wait_for(
        Duration::from_secs(30),
        "rsyslog to listen on UDP",
        || rs.log_tail(),
        || {
            probe.send_to(b"<13>probe", ("127.0.0.1", port)).ok();
            std::thread::sleep(Duration::from_millis(100));
            (lines.count() > 0).then_some(())
        },
    );
    settled(|| lines.count());
    let rs_lost = udp_losses(loggen_path, port, &rates, || lines.count());
    rs.terminate(Duration::from_secs(10));

    let dir = tempfile::tempdir().expect("tempdir");
    let a = Agent::start(dir.path(), free_port(), "max_bytes = 17179869184", "");
    let udp_port = a.syslog_udp.expect("udp listener").port();
    let ag_lost = udp_losses(loggen_path, udp_port, &rates, || {
        a.metric("vigil_agent_events_spooled_total") as u64
    });

    println!("UDP, {SIZE}-byte messages, 2 s at each rate: messages lost");
    println!(
        "{:<12} {}",
        "msg/s",
        rates.map(|r| format!("{r:>9}")).join("")
    );
    let best = |lost: &[u64]| {
        rates
            .iter()
            .zip(lost)
            .take_while(|(_, l)| **l == 0)
            .last()
            .map_or(0, |(r, _)| *r)
    };
    for (name, lost) in [("rsyslog", &rs_lost), ("vigil-agent", &ag_lost)] {
        println!(
            "{name:<12} {}   highest rate without loss: {}",
            lost.iter().map(|l| format!("{l:>9}")).collect::<String>(),
            best(lost)
        );
    }
}
