//! Flows. Two sources end in the same [`Flow`]: the NetFlow v5/v9/IPFIX receiver
//! ([`netflow`], IANA elements mapped once in [`elements`], empty IPFIX elements made readable by
//! [`varlen`], fixed-length records read without the parser by [`layouts`], templates kept
//! across restarts by
//! [`templates`]) and the packet capture ([`capture`]: frames decoded by [`packet`], kept or not by
//! [`filter`], folded into flows by [`table`]). [`Flow::encode`] is the one place a flow becomes an event with
//! the flow fields of the event schema; the collector adds those that follow from the others
//! at ingest (`vigil_schema::flow::complete`: totals, duration, transport name, TCP flag names)
//! and its Community ID (`vigil_schema::community_id`).
//!
//! # Invariants
//! - `source` is the side that initiated the flow where it is known (the first packet seen,
//!   or the exporter's forward direction); `source.bytes`/`source.packets` count what it sent,
//!   `destination.*` what came back (only when the source of the flow knows it).
//! - `network.bytes` and `network.packets` are the totals of both directions, at the IP layer
//!   (as NetFlow counts them), scaled by the sampling rate when the exporter samples.

pub mod capture;
pub mod elements;
pub mod filter;
pub mod layouts;
pub mod netflow;
pub mod packet;
pub mod pcap;
pub mod table;
pub mod templates;
pub mod varlen;

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde_json::Value;
use vigil_schema::fields::{self as f, Key};
use vigil_schema::flow::complete;
use vigil_schema::{Event, EventKind, Fields, binary};

/// Room for one flow's encoded event: about 100 B with wire version 4, more with further
/// fields (the writer grows past it when needed).
pub const EVENT_BYTES: usize = 256;

/// `at` in nanoseconds since the Unix epoch, as a flow keeps its times (`None` outside
/// i64 nanoseconds: before 1677 or after 2262).
pub fn unix_ns(at: DateTime<Utc>) -> Option<i64> {
    at.timestamp_nanos_opt()
}

/// One flow record, whatever produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub src: Option<IpAddr>,
    pub dst: Option<IpAddr>,
    pub src_port: u16,
    pub dst_port: u16,
    /// IANA protocol number.
    pub proto: Option<u8>,
    /// Bytes and packets the source sent.
    pub bytes: u64,
    pub packets: u64,
    /// Bytes and packets the destination sent back, when the exporter is bidirectional.
    pub rev_bytes: Option<u64>,
    pub rev_packets: Option<u64>,
    /// TCP flags seen in either direction (the low 9 bits of the TCP header's flags).
    pub tcp_flags: u16,
    /// ICMP type and code (ICMP flows have no ports).
    pub icmp: Option<(u8, u8)>,
    /// First and last packet, in nanoseconds since the Unix epoch (integers rather than
    /// chrono's times: making and taking apart a `DateTime` per time was a tenth of a
    /// NetFlow record's work).
    pub start: Option<i64>,
    pub end: Option<i64>,
    /// The exporter's address (NetFlow) or the capturing agent's interface (capture: unset).
    pub observer: Option<IpAddr>,
    /// `event.dataset`: `flow.netflow`, `flow.ipfix`, `flow.capture`.
    pub dataset: &'static str,
    /// Further fields, already under their event names (interfaces, AS numbers, NAT, MPLS,
    /// sampling, vendor elements kept raw), in the order the record has them; a name set
    /// twice keeps the last value.
    pub extra: Vec<(Key, Value)>,
}

impl Flow {
    pub fn new(dataset: &'static str) -> Flow {
        Flow {
            src: None,
            dst: None,
            src_port: 0,
            dst_port: 0,
            proto: None,
            bytes: 0,
            packets: 0,
            rev_bytes: None,
            rev_packets: None,
            tcp_flags: 0,
            icmp: None,
            start: None,
            end: None,
            observer: None,
            dataset,
            extra: Vec::new(),
        }
    }

    /// Makes this flow a new one of its dataset, keeping the memory of `extra` (field by
    /// field: building a new flow and dropping the old one was a tenth of reading a record).
    pub fn clear(&mut self) {
        let Flow {
            src,
            dst,
            src_port,
            dst_port,
            proto,
            bytes,
            packets,
            rev_bytes,
            rev_packets,
            tcp_flags,
            icmp,
            start,
            end,
            observer,
            dataset: _,
            extra,
        } = self;
        (*src, *dst, *observer) = (None, None, None);
        (*src_port, *dst_port, *tcp_flags) = (0, 0, 0);
        (*proto, *icmp) = (None, None);
        (*bytes, *packets, *rev_bytes, *rev_packets) = (0, 0, None, None);
        (*start, *end) = (None, None);
        extra.clear();
    }

    /// The value of a field of `extra` (the last, if it was set twice).
    pub fn extra_field(&self, name: &str) -> Option<&Value> {
        self.extra
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }

    /// The event of this flow, as [`Flow::encode`] writes it and [`complete`] completes it.
    pub fn into_event(self, now: DateTime<Utc>) -> Event {
        let mut w = binary::Writer::with_capacity(EVENT_BYTES);
        self.encode(now, None, &mut w);
        let mut e = binary::read_events(w.events())
            .ok()
            .and_then(|mut one| one.pop())
            .expect("a flow's own encoding reads back");
        complete(&mut e);
        e
    }

    /// Writes the event of this flow into `out`, field by field (the one place a flow becomes
    /// an event: a receiver writes thousands a second, and building an [`Event`] first cost
    /// more than the rest of the work). `customer` as the source attributed it. Fields that
    /// follow from others are left to [`complete`] (`@timestamp` among them, the flow's end
    /// or else its start: written here only for a flow with neither, as `now`), and TCP
    /// flags are written as their number.
    pub fn encode(&self, now: DateTime<Utc>, customer: Option<&str>, out: &mut binary::Writer) {
        let mut ev = out.event();
        if self.end.or(self.start).is_none() {
            ev.time(f::TIMESTAMP, now);
        }
        // Fields named by constants, compared by their address with the names of the event
        // before (a flow event is twenty fields; comparing their bytes was a sixth of its
        // cost). Those every flow of a source has come first and those that depend on the
        // protocol last, so that a UDP flow after a TCP one still has the same name at each
        // place but the last (a name at another place than before is written in full).
        let mut k = ev.known();
        k.keyword(f::EVENT_KIND, EventKind::Flow.as_str());
        k.keyword(f::EVENT_DATASET, self.dataset);
        if let Some(ip) = self.src {
            k.ip(f::SOURCE_IP, ip);
        }
        if let Some(ip) = self.dst {
            k.ip(f::DESTINATION_IP, ip);
        }
        if let Some(p) = self.proto {
            k.keyword(f::NETWORK_IANA_NUMBER, decimal(p));
        }
        k.u64(f::SOURCE_BYTES, self.bytes);
        k.u64(f::SOURCE_PACKETS, self.packets);
        if let Some(b) = self.rev_bytes {
            k.u64(f::DESTINATION_BYTES, b);
        }
        if let Some(p) = self.rev_packets {
            k.u64(f::DESTINATION_PACKETS, p);
        }
        if let Some(s) = self.start {
            k.time_ns(f::EVENT_START, s);
        }
        if let Some(e) = self.end {
            k.time_ns(f::EVENT_END, e);
        }
        if let Some(ip) = self.observer {
            k.ip(f::OBSERVER_IP, ip);
        }
        for (name, v) in &self.extra {
            k.value(name, v);
        }
        if matches!(self.proto, Some(6 | 17 | 132)) {
            k.u64(f::SOURCE_PORT, self.src_port.into());
            k.u64(f::DESTINATION_PORT, self.dst_port.into());
        }
        if let Some((ty, code)) = self.icmp {
            k.u64(f::ICMP_TYPE, ty.into());
            k.u64(f::ICMP_CODE, code.into());
        }
        if self.proto == Some(6) {
            k.u64(f::TCP_FLAGS, self.tcp_flags.into());
        }
        if let Some(c) = customer {
            ev.str(f::CUSTOMER, c);
        }
    }
}

/// `n` in decimal, as a constant (compared by address when it repeats: see
/// [`binary::Known::keyword`]).
fn decimal(n: u8) -> &'static str {
    let n = usize::from(n);
    let skip = usize::from(n < 100) + usize::from(n < 10);
    DECIMALS.get(3 * n + skip..3 * n + 3).unwrap_or_default()
}

/// 000, 001, ... 255: the numbers of [`decimal`], three digits each.
const DECIMALS: &str = {
    const BYTES: [u8; 768] = {
        let mut b = [0u8; 768];
        let mut n = 0;
        while n < 256 {
            b[3 * n] = b'0' + (n / 100) as u8;
            b[3 * n + 1] = b'0' + (n / 10 % 10) as u8;
            b[3 * n + 2] = b'0' + (n % 10) as u8;
            n += 1;
        }
        b
    };
    match std::str::from_utf8(&BYTES) {
        Ok(s) => s,
        Err(_) => panic!("ASCII digits"),
    }
};

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_schema::community_id;

    #[test]
    fn a_bidirectional_tcp_flow_becomes_an_event_with_totals_and_its_community_id() {
        let mut fl = Flow::new("flow.capture");
        fl.src = Some("1.2.3.4".parse().expect("ip"));
        fl.dst = Some("5.6.7.8".parse().expect("ip"));
        fl.src_port = 1122;
        fl.dst_port = 3344;
        fl.proto = Some(6);
        fl.bytes = 100;
        fl.packets = 2;
        fl.rev_bytes = Some(50);
        fl.rev_packets = Some(1);
        fl.tcp_flags = 0x12;
        let ev = fl.into_event(Utc::now());
        assert_eq!(ev.get_u64(f::NETWORK_BYTES), Some(150));
        assert_eq!(ev.get_u64(f::NETWORK_PACKETS), Some(3));
        assert_eq!(ev.get_str(f::NETWORK_TRANSPORT), Some("tcp"));
        // The collector adds it, from the fields written here.
        assert_eq!(ev.get(f::NETWORK_COMMUNITY_ID), None);
        assert_eq!(
            community_id::of_event(&ev).as_deref(),
            Some("1:wCb3OG7yAFWelaUydu0D+125CLM=")
        );
        assert_eq!(
            ev.get(f::TCP_FLAGS),
            Some(&serde_json::json!(["SYN", "ACK"]))
        );
    }

    /// The agent writes only what does not follow from the rest; [`complete`] adds the rest
    /// as the agent used to write it, once, and leaves other events and given fields alone.
    #[test]
    fn what_a_flow_event_leaves_out_is_completed_once() {
        let mut fl = Flow::new("flow.capture");
        fl.src = Some("1.2.3.4".parse().expect("ip"));
        fl.dst = Some("5.6.7.8".parse().expect("ip"));
        (fl.proto, fl.bytes, fl.packets) = (Some(47), 300, 3);
        fl.start = Some(1_790_000_000_000_000_000);
        let mut w = binary::Writer::default();
        fl.encode(Utc::now(), None, &mut w);
        let sent = binary::read_events(w.events())
            .expect("reads")
            .pop()
            .expect("one");
        for left in [
            f::TIMESTAMP,
            f::EVENT_DURATION,
            f::NETWORK_TRANSPORT,
            f::NETWORK_BYTES,
            f::NETWORK_PACKETS,
        ] {
            assert_eq!(sent.get(left), None, "{left}");
        }
        let mut e = sent.clone();
        complete(&mut e);
        assert_eq!(e.get_str(f::TIMESTAMP), Some("2026-09-21T14:13:20Z"));
        assert_eq!(e.get_str(f::NETWORK_TRANSPORT), Some("gre"));
        assert_eq!(e.get_u64(f::NETWORK_BYTES), Some(300));
        assert_eq!(e.get_u64(f::NETWORK_PACKETS), Some(3));
        assert_eq!(e.get(f::TCP_FLAGS), None, "not TCP");
        assert_eq!(e.get(f::EVENT_DURATION), None, "no end");
        assert_eq!(e.len(), sent.len() + 4);
        // With an end too: the duration, and the end is the time of the event.
        let mut ended = fl.clone();
        ended.end = Some(1_790_000_001_500_000_000);
        let ended = ended.into_event(Utc::now());
        assert_eq!(ended.get_u64(f::EVENT_DURATION), Some(1_500_000_000));
        assert_eq!(
            ended.get_str(f::TIMESTAMP),
            Some("2026-09-21T14:13:21.500Z")
        );
        let once = e.clone();
        complete(&mut e);
        assert_eq!(e, once, "complete twice is complete once");

        // Given fields are kept; a protocol without a keyword is named by its number; events
        // of other kinds are not flows.
        let mut given = sent.clone();
        given.set_u64(f::NETWORK_BYTES, 7);
        given.set_str(f::NETWORK_IANA_NUMBER, "253");
        complete(&mut given);
        assert_eq!(given.get_u64(f::NETWORK_BYTES), Some(7));
        assert_eq!(given.get_str(f::NETWORK_TRANSPORT), Some("253"));
        let mut syslog = sent;
        syslog.set_str(f::EVENT_KIND, "syslog");
        let before = syslog.clone();
        complete(&mut syslog);
        assert_eq!(syslog, before);
    }

    #[test]
    fn protocol_numbers_are_written_in_decimal() {
        for (n, text) in [
            (0, "0"),
            (6, "6"),
            (17, "17"),
            (99, "99"),
            (100, "100"),
            (255, "255"),
        ] {
            assert_eq!(decimal(n), text);
        }
    }

    #[test]
    fn icmp_flows_have_no_ports_but_type_and_code() {
        let mut fl = Flow::new("flow.capture");
        fl.src = Some("1.2.3.4".parse().expect("ip"));
        fl.dst = Some("5.6.7.8".parse().expect("ip"));
        fl.proto = Some(1);
        fl.icmp = Some((8, 0));
        let ev = fl.into_event(Utc::now());
        assert_eq!(ev.get(f::SOURCE_PORT), None);
        assert_eq!(ev.get_u64(f::ICMP_TYPE), Some(8));
        assert_eq!(
            community_id::of_event(&ev).as_deref(),
            Some("1:crodRHL2FEsHjbv3UkRrfbs4bZ0=")
        );
    }

    /// What the collector works out from an event is what the flow itself gives, whatever
    /// the protocol and whichever fields the event has for it.
    #[test]
    fn the_community_id_of_a_flows_event_is_the_flows() {
        let ips = ["10.0.0.1", "10.0.0.2", "2001:db8::1", "2001:db8::2"];
        let mut n = 0;
        for proto in [
            None,
            Some(1),
            Some(6),
            Some(17),
            Some(47),
            Some(58),
            Some(132),
        ] {
            for (s, d) in [(0, 1), (1, 0), (2, 3), (0, 3)] {
                for icmp in [None, Some((8u8, 0u8)), Some((3, 1)), Some((129, 0))] {
                    for (sp, dp) in [(0, 0), (1234, 80), (80, 1234), (0x0800, 0x0301)] {
                        // An ICMP flow without type and code has no ports either: both
                        // sources put what an exporter sent in ports into `icmp`.
                        if matches!(proto, Some(1 | 58)) && icmp.is_none() && sp + dp > 0 {
                            continue;
                        }
                        let mut fl = Flow::new("flow.netflow");
                        fl.src = ips[s].parse().ok();
                        fl.dst = ips[d].parse().ok();
                        (fl.proto, fl.icmp, fl.src_port, fl.dst_port) = (proto, icmp, sp, dp);
                        let (src, dst) = (fl.src.expect("ip"), fl.dst.expect("ip"));
                        let want = proto.and_then(|p| {
                            let (a, b) = match icmp {
                                Some((ty, code)) if matches!(p, 1 | 58) => (ty.into(), code.into()),
                                _ => (sp, dp),
                            };
                            community_id::community_id(0, src, dst, a, b, p)
                        });
                        let ev = fl.into_event(Utc::now());
                        assert_eq!(community_id::of_event(&ev), want, "{ev:?}");
                        n += usize::from(want.is_some());
                    }
                }
            }
        }
        assert!(n >= 250, "{n}");
    }
}
