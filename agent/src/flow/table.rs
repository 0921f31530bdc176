//! The flow table of the packet capture: packets folded into bidirectional flows.
//!
//! # Invariants
//! - A flow's key is the same for both directions; its `source` is the sender of the first
//!   packet seen (for TCP, the sender of a lone SYN when the SYN is seen first).
//! - A flow ends when idle for `idle_timeout`, when older than `active_timeout` (the next
//!   packet starts a new record), on TCP RST, or `close_linger` after FIN was seen from both
//!   sides (so the last ACK still counts). The table never holds more than `max_flows`: when
//!   full, the least recently active flow is exported early (counted as `evicted`).
//! - Time is what the caller passes in: tests drive it, the capture passes the clock.

use std::net::IpAddr;
use std::num::NonZeroUsize;
use std::time::Duration;

use chrono::{DateTime, Utc};
use lru::LruCache;

use super::Flow;
use super::packet::PacketInfo;

/// Why a flow left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum End {
    Idle,
    Active,
    Fin,
    Rst,
    Evicted,
    Shutdown,
}

impl End {
    pub fn as_str(self) -> &'static str {
        match self {
            End::Idle => "idle",
            End::Active => "active",
            End::Fin => "fin",
            End::Rst => "rst",
            End::Evicted => "evicted",
            End::Shutdown => "shutdown",
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct TableConfig {
    pub idle_timeout: Duration,
    pub active_timeout: Duration,
    pub close_linger: Duration,
    pub max_flows: usize,
}

/// Direction-free key: the lower endpoint first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    proto: u8,
    a: (IpAddr, u16),
    b: (IpAddr, u16),
}

#[derive(Debug)]
struct Entry {
    flow: Flow,
    first: DateTime<Utc>,
    last: DateTime<Utc>,
    fin_fwd: bool,
    fin_rev: bool,
    closed_at: Option<DateTime<Utc>>,
}

pub struct FlowTable {
    cfg: TableConfig,
    flows: LruCache<Key, Entry>,
}

impl FlowTable {
    pub fn new(cfg: TableConfig) -> FlowTable {
        let cap = NonZeroUsize::new(cfg.max_flows.max(1)).unwrap_or(NonZeroUsize::MIN);
        FlowTable {
            cfg,
            flows: LruCache::new(cap),
        }
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Adds one packet seen at `now`; flows it ends are pushed to `out`.
    pub fn add(&mut self, p: &PacketInfo<'_>, now: DateTime<Utc>, out: &mut Vec<(Flow, End)>) {
        let (sport, dport) = match p.icmp {
            // ICMP has no ports; type and code would split an echo from its reply, so ICMP
            // flows are keyed by addresses alone (the record keeps the first type and code).
            Some(_) => (0, 0),
            None => (p.sport, p.dport),
        };
        let (s, d) = ((p.src, sport), (p.dst, dport));
        let key = if s <= d {
            Key {
                proto: p.proto,
                a: s,
                b: d,
            }
        } else {
            Key {
                proto: p.proto,
                a: d,
                b: s,
            }
        };
        // A flow past its active timeout is exported; this packet starts the next record.
        if let Some(e) = self.flows.peek(&key)
            && now - e.first >= chrono_dur(self.cfg.active_timeout)
            && let Some(e) = self.flows.pop(&key)
        {
            out.push((e.flow, End::Active));
        }
        if !self.flows.contains(&key) {
            let mut flow = Flow::new("flow.capture");
            flow.src = Some(p.src);
            flow.dst = Some(p.dst);
            flow.src_port = sport;
            flow.dst_port = dport;
            flow.proto = Some(p.proto);
            flow.icmp = p.icmp;
            flow.start = super::unix_ns(now);
            if matches!(p.proto, 6 | 17 | 132) || p.icmp.is_some() {
                flow.rev_bytes = Some(0);
                flow.rev_packets = Some(0);
            }
            let entry = Entry {
                flow,
                first: now,
                last: now,
                fin_fwd: false,
                fin_rev: false,
                closed_at: None,
            };
            if let Some((k, old)) = self.flows.push(key, entry)
                && k != key
            {
                out.push((old.flow, End::Evicted));
            }
        }
        let Some(e) = self.flows.get_mut(&key) else {
            return;
        };
        let fwd = e.flow.src == Some(p.src) && (p.icmp.is_some() || e.flow.src_port == sport);
        if fwd {
            e.flow.bytes += p.ip_bytes;
            e.flow.packets += 1;
        } else {
            *e.flow.rev_bytes.get_or_insert(0) += p.ip_bytes;
            *e.flow.rev_packets.get_or_insert(0) += 1;
        }
        e.flow.tcp_flags |= p.tcp_flags;
        e.last = now;
        e.flow.end = super::unix_ns(now);
        const FIN: u16 = 0x01;
        const RST: u16 = 0x04;
        if p.proto == 6 {
            if p.tcp_flags & RST != 0 {
                if let Some(e) = self.flows.pop(&key) {
                    out.push((e.flow, End::Rst));
                }
                return;
            }
            if p.tcp_flags & FIN != 0 {
                if fwd {
                    e.fin_fwd = true;
                } else {
                    e.fin_rev = true;
                }
                if e.fin_fwd && e.fin_rev && e.closed_at.is_none() {
                    e.closed_at = Some(now);
                }
            }
        }
    }

    /// Exports the flows that ended by `now`: idle ones and closed ones past their linger.
    pub fn expire(&mut self, now: DateTime<Utc>, out: &mut Vec<(Flow, End)>) {
        let idle = chrono_dur(self.cfg.idle_timeout);
        let linger = chrono_dur(self.cfg.close_linger);
        let ended: Vec<(Key, End)> = self
            .flows
            .iter()
            .filter_map(|(k, e)| {
                if e.closed_at.is_some_and(|c| now - c >= linger) {
                    Some((*k, End::Fin))
                } else if now - e.last >= idle {
                    Some((*k, End::Idle))
                } else {
                    None
                }
            })
            .collect();
        for (k, why) in ended {
            if let Some(e) = self.flows.pop(&k) {
                out.push((e.flow, why));
            }
        }
    }

    /// Exports every flow (at shutdown).
    pub fn drain(&mut self, out: &mut Vec<(Flow, End)>) {
        while let Some((_, e)) = self.flows.pop_lru() {
            out.push((e.flow, End::Shutdown));
        }
    }
}

fn chrono_dur(d: Duration) -> chrono::TimeDelta {
    chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max: usize) -> TableConfig {
        TableConfig {
            idle_timeout: Duration::from_secs(15),
            active_timeout: Duration::from_secs(60),
            close_linger: Duration::from_secs(2),
            max_flows: max,
        }
    }

    fn tcp(
        src: &str,
        sport: u16,
        dst: &str,
        dport: u16,
        flags: u16,
        len: u64,
    ) -> PacketInfo<'static> {
        PacketInfo {
            src: src.parse().expect("ip"),
            dst: dst.parse().expect("ip"),
            proto: 6,
            sport,
            dport,
            tcp_flags: flags,
            icmp: None,
            ip_bytes: len,
            fragment: false,
            payload: &[],
        }
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + s, 0).expect("time")
    }

    #[test]
    fn a_tcp_connection_is_one_bidirectional_flow_ended_by_fin() {
        let mut t = FlowTable::new(cfg(10));
        let mut out = Vec::new();
        let (c, s) = ("10.0.0.1", "10.0.0.2");
        t.add(&tcp(c, 40000, s, 80, 0x02, 60), at(0), &mut out);
        t.add(&tcp(s, 80, c, 40000, 0x12, 60), at(0), &mut out);
        t.add(&tcp(c, 40000, s, 80, 0x10, 52), at(0), &mut out);
        t.add(&tcp(c, 40000, s, 80, 0x11, 52), at(1), &mut out);
        t.add(&tcp(s, 80, c, 40000, 0x11, 52), at(1), &mut out);
        t.add(&tcp(c, 40000, s, 80, 0x10, 52), at(2), &mut out);
        t.expire(at(2), &mut out);
        assert!(out.is_empty(), "lingers for the last ACK");
        t.expire(at(3), &mut out);
        assert_eq!(out.len(), 1);
        let (fl, why) = &out[0];
        assert_eq!(*why, End::Fin);
        assert_eq!(fl.src, Some(c.parse().expect("ip")));
        assert_eq!((fl.packets, fl.bytes), (4, 216));
        assert_eq!((fl.rev_packets, fl.rev_bytes), (Some(2), Some(112)));
        assert_eq!(fl.tcp_flags, 0x13);
    }

    #[test]
    fn idle_active_rst_and_a_full_table() {
        let mut t = FlowTable::new(cfg(2));
        let mut out = Vec::new();
        t.add(
            &tcp("10.0.0.1", 1, "10.0.0.9", 80, 0x02, 40),
            at(0),
            &mut out,
        );
        t.add(
            &tcp("10.0.0.2", 1, "10.0.0.9", 80, 0x02, 40),
            at(1),
            &mut out,
        );
        t.add(
            &tcp("10.0.0.3", 1, "10.0.0.9", 80, 0x02, 40),
            at(2),
            &mut out,
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1, End::Evicted);
        assert_eq!(out[0].0.src, Some("10.0.0.1".parse().expect("ip")));
        t.add(
            &tcp("10.0.0.9", 80, "10.0.0.2", 1, 0x04, 40),
            at(3),
            &mut out,
        );
        assert_eq!(out[1].1, End::Rst);
        assert_eq!(out[1].0.packets, 1);
        t.expire(at(17), &mut out);
        assert_eq!(out[2].1, End::Idle);
        assert!(t.is_empty());
        for s in 0..70 {
            t.add(
                &tcp("10.0.0.5", 5, "10.0.0.9", 22, 0x10, 40),
                at(100 + s),
                &mut out,
            );
        }
        assert_eq!(out[3].1, End::Active);
        assert_eq!(out[3].0.packets, 60);
        t.drain(&mut out);
        assert_eq!(out[4].0.packets, 10);
    }
}
