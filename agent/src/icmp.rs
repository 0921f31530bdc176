//! The echo of an `icmp` check: one ICMP (or ICMPv6) echo request, its reply awaited.
//!
//! An unprivileged ping socket (`SOCK_DGRAM`, allowed by `net.ipv4.ping_group_range`) is tried
//! first, then a raw socket (`CAP_NET_RAW`). Where neither is allowed the check is down with
//! that reason; the agent itself goes on.
//!
//! # Invariants
//! - A reply counts only when it carries this request's random token: other processes' pings
//!   seen on a raw socket are skipped.
//! - Replies are parsed with every length checked; a short or odd datagram is skipped.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use socket2::{Domain, Protocol, Socket, Type};

/// Why an ICMP socket cannot be had, in words an operator can act on.
pub const NOT_PERMITTED: &str = "this agent may not send ICMP: run it with CAP_NET_RAW, or \
     allow its group in the sysctl net.ipv4.ping_group_range";

/// The internet checksum (RFC 1071).
fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// The echo request: type, code, checksum, id, sequence, then the token.
fn request(v6: bool, id: u16, seq: u16, token: &[u8; 16]) -> Vec<u8> {
    let mut p = vec![if v6 { 128 } else { 8 }, 0, 0, 0];
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(token);
    // ICMPv6's checksum covers a pseudo-header: the kernel fills it in.
    if !v6 {
        let c = checksum(&p);
        p[2..4].copy_from_slice(&c.to_be_bytes());
    }
    p
}

/// Whether `b` (as read from the socket) is the reply to our request.
fn is_reply(b: &[u8], v6: bool, raw: bool, token: &[u8; 16]) -> bool {
    // A raw IPv4 socket hands over the IP header too.
    let icmp = if raw && !v6 {
        let Some(first) = b.first() else { return false };
        match b.get(usize::from(first & 0x0F) * 4..) {
            Some(rest) => rest,
            None => return false,
        }
    } else {
        b
    };
    icmp.len() >= 24 && icmp[0] == if v6 { 129 } else { 0 } && icmp[8..24] == token[..]
}

fn open(v6: bool) -> Result<(Socket, bool), String> {
    let (domain, proto) = if v6 {
        (Domain::IPV6, Protocol::ICMPV6)
    } else {
        (Domain::IPV4, Protocol::ICMPV4)
    };
    let denied = |e: &std::io::Error| {
        matches!(e.kind(), std::io::ErrorKind::PermissionDenied) || e.raw_os_error() == Some(1) // EPERM
    };
    match Socket::new(domain, Type::DGRAM, Some(proto)) {
        Ok(s) => return Ok((s, false)),
        Err(e) if denied(&e) => {}
        Err(e) => return Err(format!("no ICMP socket: {e}")),
    }
    match Socket::new(domain, Type::RAW, Some(proto)) {
        Ok(s) => Ok((s, true)),
        Err(e) if denied(&e) => Err(NOT_PERMITTED.into()),
        Err(e) => Err(format!("no ICMP socket: {e}")),
    }
}

/// Sends one echo request to `addr` and waits for its reply (the caller bounds the wait).
pub async fn echo(addr: IpAddr, seq: u16) -> Result<std::time::Duration, String> {
    let v6 = addr.is_ipv6();
    let (sock, raw) = open(v6)?;
    sock.set_nonblocking(true)
        .map_err(|e| format!("ICMP socket: {e}"))?;
    // Tokio's UDP socket sends and receives datagrams on any datagram or raw socket: an ICMP
    // socket needs nothing else from it.
    let sock = tokio::net::UdpSocket::from_std(std::net::UdpSocket::from(sock))
        .map_err(|e| format!("ICMP socket: {e}"))?;
    let token: [u8; 16] = rand::random();
    let packet = request(v6, rand::random(), seq, &token);
    let start = Instant::now();
    sock.send_to(&packet, SocketAddr::new(addr, 0))
        .await
        .map_err(|e| format!("send an echo to {addr}: {e}"))?;
    let mut buf = [0u8; 1500];
    loop {
        let n = sock
            .recv(&mut buf)
            .await
            .map_err(|e| format!("echo from {addr}: {e}"))?;
        if is_reply(&buf[..n], v6, raw, &token) {
            return Ok(start.elapsed());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_checksum_of_a_request_verifies() {
        let p = request(false, 0x1c46, 7, &[0xAB; 16]);
        // A packet with its checksum in place sums to zero.
        assert_eq!(checksum(&p), 0);
    }

    #[test]
    fn only_the_reply_with_our_token_counts() {
        let token = [7u8; 16];
        let mut reply = vec![0, 0, 0, 0, 0, 1, 0, 1];
        reply.extend_from_slice(&token);
        assert!(is_reply(&reply, false, false, &token));
        assert!(!is_reply(&reply, false, false, &[8u8; 16]));
        let mut with_ip = vec![0x45; 20];
        with_ip.extend_from_slice(&reply);
        assert!(is_reply(&with_ip, false, true, &token));
        assert!(!is_reply(&with_ip[..30], false, true, &token));
        assert!(!is_reply(&[0x4F], false, true, &token));
    }
}
