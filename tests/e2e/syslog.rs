//! The agent's syslog listeners against hostile input, customer attribution, and a real
//! rsyslog forwarding to it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use vigil_e2e::{Agent, Collector, Proc, free_port, send_tcp, skip, total, wait_for};

#[test]
fn hostile_tcp_input_is_bounded_and_the_agent_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    // No collector: everything stays in the spool, which is what we count.
    let a = Agent::start(
        dir.path(),
        free_port(),
        "",
        "idle_timeout = \"1s\"\n\
         [[syslog]]\nlisten = \"127.0.0.1:0\"\nprotocols = [\"tcp\"]\n\
         idle_timeout = \"1h\"\nmax_connections = 200\n",
    );
    let received = |a: &Agent| a.metric("vigil_agent_events_received_total");

    // Random bytes: whatever they make is kept as (flagged) messages; no crash.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let noise: Vec<u8> = (0..1 << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    TcpStream::connect(a.syslog_tcp)
        .and_then(|mut s| s.write_all(&noise))
        .expect("noise");
    wait_for(
        Duration::from_secs(30),
        "the noise to be read",
        || a.proc.log_tail(),
        || (a.metric("vigil_agent_syslog_malformed_total") > 0.0).then_some(()),
    );

    // A 10 MB line is cut at 64 KiB and flagged; the line after it is intact.
    let mut s = TcpStream::connect(a.syslog_tcp).expect("connect");
    s.write_all(b"<13>1 - bighost app - - - ").expect("head");
    s.write_all(&vec![b'A'; 10 << 20]).expect("10 MB");
    s.write_all(b"\n<13>1 - bighost app - - - after the big one\n")
        .expect("tail");
    drop(s);
    wait_for(
        Duration::from_secs(30),
        "the big line, cut",
        || a.proc.log_tail(),
        || (a.metric("vigil_agent_syslog_truncated_total") == 1.0).then_some(()),
    );

    // Half a frame, then silence: closed after the idle timeout, the half kept (flagged).
    let mut half = TcpStream::connect(a.syslog_tcp).expect("connect");
    half.write_all(b"<13>1 - slowhost app - - - half a mess")
        .expect("half");
    half.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut byte = [0u8; 1];
    assert_eq!(
        half.read(&mut byte).expect("agent closes"),
        0,
        "the agent must close it"
    );
    assert!(a.metric("vigil_agent_connections_timed_out_total") >= 1.0);
    wait_for(
        Duration::from_secs(10),
        "the half message, flagged",
        || a.proc.log_tail(),
        || (a.metric("vigil_agent_syslog_truncated_total") == 2.0).then_some(()),
    );
    assert!(received(&a) > 2.0);

    // 5,000 idle connections against a limit of 200, on a second listener whose idle timeout
    // outlasts the test, so the counts do not depend on how fast this machine is. They are
    // opened in chunks smaller than the kernel's accept backlog (a burst past it leaves
    // half-open connections the agent never sees). 200 are held, every other one is refused
    // at once and counted.
    let held = ports_at(&a, 1);
    let mut idle: Vec<TcpStream> = Vec::new();
    for _ in 0..10 {
        idle.extend((0..500).filter_map(|_| TcpStream::connect(held).ok()));
        let n = idle.len() as f64;
        wait_for(
            Duration::from_secs(60),
            "idle connections to be refused or held",
            || {
                format!(
                    "{n} connections; refused {}, open {}\n{}",
                    a.metric("vigil_agent_connections_refused_total"),
                    a.metric("vigil_agent_connections_open"),
                    a.proc.log_tail()
                )
            },
            || (a.metric("vigil_agent_connections_refused_total") + 200.0 == n).then_some(()),
        );
    }
    assert_eq!(idle.len(), 5000, "every connect must complete");
    assert_eq!(a.metric("vigil_agent_connections_open"), 200.0);
    assert_eq!(a.metric("vigil_agent_connections_refused_total"), 4800.0);
    // Still serving: while one listener is full, a clean sender on the other gets all its
    // events in; once the idle connections go, the full one takes a clean sender too.
    let spooled = || a.metric("vigil_agent_events_spooled_total");
    let before = spooled();
    send_tcp(a.syslog_tcp, "clean", 0..10);
    wait_for(
        Duration::from_secs(30),
        "a clean sender beside the full listener",
        || a.proc.log_tail(),
        || (spooled() == before + 10.0).then_some(()),
    );
    drop(idle);
    wait_for(
        Duration::from_secs(30),
        "the held connections to close",
        || a.proc.log_tail(),
        || (a.metric("vigil_agent_connections_open") == 0.0).then_some(()),
    );
    send_tcp(held, "clean", 10..20);
    wait_for(
        Duration::from_secs(30),
        "a clean sender on the listener that was full",
        || a.proc.log_tail(),
        || (spooled() == before + 20.0).then_some(()),
    );
    let healthz = reqwest::blocking::get(format!("http://{}/healthz", a.http)).expect("healthz");
    assert!(healthz.status().is_success());
}

/// A UDP burst far past a tiny receive buffer: the kernel drops datagrams, and the agent
/// counts every one of them from the socket's drop counter, so read + overrun = sent.
#[test]
fn udp_overruns_are_counted_so_every_datagram_is_accounted_for() {
    const SENT: u64 = 50_000;
    let dir = tempfile::tempdir().expect("tempdir");
    // The smallest buffer the kernel grants (about 4 KiB: a handful of datagrams).
    let a = Agent::start(
        dir.path(),
        free_port(),
        "",
        "udp_receive_buffer_bytes = 1\n",
    );
    let target = a.syslog_udp.expect("udp listener");
    let senders: Vec<_> = (0..2)
        .map(|t| {
            std::thread::spawn(move || {
                let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
                let pad = "x".repeat(150);
                for i in 0..SENT / 2 {
                    let line = format!("<13>1 - udphost app - - - burst-{t}-{i} {pad}");
                    sock.send_to(line.as_bytes(), target).expect("send");
                }
            })
        })
        .collect();
    for s in senders {
        s.join().expect("sender");
    }
    let read = || {
        metric_where(
            &a,
            "vigil_agent_events_received_total",
            "listener=\"syslog-udp-",
        )
    };
    let overrun = || {
        metric_where(
            &a,
            "vigil_agent_events_dropped_total",
            "reason=\"receive_buffer\"",
        )
    };
    wait_for(
        Duration::from_secs(30),
        "every datagram read or counted as an overrun",
        || {
            format!(
                "read {}, overrun {}\n{}",
                read(),
                overrun(),
                a.proc.log_tail()
            )
        },
        || (read() + overrun() == SENT as f64).then_some(()),
    );
    println!(
        "udp burst: {SENT} sent, {} read, {} counted as receive-buffer overruns",
        read(),
        overrun()
    );
    assert!(
        overrun() > 0.0,
        "a 4 KiB buffer must overflow under this burst"
    );
    assert!(read() > 0.0);
}

#[test]
fn customer_comes_from_the_listener_then_the_sender_prefix_then_the_agent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = Collector::start(dir.path(), 0);
    let extra = r#"
[[syslog]]
listen = "127.0.0.1:0"
protocols = ["tcp"]
customer = "dedicated-port-customer"

[[syslog]]
listen = "[::1]:0"
protocols = ["tcp"]

[[customers]]
name = "loopback-v4-customer"
prefixes = ["127.0.0.0/8"]
"#;
    let a = Agent::start(
        dir.path(),
        c.port,
        "",
        &format!("protocols = [\"tcp\"]\n{extra}"),
    );
    let tcp: Vec<SocketAddr> = a.ports["syslog_tcp"]
        .as_array()
        .expect("listeners")
        .iter()
        .map(|v| v.as_str().expect("addr").parse().expect("addr"))
        .collect();
    assert_eq!(tcp.len(), 3);
    send_tcp(tcp[0], "by-prefix", 0..1);
    send_tcp(tcp[1], "by-listener", 0..1);
    send_tcp(tcp[2], "by-agent", 0..1);
    let url = c.url();
    for (q, want) in [
        ("\"by-prefix-0\"", "loopback-v4-customer"),
        ("\"by-listener-0\"", "dedicated-port-customer"),
        ("\"by-agent-0\"", "test-customer"),
    ] {
        let hit = wait_for(
            Duration::from_secs(30),
            q,
            || a.proc.log_tail(),
            || {
                let r = vigil_e2e::search(&url, q, 1, 0)?;
                r["hits"].as_array()?.first().cloned()
            },
        );
        assert_eq!(hit["customer"], want, "{q}: {hit}");
    }
    // And the customer is a searchable keyword.
    assert_eq!(total(&url, "customer:loopback-v4-customer"), Some(1));
}

/// A device that logs RFC 3164 in Brussels time (`logger` under `TZ=Europe/Brussels`,
/// one or two hours ahead of UTC, with no year and no zone in the line) belongs to a
/// customer whose `timezone` says so: its line is dated when it was sent, and a search of
/// the last hour finds it at once.
#[test]
fn rfc3164_lines_carry_neither_year_nor_zone_and_are_found_by_since_1h() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = Collector::start(dir.path(), 0);
    let extra = r#"
[[customers]]
name = "brussels-customer"
prefixes = ["127.0.0.0/8"]
timezone = "Europe/Brussels"
"#;
    let a = Agent::start(
        dir.path(),
        c.port,
        "",
        &format!("protocols = [\"tcp\"]\n{extra}"),
    );
    let tcp = ports_at(&a, 0);
    let sent = chrono::Utc::now();
    let ok = std::process::Command::new("logger")
        .env("TZ", "Europe/Brussels")
        .args(["--rfc3164", "--tcp", "-n", "127.0.0.1", "-P"])
        .arg(tcp.port().to_string())
        .args(["-t", "fw1", "local time without a zone"])
        .status()
        .expect("logger runs");
    assert!(ok.success());
    let url = c.url();
    let from = (sent - chrono::Duration::hours(1)).to_rfc3339();
    let hit = wait_for(
        Duration::from_secs(30),
        "the line in the last hour",
        || a.proc.log_tail(),
        || {
            let r: serde_json::Value = reqwest::blocking::Client::new()
                .get(format!("{url}/api/v1/search"))
                .query(&[("q", "\"local time without a zone\""), ("from", &from)])
                .send()
                .ok()?
                .json()
                .ok()?;
            r["hits"].as_array()?.first().cloned()
        },
    );
    assert_eq!(hit["customer"], "brussels-customer", "{hit}");
    let at = chrono::DateTime::parse_from_rfc3339(hit["@timestamp"].as_str().expect("time"))
        .expect("rfc 3339");
    // RFC 3164 has whole seconds.
    let off = (at.timestamp() - sent.timestamp()).abs();
    assert!(off <= 2, "dated {at}, sent {sent}: {hit}");
}

#[test]
fn rsyslog_forwards_to_the_agent_over_octet_counted_tcp() {
    rsyslog_forwards(None);
}

/// RFC 5425: rsyslog's gtls driver, checking the agent's certificate by name against the CA
/// it was given (the self-signed certificate itself).
#[test]
fn rsyslog_forwards_to_the_agent_over_tls() {
    if !std::path::Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so").exists() {
        skip("rsyslog-gnutls is not installed (.ci/run installs it)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (.ci/run installs it)");
    assert!(made.status.success(), "{made:?}");
    rsyslog_forwards(Some((&cert, &key)));
}

/// rsyslog (started here with its own config and work dir) reads 100 lines on an imptcp
/// input and forwards them with omfwd, octet-counted, over TCP or, with a certificate and
/// key for the agent, over TLS; they arrive with the right host, program and message.
fn rsyslog_forwards(tls: Option<(&std::path::Path, &std::path::Path)>) {
    let Ok(rsyslogd) = which("rsyslogd") else {
        skip("rsyslogd is not installed (.ci/run installs it)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let c = Collector::start(dir.path(), 0);
    let extra = match tls {
        None => String::new(),
        Some((cert, key)) => format!(
            "[[syslog]]\nlisten = \"127.0.0.1:0\"\nprotocols = [\"tls\"]\n\
             [syslog.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            cert.display(),
            key.display()
        ),
    };
    let a = Agent::start(dir.path(), c.port, "", &extra);
    let work = dir.path().join("rsyslog");
    std::fs::create_dir_all(&work).expect("workdir");
    let input = free_port();
    let (global, driver, port) = match tls {
        None => (String::new(), "", a.syslog_tcp.port()),
        Some((cert, _)) => {
            let tls_addr: SocketAddr = a.ports["syslog_tls"][0]
                .as_str()
                .and_then(|s| s.parse().ok())
                .expect("the TLS listener");
            (
                format!(" DefaultNetstreamDriverCAFile=\"{}\"", cert.display()),
                r#" StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="localhost""#,
                tls_addr.port(),
            )
        }
    };
    let conf = work.join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{w}"{global})
module(load="imptcp")
input(type="imptcp" port="{input}" address="127.0.0.1")
action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp" TCP_Framing="octet-counted"{driver})
"#,
            w = work.display(),
        ),
    )
    .expect("conf");
    let mut cmd = Command::new(rsyslogd);
    cmd.arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-i")
        .arg(work.join("pid"));
    let rs = Proc::spawn("rsyslogd", cmd, &work.join("rsyslog.log"));
    let mut s = wait_for(
        Duration::from_secs(30),
        "rsyslog's input",
        || rs.log_tail(),
        || TcpStream::connect(("127.0.0.1", input)).ok(),
    );
    for i in 0..100 {
        writeln!(s, "<38>Nov 22 10:00:00 router-{i} sshd[4{i}]: Failed password for root from 10.0.0.{i} port 22 ssh2")
            .expect("send to rsyslog");
    }
    drop(s);
    let url = c.url();
    wait_for(
        Duration::from_secs(60),
        "100 forwarded events",
        || format!("{}\n{}", rs.log_tail(), a.proc.log_tail()),
        || (total(&url, "\"Failed password for root\"")? == 100).then_some(()),
    );
    let r = vigil_e2e::search(&url, "host.name:router-7", 10, 0).expect("search");
    assert_eq!(r["total"], 1, "{r}");
    let ev = &r["hits"][0];
    assert_eq!(ev["process.name"], "sshd");
    assert_eq!(ev["process.pid"], 47);
    assert_eq!(ev["log.syslog.facility.code"], 4);
    assert_eq!(ev["log.syslog.severity.code"], 6);
    assert_eq!(
        ev["message"],
        "Failed password for root from 10.0.0.7 port 22 ssh2"
    );
    if tls.is_some() {
        // They came over TLS: nothing reached the plain TCP listener, no handshake failed.
        assert_eq!(a.metric("vigil_agent_tls_handshakes_failed_total"), 0.0);
        assert_eq!(
            metric_where(
                &a,
                "vigil_agent_events_received_total",
                "listener=\"syslog-tls-"
            ),
            100.0
        );
    }
}

/// A metric's value summed over the series whose labels contain `label` (such as
/// `listener="syslog-udp-` or `reason="receive_buffer"`).
fn metric_where(a: &Agent, name: &str, label: &str) -> f64 {
    let text = reqwest::blocking::get(format!("http://{}/metrics", a.http))
        .and_then(|r| r.text())
        .unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn which(name: &str) -> Result<std::path::PathBuf, ()> {
    for dir in ["/usr/sbin", "/usr/bin", "/sbin", "/bin"] {
        let p = std::path::Path::new(dir).join(name);
        if p.exists() {
            return Ok(p);
        }
    }
    Err(())
}

/// The address of the agent's `i`-th TCP syslog listener.
fn ports_at(a: &Agent, i: usize) -> SocketAddr {
    a.ports["syslog_tcp"][i]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("a second TCP listener")
}
