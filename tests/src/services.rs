//! A collector and agents as the tests run them: configurations with their own data
//! directories and ephemeral ports, started as real processes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::client::metric;
use crate::process::{Proc, bin, read_ports};

/// `vigil COMMAND ARGS --url URL` against a collector: (success, stdout, stderr).
pub fn vigil_cli(command: &str, args: &[&str], url: &str) -> (bool, String, String) {
    let out = Command::new(bin("vigil"))
        .arg(command)
        .args(args)
        .args(["--url", url])
        .output()
        .expect("vigil runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub const AGENT_ID: &str = "edge-1";
pub const AGENT_TOKEN: &str = "test-token-0123456789abcdef";
/// A second agent the collector of [`collector_config`] also accepts.
pub const AGENT2_ID: &str = "edge-2";
pub const AGENT2_TOKEN: &str = "test-token-second-agent-0123";

/// A collector's config: its own data dir, a fixed or ephemeral port, one agent token.
pub fn collector_config(dir: &Path, port: u16, commit_interval: &str) -> String {
    format!(
        r#"data_dir = "{data}"
[http]
listen = "127.0.0.1:{port}"
[index]
commit_interval = "{commit_interval}"
[[ingest.agents]]
id = "{AGENT_ID}"
token = "{AGENT_TOKEN}"
[[ingest.agents]]
id = "{AGENT2_ID}"
token = "{AGENT2_TOKEN}"
"#,
        data = dir.join("collector-data").display()
    )
}

/// An agent's config: syslog TCP+UDP on an ephemeral port, its spool under `dir`;
/// `spool_extra` goes into the `[spool]` table, `extra` (more tables) at the end.
pub fn agent_config(dir: &Path, collector_port: u16, spool_extra: &str, extra: &str) -> String {
    agent_config_as(
        dir,
        collector_port,
        (AGENT_ID, AGENT_TOKEN),
        spool_extra,
        extra,
    )
}

/// [`agent_config`] for the agent `(id, token)`.
pub fn agent_config_as(
    dir: &Path,
    collector_port: u16,
    (id, token): (&str, &str),
    spool_extra: &str,
    extra: &str,
) -> String {
    format!(
        r#"id = "{id}"
name = "test-agent"
customer = "test-customer"
{netflow_none}
[collector]
url = "http://127.0.0.1:{collector_port}"
token = "{token}"
max_backoff = "1s"
report_interval = "1s"
checks_refresh = "1s"
[spool]
dir = "{spool}"
{spool_extra}
[http]
listen = "127.0.0.1:0"
[[syslog]]
listen = "127.0.0.1:0"
{extra}
"#,
        spool = dir.join("spool").display(),
        // The embedded defaults listen for NetFlow on 2055 and 4739: tests that run side by
        // side must not, unless they ask for listeners of their own.
        netflow_none = if extra.contains("[[netflow]]") {
            ""
        } else {
            "netflow = []"
        },
    )
}

pub struct Collector {
    pub proc: Proc,
    pub port: u16,
    pub config: PathBuf,
}

impl Collector {
    /// Starts `vigil collector` (port 0 = any free port; a restart passes the old port).
    pub fn start(dir: &Path, port: u16) -> Collector {
        Self::start_with_commit_interval(dir, port, "500ms")
    }

    pub fn start_with_commit_interval(dir: &Path, port: u16, commit_interval: &str) -> Collector {
        Self::start_with(dir, port, commit_interval, "")
    }

    /// Starts with `extra` (more TOML tables) at the end of the configuration.
    pub fn start_with(dir: &Path, port: u16, commit_interval: &str, extra: &str) -> Collector {
        Self::start_text(dir, &(collector_config(dir, port, commit_interval) + extra))
    }

    /// A collector with the whole configuration `text`.
    pub fn start_text(dir: &Path, text: &str) -> Collector {
        let config = dir.join("collector.toml");
        std::fs::write(&config, text).expect("config");
        let ports = dir.join("collector.ports.json");
        let _ = std::fs::remove_file(&ports);
        let mut cmd = Command::new(bin("vigil"));
        cmd.arg("collector")
            .arg("--config")
            .arg(&config)
            .arg("--ports-file")
            .arg(&ports);
        let proc = Proc::spawn("collector", cmd, &dir.join("collector.log"));
        let addrs = read_ports(&ports, &proc);
        let addr: SocketAddr = addrs["http"]
            .as_str()
            .expect("http addr")
            .parse()
            .expect("addr");
        Collector {
            proc,
            port: addr.port(),
            config,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

pub struct Agent {
    pub proc: Proc,
    /// Everything the agent bound, as in its ports file.
    pub ports: Value,
    pub syslog_tcp: SocketAddr,
    pub syslog_udp: Option<SocketAddr>,
    pub netflow: Option<SocketAddr>,
    pub http: SocketAddr,
}

impl Agent {
    pub fn start(dir: &Path, collector_port: u16, spool_extra: &str, extra: &str) -> Agent {
        Self::start_as(
            dir,
            collector_port,
            (AGENT_ID, AGENT_TOKEN),
            spool_extra,
            extra,
        )
    }

    /// Starts the agent `(id, token)`; `dir` holds its config, spool and log.
    pub fn start_as(
        dir: &Path,
        collector_port: u16,
        id: (&str, &str),
        spool_extra: &str,
        extra: &str,
    ) -> Agent {
        std::fs::create_dir_all(dir).expect("agent dir");
        Self::start_with_config(
            dir,
            &agent_config_as(dir, collector_port, id, spool_extra, extra),
        )
    }

    /// Starts an agent with the configuration `text`; `dir` holds it, its ports file and log.
    pub fn start_with_config(dir: &Path, text: &str) -> Agent {
        std::fs::create_dir_all(dir).expect("agent dir");
        let config = dir.join("agent.toml");
        std::fs::write(&config, text).expect("config");
        let ports = dir.join("agent.ports.json");
        let _ = std::fs::remove_file(&ports);
        let mut cmd = Command::new(bin("vigil-agent"));
        cmd.arg("--config")
            .arg(&config)
            .arg("--ports-file")
            .arg(&ports);
        let proc = Proc::spawn("agent", cmd, &dir.join("agent.log"));
        let a = read_ports(&ports, &proc);
        let addr = |v: &Value| -> SocketAddr { v.as_str().expect("addr").parse().expect("addr") };
        Agent {
            syslog_tcp: addr(&a["syslog_tcp"][0]),
            syslog_udp: a["syslog_udp"][0].as_str().and_then(|s| s.parse().ok()),
            netflow: a["netflow"][0].as_str().and_then(|s| s.parse().ok()),
            http: addr(&a["http"]),
            ports: a.clone(),
            proc,
        }
    }

    /// One metric's value from the agent's `/metrics` (summed over labels).
    pub fn metric(&self, name: &str) -> f64 {
        metric(&format!("http://{}", self.http), name)
    }
}
