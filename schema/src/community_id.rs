//! Community ID v1 (<https://github.com/corelight/community-id-spec>): the same flow gets the
//! same id in Vigil, Zeek, Suricata and Elastic, whichever direction a record saw it in.
//!
//! The hash covers seed, both addresses, protocol and both ports (ICMP: type and code mapped to
//! their request/reply counterpart), ordered so that the smaller endpoint comes first.
//!
//! The collector adds it to flow events at ingest ([`of_event`], from the fields the event
//! has), not the agent: as in Elastic's ingest pipelines. Its 28 characters of Base64 were
//! most of a compressed flow event's bytes and, with the hash, a tenth of an agent's work per
//! flow, and an agent at a busy edge has less to spare than a collector.

use std::net::IpAddr;

use crate::fields as f;
use crate::{Event, EventKind};
use sha1::Digest;

const ICMP: u8 = 1;
const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMPV6: u8 = 58;
const SCTP: u8 = 132;

/// The counterpart of an ICMP message type that has one (echo ↔ echo reply, …).
fn icmp_counterpart(proto: u8, ty: u16) -> Option<u16> {
    let pairs: &[(u16, u16)] = match proto {
        ICMP => &[(8, 0), (13, 14), (15, 16), (10, 9), (17, 18)],
        _ => &[(128, 129), (133, 134), (135, 136), (130, 131), (144, 145)],
    };
    pairs.iter().find_map(|&(a, b)| {
        if ty == a {
            Some(b)
        } else if ty == b {
            Some(a)
        } else {
            None
        }
    })
}

/// A Community ID's text (`1:` and 28 characters of Base64), kept on the stack: flows are
/// written by the hundred thousand a second.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Id([u8; 30]);

impl std::ops::Deref for Id {
    type Target = str;

    fn deref(&self) -> &str {
        // Only ASCII is written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Debug for Id {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self)
    }
}

/// The Community ID of a flow. `sport`/`dport` are ports for TCP, UDP and SCTP, the ICMP type
/// and code for ICMP and ICMPv6, and ignored for other protocols. `None` when the two
/// addresses are of different families.
pub fn community_id(
    seed: u16,
    src: IpAddr,
    dst: IpAddr,
    sport: u16,
    dport: u16,
    proto: u8,
) -> Option<Id> {
    let (v4a, v4b, v6a, v6b);
    let (src, dst): (&[u8], &[u8]) = match (src, dst) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            (v4a, v4b) = (a.octets(), b.octets());
            (&v4a, &v4b)
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            (v6a, v6b) = (a.octets(), b.octets());
            (&v6a, &v6b)
        }
        _ => return None,
    };
    let mut dport = dport;
    let mut one_way = false;
    if proto == ICMP || proto == ICMPV6 {
        // For ICMP the "ports" are the type and, for the other end, the counterpart type;
        // a type without one (unreachable, …) is one-way and keeps its code.
        match icmp_counterpart(proto, sport) {
            Some(other) => dport = other,
            None => one_way = true,
        }
    }
    let ordered = one_way || (src, sport) < (dst, dport);
    let (a, b, pa, pb) = if ordered {
        (src, dst, sport, dport)
    } else {
        (dst, src, dport, sport)
    };
    // The hash input in one buffer: one update instead of six.
    let mut input = [0u8; 2 + 16 + 16 + 2 + 4];
    let mut n = 0;
    for part in [&seed.to_be_bytes()[..], a, b, &[proto, 0]] {
        input[n..n + part.len()].copy_from_slice(part);
        n += part.len();
    }
    if matches!(proto, ICMP | TCP | UDP | ICMPV6 | SCTP) {
        input[n..n + 2].copy_from_slice(&pa.to_be_bytes());
        input[n + 2..n + 4].copy_from_slice(&pb.to_be_bytes());
        n += 4;
    }
    let digest: [u8; 20] = sha1::Sha1::digest(&input[..n]).into();
    Some(Id(text(&digest)))
}

/// The Community ID of a flow event (`event.kind = flow`), from its addresses, protocol
/// number and ports, or ICMP type and code, as the agent writes them ([`crate::flow::Flow`]);
/// `None` for another kind of event or when a part is missing.
pub fn of_event(e: &Event) -> Option<Id> {
    if e.kind() != Some(EventKind::Flow) {
        return None;
    }
    let ip = |name: &str| e.get_str(name)?.parse::<IpAddr>().ok();
    let proto: u8 = e.get_str(f::NETWORK_IANA_NUMBER)?.parse().ok()?;
    let number = |name: &str| {
        e.get_u64(name)
            .and_then(|n| u16::try_from(n).ok())
            .unwrap_or(0)
    };
    let (sport, dport) = match proto {
        ICMP | ICMPV6 if e.get(f::ICMP_TYPE).is_some() => {
            (number(f::ICMP_TYPE), number(f::ICMP_CODE))
        }
        _ => (number(f::SOURCE_PORT), number(f::DESTINATION_PORT)),
    };
    community_id(
        0,
        ip(f::SOURCE_IP)?,
        ip(f::DESTINATION_IP)?,
        sport,
        dport,
        proto,
    )
}

/// `1:` and the standard Base64 of a digest (20 bytes: six groups of three, then two bytes
/// and one `=`), written here: the general encoder cost a fifth of the id.
fn text(digest: &[u8; 20]) -> [u8; 30] {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut id = [b'='; 30];
    id[..2].copy_from_slice(b"1:");
    let sextet = |bits: u32, shift: u32| ALPHABET[(bits >> shift & 63) as usize];
    for (group, out) in digest.chunks(3).zip(id[2..].chunks_mut(4)) {
        let bits = group
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        // A group of two bytes gives three characters; the fourth stays `=`.
        let chars = group.len() + 1;
        for (i, c) in out.iter_mut().take(chars).enumerate() {
            *c = sextet(bits, 18 - 6 * i as u32);
        }
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    /// The spec's published vectors (its baseline, as in Zeek's and Vector's test suites).
    #[test]
    fn published_vectors() {
        let v6a = "fe80:1:203:405:607:809:a0b:c0d";
        let v6b = "fe80:1011:1213:1415:1617:1819:1a1b:1c1d";
        let cases = [
            (
                0,
                "1.2.3.4",
                "5.6.7.8",
                1122,
                3344,
                TCP,
                "1:wCb3OG7yAFWelaUydu0D+125CLM=",
            ),
            (
                0,
                "1.2.3.4",
                "5.6.7.8",
                1122,
                3344,
                UDP,
                "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=",
            ),
            (
                0,
                "1.2.3.4",
                "5.6.7.8",
                8,
                0,
                ICMP,
                "1:crodRHL2FEsHjbv3UkRrfbs4bZ0=",
            ),
            (
                0,
                v6a,
                v6b,
                128,
                0,
                ICMPV6,
                "1:0bf7hyMJUwt3fMED7z8LIfRpBeo=",
            ),
            (
                1,
                "1.2.3.4",
                "5.6.7.8",
                1122,
                3344,
                TCP,
                "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk=",
            ),
            (
                1,
                "1.2.3.4",
                "5.6.7.8",
                1122,
                3344,
                UDP,
                "1:OShq+iKDAMVouh/4bMxB9Sz4amw=",
            ),
            (
                1,
                "1.2.3.4",
                "5.6.7.8",
                8,
                0,
                ICMP,
                "1:9pr4ZGTICiuZoIh90RRYE2RyXpU=",
            ),
            (
                1,
                v6a,
                v6b,
                128,
                0,
                ICMPV6,
                "1:IO27GQzPuCtNnwFvjWALMHu5tJE=",
            ),
            (
                0,
                "1.2.3.4",
                "5.6.7.8",
                0,
                0,
                46,
                "1:ikv3kmf89luf73WPz1jOs49S768=",
            ),
        ];
        for (seed, s, d, sp, dp, proto, want) in cases {
            assert_eq!(
                community_id(seed, ip(s), ip(d), sp, dp, proto).as_deref(),
                Some(want),
                "{s}:{sp} -> {d}:{dp} proto {proto} seed {seed}"
            );
        }
    }

    #[test]
    fn the_ids_base64_is_the_standard_one() {
        use base64::Engine;
        for i in 0u32..2000 {
            let digest: [u8; 20] = sha1::Sha1::digest(i.to_le_bytes()).into();
            let want = base64::engine::general_purpose::STANDARD.encode(digest);
            assert_eq!(&*Id(text(&digest)), format!("1:{want}"));
        }
    }

    #[test]
    fn both_directions_agree() {
        let fwd = community_id(0, ip("5.6.7.8"), ip("1.2.3.4"), 3344, 1122, TCP);
        assert_eq!(fwd.as_deref(), Some("1:wCb3OG7yAFWelaUydu0D+125CLM="));
        // The echo reply of the spec's echo request.
        let reply = community_id(0, ip("5.6.7.8"), ip("1.2.3.4"), 0, 0, ICMP);
        assert_eq!(reply.as_deref(), Some("1:crodRHL2FEsHjbv3UkRrfbs4bZ0="));
        let v6reply = community_id(
            0,
            ip("fe80:1011:1213:1415:1617:1819:1a1b:1c1d"),
            ip("fe80:1:203:405:607:809:a0b:c0d"),
            129,
            0,
            ICMPV6,
        );
        assert_eq!(v6reply.as_deref(), Some("1:0bf7hyMJUwt3fMED7z8LIfRpBeo="));
        assert_eq!(
            community_id(0, ip("1.2.3.4"), ip("::1"), 1, 2, TCP),
            None,
            "mixed families have no id"
        );
    }
}
