//! One captured frame → the facts a flow needs: addresses, protocol, ports (ICMP type and
//! code), TCP flags, IP length. Decoded with `pnet_packet` (Ethernet, 802.1Q/802.1ad VLAN
//! tags, Linux cooked capture, IPv4, IPv6 with extension headers, TCP, UDP, ICMP, ICMPv6).
//!
//! # Invariants
//! - Never panics and never reads past the frame: every header is checked by `pnet`'s
//!   `new`, which refuses a buffer shorter than the header, or by an explicit length check.
//! - A non-first IP fragment has no transport header: it is reported with ports 0 and
//!   `fragment = true`, so its bytes still count.

use std::net::IpAddr;

use pnet_packet::Packet as _;
use pnet_packet::ethernet::{EtherTypes, EthernetPacket};
use pnet_packet::icmp::IcmpPacket;
use pnet_packet::icmpv6::Icmpv6Packet;
use pnet_packet::ip::IpNextHeaderProtocols as P;
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::ipv6::Ipv6Packet;
use pnet_packet::tcp::TcpPacket;
use pnet_packet::udp::UdpPacket;
use pnet_packet::vlan::VlanPacket;

/// What a frame says about its flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketInfo<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub tcp_flags: u16,
    pub icmp: Option<(u8, u8)>,
    /// IP total length (header and payload), as NetFlow counts bytes.
    pub ip_bytes: u64,
    /// A non-first fragment (no transport header).
    pub fragment: bool,
    /// The transport payload (UDP datagram data, TCP segment data), as far as captured.
    pub payload: &'a [u8],
}

/// Why a frame gave no [`PacketInfo`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// ARP, LLDP and the like: nothing to count.
    NotIp,
    /// Shorter than its headers say, or a header that makes no sense.
    Malformed,
}

/// Link layers of the frames handed in (pcap's LINKTYPE numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    Ethernet,
    /// Linux cooked capture v1 (LINKTYPE 113).
    LinuxSll,
    /// Raw IP (LINKTYPE 101).
    RawIp,
}

impl Link {
    pub fn from_linktype(t: u32) -> Option<Link> {
        match t {
            1 => Some(Link::Ethernet),
            113 => Some(Link::LinuxSll),
            101 | 12 | 14 => Some(Link::RawIp),
            _ => None,
        }
    }
}

/// The offset of `inner` inside `outer` (both from the same frame).
fn offset(outer: &[u8], inner: &[u8]) -> usize {
    (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize)
}

/// The transport payload inside `frame`, found by where `pnet`'s view of it starts.
fn slice_of<'a>(frame: &'a [u8], view: &[u8]) -> &'a [u8] {
    let start = offset(frame, view).min(frame.len());
    let end = (start + view.len()).min(frame.len());
    &frame[start..end]
}

pub fn decode(link: Link, frame: &[u8]) -> Result<PacketInfo<'_>, Skip> {
    match link {
        Link::Ethernet => {
            let eth = EthernetPacket::new(frame).ok_or(Skip::Malformed)?;
            let mut ethertype = eth.get_ethertype();
            let mut rest = slice_of(frame, eth.payload());
            // Up to two VLAN tags (802.1Q inside 802.1ad).
            for _ in 0..2 {
                if ethertype != EtherTypes::Vlan
                    && ethertype != EtherTypes::QinQ
                    && ethertype.0 != 0x9100
                {
                    break;
                }
                let vlan = VlanPacket::new(rest).ok_or(Skip::Malformed)?;
                ethertype = vlan.get_ethertype();
                rest = slice_of(frame, vlan.payload());
            }
            by_ethertype(frame, ethertype.0, rest)
        }
        Link::LinuxSll => {
            // A fixed 16-byte header, protocol last. Read by hand: pnet's SLLPacket sizes its
            // address field from the frame and then indexes past a short one (it panics).
            let hdr = frame.get(..16).ok_or(Skip::Malformed)?;
            by_ethertype(frame, u16::from_be_bytes([hdr[14], hdr[15]]), &frame[16..])
        }
        Link::RawIp => match frame.first().map(|b| b >> 4) {
            Some(4) => ipv4(frame, frame),
            Some(6) => ipv6(frame, frame),
            _ => Err(Skip::NotIp),
        },
    }
}

fn by_ethertype<'a>(
    frame: &'a [u8],
    ethertype: u16,
    rest: &'a [u8],
) -> Result<PacketInfo<'a>, Skip> {
    match ethertype {
        0x0800 => ipv4(frame, rest),
        0x86dd => ipv6(frame, rest),
        _ => Err(Skip::NotIp),
    }
}

fn ipv4<'a>(frame: &'a [u8], data: &'a [u8]) -> Result<PacketInfo<'a>, Skip> {
    let ip = Ipv4Packet::new(data).ok_or(Skip::Malformed)?;
    let hlen = usize::from(ip.get_header_length()) * 4;
    let total = usize::from(ip.get_total_length());
    if ip.get_version() != 4 || hlen < 20 || total < hlen {
        return Err(Skip::Malformed);
    }
    let fragment = ip.get_fragment_offset() != 0;
    let payload = slice_of(frame, ip.payload());
    transport(
        frame,
        IpAddr::V4(ip.get_source()),
        IpAddr::V4(ip.get_destination()),
        ip.get_next_level_protocol().0,
        total as u64,
        fragment,
        payload,
    )
}

fn ipv6<'a>(frame: &'a [u8], data: &'a [u8]) -> Result<PacketInfo<'a>, Skip> {
    let ip = Ipv6Packet::new(data).ok_or(Skip::Malformed)?;
    if ip.get_version() != 6 {
        return Err(Skip::Malformed);
    }
    let total = 40 + u64::from(ip.get_payload_length());
    let mut next = ip.get_next_header().0;
    let mut rest = slice_of(frame, ip.payload());
    let mut fragment = false;
    // Walk the extension headers (a bounded number: a chain longer than this is hostile).
    for _ in 0..8 {
        match next {
            0 | 43 | 60 => {
                let (&nh, len) = (
                    rest.first().ok_or(Skip::Malformed)?,
                    rest.get(1).ok_or(Skip::Malformed)?,
                );
                let len = (usize::from(*len) + 1) * 8;
                next = nh;
                rest = rest.get(len..).ok_or(Skip::Malformed)?;
            }
            44 => {
                let hdr = rest.get(..8).ok_or(Skip::Malformed)?;
                next = hdr[0];
                let off = u16::from_be_bytes([hdr[2], hdr[3]]) >> 3;
                fragment = off != 0;
                rest = &rest[8..];
            }
            _ => break,
        }
    }
    transport(
        frame,
        IpAddr::V6(ip.get_source()),
        IpAddr::V6(ip.get_destination()),
        next,
        total,
        fragment,
        rest,
    )
}

fn transport<'a>(
    frame: &'a [u8],
    src: IpAddr,
    dst: IpAddr,
    proto: u8,
    ip_bytes: u64,
    fragment: bool,
    data: &'a [u8],
) -> Result<PacketInfo<'a>, Skip> {
    let mut info = PacketInfo {
        src,
        dst,
        proto,
        sport: 0,
        dport: 0,
        tcp_flags: 0,
        icmp: None,
        ip_bytes,
        fragment,
        payload: &[],
    };
    if fragment {
        return Ok(info);
    }
    match proto {
        p if p == P::Tcp.0 => {
            let t = TcpPacket::new(data).ok_or(Skip::Malformed)?;
            info.sport = t.get_source();
            info.dport = t.get_destination();
            info.tcp_flags = u16::from(t.get_flags()) | (u16::from(t.get_reserved() & 1) << 8);
            info.payload = slice_of(frame, t.payload());
        }
        p if p == P::Udp.0 => {
            let u = UdpPacket::new(data).ok_or(Skip::Malformed)?;
            info.sport = u.get_source();
            info.dport = u.get_destination();
            info.payload = slice_of(frame, u.payload());
        }
        p if p == P::Icmp.0 => {
            let i = IcmpPacket::new(data).ok_or(Skip::Malformed)?;
            info.icmp = Some((i.get_icmp_type().0, i.get_icmp_code().0));
        }
        p if p == P::Icmpv6.0 => {
            let i = Icmpv6Packet::new(data).ok_or(Skip::Malformed)?;
            info.icmp = Some((i.get_icmpv6_type().0, i.get_icmpv6_code().0));
        }
        _ => {}
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ethernet + 802.1Q + IPv4 + UDP 10.0.0.1:1000 → 10.0.0.2:53, 4 bytes of data.
    fn vlan_udp() -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a, 0x08, 0x00]);
        f.extend_from_slice(&[
            0x45, 0, 0, 32, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ]);
        f.extend_from_slice(&[0x03, 0xe8, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4]);
        f
    }

    #[test]
    fn vlan_tagged_udp() {
        let frame = vlan_udp();
        let p = decode(Link::Ethernet, &frame).expect("decodes");
        assert_eq!(p.src, "10.0.0.1".parse::<IpAddr>().expect("ip"));
        assert_eq!((p.proto, p.sport, p.dport, p.ip_bytes), (17, 1000, 53, 32));
        assert_eq!(p.payload, &[1, 2, 3, 4]);
    }

    #[test]
    fn every_truncation_and_random_bytes_are_refused_without_panic() {
        let frame = vlan_udp();
        for n in 0..frame.len() {
            let _ = decode(Link::Ethernet, &frame[..n]);
            let _ = decode(Link::RawIp, &frame[..n]);
            let _ = decode(Link::LinuxSll, &frame[..n]);
        }
        let mut x: u32 = 12345;
        for _ in 0..2000 {
            let len = (x % 200) as usize;
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            let _ = decode(Link::Ethernet, &buf);
            let _ = decode(Link::RawIp, &buf);
        }
        assert_eq!(decode(Link::Ethernet, &frame[..10]), Err(Skip::Malformed));
    }
}
