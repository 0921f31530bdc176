//! Watched CAP feeds: the alerts that public alerting platforms publish, read into events
//! (`event.kind: cap`) so the desk finds them beside its own, and a rule can raise an incident
//! on them. A `cap` check with `watch = true` is fetched by the collector every interval (the
//! agents still probe it as vantage points).
//!
//! # Invariants
//! - Each alert becomes one event: its key (`sender,identifier,sent`) is recorded as seen once
//!   the event is durable in the index, so a crash between the two indexes it again rather
//!   than never (the only case of a second copy).
//! - `Test`, `Exercise` and `Draft` alerts are events like any other but never evaluated by
//!   the rules (`detect::is_drill`), so they never raise an incident.
//! - An `Update` or a `Cancel` amends the alerts it references: their state becomes
//!   `updated` or `cancelled` with the amending message's key (`GET /api/v1/cap/watched`);
//!   the index keeps every message as received.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::{AnyPool, Row};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vigil_schema::cap::CapAlert;
use vigil_schema::check::CheckType;
use vigil_schema::{Event, EventKind, fields as f};

use super::check::Check;
use crate::index::writer::{Msg, write_own};

/// The largest feed read.
pub const MAX_FEED_BYTES: usize = 4 << 20;

/// Why a feed was not read.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("{0}")]
    Fetch(String),
    #[error("{0}")]
    Cap(#[from] vigil_schema::cap::CapError),
    #[error("incident database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("the index did not take the alerts: {0}")]
    Index(String),
}

/// The event of one alert read from `check`'s feed.
pub fn event(a: &CapAlert, check: &Check) -> Event {
    let at = chrono::DateTime::parse_from_rfc3339(&a.sent)
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(|_| chrono::Utc::now());
    let mut ev = Event::new(EventKind::Cap, at);
    ev.set_str(f::EVENT_DATASET, "vigil.cap");
    ev.set_str(f::MONITOR_ID, check.id.clone());
    ev.set_str(f::URL_FULL, check.target.clone());
    if let Some(c) = &check.customer {
        ev.set_str(f::CUSTOMER, c.clone());
    }
    for (field, value) in [
        (f::CAP_IDENTIFIER, Some(&a.identifier)),
        (f::CAP_SENDER, Some(&a.sender)),
        (f::CAP_SENT, Some(&a.sent)),
        (f::CAP_STATUS, Some(&a.status)),
        (f::CAP_MSG_TYPE, Some(&a.msg_type)),
        (f::CAP_SCOPE, Some(&a.scope).filter(|s| !s.is_empty())),
        (f::CAP_EVENT, a.event.as_ref()),
        (f::CAP_CATEGORY, a.category.as_ref()),
        (f::CAP_URGENCY, a.urgency.as_ref()),
        (f::CAP_SEVERITY, a.severity.as_ref()),
        (f::CAP_CERTAINTY, a.certainty.as_ref()),
        (f::CAP_HEADLINE, a.headline.as_ref()),
        (f::CAP_AREA, a.area.as_ref()),
    ] {
        if let Some(v) = value {
            ev.set_str(field, v.clone());
        }
    }
    if !a.references.is_empty() {
        ev.set(
            f::CAP_REFERENCES,
            serde_json::Value::from(a.references.clone()),
        );
    }
    let what = a
        .headline
        .as_ref()
        .or(a.event.as_ref())
        .unwrap_or(&a.identifier);
    ev.set_str(
        f::MESSAGE,
        format!("CAP {} {} from {}: {what}", a.status, a.msg_type, a.sender),
    );
    ev
}

/// Reads `alerts` (from `check`'s feed): those not seen before become events, durable in the
/// index through `ingest` before they are recorded as seen. Returns how many were new.
pub async fn absorb(
    pool: &AnyPool,
    ingest: &mpsc::Sender<Msg>,
    check: &Check,
    alerts: &[CapAlert],
    now_ms: i64,
) -> Result<usize, WatchError> {
    if alerts.is_empty() {
        return Ok(0);
    }
    // Seen before: one read for the whole feed.
    let mut seen = std::collections::HashSet::new();
    for keys in alerts.chunks(500) {
        let marks: Vec<String> = (1..=keys.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT key FROM cap_watched WHERE key IN ({})",
            marks.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in keys {
            q = q.bind(a.key());
        }
        for row in q.fetch_all(pool).await? {
            seen.insert(row.try_get::<String, _>(0)?);
        }
    }
    let mut fresh: Vec<&CapAlert> = Vec::new();
    for a in alerts {
        if !seen.contains(&a.key()) && !fresh.iter().any(|f| f.key() == a.key()) {
            fresh.push(a);
        }
    }
    if fresh.is_empty() {
        return Ok(0);
    }
    // Durable in the index first: a crash before the record below indexes them again
    // rather than never.
    let events = fresh.iter().map(|a| event(a, check)).collect();
    write_own(ingest, events)
        .await
        .map_err(|e| WatchError::Index(e.to_string()))?;
    let mut tx = super::heartbeat::begin_write(pool).await?;
    for a in &fresh {
        sqlx::query(
            "INSERT INTO cap_watched (key, check_id, identifier, sender, sent, status, msg_type, \
             event, severity, headline, area, state, amended_by, seen_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'active', NULL, $12) \
             ON CONFLICT (key) DO NOTHING",
        )
        .bind(a.key())
        .bind(&check.id)
        .bind(&a.identifier)
        .bind(&a.sender)
        .bind(&a.sent)
        .bind(&a.status)
        .bind(&a.msg_type)
        .bind(a.event.clone())
        .bind(a.severity.clone())
        .bind(a.headline.clone())
        .bind(a.area.clone())
        .bind(now_ms)
        .execute(&mut *tx)
        .await?;
    }
    for a in &fresh {
        let state = match a.msg_type.as_str() {
            "Update" => "updated",
            "Cancel" => "cancelled",
            _ => continue,
        };
        for r in &a.references {
            sqlx::query("UPDATE cap_watched SET state = $1, amended_by = $2 WHERE key = $3")
                .bind(state)
                .bind(a.key())
                .bind(r)
                .execute(&mut *tx)
                .await?;
        }
    }
    tx.commit().await?;
    Ok(fresh.len())
}

/// Fetches and reads `check`'s feed.
pub async fn fetch(client: &reqwest::Client, check: &Check) -> Result<Vec<CapAlert>, WatchError> {
    let fail = |e: &dyn std::fmt::Display| WatchError::Fetch(format!("{}: {e}", check.target));
    let mut resp = client
        .get(&check.target)
        .send()
        .await
        .map_err(|e| fail(&e))?;
    if !resp.status().is_success() {
        return Err(fail(&format!("status {}", resp.status())));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| fail(&e))? {
        if body.len() + chunk.len() > MAX_FEED_BYTES {
            return Err(fail(&format!("larger than {MAX_FEED_BYTES} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    let xml = String::from_utf8(body).map_err(|e| fail(&e))?;
    Ok(
        tokio::task::spawn_blocking(move || vigil_schema::cap::read(&xml))
            .await
            .map_err(|e| fail(&e))??,
    )
}

/// The last read of a watched feed, as `GET /api/v1/cap/watched` shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct FeedStatus {
    pub check: String,
    pub url: String,
    pub at: chrono::DateTime<chrono::Utc>,
    /// Alerts in the feed at that read, and how many were new.
    pub alerts: usize,
    pub new: usize,
    /// Why it was not read (the feed unreachable, not CAP, an invalid alert named).
    pub error: Option<String>,
}

/// The last read of each watched feed, by check.
pub type Feeds = Arc<std::sync::Mutex<std::collections::BTreeMap<String, FeedStatus>>>;

/// One watched alert as `GET /api/v1/cap/watched` lists it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Watched {
    pub key: String,
    pub check: String,
    pub identifier: String,
    pub sender: String,
    pub sent: String,
    pub status: String,
    pub msg_type: String,
    pub event: Option<String>,
    pub severity: Option<String>,
    pub headline: Option<String>,
    pub area: Option<String>,
    /// `active`, `updated` or `cancelled`.
    pub state: String,
    pub amended_by: Option<String>,
}

/// The alerts read, newest first (at most `limit`).
pub async fn list(pool: &AnyPool, limit: i64) -> Result<Vec<Watched>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT key, check_id, identifier, sender, sent, status, msg_type, event, severity, \
         headline, area, state, amended_by FROM cap_watched ORDER BY seen_at DESC, key LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Watched {
                key: r.try_get(0)?,
                check: r.try_get(1)?,
                identifier: r.try_get(2)?,
                sender: r.try_get(3)?,
                sent: r.try_get(4)?,
                status: r.try_get(5)?,
                msg_type: r.try_get(6)?,
                event: r.try_get(7)?,
                severity: r.try_get(8)?,
                headline: r.try_get(9)?,
                area: r.try_get(10)?,
                state: r.try_get(11)?,
                amended_by: r.try_get(12)?,
            })
        })
        .collect()
}

/// Fetches every watched feed when its interval has passed, until `shutdown`.
pub async fn run(
    checks: crate::reference::directory::Shared<super::check::Checks>,
    pool: AnyPool,
    ingest: mpsc::Sender<Msg>,
    metrics: Arc<crate::metrics::Metrics>,
    feeds: Feeds,
    shutdown: CancellationToken,
) {
    let client = match reqwest::Client::builder()
        .user_agent(concat!("vigil/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client: CAP feeds are not watched");
            return;
        }
    };
    let mut last: HashMap<String, Instant> = HashMap::new();
    loop {
        let list = checks.get();
        for (check, _) in list
            .list
            .iter()
            .filter(|(c, _)| c.watch && c.kind() == CheckType::Cap)
        {
            let due = last
                .get(&check.id)
                .is_none_or(|t| t.elapsed() >= check.interval());
            if !due {
                continue;
            }
            last.insert(check.id.clone(), Instant::now());
            let timeout = vigil_schema::config::parse_duration(&check.timeout)
                .unwrap_or(Duration::from_secs(5))
                .max(Duration::from_secs(1));
            let read = tokio::time::timeout(timeout * 2, fetch(&client, check))
                .await
                .unwrap_or_else(|_| Err(WatchError::Fetch(format!("{}: no answer", check.target))));
            let mut seen = 0;
            let outcome = match read {
                Ok(alerts) => {
                    seen = alerts.len();
                    let now = chrono::Utc::now().timestamp_millis();
                    absorb(&pool, &ingest, check, &alerts, now).await
                }
                Err(e) => Err(e),
            };
            if let Ok(mut f) = feeds.lock() {
                f.insert(
                    check.id.clone(),
                    FeedStatus {
                        check: check.id.clone(),
                        url: check.target.clone(),
                        at: chrono::Utc::now(),
                        alerts: seen,
                        new: *outcome.as_ref().unwrap_or(&0),
                        error: outcome.as_ref().err().map(|e| e.to_string()),
                    },
                );
            }
            let label = match &outcome {
                Ok(0) => "unchanged",
                Ok(_) => "new",
                Err(_) => "failed",
            };
            metrics
                .cap_feed_reads
                .get_or_create(&vec![("outcome", label.to_owned())])
                .inc();
            match outcome {
                Ok(n) if n > 0 => tracing::info!(check = %check.id, new = n, "CAP alerts read"),
                Ok(_) => {}
                Err(e) => tracing::warn!(check = %check.id, error = %e, "CAP feed not read"),
            }
        }
        last.retain(|id, _| list.get(id).is_some());
        if let Ok(mut f) = feeds.lock() {
            f.retain(|id, _| last.contains_key(id));
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
