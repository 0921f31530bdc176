//! Tells the collector every `report_interval` that this agent is alive, with its version and
//! its spool's backlog: the collector lists agents from these reports, and an agent whose
//! reports stop (killed, cut off, its host down) opens an incident there.
//!
//! A report is best effort: one that fails is not retried (the next one says the same, more
//! recently), and it never waits behind the spool's batches.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::CollectorTarget;
use crate::metrics::Metrics;
use crate::spool::Spool;

/// What an agent reports (`POST /api/v1/agents/report`), the collector's contract for it.
pub fn body(id: &str, spool: &Spool, metrics: &Metrics, interval: Duration) -> serde_json::Value {
    serde_json::json!({
        "agent": id,
        "version": env!("CARGO_PKG_VERSION"),
        "host": hostname(),
        "interval_seconds": interval.as_secs_f64(),
        "spool_batches": spool.len(),
        "spool_bytes": metrics.spool_bytes.get(),
        "events_acked": metrics.events_acked.get(),
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default()
}

pub async fn run(
    id: String,
    spool: Arc<Spool>,
    cfg: CollectorTarget,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let Ok(client) = reqwest::Client::builder()
        .timeout(cfg.report_interval.max(Duration::from_secs(1)))
        .build()
    else {
        return;
    };
    let url = format!("{}/api/v1/agents/report", cfg.url.trim_end_matches('/'));
    loop {
        let report = body(&id, &spool, &metrics, cfg.report_interval);
        match client
            .post(&url)
            .bearer_auth(&cfg.token)
            .json(&report)
            .send()
            .await
        {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => {
                tracing::warn!(status = %r.status(), "the collector refused this agent's report")
            }
            Err(e) => tracing::debug!(error = %e, "report not sent"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(cfg.report_interval) => {}
        }
    }
}
