//! What the collector derives from a flow event at ingest: the fields that follow from the
//! others, which agents leave out ([`complete`]). Written per flow, they were a fifth of a
//! flow event's bytes and of the agent's work to write it, and a flow is written far more
//! often than it is read; completed once at ingest, stored and searched events have them all.
//!
//! # Invariants
//! - Only flow events are changed, and only fields they lack are added (completing twice is
//!   completing once).
//! - The result depends on the event alone: a batch replayed after a crash completes the same.

use chrono::DateTime;
use serde_json::Value;

use crate::fields as f;
use crate::{Event, EventKind};

/// Adds to a flow event the fields that follow from others, where it lacks them: what
/// the agent's `Flow::encode` leaves out, and the collector fills in at ingest (agents send less:
/// written per flow they were a fifth of a flow event's bytes and of the agent's work to
/// write it, and a flow is written far more often than it is read).
/// - `@timestamp`: `event.end`, else `event.start`;
/// - `event.duration`: from `event.start` to `event.end`, in nanoseconds;
/// - `network.transport`: the IANA keyword of `network.iana_number` (else the number);
/// - `network.bytes` and `network.packets`: the totals of both directions;
/// - `tcp.flags` sent as their number: their names (`["SYN", "ACK"]`).
///
/// Events of other kinds, and flows that have these fields, are left as they are.
pub fn complete(e: &mut Event) {
    if e.get_str(f::EVENT_KIND) != Some(EventKind::Flow.as_str()) {
        return;
    }
    if e.get(f::TIMESTAMP).is_none()
        && let Some(at) = e.get(f::EVENT_END).or(e.get(f::EVENT_START)).cloned()
    {
        e.set(f::TIMESTAMP, at);
    }
    if e.get(f::EVENT_DURATION).is_none()
        && let (Some(start), Some(end)) = (e.get_str(f::EVENT_START), e.get_str(f::EVENT_END))
        && let (Ok(start), Ok(end)) = (
            DateTime::parse_from_rfc3339(start),
            DateTime::parse_from_rfc3339(end),
        )
        && let Some(ns) = (end - start).num_nanoseconds()
    {
        // ECS: nanoseconds.
        e.set_u64(f::EVENT_DURATION, ns.max(0) as u64);
    }
    if e.get(f::NETWORK_TRANSPORT).is_none()
        && let Some(number) = e.get_str(f::NETWORK_IANA_NUMBER)
    {
        let name = number
            .parse::<u8>()
            .ok()
            .and_then(transport_keyword)
            .unwrap_or(number);
        e.set_str(f::NETWORK_TRANSPORT, name.to_owned());
    }
    for (total, sent, back) in [
        (f::NETWORK_BYTES, f::SOURCE_BYTES, f::DESTINATION_BYTES),
        (
            f::NETWORK_PACKETS,
            f::SOURCE_PACKETS,
            f::DESTINATION_PACKETS,
        ),
    ] {
        if e.get(total).is_none()
            && let Some(n) = e.get_u64(sent)
        {
            e.set_u64(total, n.saturating_add(e.get_u64(back).unwrap_or(0)));
        }
    }
    if e.get(f::EVENT_ACTION).is_none()
        && let Some((action, outcome)) = verdict(e)
    {
        e.set_str(f::EVENT_ACTION, action);
        if e.get(f::EVENT_OUTCOME).is_none() {
            e.set_str(f::EVENT_OUTCOME, outcome);
        }
    }
    if let Some(bits) = e.get_u64(f::TCP_FLAGS) {
        let mut names = [""; TCP_FLAGS.len()];
        let n = tcp_flags(bits as u16, &mut names);
        e.set(f::TCP_FLAGS, Value::from(&names[..n]));
    }
}

/// What the exporter says it did with a flow, as ECS `event.action` and `event.outcome`,
/// where it says so: IPFIX/NetFlow forwarding status (IE 89; the status is the top two bits
/// of its first byte, RFC 7270) and Cisco NSEL firewall events (IE 233). Nothing is guessed
/// for flows without either.
fn verdict(e: &Event) -> Option<(&'static str, &'static str)> {
    if let Some(v) = e.get_u64("netflow.forwarding_status") {
        let status = if v > 0xff { v >> 30 } else { v >> 6 } & 3;
        return match status {
            1 => Some(("forward", "success")),
            2 => Some(("drop", "failure")),
            3 => Some(("consume", "success")),
            _ => None,
        };
    }
    match e.get_u64("netflow.firewall_event")? {
        // Created, deleted, updated: a connection the firewall let through.
        1 | 2 | 5 => Some(("accept", "success")),
        3 => Some(("deny", "failure")),
        _ => None,
    }
}

/// ECS `network.transport`: the lowercase IANA keyword of the common protocols (else the
/// number is written).
fn transport_keyword(proto: u8) -> Option<&'static str> {
    Some(match proto {
        1 => "icmp",
        2 => "igmp",
        6 => "tcp",
        17 => "udp",
        41 => "ipv6",
        47 => "gre",
        50 => "esp",
        51 => "ah",
        58 => "ipv6-icmp",
        89 => "ospf",
        112 => "vrrp",
        132 => "sctp",
        _ => return None,
    })
}

const TCP_FLAGS: [&str; 9] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR", "NS"];

/// TCP flags as names (`["SYN", "ACK"]`): those set in `bits` into `names`, in header
/// order; how many.
fn tcp_flags(bits: u16, names: &mut [&'static str; TCP_FLAGS.len()]) -> usize {
    let mut n = 0;
    for (i, name) in TCP_FLAGS.iter().enumerate() {
        if bits & (1 << i) != 0 {
            names[n] = name;
            n += 1;
        }
    }
    n
}
