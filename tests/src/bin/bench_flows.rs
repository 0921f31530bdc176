//! Flow collection, side by side in one run.
//!
//! 1. Decode alone: NetFlow v9 and IPFIX datagrams (40 and 25 records, templates every 100
//!    datagrams) through the agent's decoder on one thread: records/s (goal ≥ 1,000,000), and
//!    records/s when each record is also turned into its event.
//! 2. Collection: the same streams sent over loopback at rising rates (up to 3.2 M flows/s,
//!    `BENCH_RATES=a,b,...` to choose), 2 s per rate, into
//!    `nfcapd` (Debian nfdump, writing its files) and into `vigil-agent` (decoding into events
//!    and writing its fsynced spool; no collector, so the spool is the end of the line). Both
//!    ask for an 8 MiB socket buffer (the kernel grants `net.core.rmem_max`). The sender
//!    sleeps when it is early and sends what is due in bursts of about half a millisecond
//!    (it used to spin on a core between datagrams). For each: flows lost at each rate, the
//!    highest rate without loss, and the ratio.
//!
//! 3. Capture: frames replayed by `tcpreplay` into a veth at rising rates, captured on its
//!    peer by `softflowd` (libpcap; packets counted in the flows it exports to nfcapd) and by
//!    `vigil-agent` (pnet's AF_PACKET channel; packets counted by its capture): the frames each
//!    missed at each rate and the highest rate without a miss. Needs root.
//!
//! `cargo run --release -p vigil-e2e --bin bench-flows -- --seconds 2` (`--capture 0`,
//! `--collect 0` leave parts out)

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use chrono::Utc;

// The agent's allocator, so that decode-alone figures are the agent's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use vigil_agent::flow::netflow::{self, Decoder};
use vigil_e2e::{Agent, Proc, arg, free_port, settled};

/// NetFlow v9 or IPFIX datagrams of synthetic but plausible flows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Version {
    V9,
    Ipfix,
}

impl Version {
    fn records(self) -> usize {
        match self {
            Version::V9 => 40,
            Version::Ipfix => 25,
        }
    }
}

/// (element id, length) of the template: addresses, ports, protocol, flags, interfaces,
/// counters, times.
fn template(v: Version) -> Vec<(u16, u16)> {
    let mut t = vec![
        (8, 4),
        (12, 4),
        (7, 2),
        (11, 2),
        (4, 1),
        (6, 1),
        (10, 2),
        (14, 2),
    ];
    match v {
        Version::V9 => t.extend([(1, 4), (2, 4), (22, 4), (21, 4)]),
        Version::Ipfix => t.extend([(1, 8), (2, 8), (152, 8), (153, 8)]),
    }
    t
}

fn put_record(out: &mut Vec<u8>, v: Version, n: u64, now_ms: u64) {
    let src = 0x0a00_0000u32 | (n as u32 & 0xffff);
    let dst = 0xc0a8_0000u32 | ((n >> 16) as u32 & 0xffff);
    out.extend(src.to_be_bytes());
    out.extend(dst.to_be_bytes());
    out.extend((1024 + (n % 60000) as u16).to_be_bytes());
    out.extend((80 + (n % 3) as u16).to_be_bytes());
    out.push(if n.is_multiple_of(4) { 17 } else { 6 });
    out.push(0x1b);
    out.extend(1u16.to_be_bytes());
    out.extend(2u16.to_be_bytes());
    let (bytes, pkts) = (40 + n % 1500 * 7, 1 + n % 20);
    match v {
        Version::V9 => {
            out.extend((bytes as u32).to_be_bytes());
            out.extend((pkts as u32).to_be_bytes());
            out.extend(1_000u32.to_be_bytes());
            out.extend(2_000u32.to_be_bytes());
        }
        Version::Ipfix => {
            out.extend(bytes.to_be_bytes());
            out.extend(pkts.to_be_bytes());
            out.extend((now_ms - 2_000).to_be_bytes());
            out.extend((now_ms - 1_000).to_be_bytes());
        }
    }
}

/// Datagram `seq` of a stream; the first and every 100th carry the template.
fn datagram(v: Version, seq: u64, first_record: u64) -> Vec<u8> {
    let now = Utc::now();
    let (secs, ms) = (now.timestamp() as u32, now.timestamp_millis() as u64);
    let mut sets = Vec::new();
    let with_template = seq.is_multiple_of(100);
    if with_template {
        let t = template(v);
        let mut body = Vec::new();
        body.extend(256u16.to_be_bytes());
        body.extend((t.len() as u16).to_be_bytes());
        for (id, len) in &t {
            body.extend(id.to_be_bytes());
            body.extend(len.to_be_bytes());
        }
        sets.extend(if v == Version::V9 { 0u16 } else { 2u16 }.to_be_bytes());
        sets.extend((body.len() as u16 + 4).to_be_bytes());
        sets.extend(body);
    }
    let mut data = Vec::new();
    for i in 0..v.records() as u64 {
        put_record(&mut data, v, first_record + i, ms);
    }
    while data.len() % 4 != 0 {
        data.push(0);
    }
    sets.extend(256u16.to_be_bytes());
    sets.extend((data.len() as u16 + 4).to_be_bytes());
    sets.extend(data);
    let mut out = Vec::new();
    match v {
        Version::V9 => {
            out.extend(9u16.to_be_bytes());
            let count = v.records() as u16 + u16::from(with_template);
            out.extend(count.to_be_bytes());
            out.extend(10_000u32.to_be_bytes()); // uptime ms
            out.extend(secs.to_be_bytes());
            out.extend((seq as u32).to_be_bytes());
            out.extend(7u32.to_be_bytes());
        }
        Version::Ipfix => {
            out.extend(10u16.to_be_bytes());
            out.extend((sets.len() as u16 + 16).to_be_bytes());
            out.extend(secs.to_be_bytes());
            out.extend(((seq * v.records() as u64) as u32).to_be_bytes());
            out.extend(7u32.to_be_bytes());
        }
    }
    out.extend(sets);
    out
}

fn stream(v: Version, datagrams: u64) -> Vec<Vec<u8>> {
    (0..datagrams)
        .map(|s| datagram(v, s, s * v.records() as u64))
        .collect()
}

fn decode_alone(v: Version, rounds: u32) {
    let dgrams = stream(v, 10_000);
    let from: SocketAddr = "192.0.2.1:2055".parse().expect("addr");
    // 0: decode; 1: and each record's event encoded (what the receiving thread does); 2: and
    // the events batched (2,000) and compressed (what the batcher's writer adds).
    for stage in 0..3 {
        let mut dec = Decoder::new(None, 10);
        let mut events = vigil_schema::binary::Writer::with_capacity(4 << 20);
        let mut batch = vigil_schema::binary::Writer::with_capacity(4 << 20);
        let mut zstd = vigil_schema::wire::Compressor::new();
        let (mut records, mut event_bytes, mut frame_bytes) = (0u64, 0usize, 0usize);
        let start = Instant::now();
        for _ in 0..rounds {
            for d in &dgrams {
                let now = Utc::now();
                if stage == 0 {
                    records += dec
                        .decode_each(from, d, now, &mut |fl| {
                            std::hint::black_box(fl);
                        })
                        .flows;
                    continue;
                }
                // Items of `ITEM_BYTES`, as the listener makes them when busy.
                records += dec
                    .decode_each(from, d, now, &mut |fl| fl.encode(now, None, &mut events))
                    .flows;
                if events.size() < netflow::ITEM_BYTES {
                    continue;
                }
                if stage == 2 {
                    batch.append(&events);
                    if batch.count() >= 2000 {
                        event_bytes += batch.size();
                        let frame = zstd.encode(&batch, uuid::Uuid::nil(), "bench", 1);
                        frame_bytes += frame.len();
                        batch.clear();
                    }
                }
                std::hint::black_box(&events);
                events.clear();
            }
        }
        let s = start.elapsed().as_secs_f64();
        let sizes = if stage == 2 {
            let n = records.max(1) as f64;
            format!(
                " ({:.0} B per event, {:.0} compressed)",
                event_bytes as f64 / n,
                frame_bytes as f64 / n
            )
        } else {
            String::new()
        };
        println!(
            "{:<6} {:<28} {records:>10} records {s:>7.2} s {:>12.0} records/s{sizes}",
            format!("{v:?}"),
            [
                "decode",
                "decode + event, encoded",
                "  + batched, compressed"
            ][stage],
            records as f64 / s
        );
    }
}

/// How far past its time the sender sleeps when it is early (see [`send`]).
const PACE: Duration = Duration::from_micros(500);

/// Sends `rate` flows/s of `v` for `secs` to `to` from `sock` (one exporter: one socket, as
/// templates are scoped by the exporter's address and port); the flows sent.
fn send(v: Version, sock: &UdpSocket, to: SocketAddr, rate: u64, secs: u64, seq0: &mut u64) -> u64 {
    let per = v.records() as u64;
    let total = rate * secs / per;
    // Built before the clock starts, so the sender is not what limits the rate.
    let dgrams: Vec<Vec<u8>> = (0..total)
        .map(|i| datagram(v, *seq0 + i, (*seq0 + i) * per))
        .collect();
    *seq0 += total;
    let start = Instant::now();
    for (i, d) in dgrams.iter().enumerate() {
        let due = Duration::from_secs_f64(i as f64 * per as f64 / rate as f64);
        // Early: sleep past the time due, and send what is due then in a burst. Spinning
        // until each datagram's time took a whole core from the receivers, which a real
        // exporter, on another machine, does not; a burst of half a millisecond's datagrams
        // (some tens) is what both receivers' buffers are for, and what exporters send.
        if let Some(early) = due.checked_sub(start.elapsed()) {
            std::thread::sleep(early + PACE);
        }
        let _ = sock.send_to(d, to);
    }
    // A sender that fell behind sent at a lower rate than asked: say so.
    let reached = (total * per) as f64 / start.elapsed().as_secs_f64();
    if reached < rate as f64 * 0.98 {
        println!("       (the sender reached {reached:.0} flows/s of the {rate} asked)");
    }
    total * per
}

/// Flows in nfcapd's files under `dir` (after it stopped and wrote them).
fn nfdump_flows(dir: &Path) -> u64 {
    let out = Command::new("nfdump")
        .arg("-R")
        .arg(dir)
        .arg("-I")
        .output()
        .expect("nfdump");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("Flows:"))
        .filter_map(|n| n.trim().parse::<u64>().ok())
        .sum()
}

/// A pcap of `packets` small frames over `flows` UDP and TCP flows (Ethernet, IPv4).
fn synthetic_pcap(path: &Path, packets: u64, flows: u64) {
    let mut out = Vec::new();
    out.extend(0xa1b2c3d4u32.to_le_bytes());
    out.extend(2u16.to_le_bytes());
    out.extend(4u16.to_le_bytes());
    out.extend([0u8; 8]);
    out.extend(65535u32.to_le_bytes());
    out.extend(1u32.to_le_bytes());
    for i in 0..packets {
        let f = i % flows;
        let tcp = f.is_multiple_of(2);
        let l4 = if tcp { 20 } else { 8 };
        let payload = 18usize;
        let ip_len = 20 + l4 + payload;
        let mut fr = Vec::with_capacity(14 + ip_len);
        fr.extend([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
        fr.extend([
            0x45,
            0,
            (ip_len >> 8) as u8,
            ip_len as u8,
            0,
            0,
            0x40,
            0,
            64,
        ]);
        fr.push(if tcp { 6 } else { 17 });
        fr.extend([0, 0]);
        fr.extend([10, 1, (f >> 8) as u8, f as u8]);
        fr.extend([10, 2, 0, 1]);
        let sport = 1024 + (f % 50_000) as u16;
        fr.extend(sport.to_be_bytes());
        fr.extend(if tcp { 443u16 } else { 53u16 }.to_be_bytes());
        if tcp {
            fr.extend([0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0x10, 0, 0, 0, 0, 0]);
        } else {
            fr.extend(((8 + payload) as u16).to_be_bytes());
            fr.extend([0, 0]);
        }
        fr.extend(std::iter::repeat_n(0x61u8, payload));
        out.extend(((i / 1000) as u32).to_le_bytes());
        out.extend(((i % 1000) as u32 * 1000).to_le_bytes());
        out.extend((fr.len() as u32).to_le_bytes());
        out.extend((fr.len() as u32).to_le_bytes());
        out.extend(fr);
    }
    std::fs::write(path, out).expect("write pcap");
}

/// Replays `pcap` into `iface` at `pps` for about `secs`; the packets sent and the rate
/// tcpreplay says it reached.
fn replay(iface: &str, pcap: &Path, per_file: u64, pps: u64, secs: u64) -> (u64, f64) {
    let loops = (pps * secs).div_ceil(per_file).max(1);
    let out = Command::new("tcpreplay")
        .args([
            "-i",
            iface,
            &format!("--pps={pps}"),
            &format!("--loop={loops}"),
        ])
        .arg(pcap)
        .output()
        .expect("tcpreplay");
    assert!(
        out.status.success(),
        "tcpreplay: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // "Rated: 72900364.5 Bps, 583.20 Mbps, 50000.25 pps"
    let text = String::from_utf8_lossy(&out.stdout);
    let reached = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Rated:"))
        .and_then(|l| l.rsplit(',').next())
        .and_then(|x| x.trim().trim_end_matches("pps").trim().parse().ok())
        .unwrap_or(0.0);
    (loops * per_file, reached)
}

/// softflowd's own count of what libpcap received and what the kernel dropped.
fn softflowd_drops(ctl: &Path) -> (u64, u64) {
    let out = Command::new("softflowctl")
        .arg("-c")
        .arg(ctl)
        .arg("statistics")
        .output()
        .expect("softflowctl");
    let text = String::from_utf8_lossy(&out.stdout);
    let num = |prefix: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(prefix))
            .and_then(|x| x.trim().parse::<u64>().ok())
            .unwrap_or(0)
    };
    (
        num("Packets received by libpcap:"),
        num("Packets dropped by libpcap:") + num("Packets dropped by interface:"),
    )
}

fn capture_bench(secs: u64) {
    let cmd_ok = |args: &[&str]| {
        let ok = Command::new(args[0])
            .args(&args[1..])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "{args:?}");
    };
    let (a, b) = ("vbenchtx", "vbenchrx");
    let _ = Command::new("ip").args(["link", "del", a]).output();
    cmd_ok(&["ip", "link", "add", a, "type", "veth", "peer", "name", b]);
    for i in [a, b] {
        let _ = Command::new("sysctl")
            .args(["-qw", &format!("net.ipv6.conf.{i}.disable_ipv6=1")])
            .status();
        cmd_ok(&["ip", "link", "set", i, "up"]);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("replay.pcap");
    let per_file = 200_000;
    synthetic_pcap(&pcap, per_file, 10_000);
    let rates = [50_000u64, 100_000, 200_000, 400_000, 800_000];
    println!(
        "\nbench-flows: capture, tcpreplay into a veth, {secs} s per rate (64-byte frames, 10,000 flows)"
    );
    println!(
        "{:<30} {:>10} {:>10} {:>10} {:>10}",
        "capture", "pps asked", "reached", "sent", "missed"
    );
    let mut best = [0u64; 2];
    for &pps in &rates {
        // softflowd (libpcap): the kernel drops libpcap reports. (Its exported flows lag: the
        // last packets wait in libpcap's ring, so counting them would blame softflowd for
        // packets it does process later.)
        let sf_dir = tempfile::tempdir().expect("tempdir");
        let ctl = sf_dir.path().join("sf.ctl");
        let mut cmd = Command::new("softflowd");
        cmd.args([
            "-i",
            b,
            "-n",
            "127.0.0.1:9",
            "-v",
            "9",
            "-d",
            "-m",
            "65536",
            "-B",
            "33554432",
        ])
        .arg("-p")
        .arg(sf_dir.path().join("sf.pid"))
        .arg("-c")
        .arg(&ctl);
        let mut sf = Proc::spawn("softflowd", cmd, &sf_dir.path().join("softflowd.log"));
        std::thread::sleep(Duration::from_secs(1));
        let (before, _) = softflowd_drops(&ctl);
        let (sent, reached) = replay(a, &pcap, per_file, pps, secs);
        std::thread::sleep(Duration::from_secs(2));
        let (after, dropped) = softflowd_drops(&ctl);
        let missed = dropped + sent.saturating_sub(after - before);
        let _ = Command::new("softflowctl")
            .arg("-c")
            .arg(&ctl)
            .arg("shutdown")
            .output();
        sf.terminate(Duration::from_secs(10));
        println!(
            "{:<30} {pps:>10} {reached:>10.0} {sent:>10} {missed:>10}",
            "softflowd (libpcap)"
        );
        if missed == 0 && best[0] == prev_ok(&rates, pps) {
            best[0] = pps;
        }
    }
    let adir = tempfile::tempdir().expect("tempdir");
    let extra = format!("[[capture]]\ninterface = \"{b}\"\nidle_timeout = \"60s\"\n");
    let agent = Agent::start(adir.path(), free_port(), "max_bytes = 17179869184", &extra);
    std::thread::sleep(Duration::from_secs(1));
    let seen = || agent.metric("vigil_agent_capture_packets_total") as u64;
    let mut before = seen();
    for &pps in &rates {
        let (sent, reached) = replay(a, &pcap, per_file, pps, secs);
        let after = settled(seen);
        let missed = sent.saturating_sub(after - before);
        before = after;
        println!(
            "{:<30} {pps:>10} {reached:>10.0} {sent:>10} {missed:>10}",
            "vigil-agent (AF_PACKET, recvmmsg)"
        );
        if missed == 0 && best[1] == prev_ok(&rates, pps) {
            best[1] = pps;
        }
    }
    println!(
        "highest rate without missed packets: softflowd {} pps, vigil-agent {} pps, ratio {:.2}",
        best[0],
        best[1],
        best[1] as f64 / best[0].max(1) as f64
    );
    let _ = Command::new("ip").args(["link", "del", a]).output();
}

/// The rate below `rate` in `rates` (0 for the first): a rate counts as taken without loss
/// only when every lower rate was too.
fn prev_ok(rates: &[u64], rate: u64) -> u64 {
    rates
        .iter()
        .copied()
        .filter(|r| *r < rate)
        .max()
        .unwrap_or(0)
}

fn main() {
    let secs = arg("--seconds", 2);
    let rounds = arg("--rounds", 5) as u32;
    println!("bench-flows: decode alone, one thread");
    for v in [Version::V9, Version::Ipfix] {
        decode_alone(v, rounds);
    }
    if arg("--capture", 1) == 1 {
        capture_bench(secs);
    }
    if arg("--collect", 1) == 0 {
        return;
    }
    let rates: Vec<u64> = match std::env::var("BENCH_RATES") {
        Ok(r) => r.split(',').filter_map(|x| x.parse().ok()).collect(),
        // Up to past nfcapd's own limit on these machines (it kept up with 1.6 M flows/s), so
        // that the ratio compares two limits rather than the top of the ladder.
        Err(_) => vec![
            100_000, 200_000, 400_000, 800_000, 1_000_000, 1_200_000, 1_600_000, 2_000_000,
            2_400_000, 3_200_000,
        ],
    };
    println!("\nbench-flows: collection over loopback, {secs} s per rate");
    println!(
        "{:<6} {:<12} {:>10} {:>10} {:>10}",
        "stream", "collector", "flows/s", "sent", "lost"
    );
    // `BENCH_ONLY=ipfix,agent` (any of v9, ipfix, nfcapd, agent) leaves the others out: to
    // profile one collector on one stream.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let runs = |what: &str, group: &[&str]| {
        !group.iter().any(|g| only.split(',').any(|o| o == *g))
            || only.split(',').any(|o| o == what)
    };
    for v in [Version::V9, Version::Ipfix] {
        let stream = if v == Version::V9 { "v9" } else { "ipfix" };
        if !runs(stream, &["v9", "ipfix"]) {
            continue;
        }
        let mut best = [0u64; 2];
        // nfcapd: one process per stream, stopped to write its file after each rate.
        for &rate in rates
            .iter()
            .filter(|_| runs("nfcapd", &["nfcapd", "agent"]))
        {
            let dir = tempfile::tempdir().expect("tempdir");
            let port = free_port();
            let mut cmd = Command::new("nfcapd");
            cmd.args(["-p", &port.to_string(), "-B", "8388608", "-t", "3600", "-w"])
                .arg(dir.path());
            let mut nf = Proc::spawn("nfcapd", cmd, &dir.path().join("nfcapd.log"));
            std::thread::sleep(Duration::from_millis(500));
            let mut seq = 0;
            let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
            let sent = send(
                v,
                &sock,
                ([127, 0, 0, 1], port).into(),
                rate,
                secs,
                &mut seq,
            );
            std::thread::sleep(Duration::from_millis(500));
            nf.terminate(Duration::from_secs(30));
            let got = nfdump_flows(dir.path());
            let lost = sent.saturating_sub(got);
            println!(
                "{:<6} {:<12} {rate:>10} {sent:>10} {lost:>10}",
                format!("{v:?}"),
                "nfcapd"
            );
            if lost == 0 && best[0] == prev_ok(&rates, rate) {
                best[0] = rate;
            }
        }
        if !runs("agent", &["nfcapd", "agent"]) {
            continue;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let extra = "[[netflow]]\nlisten = \"127.0.0.1:0\"\n";
        let a = Agent::start(dir.path(), free_port(), "max_bytes = 17179869184", extra);
        let to = a.netflow.expect("netflow listener");
        let spooled = || a.metric("vigil_agent_events_spooled_total") as u64;
        let mut seq = 0;
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let mut before = spooled();
        for &rate in &rates {
            let sent = send(v, &sock, to, rate, secs, &mut seq);
            let after = settled(spooled);
            let lost = sent.saturating_sub(after - before);
            before = after;
            println!(
                "{:<6} {:<12} {rate:>10} {sent:>10} {lost:>10}",
                format!("{v:?}"),
                "vigil-agent"
            );
            if std::env::var_os("BENCH_METRICS").is_some() {
                // The drops by reason (kernel overruns, a full queue).
                let page = reqwest::blocking::get(format!("http://{}/metrics", a.http))
                    .and_then(|r| r.text())
                    .unwrap_or_default();
                for l in page
                    .lines()
                    .filter(|l| l.starts_with("vigil_agent_events_dropped"))
                {
                    println!("    {l}");
                }
                for m in [
                    "vigil_agent_events_dropped_total",
                    "vigil_agent_netflow_flows_total",
                    "vigil_agent_netflow_missing_template_total",
                    "vigil_agent_netflow_decode_errors_total",
                ] {
                    println!("    {m} {}", a.metric(m));
                }
            }
            if lost == 0 && best[1] == prev_ok(&rates, rate) {
                best[1] = rate;
            }
        }
        let top = rates.iter().copied().max().unwrap_or(0);
        let limit = |b: u64| {
            if b == 0 {
                "below the lowest rate sent (or not run)".to_owned()
            } else if b == top {
                format!("{b} flows/s (the highest rate sent: at least)")
            } else {
                format!("{b} flows/s")
            }
        };
        let ratio = match best {
            [0, _] | [_, 0] => "not measured".to_owned(),
            [n, a] => format!("{:.2}", a as f64 / n as f64),
        };
        println!(
            "{:<6} highest rate without loss: nfcapd {}, vigil-agent {}, ratio {ratio}",
            format!("{v:?}"),
            limit(best[0]),
            limit(best[1]),
        );
    }
}
