//! The DNS query of a `dns` check sent to a chosen server: one question (A or AAAA) over UDP,
//! its answer read back. Without a chosen server the check asks the system's resolver instead.
//!
//! # Invariants
//! - An answer is hostile until parsed: every length and offset is checked against the
//!   datagram before it is read, and a malformed one is an error, never a panic.
//! - Only the answer to our question counts: its id and question must match ours.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use vigil_schema::check::DnsRecord;

/// The largest answer read (EDNS is not asked for, so a server sends at most 512 bytes;
/// a larger buffer tolerates those that send more).
const MAX_ANSWER: usize = 4096;

/// What a server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The response code: 0 no error, 2 server failure, 3 no such name, ...
    pub rcode: u8,
    /// The addresses of the type asked for, in the order given.
    pub addresses: Vec<IpAddr>,
}

/// The name of a response code, as `dig` shows it.
pub fn rcode_name(rcode: u8) -> String {
    match rcode {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        n => format!("RCODE {n}"),
    }
}

fn qtype(record: DnsRecord) -> u16 {
    match record {
        DnsRecord::A => 1,
        DnsRecord::Aaaa => 28,
    }
}

/// The query for `name`, with `id`.
pub fn query(id: u16, name: &str, record: DnsRecord) -> Result<Vec<u8>, String> {
    let mut q = Vec::with_capacity(18 + name.len());
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0x0100u16.to_be_bytes()); // a standard query, recursion desired
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question
    let name = name.trim_end_matches('.');
    if name.is_empty() || name.len() > 253 {
        return Err(format!("{name:?} is not a DNS name"));
    }
    for label in name.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("{name:?} is not a DNS name"));
        }
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype(record).to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes()); // IN
    Ok(q)
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, String> {
    b.get(at..at + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or_else(|| "the answer is cut short".to_owned())
}

/// The offset just past the name that starts at `at` (a compressed name ends at its pointer).
fn skip_name(b: &[u8], mut at: usize) -> Result<usize, String> {
    loop {
        let len = *b.get(at).ok_or("the answer is cut short")?;
        match len & 0xC0 {
            0x00 if len == 0 => return Ok(at + 1),
            0x00 => at += 1 + usize::from(len),
            0xC0 => return Ok(at + 2),
            _ => return Err("a name in the answer has a bad label".into()),
        }
    }
}

/// Reads the answer to the query `q` (the bytes [`query`] made).
pub fn parse(q: &[u8], b: &[u8], record: DnsRecord) -> Result<Answer, String> {
    if b.len() < 12 || b[..2] != q[..2] {
        return Err("the answer is not to our query".into());
    }
    let flags = u16_at(b, 2)?;
    if flags & 0x8000 == 0 {
        return Err("the server sent a query, not an answer".into());
    }
    let rcode = (flags & 0x000F) as u8;
    let questions = u16_at(b, 4)?;
    let answers = u16_at(b, 6)?;
    let mut at = 12;
    for _ in 0..questions {
        let end = skip_name(b, at)? + 4;
        // The question echoed back is ours (names compare without case).
        if b.get(at..end).map(|s| s.to_ascii_lowercase()) != Some(q[12..].to_ascii_lowercase()) {
            return Err("the answer is to another question".into());
        }
        at = end;
    }
    let want = qtype(record);
    let mut addresses = Vec::new();
    for _ in 0..answers {
        at = skip_name(b, at)?;
        let kind = u16_at(b, at)?;
        let len = usize::from(u16_at(b, at + 8)?);
        let data = b
            .get(at + 10..at + 10 + len)
            .ok_or("the answer is cut short")?;
        at += 10 + len;
        match (kind == want, data.len()) {
            (true, 4) => addresses.push(IpAddr::V4(Ipv4Addr::new(
                data[0], data[1], data[2], data[3],
            ))),
            (true, 16) => {
                let mut a = [0u8; 16];
                a.copy_from_slice(data);
                addresses.push(IpAddr::V6(Ipv6Addr::from(a)));
            }
            (true, n) => return Err(format!("an address record of {n} bytes")),
            // CNAMEs and other records on the way to the address.
            _ => {}
        }
    }
    Ok(Answer { rcode, addresses })
}

/// Asks `server` for `name`'s addresses of type `record`.
pub async fn resolve(server: SocketAddr, name: &str, record: DnsRecord) -> Result<Answer, String> {
    let id: u16 = rand::random();
    let q = query(id, name, record)?;
    let bind: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("no UDP socket: {e}"))?;
    sock.connect(server)
        .await
        .map_err(|e| format!("cannot reach {server}: {e}"))?;
    sock.send(&q)
        .await
        .map_err(|e| format!("send to {server}: {e}"))?;
    let mut buf = vec![0u8; MAX_ANSWER];
    loop {
        let n = sock
            .recv(&mut buf)
            .await
            .map_err(|e| format!("no answer from {server}: {e}"))?;
        // A stray datagram (a late answer to an earlier query) is not ours: wait for ours.
        match parse(&q, &buf[..n], record) {
            Err(e) if e == "the answer is not to our query" => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer built by hand: header, our question, a CNAME then an A record, the names
    /// compressed as servers do.
    #[test]
    fn an_answer_with_a_cname_and_compression_reads() {
        let q = query(0x1234, "www.example.test", DnsRecord::A).expect("query");
        let mut b = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0];
        b.extend_from_slice(&q[12..]);
        // www.example.test CNAME web.example.test (a pointer to offset 12: the question).
        b.extend_from_slice(&[0xC0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6]);
        b.extend_from_slice(&[3, b'w', b'e', b'b', 0xC0, 16]);
        let cname_at = q.len() + 12;
        b.extend_from_slice(&[0xC0, cname_at as u8, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
        b.extend_from_slice(&[192, 0, 2, 7]);
        let a = parse(&q, &b, DnsRecord::A).expect("parses");
        assert_eq!(a.rcode, 0);
        assert_eq!(a.addresses, vec![IpAddr::from([192, 0, 2, 7])]);
        // Every cut of it is an error, never a panic.
        for n in 0..b.len() {
            assert!(parse(&q, &b[..n], DnsRecord::A).is_err(), "cut at {n}");
        }
    }

    #[test]
    fn a_bad_name_is_refused() {
        assert!(query(1, "a..b", DnsRecord::A).is_err());
        assert!(query(1, &"x".repeat(64), DnsRecord::A).is_err());
    }
}
