//! IP prefixes as customers' address space is written (agent and collector configurations,
//! the collector's customer API): `10.0.0.0/8`, `2001:db8::/32`, or a bare address.

use std::net::IpAddr;

/// An IPv4 or IPv6 prefix, kept as an IPv6 (v4-mapped) network and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    net: u128,
    len: u8,
}

impl Prefix {
    /// Parses `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a host prefix).
    pub fn parse(s: &str) -> Result<Prefix, String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let ip: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IP prefix"))?;
        let (max, offset) = if ip.is_ipv4() { (32u8, 96u8) } else { (128, 0) };
        let len = match len {
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("`{s}`: prefix length must be 0 to {max}"))?,
            None => max,
        };
        let len = len + offset;
        Ok(Prefix {
            net: to_u128(ip) & mask(len),
            len,
        })
    }

    /// The length, counted on the IPv6 form (a v4 `/8` is 104): longer is more specific.
    pub fn length(&self) -> u8 {
        self.len
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        to_u128(ip) & mask(self.len) == self.net
    }
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    }
}
