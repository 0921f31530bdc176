//! Web server and proxy access logs (the `combined` and `common` formats of nginx, Apache and
//! Squid), whether they come over syslog or from a tailed file, read into ECS HTTP fields, so
//! a hunt can pivot on the client, the path or the user agent and SigmaHQ's `webserver` and
//! `proxy` rules see them.
//!
//! The shape: `client ident user [time] "METHOD target PROTOCOL" status bytes` and, in the
//! combined format, ` "referrer" "user agent"`. The client must be an IP address and the
//! status a number from 100 to 599, so ordinary log text is not mistaken for a request.
//!
//! Invariants: only fields are added, the message stays as it was; text without that shape
//! adds nothing. A request line that is not `METHOD target PROTOCOL` (a TLS handshake sent to
//! a plain HTTP port, logged as `"\x16\x03..." 400`) still gives the client and the status.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use vigil_schema::{Fields, fields};

impl Access {
    /// The line's own time.
    pub fn time(&self) -> Option<DateTime<Utc>> {
        self.time
    }

    /// Writes the HTTP fields; `source.ip` only if the event has none yet (`source_ip_set`).
    pub fn write(&self, source_ip_set: bool, out: &mut impl Fields) {
        out.str(fields::EVENT_CATEGORY, "web");
        out.str(
            fields::EVENT_OUTCOME,
            if self.status < 400 {
                "success"
            } else {
                "failure"
            },
        );
        if !source_ip_set {
            out.ip(fields::SOURCE_IP, self.client);
        }
        if let Some(u) = &self.user {
            out.str(fields::USER_NAME, u);
        }
        out.u64(fields::HTTP_STATUS_CODE, self.status.into());
        if let Some(b) = self.bytes {
            out.u64(fields::HTTP_RESPONSE_BYTES, b);
        }
        if let Some(r) = &self.referrer {
            out.str(fields::HTTP_REQUEST_REFERRER, r);
        }
        if let Some(ua) = &self.user_agent {
            out.str(fields::USER_AGENT, ua);
        }
        if let Some((method, target, version)) = &self.request {
            out.str(fields::HTTP_REQUEST_METHOD, method);
            out.str(fields::URL_ORIGINAL, target);
            if let Some(v) = version {
                out.str(fields::HTTP_VERSION, v);
            }
            url(out, method, target);
        }
    }
}

/// `url.*` of a request target: a path (`/a/b.php?x=1`), a whole URL (to a forward proxy) or,
/// for CONNECT, `host:port`.
fn url(ev: &mut impl Fields, method: &str, target: &str) {
    let mut rest = target;
    if method.eq_ignore_ascii_case("CONNECT") {
        let host = target.rsplit_once(':').map_or(target, |(h, _)| h);
        ev.str(fields::URL_DOMAIN, host.trim_matches(['[', ']']));
        return;
    }
    if let Some((scheme, after)) = target.split_once("://") {
        ev.str(fields::URL_SCHEME, &scheme.to_ascii_lowercase());
        let end = after.find(['/', '?']).unwrap_or(after.len());
        let authority = &after[..end];
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => host.split(':').next().unwrap_or(host),
        };
        ev.str(fields::URL_DOMAIN, host);
        rest = &after[end..];
    }
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if !path.is_empty() {
        ev.str(fields::URL_PATH, path);
        let last = path.rsplit('/').next().unwrap_or(path);
        if let Some((_, ext)) = last.rsplit_once('.')
            && !ext.is_empty()
        {
            ev.str(fields::URL_EXTENSION, &ext.to_ascii_lowercase());
        }
    }
    if let Some(q) = query {
        ev.str(fields::URL_QUERY, q);
    }
}

/// What an access log line holds.
pub struct Access {
    client: IpAddr,
    user: Option<String>,
    time: Option<DateTime<Utc>>,
    request: Option<(&'static str, String, Option<&'static str>)>,
    status: u16,
    bytes: Option<u64>,
    referrer: Option<String>,
    user_agent: Option<String>,
}

/// The access log line `line` is, if it is one.
pub fn parse(line: &str) -> Option<Access> {
    let (client, rest) = line.split_once(' ')?;
    let client: IpAddr = client.parse().ok()?;
    let (_ident, rest) = rest.split_once(' ')?;
    let (user, rest) = rest.split_once(' ')?;
    let (time, rest) = rest.strip_prefix('[')?.split_once("] ")?;
    let (request, rest) = quoted(rest.strip_prefix('"')?)?;
    let rest = rest.strip_prefix(' ')?;
    let (status, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let status: u16 = status.parse().ok().filter(|s| (100..=599).contains(s))?;
    let (bytes, rest) = rest.split_once(' ').unwrap_or((rest, ""));
    let mut referrer = None;
    let mut user_agent = None;
    if let Some(r) = rest.trim_start().strip_prefix('"')
        && let Some((r, after)) = quoted(r)
    {
        referrer = Some(r);
        if let Some(ua) = after.trim_start().strip_prefix('"') {
            user_agent = quoted(ua).map(|(ua, _)| ua);
        }
    }
    let dash = |s: String| (s != "-" && !s.is_empty()).then_some(s);
    let mut parts = request.split(' ');
    let request = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), version, None)
            if !m.is_empty() && m.bytes().all(|b| b.is_ascii_alphabetic()) && !t.is_empty() =>
        {
            let version = version
                .and_then(|v| v.strip_prefix("HTTP/"))
                .and_then(static_version);
            Some((static_method(m).unwrap_or("OTHER"), t.to_owned(), version))
        }
        _ => None,
    };
    Some(Access {
        client,
        user: (user != "-" && !user.is_empty()).then(|| user.to_owned()),
        time: DateTime::parse_from_str(time, "%d/%b/%Y:%H:%M:%S %z")
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        request,
        status,
        bytes: bytes.parse().ok(),
        referrer: referrer.and_then(dash),
        user_agent: user_agent.and_then(dash),
    })
}

/// The HTTP methods by name, so the event holds a known spelling (WebDAV's included).
fn static_method(m: &str) -> Option<&'static str> {
    const METHODS: &[&str] = &[
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "DELETE",
        "CONNECT",
        "OPTIONS",
        "TRACE",
        "PATCH",
        "PROPFIND",
        "PROPPATCH",
        "MKCOL",
        "COPY",
        "MOVE",
        "LOCK",
        "UNLOCK",
        "SEARCH",
    ];
    METHODS.iter().copied().find(|k| k.eq_ignore_ascii_case(m))
}

fn static_version(v: &str) -> Option<&'static str> {
    ["0.9", "1.0", "1.1", "2.0", "2", "3"]
        .iter()
        .copied()
        .find(|k| *k == v)
}

/// The text of a quoted field whose opening quote is already consumed, with `\"` and `\\`
/// unescaped, and what follows its closing quote.
fn quoted(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, e @ ('"' | '\\'))) => out.push(e),
                Some((_, e)) => {
                    out.push('\\');
                    out.push(e);
                }
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    use vigil_schema::Event;

    fn enriched(message: &str) -> Event {
        let mut ev = Event::default();
        ev.set_str(fields::MESSAGE, message);
        if let Some(a) = parse(message) {
            a.write(false, &mut ev);
        }
        ev
    }

    fn get<'a>(ev: &'a Event, f: &str) -> Option<&'a str> {
        ev.get_str(f)
    }

    #[test]
    fn combined_format_of_nginx_and_apache() {
        let ev = enriched(
            r#"203.0.113.9 - alice [23/Nov/2026:10:01:02 +0100] "GET /cgi-bin/../../../etc/passwd.txt?a=1&b=%27 HTTP/1.1" 404 153 "https://example.org/x" "sqlmap/1.7.2#stable (https://sqlmap.org)""#,
        );
        assert_eq!(get(&ev, "event.category"), Some("web"));
        assert_eq!(get(&ev, "event.outcome"), Some("failure"));
        assert_eq!(get(&ev, "source.ip"), Some("203.0.113.9"));
        assert_eq!(get(&ev, "user.name"), Some("alice"));
        assert_eq!(get(&ev, "http.request.method"), Some("GET"));
        assert_eq!(
            get(&ev, "url.original"),
            Some("/cgi-bin/../../../etc/passwd.txt?a=1&b=%27")
        );
        assert_eq!(
            get(&ev, "url.path"),
            Some("/cgi-bin/../../../etc/passwd.txt")
        );
        assert_eq!(get(&ev, "url.query"), Some("a=1&b=%27"));
        assert_eq!(get(&ev, "url.extension"), Some("txt"));
        assert_eq!(get(&ev, "http.version"), Some("1.1"));
        assert_eq!(ev.get_u64("http.response.status_code"), Some(404));
        assert_eq!(ev.get_u64("http.response.body.bytes"), Some(153));
        assert_eq!(
            get(&ev, "http.request.referrer"),
            Some("https://example.org/x")
        );
        assert_eq!(
            get(&ev, "user_agent.original"),
            Some("sqlmap/1.7.2#stable (https://sqlmap.org)")
        );
        let line = r#"2001:db8::5 - - [23/Nov/2026:10:01:02 +0000] "POST /login HTTP/2.0" 200 - "-" "Mozilla/5.0 \"quoted\"""#;
        let at = parse(line).and_then(|a| a.time()).expect("time");
        let ev = enriched(line);
        assert_eq!(at.to_rfc3339(), "2026-11-23T10:01:02+00:00");
        assert_eq!(get(&ev, "source.ip"), Some("2001:db8::5"));
        assert_eq!(get(&ev, "event.outcome"), Some("success"));
        assert_eq!(get(&ev, "user.name"), None);
        assert_eq!(get(&ev, "http.request.referrer"), None);
        assert_eq!(ev.get_u64("http.response.body.bytes"), None);
        assert_eq!(
            get(&ev, "user_agent.original"),
            Some("Mozilla/5.0 \"quoted\"")
        );
        assert_eq!(get(&ev, "url.extension"), None);
    }

    #[test]
    fn common_format_proxies_and_broken_requests() {
        // Common format: no referrer, no user agent.
        let ev = enriched(r#"192.0.2.1 - - [01/Jan/2026:00:00:00 +0000] "HEAD / HTTP/1.0" 200 0"#);
        assert_eq!(get(&ev, "http.request.method"), Some("HEAD"));
        assert_eq!(get(&ev, "url.path"), Some("/"));
        assert_eq!(get(&ev, "user_agent.original"), None);
        // A forward proxy logs whole URLs, and CONNECT targets.
        let ev = enriched(
            r#"10.0.0.7 - - [01/Jan/2026:00:00:00 +0000] "GET http://user@files.example.net:8080/dl/tool.EXE?x=1 HTTP/1.1" 200 5120 "-" "curl/8.5.0""#,
        );
        assert_eq!(get(&ev, "url.scheme"), Some("http"));
        assert_eq!(get(&ev, "url.domain"), Some("files.example.net"));
        assert_eq!(get(&ev, "url.path"), Some("/dl/tool.EXE"));
        assert_eq!(get(&ev, "url.extension"), Some("exe"));
        assert_eq!(get(&ev, "url.query"), Some("x=1"));
        let ev = enriched(
            r#"10.0.0.7 - - [01/Jan/2026:00:00:00 +0000] "CONNECT api.telegram.org:443 HTTP/1.1" 200 0 "-" "-""#,
        );
        assert_eq!(get(&ev, "url.domain"), Some("api.telegram.org"));
        assert_eq!(get(&ev, "url.path"), None);
        // A TLS handshake on a plain HTTP port: client and status, no request fields.
        let ev = enriched(
            r#"198.51.100.4 - - [01/Jan/2026:00:00:00 +0000] "\x16\x03\x01\x02\x00\x01" 400 157 "-" "-""#,
        );
        assert_eq!(get(&ev, "source.ip"), Some("198.51.100.4"));
        assert_eq!(ev.get_u64("http.response.status_code"), Some(400));
        assert_eq!(get(&ev, "http.request.method"), None);
        assert_eq!(get(&ev, "url.original"), None);
    }

    #[test]
    fn other_text_adds_nothing() {
        for text in [
            "Failed password for root from 10.0.0.1 port 22 ssh2",
            "10.0.0.1 - - [x] \"GET / HTTP/1.1\" 999 1",
            "web-1 - - [01/Jan/2026:00:00:00 +0000] \"GET / HTTP/1.1\" 200 1",
            "10.0.0.1 - - [01/Jan/2026:00:00:00 +0000] \"GET / HTTP/1.1",
            "",
        ] {
            let ev = enriched(text);
            assert_eq!(ev.len(), 1, "{text}: {ev:?}");
        }
    }
}
