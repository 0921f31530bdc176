//! A real Prometheus Alertmanager (Debian's `prometheus-alertmanager`) for the tests of
//! alerts pushed to it: one instance per test, on a free port, without clustering.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process::{Proc, free_port, wait_for};

pub const BINARY: &str = "/usr/bin/prometheus-alertmanager";

/// Why Alertmanager cannot run here, if it cannot.
pub fn unavailable() -> Option<String> {
    (!Path::new(BINARY).exists())
        .then(|| format!("{BINARY} is missing (Debian package prometheus-alertmanager)"))
}

pub struct Alertmanager {
    pub proc: Proc,
    pub url: String,
}

impl Alertmanager {
    pub fn start(dir: &Path) -> Alertmanager {
        let port = free_port();
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            "route:\n  receiver: nobody\nreceivers:\n  - name: nobody\n",
        )
        .expect("alertmanager config");
        let mut cmd = Command::new(BINARY);
        cmd.arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=");
        let proc = Proc::spawn("alertmanager", cmd, &dir.join("alertmanager.log"));
        let url = format!("http://127.0.0.1:{port}");
        wait_for(
            Duration::from_secs(30),
            "alertmanager to be ready",
            || proc.log_tail(),
            || {
                reqwest::blocking::get(format!("{url}/-/ready"))
                    .ok()
                    .filter(|r| r.status().is_success())
            },
        );
        Alertmanager { proc, url }
    }

    /// The alerts it holds (`GET /api/v2/alerts`: active, silenced and inhibited ones).
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        reqwest::blocking::get(format!("{}/api/v2/alerts", self.url))
            .and_then(|r| r.json::<serde_json::Value>())
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    }
}
