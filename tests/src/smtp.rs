//! A real SMTP server for the notification tests: Debian's aiosmtpd with its Mailbox handler,
//! which writes each message it accepts into a maildir; the messages read back with their
//! headers and the time they arrived.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use crate::process::{Proc, free_port, wait_for};

/// The Python that has Debian's `python3-aiosmtpd` (not a pyenv shim's).
pub const PYTHON: &str = "/usr/bin/python3";

/// Why aiosmtpd cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    let ok = Command::new(PYTHON)
        .args(["-c", "import aiosmtpd"])
        .output()
        .is_ok_and(|o| o.status.success());
    (!ok).then(|| format!("{PYTHON} cannot import aiosmtpd (Debian package python3-aiosmtpd)"))
}

pub struct Smtp {
    pub proc: Proc,
    pub port: u16,
    pub maildir: PathBuf,
}

/// One message as the server stored it.
#[derive(Debug, Clone)]
pub struct Mail {
    /// Lowercase names; the first of each.
    pub headers: BTreeMap<String, String>,
    pub body: String,
    pub arrived: SystemTime,
}

impl Mail {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }
}

impl Smtp {
    pub fn start(dir: &Path) -> Smtp {
        Self::start_on(dir, free_port())
    }

    /// A server on `port` (one a test kept free, to start the server late).
    pub fn start_on(dir: &Path, port: u16) -> Smtp {
        let maildir = dir.join("maildir");
        let mut cmd = Command::new(PYTHON);
        cmd.args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir);
        let proc = Proc::spawn("aiosmtpd", cmd, &dir.join("smtp.log"));
        wait_for(
            Duration::from_secs(30),
            "aiosmtpd to listen",
            || proc.log_tail(),
            || TcpStream::connect(("127.0.0.1", port)).ok(),
        );
        Smtp {
            proc,
            port,
            maildir,
        }
    }

    /// How many messages were received so far (without reading them).
    pub fn count(&self) -> usize {
        ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(self.maildir.join(sub)).ok())
            .map(|d| d.count())
            .sum()
    }

    /// Every message received so far, oldest first.
    pub fn mails(&self) -> Vec<Mail> {
        let mut out = Vec::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.maildir.join(sub)) else {
                continue;
            };
            for e in entries.flatten() {
                let Ok(text) = std::fs::read_to_string(e.path()) else {
                    continue;
                };
                let arrived = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                out.push(parse(&text, arrived));
            }
        }
        out.sort_by_key(|m| m.arrived);
        out
    }
}

/// Headers (unfolded) and body of an RFC 5322 message.
fn parse(text: &str, arrived: SystemTime) -> Mail {
    let text = text.replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut headers = BTreeMap::new();
    let mut last: Option<String> = None;
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(k) = &last
                && let Some(v) = headers.get_mut(k)
            {
                let v: &mut String = v;
                v.push(' ');
                v.push_str(line.trim());
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            let k = k.trim().to_ascii_lowercase();
            headers
                .entry(k.clone())
                .or_insert_with(|| v.trim().to_owned());
            last = Some(k);
        }
    }
    Mail {
        headers,
        body: body.to_owned(),
        arrived,
    }
}
