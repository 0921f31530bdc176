//! Assets: the decree's base information (art. 3). Each has a unique id in the configured
//! format, belongs to a customer, and says what watches it. Every change is recorded with
//! who made it and when, and sent to the receiving party: POSTed as JSON to a webhook and/or
//! appended to a file as JSON lines, as soon as it is made or once a day.
//!
//! # Invariants
//! - A change is recorded in the transaction that makes it, and marked exported only once
//!   every configured target took it: a failed export is tried again, never lost.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row};

use super::{Bad, Customers};

/// `[assets]` in the collector configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AssetsConfig {
    /// A regular expression every asset id must match whole (`^[A-Z]{3}-[0-9]{4}$`).
    pub id_format: String,
    /// Where changes go.
    pub export: Option<ExportConfig>,
    /// Assets defined here are read-only through the API.
    pub list: Vec<Asset>,
}

impl Default for AssetsConfig {
    fn default() -> Self {
        AssetsConfig {
            id_format: r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}".into(),
            export: None,
            list: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportConfig {
    /// Receives `POST {"changes": [...]}`.
    #[serde(default)]
    pub webhook: Option<String>,
    /// Gets one JSON line per change appended.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// `HH:MM` (UTC): send once a day at this time instead of as changes are made.
    #[serde(default)]
    pub daily_at: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WatchedBy {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub agents: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prefixes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Asset {
    pub id: String,
    pub customer: String,
    /// `router`, `firewall`, `web`, `dns`, ...
    pub kind: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub watched_by: WatchedBy,
}

/// The configured id format, anchored.
#[derive(Debug, Clone)]
pub struct AssetFormat {
    pub pattern: String,
    regex: Regex,
}

impl AssetFormat {
    pub fn new(pattern: &str) -> Result<AssetFormat, String> {
        let anchored = format!(
            "^(?:{})$",
            pattern.trim_start_matches('^').trim_end_matches('$')
        );
        Ok(AssetFormat {
            pattern: pattern.to_owned(),
            regex: Regex::new(&anchored).map_err(|e| format!("{pattern:?}: {e}"))?,
        })
    }

    pub fn matches(&self, id: &str) -> bool {
        self.regex.is_match(id)
    }
}

impl Asset {
    /// Checks every field against the id format and the customers in force.
    pub fn check(&self, format: &AssetFormat, customers: &Customers) -> Result<(), Bad> {
        let bad = |field: &str, message: String| Bad {
            field: field.into(),
            message,
        };
        // An incident keeps its assets comma-separated, and routes match them one by one.
        if self.id.contains(',') {
            return Err(bad(
                "id",
                format!("{:?}: an asset id has no comma", self.id),
            ));
        }
        if !format.matches(&self.id) {
            return Err(bad(
                "id",
                format!(
                    "{:?} does not match the asset id format {:?}",
                    self.id, format.pattern
                ),
            ));
        }
        if customers.get(&self.customer).is_none() {
            return Err(bad("customer", format!("no customer {:?}", self.customer)));
        }
        if self.kind.trim().is_empty() || self.kind.len() > 64 {
            return Err(bad("kind", "1 to 64 characters".into()));
        }
        if self.description.len() > 4096 {
            return Err(bad("description", "at most 4096 characters".into()));
        }
        for (i, p) in self.watched_by.prefixes.iter().enumerate() {
            vigil_schema::prefix::Prefix::parse(p)
                .map_err(|e| bad(&format!("watched_by.prefixes[{i}]"), e))?;
        }
        Ok(())
    }
}

/// The assets in force, by id, with their prefixes parsed once (every alert recorded looks
/// for the assets watching it).
#[derive(Debug, Clone, Default)]
pub struct Assets {
    by_id: BTreeMap<String, Asset>,
    prefixes: Vec<(vigil_schema::prefix::Prefix, String)>,
}

impl Assets {
    pub fn new(list: Vec<Asset>) -> Result<Assets, String> {
        let mut by_id = BTreeMap::new();
        let mut prefixes = Vec::new();
        for a in list {
            let id = a.id.clone();
            for p in &a.watched_by.prefixes {
                let p = vigil_schema::prefix::Prefix::parse(p)
                    .map_err(|e| format!("asset {id:?}: watched_by.prefixes: {e}"))?;
                prefixes.push((p, id.clone()));
            }
            if by_id.insert(id.clone(), a).is_some() {
                return Err(format!("asset {id:?} is defined twice"));
            }
        }
        Ok(Assets { by_id, prefixes })
    }

    pub fn get(&self, id: &str) -> Option<&Asset> {
        self.by_id.get(id)
    }

    pub fn all(&self) -> impl Iterator<Item = &Asset> {
        self.by_id.values()
    }

    /// The ids of the assets watching anything `seen` names (its agent, its check, one of
    /// its addresses within a prefix), sorted.
    pub fn watching(&self, seen: &crate::incidents::Seen) -> Vec<String> {
        let mut ids: Vec<String> = self
            .by_id
            .values()
            .filter(|a| {
                let w = &a.watched_by;
                seen.agent.as_ref().is_some_and(|g| w.agents.contains(g))
                    || seen.check.as_ref().is_some_and(|c| w.checks.contains(c))
            })
            .map(|a| a.id.clone())
            .chain(
                self.prefixes
                    .iter()
                    .filter(|(p, _)| seen.ips.iter().any(|ip| p.contains(*ip)))
                    .map(|(_, id)| id.clone()),
            )
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

/// One recorded change of an asset.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AssetChange {
    pub id: i64,
    pub asset: String,
    /// `created`, `updated` or `deleted`.
    pub action: String,
    pub actor: String,
    pub at: DateTime<Utc>,
    /// The asset after the change (none for a deletion).
    pub asset_after: Option<serde_json::Value>,
}

impl AssetChange {
    /// Records a change in `tx` (the transaction that makes it).
    pub async fn record(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        asset: &str,
        action: &str,
        actor: &str,
        at: DateTime<Utc>,
        body: Option<&str>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO asset_changes (asset_id, action, actor, at, body)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(asset)
        .bind(action)
        .bind(actor)
        .bind(at.timestamp_millis())
        .bind(body)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    fn from_row(r: &sqlx::any::AnyRow) -> Result<AssetChange, sqlx::Error> {
        let body: Option<String> = r.try_get("body")?;
        Ok(AssetChange {
            id: r.try_get("id")?,
            asset: r.try_get("asset_id")?,
            action: r.try_get("action")?,
            actor: r.try_get("actor")?,
            at: DateTime::from_timestamp_millis(r.try_get("at")?).unwrap_or_default(),
            asset_after: body.and_then(|b| serde_json::from_str(&b).ok()),
        })
    }
}

/// The changes of asset `id` (all assets when `None`), newest first, at most `limit`.
pub async fn changes(
    pool: &AnyPool,
    id: Option<&str>,
    limit: i64,
) -> Result<Vec<AssetChange>, sqlx::Error> {
    let rows = match id {
        Some(id) => {
            sqlx::query(
                "SELECT id, asset_id, action, actor, at, body FROM asset_changes
                 WHERE asset_id = $1 ORDER BY id DESC LIMIT $2",
            )
            .bind(id)
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
        None => {
            sqlx::query(
                "SELECT id, asset_id, action, actor, at, body FROM asset_changes
                 ORDER BY id DESC LIMIT $1",
            )
            .bind(limit)
            .fetch_all(pool)
            .await?
        }
    };
    rows.iter().map(AssetChange::from_row).collect()
}

/// Most changes sent at once.
const EXPORT_BATCH: i64 = 1000;

/// Sends the changes not exported yet to every configured target, then marks them; how
/// many were sent. A target that fails leaves them for the next try.
pub async fn export(
    pool: &AnyPool,
    cfg: &ExportConfig,
    http: &reqwest::Client,
    now: DateTime<Utc>,
) -> Result<usize, String> {
    let rows = sqlx::query(
        "SELECT id, asset_id, action, actor, at, body FROM asset_changes
         WHERE exported_at IS NULL ORDER BY id LIMIT $1",
    )
    .bind(EXPORT_BATCH)
    .fetch_all(pool)
    .await
    .map_err(|e| e.to_string())?;
    let list = rows
        .iter()
        .map(AssetChange::from_row)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let Some(last) = list.last().map(|c| c.id) else {
        return Ok(0);
    };
    if let Some(url) = &cfg.webhook {
        let resp = http
            .post(url)
            .header(
                "Idempotency-Key",
                format!("vigil-assets-{}-{last}", list[0].id),
            )
            .json(&serde_json::json!({ "changes": list }))
            .send()
            .await
            .map_err(|e| format!("asset export to {url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("asset export to {url} answered {}", resp.status()));
        }
    }
    if let Some(path) = &cfg.file {
        use std::io::Write;
        let mut text = String::new();
        for c in &list {
            text.push_str(&serde_json::to_string(c).map_err(|e| e.to_string())?);
            text.push('\n');
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| format!("asset export to {}: {e}", path.display()))?;
        f.write_all(text.as_bytes())
            .and_then(|()| f.sync_data())
            .map_err(|e| format!("asset export to {}: {e}", path.display()))?;
    }
    sqlx::query("UPDATE asset_changes SET exported_at = $1 WHERE exported_at IS NULL AND id <= $2")
        .bind(now.timestamp_millis())
        .bind(last)
        .execute(pool)
        .await
        .map_err(|e| e.to_string())?;
    Ok(list.len())
}

/// Whether an export is due at `now` for `daily_at` (`None`: as changes come), given the
/// last run.
pub fn due(daily_at: Option<NaiveTime>, last: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    let Some(at) = daily_at else {
        return true;
    };
    let today = now.date_naive().and_time(at).and_utc();
    let slot = if now >= today {
        today
    } else {
        today - chrono::Duration::days(1)
    };
    last.is_none_or(|l| l < slot)
}

/// Exports changes until `shutdown`: every few seconds, or once a day at `daily_at`.
pub async fn run(pool: AnyPool, cfg: ExportConfig, shutdown: tokio_util::sync::CancellationToken) {
    let daily = cfg
        .daily_at
        .as_deref()
        .and_then(|t| NaiveTime::parse_from_str(t, "%H:%M").ok());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default();
    let mut last = None;
    loop {
        let now = Utc::now();
        if due(daily, last, now) {
            match export(&pool, &cfg, &http, now).await {
                Ok(n) => {
                    if n > 0 {
                        tracing::info!(changes = n, "asset changes exported");
                    }
                    last = Some(now);
                }
                Err(e) => tracing::error!(error = %e, "asset changes not exported; retrying"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daily_export_is_due_once_per_day_after_its_time() {
        let t = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("t")
                .with_timezone(&Utc)
        };
        let at = NaiveTime::from_hms_opt(6, 0, 0);
        assert!(due(
            None,
            Some(t("2026-12-02T10:00:00Z")),
            t("2026-12-02T10:00:01Z")
        ));
        assert!(due(at, None, t("2026-12-02T05:00:00Z")));
        assert!(!due(
            at,
            Some(t("2026-12-02T05:00:00Z")),
            t("2026-12-02T05:59:59Z")
        ));
        assert!(due(
            at,
            Some(t("2026-12-02T05:00:00Z")),
            t("2026-12-02T06:00:00Z")
        ));
        assert!(!due(
            at,
            Some(t("2026-12-02T06:00:01Z")),
            t("2026-12-03T05:59:00Z")
        ));
        assert!(due(
            at,
            Some(t("2026-12-02T06:00:01Z")),
            t("2026-12-03T06:00:00Z")
        ));
    }

    #[test]
    fn ids_must_match_the_whole_format() {
        let f = AssetFormat::new("^[A-Z]{3}-[0-9]{4}$").expect("format");
        assert!(f.matches("ULB-0001"));
        assert!(!f.matches("ULB-0001x") && !f.matches("xULB-0001") && !f.matches("ulb-0001"));
        assert!(AssetFormat::new("[").is_err());
    }
}
