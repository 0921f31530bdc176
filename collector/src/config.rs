//! Collector configuration (TOML): `vigil collector --config FILE` and `vigil up --config FILE`.
//! Parsed raw with `deny_unknown_fields` (a misspelt key is named with its line), then validated.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use vigil_agent::config::AgentConfig;
use vigil_schema::config::{ConfigError, de_duration};

use crate::reference::Customers;
use crate::reference::directory::{Directory, Shared};

fn invalid_at(path: &Path, key: &'static str, message: String) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_owned(),
        key,
        message,
        line: None,
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    /// Index, write-ahead log (and, for `vigil up`, the agent's spool) live here.
    pub data_dir: PathBuf,
    pub http: HttpConfig,
    pub ingest: IngestConfig,
    pub index: IndexConfig,
    /// Sigma rules and correlations on every event.
    pub detect: crate::detect::DetectConfig,
    /// Where incidents are kept.
    pub incidents: crate::incidents::IncidentsConfig,
    /// The in-process agent of `vigil up` (ignored by `vigil collector`).
    pub agent: Option<AgentConfig>,
    /// Who is told about incidents, and how.
    pub notify: crate::notify::NotifyConfig,
    /// The institutions watched for, with their contacts by role.
    pub customers: Vec<crate::reference::Customer>,
    /// Our own people and on-call rotas.
    pub oncall: crate::oncall::OnCallConfig,
    /// Assets: their id format, the ones defined here, where changes are sent.
    pub assets: crate::reference::assets::AssetsConfig,
    /// Heartbeats (push health checks): the ping key of slug URLs.
    pub heartbeats: crate::uptime::HeartbeatsConfig,
    /// Uptime checks the agents run (read-only through the API).
    pub checks: Vec<crate::uptime::check::Check>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub listen: String,
    /// If set, search and other read APIs need `Authorization: Bearer <api_token>`, and
    /// the console asks for it at login.
    pub api_token: Option<String>,
    /// How long a console login lasts.
    #[serde(deserialize_with = "de_duration")]
    pub session_ttl: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Largest batch body accepted (413 above).
    pub max_body_bytes: usize,
    /// Most events in one batch (413 above).
    pub max_batch_events: usize,
    /// How many times its compressed size a batch may decompress to (413 above); batches
    /// of up to [`crate::api::ingest::ALWAYS_DECODED_BYTES`] decompressed are taken whatever
    /// their ratio. Bounds what a small request can make the collector allocate.
    pub max_expansion: u64,
    /// Memory, in MiB, that the batches being received and decoded at one time may take
    /// (each reserves its body and its largest decompressed size); a batch that does not
    /// fit is answered 503 with `Retry-After`, which agents retry.
    pub decode_budget_mb: usize,
    /// fsync the write-ahead log before acknowledging (the durability promise; off only for tests
    /// of throughput on throwaway data).
    pub fsync: bool,
    /// Agents allowed to send, each with its own token.
    pub agents: Vec<AgentToken>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentToken {
    pub id: String,
    pub token: String,
    /// An agent whose reports stop for this long opens an incident naming it.
    #[serde(default = "silent_after", deserialize_with = "de_duration")]
    pub silent_after: Duration,
}

fn silent_after() -> Duration {
    Duration::from_secs(60)
}

impl AgentToken {
    /// An agent with the default silence limit.
    pub fn new(id: &str, token: &str) -> AgentToken {
        AgentToken {
            id: id.into(),
            token: token.into(),
            silent_after: silent_after(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexConfig {
    /// Longest time between an acknowledged event and its being searchable.
    #[serde(deserialize_with = "de_duration")]
    pub commit_interval: Duration,
    /// Indexing memory budget, split across indexing threads.
    pub memory_budget_mb: usize,
    pub threads: usize,
    /// Days a partition (a day of arrival) is kept; 0 keeps everything.
    pub retention_days: u32,
    /// The oldest partitions are dropped while all together are larger; 0: no size limit.
    pub retention_max_mb: u64,
}

impl IndexConfig {
    pub fn retention(&self) -> crate::index::retention::Policy {
        crate::index::retention::Policy {
            max_age_days: (self.retention_days > 0).then_some(self.retention_days),
            max_bytes: (self.retention_max_mb > 0).then_some(self.retention_max_mb << 20),
        }
    }
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            data_dir: PathBuf::from("./vigil-data"),
            http: HttpConfig::default(),
            ingest: IngestConfig::default(),
            index: IndexConfig::default(),
            detect: crate::detect::DetectConfig::default(),
            incidents: crate::incidents::IncidentsConfig::default(),
            agent: None,
            notify: crate::notify::NotifyConfig::default(),
            customers: Vec::new(),
            oncall: crate::oncall::OnCallConfig::default(),
            assets: crate::reference::assets::AssetsConfig::default(),
            heartbeats: crate::uptime::HeartbeatsConfig::default(),
            checks: Vec::new(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".into(),
            api_token: None,
            session_ttl: Duration::from_secs(12 * 3600),
        }
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_body_bytes: 32 << 20,
            max_batch_events: 100_000,
            max_expansion: 64,
            decode_budget_mb: 512,
            fsync: true,
            agents: Vec::new(),
        }
    }
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            commit_interval: Duration::from_secs(1),
            memory_budget_mb: 128,
            threads: 2,
            retention_days: 30,
            retention_max_mb: 0,
        }
    }
}

/// The configuration `vigil up` runs with, written out and commented (`vigil config example`),
/// with an example that watches a public alerting platform (commented out).
pub const EXAMPLE: &str = include_str!("../config/default.toml");

impl CollectorConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let cfg: CollectorConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        cfg.validate(path).map_err(|e| e.at_line_in(text))?;
        Ok(cfg)
    }

    /// The reference data of the configuration (customers, assets and the deadlines they
    /// imply), checked; the database's objects join it at start.
    pub fn directory(&self, path: &Path) -> Result<Directory, ConfigError> {
        Directory::new(&self.customers, &self.assets, &self.incidents)
            .map_err(|(key, message)| invalid_at(path, key, message))
    }

    /// The notification settings, checked, reading customers from `customers`; `None` when
    /// no route is configured.
    pub fn notifier_with(
        &self,
        path: &Path,
        customers: Shared<Customers>,
    ) -> Result<Option<crate::notify::Notifier>, ConfigError> {
        let oncall = self.oncall().map_err(|(k, m)| invalid_at(path, k, m))?;
        crate::notify::Notifier::new(&self.notify, customers, oncall)
            .map_err(|(k, m)| invalid_at(path, k, m))
    }

    /// The notification settings with the configuration's customers.
    pub fn notifier(&self, path: &Path) -> Result<Option<crate::notify::Notifier>, ConfigError> {
        self.notifier_with(path, self.directory(path)?.customers())
    }

    /// The configuration's uptime checks, checked (the error names the check and field).
    pub fn checks(&self, path: &Path) -> Result<Vec<crate::uptime::check::Check>, ConfigError> {
        let agents: Vec<String> = self.ingest.agents.iter().map(|a| a.id.clone()).collect();
        let customers = self.directory(path)?.customers().get();
        crate::uptime::check::configured(&self.checks, &agents, &customers)
            .map_err(|(k, m)| invalid_at(path, k, m))
    }

    /// The on-call rotas, checked.
    pub fn oncall(&self) -> Result<crate::oncall::OnCall, (&'static str, String)> {
        crate::oncall::OnCall::new(&self.oncall)
    }

    /// The incidents' deadlines of the configuration's customers, checked.
    pub fn deadlines(
        &self,
        path: &Path,
    ) -> Result<crate::incidents::deadlines::Deadlines, ConfigError> {
        Ok((*self.directory(path)?.deadlines().get()).clone())
    }

    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        self.notifier(path)?;
        self.heartbeats
            .check()
            .map_err(|(k, m)| invalid_at(path, k, m))?;
        self.checks(path)?;
        let invalid = |key, message: &str| ConfigError::Invalid {
            path: path.to_owned(),
            key,
            message: message.to_owned(),
            line: None,
        };
        if let Err(e) = self.http.listen.parse::<std::net::SocketAddr>() {
            return Err(invalid(
                "http.listen",
                &format!("`{}` is not an address and port: {e}", self.http.listen),
            ));
        }
        if self.ingest.max_body_bytes < 1024 {
            return Err(invalid("ingest.max_body_bytes", "must be at least 1024"));
        }
        if self.ingest.max_expansion < 2 {
            return Err(invalid("ingest.max_expansion", "must be at least 2"));
        }
        let body_mb = self.ingest.max_body_bytes.div_ceil(1 << 20);
        if self.ingest.decode_budget_mb < 2 * body_mb {
            return Err(invalid(
                "ingest.decode_budget_mb",
                "must be at least twice ingest.max_body_bytes (in MiB)",
            ));
        }
        if self.index.commit_interval < Duration::from_millis(10) {
            return Err(invalid("index.commit_interval", "must be at least 10ms"));
        }
        if self.index.threads == 0 || self.index.threads > 16 {
            return Err(invalid("index.threads", "must be 1 to 16"));
        }
        if self.index.memory_budget_mb < 16 * self.index.threads {
            return Err(invalid(
                "index.memory_budget_mb",
                "must be at least 16 per indexing thread",
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for a in &self.ingest.agents {
            if a.token.len() < 16 {
                return Err(invalid(
                    "ingest.agents.token",
                    "must be at least 16 characters",
                ));
            }
            if !seen.insert(&a.token) {
                return Err(invalid("ingest.agents.token", "two agents share a token"));
            }
            if !crate::reference::is_id(&a.id) {
                return Err(invalid(
                    "ingest.agents.id",
                    "1 to 64 letters, digits, `.`, `_` or `-`, starting with a letter or digit",
                ));
            }
            if a.silent_after < Duration::from_secs(1) {
                return Err(invalid("ingest.agents.silent_after", "must be at least 1s"));
            }
        }
        if self.detect.max_correlation_groups == 0 || self.detect.max_group_entries == 0 {
            return Err(invalid(
                "detect.max_correlation_groups",
                "correlation limits must be at least 1",
            ));
        }
        if let Err(e) = self.detect.mapping() {
            return Err(invalid("detect.mappings", &e.to_string()));
        }
        if let Some(url) = &self.incidents.database
            && !["sqlite:", "postgres:", "postgresql:"]
                .iter()
                .any(|p| url.starts_with(p))
        {
            return Err(invalid(
                "incidents.database",
                "must be a sqlite:// or postgres:// URL",
            ));
        }
        if let Some(agent) = &self.agent {
            agent.validate(path)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The written-out defaults are the defaults, and the alerting-platform example, once
    /// uncommented as its comment says, is a valid configuration with its three checks.
    #[test]
    fn the_example_configuration_is_the_defaults_and_its_watch_example_works() {
        let cfg = CollectorConfig::parse(EXAMPLE, Path::new("default.toml")).expect("valid");
        let d = CollectorConfig::default();
        assert_eq!(cfg.http.listen, d.http.listen);
        assert_eq!(cfg.index.retention_days, d.index.retention_days);
        assert_eq!(cfg.heartbeats.report_every, d.heartbeats.report_every);
        assert_eq!(
            std::path::Path::new(&cfg.data_dir).file_name(),
            d.data_dir.file_name()
        );
        assert!(cfg.checks.is_empty());
        let mut inside = false;
        let uncommented: String = EXAMPLE
            .lines()
            .map(|l| {
                if l.starts_with("# BEGIN") {
                    inside = true;
                } else if l.starts_with("# END") {
                    inside = false;
                } else if inside {
                    return l
                        .strip_prefix("# ")
                        .unwrap_or(l.trim_start_matches('#'))
                        .to_owned()
                        + "\n";
                }
                l.to_owned() + "\n"
            })
            .collect();
        let cfg = CollectorConfig::parse(&uncommented, Path::new("vigil.toml")).expect("valid");
        let checks = cfg.checks(Path::new("vigil.toml")).expect("checks valid");
        let kinds: Vec<(&str, bool, bool)> = checks
            .iter()
            .map(|c| (c.kind.as_str(), c.watch, c.agents.is_empty()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("http", false, true),
                ("http", false, true),
                ("cap", true, true)
            ]
        );
    }

    #[test]
    fn unknown_key_in_nested_agent_section_is_named() {
        let err = CollectorConfig::parse(
            "[http]\nlisten = \"127.0.0.1:0\"\n[agent]\nid = \"x\"\n[agent.batch]\nmax_event = 3\n",
            Path::new("c.toml"),
        )
        .expect_err("unknown key");
        let msg = err.to_string();
        assert!(msg.contains("max_event") && msg.contains("line 6"), "{msg}");
    }

    #[test]
    fn short_token_is_refused() {
        let err = CollectorConfig::parse(
            "[[ingest.agents]]\nid = \"a\"\ntoken = \"short\"\n",
            Path::new("c.toml"),
        )
        .expect_err("short token");
        assert!(err.to_string().contains("ingest.agents.token"), "{err}");
    }
}
