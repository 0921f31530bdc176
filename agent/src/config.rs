//! Agent configuration (TOML). Parsed raw with `deny_unknown_fields`, so a misspelt key is an
//! error that names the key and its line, then validated.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use serde::{Deserialize, Deserializer};

use vigil_schema::config::{ConfigError, de_duration};

use crate::customer::{CustomerConfig, CustomerMap};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// Stable id of this agent; the collector's token for it must match.
    pub id: String,
    /// Human name, `agent.name` on every event.
    pub name: String,
    /// Customer (institution) that events of this agent belong to, unless a source says otherwise.
    pub customer: Option<String>,
    /// Time zone of timestamps without an offset when neither the source nor its customer
    /// names one; default: this machine's zone (`TZ`, `/etc/timezone`, `/etc/localtime`).
    #[serde(deserialize_with = "de_tz")]
    pub timezone: Tz,
    pub collector: CollectorTarget,
    pub spool: SpoolConfig,
    pub batch: BatchConfig,
    pub http: HttpConfig,
    pub syslog: Vec<SyslogConfig>,
    /// Files to tail (`[[file]]`); their read positions are kept in the spool directory.
    pub file: Vec<FileConfig>,
    /// Sender prefixes per customer (see [`crate::customer`] for the precedence).
    pub customers: Vec<CustomerConfig>,
    /// NetFlow v5/v9 and IPFIX receivers (`[[netflow]]`).
    pub netflow: Vec<NetflowConfig>,
    /// Packet capture on interfaces (`[[capture]]`).
    pub capture: Vec<CaptureConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetflowConfig {
    /// UDP address, e.g. `0.0.0.0:2055`; any of v5, v9 and IPFIX is accepted on it.
    pub listen: SocketAddr,
    /// Customer for flows from this listener (overrides prefixes and the agent's).
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default = "default_netflow_buffer")]
    pub udp_receive_buffer_bytes: usize,
    /// Exporters whose templates and sampling rates are kept (least recently heard first out).
    #[serde(default = "default_max_exporters")]
    pub max_exporters: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaptureConfig {
    /// Interface name, e.g. `eth0`.
    pub interface: String,
    /// Which packets count (see `vigil_agent::flow::filter` for the grammar), e.g.
    /// `not port 22 and net 10.0.0.0/8`.
    #[serde(default)]
    pub filter: Option<String>,
    #[serde(default = "default_true")]
    pub promiscuous: bool,
    /// A flow with no packet for this long ends.
    #[serde(default = "default_flow_idle", deserialize_with = "de_duration")]
    pub idle_timeout: Duration,
    /// A flow longer than this is exported and starts a new record.
    #[serde(default = "default_flow_active", deserialize_with = "de_duration")]
    pub active_timeout: Duration,
    /// After FIN from both sides, how long the flow waits for the last ACK.
    #[serde(default = "default_flow_linger", deserialize_with = "de_duration")]
    pub close_linger: Duration,
    /// Flows held at once; when full, the least recently active is exported early.
    #[serde(default = "default_max_flows")]
    pub max_flows: usize,
    /// Kernel buffer for captured frames (capped by `net.core.rmem_max`; what was granted is
    /// logged). Bursts beyond it are lost in the kernel.
    #[serde(default = "default_capture_buffer")]
    pub receive_buffer_bytes: usize,
    #[serde(default)]
    pub customer: Option<String>,
}

fn default_netflow_buffer() -> usize {
    8 << 20
}
fn default_max_exporters() -> usize {
    10_000
}
fn default_true() -> bool {
    true
}
fn default_flow_idle() -> Duration {
    Duration::from_secs(15)
}
fn default_flow_active() -> Duration {
    Duration::from_secs(60)
}
fn default_flow_linger() -> Duration {
    Duration::from_secs(2)
}
fn default_capture_buffer() -> usize {
    32 << 20
}
fn default_max_flows() -> usize {
    100_000
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorTarget {
    /// Base URL of the collector, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    pub token: String,
    /// Batches in flight at once.
    pub window: usize,
    #[serde(deserialize_with = "de_duration")]
    pub timeout: Duration,
    #[serde(deserialize_with = "de_duration")]
    pub max_backoff: Duration,
    /// How often the agent tells the collector it is alive (with its spool's backlog).
    #[serde(deserialize_with = "de_duration")]
    pub report_interval: Duration,
    /// How often the uptime checks to run are fetched from the collector.
    #[serde(deserialize_with = "de_duration")]
    pub checks_refresh: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    /// Bound of the spool on disk; when full, the oldest batches are dropped (and counted).
    pub max_bytes: u64,
    /// fsync each batch before it is sent. Off trades durability across a power loss (not a
    /// process crash) for throughput.
    pub fsync: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Bound of a batch's events. The default, 20,000, lets a batch of small events (flows:
    /// about 30 B each) be as large as one of log lines: each batch is compressed and
    /// fsynced in turn, and 2,000 flows a batch held the agent to 2 M flows/s.
    pub max_events: usize,
    /// Bound of a batch's encoded size before compression (the batch that crosses it is sent).
    pub max_bytes: usize,
    #[serde(deserialize_with = "de_duration")]
    pub max_wait: Duration,
    /// Capacity of the channel between sources and the batcher, in items: one event, one
    /// read of a connection (up to 8 KiB encoded) or the flows of a datagram (of several
    /// when they wait: up to 32 KiB encoded). It only has to absorb the batcher's pauses;
    /// the default bounds it to about 32 MiB of syslog, 128 MiB of flows.
    pub channel: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// `/metrics`, `/healthz`, `/readyz`. Set to an empty string to disable.
    pub listen: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// Address for both TCP and UDP, e.g. `0.0.0.0:5514`.
    pub listen: SocketAddr,
    #[serde(default = "default_protocols")]
    pub protocols: Vec<Protocol>,
    /// Customer for events from this listener (overrides the agent's).
    #[serde(default)]
    pub customer: Option<String>,
    /// Longer messages are truncated (and flagged).
    #[serde(default = "default_max_message")]
    pub max_message_bytes: usize,
    /// Concurrent TCP connections; more are closed at once and counted.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// A TCP connection that sends nothing for this long is closed (what it had sent of an
    /// unfinished message is kept, flagged as truncated).
    #[serde(default = "default_idle_timeout", deserialize_with = "de_duration")]
    pub idle_timeout: Duration,
    /// Time zone of timestamps without an offset (RFC 3164 and most application logs), an
    /// IANA name such as `Europe/Brussels`; default: the customer's, else the agent's.
    #[serde(default, deserialize_with = "de_opt_tz")]
    pub timezone: Option<Tz>,
    /// Certificate chain and key (PEM) for the `tls` protocol (RFC 5425).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Kernel receive buffer asked for the UDP socket (the kernel may grant less; what it
    /// grants is logged). Overruns are counted from the kernel's per-socket drop counter.
    #[serde(default = "default_udp_buffer")]
    pub udp_receive_buffer_bytes: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// A TLS handshake that takes longer is abandoned (and counted as timed out).
    #[serde(
        default = "default_handshake_timeout",
        deserialize_with = "de_duration"
    )]
    pub handshake_timeout: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Paths or glob patterns (`/var/log/app/*.log`), checked again at every poll so new
    /// files and rotated ones are found.
    pub paths: Vec<String>,
    /// Where to start in a file seen for the first time at agent start: `end` (default) or
    /// `beginning`. Files that appear later are always read from their beginning, and a
    /// file with a saved position resumes there.
    #[serde(default)]
    pub start_at: StartAt,
    #[serde(default)]
    pub customer: Option<String>,
    /// As a syslog listener's `timezone`.
    #[serde(default, deserialize_with = "de_opt_tz")]
    pub timezone: Option<Tz>,
    /// Longer lines are truncated (and flagged).
    #[serde(default = "default_max_message")]
    pub max_line_bytes: usize,
    #[serde(default = "default_poll", deserialize_with = "de_duration")]
    pub poll_interval: Duration,
    /// A file renamed out of `paths` or deleted is still read for this long after its last
    /// new line (writers keep writing to the old file until they reopen).
    #[serde(default = "default_rotate_wait", deserialize_with = "de_duration")]
    pub rotate_wait: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    Beginning,
    #[default]
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    /// Syslog over TLS (RFC 5425) on the listener's TCP port, with `tls` cert and key.
    Tls,
}

fn default_protocols() -> Vec<Protocol> {
    vec![Protocol::Tcp, Protocol::Udp]
}
fn default_max_message() -> usize {
    64 * 1024
}
fn default_max_connections() -> usize {
    1024
}
fn default_idle_timeout() -> Duration {
    Duration::from_secs(300)
}
/// The zone of the machine the agent runs on: `TZ`, else `/etc/timezone`, else where the
/// link `/etc/localtime` points, else UTC.
pub fn local_tz() -> Tz {
    let env = std::env::var("TZ")
        .ok()
        .map(|z| z.trim_start_matches(':').to_owned());
    let file = std::fs::read_to_string("/etc/timezone")
        .ok()
        .map(|z| z.trim().to_owned());
    let link = std::fs::read_link("/etc/localtime").ok().and_then(|p| {
        let p = p.to_string_lossy().into_owned();
        p.split_once("zoneinfo/").map(|(_, z)| z.to_owned())
    });
    [env, file, link]
        .into_iter()
        .flatten()
        .find_map(|z| z.parse().ok())
        .unwrap_or(Tz::UTC)
}
fn default_udp_buffer() -> usize {
    8 << 20
}
fn default_handshake_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_poll() -> Duration {
    Duration::from_millis(250)
}
fn default_rotate_wait() -> Duration {
    Duration::from_secs(5)
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            id: "local".into(),
            name: hostname(),
            customer: None,
            timezone: local_tz(),
            collector: CollectorTarget::default(),
            spool: SpoolConfig::default(),
            batch: BatchConfig::default(),
            http: HttpConfig::default(),
            syslog: vec![SyslogConfig {
                listen: SocketAddr::from(([0, 0, 0, 0], 5514)),
                protocols: default_protocols(),
                customer: None,
                max_message_bytes: default_max_message(),
                max_connections: default_max_connections(),
                idle_timeout: default_idle_timeout(),
                timezone: None,
                tls: None,
                udp_receive_buffer_bytes: default_udp_buffer(),
            }],
            file: Vec::new(),
            customers: Vec::new(),
            // DESIGN.md's ports: NetFlow v5/v9 on 2055, IPFIX on 4739 (each takes all three).
            netflow: [2055, 4739]
                .into_iter()
                .map(|port| NetflowConfig {
                    listen: SocketAddr::from(([0, 0, 0, 0], port)),
                    customer: None,
                    udp_receive_buffer_bytes: default_netflow_buffer(),
                    max_exporters: default_max_exporters(),
                })
                .collect(),
            capture: Vec::new(),
        }
    }
}

impl Default for CollectorTarget {
    fn default() -> Self {
        CollectorTarget {
            url: "http://127.0.0.1:8080".into(),
            token: String::new(),
            window: 4,
            timeout: Duration::from_secs(30),
            max_backoff: Duration::from_secs(10),
            report_interval: Duration::from_secs(15),
            checks_refresh: Duration::from_secs(30),
        }
    }
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            dir: PathBuf::from("./vigil-agent-data/spool"),
            max_bytes: 1 << 30,
            fsync: true,
        }
    }
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_events: 20_000,
            max_bytes: 2 << 20,
            max_wait: Duration::from_millis(200),
            channel: 4096,
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:9101".into(),
        }
    }
}

impl AgentConfig {
    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let cfg: AgentConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        cfg.validate(path).map_err(|e| e.at_line_in(text))?;
        Ok(cfg)
    }

    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            message: message.to_owned(),
            line: None,
        };
        if self.id.is_empty() || self.id.len() > 128 {
            return Err(invalid("id", "must be 1 to 128 characters"));
        }
        if !(self.collector.url.starts_with("http://")
            || self.collector.url.starts_with("https://"))
        {
            return Err(invalid(
                "collector.url",
                "must start with http:// or https://",
            ));
        }
        if self.collector.window == 0 || self.collector.window > 256 {
            return Err(invalid("collector.window", "must be 1 to 256"));
        }
        if self.batch.max_events == 0 {
            return Err(invalid("batch.max_events", "must be at least 1"));
        }
        if self.batch.channel == 0 {
            return Err(invalid("batch.channel", "must be at least 1"));
        }
        if self.spool.max_bytes < 4096 {
            return Err(invalid("spool.max_bytes", "must be at least 4096"));
        }
        for s in &self.syslog {
            if s.protocols.is_empty() {
                return Err(invalid(
                    "syslog.protocols",
                    "name at least one of tcp, udp, tls",
                ));
            }
            let tls = s.protocols.contains(&Protocol::Tls);
            if tls && s.protocols.contains(&Protocol::Tcp) {
                return Err(invalid(
                    "syslog.protocols",
                    "tcp and tls share the TCP port: use two listeners",
                ));
            }
            if tls != s.tls.is_some() {
                return Err(invalid(
                    "syslog.tls",
                    "the tls protocol needs [syslog.tls] cert and key, and only it uses them",
                ));
            }
            if s.max_message_bytes < 64 {
                return Err(invalid("syslog.max_message_bytes", "must be at least 64"));
            }
            if s.max_connections == 0 {
                return Err(invalid("syslog.max_connections", "must be at least 1"));
            }
            if s.idle_timeout.is_zero() {
                return Err(invalid("syslog.idle_timeout", "must be more than 0"));
            }
        }
        for f in &self.file {
            if f.paths.is_empty() {
                return Err(invalid("file.paths", "name at least one path or glob"));
            }
            if let Some(bad) = f.paths.iter().find_map(|p| glob::Pattern::new(p).err()) {
                return Err(invalid("file.paths", &bad.to_string()));
            }
            if f.max_line_bytes < 64 {
                return Err(invalid("file.max_line_bytes", "must be at least 64"));
            }
            if f.poll_interval.is_zero() {
                return Err(invalid("file.poll_interval", "must be more than 0"));
            }
        }
        for n in &self.netflow {
            if n.max_exporters == 0 {
                return Err(invalid("netflow.max_exporters", "must be at least 1"));
            }
        }
        for c in &self.capture {
            if c.interface.is_empty() {
                return Err(invalid("capture.interface", "name an interface"));
            }
            if let Some(f) = &c.filter {
                crate::flow::filter::Filter::parse(f).map_err(|e| invalid("capture.filter", &e))?;
            }
            if c.max_flows == 0 {
                return Err(invalid("capture.max_flows", "must be at least 1"));
            }
            if c.idle_timeout.is_zero() || c.active_timeout.is_zero() {
                return Err(invalid(
                    "capture.idle_timeout",
                    "idle_timeout and active_timeout must be more than 0",
                ));
            }
        }
        CustomerMap::new(&self.customers).map_err(|e| invalid("customers", &e))?;
        Ok(())
    }
}

pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

pub fn de_tz<'de, D: Deserializer<'de>>(d: D) -> Result<Tz, D::Error> {
    let s = String::deserialize(d)?;
    s.parse::<Tz>().map_err(|_| {
        serde::de::Error::custom(format!(
            "`{s}` is not an IANA time zone name like UTC or Europe/Brussels"
        ))
    })
}

pub fn de_opt_tz<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Tz>, D::Error> {
    de_tz(d).map(Some)
}

impl AgentConfig {
    /// The zone of timestamps without an offset from a source with zone `source` (if it
    /// names one) and events of `customer`: the source's, else the customer's, else the
    /// agent's.
    pub fn zone(&self, source: Option<Tz>, customer: Option<&str>) -> Tz {
        source
            .or_else(|| {
                let c = customer?;
                self.customers.iter().find(|x| x.name == c)?.timezone
            })
            .unwrap_or(self.timezone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zone_comes_from_the_source_then_the_customer_then_the_agent() {
        let cfg = AgentConfig::parse(
            "timezone = \"America/New_York\"\n\
             [[customers]]\nname = \"ulb\"\nprefixes = [\"10.0.0.0/8\"]\n\
             timezone = \"Europe/Brussels\"\n\
             [[customers]]\nname = \"belnet\"\nprefixes = [\"11.0.0.0/8\"]\n",
            Path::new("agent.toml"),
        )
        .expect("valid");
        let tokyo = Some(chrono_tz::Asia::Tokyo);
        assert_eq!(cfg.zone(tokyo, Some("ulb")), chrono_tz::Asia::Tokyo);
        assert_eq!(cfg.zone(None, Some("ulb")), chrono_tz::Europe::Brussels);
        assert_eq!(cfg.zone(None, Some("belnet")), chrono_tz::America::New_York);
        assert_eq!(cfg.zone(None, None), chrono_tz::America::New_York);
        // Without one, the machine's (UTC on a machine without a zone).
        let plain = AgentConfig::parse("", Path::new("agent.toml")).expect("valid");
        assert_eq!(plain.timezone, local_tz());
    }

    #[test]
    fn unknown_key_is_named_with_its_line() {
        let err = AgentConfig::parse(
            "id = \"a\"\n\n[spool]\nmax_bytez = 10\n",
            Path::new("a.toml"),
        )
        .expect_err("unknown key");
        let msg = err.to_string();
        assert!(msg.contains("max_bytez"), "{msg}");
        assert!(msg.contains("line 4"), "{msg}");
    }

    #[test]
    fn empty_config_is_the_default() {
        let cfg = AgentConfig::parse("", Path::new("a.toml")).expect("valid");
        assert_eq!(cfg.syslog.len(), 1);
        assert_eq!(cfg.collector.window, 4);
    }

    #[test]
    fn a_bad_duration_is_named_with_its_line() {
        let err = AgentConfig::parse("[batch]\nmax_wait = \"soon\"\n", Path::new("a.toml"))
            .expect_err("bad duration");
        assert!(err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn time_zones_and_tls_are_checked() {
        let cfg = AgentConfig::parse(
            "[[syslog]]\nlisten = \"127.0.0.1:1\"\ntimezone = \"Europe/Brussels\"\n",
            Path::new("a.toml"),
        )
        .expect("valid");
        assert_eq!(cfg.syslog[0].timezone, Some(chrono_tz::Europe::Brussels));
        let err = AgentConfig::parse(
            "[[syslog]]\nlisten = \"127.0.0.1:1\"\ntimezone = \"Mars/Olympus\"\n",
            Path::new("a.toml"),
        )
        .expect_err("bad zone");
        assert!(err.to_string().contains("Mars/Olympus"), "{err}");
        let err = AgentConfig::parse(
            "[[syslog]]\nlisten = \"127.0.0.1:1\"\nprotocols = [\"tls\"]\n",
            Path::new("a.toml"),
        )
        .expect_err("tls without a certificate");
        assert!(err.to_string().contains("syslog.tls"), "{err}");
        let err = AgentConfig::parse("[[file]]\npaths = [\"/var/log/[\"]\n", Path::new("a.toml"))
            .expect_err("bad glob");
        assert!(err.to_string().contains("file.paths"), "{err}");
    }

    #[test]
    fn validation_names_the_key() {
        let err = AgentConfig::parse("[collector]\nwindow = 0\n", Path::new("a.toml"))
            .expect_err("invalid");
        assert!(err.to_string().contains("collector.window"), "{err}");
    }
}
