//! Uptime: what tells the desk that a job, a service or a platform that must not stop has
//! stopped.
//!
//! - [`heartbeat`]: push checks. Jobs and services ping a URL (healthchecks.io's pinging API,
//!   so existing clients work by changing the base URL); a heartbeat whose pings stop, or that
//!   reports a failure, opens an incident, and the next success resolves it.
//! - [`agents`]: the agents' reports; an agent's liveness is a heartbeat its reports ping.
//! - [`ping`]: the pings themselves: parsed from the URL, written in batches (one transaction
//!   for many pings, so thousands a second cost a few commits), answered once durable.

pub mod agents;
pub mod heartbeat;
pub mod ping;

use serde::Deserialize;

/// `[heartbeats]` in the collector configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeartbeatsConfig {
    /// The key of slug URLs, `/ping/{ping_key}/{slug}` (healthchecks.io's project ping key);
    /// none: heartbeats are pinged by their uuid only. At least 16 characters.
    pub ping_key: Option<String>,
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
        }
    }
}
