//! The one table from IANA IPFIX information elements (which NetFlow v9 field types share)
//! to Vigil's flow fields, and [`Record`], which collects one data record's elements into a
//! [`Flow`].
//!
//! Elements the table does not name are kept, not dropped: `netflow.<element name>` for IANA
//! and known vendor elements, `netflow.pen<enterprise>.ie<id>` (hex) for unknown enterprise
//! elements.

use std::net::IpAddr;

use netflow_parser::variable_versions::field_value::FieldValue;
use netflow_parser::variable_versions::ipfix::lookup::{
    IANAIPFixField as Ie, IPFixField, ReverseInformationElement as Rev,
};
use netflow_parser::variable_versions::v9::lookup::V9Field;
use serde_json::Value;

use super::Flow;

/// What an element sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    SrcIp,
    DstIp,
    SrcPort,
    DstPort,
    Proto,
    Bytes,
    Packets,
    RevBytes,
    RevPackets,
    /// Totals since the flow began; used only when the record has no delta counter.
    TotalBytes,
    TotalPackets,
    TcpFlags,
    /// Milliseconds since the exporter booted (v9 and v5 style).
    StartUptime,
    EndUptime,
    /// Seconds or milliseconds since the Unix epoch (the library hands both as ms).
    StartEpochMs,
    EndEpochMs,
    /// NTP timestamps (IPFIX micro- and nanosecond elements).
    StartNtp,
    EndNtp,
    /// Microseconds before the message's export time.
    StartDeltaUs,
    EndDeltaUs,
    /// When the exporter booted (options data usually), ms since the epoch.
    SysInitMs,
    /// ICMP type × 256 + code.
    IcmpTypeCode,
    IcmpType,
    IcmpCode,
    /// 1-in-N sampling rate, and the id of the sampler a record names.
    SamplingRate,
    SamplerId,
    /// The label of an MPLS label stack entry (20 bits of 3 bytes).
    MplsLabel(&'static str),
    /// Copied as it is under this event field.
    Field(&'static str),
}

/// The table. NetFlow v9 field types 1–127 are the IANA elements of the same number.
pub fn iana(ie: Ie) -> Option<Target> {
    use Target::*;
    Some(match ie {
        Ie::OctetDeltaCount | Ie::InitiatorOctets => Bytes,
        Ie::PacketDeltaCount | Ie::InitiatorPackets => Packets,
        Ie::ResponderOctets => RevBytes,
        Ie::ResponderPackets => RevPackets,
        Ie::OctetTotalCount => TotalBytes,
        Ie::PacketTotalCount => TotalPackets,
        Ie::ProtocolIdentifier => Proto,
        Ie::TcpControlBits => TcpFlags,
        Ie::SourceTransportPort => SrcPort,
        Ie::DestinationTransportPort => DstPort,
        Ie::SourceIpv4address | Ie::SourceIpv6address => SrcIp,
        Ie::DestinationIpv4address | Ie::DestinationIpv6address => DstIp,
        Ie::IngressInterface => Field("observer.ingress.interface.id"),
        Ie::EgressInterface => Field("observer.egress.interface.id"),
        Ie::IpNextHopIpv4address | Ie::IpNextHopIpv6address => Field("netflow.next_hop"),
        Ie::BgpSourceAsNumber => Field("source.as.number"),
        Ie::BgpDestinationAsNumber => Field("destination.as.number"),
        Ie::FlowStartSysUpTime => StartUptime,
        Ie::FlowEndSysUpTime => EndUptime,
        Ie::FlowStartSeconds | Ie::FlowStartMilliseconds => StartEpochMs,
        Ie::FlowEndSeconds | Ie::FlowEndMilliseconds => EndEpochMs,
        Ie::FlowStartMicroseconds | Ie::FlowStartNanoseconds => StartNtp,
        Ie::FlowEndMicroseconds | Ie::FlowEndNanoseconds => EndNtp,
        Ie::FlowStartDeltaMicroseconds => StartDeltaUs,
        Ie::FlowEndDeltaMicroseconds => EndDeltaUs,
        Ie::SystemInitTimeMilliseconds => SysInitMs,
        Ie::IcmpTypeCodeIpv4 | Ie::IcmpTypeCodeIpv6 => IcmpTypeCode,
        Ie::IcmpTypeIpv4 | Ie::IcmpTypeIpv6 => IcmpType,
        Ie::IcmpCodeIpv4 | Ie::IcmpCodeIpv6 => IcmpCode,
        Ie::SamplingInterval | Ie::SamplerRandomInterval | Ie::SamplingPacketInterval => {
            SamplingRate
        }
        Ie::SamplerId | Ie::SelectorId => SamplerId,
        Ie::SourceMacaddress => Field("source.mac"),
        Ie::DestinationMacaddress => Field("destination.mac"),
        Ie::VlanId | Ie::Dot1qVlanId => Field("network.vlan.id"),
        Ie::FlowDirection => Field("netflow.direction"),
        Ie::FlowEndReason => Field("netflow.end_reason"),
        Ie::MplsTopLabelStackSection => MplsLabel("netflow.mpls.top_label"),
        Ie::PostNatsourceIpv4address | Ie::PostNatsourceIpv6address => Field("source.nat.ip"),
        Ie::PostNatdestinationIpv4address | Ie::PostNatdestinationIpv6address => {
            Field("destination.nat.ip")
        }
        Ie::PostNaptsourceTransportPort => Field("source.nat.port"),
        Ie::PostNaptdestinationTransportPort => Field("destination.nat.port"),
        _ => return None,
    })
}

/// Reverse elements (RFC 5103, enterprise 29305): what the destination sent back.
pub fn reverse(ie: Rev) -> Option<Target> {
    Some(match ie {
        Rev::ReverseOctetDeltaCount => Target::RevBytes,
        Rev::ReversePacketDeltaCount => Target::RevPackets,
        Rev::ReverseTcpControlBits => Target::TcpFlags,
        _ => return None,
    })
}

/// Where a field of an IPFIX record goes: a target, or a name to keep it under.
pub fn ipfix_target(field: &IPFixField) -> Result<Target, String> {
    match field {
        IPFixField::IANA(ie) => iana(*ie).ok_or_else(|| iana_name(*ie)),
        IPFixField::ReverseInformationElement(r) => {
            reverse(*r).ok_or_else(|| format!("netflow.{}", snake(&format!("{r:?}"))))
        }
        IPFixField::Enterprise {
            enterprise_number,
            field_number,
        } => Err(format!("netflow.pen{enterprise_number}.ie{field_number}")),
        other => {
            // Cisco(ApplicationName) → netflow.cisco.application_name
            let dbg = format!("{other:?}");
            let (vendor, rest) = dbg.split_once('(').unwrap_or((&dbg, ""));
            let rest = rest.trim_end_matches(')');
            Err(format!("netflow.{}.{}", snake(vendor), snake(rest)))
        }
    }
}

/// Where a field of a NetFlow v9 record goes (through the IANA element of its number).
pub fn v9_target(field: V9Field) -> Result<Target, String> {
    let ie = Ie::from(u16::from(field));
    iana(ie).ok_or_else(|| iana_name(ie))
}

fn iana_name(ie: Ie) -> String {
    match ie {
        Ie::Unknown(n) => format!("netflow.ie{n}"),
        other => format!("netflow.{}", snake(&format!("{other:?}"))),
    }
}

/// `SourceIpv4prefixLength` → `source_ipv4prefix_length`.
fn snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        }
    }
    out
}

/// The number of a value, as [`Record::set`] uses it.
pub(super) fn as_u64(v: &FieldValue) -> Option<u64> {
    match v {
        FieldValue::TcpControlBits(bits, _) => Some(u16::from(*bits).into()),
        FieldValue::ProtocolType(_) => v.as_u8().map(u64::from),
        FieldValue::Vec(b) if b.len() <= 8 => Some(b.iter().fold(0, |acc, x| acc << 8 | *x as u64)),
        _ => v.as_u64(),
    }
}

/// A record's address element over what an earlier one gave: records that carry both the IPv4
/// and the IPv6 elements (Procera) leave the family they do not use unspecified, and that
/// must not hide the address of the other.
#[inline(always)]
fn address(new: Option<IpAddr>, old: &mut Option<IpAddr>) {
    match (new, &old) {
        (None, _) => {}
        (Some(n), Some(o)) if n.is_unspecified() && !o.is_unspecified() => {}
        (n, _) => *old = n,
    }
}

fn as_ip(v: &FieldValue) -> Option<IpAddr> {
    match v {
        FieldValue::Ip4Addr(a) => Some(IpAddr::V4(*a)),
        FieldValue::Ip6Addr(a) => Some(IpAddr::V6(*a)),
        _ => None,
    }
}

/// A field value as JSON: numbers as numbers, addresses and strings as text, bytes as hex.
pub fn to_json(v: &FieldValue) -> Value {
    if let Some(ip) = as_ip(v) {
        return Value::String(vigil_schema::event::ip_text(ip));
    }
    match v {
        FieldValue::String(s) => Value::String(s.value.clone()),
        FieldValue::MacAddr(_) => String::try_from(v)
            .map(Value::String)
            .unwrap_or(Value::Null),
        FieldValue::Vec(b) => Value::String(b.iter().map(|x| format!("{x:02x}")).collect()),
        FieldValue::Float64(x) => serde_json::Number::from_f64(*x)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        _ => match as_u64(v) {
            Some(n) => Value::from(n),
            None => Value::String(format!("{v:?}")),
        },
    }
}

/// Seconds between the NTP epoch (1900) and the Unix epoch.
const NTP_UNIX_OFFSET_S: i64 = 2_208_988_800;

/// The times an exporter's message header gives.
#[derive(Debug, Clone, Copy)]
pub struct Header {
    /// Export time, milliseconds since the Unix epoch.
    pub export_ms: i64,
    /// Milliseconds since the exporter booted, at export (v5 and v9 headers).
    pub uptime_ms: Option<u64>,
    /// When the exporter booted, ms since the epoch, as its options data last said
    /// (`systemInitTimeMilliseconds`: softflowd's and pmacct's IPFIX).
    pub boot_ms: Option<i64>,
}

/// One data record being read.
#[derive(Debug)]
pub struct Record {
    pub flow: Flow,
    /// What the record gave besides the flow's own fields.
    parts: Parts,
}

/// The elements of a record that are not yet a flow's fields: times to resolve, totals that
/// stand in for missing deltas, ICMP, sampling. All `Copy`, so that clearing is one store.
#[derive(Debug, Default, Clone, Copy)]
struct Parts {
    start_up: Option<u64>,
    end_up: Option<u64>,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
    start_delta_us: Option<u64>,
    end_delta_us: Option<u64>,
    sys_init_ms: Option<i64>,
    has_delta_bytes: bool,
    has_delta_packets: bool,
    total_bytes: Option<u64>,
    total_packets: Option<u64>,
    icmp_type: Option<u8>,
    icmp_code: Option<u8>,
    sampler_id: Option<u64>,
    sampling_rate: Option<u64>,
}

impl Record {
    pub fn new(dataset: &'static str) -> Record {
        Record {
            flow: Flow::new(dataset),
            parts: Parts::default(),
        }
    }

    /// The id of the sampler the record names.
    pub fn sampler_id(&self) -> Option<u64> {
        self.parts.sampler_id
    }

    /// When the exporter booted, as the record gives it (options data), ms since the epoch.
    pub fn sys_init_ms(&self) -> Option<i64> {
        self.parts.sys_init_ms
    }

    /// The 1-in-N sampling rate the record gives (options data).
    pub fn sampling_rate(&self) -> Option<u64> {
        self.parts.sampling_rate
    }

    /// Reads one element; `Err(name)` from the table keeps it raw under that name.
    pub fn set(&mut self, target: Result<Target, String>, v: &FieldValue) {
        self.put(&target, as_u64(v), as_ip(v), || to_json(v));
    }

    /// Reads one element that is an unsigned number, as [`Record::set`] reads it.
    #[inline(always)]
    pub fn set_u64(&mut self, target: &Result<Target, String>, n: u64) {
        self.put(target, Some(n), None, || Value::from(n));
    }

    /// Reads one element that is an address, as [`Record::set`] reads it.
    #[inline(always)]
    pub fn set_ip(&mut self, target: &Result<Target, String>, ip: IpAddr) {
        self.put(target, None, Some(ip), || {
            Value::String(vigil_schema::event::ip_text(ip))
        });
    }

    /// One element: its number and address where it is one, and its value as it is kept when
    /// the table names no flow field for it (`json`, made only then). Inlined into the
    /// readers of numbers and of addresses: a call took the address through memory, which
    /// stalled on the stores that had just made it.
    #[inline(always)]
    fn put(
        &mut self,
        target: &Result<Target, String>,
        n: Option<u64>,
        ip: Option<IpAddr>,
        json: impl FnOnce() -> Value,
    ) {
        let t = match target {
            Ok(t) => *t,
            Err(name) => {
                self.flow.extra.push((name.clone().into(), json()));
                return;
            }
        };
        let fl = &mut self.flow;
        match t {
            Target::SrcIp => address(ip, &mut fl.src),
            Target::DstIp => address(ip, &mut fl.dst),
            Target::SrcPort => fl.src_port = n.unwrap_or(0) as u16,
            Target::DstPort => fl.dst_port = n.unwrap_or(0) as u16,
            Target::Proto => fl.proto = n.map(|p| p as u8),
            Target::Bytes => {
                self.parts.has_delta_bytes = true;
                fl.bytes = fl.bytes.saturating_add(n.unwrap_or(0));
            }
            Target::Packets => {
                self.parts.has_delta_packets = true;
                fl.packets = fl.packets.saturating_add(n.unwrap_or(0));
            }
            Target::RevBytes => fl.rev_bytes = Some(n.unwrap_or(0)),
            Target::RevPackets => fl.rev_packets = Some(n.unwrap_or(0)),
            Target::TotalBytes => self.parts.total_bytes = n,
            Target::TotalPackets => self.parts.total_packets = n,
            Target::TcpFlags => fl.tcp_flags |= n.unwrap_or(0) as u16 & 0x1ff,
            Target::StartUptime => self.parts.start_up = n,
            Target::EndUptime => self.parts.end_up = n,
            Target::StartEpochMs => self.parts.start_ms = n.map(|x| x as i64),
            Target::EndEpochMs => self.parts.end_ms = n.map(|x| x as i64),
            // The library gives NTP times as ms since 1900.
            Target::StartNtp => {
                self.parts.start_ms = n.map(|x| x as i64 - NTP_UNIX_OFFSET_S * 1000)
            }
            Target::EndNtp => self.parts.end_ms = n.map(|x| x as i64 - NTP_UNIX_OFFSET_S * 1000),
            Target::StartDeltaUs => self.parts.start_delta_us = n,
            Target::EndDeltaUs => self.parts.end_delta_us = n,
            Target::SysInitMs => self.parts.sys_init_ms = n.map(|x| x as i64),
            Target::IcmpTypeCode => {
                if let Some(x) = n {
                    self.parts.icmp_type = Some((x >> 8) as u8);
                    self.parts.icmp_code = Some(x as u8);
                }
            }
            Target::IcmpType => self.parts.icmp_type = n.map(|x| x as u8),
            Target::IcmpCode => self.parts.icmp_code = n.map(|x| x as u8),
            Target::SamplingRate => self.parts.sampling_rate = n,
            Target::SamplerId => self.parts.sampler_id = n,
            Target::MplsLabel(name) => {
                if let Some(x) = n {
                    fl.extra.push((name.into(), Value::from(x >> 4)));
                }
            }
            Target::Field(name) => {
                fl.extra.push((name.into(), json()));
            }
        }
    }

    /// Makes this record ready for the next one of its data set, keeping the memory of its
    /// further fields (a fresh record per flow, moved out as a [`Flow`], cost the fast path
    /// a fifth of its time in copies, allocations and frees).
    pub fn clear(&mut self) {
        self.flow.clear();
        self.parts = Parts::default();
    }

    /// The flow, with times resolved against the header and counters scaled by `rate`
    /// (1-in-`rate` sampling; 0 or 1 mean unsampled). Left in the record, to be read
    /// before [`Record::clear`].
    pub fn finish(&mut self, hdr: &Header, rate: u64) -> &mut Flow {
        let fl = &mut self.flow;
        if !self.parts.has_delta_bytes
            && let Some(b) = self.parts.total_bytes
        {
            fl.bytes = b;
        }
        if !self.parts.has_delta_packets
            && let Some(p) = self.parts.total_packets
        {
            fl.packets = p;
        }
        if let Some(ty) = self.parts.icmp_type.or(self.parts.icmp_code.map(|_| 0)) {
            fl.icmp = Some((ty, self.parts.icmp_code.unwrap_or(0)));
        } else if matches!(fl.proto, Some(1 | 58)) && (fl.src_port != 0 || fl.dst_port != 0) {
            // Exporters without ICMP elements (softflowd among them) put type × 256 + code
            // in the destination port.
            fl.icmp = Some(((fl.dst_port >> 8) as u8, fl.dst_port as u8));
        }
        let export_ms = hdr.export_ms;
        // Uptime-relative times: the exporter's uptime at export, from the boot time the
        // record or the exporter's options gave, else from the header.
        let uptime = self
            .parts
            .sys_init_ms
            .or(hdr.boot_ms)
            .map(|boot| export_ms.wrapping_sub(boot) as u32)
            .or(hdr.uptime_ms.map(|up| up as u32));
        // Uptimes are 32-bit milliseconds and wrap every 49.7 days; a flow's times may have
        // wrapped where the uptime at export has not, or the other way round (softflowd
        // reading a pcap counts its flows from its own start, so they lie "before boot").
        // The signed difference modulo 2^32 is how long before export the time was, as
        // nfdump and pmacct read it; a time up to 24.8 days after export is taken as skew.
        let from_uptime =
            |up: Option<u64>| Some(export_ms - i64::from(uptime?.wrapping_sub(up? as u32) as i32));
        let from_delta = |d: Option<u64>| Some(export_ms - (d? / 1000) as i64);
        let start = self
            .parts
            .start_ms
            .or_else(|| from_uptime(self.parts.start_up))
            .or_else(|| from_delta(self.parts.start_delta_us));
        let end = self
            .parts
            .end_ms
            .or_else(|| from_uptime(self.parts.end_up))
            .or_else(|| from_delta(self.parts.end_delta_us));
        // (A time past 2262 does not fit: no exporter's clock is there.)
        fl.start = start.and_then(|ms| ms.checked_mul(1_000_000));
        fl.end = end.and_then(|ms| ms.checked_mul(1_000_000));
        let rate = self.parts.sampling_rate.unwrap_or(rate);
        if rate > 1 {
            fl.bytes = fl.bytes.saturating_mul(rate);
            fl.packets = fl.packets.saturating_mul(rate);
            fl.rev_bytes = fl.rev_bytes.map(|b| b.saturating_mul(rate));
            fl.rev_packets = fl.rev_packets.map(|p| p.saturating_mul(rate));
            fl.extra
                .push(("netflow.sampling_rate".into(), Value::from(rate)));
        }
        fl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_elements_outside_the_table() {
        assert_eq!(
            v9_target(V9Field::from(5u16)),
            Err("netflow.ip_class_of_service".to_owned())
        );
        assert_eq!(
            ipfix_target(&IPFixField::new(12345, Some(9999))),
            Err("netflow.pen9999.ie12345".to_owned())
        );
        assert_eq!(v9_target(V9Field::from(1u16)), Ok(Target::Bytes));
    }

    #[test]
    fn totals_stand_in_for_missing_deltas_and_sampling_scales() {
        let mut r = Record::new("flow.ipfix");
        r.set(Ok(Target::TotalBytes), &FieldValue::Vec(vec![0, 100]));
        r.set(Ok(Target::Packets), &FieldValue::Vec(vec![2]));
        let hdr = Header {
            export_ms: 1_700_000_000_000,
            uptime_ms: None,
            boot_ms: None,
        };
        let fl = r.finish(&hdr, 10);
        assert_eq!((fl.bytes, fl.packets), (1000, 20));
        assert_eq!(
            fl.extra_field("netflow.sampling_rate"),
            Some(&Value::from(10))
        );
    }

    /// softflowd reading a pcap recorded before it started: its uptime at export is small
    /// and the flow's uptimes have wrapped below zero; the flow is minutes old, not 49.7
    /// days ahead.
    #[test]
    fn flow_times_49_days_in_the_future_from_wrapped_uptimes() {
        let export_ms = 1_796_000_000_000;
        let mut r = Record::new("flow.netflow");
        // 300 s and 299 s before the exporter's start, which was 2 s before export.
        r.set_u64(&Ok(Target::StartUptime), (-300_000i64) as u32 as u64);
        r.set_u64(&Ok(Target::EndUptime), (-299_000i64) as u32 as u64);
        let hdr = Header {
            export_ms,
            uptime_ms: Some(2_000),
            boot_ms: None,
        };
        let fl = r.finish(&hdr, 1);
        assert_eq!(fl.start, Some((export_ms - 302_000) * 1_000_000));
        assert_eq!(fl.end, Some((export_ms - 301_000) * 1_000_000));
        // The same against a boot time from options data (IPFIX), and an uptime past 2^31.
        let mut r = Record::new("flow.ipfix");
        r.set_u64(&Ok(Target::StartUptime), 3_000_000_000);
        let boot = export_ms - 3_000_010_000;
        let hdr = Header {
            export_ms,
            uptime_ms: None,
            boot_ms: Some(boot),
        };
        assert_eq!(
            r.finish(&hdr, 1).start,
            Some((boot + 3_000_000_000) * 1_000_000)
        );
    }
}
