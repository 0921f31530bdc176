//! Flows end to end: a real exporter (softflowd) and the agent's own capture, in network
//! namespaces with real traffic; what the collector stores must add up to the packets.
//!
//! The expected totals come from a pcap of the same link recorded by tcpdump and read back by
//! `tcpdump -r` (not by the agent's own decoder): per connection (both directions), IP bytes
//! and packets.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use vigil_e2e::{
    Agent, Collector, FlowTotals, Netns, Proc, event_totals, have, search, skip, tcpdump_totals,
    total, wait_for,
};

/// Why this machine cannot run these tests, if it cannot.
fn missing(programs: &[&str]) -> Option<String> {
    if let Some(why) = Netns::unavailable() {
        return Some(why);
    }
    programs
        .iter()
        .find(|p| !have(p))
        .map(|p| format!("{p} is not installed"))
}

/// Traffic between this namespace (`host`) and a server in `ns` (`peer`): a TCP transfer
/// each way, UDP datagrams answered by the server, and pings.
fn traffic(ns: &str, peer: &str, dir: &Path) {
    let server = r#"
import socket, sys, threading
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("0.0.0.0", 8080)); t.listen(8)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 5353))
def tcp():
    while True:
        c, _ = t.accept()
        n = int(c.recv(16).decode().strip())
        c.sendall(b"x" * n)
        c.shutdown(socket.SHUT_WR)
        while c.recv(65536): pass
        c.close()
def udp():
    while True:
        d, a = u.recvfrom(2048)
        u.sendto(d[::-1], a)
threading.Thread(target=udp, daemon=True).start()
print("ready", flush=True)
tcp()
"#;
    let script = dir.join("server.py");
    std::fs::write(&script, server).expect("script");
    let mut cmd = Netns::exec(ns, "python3");
    cmd.arg(&script);
    let srv = Proc::spawn("server", cmd, &dir.join("server.log"));
    wait_for(
        Duration::from_secs(20),
        "the server to listen",
        || srv.log_tail(),
        || srv.log_tail().contains("ready").then_some(()),
    );
    for n in [200_000usize, 3_000, 1] {
        let mut s = std::net::TcpStream::connect((peer, 8080)).expect("connect");
        s.write_all(format!("{n:<16}").as_bytes()).expect("send");
        let mut got = Vec::new();
        s.read_to_end(&mut got).expect("read");
        assert_eq!(got.len(), n);
    }
    let u = std::net::UdpSocket::bind("0.0.0.0:0").expect("udp");
    u.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    for i in 0..5 {
        u.send_to(format!("datagram {i}").as_bytes(), (peer, 5353))
            .expect("send");
        let mut buf = [0u8; 64];
        u.recv_from(&mut buf).expect("answer");
    }
    let ok = Command::new("ping")
        .args(["-c", "3", "-i", "0.2", "-q", peer])
        .output()
        .expect("ping");
    assert!(ok.status.success(), "ping {peer}");
    drop(srv);
}

/// tcpdump on `iface` while `f` runs; the pcap's path.
fn recorded(iface: &str, dir: &Path, f: impl FnOnce()) -> std::path::PathBuf {
    let pcap = dir.join("link.pcap");
    let mut cmd = Command::new("tcpdump");
    // --immediate-mode: without it packets wait in tcpdump's ring until a block times out,
    // and a stop in between loses them. -B: a 16 MiB ring, so a busy machine does not make
    // tcpdump drop the frames it is there to record.
    cmd.args([
        "-i",
        iface,
        "--immediate-mode",
        "-B",
        "16384",
        "-U",
        "-n",
        "-s",
        "0",
        "-w",
    ])
    .arg(&pcap)
    .arg("ip");
    let mut td = Proc::spawn("tcpdump", cmd, &dir.join("tcpdump.log"));
    wait_for(
        Duration::from_secs(20),
        "tcpdump to listen",
        || td.log_tail(),
        || td.log_tail().contains("listening on").then_some(()),
    );
    f();
    std::thread::sleep(Duration::from_millis(300));
    assert!(td.terminate(Duration::from_secs(10)), "tcpdump stops");
    pcap
}

fn flow_events(url: &str, q: &str) -> Vec<Value> {
    search(url, q, 1000, 0)
        .and_then(|r| r["hits"].as_array().cloned())
        .unwrap_or_default()
}

/// An agent with the `[[capture]]` table `extra`, once its capture runs.
fn capturing_agent(dir: &Path, collector: &Collector, extra: &str) -> Agent {
    let agent = Agent::start(&dir.join("agent"), collector.port, "", extra);
    wait_for(
        Duration::from_secs(20),
        "the capture to start",
        || agent.proc.log_tail(),
        || agent.proc.log_tail().contains("capturing").then_some(()),
    );
    agent
}

/// Waits until the flows the collector holds for `q` add up to `want`.
fn wait_totals(url: &str, q: &str, want: &FlowTotals, agent: &Agent) -> FlowTotals {
    assert!(!want.is_empty(), "the pcap holds packets");
    let last = std::cell::RefCell::new(FlowTotals::new());
    wait_for(
        Duration::from_secs(60),
        "the flows to add up to the pcap",
        || {
            format!(
                "want {want:#?}\ngot {:#?}\nagent: {}",
                last.borrow(),
                agent.proc.log_tail()
            )
        },
        || {
            *last.borrow_mut() = event_totals(&flow_events(url, q));
            (&*last.borrow() == want).then_some(())
        },
    );
    last.into_inner()
}

#[test]
fn softflowd_exports_what_the_pcap_holds_over_v9_and_ipfix() {
    if let Some(why) = missing(&["softflowd", "tcpdump", "python3", "ping"]) {
        skip(&why);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ns, ns, host_if) = Netns::pair("sf", "10.231.7.1", "10.231.7.2");
    // The recording is the expectation; should tcpdump still miss part of the traffic (seen
    // once under the full suite's load), record again rather than compare against less.
    let mut attempt = 0;
    let (pcap, want) = loop {
        attempt += 1;
        let pcap = recorded(&host_if, dir.path(), || {
            traffic(&ns, "10.231.7.2", dir.path())
        });
        let want = tcpdump_totals(&pcap);
        if want.len() >= 5 || attempt == 3 {
            break (pcap, want);
        }
        eprintln!(
            "tcpdump recorded {} of 5 connections; recording again",
            want.len()
        );
    };
    assert!(
        want.len() >= 5,
        "the pcap holds the test's connections: {want:?}"
    );

    let collector = Collector::start(dir.path(), 0);
    let extra = "[[netflow]]\nlisten = \"127.0.0.1:0\"\n";
    let agent = Agent::start(&dir.path().join("agent"), collector.port, "", extra);
    let nf = agent.netflow.expect("netflow listener");
    for (version, dataset) in [("9", "flow.netflow"), ("10", "flow.ipfix")] {
        let out = Command::new("softflowd")
            .args(["-r"])
            .arg(&pcap)
            .args(["-n", &nf.to_string(), "-v", version])
            .output()
            .expect("softflowd");
        assert!(
            out.status.success(),
            "softflowd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let q = format!("event.kind:flow AND event.dataset:\"{dataset}\"");
        let got = wait_totals(&collector.url(), &q, &want, &agent);
        println!(
            "softflowd -v {version}: {} connections, totals equal to the pcap",
            got.len()
        );
        let evs = flow_events(&collector.url(), &q);
        assert!(evs.iter().all(|e| e["observer.ip"] == "127.0.0.1"));
        // Added by the collector at ingest, to every flow (all of them TCP, UDP or ICMP).
        assert!(
            evs.iter().all(|e| e["network.community_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("1:"))),
            "{evs:?}"
        );
    }
    assert!(agent.metric("vigil_agent_netflow_templates_total") >= 2.0);
    assert_eq!(agent.metric("vigil_agent_netflow_decode_errors_total"), 0.0);
}

#[test]
fn live_capture_on_a_veth_adds_up_to_the_packets() {
    if let Some(why) = missing(&["tcpdump", "python3", "ping"]) {
        skip(&why);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ns, ns, host_if) = Netns::pair("cp", "10.231.8.1", "10.231.8.2");
    let collector = Collector::start(dir.path(), 0);
    let extra = format!(
        "[[capture]]\ninterface = \"{host_if}\"\nfilter = \"net 10.231.8.0/24\"\nidle_timeout = \"1s\"\nclose_linger = \"300ms\"\n"
    );
    let agent = capturing_agent(dir.path(), &collector, &extra);
    let pcap = recorded(&host_if, dir.path(), || {
        traffic(&ns, "10.231.8.2", dir.path())
    });
    let want = tcpdump_totals(&pcap);
    let got = wait_totals(&collector.url(), "event.kind:flow", &want, &agent);
    println!(
        "capture: {} connections, totals equal to tcpdump's",
        got.len()
    );
    // Every frame arrived: the kernel's drops are counted, and none were.
    let text = reqwest::blocking::get(format!("http://{}/metrics", agent.http))
        .and_then(|r| r.text())
        .unwrap_or_default();
    let series = format!("vigil_agent_capture_kernel_drops_total{{interface=\"{host_if}\"}} 0");
    assert!(text.lines().any(|l| l == series), "{series} in\n{text}");
    // The 200 kB download is one flow whose source is the client that opened it.
    let big = flow_events(
        &collector.url(),
        "event.kind:flow AND destination.port:8080",
    )
    .into_iter()
    .max_by_key(|e| e["network.bytes"].as_u64())
    .expect("the download");
    assert_eq!(big["source.ip"], "10.231.8.1");
    assert!(big["destination.bytes"].as_u64() > Some(200_000));
    let flags = big["tcp.flags"].as_array().expect("tcp.flags");
    for f in ["SYN", "ACK", "FIN"] {
        assert!(flags.contains(&Value::from(f)), "{flags:?}");
    }
    assert!(
        total(
            &collector.url(),
            "event.kind:flow AND network.transport:icmp"
        ) >= Some(1)
    );
}

#[test]
fn nmap_port_scan_raises_an_alert_naming_the_scanner() {
    if let Some(why) = missing(&["nmap"]) {
        skip(&why);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ns, ns, host_if) = Netns::pair("sc", "10.231.9.1", "10.231.9.2");
    let collector = Collector::start(dir.path(), 0);
    let extra = format!(
        "[[capture]]\ninterface = \"{host_if}\"\nidle_timeout = \"1s\"\nclose_linger = \"300ms\"\n"
    );
    let agent = capturing_agent(dir.path(), &collector, &extra);
    // A SYN scan of the 1,000 most common ports of this side of the link, from the namespace.
    let out = Netns::exec(&ns, "nmap")
        .args([
            "-sS",
            "-n",
            "-Pn",
            "-T4",
            "--top-ports",
            "1000",
            "10.231.9.1",
        ])
        .output()
        .expect("nmap");
    assert!(
        out.status.success(),
        "nmap: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let url = collector.url();
    let alert = wait_for(
        Duration::from_secs(60),
        "a port-scan alert",
        || {
            format!(
                "flows from the scanner: {:?}, flows: {:?}, one: {}\n{}",
                total(&url, "event.kind:flow AND source.ip:10.231.9.2"),
                total(&url, "event.kind:flow"),
                search(&url, "event.kind:flow", 1, 0)
                    .map(|r| r["hits"][0].to_string())
                    .unwrap_or_default(),
                agent.proc.log_tail()
            )
        },
        || {
            let r = search(&url, "event.kind:alert AND rule.name:\"Port scan\"", 10, 0)?;
            r["hits"].as_array()?.first().cloned()
        },
    );
    assert_eq!(alert["source.ip"], "10.231.9.2", "{alert}");
    let scanned = total(&url, "event.kind:flow AND source.ip:10.231.9.2").unwrap_or(0);
    assert!(scanned >= 1000, "{scanned} flows from the scanner");
    // The target answered nothing that looks like a scan of its own.
    assert_eq!(
        total(
            &url,
            "event.kind:alert AND rule.name:\"Port scan\" AND source.ip:10.231.9.1"
        ),
        Some(0)
    );
}

#[test]
fn capture_survives_its_interface_going_down_and_away() {
    if let Some(why) = missing(&["ping"]) {
        skip(&why);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (ns_guard, ns, host_if) = Netns::pair("dn", "10.231.10.1", "10.231.10.2");
    let collector = Collector::start(dir.path(), 0);
    let extra = format!("[[capture]]\ninterface = \"{host_if}\"\nidle_timeout = \"500ms\"\n");
    let agent = capturing_agent(dir.path(), &collector, &extra);
    let url = collector.url();
    let ping = |count: &str| {
        let ok = Command::new("ping")
            .args(["-c", count, "-i", "0.2", "-W", "1", "-q", "10.231.10.2"])
            .output()
            .expect("ping");
        assert!(ok.status.success(), "ping");
    };
    let link_up = |what: &str| {
        wait_for(Duration::from_secs(20), what, String::new, || {
            Command::new("ping")
                .args(["-c", "1", "-W", "1", "-q", "10.231.10.2"])
                .output()
                .ok()
                .filter(|o| o.status.success())
        });
    };
    let echo_requests = || {
        total(
            &url,
            "event.kind:flow AND network.transport:icmp AND source.ip:10.231.10.1",
        )
        .unwrap_or(0)
    };
    let wait_more = |than: u64, what: &str| {
        wait_for(
            Duration::from_secs(30),
            what,
            || agent.proc.log_tail(),
            || (echo_requests() > than).then_some(()),
        );
        echo_requests()
    };
    ping("2");
    let n = wait_more(0, "a flow before the link goes down");
    // Down and up again.
    vigil_e2e::ip(&["link", "set", &host_if, "down"]);
    std::thread::sleep(Duration::from_millis(500));
    vigil_e2e::ip(&["link", "set", &host_if, "up"]);
    link_up("the link to carry traffic again");
    std::thread::sleep(Duration::from_secs(1));
    ping("2");
    let n = wait_more(n, "a flow after the link came back up");
    // Gone, then back under the same name: the capture reopens it.
    drop(ns_guard);
    std::thread::sleep(Duration::from_secs(2));
    let (_ns2, _, host_if2) = Netns::pair("dn", "10.231.10.1", "10.231.10.2");
    assert_eq!(host_if2, host_if);
    link_up("the new link to carry traffic");
    std::thread::sleep(Duration::from_secs(2));
    ping("2");
    wait_more(n, "a flow after the interface was recreated");
    assert!(agent.metric("vigil_agent_capture_errors_total") >= 1.0);
    let _ = ns;
}

/// Frames capture can see on `iface`, by the interface's own counters: those received, and
/// those sent (capture sees a frame before the link takes it, so one the veth could not hand
/// to its busy peer, `tx_dropped`, counts too).
fn frames_on(iface: &str) -> f64 {
    ["rx_packets", "tx_packets", "tx_dropped"]
        .iter()
        .map(|c| {
            std::fs::read_to_string(format!("/sys/class/net/{iface}/statistics/{c}"))
                .ok()
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        })
        .sum()
}

/// A burst larger than the capture's socket buffer: the frames the kernel drops are counted,
/// and with those the capture read, every frame that crossed the interface (by the
/// interface's own counters) is accounted for.
#[test]
fn frames_the_kernel_drops_before_capture_are_counted() {
    if let Some(why) = missing(&["python3"]) {
        skip(&why);
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (_ns, ns, host_if) = Netns::pair("kd", "10.231.10.1", "10.231.10.2");
    let collector = Collector::start(dir.path(), 0);
    // The smallest buffer the kernel grants (it raises 1 byte to its minimum).
    let extra = format!(
        "[[capture]]\ninterface = \"{host_if}\"\nreceive_buffer_bytes = 1\nidle_timeout = \"1s\"\n"
    );
    let agent = capturing_agent(dir.path(), &collector, &extra);
    let read_before = agent.metric("vigil_agent_capture_packets_total");
    let crossed_before = frames_on(&host_if);
    // 20,000 datagrams of 1,400 bytes from the namespace as fast as Python sends them, then
    // a few slowly: a frame carries the count of drops before it, so the last ones tell
    // about the burst.
    let out = Netns::exec(&ns, "python3")
        .args([
            "-c",
            "import socket, time\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             b = bytes(1400)\nfor _ in range(20000): s.sendto(b, ('10.231.10.1', 9))\n\
             for _ in range(5):\n    time.sleep(0.1); s.sendto(b, ('10.231.10.1', 9))\n",
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts = || {
        (
            agent.metric("vigil_agent_capture_packets_total") - read_before,
            agent.metric("vigil_agent_capture_kernel_drops_total"),
            frames_on(&host_if) - crossed_before,
        )
    };
    let (read, dropped, crossed) = wait_for(
        Duration::from_secs(30),
        "every frame read or counted as dropped",
        || {
            format!(
                "read, dropped, crossed: {:?}\n{}",
                counts(),
                agent.proc.log_tail()
            )
        },
        || {
            let (read, dropped, crossed) = counts();
            ((read + dropped - crossed).abs() <= 5.0).then_some((read, dropped, crossed))
        },
    );
    println!("capture: {read} frames read, {dropped} dropped by the kernel, {crossed} crossed");
    assert!(
        dropped > 100.0,
        "a burst past a 4 KiB buffer loses frames: {dropped}"
    );
}
