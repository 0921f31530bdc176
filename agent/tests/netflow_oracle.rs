//! Real exporters against an oracle: a pcap this test writes itself (so its flows, bytes,
//! packets and times are known without any decoder), exported by softflowd (v5, v9, IPFIX)
//! and pmacct's nfprobe (v9, IPFIX); the datagrams they send are decoded by the agent (to
//! the events the collector stores) and by nfdump's `nfcapd`, and both must agree with the
//! pcap.
//!
//! nfdump 1.7 is the oracle for flows, bytes and packets. It is not one for times: it
//! reads softflowd's v9 and IPFIX uptimes, which lie before the exporter's start when it
//! reads a pcap, without the 32-bit wrap, and dates those flows 2^32 ms (49.7 days) ahead.
//! Times are therefore checked against the pcap itself, and nfdump's are compared only where
//! they are right (listed in `nfdump_times_are_right`).

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::Utc;
use common::{have, skip};
use vigil_agent::flow::netflow::Decoder;

/// One flow as the agent decoded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stored {
    bytes: u64,
    packets: u64,
    first_ms: Option<i64>,
    last_ms: Option<i64>,
}

/// (protocol, source, source port, destination, destination port); ICMP flows have ports 0.
type Key = (u8, Ipv4Addr, u16, Ipv4Addr, u16);

/// One direction of a conversation as the pcap has it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Truth {
    bytes: u64,
    packets: u64,
    /// Milliseconds since the epoch of the first and last packet (truncated, as exporters do).
    first_ms: i64,
    last_ms: i64,
}

/// The pcap: three TCP connections, a DNS-like UDP exchange and a ping, each packet a
/// millisecond and a few microseconds apart, starting `age` ago; and what each direction
/// adds up to.
fn write_pcap(path: &Path, age: Duration) -> BTreeMap<Key, Truth> {
    let client = Ipv4Addr::new(10, 1, 0, 1);
    let server = Ipv4Addr::new(10, 2, 0, 2);
    // (source, destination, protocol, source port, destination port, TCP flags, payload)
    let mut packets: Vec<(Ipv4Addr, Ipv4Addr, u8, u16, u16, u8, usize)> = Vec::new();
    for i in 0..3u16 {
        let port = 40_000 + i;
        let c2s = |flags, len| (client, server, 6, port, 80, flags, len);
        let s2c = |flags, len| (server, client, 6, 80, port, flags, len);
        packets.extend([
            c2s(0x02, 0),
            s2c(0x12, 0),
            c2s(0x10, 0),
            c2s(0x18, 100 + usize::from(i)),
            s2c(0x18, 1_000 + 300 * usize::from(i)),
            c2s(0x10, 0),
            c2s(0x11, 0),
            s2c(0x11, 0),
            c2s(0x10, 0),
        ]);
    }
    for n in 0..2 {
        packets.push((client, server, 17, 5353, 53, 0, 30 + n));
        packets.push((server, client, 17, 53, 5353, 0, 80 + n));
    }
    for _ in 0..3 {
        // Echo request and reply: softflowd puts type × 256 + code in the destination port.
        packets.push((client, server, 1, 0, 8 << 8, 0, 56));
        packets.push((server, client, 1, 0, 0, 0, 56));
    }
    let start_us = (Utc::now().timestamp_micros() - age.as_micros() as i64) / 1000 * 1000;
    let mut file = Vec::new();
    for v in [0xa1b2_c3d4u32, 0x0002_0004, 0, 0, 65_535, 1] {
        match v {
            0x0002_0004 => {
                file.extend_from_slice(&2u16.to_le_bytes());
                file.extend_from_slice(&4u16.to_le_bytes());
            }
            v => file.extend_from_slice(&v.to_le_bytes()),
        }
    }
    let mut truth: BTreeMap<Key, Truth> = BTreeMap::new();
    for (i, &(src, dst, proto, sp, dp, flags, payload)) in packets.iter().enumerate() {
        let t_us = start_us + i as i64 * 1_000 + 7 * i as i64 % 900;
        let l4 = match proto {
            6 => {
                let mut h = vec![0u8; 20];
                h[0..2].copy_from_slice(&sp.to_be_bytes());
                h[2..4].copy_from_slice(&dp.to_be_bytes());
                h[4..8].copy_from_slice(&(1_000 + i as u32).to_be_bytes());
                h[12] = 5 << 4;
                h[13] = flags;
                h[14..16].copy_from_slice(&64_240u16.to_be_bytes());
                h
            }
            17 => {
                let mut h = vec![0u8; 8];
                h[0..2].copy_from_slice(&sp.to_be_bytes());
                h[2..4].copy_from_slice(&dp.to_be_bytes());
                h[4..6].copy_from_slice(&((8 + payload) as u16).to_be_bytes());
                h
            }
            _ => {
                let mut h = vec![0u8; 8];
                h[0] = (dp >> 8) as u8;
                h[6..8].copy_from_slice(&(i as u16).to_be_bytes());
                h
            }
        };
        let total = 20 + l4.len() + payload;
        let mut ip = vec![0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&(i as u16).to_be_bytes());
        ip[8] = 64;
        ip[9] = proto;
        ip[12..16].copy_from_slice(&src.octets());
        ip[16..20].copy_from_slice(&dst.octets());
        let sum = ip
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum::<u32>();
        let sum = (sum & 0xffff) + (sum >> 16);
        let sum = !((sum & 0xffff) + (sum >> 16)) as u16;
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        let mut frame = vec![0u8; 14];
        frame[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        frame[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&l4);
        frame.extend(std::iter::repeat_n(0x61, payload));
        for v in [
            (t_us / 1_000_000) as u32,
            (t_us % 1_000_000) as u32,
            frame.len() as u32,
            frame.len() as u32,
        ] {
            file.extend_from_slice(&v.to_le_bytes());
        }
        file.extend_from_slice(&frame);
        let key = match proto {
            1 => (proto, src, 0, dst, 0),
            _ => (proto, src, sp, dst, dp),
        };
        let t = truth.entry(key).or_default();
        if t.packets == 0 {
            t.first_ms = t_us / 1000;
        }
        t.last_ms = t_us / 1000;
        t.bytes += total as u64;
        t.packets += 1;
    }
    std::fs::write(path, file).expect("write pcap");
    truth
}

/// The datagrams `exporter` sends to a socket of ours while it runs to its end.
fn exported(mut exporter: Command, sock: &UdpSocket, what: &str) -> Vec<Vec<u8>> {
    let out = exporter.output().expect("start the exporter");
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    sock.set_read_timeout(Some(Duration::from_millis(1_500)))
        .expect("timeout");
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while let Ok(n) = sock.recv(&mut buf) {
        got.push(buf[..n].to_vec());
    }
    assert!(!got.is_empty(), "{what} sent nothing");
    got
}

fn key(proto: u8, src: Ipv4Addr, sp: u16, dst: Ipv4Addr, dp: u16) -> Key {
    match proto {
        1 => (proto, src, 0, dst, 0),
        _ => (proto, src, sp, dst, dp),
    }
}

/// The flows the agent makes of the datagrams, as the collector stores them (and the decode
/// errors): each flow is encoded as the agent sends it, read back from the wire format and
/// completed as the collector's ingest completes it, and the stored fields are read.
fn vigil(datagrams: &[Vec<u8>]) -> (BTreeMap<Key, Stored>, u64) {
    let mut dec = Decoder::new(None, 16);
    let from: SocketAddr = "127.0.0.1:9995".parse().expect("addr");
    let mut w = vigil_schema::binary::Writer::default();
    let mut errors = 0;
    for d in datagrams {
        errors += dec
            .decode_each(from, d, Utc::now(), &mut |f| {
                f.encode(Utc::now(), None, &mut w)
            })
            .errors;
    }
    let mut flows = BTreeMap::new();
    for mut e in vigil_schema::binary::read_events(w.events()).expect("wire format") {
        vigil_schema::flow::complete(&mut e);
        let ip = |name: &str| -> Ipv4Addr {
            e.get_str(name)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no IPv4 {name}: {e:?}"))
        };
        let n = |name: &str| e.get_u64(name).unwrap_or(0);
        let ms = |name: &str| {
            e.get_str(name)
                .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.timestamp_millis())
        };
        let proto: u8 = e
            .get_str("network.iana_number")
            .and_then(|p| p.parse().ok())
            .expect("protocol");
        let k = key(
            proto,
            ip("source.ip"),
            n("source.port") as u16,
            ip("destination.ip"),
            n("destination.port") as u16,
        );
        let stored = Stored {
            bytes: n("source.bytes"),
            packets: n("source.packets"),
            first_ms: ms("event.start"),
            last_ms: ms("event.end"),
        };
        assert!(
            flows.insert(k, stored).is_none(),
            "two flows of one key: {e:?}"
        );
    }
    (flows, errors)
}

/// An exporter, its NetFlow version, and whether nfdump 1.7 dates its flows right.
struct Case {
    name: &'static str,
    version: u8,
    nfdump_times_are_right: bool,
    /// Milliseconds a time may come out early: a v9 header gives its export time in whole
    /// seconds, so times relative to the exporter's uptime lose up to a second (nfdump's
    /// too); v5 headers have nanoseconds and IPFIX exporters send absolute times or their
    /// boot time in milliseconds.
    early_ms: i64,
}

/// Runs one exporter over the pcap and compares.
fn check(case: &Case, exporter: Command, sock: &UdpSocket, truth: &BTreeMap<Key, Truth>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let datagrams = exported(exporter, sock, case.name);
    let (ours, errors) = vigil(&datagrams);
    let from: SocketAddr = "127.0.0.1:9995".parse().expect("addr");
    let sent: Vec<_> = datagrams.iter().map(|d| (from, d.clone())).collect();
    let theirs: BTreeMap<Key, common::NfFlow> = common::nfdump(&sent, dir.path())
        .into_iter()
        .map(|f| match (f.src, f.dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => (key(f.proto, s, f.src_port, d, f.dst_port), f),
            _ => panic!("{}: an IPv6 flow from an IPv4 pcap: {f:?}", case.name),
        })
        .collect();
    assert_eq!(errors, 0, "{}: decode errors", case.name);
    assert_eq!(
        ours.len(),
        truth.len(),
        "{}: flows stored {ours:#?}, the pcap has {truth:#?}",
        case.name
    );
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "{}: the agent's flows and nfdump's",
        case.name
    );
    for (k, t) in truth {
        let o = ours
            .get(k)
            .unwrap_or_else(|| panic!("{}: no flow {k:?}", case.name));
        let n = theirs[k];
        assert_eq!(
            (o.bytes, o.packets),
            (t.bytes, t.packets),
            "{}: {k:?} bytes and packets against the pcap",
            case.name
        );
        assert_eq!(
            (o.bytes, o.packets),
            (n.bytes, n.packets),
            "{}: {k:?} against nfdump",
            case.name
        );
        // Exporters keep milliseconds, some relative to their own start: a millisecond or
        // two of rounding, and what the header's export time lacks.
        for (what, got, want) in [
            ("start", o.first_ms, t.first_ms),
            ("end", o.last_ms, t.last_ms),
        ] {
            let got = got.unwrap_or_else(|| panic!("{}: {k:?} has no {what}", case.name));
            assert!(
                (-2 - case.early_ms..=2).contains(&(got - want)),
                "{}: {k:?} {what} {got} ms, the pcap says {want} ms ({} ms apart)",
                case.name,
                got - want
            );
        }
        if case.nfdump_times_are_right {
            assert!(
                (o.first_ms.unwrap_or(0) - n.first_ms.unwrap_or(0)).abs() <= 2,
                "{}: {k:?} start against nfdump's {n:?}",
                case.name
            );
        }
    }
}

/// Runs `exporter` (installed by Debian's `package`) over one pcap for each case, the
/// command for a case made by `command` from the pcap, the port to send to and a folder of
/// its own, and checks what it sends.
fn exporter_test(
    exporter: &str,
    package: &str,
    cases: &[Case],
    command: impl Fn(&Case, &Path, u16, &Path) -> Command,
) {
    if let Some(why) = common::no_nfdump() {
        return skip(&why);
    }
    if !have(exporter) {
        return skip(&format!(
            "{exporter} is not installed (apt-get install {package})"
        ));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = dir.path().join("traffic.pcap");
    // Recorded minutes ago: exporters then see flows from before they started.
    let truth = write_pcap(&pcap, Duration::from_secs(300));
    for case in cases {
        let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = sock.local_addr().expect("addr").port();
        let mut cmd = command(case, &pcap, port, dir.path());
        cmd.stdout(Stdio::null());
        check(case, cmd, &sock, &truth);
    }
}

#[test]
fn softflowd_v5_v9_ipfix_flows_equal_the_pcap_and_nfdump() {
    let cases = [
        Case {
            name: "softflowd v5",
            version: 5,
            nfdump_times_are_right: true,
            early_ms: 0,
        },
        Case {
            name: "softflowd v9",
            version: 9,
            nfdump_times_are_right: false,
            early_ms: 1000,
        },
        Case {
            name: "softflowd IPFIX",
            version: 10,
            nfdump_times_are_right: false,
            early_ms: 0,
        },
    ];
    exporter_test("softflowd", "softflowd", &cases, |case, pcap, port, _| {
        let mut cmd = Command::new("softflowd");
        cmd.arg("-r")
            .arg(pcap)
            .args(["-n", &format!("127.0.0.1:{port}")])
            .args(["-v", &case.version.to_string()]);
        cmd
    });
}

#[test]
fn pmacct_nfprobe_v9_ipfix_flows_equal_the_pcap_and_nfdump() {
    let cases = [
        Case {
            name: "pmacct nfprobe v9",
            version: 9,
            nfdump_times_are_right: true,
            early_ms: 1000,
        },
        Case {
            name: "pmacct nfprobe IPFIX",
            version: 10,
            nfdump_times_are_right: true,
            early_ms: 0,
        },
    ];
    exporter_test("pmacctd", "pmacct", &cases, |case, pcap, port, dir| {
        let conf = dir.join(format!("pmacctd-{}.conf", case.version));
        std::fs::write(
            &conf,
            format!(
                "daemonize: false\nplugins: nfprobe\npcap_savefile: {}\n\
                 pcap_savefile_wait: false\nnfprobe_receiver: 127.0.0.1:{port}\n\
                 nfprobe_version: {}\naggregate: src_host, dst_host, src_port, dst_port, proto\n",
                pcap.display(),
                case.version
            ),
        )
        .expect("config");
        let mut cmd = Command::new("pmacctd");
        cmd.arg("-f").arg(&conf);
        cmd
    });
}
