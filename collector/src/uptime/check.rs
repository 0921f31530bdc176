//! Uptime checks: what the agents probe (HTTP, TCP, TLS, DNS, ICMP, CAP), from which of them, how often, and how
//! many must agree. Defined in the configuration (`[[checks]]`, read-only through the API) or
//! through the API (`/api/v1/checks`); agents fetch theirs as [`CheckSpec`]s.
//!
//! # Invariants
//! - A check is checked before it is kept: a bad one is refused with the field named, so
//!   every agent gets only specs it can run.
//! - One source of truth per check: a configured id cannot be created, changed or deleted
//!   through the API.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row};
use vigil_schema::check::{CheckSpec, CheckType, DnsRecord, DnsSpec, HttpSpec, TlsSpec};
use vigil_schema::config::parse_duration;

use crate::incidents::SEVERITIES;
use crate::reference::directory::{RefError, Source};
use crate::reference::{Bad, Customers, is_id};

/// A check as written in the configuration or sent to the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// Letters, digits, `.`, `_`, `-`; by default the name, lowercased, other characters `-`.
    #[serde(default)]
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// An `http://` or `https://` URL, or `host:port` for `tcp` and `tls`.
    pub target: String,
    #[serde(default = "ten_seconds")]
    pub interval: String,
    #[serde(default = "five_seconds")]
    pub timeout: String,
    #[serde(default)]
    pub retries: u32,
    /// How many vantage points must agree for `down` (and `up`).
    #[serde(default = "one")]
    pub quorum: u32,
    /// The agents that run it; empty: all.
    #[serde(default)]
    pub agents: Vec<String>,
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default)]
    pub asset: Option<String>,
    /// The check this one is behind (a site behind its point of presence): while that one
    /// is down, this one is `unknown` and opens no incident of its own.
    #[serde(default)]
    pub depends_on: Option<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Its outages are a probable danger (announced by phone first).
    #[serde(default)]
    pub danger: bool,
    #[serde(default = "high")]
    pub severity: String,
    /// Shown on the public status page.
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub method: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
    /// Statuses that are up; none: any 2xx or 3xx.
    #[serde(default)]
    pub status: Vec<u16>,
    #[serde(default)]
    pub contains: Option<String>,
    #[serde(default)]
    pub not_contains: Option<String>,
    #[serde(default)]
    pub regex: Option<String>,
    /// Slower than this is `degraded`.
    #[serde(default)]
    pub degraded_after: Option<String>,
    #[serde(default)]
    pub follow_redirects: bool,
    /// TLS: a certificate that expires within this many days is `degraded` (default 14).
    #[serde(default)]
    pub warn_days: Option<u32>,
    /// TLS: the name the certificate must hold (default: the target's host).
    #[serde(default)]
    pub server_name: Option<String>,
    /// TLS: a PEM file of CA certificates on the agents, trusted instead of the public roots.
    #[serde(default)]
    pub ca_file: Option<String>,
    /// DNS: `A` (default) or `AAAA`.
    #[serde(default)]
    pub record: Option<String>,
    /// DNS: the server asked, `ip` or `ip:port`; none: each agent's system resolver.
    #[serde(default)]
    pub server: Option<String>,
    /// DNS: the addresses the name may resolve to; any other is down.
    #[serde(default)]
    pub expect: Vec<String>,
    /// CAP: the collector also reads the feed's alerts into events (`event.kind: cap`).
    #[serde(default)]
    pub watch: bool,
}

fn ten_seconds() -> String {
    "10s".into()
}
fn five_seconds() -> String {
    "5s".into()
}
fn one() -> u32 {
    1
}
fn high() -> String {
    "high".into()
}

fn bad(field: &str, message: impl Into<String>) -> RefError {
    RefError::Invalid(Bad {
        field: field.into(),
        message: message.into(),
    })
}

fn duration(field: &str, s: &str, min: Duration, max: Duration) -> Result<Duration, RefError> {
    let d = parse_duration(s).map_err(|m| bad(field, m))?;
    if d < min || d > max {
        return Err(bad(
            field,
            format!("{s:?} is out of range ({min:?} to {max:?})"),
        ));
    }
    Ok(d)
}

impl Check {
    /// Fills the default id and checks every field against `agents` (the configured ids)
    /// and `customers`; the error names the field.
    pub fn checked(mut self, agents: &[String], customers: &Customers) -> Result<Check, RefError> {
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return Err(bad("name", "1 to 200 characters"));
        }
        if self.id.is_empty() {
            self.id = self
                .name
                .to_lowercase()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect::<String>()
                .trim_matches('-')
                .to_owned();
        }
        if !is_id(&self.id) {
            return Err(bad(
                "id",
                "1 to 64 letters, digits, `.`, `_` or `-`, starting with a letter or digit",
            ));
        }
        let kind = match self.kind.as_str() {
            "http" | "https" => CheckType::Http,
            "tcp" => CheckType::Tcp,
            "tls" => CheckType::Tls,
            "dns" => CheckType::Dns,
            "icmp" => CheckType::Icmp,
            "cap" => CheckType::Cap,
            other => {
                return Err(bad(
                    "type",
                    format!(
                        "{other:?} is not a check type this build runs (http, tcp, tls, dns, icmp, cap)"
                    ),
                ));
            }
        };
        self.kind = kind.as_str().into();
        if self.watch && kind != CheckType::Cap {
            return Err(bad("watch", "only a cap check watches a feed's alerts"));
        }
        if kind != CheckType::Dns {
            let field = [
                ("record", self.record.is_some()),
                ("server", self.server.is_some()),
                ("expect", !self.expect.is_empty()),
            ]
            .into_iter()
            .find(|(_, set)| *set);
            if let Some((field, _)) = field {
                return Err(bad(field, "only for a dns check"));
            }
        }
        match kind {
            CheckType::Dns => {
                if !is_host_name(&self.target) {
                    return Err(bad("target", "the DNS name to resolve"));
                }
                if let Some(r) = &self.record
                    && !matches!(r.as_str(), "A" | "AAAA")
                {
                    return Err(bad("record", format!("{r:?} is not A or AAAA")));
                }
                if let Some(s) = &self.server
                    && s.parse::<std::net::SocketAddr>().is_err()
                    && s.parse::<std::net::IpAddr>().is_err()
                {
                    return Err(bad("server", format!("{s:?} is not ip or ip:port")));
                }
                if let Some(e) = self
                    .expect
                    .iter()
                    .find(|e| e.parse::<std::net::IpAddr>().is_err())
                {
                    return Err(bad("expect", format!("{e:?} is not an IP address")));
                }
            }
            CheckType::Icmp => {
                let host = self.target.trim_start_matches('[').trim_end_matches(']');
                if host.parse::<std::net::IpAddr>().is_err() && !is_host_name(host) {
                    return Err(bad("target", "a host name or an IP address (no port)"));
                }
            }
            CheckType::Http | CheckType::Cap => {
                let url = reqwest::Url::parse(&self.target)
                    .map_err(|e| bad("target", format!("{:?} is not a URL: {e}", self.target)))?;
                if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                    return Err(bad("target", "an http:// or https:// URL with a host"));
                }
            }
            _ => {
                let ok = self
                    .target
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
                if !ok {
                    return Err(bad(
                        "target",
                        format!("host:port for a {} check", kind.as_str()),
                    ));
                }
            }
        }
        let interval = duration(
            "interval",
            &self.interval,
            Duration::from_secs(1),
            Duration::from_secs(86_400),
        )?;
        duration(
            "timeout",
            &self.timeout,
            Duration::from_millis(100),
            interval,
        )?;
        if let Some(d) = &self.degraded_after {
            duration("degraded_after", d, Duration::from_millis(1), interval)?;
        }
        if self.retries > 5 {
            return Err(bad("retries", "at most 5"));
        }
        if self.quorum == 0 {
            return Err(bad("quorum", "at least 1"));
        }
        if !self.agents.is_empty() && self.quorum as usize > self.agents.len() {
            return Err(bad("quorum", "more than the agents that run it"));
        }
        if let Some(a) = self.agents.iter().find(|a| !agents.contains(a)) {
            return Err(bad(
                "agents",
                format!("no agent {a:?} in [[ingest.agents]]"),
            ));
        }
        if let Some(c) = &self.customer
            && customers.get(c).is_none()
        {
            return Err(bad("customer", format!("no customer {c:?}")));
        }
        if !SEVERITIES.contains(&self.severity.as_str()) {
            return Err(bad("severity", format!("one of {}", SEVERITIES.join(", "))));
        }
        if let Some(s) = self.status.iter().find(|s| !(100..=599).contains(*s)) {
            return Err(bad("status", format!("{s} is not an HTTP status")));
        }
        if let Some(r) = &self.regex {
            regex::Regex::new(r).map_err(|e| bad("regex", e.to_string()))?;
        }
        if let Some(m) = &self.method
            && reqwest::Method::from_bytes(m.as_bytes()).is_err()
        {
            return Err(bad("method", format!("{m:?} is not an HTTP method")));
        }
        for (k, v) in &self.headers {
            if reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err()
                || reqwest::header::HeaderValue::from_str(v).is_err()
            {
                return Err(bad(
                    "headers",
                    format!("{k:?} is not a header an agent can send"),
                ));
            }
        }
        Ok(self)
    }

    pub fn kind(&self) -> CheckType {
        match self.kind.as_str() {
            "tcp" => CheckType::Tcp,
            "tls" => CheckType::Tls,
            "dns" => CheckType::Dns,
            "icmp" => CheckType::Icmp,
            "cap" => CheckType::Cap,
            _ => CheckType::Http,
        }
    }

    pub fn interval(&self) -> Duration {
        parse_duration(&self.interval).unwrap_or(Duration::from_secs(10))
    }

    /// Whether `agent` runs this check.
    pub fn runs_on(&self, agent: &str) -> bool {
        self.agents.is_empty() || self.agents.iter().any(|a| a == agent)
    }

    /// What an agent runs.
    pub fn spec(&self) -> CheckSpec {
        let ms = |s: &str| {
            parse_duration(s)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(5000)
        };
        CheckSpec {
            id: self.id.clone(),
            kind: self.kind(),
            target: self.target.clone(),
            interval_ms: ms(&self.interval),
            timeout_ms: ms(&self.timeout),
            retries: self.retries,
            http: HttpSpec {
                method: self.method.clone(),
                headers: self.headers.clone(),
                body: self.body.clone(),
                status: self.status.clone(),
                contains: self.contains.clone(),
                not_contains: self.not_contains.clone(),
                regex: self.regex.clone(),
                degraded_after_ms: self.degraded_after.as_deref().map(ms),
                follow_redirects: self.follow_redirects,
            },
            tls: TlsSpec {
                warn_days: self.warn_days.unwrap_or(14),
                server_name: self.server_name.clone(),
                ca_file: self.ca_file.clone(),
            },
            dns: DnsSpec {
                record: if self.record.as_deref() == Some("AAAA") {
                    DnsRecord::Aaaa
                } else {
                    DnsRecord::A
                },
                server: self.server.clone(),
                expect: self.expect.clone(),
            },
            customer: self.customer.clone(),
        }
    }
}

/// A DNS name: dot-separated labels of letters, digits and `-` (and `_`, as service names
/// use), at most 253 characters.
fn is_host_name(s: &str) -> bool {
    let s = s.strip_suffix('.').unwrap_or(s);
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// The checks in force: the configuration's and the database's.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    pub list: Vec<(Check, Source)>,
}

impl Checks {
    pub fn get(&self, id: &str) -> Option<&(Check, Source)> {
        self.list.iter().find(|(c, _)| c.id == id)
    }
}

/// The configuration's checks, checked (an error names the check and the field).
pub fn configured(
    list: &[Check],
    agents: &[String],
    customers: &Customers,
) -> Result<Vec<Check>, (&'static str, String)> {
    let mut out: Vec<Check> = Vec::with_capacity(list.len());
    for (i, c) in list.iter().enumerate() {
        let c = c
            .clone()
            .checked(agents, customers)
            .map_err(|e| ("checks", format!("checks[{i}]: {e}")))?;
        if out.iter().any(|o| o.id == c.id) {
            return Err((
                "checks",
                format!("checks[{i}]: two checks have the id {:?}", c.id),
            ));
        }
        out.push(c);
    }
    for (i, c) in out.iter().enumerate() {
        parent_ok(c, &out).map_err(|m| ("checks", format!("checks[{i}]: depends_on: {m}")))?;
    }
    Ok(out)
}

/// `c`'s parent exists among `all` and its chain of parents does not come back to it.
fn parent_ok(c: &Check, all: &[Check]) -> Result<(), String> {
    let mut at = c.depends_on.clone();
    for _ in 0..=all.len() {
        let Some(id) = at else { return Ok(()) };
        if id == c.id {
            return Err("its parents come back to it".into());
        }
        at = all
            .iter()
            .find(|o| o.id == id)
            .ok_or_else(|| format!("no check {id:?}"))?
            .depends_on
            .clone();
    }
    Err("its parents come back to it".into())
}

/// Reads the API's checks and merges them after the configuration's.
pub async fn load(pool: &AnyPool, configured: &[Check]) -> Result<Checks, sqlx::Error> {
    let mut list: Vec<(Check, Source)> = configured
        .iter()
        .map(|c| (c.clone(), Source::Config))
        .collect();
    let rows = sqlx::query("SELECT id, spec FROM checks ORDER BY id")
        .fetch_all(pool)
        .await?;
    for r in rows {
        let id: String = r.try_get("id")?;
        let spec: String = r.try_get("spec")?;
        match serde_json::from_str::<Check>(&spec) {
            Ok(c) if list.iter().all(|(o, _)| o.id != c.id) => list.push((c, Source::Api)),
            Ok(_) => {
                tracing::warn!(check = %id, "a check of the database has a configured check's id; the configuration's wins")
            }
            Err(e) => {
                tracing::error!(check = %id, error = %e, "a check of the database cannot be read; it is not run")
            }
        }
    }
    Ok(Checks { list })
}

/// Creates (`replace` none) or replaces the API's check; refuses configured ids.
pub async fn put(
    pool: &AnyPool,
    current: &Checks,
    c: &Check,
    replace: Option<&str>,
    actor: &str,
    now: i64,
) -> Result<(), RefError> {
    if let Some(id) = replace
        && id != c.id
    {
        return Err(bad("id", format!("the body's id {:?} is not {id:?}", c.id)));
    }
    match (current.get(&c.id), replace) {
        (Some((_, Source::Config)), _) => {
            return Err(RefError::Conflict(format!(
                "check {:?} is defined in the configuration; change it there",
                c.id
            )));
        }
        (Some(_), None) => {
            return Err(RefError::Conflict(format!("check {:?} exists", c.id)));
        }
        (None, Some(id)) => return Err(RefError::NotFound(format!("no check {id:?}"))),
        _ => {}
    }
    let mut all: Vec<Check> = current
        .list
        .iter()
        .filter(|(o, _)| o.id != c.id)
        .map(|(o, _)| o.clone())
        .collect();
    all.push(c.clone());
    parent_ok(c, &all).map_err(|m| bad("depends_on", m))?;
    let spec = serde_json::to_string(c).map_err(|e| bad("check", e.to_string()))?;
    sqlx::query(
        "INSERT INTO checks (id, spec, created_by, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $4)
         ON CONFLICT (id) DO UPDATE SET spec = excluded.spec, updated_at = excluded.updated_at",
    )
    .bind(&c.id)
    .bind(spec)
    .bind(actor)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes the API's check `id`.
pub async fn delete(pool: &AnyPool, current: &Checks, id: &str) -> Result<(), RefError> {
    match current.get(id) {
        Some((_, Source::Config)) => Err(RefError::Conflict(format!(
            "check {id:?} is defined in the configuration; remove it there"
        ))),
        None => Err(RefError::NotFound(format!("no check {id:?}"))),
        Some(_)
            if current
                .list
                .iter()
                .any(|(c, _)| c.depends_on.as_deref() == Some(id)) =>
        {
            Err(RefError::Conflict(format!(
                "checks depend on {id:?}; change or delete them first"
            )))
        }
        Some(_) => {
            sqlx::query("DELETE FROM checks WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?;
            Ok(())
        }
    }
}
