//! Notification latency and outbox throughput, with real parts: syslog lines into a real
//! agent, a real collector whose rule makes each line a danger incident of its own host, and
//! a local HTTP server standing in for the voice gateway and a webhook receiver.
//!
//! 1. Latency: one line at a time, the time from the line leaving the sender to the voice
//!    request reaching the gateway (agent batching, ingest, detection, the incident and its
//!    outbox rows committed, the dispatcher's call): p50, p99, max.
//! 2. Drain: `--burst` lines at once; deliveries (voice and webhook) per second from the
//!    first line to the last request received, each durable in the outbox first.
//! 3. Storm: a core router fails and `--storm` customers' lines arrive within a second, each
//!    from an address of its own customer (UDP from 127.0.1.x, the collector's customers'
//!    prefixes, which the agent fetched): a danger incident per customer, on-call called, each customer's NOC
//!    e-mailed after the call (a real SMTP server). Time from the first line to the first
//!    voice request, and to the last customer's e-mail.
//!
//! 4. Outage (`--outage SECONDS`, 0: not run): the SMTP server is away for that long while
//!    `--outage-rate` incidents a second open (e-mail only, the default retries and
//!    breaker); then a real SMTP server starts on its port. Time from its start to the last
//!    queued e-mail delivered, and how many were given up (none should be).
//!
//! `cargo run --release -p vigil-e2e --bin bench-notify -- --latency 100 --burst 2000 --storm 200`
//! `cargo run --release -p vigil-e2e --bin bench-notify -- --latency 0 --burst 0 --storm 0 --outage 600`

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime};

use vigil_e2e::sink::Sink;
use vigil_e2e::{Agent, Collector, arg, wait_for};

const RULE: &str = "title: bench danger line
id: 7a1d2c3e-0000-4000-8000-0000000000b1
logsource: { product: linux, service: syslog }
detection:
  selection:
    message|contains: BENCH-DANGER
  condition: selection
level: high
tags: [vigil.danger]
";

fn main() {
    if std::env::args().any(|a| a == "--help" || a == "-h") {
        println!(
            "bench-notify [--latency N (100)] [--burst N (2000)] [--storm N (200)] [--outage SECONDS (0)] [--outage-rate N (5)]"
        );
        return;
    }
    let outage_secs = arg("--outage", 0);
    let outage_rate = arg("--outage-rate", 5);
    let rounds = arg("--latency", 100);
    let burst = arg("--burst", 2000);
    let storm_size = arg("--storm", 200);
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).expect("rules");
    std::fs::write(rules.join("bench.yml"), RULE).expect("rule");
    let gw = Sink::start();
    let hook = Sink::start();
    let extra = format!(
        r#"
[detect]
builtin_rules = false
rules = ["{rules}"]
[notify.voice]
url = "{voice}"
body = '{{{{ incident.group_key }}}}'
[[notify.receivers]]
name = "oncall"
voice = ["+32470000001"]
webhook = ["{hook}"]
[notify.route]
receiver = "oncall"
"#,
        rules = rules.display(),
        voice = gw.url("/voice"),
        hook = hook.url("/hook"),
    );
    let c = Collector::start_with(dir.path(), 0, "1s", &extra);
    let a = Agent::start(&dir.path().join("agent"), c.port, "", "");
    let mut tcp = TcpStream::connect(a.syslog_tcp).expect("connect");
    let line = |host: &str| format!("<13>1 - {host} app - - - BENCH-DANGER on {host}\n");
    println!("bench-notify: commit interval 1s, agent batch max_wait 200ms, SQLite, fsync on");

    let mut lat = Vec::new();
    for i in 0..rounds {
        let host = format!("lat{i}");
        let sent = SystemTime::now();
        tcp.write_all(line(&host).as_bytes()).expect("send");
        let want = format!("host.name={host}");
        let at = wait_for(
            Duration::from_secs(30),
            "the call",
            || c.proc.log_tail(),
            || {
                gw.received()
                    .into_iter()
                    .find(|r| r.body == want)
                    .map(|r| r.at)
            },
        );
        lat.push(at.duration_since(sent).unwrap_or_default());
    }
    lat.sort();
    if !lat.is_empty() {
        let q = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
        println!(
            "latency, syslog line to voice request ({rounds} incidents, one at a time): p50 {:?}, p99 {:?}, max {:?}",
            q(0.50),
            q(0.99),
            lat[lat.len() - 1]
        );
    }

    if burst > 0 {
        drain(&c, &gw, &hook, &mut tcp, burst);
    }
    drop((a, c));
    if storm_size > 0 {
        storm(storm_size as usize);
    }
    if outage_secs > 0 {
        outage(outage_secs, outage_rate);
    }
}

/// `burst` lines at once; deliveries per second until the last (see the module's 2.).
fn drain(c: &Collector, gw: &Sink, hook: &Sink, tcp: &mut TcpStream, burst: u64) {
    let line = |host: &str| format!("<13>1 - {host} app - - - BENCH-DANGER on {host}\n");
    let (calls0, hooks0) = (gw.received().len(), hook.received().len());
    let start = Instant::now();
    let mut batch = String::new();
    for i in 0..burst {
        batch.push_str(&line(&format!("burst{i}")));
    }
    tcp.write_all(batch.as_bytes()).expect("send");
    let want = 2 * burst as usize;
    let done = wait_for(
        Duration::from_secs(600),
        "every delivery",
        || c.proc.log_tail(),
        || {
            let n = gw.received().len() - calls0 + hook.received().len() - hooks0;
            (n >= want).then(Instant::now)
        },
    );
    let secs = done.duration_since(start).as_secs_f64();
    println!(
        "drain: {burst} incidents, {want} deliveries (voice + webhook) in {secs:.2} s: {:.0} deliveries/s",
        want as f64 / secs
    );
}

/// E-mails queued during an SMTP outage of `secs` seconds, `rate` incidents a second (see
/// the module's 4.).
fn outage(secs: u64, rate: u64) {
    if let Some(why) = vigil_e2e::smtp::unavailable() {
        println!("outage: not run: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).expect("rules");
    std::fs::write(
        rules.join("quiet.yml"),
        RULE.replace("BENCH-DANGER", "BENCH-QUIET")
            .replace("tags: [vigil.danger]\n", "")
            .replace("level: high", "level: medium"),
    )
    .expect("rule");
    let port = vigil_e2e::free_port();
    let extra = format!(
        r#"
[detect]
builtin_rules = false
rules = ["{rules}"]
[notify.smtp]
host = "127.0.0.1"
port = {port}
security = "none"
from = "vigil@example.org"
[[notify.receivers]]
name = "desk"
email = ["desk@example.org"]
[notify.route]
receiver = "desk"
"#,
        rules = rules.display(),
    );
    let c = Collector::start_with(dir.path(), 0, "1s", &extra);
    let a = Agent::start(&dir.path().join("agent"), c.port, "", "");
    let mut tcp = TcpStream::connect(a.syslog_tcp).expect("connect");
    let total = secs * rate;
    let start = Instant::now();
    for i in 0..total {
        let at = Duration::from_millis(i * 1000 / rate);
        if let Some(wait) = at.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        let line = format!("<13>1 - out{i} app - - - BENCH-QUIET on out{i}\n");
        tcp.write_all(line.as_bytes()).expect("send");
    }
    if let Some(wait) = Duration::from_secs(secs).checked_sub(start.elapsed()) {
        std::thread::sleep(wait);
    }
    let mail = vigil_e2e::smtp::Smtp::start_on(dir.path(), port);
    let back = Instant::now();
    // Every incident's e-mail, and the e-mail channel's own incident's.
    let want = total as usize;
    let done = wait_for(
        Duration::from_secs(1800),
        "every queued e-mail",
        || format!("{} of {want} e-mails\n{}", mail.count(), c.proc.log_tail()),
        || (mail.count() >= want).then(Instant::now),
    );
    let given_up = reqwest::blocking::get(format!("{}/metrics", c.url()))
        .and_then(|r| r.text())
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            l.starts_with("vigil_notify_attempts_total") && l.contains("outcome=\"failed\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    println!(
        "outage: SMTP away {secs} s while {total} incidents opened ({rate}/s); back, every queued e-mail delivered after {:.1} s ({} e-mails, {} deliveries given up)",
        done.duration_since(back).as_secs_f64(),
        mail.count(),
        given_up as u64,
    );
}

/// A storm of `n` customers' danger incidents within a second (see the module's 3.).
fn storm(n: usize) {
    assert!(
        n <= 250,
        "--storm: at most 250 customers (127.0.1.1 to 127.0.1.250)"
    );
    if let Some(why) = vigil_e2e::smtp::unavailable() {
        println!("storm: not run: {why}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).expect("rules");
    std::fs::write(rules.join("bench.yml"), RULE).expect("rule");
    let mail = vigil_e2e::smtp::Smtp::start(dir.path());
    let gw = Sink::start();
    let mut collector_customers = String::new();
    for i in 1..=n {
        collector_customers.push_str(&format!(
            "[[customers]]\nid = \"inst-{i:03}\"\nprefixes = [\"127.0.1.{i}/32\"]\n[[customers.contacts]]\nrole = \"noc\"\nname = \"NOC {i}\"\nemail = \"noc{i}@inst.example\"\n"
        ));
    }
    let extra = format!(
        r#"
[detect]
builtin_rules = false
rules = ["{rules}"]
[notify]
confirm_after = "60s"
[notify.smtp]
host = "127.0.0.1"
port = {smtp}
security = "none"
from = "vigil@example.org"
[notify.voice]
url = "{voice}"
body = '{{{{ incident.customer }}}}'
[[notify.receivers]]
name = "storm"
voice = ["+32470000001"]
roles = ["noc"]
[notify.route]
receiver = "storm"
{collector_customers}"#,
        rules = rules.display(),
        smtp = mail.port,
        voice = gw.url("/voice"),
    );
    let c = Collector::start_with(dir.path(), 0, "1s", &extra);
    let a = Agent::start(&dir.path().join("agent"), c.port, "", "");
    // The agent attributes by the customers' prefixes once it has fetched them.
    let fetched = dir
        .path()
        .join("agent")
        .join("spool")
        .join("customers.json");
    wait_for(
        Duration::from_secs(30),
        "the agent to fetch the customers",
        || a.proc.log_tail(),
        || fetched.exists().then_some(()),
    );
    let udp = a.syslog_udp.expect("the agent's syslog UDP listener");
    let sockets: Vec<std::net::UdpSocket> = (1..=n)
        .map(|i| std::net::UdpSocket::bind(format!("127.0.1.{i}:0")).expect("bind 127.0.1.x"))
        .collect();
    let start = Instant::now();
    let spacing = Duration::from_secs(1) / n as u32;
    for (i, s) in sockets.iter().enumerate() {
        let line = format!("<13>1 - core-r1 app - - - BENCH-DANGER uplink {i} down\n");
        s.send_to(line.as_bytes(), udp).expect("send");
        std::thread::sleep(spacing);
    }
    let first_call = wait_for(
        Duration::from_secs(120),
        "the first call",
        || c.proc.log_tail(),
        || gw.received().first().map(|r| r.at),
    );
    let last_mail = wait_for(
        Duration::from_secs(600),
        "every customer's e-mail",
        || {
            format!(
                "{} of {n} e-mails\n{}",
                mail.mails().len(),
                c.proc.log_tail()
            )
        },
        || {
            let m = mail.mails();
            (m.len() >= n).then(|| m.iter().map(|m| m.arrived).max().expect("mails"))
        },
    );
    let started = SystemTime::now() - start.elapsed();
    let since = |t: SystemTime| t.duration_since(started).unwrap_or_default();
    println!(
        "storm: {n} customers' danger incidents sent over 1 s: first voice request after {:?}, last customer's e-mail after {:?} ({} calls)",
        since(first_call),
        since(last_mail),
        gw.received().len()
    );
}
