//! Uptime: what tells the desk that a job, a service or a platform that must not stop has
//! stopped.
//!
//! - [`heartbeat`]: push checks. Jobs and services ping a URL (healthchecks.io's pinging API,
//!   so existing clients work by changing the base URL); a heartbeat whose pings stop, or that
//!   reports a failure, opens an incident, and the next success resolves it.
//! - [`agents`]: the agents' reports; an agent's liveness is a heartbeat its reports ping.
//! - [`check`]: uptime checks (HTTP, TCP, TLS, DNS, ICMP, CAP) the agents run, from the
//!   configuration or the API.
//! - [`capwatch`]: the alerts of watched CAP feeds, read into events.
//! - [`availability`]: the share of a window a check was up, from its transitions.
//! - [`quorum`]: a check's state from its vantage points' latest results; incidents.
//! - [`statuspage`]: operators' notices and customers' page tokens.
//! - [`deadman`]: Vigil's own heartbeat, pinged to a receiver outside.
//! - [`ping`]: the pings themselves: parsed from the URL, written in batches (one transaction
//!   for many pings, so thousands a second cost a few commits), answered once durable.

pub mod agents;
pub mod availability;
pub mod capwatch;
pub mod check;
pub mod deadman;
pub mod heartbeat;
pub mod ping;
pub mod quorum;
pub mod statuspage;

use serde::Deserialize;

/// `[heartbeats]` in the collector configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeartbeatsConfig {
    /// The key of slug URLs, `/ping/{ping_key}/{slug}` (healthchecks.io's project ping key);
    /// none: heartbeats are pinged by their uuid only. At least 16 characters.
    pub ping_key: Option<String>,
    /// A heartbeat URL outside (another Vigil's `/ping/{uuid}`, or any healthchecks.io-
    /// compatible service) this collector pings every `report_every`: a success while it is
    /// ready, `/fail` with the reason while it is not. None: no outside heartbeat.
    pub report_to: Option<String>,
    #[serde(deserialize_with = "vigil_schema::config::de_duration")]
    pub report_every: std::time::Duration,
}

impl Default for HeartbeatsConfig {
    fn default() -> Self {
        HeartbeatsConfig {
            ping_key: None,
            report_to: None,
            report_every: std::time::Duration::from_secs(60),
        }
    }
}

impl HeartbeatsConfig {
    /// The error to show for a bad `[heartbeats]`: (key, message).
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        match &self.ping_key {
            Some(k) if k.len() < 16 || !k.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) => Err((
                "heartbeats.ping_key",
                "must be at least 16 letters, digits, `-` or `_` (it is the secret of slug URLs)"
                    .into(),
            )),
            _ => Ok(()),
        }?;
        if let Some(url) = &self.report_to
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err((
                "heartbeats.report_to",
                format!("{url:?} is not an http:// or https:// URL"),
            ));
        }
        if self.report_every < std::time::Duration::from_secs(1) {
            return Err(("heartbeats.report_every", "must be at least 1s".into()));
        }
        Ok(())
    }
}

/// Ends an outage: resolves the active incidents of `rule` and `group`, each with
/// `outage_ended` (its start, its end, its length) on its timeline and a resolution that says
/// `what` happened ("heartbeat x pinged again") and after how long. How many it resolved.
pub(crate) async fn end_outage(
    store: &crate::incidents::Store,
    (rule, group): (&str, &str),
    since: i64,
    up_at: i64,
    what: &str,
) -> Result<usize, crate::incidents::StoreError> {
    use sqlx::Row;
    let ids = sqlx::query(
        "SELECT id FROM incidents WHERE rule_id = $1 AND group_key = $2
             AND status IN ('open', 'acknowledged')",
    )
    .bind(rule)
    .bind(group)
    .fetch_all(store.pool())
    .await?;
    let seconds = (up_at - since).max(0) / 1000;
    let time = crate::incidents::store::time;
    for r in &ids {
        let id: i64 = r.try_get("id")?;
        let detail = serde_json::json!({
            "down_since": time(since), "up_at": time(up_at), "duration_seconds": seconds,
        });
        store.note(id, "vigil", "outage_ended", &detail).await?;
        let resolution = format!("{what} after {} down", heartbeat::span(seconds));
        store
            .act(
                id,
                &crate::incidents::Action::Resolve {
                    resolution: Some(resolution),
                },
                "vigil",
            )
            .await?;
        tracing::info!(incident = id, group, seconds, "outage ended");
    }
    Ok(ids.len())
}
