//! A real Prometheus server (Debian's `prometheus`) scraping Vigil in tests: one instance per
//! test, on a free port, its own configuration and a temporary data folder.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::process::{Proc, free_port, wait_for};

pub const BINARY: &str = "/usr/bin/prometheus";

/// Why Prometheus cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    (!Path::new(BINARY).exists())
        .then(|| format!("{BINARY} is missing (Debian package prometheus)"))
}

pub struct Prometheus {
    pub proc: Proc,
    pub url: String,
}

impl Prometheus {
    /// Scrapes each `(job, host:port)` every second.
    pub fn start(dir: &Path, targets: &[(&str, String)]) -> Prometheus {
        let port = free_port();
        let mut config =
            String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n");
        for (job, target) in targets {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
            ));
        }
        let file = dir.join("prometheus.yml");
        std::fs::write(&file, config).expect("prometheus config");
        let mut cmd = Command::new(BINARY);
        cmd.arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("prom-data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"));
        let proc = Proc::spawn("prometheus", cmd, &dir.join("prometheus.log"));
        let url = format!("http://127.0.0.1:{port}");
        wait_for(
            Duration::from_secs(60),
            "prometheus to be ready",
            || proc.log_tail(),
            || {
                reqwest::blocking::get(format!("{url}/-/ready"))
                    .ok()
                    .filter(|r| r.status().is_success())
            },
        );
        Prometheus { proc, url }
    }

    /// `GET /api/v1/targets`: the active targets.
    pub fn targets(&self) -> Vec<Value> {
        reqwest::blocking::get(format!("{}/api/v1/targets", self.url))
            .and_then(|r| r.json::<Value>())
            .ok()
            .and_then(|v| v["data"]["activeTargets"].as_array().cloned())
            .unwrap_or_default()
    }

    /// The series an instant query returns.
    pub fn query(&self, q: &str) -> Vec<Value> {
        reqwest::blocking::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", q)])
            .send()
            .and_then(|r| r.json::<Value>())
            .ok()
            .and_then(|v| v["data"]["result"].as_array().cloned())
            .unwrap_or_default()
    }
}
