//! Harness for Vigil's end-to-end tests and benchmark drivers: runs the real `vigil` and
//! `vigil-agent` binaries in temporary directories, sends real syslog over real sockets, and
//! reads results through the real HTTP API.
//!
//! Every wait has a deadline; on a timeout the panic message carries the tail of the logs of
//! the processes involved.

#[path = "../support/skip.rs"]
mod skip_support;
pub use skip_support::skip;

use std::io::{BufWriter, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod workload;

/// The directory holding the workspace's binaries (next to this test's own executable).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// A workspace binary. `cargo test --workspace` builds it (the binary crates have integration
/// tests of their own); a binary older than its sources is refused, because testing a stale
/// one (as `cargo test -p vigil-e2e` alone would) proves nothing.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    let built = std::fs::metadata(&p)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is not built: run `cargo test --workspace`, which builds it",
                p.display()
            )
        });
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace");
    // The crates each binary is built from: vigil-agent does not depend on the collector, so
    // a change there leaves it (rightly) as it was.
    let sources: &[&str] = if name == "vigil-agent" {
        &["schema", "agent"]
    } else {
        &["schema", "agent", "collector"]
    };
    // Binaries copied out of cargo's target directory (to compare builds side by side in
    // benchmarks) are taken as they are.
    let copied = !bin_dir().join(".fingerprint").is_dir();
    for src in sources.iter().filter(|_| !copied) {
        if let Some(newest) = newest_mtime(&workspace.join(src).join("src")) {
            assert!(
                newest <= built,
                "{} is older than the sources in {src}/: run `cargo test --workspace` (or `cargo build --workspace --bins`)",
                p.display()
            );
        }
    }
    p
}

/// `vigil COMMAND ARGS --url URL` against a collector: (success, stdout, stderr).
pub fn vigil_cli(command: &str, args: &[&str], url: &str) -> (bool, String, String) {
    let out = Command::new(bin("vigil"))
        .arg(command)
        .args(args)
        .args(["--url", url])
        .output()
        .expect("vigil runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn newest_mtime(dir: &Path) -> Option<std::time::SystemTime> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        let t = if path.is_dir() {
            newest_mtime(&path)
        } else {
            entry.metadata().and_then(|m| m.modified()).ok()
        };
        newest = newest.max(t);
    }
    newest
}

/// Waits until `count` has not changed for a second (or 60 s pass) and returns it: the end
/// of a load in the benchmarks.
pub fn settled(count: impl Fn() -> u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = count();
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = count();
        if now == last || Instant::now() > deadline {
            return now;
        }
        last = now;
    }
}

/// A port nothing listens on (bound, noted, released): for a collector that is not there yet.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A numeric command-line option of a benchmark driver (`--name VALUE`), or `default`.
pub fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Polls `f` until it returns `Some`, or panics after `timeout` with `what` and `context()`.
pub fn wait_for<T>(
    timeout: Duration,
    what: &str,
    context: impl Fn() -> String,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}\n{}",
                context()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A child process that is killed when dropped, with its stderr in a log file.
pub struct Proc {
    pub child: Child,
    pub log: PathBuf,
    pub name: String,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> Proc {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("dup"))
            .stderr(file)
            .env("VIGIL_LOG", "info,tantivy=warn")
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc {
            child,
            log: log.to_owned(),
            name: name.to_owned(),
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(30);
        format!(
            "--- last lines of {} ({}):\n{}",
            self.name,
            self.log.display(),
            lines[start..].join("\n")
        )
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for an orderly exit; returns whether it exited successfully.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                self.kill9();
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Peak resident set size (VmHWM) in KiB, while the process runs.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Proc {
    /// CPU time (user + system) the process has used so far, in seconds.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        // Fields after the command name, which is in parentheses and may contain spaces.
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
        Some(ticks / 100.0)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.is_running() {
            self.kill9();
        }
    }
}

/// Reads a `--ports-file` once the process wrote it.
pub fn read_ports(path: &Path, proc: &Proc) -> Value {
    wait_for(
        Duration::from_secs(60),
        &format!("{} to listen", proc.name),
        || proc.log_tail(),
        || {
            let text = std::fs::read_to_string(path).ok()?;
            serde_json::from_str(&text).ok()
        },
    )
}

pub const AGENT_ID: &str = "edge-1";
pub const AGENT_TOKEN: &str = "test-token-0123456789abcdef";
/// A second agent the collector of [`collector_config`] also accepts.
pub const AGENT2_ID: &str = "edge-2";
pub const AGENT2_TOKEN: &str = "test-token-second-agent-0123";

/// A collector's config: its own data dir, a fixed or ephemeral port, one agent token.
pub fn collector_config(dir: &Path, port: u16, commit_interval: &str) -> String {
    format!(
        r#"data_dir = "{data}"
[http]
listen = "127.0.0.1:{port}"
[index]
commit_interval = "{commit_interval}"
[[ingest.agents]]
id = "{AGENT_ID}"
token = "{AGENT_TOKEN}"
[[ingest.agents]]
id = "{AGENT2_ID}"
token = "{AGENT2_TOKEN}"
"#,
        data = dir.join("collector-data").display()
    )
}

/// An agent's config: syslog TCP+UDP on an ephemeral port, its spool under `dir`;
/// `spool_extra` goes into the `[spool]` table, `extra` (more tables) at the end.
pub fn agent_config(dir: &Path, collector_port: u16, spool_extra: &str, extra: &str) -> String {
    agent_config_as(
        dir,
        collector_port,
        (AGENT_ID, AGENT_TOKEN),
        spool_extra,
        extra,
    )
}

/// [`agent_config`] for the agent `(id, token)`.
pub fn agent_config_as(
    dir: &Path,
    collector_port: u16,
    (id, token): (&str, &str),
    spool_extra: &str,
    extra: &str,
) -> String {
    format!(
        r#"id = "{id}"
name = "test-agent"
customer = "test-customer"
{netflow_none}
[collector]
url = "http://127.0.0.1:{collector_port}"
token = "{token}"
max_backoff = "1s"
[spool]
dir = "{spool}"
{spool_extra}
[http]
listen = "127.0.0.1:0"
[[syslog]]
listen = "127.0.0.1:0"
{extra}
"#,
        spool = dir.join("spool").display(),
        // The embedded defaults listen for NetFlow on 2055 and 4739: tests that run side by
        // side must not, unless they ask for listeners of their own.
        netflow_none = if extra.contains("[[netflow]]") {
            ""
        } else {
            "netflow = []"
        },
    )
}

pub struct Collector {
    pub proc: Proc,
    pub port: u16,
    pub config: PathBuf,
}

impl Collector {
    /// Starts `vigil collector` (port 0 = any free port; a restart passes the old port).
    pub fn start(dir: &Path, port: u16) -> Collector {
        Self::start_with_commit_interval(dir, port, "500ms")
    }

    pub fn start_with_commit_interval(dir: &Path, port: u16, commit_interval: &str) -> Collector {
        Self::start_with(dir, port, commit_interval, "")
    }

    /// Starts with `extra` (more TOML tables) at the end of the configuration.
    pub fn start_with(dir: &Path, port: u16, commit_interval: &str, extra: &str) -> Collector {
        let config = dir.join("collector.toml");
        std::fs::write(
            &config,
            collector_config(dir, port, commit_interval) + extra,
        )
        .expect("config");
        let ports = dir.join("collector.ports.json");
        let _ = std::fs::remove_file(&ports);
        let mut cmd = Command::new(bin("vigil"));
        cmd.arg("collector")
            .arg("--config")
            .arg(&config)
            .arg("--ports-file")
            .arg(&ports);
        let proc = Proc::spawn("collector", cmd, &dir.join("collector.log"));
        let addrs = read_ports(&ports, &proc);
        let addr: SocketAddr = addrs["http"]
            .as_str()
            .expect("http addr")
            .parse()
            .expect("addr");
        Collector {
            proc,
            port: addr.port(),
            config,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

pub struct Agent {
    pub proc: Proc,
    /// Everything the agent bound, as in its ports file.
    pub ports: Value,
    pub syslog_tcp: SocketAddr,
    pub syslog_udp: Option<SocketAddr>,
    pub netflow: Option<SocketAddr>,
    pub http: SocketAddr,
}

impl Agent {
    pub fn start(dir: &Path, collector_port: u16, spool_extra: &str, extra: &str) -> Agent {
        Self::start_as(
            dir,
            collector_port,
            (AGENT_ID, AGENT_TOKEN),
            spool_extra,
            extra,
        )
    }

    /// Starts the agent `(id, token)`; `dir` holds its config, spool and log.
    pub fn start_as(
        dir: &Path,
        collector_port: u16,
        id: (&str, &str),
        spool_extra: &str,
        extra: &str,
    ) -> Agent {
        std::fs::create_dir_all(dir).expect("agent dir");
        let config = dir.join("agent.toml");
        std::fs::write(
            &config,
            agent_config_as(dir, collector_port, id, spool_extra, extra),
        )
        .expect("config");
        let ports = dir.join("agent.ports.json");
        let _ = std::fs::remove_file(&ports);
        let mut cmd = Command::new(bin("vigil-agent"));
        cmd.arg("--config")
            .arg(&config)
            .arg("--ports-file")
            .arg(&ports);
        let proc = Proc::spawn("agent", cmd, &dir.join("agent.log"));
        let a = read_ports(&ports, &proc);
        let addr = |v: &Value| -> SocketAddr { v.as_str().expect("addr").parse().expect("addr") };
        Agent {
            syslog_tcp: addr(&a["syslog_tcp"][0]),
            syslog_udp: a["syslog_udp"][0].as_str().and_then(|s| s.parse().ok()),
            netflow: a["netflow"][0].as_str().and_then(|s| s.parse().ok()),
            http: addr(&a["http"]),
            ports: a.clone(),
            proc,
        }
    }

    /// One metric's value from the agent's `/metrics` (summed over labels).
    pub fn metric(&self, name: &str) -> f64 {
        metric(&format!("http://{}", self.http), name)
    }
}

/// Sums every sample of `name` in a `/metrics` page (0 when absent or unreachable).
pub fn metric(base: &str, name: &str) -> f64 {
    let Ok(resp) = reqwest::blocking::get(format!("{base}/metrics")) else {
        return 0.0;
    };
    let text = resp.text().unwrap_or_default();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// An RFC 5424 line without a timestamp (the agent stamps it on receipt, with sub-second
/// precision) whose message is `{prefix}-{i}`.
pub fn line(prefix: &str, i: u64) -> String {
    format!("<13>1 - testhost app - - - {prefix}-{i}\n")
}

/// Sends `{prefix}-{i}` for every i in `range` over one TCP connection (newline framing).
pub fn send_tcp(addr: SocketAddr, prefix: &str, range: std::ops::Range<u64>) {
    let stream = TcpStream::connect(addr).expect("connect to syslog");
    let mut w = BufWriter::with_capacity(64 * 1024, stream);
    for i in range {
        w.write_all(line(prefix, i).as_bytes()).expect("send");
    }
    w.flush().expect("flush");
}

/// The search API's answer.
pub fn search(base: &str, q: &str, limit: usize, offset: usize) -> Option<Value> {
    let resp = reqwest::blocking::Client::new()
        .get(format!("{base}/api/v1/search"))
        .query(&[
            ("q", q),
            ("limit", &limit.to_string()),
            ("offset", &offset.to_string()),
        ])
        .send()
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    resp.json().ok()
}

pub fn total(base: &str, q: &str) -> Option<u64> {
    search(base, q, 0, 0)?.get("total")?.as_u64()
}

/// Every message in the index, by paging through all events (newest first).
pub fn all_messages(base: &str) -> Vec<String> {
    let mut out = Vec::new();
    let page = 10_000;
    loop {
        let r = search(base, "*", page, out.len()).expect("search answers");
        let hits = r["hits"].as_array().expect("hits").clone();
        let n = hits.len();
        out.extend(
            hits.iter()
                .map(|h| h["message"].as_str().unwrap_or_default().to_owned()),
        );
        if n < page {
            return out;
        }
    }
}

/// Asserts that the messages are exactly `{prefix}-{i}` for i in 0..n, each once.
pub fn assert_exactly_once(messages: &[String], prefix: &str, n: u64) {
    let mut seen = vec![0u32; n as usize];
    let mut foreign = 0;
    for m in messages {
        match m
            .strip_prefix(prefix)
            .and_then(|r| r.strip_prefix('-'))
            .and_then(|i| i.parse::<usize>().ok())
        {
            Some(i) if i < seen.len() => seen[i] += 1,
            _ => foreign += 1,
        }
    }
    let missing: Vec<usize> = seen
        .iter()
        .enumerate()
        .filter(|(_, c)| **c == 0)
        .map(|(i, _)| i)
        .collect();
    let doubled: Vec<usize> = seen
        .iter()
        .enumerate()
        .filter(|(_, c)| **c > 1)
        .map(|(i, _)| i)
        .collect();
    assert!(
        missing.is_empty() && doubled.is_empty() && foreign == 0,
        "{} events missing (first {:?}), {} more than once (first {:?}), {} unexpected",
        missing.len(),
        &missing[..missing.len().min(10)],
        doubled.len(),
        &doubled[..doubled.len().min(10)],
        foreign
    );
}

/// Network namespaces and veth pairs a test creates, deleted (by name) when dropped.
pub struct Netns {
    pub namespaces: Vec<String>,
    pub links: Vec<String>,
}

/// Runs `ip ARGS`, failing the test with what `ip` said.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// Whether this machine lets a test make namespaces (root, `ip` present); the reason if not.
    pub fn unavailable() -> Option<String> {
        let uid = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
            })
            .unwrap_or_default();
        if uid != "0" {
            return Some("not root".into());
        }
        match Command::new("ip").arg("-V").output() {
            Ok(o) if o.status.success() => None,
            _ => Some("`ip` (iproute2) is missing".into()),
        }
    }

    /// A veth pair: `host_if` stays in this namespace with `host_addr`, its peer goes into a
    /// new namespace `ns` with `ns_addr` (both `/24`). IPv6 is off on both ends, so only the
    /// test's own traffic crosses the link.
    pub fn pair(tag: &str, host_addr: &str, ns_addr: &str) -> (Netns, String, String) {
        let id = std::process::id() % 100_000;
        let ns = format!("vg{tag}{id}");
        let host_if = format!("vh{tag}{id}");
        let ns_if = format!("vn{tag}{id}");
        let n = Netns {
            namespaces: vec![ns.clone()],
            links: vec![host_if.clone()],
        };
        ip(&["netns", "add", &ns]);
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ]);
        ip(&["link", "set", &ns_if, "netns", &ns]);
        for (netns, dev) in [(None, &host_if), (Some(&ns), &ns_if)] {
            let sysctl = format!("net.ipv6.conf.{dev}.disable_ipv6=1");
            let mut cmd = match netns {
                Some(ns) => {
                    let mut c = Command::new("ip");
                    c.args(["netns", "exec", ns, "sysctl", "-qw", &sysctl]);
                    c
                }
                None => {
                    let mut c = Command::new("sysctl");
                    c.args(["-qw", &sysctl]);
                    c
                }
            };
            let _ = cmd.status();
        }
        ip(&["addr", "add", &format!("{host_addr}/24"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{ns_addr}/24"),
            "dev",
            &ns_if,
        ]);
        ip(&["-n", &ns, "link", "set", &ns_if, "up"]);
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        (n, ns, host_if)
    }

    /// A command run inside namespace `ns`.
    pub fn exec(ns: &str, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, program]);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for l in &self.links {
            let _ = Command::new("ip").args(["link", "del", l]).output();
        }
        for n in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", n]).output();
        }
    }
}

/// Bytes and packets per connection, both directions together: the key is
/// (protocol, lower endpoint, higher endpoint), ports 0 for protocols without ports.
pub type FlowTotals = std::collections::BTreeMap<(u8, String, u16, String, u16), (u64, u64)>;

pub fn flow_key(proto: u8, a: (String, u16), b: (String, u16)) -> (u8, String, u16, String, u16) {
    let (a, b) = if proto == 6 || proto == 17 {
        (a, b)
    } else {
        ((a.0, 0), (b.0, 0))
    };
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    (proto, lo.0, lo.1, hi.0, hi.1)
}

/// What a pcap file holds, per connection (IP lengths, as NetFlow counts them).
pub fn pcap_totals(path: &Path) -> FlowTotals {
    use vigil_agent::flow::{packet, pcap};
    let (link, frames) = pcap::read(path).expect("read pcap");
    let mut out = FlowTotals::new();
    for f in frames {
        let Ok(p) = packet::decode(link, &f.data) else {
            continue;
        };
        let k = flow_key(
            p.proto,
            (p.src.to_string(), p.sport),
            (p.dst.to_string(), p.dport),
        );
        let e = out.entry(k).or_default();
        e.0 += p.ip_bytes;
        e.1 += 1;
    }
    out
}

/// The same, from the flow events a search returns.
pub fn event_totals(events: &[Value]) -> FlowTotals {
    let mut out = FlowTotals::new();
    for ev in events {
        let s = |f: &str| ev[f].as_str().unwrap_or_default().to_owned();
        let n = |f: &str| ev[f].as_u64().unwrap_or(0);
        let proto: u8 = s("network.iana_number").parse().unwrap_or(0);
        let k = flow_key(
            proto,
            (s("source.ip"), n("source.port") as u16),
            (s("destination.ip"), n("destination.port") as u16),
        );
        let e = out.entry(k).or_default();
        e.0 += n("network.bytes");
        e.1 += n("network.packets");
    }
    out
}
