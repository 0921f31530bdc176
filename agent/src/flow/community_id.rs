//! Community ID v1 (<https://github.com/corelight/community-id-spec>): the same flow gets the
//! same id in Vigil, Zeek, Suricata and Elastic, whichever direction a record saw it in.
//!
//! The hash covers seed, both addresses, protocol and both ports (ICMP: type and code mapped to
//! their request/reply counterpart), ordered so that the smaller endpoint comes first.

use std::net::IpAddr;

use base64::Engine;
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
) -> Option<String> {
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
    let mut id = String::with_capacity(30);
    id.push_str("1:");
    base64::engine::general_purpose::STANDARD.encode_string(digest, &mut id);
    Some(id)
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
