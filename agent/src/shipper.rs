//! Sends spooled batches to the collector, several in flight at once, oldest first, and
//! deletes each one from the spool only when the collector acknowledged it.
//!
//! A failed send goes back to the spool's queue and pauses new sends for a backoff that
//! doubles up to `max_backoff` (with jitter), and resets on the next success. Batches the
//! collector refuses as invalid (400, 413, 415, 422) are set aside, not retried forever;
//! an auth failure (401/403) is retried, since fixing the token must not lose data, and so is
//! a wire version the collector does not read yet (an agent upgraded before its collector:
//! the batches wait in the spool for the collector's upgrade).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use reqwest::StatusCode;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::config::CollectorTarget;
use crate::metrics::Metrics;
use crate::spool::Spool;

pub const CONTENT_TYPE: &str = "application/x-vigil-batch";

enum Outcome {
    Acked { events: u64, duplicate: bool },
    Gone,
    Retry(&'static str),
    Rejected(String),
}

pub async fn run(
    spool: Arc<Spool>,
    cfg: CollectorTarget,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let client = reqwest::Client::builder()
        .timeout(cfg.timeout)
        .pool_max_idle_per_host(cfg.window)
        .build()?;
    let url = format!("{}/api/v1/ingest", cfg.url.trim_end_matches('/'));
    let mut in_flight: HashSet<u64> = HashSet::new();
    let mut tasks: JoinSet<(u64, Outcome)> = JoinSet::new();
    let mut backoff = Duration::ZERO;
    let mut paused_until: Option<Instant> = None;
    loop {
        if paused_until.is_some_and(|t| t <= Instant::now()) {
            paused_until = None;
        }
        while paused_until.is_none() && in_flight.len() < cfg.window {
            let Some(seq) = spool.oldest_except(&in_flight) else {
                break;
            };
            in_flight.insert(seq);
            metrics.batches_in_flight.set(in_flight.len() as i64);
            let (spool, client, url, token) = (
                spool.clone(),
                client.clone(),
                url.clone(),
                cfg.token.clone(),
            );
            let shipped = metrics.clone();
            tasks.spawn(async move {
                let start = Instant::now();
                let outcome = send(spool, &client, &url, &token, seq).await;
                if matches!(outcome, Outcome::Acked { .. }) {
                    shipped.ship_duration.observe(start.elapsed().as_secs_f64());
                }
                (seq, outcome)
            });
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            Some(joined) = tasks.join_next() => {
                let Ok((seq, outcome)) = joined else { continue };
                in_flight.remove(&seq);
                metrics.batches_in_flight.set(in_flight.len() as i64);
                match outcome {
                    Outcome::Acked { events, duplicate } => {
                        spool.remove(seq);
                        metrics.batches_acked.inc();
                        metrics.events_acked.inc_by(events);
                        if duplicate {
                            metrics.batches_duplicate.inc();
                        }
                        backoff = Duration::ZERO;
                    }
                    Outcome::Gone => {}
                    Outcome::Rejected(why) => {
                        tracing::error!(seq, reason = %why, "collector rejected batch as invalid; set aside in spool/rejected");
                        metrics.batches_rejected.inc();
                        spool.reject(seq);
                    }
                    Outcome::Retry(kind) => {
                        metrics.ship_error(kind);
                        backoff = (backoff * 2).clamp(Duration::from_millis(100), cfg.max_backoff);
                        let jitter = rand::rng().random_range(0..=backoff.as_millis() as u64 / 4);
                        let until = Instant::now() + backoff + Duration::from_millis(jitter);
                        paused_until = Some(paused_until.map_or(until, |p| p.max(until)));
                    }
                }
            }
            _ = spool.added(), if in_flight.len() < cfg.window => {}
            _ = sleep_until(paused_until.unwrap_or_else(Instant::now)), if paused_until.is_some() => {}
        }
    }
    // Whatever is still in flight stays in the spool and is sent again after restart; the
    // collector recognises a batch it already has by its id.
    tasks.abort_all();
    Ok(())
}

async fn send(
    spool: Arc<Spool>,
    client: &reqwest::Client,
    url: &str,
    token: &str,
    seq: u64,
) -> Outcome {
    let read = tokio::task::spawn_blocking(move || spool.read(seq)).await;
    let (events, frame) = match read {
        Ok(Ok(Some(x))) => x,
        Ok(Ok(None)) => return Outcome::Gone,
        Err(_) => return Outcome::Retry("spool_read"),
        Ok(Err(e)) => {
            tracing::error!(seq, error = %e, "cannot read spooled batch");
            return Outcome::Retry("spool_read");
        }
    };
    let resp = client
        .post(url)
        .bearer_auth(token)
        .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
        .body(frame)
        .send()
        .await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!(seq, error = %e, "collector unreachable");
            return Outcome::Retry("network");
        }
    };
    let status = resp.status();
    if status.is_success() {
        let duplicate = resp
            .json::<serde_json::Value>()
            .await
            .ok()
            .and_then(|v| {
                v.get("status")
                    .and_then(|s| s.as_str())
                    .map(|s| s == "duplicate")
            })
            .unwrap_or(false);
        return Outcome::Acked { events, duplicate };
    }
    let body = resp.text().await.unwrap_or_default();
    refused(seq, status, &body)
}

/// What to do with a batch the collector answered with an error `status` and `body`.
fn refused(seq: u64, status: StatusCode, body: &str) -> Outcome {
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            tracing::error!(seq, %status, body = %body, "collector refused this agent's token; will retry");
            Outcome::Retry("auth")
        }
        StatusCode::BAD_REQUEST if body.contains("unsupported_version") => {
            tracing::error!(seq, body = %body, "the collector does not read this agent's wire version: upgrade collectors before agents; batches stay in the spool");
            Outcome::Retry("collector_version")
        }
        StatusCode::BAD_REQUEST
        | StatusCode::PAYLOAD_TOO_LARGE
        | StatusCode::UNSUPPORTED_MEDIA_TYPE
        | StatusCode::UNPROCESSABLE_ENTITY => Outcome::Rejected(format!("{status}: {body}")),
        _ => {
            tracing::debug!(seq, %status, body = %body, "collector not ready");
            Outcome::Retry("server")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_invalid_batches_are_set_aside() {
        let old_collector = r#"{"error":{"code":"unsupported_version","message":"unsupported wire version 3 (this collector reads 1..=2)"}}"#;
        assert!(matches!(
            refused(1, StatusCode::BAD_REQUEST, old_collector),
            Outcome::Retry("collector_version")
        ));
        assert!(matches!(
            refused(
                1,
                StatusCode::BAD_REQUEST,
                r#"{"error":{"code":"bad_checksum"}}"#
            ),
            Outcome::Rejected(_)
        ));
        assert!(matches!(
            refused(1, StatusCode::FORBIDDEN, ""),
            Outcome::Retry("auth")
        ));
        assert!(matches!(
            refused(1, StatusCode::SERVICE_UNAVAILABLE, ""),
            Outcome::Retry("server")
        ));
    }
}
