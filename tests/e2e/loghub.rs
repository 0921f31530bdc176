//! All 16 loghub samples (`../shared/corpus/syslog/loghub`, real logs of 16 systems, most of
//! them not syslog-formatted at all) sent over TCP and over UDP: every line arrives, once.
//! Each sample goes to its own listener whose `customer` is the sample's name, so the counts
//! per sample are exact.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::time::Duration;

use vigil_e2e::{Agent, Collector, skip, total, wait_for};

/// The lines themselves; the alerts the detection stage raises on them are counted apart.
const SYSLOG: &str = "event.kind:syslog";

#[test]
fn every_loghub_line_arrives_over_tcp_and_udp() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/syslog/loghub");
    if !root.exists() {
        skip("../shared/corpus is not beside the workspace");
        return;
    }
    let mut samples: Vec<(String, Vec<String>)> = std::fs::read_dir(&root)
        .expect("loghub")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let text = std::fs::read(e.path().join(format!("{name}_2k.log"))).expect("sample");
            let lines = String::from_utf8_lossy(&text)
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(str::to_owned)
                .collect();
            (name, lines)
        })
        .collect();
    samples.sort();
    assert_eq!(samples.len(), 16);

    let dir = tempfile::tempdir().expect("tempdir");
    let started = chrono::Utc::now();
    let c = Collector::start(dir.path(), 0);
    let extra: String = samples
        .iter()
        .map(|(name, _)| format!("\n[[syslog]]\nlisten = \"127.0.0.1:0\"\ncustomer = \"{name}\"\n"))
        .collect();
    let a = Agent::start(dir.path(), c.port, "", &extra);
    let addrs = |proto: &str| -> Vec<SocketAddr> {
        a.ports[proto]
            .as_array()
            .expect("addrs")
            .iter()
            .map(|v| v.as_str().expect("addr").parse().expect("addr"))
            .collect()
    };
    // The harness's own listener comes first; then one per sample, in config order.
    let (tcp, udp) = (addrs("syslog_tcp"), addrs("syslog_udp"));
    assert_eq!((tcp.len(), udp.len()), (17, 17));

    let sock = UdpSocket::bind("127.0.0.1:0").expect("udp");
    let mut expected = 0;
    // TCP first (it pushes back by itself), then UDP.
    for (i, (_, lines)) in samples.iter().enumerate() {
        let mut s = TcpStream::connect(tcp[i + 1]).expect("tcp");
        s.write_all(lines.join("\n").as_bytes()).expect("send");
        expected += lines.len() as u64;
    }
    let tcp_lines = expected as f64;
    wait_for(
        Duration::from_secs(120),
        "the TCP lines",
        || a.proc.log_tail(),
        || (a.metric("vigil_agent_events_received_total") >= tcp_lines).then_some(()),
    );
    let mut sent_udp = 0.0;
    for (i, (_, lines)) in samples.iter().enumerate() {
        // UDP cannot push back, so the sender paces itself on what the agent has read and
        // spooled: a burst past the socket buffer or the agent's channel is a counted (or, in
        // the kernel, uncounted) drop, which this test is not about.
        for chunk in lines.chunks(100) {
            for line in chunk {
                sock.send_to(line.as_bytes(), udp[i + 1]).expect("datagram");
            }
            sent_udp += chunk.len() as f64;
            wait_for(
                Duration::from_secs(60),
                "the agent to read the datagrams",
                || a.proc.log_tail(),
                || {
                    let read = a.metric("vigil_agent_events_received_total") - tcp_lines;
                    let spooled = a.metric("vigil_agent_events_spooled_total");
                    (read >= sent_udp && spooled + 4000.0 >= tcp_lines + sent_udp).then_some(())
                },
            );
        }
        expected += lines.len() as u64;
    }
    let url = c.url();
    let status = || {
        let per: Vec<String> = samples
            .iter()
            .map(|(n, _)| {
                format!(
                    "{n}={:?}",
                    total(&url, &format!("event.kind:syslog AND customer:{n}"))
                )
            })
            .collect();
        format!(
            "indexed {:?} of {expected}; agent received {}, dropped {}, acked {}; {}\n{}",
            total(&url, SYSLOG),
            a.metric("vigil_agent_events_received_total"),
            a.metric("vigil_agent_events_dropped_total"),
            a.metric("vigil_agent_events_acked_total"),
            per.join(" "),
            a.proc.log_tail()
        )
    };
    wait_for(Duration::from_secs(60), "every loghub line", status, || {
        (total(&url, SYSLOG)? >= expected).then_some(())
    });
    assert_eq!(a.metric("vigil_agent_events_dropped_total"), 0.0);
    assert_eq!(total(&url, SYSLOG), Some(expected));
    for (name, lines) in &samples {
        assert_eq!(
            total(&url, &format!("event.kind:syslog AND customer:{name}")),
            Some(2 * lines.len() as u64),
            "{name}"
        );
    }
    // Every sample's lines carry their own time (syslog or the application's format), and
    // all of it is older than this test: an event stamped on receipt would be newer.
    let before_start = started.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for (name, lines) in &samples {
        let r = reqwest::blocking::Client::new()
            .get(format!("{url}/api/v1/search"))
            .query(&[
                ("q", format!("event.kind:syslog AND customer:{name}")),
                ("to", before_start.clone()),
                ("limit", "0".into()),
            ])
            .send()
            .and_then(|r| r.json::<serde_json::Value>())
            .expect("search");
        assert_eq!(
            r["total"].as_u64(),
            Some(2 * lines.len() as u64),
            "{name}: events stamped with the line's own time"
        );
    }
    println!(
        "loghub: {expected} events, all with the time of their line; {} kept whole as not \
         syslog (tag _syslogparsefailure); {} alerts raised on them",
        total(&url, "tags:_syslogparsefailure").unwrap_or(0),
        total(&url, "event.kind:alert").unwrap_or(0)
    );
}
