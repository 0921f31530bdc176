//! What the flow tests share: skips that CI refuses, and nfdump's collector as an oracle.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "../../../tests/support/skip.rs"]
mod skip_support;
pub use skip_support::skip;

pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Why nfdump cannot be the oracle here, if it cannot.
pub fn no_nfdump() -> Option<String> {
    ["nfcapd", "nfdump"]
        .into_iter()
        .find(|p| !have(p))
        .map(|p| format!("{p} is not installed (apt-get install nfdump)"))
}

/// Whether something listens on UDP `port` of 127.0.0.1 (from /proc, so that nothing is
/// sent to the collector before it reads).
fn udp_listening(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/udp").is_ok_and(|t| {
        t.lines()
            .any(|l| l.split_whitespace().nth(1) == Some(&want))
    })
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("port")
        .port()
}

/// One flow as nfdump stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NfFlow {
    pub proto: u8,
    pub src: IpAddr,
    pub src_port: u16,
    pub dst: IpAddr,
    /// For ICMP, the type (nfdump prints type.code there).
    pub dst_port: u16,
    pub packets: u64,
    pub bytes: u64,
    /// Milliseconds since the epoch.
    pub first_ms: Option<i64>,
}

/// The flows nfdump's `nfcapd` stores of `datagrams`, read back with `nfdump`. Each
/// original sender gets a loopback address of its own (127.0.0.1, .2, ...), so that the
/// templates of different exporters stay apart there as in the agent.
pub fn nfdump(datagrams: &[(SocketAddr, Vec<u8>)], dir: &Path) -> Vec<NfFlow> {
    let port = free_udp_port();
    let files = dir.join("nfcapd");
    std::fs::create_dir_all(&files).expect("dir");
    let mut nfcapd = Command::new("nfcapd")
        .args([
            "-b",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "3600",
            "-w",
        ])
        .arg(&files)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nfcapd");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !udp_listening(port) {
        assert!(Instant::now() < deadline, "nfcapd did not bind port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut senders: BTreeMap<SocketAddr, UdpSocket> = BTreeMap::new();
    for (from, d) in datagrams {
        let n = senders.len();
        let tx = senders.entry(*from).or_insert_with(|| {
            assert!(n < 250, "too many exporters to give each an address");
            UdpSocket::bind(("127.0.0.".to_owned() + &(n + 1).to_string(), 0)).expect("bind")
        });
        tx.send_to(d, ("127.0.0.1", port)).expect("send");
        // A datagram at a time: nfcapd reads one socket, and a burst would overrun it.
        std::thread::sleep(Duration::from_micros(200));
    }
    // nfcapd writes its file when it stops; SIGTERM is its orderly stop.
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("kill")
        .args(["-TERM", &nfcapd.id().to_string()])
        .status();
    let _ = nfcapd.wait();
    let out = Command::new("nfdump")
        .env("TZ", "UTC")
        .arg("-R")
        .arg(&files)
        .args([
            "-q",
            "-N",
            "-6",
            "-o",
            "fmt:%tsr|%pr|%sa|%sp|%da|%dp|%pkt|%byt",
        ])
        .output()
        .expect("run nfdump");
    assert!(out.status.success(), "nfdump: {out:?}");
    let mut flows = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('|').map(str::trim).collect();
        if f.len() != 8 {
            continue;
        }
        let proto = match f[1] {
            "TCP" => 6,
            "UDP" => 17,
            "ICMP" => 1,
            "ICMP6" => 58,
            p => p.parse().unwrap_or(255),
        };
        let ms = |s: &str| -> Option<i64> {
            let (secs, frac) = s.split_once('.')?;
            Some(secs.parse::<i64>().ok()? * 1000 + frac.parse::<i64>().ok()?)
        };
        // ICMP: nfdump prints type.code as the destination port.
        let port = |s: &str| {
            s.split('.')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0)
        };
        flows.push(NfFlow {
            proto,
            src: f[2].parse().expect("address"),
            src_port: port(f[3]),
            dst: f[4].parse().expect("address"),
            dst_port: port(f[5]),
            packets: f[6].parse().expect("packets"),
            bytes: f[7].parse().expect("bytes"),
            first_ms: ms(f[0]),
        });
    }
    flows
}
