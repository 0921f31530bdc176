//! What a pcap holds per connection, read by `tcpdump -r` (not by Vigil's own packet decoder,
//! whose output the tests check), and the same totals from the flow events Vigil stored.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

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

/// What a pcap file holds, per connection (IP lengths, as NetFlow counts them), as
/// `tcpdump -r FILE -nn -v -t` prints it: for IPv4 a header line with the protocol and the
/// IP length and the addresses on the line after; for IPv6 one line with both.
pub fn tcpdump_totals(path: &Path) -> FlowTotals {
    let out = Command::new("tcpdump")
        .args(["-r"])
        .arg(path)
        .args(["-nn", "-v", "-t"])
        .output()
        .expect("tcpdump runs");
    assert!(
        out.status.success(),
        "tcpdump -r {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    totals_of_tcpdump(&String::from_utf8_lossy(&out.stdout))
}

/// [`tcpdump_totals`] of tcpdump's text.
pub fn totals_of_tcpdump(text: &str) -> FlowTotals {
    let mut out = FlowTotals::new();
    let mut lines = text.lines();
    while let Some(l) = lines.next() {
        let (proto, length, addrs) = if let Some(h) = l.strip_prefix("IP (") {
            // `IP (tos 0x0, ..., proto TCP (6), length 60)` then `    A.p > B.q: ...`
            let proto = between(h, "proto ", ")").and_then(|p| between(p, "(", ""));
            let length = between(h, "length ", ")");
            let Some(next) = lines.next() else { break };
            (proto, length, next.trim().to_owned())
        } else if let Some(h) = l.strip_prefix("IP6 (") {
            // `IP6 (flowlabel .., hlim 64, next-header UDP (17) payload length: 33) A.p > B.q: ...`
            let proto = between(h, "next-header ", ")").and_then(|p| between(p, "(", ""));
            let payload = between(h, "payload length: ", ")");
            let length = payload
                .and_then(|p| p.parse::<u64>().ok())
                .map(|p| (p + 40).to_string());
            let rest = h
                .split_once("payload length: ")
                .and_then(|(_, r)| r.split_once(") "))
                .map(|(_, r)| r.to_owned());
            match (length, rest) {
                (Some(len), Some(rest)) => {
                    let proto = proto.map(str::to_owned);
                    add(&mut out, proto.as_deref(), Some(&len), &rest);
                }
                _ => panic!("tcpdump line not understood: {l}"),
            }
            continue;
        } else {
            continue;
        };
        add(&mut out, proto, length, &addrs);
    }
    out
}

/// The text of `s` after `start` up to `end` (to its end for an empty `end`).
fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = s.find(start)? + start.len();
    let rest = &s[from..];
    Some(if end.is_empty() {
        rest
    } else {
        &rest[..rest.find(end)?]
    })
}

/// One packet of `proto` (its number, as tcpdump writes it in parentheses), `length` bytes,
/// between the addresses of `addrs` (`A.port > B.port: ...`, or without ports).
fn add(out: &mut FlowTotals, proto: Option<&str>, length: Option<&str>, addrs: &str) {
    let proto: u8 = proto
        .and_then(|p| p.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("no protocol number for {addrs}"));
    let length: u64 = length
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("no length for {addrs}"));
    let (a, b) = addrs
        .split_once(": ")
        .and_then(|(ends, _)| ends.split_once(" > "))
        .unwrap_or_else(|| panic!("no addresses in {addrs}"));
    let end = |e: &str| -> (String, u16) {
        if (proto == 6 || proto == 17)
            && let Some((ip, port)) = e.rsplit_once('.')
            && let Ok(port) = port.parse()
        {
            return (ip.to_owned(), port);
        }
        (e.to_owned(), 0)
    };
    let e = out.entry(flow_key(proto, end(a), end(b))).or_default();
    e.0 += length;
    e.1 += 1;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcpdump_text_is_summed_per_connection() {
        let text = "IP (tos 0x0, ttl 64, id 1, offset 0, flags [DF], proto TCP (6), length 60)
    10.0.0.1.40000 > 10.0.0.2.8080: Flags [S], cksum 0x1 (incorrect -> 0x2), seq 1, win 64240, length 0
IP (tos 0x0, ttl 64, id 0, offset 0, flags [DF], proto TCP (6), length 52)
    10.0.0.2.8080 > 10.0.0.1.40000: Flags [S.], seq 2, ack 2, win 65160, length 0
IP (tos 0x0, ttl 64, id 7, offset 0, flags [DF], proto ICMP (1), length 84)
    10.0.0.1 > 10.0.0.2: ICMP echo request, id 3, seq 1, length 64
ARP, Ethernet (len 6), IPv4 (len 4), Request who-has 10.0.0.2 tell 10.0.0.1, length 28
IP6 (flowlabel 0x5, hlim 64, next-header UDP (17) payload length: 33) ::1.5000 > ::1.53: [udp sum ok] 1+ A? x. (25)
";
        let t = totals_of_tcpdump(text);
        let k = |p, a: &str, pa, b: &str, pb| flow_key(p, (a.into(), pa), (b.into(), pb));
        assert_eq!(t[&k(6, "10.0.0.1", 40000, "10.0.0.2", 8080)], (112, 2));
        assert_eq!(t[&k(1, "10.0.0.1", 0, "10.0.0.2", 0)], (84, 1));
        assert_eq!(t[&k(17, "::1", 5000, "::1", 53)], (73, 1));
        assert_eq!(t.len(), 3);
    }
}
