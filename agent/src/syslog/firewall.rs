//! Firewall verdicts in syslog, read into ECS fields (`event.category = network`,
//! `event.action`, `event.outcome`, `source.*`, `destination.*`, `network.transport`), so
//! that Sigma's `firewall` rules and a hunt see what the firewall did with a connection.
//!
//! Two shapes are read:
//! - Linux netfilter `LOG` lines (`kernel: <prefix>IN=eth0 OUT= ... SRC=a DST=b ...
//!   PROTO=TCP SPT=p DPT=q`): the verdict is a word of the administrator's `--log-prefix`
//!   (`DROP`, `REJECT`, `DENY`, `BLOCK`, `ACCEPT`, `ALLOW`, `PASS`); without one, no action is
//!   claimed.
//! - Cisco ASA/FTD `%ASA-n-106023` (`Deny proto src if:a/p dst if:b/q ...`) and
//!   `%ASA-n-106100` (`access-list NAME permitted|denied proto if/a(p) -> if/b(q) ...`).
//!
//! Invariants: only fields are added, the message stays as it was; text of another shape
//! adds nothing, and nothing is guessed.

use std::net::IpAddr;

use vigil_schema::{Fields, fields};

/// What a line says happened to a connection.
#[derive(Debug, Default, PartialEq)]
struct Verdict {
    action: Option<&'static str>,
    transport: Option<String>,
    src: Option<IpAddr>,
    sport: Option<u16>,
    dst: Option<IpAddr>,
    dport: Option<u16>,
}

/// Writes the firewall fields of `message` (from `process`, if the line has one); true when
/// it wrote `source.ip`.
pub fn enrich(process: Option<&str>, message: &str, out: &mut impl Fields) -> bool {
    let asa = |s: &str| s.starts_with("%ASA-") || s.starts_with("%FTD-");
    // Without a timestamp (`no logging timestamp`, the ASA's default) the line is not
    // syslog to the parser: the tag is then found in the text, after `<PRI>` or a space.
    let tagged = || {
        ["%ASA-", "%FTD-"]
            .iter()
            .filter_map(|t| message.find(t))
            .find(|&i| i == 0 || matches!(message.as_bytes()[i - 1], b'>' | b' '))
    };
    let found = if process.is_some_and(asa) {
        cisco(process.unwrap_or_default(), message)
    } else if let Some(i) = tagged() {
        message[i..]
            .split_once(": ")
            .and_then(|(tag, rest)| cisco(tag, rest))
    } else if process.is_none_or(|p| p == "kernel")
        && message.contains("IN=")
        && message.contains(" SRC=")
    {
        // netfilter logs through the kernel: other programs' lines are not searched.
        netfilter(message)
    } else {
        None
    };
    let Some(v) = found else { return false };
    out.str(fields::EVENT_CATEGORY, "network");
    if let Some(a) = v.action {
        out.str(fields::EVENT_ACTION, a);
        out.str(
            fields::EVENT_OUTCOME,
            if a == "accept" { "success" } else { "failure" },
        );
    }
    if let Some(t) = &v.transport {
        out.str(fields::NETWORK_TRANSPORT, t);
    }
    if let Some(ip) = v.src {
        out.ip(fields::SOURCE_IP, ip);
    }
    if let Some(p) = v.sport {
        out.u64(fields::SOURCE_PORT, p.into());
    }
    if let Some(ip) = v.dst {
        out.ip(fields::DESTINATION_IP, ip);
    }
    if let Some(p) = v.dport {
        out.u64(fields::DESTINATION_PORT, p.into());
    }
    v.src.is_some()
}

/// The verdict a word names.
fn action_word(word: &str) -> Option<&'static str> {
    let w = word.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    Some(match w.to_ascii_lowercase().as_str() {
        "drop" | "dropped" => "drop",
        "reject" | "rejected" => "reject",
        "deny" | "denied" | "block" | "blocked" => "deny",
        "accept" | "accepted" | "allow" | "allowed" | "pass" | "permit" | "permitted" => "accept",
        _ => return None,
    })
}

fn netfilter(message: &str) -> Option<Verdict> {
    let at = message.find("IN=")?;
    let (prefix, rest) = message.split_at(at);
    let mut v = Verdict {
        // `DROP-IN:`, `[UFW BLOCK]`, `fw-accept `: the words of the prefix.
        action: prefix
            .split(|c: char| !c.is_ascii_alphanumeric())
            .find_map(action_word),
        ..Verdict::default()
    };
    for kv in rest.split_ascii_whitespace() {
        let Some((k, val)) = kv.split_once('=') else {
            continue;
        };
        match k {
            "SRC" => v.src = val.parse().ok(),
            "DST" => v.dst = val.parse().ok(),
            "SPT" => v.sport = val.parse().ok(),
            "DPT" => v.dport = val.parse().ok(),
            "PROTO" => v.transport = Some(val.to_ascii_lowercase()),
            _ => {}
        }
    }
    // Both addresses, or it is not a netfilter packet line.
    (v.src.is_some() && v.dst.is_some()).then_some(v)
}

/// `if:addr/port` (106023) or `if/addr(port)` (106100).
fn endpoint(s: &str) -> Option<(IpAddr, Option<u16>)> {
    let s = s.trim_end_matches(',');
    if let Some((left, port)) = s.strip_suffix(')').and_then(|x| x.rsplit_once('(')) {
        let addr = left.rsplit_once('/').map_or(left, |(_, a)| a);
        return Some((addr.parse().ok()?, port.parse().ok()));
    }
    let addr_port = s.rsplit_once(':').map_or(s, |(_, a)| a);
    match addr_port.rsplit_once('/') {
        Some((a, p)) => Some((a.parse().ok()?, p.parse().ok())),
        None => Some((addr_port.parse().ok()?, None)),
    }
}

fn cisco(tag: &str, body: &str) -> Option<Verdict> {
    let id = tag.trim_end_matches(':').rsplit('-').next()?;
    let words: Vec<&str> = body.split_ascii_whitespace().collect();
    let mut v = Verdict::default();
    match id {
        // Deny tcp src outside:198.51.100.7/51234 dst inside:10.0.0.5/23 by access-group ...
        "106023" => {
            v.action = action_word(words.first()?);
            v.transport = Some(words.get(1)?.to_ascii_lowercase());
            let src = words.iter().position(|w| *w == "src")?;
            let dst = words.iter().position(|w| *w == "dst")?;
            let (s, sp) = endpoint(words.get(src + 1)?)?;
            let (d, dp) = endpoint(words.get(dst + 1)?)?;
            (v.src, v.sport, v.dst, v.dport) = (Some(s), sp, Some(d), dp);
        }
        // access-list outside_in denied tcp outside/198.51.100.7(51234) -> inside/10.0.0.5(23)
        "106100" => {
            v.action = action_word(words.get(2)?);
            v.transport = Some(words.get(3)?.to_ascii_lowercase());
            let (s, sp) = endpoint(words.get(4)?)?;
            let to = if words.get(5) == Some(&"->") { 6 } else { 5 };
            let (d, dp) = endpoint(words.get(to)?)?;
            (v.src, v.sport, v.dst, v.dport) = (Some(s), sp, Some(d), dp);
        }
        _ => return None,
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_schema::Event;

    fn fields_of(process: Option<&str>, message: &str) -> Option<Event> {
        let mut ev = Event::default();
        let source_ip = enrich(process, message, &mut ev);
        assert_eq!(source_ip, ev.get(fields::SOURCE_IP).is_some());
        (ev.get_str(fields::EVENT_CATEGORY) == Some("network")).then_some(ev)
    }

    /// Lines as netfilter and the ASA write them (formats from the kernel's nf_log and
    /// Cisco's message reference); the fields are read off the lines by hand.
    #[test]
    fn verdicts_of_netfilter_and_asa_lines() {
        // (process, line, action, source, port, destination, port, transport)
        type Case<'a> = (
            Option<&'a str>,
            &'a str,
            &'a str,
            &'a str,
            u64,
            &'a str,
            u64,
            &'a str,
        );
        let cases: &[Case] = &[
            (
                Some("kernel"),
                "[12345.678901] DROP-IN: IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 \
                 SRC=198.51.100.7 DST=10.0.0.5 LEN=60 TOS=0x00 PREC=0x00 TTL=52 ID=4242 DF \
                 PROTO=TCP SPT=51234 DPT=23 WINDOW=64240 RES=0x00 SYN URGP=0",
                "drop",
                "198.51.100.7",
                51234,
                "10.0.0.5",
                23,
                "tcp",
            ),
            (
                Some("kernel"),
                "ACCEPT IN=eth1 OUT=eth0 SRC=2001:db8::7 DST=2001:db8:1::5 LEN=80 TC=0 \
                 HOPLIMIT=63 FLOWLBL=0 PROTO=UDP SPT=5353 DPT=53 LEN=40",
                "accept",
                "2001:db8::7",
                5353,
                "2001:db8:1::5",
                53,
                "udp",
            ),
            (
                Some("%ASA-4-106023"),
                "Deny tcp src outside:198.51.100.7/51234 dst inside:10.0.0.5/23 by \
                 access-group \"outside_in\" [0x0, 0x0]",
                "deny",
                "198.51.100.7",
                51234,
                "10.0.0.5",
                23,
                "tcp",
            ),
            (
                None,
                "%ASA-6-106100: access-list outside_in permitted tcp \
                 outside/198.51.100.7(51234) -> inside/10.0.0.5(80) hit-cnt 1 first hit \
                 [0x1, 0x0]",
                "accept",
                "198.51.100.7",
                51234,
                "10.0.0.5",
                80,
                "tcp",
            ),
        ];
        for &(process, line, action, src, sport, dst, dport, transport) in cases {
            let e = fields_of(process, line).unwrap_or_else(|| panic!("{line}"));
            assert_eq!(e.get_str("event.action"), Some(action), "{line}");
            assert_eq!(e.get_str("source.ip"), Some(src), "{line}");
            assert_eq!(e.get_u64("source.port"), Some(sport), "{line}");
            assert_eq!(e.get_str("destination.ip"), Some(dst), "{line}");
            assert_eq!(e.get_u64("destination.port"), Some(dport), "{line}");
            assert_eq!(e.get_str("network.transport"), Some(transport), "{line}");
        }
        // A netfilter line whose prefix names no verdict: the packet, no claimed action.
        let e = fields_of(
            Some("kernel"),
            "fw: IN=eth0 OUT= SRC=192.0.2.1 DST=192.0.2.2 PROTO=ICMP TYPE=8 CODE=0",
        )
        .expect("packet");
        assert_eq!(e.get_str("event.action"), None);
        // Other text adds nothing.
        for line in [
            "Failed password for root",
            "IN= and SRC= in prose",
            "%ASA-6-302013: Built",
        ] {
            assert!(fields_of(Some("sshd"), line).is_none(), "{line}");
        }
    }
}
