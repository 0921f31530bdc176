//! Agents watched: each agent reports every so often (`POST /api/v1/agents/report`, with
//! its version, host and spool backlog); `GET /api/v1/agents` lists every configured agent
//! with what it last said.
//!
//! # Invariants
//! - An agent's liveness is a heartbeat (slug `agent.{id}`, period its `silent_after`, no
//!   grace) that its reports ping: an agent silent longer than its limit goes down and
//!   opens an incident naming it, resolved when it reports again, exactly as a silent job's.
//!   One mechanism, one set of tests for lateness, incidents and collectors sharing a database.
//! - A report names the agent of its token; it cannot speak for another.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::heartbeat::Heartbeats;
use super::ping::{Kind, Outcome, Ping, Pinger, Target};
use crate::incidents::store::time;
use crate::reference::Bad;
use crate::reference::directory::RefError;

/// What an agent reports (`vigil_agent::report::body`). Fields an agent adds later are
/// ignored, so a newer agent still reports to an older collector.
#[derive(Debug, Clone, Deserialize)]
pub struct Report {
    pub agent: String,
    pub version: String,
    #[serde(default)]
    pub host: String,
    pub interval_seconds: f64,
    #[serde(default)]
    pub spool_batches: u64,
    #[serde(default)]
    pub spool_bytes: i64,
    #[serde(default)]
    pub events_acked: u64,
}

/// An agent as `GET /api/v1/agents` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Agent {
    pub id: String,
    /// `up`, `silent` (no report within `silent_after`: an incident is open) or `never_seen`.
    pub status: String,
    pub silent_after_seconds: u64,
    pub version: Option<String>,
    pub host: Option<String>,
    pub first_seen: Option<DateTime<Utc>>,
    pub last_seen: Option<DateTime<Utc>>,
    pub report_interval_seconds: Option<f64>,
    /// Batches and bytes waiting in its spool (what it could not deliver yet).
    pub spool_batches: Option<i64>,
    pub spool_bytes: Option<i64>,
    /// Events the collector acknowledged to it, in all, and per second between its last
    /// two reports.
    pub events_acked: Option<i64>,
    pub events_per_second: Option<f64>,
}

/// The slug of agent `id`'s liveness heartbeat.
pub fn slug(id: &str) -> String {
    format!("agent.{id}")
}

fn bad(field: &str, message: &str) -> RefError {
    RefError::Invalid(Bad {
        field: field.into(),
        message: message.into(),
    })
}

/// Records agent `id`'s report and pings its liveness heartbeat (made on its first report,
/// its period kept at `silent_after`).
pub async fn report(
    hb: &Heartbeats,
    pinger: &Pinger,
    id: &str,
    silent_after: Duration,
    r: &Report,
) -> Result<(), RefError> {
    if r.agent != id {
        return Err(RefError::Conflict(format!(
            "the report names agent {:?}, the token is agent {id:?}'s",
            r.agent
        )));
    }
    if r.version.is_empty() || r.version.len() > 64 {
        return Err(bad("version", "1 to 64 characters"));
    }
    if r.host.len() > 255 {
        return Err(bad("host", "at most 255 characters"));
    }
    if !r.interval_seconds.is_finite() || r.interval_seconds < 0.0 {
        return Err(bad("interval_seconds", "a number of seconds"));
    }
    let now = hb.now().timestamp_millis();
    let mut tx = super::heartbeat::begin_write(&hb.pool).await?;
    let before = sqlx::query("SELECT last_seen, events_acked FROM agents WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    let acked = i64::try_from(r.events_acked).unwrap_or(i64::MAX);
    let rate = match before {
        Some(b) => {
            let (seen, was): (i64, i64) = (b.try_get("last_seen")?, b.try_get("events_acked")?);
            if now > seen && acked >= was {
                (acked - was) as f64 * 1000.0 / (now - seen) as f64
            } else {
                0.0
            }
        }
        None => 0.0,
    };
    sqlx::query(
        "INSERT INTO agents (id, version, host, first_seen, last_seen, interval_ms,
             spool_batches, spool_bytes, events_acked, events_per_second)
         VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (id) DO UPDATE SET version = excluded.version, host = excluded.host,
             last_seen = excluded.last_seen, interval_ms = excluded.interval_ms,
             spool_batches = excluded.spool_batches, spool_bytes = excluded.spool_bytes,
             events_acked = excluded.events_acked,
             events_per_second = excluded.events_per_second",
    )
    .bind(id)
    .bind(&r.version)
    .bind(&r.host)
    .bind(now)
    .bind((r.interval_seconds * 1000.0) as i64)
    .bind(i64::try_from(r.spool_batches).unwrap_or(i64::MAX))
    .bind(r.spool_bytes)
    .bind(acked)
    .bind(rate)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO heartbeats (uuid, slug, name, period_ms, tz, grace_ms, severity, danger,
             created_by, created_at, status, pings)
         VALUES ($1, $2, $3, $4, 'UTC', 0, 'high', 0, 'vigil', $5, 'new', 0)
         ON CONFLICT (slug) DO UPDATE SET period_ms = excluded.period_ms, grace_ms = 0",
    )
    .bind(uuid::Uuid::new_v4().to_string())
    .bind(slug(id))
    .bind(format!("agent {id}"))
    .bind(silent_after.as_millis() as i64)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let ping = Ping {
        target: Target::Slug {
            slug: slug(id),
            create: false,
        },
        kind: Kind::Success,
        rid: None,
        user_agent: Some(format!("vigil-agent/{}", r.version)),
        body: String::new(),
    };
    match pinger.ping(ping).await {
        Ok(Outcome::NotFound) => Err(RefError::NotFound(format!(
            "agent {id}'s heartbeat was deleted meanwhile; the next report makes it again"
        ))),
        Ok(_) => Ok(()),
        Err(e) => Err(RefError::Db(sqlx::Error::Protocol(e))),
    }
}

/// Every configured agent (`(id, silent_after)`), with what it last reported.
pub async fn list(
    hb: &Heartbeats,
    configured: &[(String, Duration)],
) -> Result<Vec<Agent>, RefError> {
    let rows = sqlx::query(
        "SELECT a.id, a.version, a.host, a.first_seen, a.last_seen, a.interval_ms,
             a.spool_batches, a.spool_bytes, a.events_acked, a.events_per_second, h.status
         FROM agents a LEFT JOIN heartbeats h ON h.slug = 'agent.' || a.id",
    )
    .fetch_all(&hb.pool)
    .await?;
    let mut seen = std::collections::HashMap::new();
    for r in rows {
        let id: String = r.try_get("id")?;
        seen.insert(id, r);
    }
    let mut out = Vec::with_capacity(configured.len());
    for (id, silent_after) in configured {
        let mut a = Agent {
            id: id.clone(),
            status: "never_seen".into(),
            silent_after_seconds: silent_after.as_secs(),
            version: None,
            host: None,
            first_seen: None,
            last_seen: None,
            report_interval_seconds: None,
            spool_batches: None,
            spool_bytes: None,
            events_acked: None,
            events_per_second: None,
        };
        if let Some(r) = seen.get(id) {
            let status: Option<String> = r.try_get("status")?;
            a.status = match status.as_deref() {
                Some("down") => "silent",
                Some("up") => "up",
                _ => "never_seen",
            }
            .into();
            a.version = Some(r.try_get("version")?);
            a.host = Some(r.try_get("host")?);
            a.first_seen = Some(time(r.try_get("first_seen")?));
            a.last_seen = Some(time(r.try_get("last_seen")?));
            a.report_interval_seconds = Some(r.try_get::<i64, _>("interval_ms")? as f64 / 1000.0);
            a.spool_batches = Some(r.try_get("spool_batches")?);
            a.spool_bytes = Some(r.try_get("spool_bytes")?);
            a.events_acked = Some(r.try_get("events_acked")?);
            a.events_per_second = Some(r.try_get("events_per_second")?);
        }
        out.push(a);
    }
    Ok(out)
}
