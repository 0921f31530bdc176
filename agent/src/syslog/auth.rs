//! Authentication messages of `sshd`, `sudo` and PAM, read into ECS fields (`source.ip`,
//! `user.name`, `event.category = authentication`, `event.action`, `event.outcome`), so that
//! a hunt can pivot on the address and a Sigma correlation can group by it.
//!
//! Invariants: only fields are added, the message stays as it was; text that does not
//! have one of the shapes below adds nothing. One login attempt is logged by sshd *and*
//! by PAM; they get different `event.action`s (`ssh_login`, `pam_authentication`) so a
//! count of one of them counts each attempt once.

use std::net::IpAddr;

use vigil_schema::{Fields, fields};

/// Writes the authentication fields `message` carries, if `process` is one that logs them;
/// true when it wrote `source.ip`.
pub fn enrich(process: &str, message: &str, out: &mut impl Fields) -> bool {
    let found = if let Some(rest) = message.strip_prefix("pam_unix(") {
        pam(rest)
    } else if process.starts_with("sshd") {
        if process.contains("(pam_unix)") {
            pam_body(message)
        } else {
            sshd(message)
        }
    } else if process == "sudo" {
        sudo(message)
    } else {
        None
    };
    let Some(a) = found else { return false };
    out.str(fields::EVENT_CATEGORY, "authentication");
    out.str(fields::EVENT_ACTION, a.action);
    if let Some(o) = a.outcome {
        out.str(fields::EVENT_OUTCOME, o);
    }
    if let Some(u) = a.user.filter(|u| !u.is_empty()) {
        out.str(fields::USER_NAME, u);
    }
    let source_ip = match a.peer {
        Some(Peer::Ip(ip)) => {
            out.ip(fields::SOURCE_IP, ip);
            true
        }
        Some(Peer::Name(n)) => {
            out.str(fields::SOURCE_DOMAIN, n);
            false
        }
        None => false,
    };
    if let Some(p) = a.port {
        out.u64(fields::SOURCE_PORT, p.into());
    }
    source_ip
}

#[derive(Debug, PartialEq)]
enum Peer<'a> {
    Ip(IpAddr),
    Name(&'a str),
}

#[derive(Debug, PartialEq)]
struct Auth<'a> {
    action: &'static str,
    outcome: Option<&'static str>,
    user: Option<&'a str>,
    peer: Option<Peer<'a>>,
    port: Option<u16>,
}

fn peer(s: &str) -> Option<Peer<'_>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    Some(match s.parse() {
        Ok(ip) => Peer::Ip(ip),
        Err(_) => Peer::Name(s),
    })
}

/// `Failed password for [invalid user ]U from IP port N ssh2`, `Accepted publickey for U
/// from IP port N ssh2`, `Invalid user U from IP [port N]`.
fn sshd(m: &str) -> Option<Auth<'_>> {
    let (outcome, rest) = if let Some(r) = m.strip_prefix("Failed ") {
        ("failure", r)
    } else if let Some(r) = m.strip_prefix("Accepted ") {
        ("success", r)
    } else if let Some(r) = m.strip_prefix("Invalid user ") {
        let (user, tail) = r.rsplit_once(" from ")?;
        let addr = tail.split(' ').next()?;
        return Some(Auth {
            action: "ssh_invalid_user",
            outcome: None,
            user: Some(user),
            peer: peer(addr),
            port: port_after(tail),
        });
    } else {
        return None;
    };
    // `<method> for [invalid user ]USER from ADDR port N ...`; a user name may hold spaces,
    // so the address is found from the right.
    let (_method, rest) = rest.split_once(" for ")?;
    let rest = rest.strip_prefix("invalid user ").unwrap_or(rest);
    let (user, tail) = rest.rsplit_once(" from ")?;
    let addr = tail.split(' ').next()?;
    Some(Auth {
        action: "ssh_login",
        outcome: Some(outcome),
        user: Some(user),
        peer: peer(addr),
        port: port_after(tail),
    })
}

fn port_after(s: &str) -> Option<u16> {
    let (_, p) = s.split_once(" port ")?;
    p.split(' ').next()?.parse().ok()
}

/// `pam_unix(SERVICE:auth): authentication failure; logname= ... rhost=ADDR  user=U`.
fn pam(rest: &str) -> Option<Auth<'_>> {
    let (_service, body) = rest.split_once("): ")?;
    pam_body(body)
}

fn pam_body(body: &str) -> Option<Auth<'_>> {
    let kv = body.strip_prefix("authentication failure; ")?;
    let mut user = None;
    let mut rhost = None;
    for part in kv.split_whitespace() {
        if let Some(v) = part.strip_prefix("user=") {
            user = Some(v);
        } else if let Some(v) = part.strip_prefix("rhost=") {
            rhost = peer(v);
        }
    }
    Some(Auth {
        action: "pam_authentication",
        outcome: Some("failure"),
        user,
        peer: rhost,
        port: None,
    })
}

/// `alice : 3 incorrect password attempts ; TTY=pts/0 ; ... ; COMMAND=/bin/ls`, `alice : user
/// NOT in sudoers ; ...`, and the successful `alice : TTY=pts/0 ; ... ; COMMAND=...`.
fn sudo(m: &str) -> Option<Auth<'_>> {
    let (user, rest) = m.split_once(" : ")?;
    let user = user.trim();
    if user.is_empty() || user.contains(' ') || !rest.contains("COMMAND=") {
        return None;
    }
    let failed = rest.contains("incorrect password attempt")
        || rest.contains("NOT in sudoers")
        || rest.starts_with("a password is required");
    Some(Auth {
        action: "sudo",
        outcome: Some(if failed { "failure" } else { "success" }),
        user: Some(user),
        peer: None,
        port: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    use vigil_schema::Event;

    fn enriched(process: &str, message: &str) -> Event {
        let mut ev = Event::default();
        ev.set_str(fields::PROCESS_NAME, process);
        ev.set_str(fields::MESSAGE, message);
        let source_ip = enrich(process, message, &mut ev);
        assert_eq!(source_ip, ev.get(fields::SOURCE_IP).is_some());
        ev
    }

    fn get<'a>(ev: &'a Event, f: &str) -> Option<&'a str> {
        ev.get_str(f)
    }

    #[test]
    fn sshd_failures_successes_and_invalid_users() {
        let ev = enriched(
            "sshd",
            "Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2",
        );
        assert_eq!(get(&ev, "event.action"), Some("ssh_login"));
        assert_eq!(get(&ev, "event.outcome"), Some("failure"));
        assert_eq!(get(&ev, "user.name"), Some("webmaster"));
        assert_eq!(get(&ev, "source.ip"), Some("173.234.31.186"));
        assert_eq!(ev.get_u64("source.port"), Some(38926));

        let ev = enriched(
            "sshd",
            "Accepted publickey for fztu from 2001:db8::7 port 49116 ssh2",
        );
        assert_eq!(get(&ev, "event.outcome"), Some("success"));
        assert_eq!(get(&ev, "user.name"), Some("fztu"));
        assert_eq!(get(&ev, "source.ip"), Some("2001:db8::7"));

        let ev = enriched("sshd", "Invalid user admin from 5.188.10.180");
        assert_eq!(get(&ev, "event.action"), Some("ssh_invalid_user"));
        assert_eq!(get(&ev, "event.outcome"), None);
        assert_eq!(get(&ev, "source.ip"), Some("5.188.10.180"));

        let ev = enriched(
            "sshd",
            "Failed none for invalid user  from 1.2.3.4 port 5 ssh2",
        );
        assert_eq!(get(&ev, "user.name"), None, "an empty user is no user");
        assert_eq!(get(&ev, "source.ip"), Some("1.2.3.4"));
    }

    #[test]
    fn pam_failures_with_an_address_or_a_name() {
        let ev = enriched(
            "sshd",
            "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=112.95.230.3  user=root",
        );
        assert_eq!(get(&ev, "event.action"), Some("pam_authentication"));
        assert_eq!(get(&ev, "event.outcome"), Some("failure"));
        assert_eq!(get(&ev, "user.name"), Some("root"));
        assert_eq!(get(&ev, "source.ip"), Some("112.95.230.3"));

        let ev = enriched(
            "sshd(pam_unix)",
            "authentication failure; logname= uid=0 euid=0 tty=NODEVssh ruser= rhost=220-135-151-1.hinet-ip.hinet.net  user=root",
        );
        assert_eq!(
            get(&ev, "source.domain"),
            Some("220-135-151-1.hinet-ip.hinet.net")
        );
        assert_eq!(get(&ev, "source.ip"), None);
    }

    #[test]
    fn sudo_failures_and_successes() {
        let ev = enriched(
            "sudo",
            "alice : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id",
        );
        assert_eq!(get(&ev, "event.action"), Some("sudo"));
        assert_eq!(get(&ev, "event.outcome"), Some("failure"));
        assert_eq!(get(&ev, "user.name"), Some("alice"));
        let ev = enriched(
            "sudo",
            "bob : TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/bin/true",
        );
        assert_eq!(get(&ev, "event.outcome"), Some("success"));
    }

    #[test]
    fn other_text_adds_nothing() {
        for (p, m) in [
            (
                "sshd",
                "Received disconnect from 1.2.3.4: 11: Bye Bye [preauth]",
            ),
            ("sshd", "Failed password"),
            ("sudo", "pam_open_session: something"),
            ("cron", "Failed password for root from 1.2.3.4 port 1 ssh2"),
        ] {
            let ev = enriched(p, m);
            assert_eq!(ev.len(), 2, "{p}: {m}");
            assert!(!ev.iter().any(|(_, v)| v == &Value::from("authentication")));
        }
    }
}
