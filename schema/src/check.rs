//! Uptime checks as the collector hands them to agents (`GET /api/v1/agents/checks`): what
//! to probe, how often, and what counts as up. Agents send each result back as an event of
//! kind `probe` ([`crate::fields`]: `monitor.id`, `monitor.type`, `monitor.status`, ...).
//!
//! # Invariants
//! - A spec is complete: an agent needs nothing else to run it, so an agent cut off from the
//!   collector keeps probing with the last specs it was given.
//! - Unknown fields are ignored when read, so a newer collector's specs reach an older agent;
//!   a check of a type the agent does not know is reported as such, not dropped silently.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What a check does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckType {
    /// An HTTP or HTTPS request; up when the answer is as expected.
    Http,
    /// A TCP connection to `host:port`; up when it is accepted.
    Tcp,
    /// A TLS handshake with `host:port`: the chain valid and the name matching, else down;
    /// a certificate that expires within `warn_days`, degraded.
    Tls,
    /// A DNS lookup of the target name (A or AAAA), from the system's resolver or a chosen
    /// server; with expected addresses, an answer outside them is down.
    Dns,
    /// An ICMP echo to the target host; where the agent may not send ICMP, down saying so.
    Icmp,
    /// A CAP 1.2 alert, or an Atom feed of them, fetched over HTTP: down unless it parses and
    /// every alert in it is valid.
    Cap,
    /// A type this build does not know (a newer collector's).
    #[serde(other)]
    Unknown,
}

impl CheckType {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckType::Http => "http",
            CheckType::Tcp => "tcp",
            CheckType::Tls => "tls",
            CheckType::Dns => "dns",
            CheckType::Icmp => "icmp",
            CheckType::Cap => "cap",
            CheckType::Unknown => "unknown",
        }
    }
}

/// What an HTTP check expects (every condition must hold).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpSpec {
    /// `GET` unless given.
    pub method: Option<String>,
    pub headers: BTreeMap<String, String>,
    pub body: Option<String>,
    /// Statuses that are up; empty: any 2xx or 3xx.
    pub status: Vec<u16>,
    /// The body contains this text.
    pub contains: Option<String>,
    /// The body does not contain this text.
    pub not_contains: Option<String>,
    /// The body matches this regular expression.
    pub regex: Option<String>,
    /// Slower than this (ms) is `degraded`, not `up`.
    pub degraded_after_ms: Option<u64>,
    /// Follow redirects (up to 10); off: a 3xx is the answer.
    pub follow_redirects: bool,
}

/// What a TLS check expects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TlsSpec {
    /// A certificate that expires within this many days is `degraded`.
    pub warn_days: u32,
    /// The name the certificate must hold; by default the target's host.
    pub server_name: Option<String>,
    /// A PEM file of CA certificates (on the agent) trusted instead of the public roots.
    pub ca_file: Option<String>,
}

impl Default for TlsSpec {
    fn default() -> Self {
        TlsSpec {
            warn_days: 14,
            server_name: None,
            ca_file: None,
        }
    }
}

/// The record a DNS check asks for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum DnsRecord {
    #[default]
    A,
    #[serde(rename = "AAAA")]
    Aaaa,
}

/// What a DNS check asks and expects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DnsSpec {
    pub record: DnsRecord,
    /// `ip` or `ip:port` of the server asked; none: the agent's system resolver.
    pub server: Option<String>,
    /// Addresses the answer may hold; when given, an address outside them is down.
    pub expect: Vec<String>,
}

/// One check, as an agent runs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckSpec {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: CheckType,
    /// An `http://` or `https://` URL, or `host:port` for TCP.
    pub target: String,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    /// Attempts after a failed one within the same round, before it counts as down.
    #[serde(default)]
    pub retries: u32,
    #[serde(default)]
    pub http: HttpSpec,
    #[serde(default)]
    pub tls: TlsSpec,
    #[serde(default)]
    pub dns: DnsSpec,
    #[serde(default)]
    pub customer: Option<String>,
}

/// The answer of `GET /api/v1/agents/checks`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckList {
    pub checks: Vec<CheckSpec>,
}

/// A probe's outcome, as `monitor.status` carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeStatus {
    Up,
    Degraded,
    Down,
}

impl ProbeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeStatus::Up => "up",
            ProbeStatus::Degraded => "degraded",
            ProbeStatus::Down => "down",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_collector_s_spec_still_reads() {
        let s: CheckSpec = serde_json::from_str(
            r#"{"id": "a", "type": "quic", "target": "x", "interval_ms": 1000,
                "timeout_ms": 500, "added_later": 1}"#,
        )
        .expect("reads");
        assert_eq!(s.kind, CheckType::Unknown);
        assert_eq!(s.http, HttpSpec::default());
    }
}
