//! Replies by e-mail: a small SMTP listener (`[notify.inbound] listen`) that takes replies to
//! announcement e-mails, behind the organisation's mail server (plain SMTP, no relaying).
//!
//! A reply names the announcement it answers in `In-Reply-To` or `References`
//! (`<vigil-<incident>-<delivery>@...>`, the announcement's Message-ID). It is taken only
//! from the address that announcement went to: its text (quoted lines left out) lands on the
//! incident's timeline as a `reply`; a reply whose first line is `ACK` acknowledges the
//! incident, as `email:<address>`. Anything else is refused (550), so its sender hears it
//! did not reach anyone.
//!
//! # Invariants
//! - Hostile input is bounded: a command line is at most 1,000 bytes, a message at most
//!   `max_message_bytes`, a connection at most 50 messages and 5 minutes; each read times out.

use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::incidents::Store;

/// `[notify.inbound]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundConfig {
    /// Where the SMTP listener binds (`127.0.0.1:2525`; the mail server forwards replies).
    pub listen: String,
    #[serde(default = "default_max")]
    pub max_message_bytes: usize,
    /// A certificate and key (PEM): the listener then offers STARTTLS, so the mail server can
    /// forward replies encrypted.
    #[serde(default)]
    pub tls: Option<vigil_agent::config::TlsConfig>,
}

fn default_max() -> usize {
    1 << 20
}

const MAX_LINE: usize = 1000;
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const SESSION: Duration = Duration::from_secs(300);
const MAX_MESSAGES: usize = 50;

/// Takes connections on `listener` until `shutdown`.
pub async fn run(
    listener: TcpListener,
    store: Store,
    max_message_bytes: usize,
    tls: Option<TlsAcceptor>,
    shutdown: CancellationToken,
) {
    loop {
        let (socket, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "inbound SMTP accept failed");
                    continue;
                }
            },
        };
        let store = store.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let talk = session(socket, &store, max_message_bytes, tls);
            match tokio::time::timeout(SESSION, talk).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "inbound SMTP session ended"),
                Err(_) => tracing::debug!(%peer, "inbound SMTP session timed out"),
            }
        });
    }
}

/// One line (without CRLF), at most `max` bytes; `None` at the end of the stream.
async fn line<R: AsyncRead + Unpin>(
    r: &mut BufReader<R>,
    max: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::new();
    let n = tokio::time::timeout(READ_TIMEOUT, async {
        let mut limited = (&mut *r).take(max as u64 + 2);
        limited.read_until(b'\n', &mut buf).await
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "read timed out"))??;
    if n == 0 {
        return Ok(None);
    }
    if !buf.ends_with(b"\n") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "line too long",
        ));
    }
    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        buf.pop();
    }
    Ok(Some(buf))
}

/// A session: the dialogue in the clear, then, after STARTTLS (when offered), again over TLS.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(
    socket: S,
    store: &Store,
    max: usize,
    tls: Option<TlsAcceptor>,
) -> std::io::Result<()> {
    let greeting = b"220 vigil replies ESMTP\r\n";
    if let Some(plain) = dialogue(socket, store, max, tls.is_some(), greeting).await? {
        let Some(acceptor) = tls else {
            return Ok(());
        };
        let secured = tokio::time::timeout(READ_TIMEOUT, acceptor.accept(plain))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake"))??;
        // RFC 3207: the client starts over (EHLO) and is not offered STARTTLS again.
        dialogue(secured, store, max, false, b"").await?;
    }
    Ok(())
}

/// The SMTP dialogue on `socket`; the socket back when the client asked for STARTTLS (and
/// `offer_tls`), after the `220` that lets it start the handshake.
async fn dialogue<S: AsyncRead + AsyncWrite + Unpin>(
    socket: S,
    store: &Store,
    max: usize,
    offer_tls: bool,
    greeting: &[u8],
) -> std::io::Result<Option<S>> {
    let (read, mut w) = tokio::io::split(socket);
    let mut r = BufReader::new(read);
    if !greeting.is_empty() {
        w.write_all(greeting).await?;
    }
    let mut from: Option<String> = None;
    let mut messages = 0;
    while let Some(l) = line(&mut r, MAX_LINE).await? {
        let text = String::from_utf8_lossy(&l);
        let verb = text
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let answer: &[u8] = match verb.as_str() {
            "EHLO" if offer_tls => b"250-vigil\r\n250-SIZE\r\n250 STARTTLS\r\n",
            "EHLO" => b"250-vigil\r\n250 SIZE\r\n",
            "STARTTLS" if offer_tls => {
                w.write_all(b"220 go ahead\r\n").await?;
                // Anything the client sent after the command is dropped with the buffer, as
                // RFC 3207 asks.
                return Ok(Some(r.into_inner().unsplit(w)));
            }
            "HELO" | "NOOP" => b"250 ok\r\n",
            "RSET" => {
                from = None;
                b"250 ok\r\n"
            }
            "QUIT" => {
                w.write_all(b"221 bye\r\n").await?;
                return Ok(None);
            }
            "MAIL" => {
                from = address(&text);
                b"250 ok\r\n"
            }
            "RCPT" if from.is_some() => b"250 ok\r\n",
            "DATA" if from.is_some() => {
                messages += 1;
                if messages > MAX_MESSAGES {
                    w.write_all(b"421 too many messages\r\n").await?;
                    return Ok(None);
                }
                w.write_all(b"354 end with .\r\n").await?;
                let (msg, too_big) = data(&mut r, max).await?;
                let envelope = from.take().unwrap_or_default();
                let answer = if too_big {
                    "552 message too large\r\n".to_owned()
                } else {
                    match take(store, &envelope, &msg).await {
                        Ok(what) => format!("250 {what}\r\n"),
                        Err(why) => format!("550 {why}\r\n"),
                    }
                };
                w.write_all(answer.as_bytes()).await?;
                continue;
            }
            "RCPT" | "DATA" => b"503 MAIL first\r\n",
            _ => b"502 not implemented\r\n",
        };
        w.write_all(answer).await?;
    }
    Ok(None)
}

/// The message after DATA, dot-unstuffed; whether it was larger than `max` (then dropped).
async fn data<R: AsyncRead + Unpin>(
    r: &mut BufReader<R>,
    max: usize,
) -> std::io::Result<(String, bool)> {
    let mut msg = String::new();
    let mut too_big = false;
    loop {
        let Some(l) = line(r, MAX_LINE.max(4096)).await? else {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        };
        if l == b"." {
            return Ok((msg, too_big));
        }
        let l = l.strip_prefix(b".").unwrap_or(&l);
        if msg.len() + l.len() + 1 > max {
            too_big = true;
            msg.clear();
            continue;
        }
        if !too_big {
            msg.push_str(&String::from_utf8_lossy(l));
            msg.push('\n');
        }
    }
}

/// `user@host` in `MAIL FROM:<user@host>` or a header value `Name <user@host>`.
fn address(text: &str) -> Option<String> {
    let inner = match (text.find('<'), text.rfind('>')) {
        (Some(a), Some(b)) if b > a => &text[a + 1..b],
        _ => text.rsplit(':').next().unwrap_or(text),
    };
    let a = inner.trim().to_ascii_lowercase();
    (a.contains('@') && a.len() <= 320).then_some(a)
}

/// A parsed reply: (header name in lowercase, value) and the body.
fn parse(msg: &str) -> (Vec<(String, String)>, String) {
    let (head, body) = msg.split_once("\n\n").unwrap_or((msg, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for l in head.lines() {
        if l.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(l.trim());
            }
        } else if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    let body = text_of(&headers, body);
    (headers, body)
}

/// The text of a body with `headers`: decoded when quoted-printable or base64; for a multipart
/// message (as mail programs send replies), its first `text/plain` part.
fn text_of(headers: &[(String, String)], body: &str) -> String {
    let get = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let kind = get("content-type").to_ascii_lowercase();
    if kind.starts_with("multipart/") {
        let boundary = get("content-type")
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
            .map(|(_, v)| v.trim().trim_matches('"').to_owned())
            .unwrap_or_default();
        if boundary.is_empty() {
            return String::new();
        }
        for part in body.split(&format!("--{boundary}")).skip(1) {
            let (head, text) = part
                .trim_start_matches('\n')
                .split_once("\n\n")
                .unwrap_or(("", ""));
            let (part_headers, _) = parse(&format!("{head}\n\n"));
            let t = part_headers
                .iter()
                .find(|(k, _)| k == "content-type")
                .map(|(_, v)| v.to_ascii_lowercase())
                .unwrap_or_else(|| "text/plain".into());
            if t.starts_with("text/plain") {
                return text_of(&part_headers, text);
            }
        }
        return String::new();
    }
    let encoding = get("content-transfer-encoding");
    if encoding.eq_ignore_ascii_case("quoted-printable") {
        unquote(body)
    } else if encoding.eq_ignore_ascii_case("base64") {
        use base64::Engine;
        let compact: String = body.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        match base64::engine::general_purpose::STANDARD.decode(compact.as_bytes()) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            // Not base64 after all: the text as it came, rather than nothing.
            Err(_) => body.to_owned(),
        }
    } else {
        body.to_owned()
    }
}

/// Quoted-printable decoded (soft line breaks, `=XX`).
fn unquote(text: &str) -> String {
    let joined = text.replace("=\n", "");
    let b = joined.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'='
            && i + 2 < b.len() + 1
            && let Some(h) = joined.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(h, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The reply's own words: the body up to the quoted announcement.
fn own_words(body: &str) -> String {
    let mut out = Vec::new();
    for l in body.lines() {
        let t = l.trim();
        // The quote, or the line that introduces it, in the languages customers write:
        // "On ... wrote:", "Le ... a écrit :", "Op ... schreef ...:", "Am ... schrieb ...:".
        let attribution = t.ends_with(':')
            && [" wrote:", " a écrit", " schreef", " schrieb"]
                .iter()
                .any(|w| t.contains(w));
        if t.starts_with('>') || t.starts_with("-----Original Message") || attribution {
            break;
        }
        out.push(l);
    }
    let text = out.join("\n").trim().to_owned();
    text.chars().take(super::reply::MAX_REPLY).collect()
}

/// `(incident, delivery)` of the first `vigil-<incident>-<delivery>@` message id in `refs`.
fn answered(refs: &str) -> Option<(i64, i64)> {
    refs.split(['<', '>', ' ', ','])
        .filter_map(|id| id.strip_prefix("vigil-"))
        .find_map(|rest| {
            let (ids, _) = rest.split_once('@')?;
            let (a, b) = ids.split_once('-')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
}

/// Takes one reply from `envelope`; what was done, or why it is refused.
async fn take(store: &Store, envelope: &str, msg: &str) -> Result<&'static str, String> {
    let (headers, body) = parse(msg);
    let get = |name: &str| {
        headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let refs = format!("{} {}", get("in-reply-to"), get("references"));
    let (incident, delivery) =
        answered(&refs).ok_or("not a reply to a Vigil announcement".to_owned())?;
    let from = address(&get("from")).unwrap_or_else(|| envelope.to_owned());
    let told: Option<String> = sqlx::query_scalar(
        "SELECT target FROM outbox WHERE id = $1 AND incident_id = $2 AND channel = 'email'",
    )
    .bind(delivery)
    .bind(incident)
    .fetch_optional(store.pool())
    .await
    .map_err(|e| format!("cannot look it up now: {e}"))?;
    let Some(told) = told.filter(|t| t.eq_ignore_ascii_case(&from)) else {
        return Err("that announcement did not go to this address".into());
    };
    let words = own_words(&body);
    let first = words.lines().next().unwrap_or("").trim();
    let what =
        if first.eq_ignore_ascii_case("ack") || first.to_ascii_lowercase().starts_with("ack ") {
            super::reply::Respond::Acknowledge
        } else if words.is_empty() {
            return Err("the reply says nothing".into());
        } else {
            super::reply::Respond::Reply(words)
        };
    let done = super::reply::answer(store, incident, &format!("email:{told}"), &what, "email")
        .await
        .map_err(|e| format!("cannot record it now: {e}"))?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_name_their_announcement_and_keep_their_own_words() {
        assert_eq!(answered("<vigil-42-7@example.org>"), Some((42, 7)));
        assert_eq!(answered(" <x@y> <vigil-3-11@example.org>"), Some((3, 11)));
        assert_eq!(answered("<vigil-x-1@e>"), None);
        assert_eq!(
            address("MAIL FROM:<Noc@ULB.example> SIZE=10"),
            Some("noc@ulb.example".into())
        );
        assert_eq!(
            address("NOC ULB <noc@ulb.example>"),
            Some("noc@ulb.example".into())
        );
        assert_eq!(address("MAIL FROM:<>"), None);
        let body = "On our way.\nBack in 10.\n\nOn Mon, Vigil wrote:\n> Vigil. Incident 4.\n";
        assert_eq!(own_words(body), "On our way.\nBack in 10.");
        assert_eq!(unquote("caf=C3=A9 =\nau lait"), "café au lait");
        let multipart = "From: a@b\nContent-Type: multipart/alternative; boundary=\"XX\"\n\n\
            --XX\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n\
            ACK =C3=A0 vous\n\n> quoted\n--XX\nContent-Type: text/html\n\n<p>ACK</p>\n--XX--\n";
        let (_, body) = parse(multipart);
        assert_eq!(own_words(&body), "ACK à vous");
        // Base64 (here made by Python's base64 module), as many mail programs send replies.
        let b64 = "From: a@b\nContent-Type: multipart/alternative; boundary=YY\n\n\
            --YY\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n\
            UmXDp3UsIG9uIGFycml2ZS4KCkxlIGx1bmRpLCBWaWdpbCBhIMOpY3JpdCA6Cj4gVmlnaWwuIElu\n\
            Y2lkZW50IDQuCg==\n--YY--\n";
        let (_, body) = parse(b64);
        assert_eq!(own_words(&body), "Reçu, on arrive.");
        assert_eq!(
            own_words("Komen eraan.\nOp ma 2 dec. 2026 om 10:00 schreef Vigil <v@x>:\n> Vigil."),
            "Komen eraan."
        );
        assert_eq!(
            own_words("Unterwegs.\nAm Mo., 2. Dez. 2026 um 10:00 schrieb Vigil <v@x>:\n> V."),
            "Unterwegs."
        );
        let (_, body) = parse("Content-Transfer-Encoding: base64\n\nnot base64 at all!\n");
        assert_eq!(body.trim(), "not base64 at all!");
    }
}
