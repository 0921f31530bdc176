//! Runs the uptime checks the collector hands out: fetched from `GET /api/v1/agents/checks`
//! every `checks_refresh`, each run every `interval` (its first run after a random part of
//! the interval, so a thousand checks do not fire at once), each result an event of kind
//! `probe` on the batcher's channel like any source's: spooled, shipped, indexed.
//!
//! # Invariants
//! - An agent cut off from the collector keeps probing with the last checks it was given,
//!   kept on disk beside the spool, so a restart while cut off probes too; the results wait
//!   in the spool.
//! - Every result is an event: a check that cannot run (an unknown type, a bad regular
//!   expression) reports `down` with the reason in `error.message`, never nothing.
//! - A response body is read up to [`BODY_LIMIT`]; a larger one is judged on its start.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use vigil_schema::check::{CheckList, CheckSpec, CheckType, ProbeStatus};
use vigil_schema::{Event, EventKind, fields as f};

use crate::batcher::Item;
use crate::config::CollectorTarget;
use crate::metrics::Metrics;

/// Most of a response body read for its conditions.
pub const BODY_LIMIT: usize = 1 << 20;

/// One probe's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: ProbeStatus,
    pub duration: Duration,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    /// A TLS check's certificate expiry.
    pub not_after: Option<chrono::DateTime<chrono::Utc>>,
    /// A DNS check's answer.
    pub resolved: Vec<std::net::IpAddr>,
}

impl Outcome {
    fn up(duration: Duration) -> Outcome {
        Outcome {
            status: ProbeStatus::Up,
            duration,
            http_status: None,
            error: None,
            not_after: None,
            resolved: Vec::new(),
        }
    }

    fn down(duration: Duration, error: String) -> Outcome {
        Outcome {
            status: ProbeStatus::Down,
            error: Some(error),
            ..Outcome::up(duration)
        }
    }

    /// The result as an event.
    pub fn event(&self, spec: &CheckSpec) -> Event {
        let mut ev = Event::new(EventKind::Probe, chrono::Utc::now());
        ev.set_str(f::MONITOR_ID, spec.id.clone());
        ev.set_str(f::MONITOR_TYPE, spec.kind.as_str());
        ev.set_str(f::MONITOR_STATUS, self.status.as_str());
        ev.set_str(f::URL_FULL, spec.target.clone());
        ev.set_u64(f::EVENT_DURATION, self.duration.as_nanos() as u64);
        if let Some(s) = self.http_status {
            ev.set_u64(f::HTTP_STATUS_CODE, u64::from(s));
        }
        if let Some(e) = &self.error {
            ev.set_str(f::ERROR_MESSAGE, e.clone());
        }
        if let Some(t) = self.not_after {
            ev.set_str(f::TLS_NOT_AFTER, t.to_rfc3339());
        }
        if !self.resolved.is_empty() {
            let ips: Vec<String> = self.resolved.iter().map(|a| a.to_string()).collect();
            ev.set(f::DNS_RESOLVED_IP, serde_json::Value::from(ips));
        }
        if let Some(c) = &spec.customer {
            ev.set_str(f::CUSTOMER, c.clone());
        }
        ev
    }
}

/// The HTTP clients of the checks: one that follows redirects, one that does not.
#[derive(Clone)]
pub struct Prober {
    direct: reqwest::Client,
    follow: reqwest::Client,
}

impl Prober {
    pub fn new() -> anyhow::Result<Prober> {
        let build = |policy| {
            reqwest::Client::builder()
                .redirect(policy)
                .user_agent(concat!("vigil-agent/", env!("CARGO_PKG_VERSION")))
                .build()
        };
        Ok(Prober {
            direct: build(reqwest::redirect::Policy::none())?,
            follow: build(reqwest::redirect::Policy::limited(10))?,
        })
    }

    /// Runs `spec` once, with its retries.
    pub async fn probe(&self, spec: &CheckSpec) -> Outcome {
        let mut out = self.once(spec).await;
        for _ in 0..spec.retries {
            if out.status != ProbeStatus::Down {
                break;
            }
            out = self.once(spec).await;
        }
        out
    }

    async fn once(&self, spec: &CheckSpec) -> Outcome {
        let timeout = Duration::from_millis(spec.timeout_ms.max(1));
        let start = Instant::now();
        let run = async {
            match spec.kind {
                CheckType::Http => self.http(spec, start).await,
                CheckType::Tcp => tcp(spec, start).await,
                CheckType::Tls => tls(spec, start).await,
                CheckType::Dns => dns(spec, start).await,
                CheckType::Icmp => icmp(spec, start).await,
                CheckType::Cap => self.cap(spec, start).await,
                CheckType::Unknown => Outcome::down(
                    Duration::ZERO,
                    "this agent does not know the check's type; upgrade it".into(),
                ),
            }
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(o) => o,
            Err(_) => Outcome::down(start.elapsed(), format!("no answer within {timeout:?}")),
        }
    }

    async fn http(&self, spec: &CheckSpec, start: Instant) -> Outcome {
        let h = &spec.http;
        let method = h.method.as_deref().unwrap_or("GET");
        let Ok(method) = reqwest::Method::from_bytes(method.as_bytes()) else {
            return Outcome::down(Duration::ZERO, format!("{method:?} is not an HTTP method"));
        };
        let client = if h.follow_redirects {
            &self.follow
        } else {
            &self.direct
        };
        let mut req = client.request(method, &spec.target);
        for (k, v) in &h.headers {
            req = req.header(k, v);
        }
        if let Some(b) = &h.body {
            req = req.body(b.clone());
        }
        let mut resp = match req.send().await {
            Ok(r) => r,
            Err(e) => return Outcome::down(start.elapsed(), error_chain(&e)),
        };
        let status = resp.status().as_u16();
        let needs_body = h.contains.is_some() || h.not_contains.is_some() || h.regex.is_some();
        let body = if needs_body {
            match body_start(&mut resp).await {
                Ok((b, _)) => b,
                Err(e) => return Outcome::down(start.elapsed(), e),
            }
        } else {
            Vec::new()
        };
        let duration = start.elapsed();
        let mut out = Outcome {
            http_status: Some(status),
            ..Outcome::up(duration)
        };
        let text = String::from_utf8_lossy(&body);
        let wrong = if h.status.is_empty() {
            (!(200..400).contains(&status)).then(|| format!("status {status}, not 2xx or 3xx"))
        } else {
            (!h.status.contains(&status))
                .then(|| format!("status {status}, not one of {:?}", h.status))
        }
        .or_else(|| {
            h.contains
                .as_ref()
                .filter(|c| !text.contains(c.as_str()))
                .map(|c| format!("the body does not contain {c:?}"))
        })
        .or_else(|| {
            h.not_contains
                .as_ref()
                .filter(|c| text.contains(c.as_str()))
                .map(|c| format!("the body contains {c:?}"))
        })
        .or_else(|| {
            h.regex.as_ref().and_then(|r| match regex::Regex::new(r) {
                Ok(re) if re.is_match(&text) => None,
                Ok(_) => Some(format!("the body does not match {r:?}")),
                Err(e) => Some(format!("bad regular expression {r:?}: {e}")),
            })
        });
        if let Some(why) = wrong {
            out.status = ProbeStatus::Down;
            out.error = Some(why);
        } else if h
            .degraded_after_ms
            .is_some_and(|ms| duration > Duration::from_millis(ms))
        {
            out.status = ProbeStatus::Degraded;
            out.error = Some(format!(
                "slower than {} ms",
                h.degraded_after_ms.unwrap_or(0)
            ));
        }
        out
    }
}

impl Prober {
    /// A CAP check: the document at the target answers 2xx, and parses as a CAP alert or an
    /// Atom feed of them, every alert valid.
    async fn cap(&self, spec: &CheckSpec, start: Instant) -> Outcome {
        let mut resp = match self.follow.get(&spec.target).send().await {
            Ok(r) => r,
            Err(e) => return Outcome::down(start.elapsed(), error_chain(&e)),
        };
        let status = resp.status().as_u16();
        let (body, whole) = match body_start(&mut resp).await {
            Ok(b) => b,
            Err(e) => return Outcome::down(start.elapsed(), e),
        };
        let mut out = Outcome {
            http_status: Some(status),
            ..Outcome::up(start.elapsed())
        };
        let wrong = if !(200..300).contains(&status) {
            Some(format!("status {status}, not 2xx"))
        } else if !whole {
            Some(format!("the document is larger than {BODY_LIMIT} bytes"))
        } else {
            match std::str::from_utf8(&body) {
                Err(e) => Some(format!("the document is not UTF-8: {e}")),
                Ok(xml) => vigil_schema::cap::read(xml).err().map(|e| e.to_string()),
            }
        };
        if let Some(why) = wrong {
            out.status = ProbeStatus::Down;
            out.error = Some(why);
        }
        out
    }
}

/// The start of a response's body, up to [`BODY_LIMIT`], and whether that is all of it.
async fn body_start(resp: &mut reqwest::Response) -> Result<(Vec<u8>, bool), String> {
    let mut body = Vec::new();
    while body.len() < BODY_LIMIT {
        match resp.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c[..c.len().min(BODY_LIMIT - body.len())]),
            Ok(None) => return Ok((body, true)),
            Err(e) => return Err(error_chain(&e)),
        }
    }
    let more = matches!(resp.chunk().await, Ok(Some(c)) if !c.is_empty());
    Ok((body, !more))
}

/// An error with its causes ("error sending request: connection refused").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cause = c.source();
    }
    s
}

async fn tcp(spec: &CheckSpec, start: Instant) -> Outcome {
    match tokio::net::TcpStream::connect(&spec.target).await {
        Ok(_) => Outcome::up(start.elapsed()),
        Err(e) => Outcome::down(start.elapsed(), format!("connect to {}: {e}", spec.target)),
    }
}

/// The roots a TLS check trusts: its `ca_file`'s certificates, else the public ones.
fn roots(spec: &CheckSpec) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match &spec.tls.ca_file {
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Some(file) => {
            let certs = CertificateDer::pem_file_iter(file)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("cannot read the CA file {file}: {e}"))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("no CA certificate in {file}"));
            }
        }
    }
    Ok(roots)
}

async fn tls(spec: &CheckSpec, start: Instant) -> Outcome {
    let host = spec
        .target
        .rsplit_once(':')
        .map_or(spec.target.as_str(), |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = spec
        .tls
        .server_name
        .clone()
        .unwrap_or_else(|| host.to_owned());
    let roots = match roots(spec) {
        Ok(r) => r,
        Err(e) => return Outcome::down(Duration::ZERO, e),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = match rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
    {
        Ok(b) => b.with_root_certificates(roots).with_no_client_auth(),
        Err(e) => return Outcome::down(Duration::ZERO, e.to_string()),
    };
    let Ok(server_name) = rustls::pki_types::ServerName::try_from(name.clone()) else {
        return Outcome::down(Duration::ZERO, format!("{name:?} is not a server name"));
    };
    let tcp = match tokio::net::TcpStream::connect(&spec.target).await {
        Ok(t) => t,
        Err(e) => {
            return Outcome::down(start.elapsed(), format!("connect to {}: {e}", spec.target));
        }
    };
    let stream = match tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(server_name, tcp)
        .await
    {
        Ok(s) => s,
        Err(e) => return Outcome::down(start.elapsed(), format!("TLS handshake: {e}")),
    };
    let duration = start.elapsed();
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| crate::x509::not_after(c.as_ref()));
    let not_after = match leaf {
        Some(Ok(t)) => t,
        Some(Err(e)) => return Outcome::down(duration, e),
        None => return Outcome::down(duration, "the server sent no certificate".into()),
    };
    let days = (not_after - chrono::Utc::now()).num_days();
    let mut out = Outcome {
        not_after: Some(not_after),
        ..Outcome::up(duration)
    };
    if days < i64::from(spec.tls.warn_days) {
        out.status = ProbeStatus::Degraded;
        out.error = Some(format!(
            "the certificate expires in {days} days ({})",
            not_after.to_rfc3339()
        ));
    }
    out
}

/// A DNS check: the target name resolves (through `dns.server`, else the system's
/// resolver) to at least one address of the record's type, each one of `dns.expect` if given.
async fn dns(spec: &CheckSpec, start: Instant) -> Outcome {
    use vigil_schema::check::DnsRecord;
    let d = &spec.dns;
    let name = spec.target.as_str();
    let answered = match &d.server {
        Some(server) => {
            let addr = match server_addr(server) {
                Ok(a) => a,
                Err(e) => return Outcome::down(Duration::ZERO, e),
            };
            match crate::dns::resolve(addr, name, d.record).await {
                Ok(a) if a.rcode != 0 => Err(format!(
                    "{} answered {} for {name}",
                    addr,
                    crate::dns::rcode_name(a.rcode)
                )),
                Ok(a) => Ok(a.addresses),
                Err(e) => Err(e),
            }
        }
        None => tokio::net::lookup_host((name, 0))
            .await
            .map(|addrs| {
                addrs
                    .map(|a| a.ip())
                    .filter(|ip| ip.is_ipv6() == (d.record == DnsRecord::Aaaa))
                    .collect()
            })
            .map_err(|e| format!("{name} does not resolve: {e}")),
    };
    let duration = start.elapsed();
    let addresses: Vec<std::net::IpAddr> = match answered {
        Ok(a) if a.is_empty() => {
            let kind = if d.record == DnsRecord::A {
                "A"
            } else {
                "AAAA"
            };
            return Outcome::down(duration, format!("{name} has no {kind} record"));
        }
        Ok(a) => a,
        Err(e) => return Outcome::down(duration, e),
    };
    let expected: Vec<std::net::IpAddr> = d.expect.iter().filter_map(|e| e.parse().ok()).collect();
    let mut out = Outcome {
        resolved: addresses.clone(),
        ..Outcome::up(duration)
    };
    if let Some(other) = addresses
        .iter()
        .find(|a| !expected.is_empty() && !expected.contains(a))
    {
        out.status = ProbeStatus::Down;
        out.error = Some(format!(
            "{name} resolves to {other}, not one of {}",
            d.expect.join(", ")
        ));
    }
    out
}

/// A DNS server given as `ip` (port 53) or `ip:port` (`[v6]:port`).
fn server_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    s.parse::<std::net::SocketAddr>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(|ip| (ip, 53).into()))
        .map_err(|_| format!("{s:?} is not ip or ip:port"))
}

/// An ICMP check: one echo to the target host, answered.
async fn icmp(spec: &CheckSpec, start: Instant) -> Outcome {
    let host = spec.target.trim_start_matches('[').trim_end_matches(']');
    let addr = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip,
        Err(_) => match tokio::net::lookup_host((host, 0)).await {
            Ok(mut a) => match a.next() {
                Some(a) => a.ip(),
                None => return Outcome::down(start.elapsed(), format!("{host} has no address")),
            },
            Err(e) => {
                return Outcome::down(start.elapsed(), format!("{host} does not resolve: {e}"));
            }
        },
    };
    static SEQ: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    match crate::icmp::echo(addr, seq).await {
        Ok(rtt) => Outcome::up(rtt),
        Err(e) => Outcome::down(start.elapsed(), e),
    }
}

/// Where the last checks fetched are kept (beside the spool).
pub fn cache_file(spool_dir: &std::path::Path) -> PathBuf {
    spool_dir.join("checks.json")
}

/// Fetches the checks and runs them until `shutdown`.
pub async fn run(
    target: CollectorTarget,
    cache: PathBuf,
    tx: mpsc::Sender<Item>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let Ok(prober) = Prober::new() else {
        tracing::error!("the HTTP client of the checks cannot be made; no checks run");
        return;
    };
    let client = reqwest::Client::builder()
        .timeout(target.timeout)
        .build()
        .unwrap_or_default();
    let url = format!("{}/api/v1/agents/checks", target.url.trim_end_matches('/'));
    let mut running: HashMap<String, (CheckSpec, JoinHandle<()>)> = HashMap::new();
    let mut list: Option<CheckList> = crate::fetched::kept(&cache);
    loop {
        match crate::fetched::get::<CheckList>(&client, &url, &target.token).await {
            Ok(fresh) => {
                if list.as_ref() != Some(&fresh) {
                    crate::fetched::keep(&cache, &fresh);
                }
                list = Some(fresh);
            }
            Err(e) => tracing::debug!(error = %e, "checks not fetched; running the last ones"),
        }
        if let Some(l) = &list {
            apply(l, &mut running, &prober, &tx, &metrics, &shutdown);
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(target.checks_refresh) => {}
        }
    }
    for (_, (_, h)) in running {
        h.abort();
    }
}

/// Starts the checks new or changed in `list`, stops those gone from it.
fn apply(
    list: &CheckList,
    running: &mut HashMap<String, (CheckSpec, JoinHandle<()>)>,
    prober: &Prober,
    tx: &mpsc::Sender<Item>,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) {
    let wanted: HashMap<&str, &CheckSpec> =
        list.checks.iter().map(|c| (c.id.as_str(), c)).collect();
    running.retain(|id, (spec, h)| {
        let keep = wanted.get(id.as_str()).is_some_and(|w| *w == spec);
        if !keep {
            h.abort();
            metrics.check_status.remove(&vec![("check", id.clone())]);
        }
        keep
    });
    for spec in &list.checks {
        if running.contains_key(&spec.id) {
            continue;
        }
        let task = tokio::spawn(every(
            spec.clone(),
            prober.clone(),
            tx.clone(),
            metrics.clone(),
            shutdown.clone(),
        ));
        running.insert(spec.id.clone(), (spec.clone(), task));
    }
    metrics.checks.set(running.len() as i64);
}

/// Runs one check every `interval_ms`, the first time after a random part of it.
async fn every(
    spec: CheckSpec,
    prober: Prober,
    tx: mpsc::Sender<Item>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let interval = Duration::from_millis(spec.interval_ms.max(1000));
    let jitter = rand::rng().random_range(0..interval.as_millis() as u64);
    let mut next = tokio::time::Instant::now() + Duration::from_millis(jitter);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep_until(next) => {}
        }
        // Drift is measured against the schedule, not the last run.
        let late = tokio::time::Instant::now().saturating_duration_since(next);
        metrics.probe_drift.observe(late.as_secs_f64());
        next += interval;
        let out = prober.probe(&spec).await;
        metrics
            .probes
            .get_or_create(&vec![
                ("type", spec.kind.as_str().to_owned()),
                ("status", out.status.as_str().to_owned()),
            ])
            .inc();
        metrics
            .probe_duration
            .get_or_create(&vec![("type", spec.kind.as_str().to_owned())])
            .observe(out.duration.as_secs_f64());
        metrics
            .check_status
            .get_or_create(&vec![("check", spec.id.clone())])
            .set(match out.status {
                vigil_schema::check::ProbeStatus::Up => 1,
                vigil_schema::check::ProbeStatus::Degraded => 2,
                vigil_schema::check::ProbeStatus::Down => 3,
            });
        if tx.send(out.event(&spec).into()).await.is_err() {
            return;
        }
        let now = tokio::time::Instant::now();
        if next < now {
            // A probe longer than its interval: the next round starts now, not in a burst.
            next = now;
        }
    }
}
