//! The capture filter: a small subset of BPF's filter language, checked in user space on each
//! decoded packet. Grammar (`and` binds tighter than `or`; `not` applies to one primitive):
//!
//! ```text
//! filter    := all ("or" all)*
//! all       := primitive ("and" primitive)*
//! primitive := ["not"] ( "host" IP | "net" CIDR | "port" N | "tcp" | "udp" | "icmp" | "icmp6" )
//! ```
//! e.g. `not port 22 and net 10.0.0.0/8`. `host`, `net` and `port` match either end.

use crate::customer::Prefix;

use super::packet::PacketInfo;

#[derive(Debug, Clone)]
enum Prim {
    Net(Prefix),
    Port(u16),
    Proto(u8),
}

#[derive(Debug, Clone)]
pub struct Filter {
    /// Or of ands of (negated?, primitive).
    any: Vec<Vec<(bool, Prim)>>,
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, String> {
        let mut any = Vec::new();
        let mut all = Vec::new();
        let mut words = text.split_whitespace().peekable();
        loop {
            let mut not = false;
            let mut w = words
                .next()
                .ok_or("expected a primitive (host, net, port, tcp, udp, icmp, icmp6)")?;
            if w == "not" {
                not = true;
                w = words.next().ok_or("expected a primitive after `not`")?;
            }
            let mut arg = |what: &str| words.next().ok_or(format!("`{w}` needs {what}"));
            let prim = match w {
                "host" | "net" => Prim::Net(Prefix::parse(arg("an address")?)?),
                "port" => {
                    let a = arg("a port number")?;
                    Prim::Port(
                        a.parse()
                            .map_err(|_| format!("`{a}` is not a port number"))?,
                    )
                }
                "tcp" => Prim::Proto(6),
                "udp" => Prim::Proto(17),
                "icmp" => Prim::Proto(1),
                "icmp6" => Prim::Proto(58),
                other => return Err(format!("unknown primitive `{other}`")),
            };
            all.push((not, prim));
            match words.next() {
                None => break,
                Some("and") => {}
                Some("or") => any.push(std::mem::take(&mut all)),
                Some(other) => return Err(format!("expected `and` or `or`, found `{other}`")),
            }
        }
        any.push(all);
        Ok(Filter { any })
    }

    pub fn matches(&self, p: &PacketInfo<'_>) -> bool {
        self.any.iter().any(|all| {
            all.iter().all(|(not, prim)| {
                let hit = match prim {
                    Prim::Net(n) => n.contains(p.src) || n.contains(p.dst),
                    Prim::Port(x) => p.icmp.is_none() && (p.sport == *x || p.dport == *x),
                    Prim::Proto(x) => p.proto == *x,
                };
                hit != *not
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pkt(src: &str, sport: u16, dst: &str, dport: u16, proto: u8) -> PacketInfo<'static> {
        PacketInfo {
            src: src.parse().expect("ip"),
            dst: dst.parse().expect("ip"),
            proto,
            sport,
            dport,
            tcp_flags: 0,
            icmp: None,
            ip_bytes: 40,
            fragment: false,
            payload: &[],
        }
    }

    #[test]
    fn and_or_not() {
        let f = Filter::parse("not port 22 and net 10.0.0.0/8 or udp").expect("parses");
        assert!(f.matches(&pkt("10.1.1.1", 5000, "192.0.2.1", 80, 6)));
        assert!(!f.matches(&pkt("10.1.1.1", 5000, "192.0.2.1", 22, 6)));
        assert!(!f.matches(&pkt("192.0.2.2", 5000, "192.0.2.1", 80, 6)));
        assert!(f.matches(&pkt("192.0.2.2", 5000, "192.0.2.1", 22, 17)));
        assert!(Filter::parse("host").is_err());
        assert!(Filter::parse("port x").is_err());
        assert!(Filter::parse("tcp udp").is_err());
        assert!(Filter::parse("").is_err());
    }
}
