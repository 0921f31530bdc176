//! One syslog message (RFC 5424 or RFC 3164, as `syslog_loose` reads them) to one event.
//!
//! Invariant: a message is never dropped. Text that is not syslog is kept whole as `message`
//! with the tag [`PARSE_FAILURE_TAG`].

use std::borrow::Cow;
use std::fmt::Write as _;
use std::net::IpAddr;

use chrono::{DateTime, Datelike, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::Value;
use syslog_loose::{IncompleteDate, ProcId, Variant};
use vigil_schema::{Event, EventKind, Fields, binary, fields};

use super::{access, auth, firewall, timestamp};

/// Tag on events whose text was not recognisable syslog.
pub const PARSE_FAILURE_TAG: &str = "_syslogparsefailure";
/// Tag on events whose text was cut at the listener's maximum message size.
pub const TRUNCATED_TAG: &str = "_truncated";

/// What the listener knows about a message besides its text.
#[derive(Debug, Clone)]
pub struct Origin<'a> {
    pub agent_id: &'a str,
    pub agent_name: &'a str,
    pub customer: Option<&'a str>,
    pub peer: Option<IpAddr>,
    pub received: DateTime<Utc>,
    pub truncated: bool,
    /// Time zone of timestamps that carry no offset (RFC 3164, most application logs).
    pub tz: Tz,
}

/// The text of a message as received: invalid UTF-8 becomes U+FFFD, as in
/// `String::from_utf8_lossy`. Checked with `from_utf8` first, which skips ASCII a word at a
/// time where `from_utf8_lossy` walks byte by byte (4 % of the agent's time under load).
pub fn text(raw: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(raw) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(raw),
    }
}

/// Parses one message; returns the event and whether the text parsed as syslog.
pub fn to_event(text: &str, origin: &Origin<'_>) -> (Event, bool) {
    let mut ev = Event::default();
    let parsed = write(text, origin, &mut ev);
    (ev, parsed)
}

/// Parses one message into the next event of `out` (what [`to_event`] makes, with no
/// [`Event`] in between: the listeners write thousands a second); true when the text parsed
/// as syslog.
pub fn encode(text: &str, origin: &Origin<'_>, out: &mut binary::Writer) -> bool {
    write(text, origin, &mut out.event())
}

fn write(text: &str, origin: &Origin<'_>, out: &mut impl Fields) -> bool {
    let now = origin.received;
    // RFC 3164 has no year: take the one that puts the timestamp nearest to now, never in
    // the future by more than a day (a Dec 31 message read on Jan 1 is last year's).
    let year = |(month, day, ..): IncompleteDate| infer_year(now, month, day);
    // syslog_loose takes a fixed offset: the zone's offset now (off by the DST change for
    // messages stamped in the hour around it, which a live stream barely has).
    let offset = origin.tz.offset_from_utc_datetime(&now.naive_utc()).fix();
    let msg = syslog_loose::parse_message_with_year_tz(text, year, Some(offset), Variant::Either);
    let parsed = msg.facility.is_some() || msg.timestamp.is_some();
    let message = if parsed { msg.msg } else { text.trim_end() };
    let web = access::parse(message);

    let at = match msg.timestamp {
        Some(t) => t.with_timezone(&Utc),
        // Not syslog: an access log line or an application log line may still carry its
        // own time.
        None if !parsed => web
            .as_ref()
            .and_then(access::Access::time)
            .or_else(|| timestamp::leading(text, now, origin.tz))
            .unwrap_or(now),
        None => now,
    };
    out.time(fields::TIMESTAMP, at);
    out.str(fields::EVENT_KIND, EventKind::Syslog.as_str());
    out.str(fields::EVENT_DATASET, "syslog");
    out.str(fields::AGENT_ID, origin.agent_id);
    out.str(fields::AGENT_NAME, origin.agent_name);
    if let Some(c) = origin.customer {
        out.str(fields::CUSTOMER, c);
    }
    if let Some(ip) = origin.peer {
        out.ip(fields::OBSERVER_IP, ip);
    }
    out.str(fields::MESSAGE, message);
    let mut source_ip = false;
    // Scratch for the names and numbers written from pieces.
    let mut name = String::new();
    if parsed {
        // RFC 3164 4.3.3: a message without PRI is taken as user.notice (PRI 13).
        out.u64(
            fields::SYSLOG_FACILITY,
            msg.facility.map_or(1, |f| f as u64),
        );
        out.u64(
            fields::SYSLOG_SEVERITY,
            msg.severity.map_or(5, |s| s as u64),
        );
        if let Some(h) = msg.hostname {
            out.str(fields::SYSLOG_HOSTNAME, h);
            out.str(fields::HOST_NAME, h);
        }
        if let Some(a) = msg.appname {
            out.str(fields::SYSLOG_APPNAME, a);
            out.str(fields::PROCESS_NAME, a);
        }
        match msg.procid {
            Some(ProcId::PID(pid)) => {
                name.clear();
                let _ = write!(name, "{pid}");
                out.str(fields::SYSLOG_PROCID, &name);
                match u64::try_from(pid) {
                    Ok(pid) => out.u64(fields::PROCESS_PID, pid),
                    Err(_) => out.value(fields::PROCESS_PID, &Value::from(pid)),
                }
            }
            Some(ProcId::Name(name)) => out.str(fields::SYSLOG_PROCID, name),
            None => {}
        }
        if let Some(m) = msg.msgid {
            out.str(fields::SYSLOG_MSGID, m);
        }
        for sd in &msg.structured_data {
            for (param, value) in sd.params() {
                name.clear();
                let _ = write!(name, "log.syslog.structured_data.{}.{param}", sd.id);
                out.str(&name, &value);
            }
        }
        if let Some(process) = msg.appname {
            source_ip = auth::enrich(process, message, out);
        }
        if !source_ip {
            source_ip = firewall::enrich(msg.appname, message, out);
        }
    }
    if !parsed {
        source_ip = firewall::enrich(None, message, out);
    }
    if let Some(a) = &web {
        a.write(source_ip, out);
    }
    if !(parsed && msg.hostname.is_some())
        && let Some(ip) = origin.peer
    {
        out.ip(fields::HOST_NAME, ip);
    }
    let mut tags = [""; 2];
    let mut n = 0;
    for (tag, on) in [
        (PARSE_FAILURE_TAG, !parsed),
        (TRUNCATED_TAG, origin.truncated),
    ] {
        if on {
            tags[n] = tag;
            n += 1;
        }
    }
    if n > 0 {
        out.strs(fields::TAGS, &tags[..n]);
    }
    parsed
}

fn infer_year(now: DateTime<Utc>, month: u32, day: u32) -> i32 {
    let y = now.year();
    let this_year = chrono::NaiveDate::from_ymd_opt(y, month, day.max(1));
    match this_year {
        Some(d) if d > now.date_naive() + chrono::Days::new(1) => y - 1,
        _ => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(now: &str) -> Origin<'static> {
        Origin {
            agent_id: "a1",
            agent_name: "edge",
            customer: Some("ulb"),
            peer: "192.0.2.7".parse().ok(),
            received: DateTime::parse_from_rfc3339(now)
                .expect("valid")
                .with_timezone(&Utc),
            truncated: false,
            tz: Tz::UTC,
        }
    }

    #[test]
    fn rfc5424_fields() {
        let line = r#"<34>1 2026-10-11T22:14:15.003Z mymachine.example.com su 77 ID47 [exampleSDID@32473 iut="3"] 'su root' failed"#;
        let (ev, ok) = to_event(line, &origin("2026-10-12T00:00:00Z"));
        assert!(ok);
        assert_eq!(ev.get_str("@timestamp"), Some("2026-10-11T22:14:15.003Z"));
        assert_eq!(ev.get_u64("log.syslog.facility.code"), Some(4));
        assert_eq!(ev.get_u64("log.syslog.severity.code"), Some(2));
        assert_eq!(ev.get_str("host.name"), Some("mymachine.example.com"));
        assert_eq!(ev.get_str("process.name"), Some("su"));
        assert_eq!(ev.get_u64("process.pid"), Some(77));
        assert_eq!(ev.get_str("log.syslog.msgid"), Some("ID47"));
        assert_eq!(
            ev.get_str("log.syslog.structured_data.exampleSDID@32473.iut"),
            Some("3")
        );
        assert_eq!(ev.get_str("message"), Some("'su root' failed"));
        assert_eq!(ev.get_str("observer.ip"), Some("192.0.2.7"));
        assert_eq!(ev.get_str("customer"), Some("ulb"));
    }

    /// A Belgian device logs local time without a zone: read in its zone, the line lands at
    /// the instant it was sent (not one or two hours ahead, where `--since 1h` missed it).
    #[test]
    fn rfc3164_lines_carry_neither_year_nor_zone() {
        let line = "<13>Dec  2 08:30:00 fw1 sshd[42]: Failed password for root";
        let mut o = origin("2026-12-02T07:30:04Z");
        o.tz = chrono_tz::Europe::Brussels;
        assert_eq!(
            to_event(line, &o).0.get_str("@timestamp"),
            Some("2026-12-02T07:30:00Z")
        );
        // Summer time: two hours.
        let line = "<13>Jul  2 08:30:00 fw1 sshd[42]: x";
        let mut o = origin("2026-07-02T06:30:04Z");
        o.tz = chrono_tz::Europe::Brussels;
        assert_eq!(
            to_event(line, &o).0.get_str("@timestamp"),
            Some("2026-07-02T06:30:00Z")
        );
    }

    #[test]
    fn rfc3164_year_is_inferred_never_in_the_future() {
        let line = "<13>Dec 31 23:59:00 host1 sshd[42]: Failed password for root";
        let (ev, ok) = to_event(line, &origin("2027-01-01T00:00:10Z"));
        assert!(ok);
        assert_eq!(ev.get_str("@timestamp"), Some("2026-12-31T23:59:00Z"));
        assert_eq!(ev.get_str("process.name"), Some("sshd"));
        assert_eq!(ev.get_u64("process.pid"), Some(42));
        let (ev, _) = to_event(
            "<13>Jan  1 00:00:05 h x: y",
            &origin("2027-01-01T00:00:10Z"),
        );
        assert_eq!(ev.get_str("@timestamp"), Some("2027-01-01T00:00:05Z"));
    }

    #[test]
    fn encoded_events_read_back_as_built_events() {
        let mut o = origin("2026-10-12T00:00:00Z");
        for line in [
            r#"<34>1 2026-10-11T22:14:15.003Z host su 77 ID47 [a@1 x="1" y="2"][b@2 x="3"] m"#,
            "<38>Oct 11 22:14:15 gw sshd[4242]: Failed password for root from 203.0.113.5 port 4711 ssh2",
            "<86>Oct 11 22:14:15 gw sshd(pam_unix)[1]: authentication failure; rhost=evil.example user=x",
            r#"<190>Oct 11 22:14:15 web nginx: 198.51.100.2 - - [11/Oct/2026:22:14:15 +0000] "GET /a.PHP?q=1 HTTP/1.1" 404 5 "-" "curl""#,
            r#"198.51.100.2 - bob [11/Oct/2026:22:14:15 +0200] "GET / HTTP/1.1" 200 5"#,
            "2026-10-11 20:00:01,123 INFO application line",
            "\u{1}garbage",
            "<13>1 - - - -1 - pid below zero",
        ] {
            for truncated in [false, true] {
                o.truncated = truncated;
                o.peer = (!truncated).then(|| "192.0.2.7".parse().expect("ip"));
                let (built, parsed) = to_event(line, &o);
                let mut w = binary::Writer::with_capacity(1024);
                assert_eq!(encode(line, &o, &mut w), parsed);
                let read = binary::read_events(w.events()).expect("reads back");
                assert_eq!(read, vec![built], "{line}");
            }
        }
    }

    #[test]
    fn garbage_is_kept_whole_and_flagged() {
        let (ev, ok) = to_event("\u{1}not syslog at all\n", &origin("2026-10-12T00:00:00Z"));
        assert!(!ok);
        assert_eq!(ev.get_str("message"), Some("\u{1}not syslog at all"));
        assert_eq!(
            ev.get("tags"),
            Some(&serde_json::json!([PARSE_FAILURE_TAG]))
        );
        assert_eq!(ev.get_str("@timestamp"), Some("2026-10-12T00:00:00Z"));
        assert_eq!(ev.get_str("host.name"), Some("192.0.2.7"));
    }
}
