//! What the desk does besides working the queue: incidents taken by hand (a problem phoned
//! in), merged (one problem seen twice) and split (two problems in one incident), and the
//! shift log (hand-over notes between shifts).
//!
//! # Invariants
//! - An alert belongs to exactly one incident: merging and splitting move its
//!   `incident_alerts` row, and the counts move with the rows.
//! - A merged incident is resolved and names the one that carries on (`merged_into`); both
//!   timelines say so. Nobody is told it was resolved: the problem goes on in the other.
//! - An incident taken by hand or split off has a key of its own, so later alerts of a rule
//!   keep going to the incident that kept the rule's key.
//! - Customers, assets or danger an incident gains by a merge are an essential change,
//!   announced at once, as when an alert brings them.

use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Row};

use super::lifecycle::{ActionError, MAX_TEXT};
use super::store::{
    COLUMNS, List, ROWS_PER_STATEMENT, Store, StoreError, add_to_list, incident, sorted_list,
    tighter, time, timeline,
};
use super::{AlertRef, Incident, SEVERITIES, severity_rank};
use crate::notify::plan::Kind;

/// Most alerts listed on one incident (newest first); its count says how many it has.
pub const MAX_ALERTS_SHOWN: usize = 200;
/// Most incidents merged, or alerts split off, in one request.
pub const MAX_MOVED: usize = 1000;
/// Longest title, category and ticket reference.
const MAX_TITLE: usize = 512;
const MAX_LABEL: usize = 128;

/// An incident the desk takes by hand (`POST /api/v1/incidents`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manual {
    pub title: String,
    pub customer: Option<String>,
    #[serde(default)]
    pub assets: Vec<String>,
    /// What kind of problem: `outage`, `security`, ... (free, short).
    pub category: Option<String>,
    #[serde(default = "medium")]
    pub severity: String,
    /// The desk's judgement that it is a probable danger: the phone first.
    #[serde(default)]
    pub danger: bool,
    /// The caller's or another desk's ticket reference.
    pub ticket: Option<String>,
    /// What the caller said.
    pub description: Option<String>,
}

fn medium() -> String {
    "medium".into()
}

fn invalid(m: String) -> StoreError {
    StoreError::Action(ActionError::Invalid(m))
}

/// `v` trimmed, or an error naming `field` when empty or longer than `max`.
fn bounded(field: &str, v: &str, max: usize) -> Result<String, StoreError> {
    let v = v.trim();
    if v.is_empty() {
        return Err(invalid(format!("{field} must not be empty")));
    }
    if v.len() > max {
        return Err(invalid(format!("{field} is longer than {max} bytes")));
    }
    Ok(v.to_owned())
}

fn optional(field: &str, v: &Option<String>, max: usize) -> Result<Option<String>, StoreError> {
    match v.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(v) => bounded(field, v, max).map(Some),
    }
}

impl Manual {
    /// The request with its texts trimmed and bounded, or what is wrong with it.
    pub fn checked(&self) -> Result<Manual, StoreError> {
        if !SEVERITIES.contains(&self.severity.as_str()) {
            return Err(invalid(format!(
                "severity {:?} is not one of {}",
                self.severity,
                SEVERITIES.join(", ")
            )));
        }
        let assets = self
            .assets
            .iter()
            .map(|a| bounded("asset", a, MAX_LABEL))
            .collect::<Result<Vec<_>, _>>()?;
        if assets.len() > MAX_MOVED {
            return Err(invalid(format!("at most {MAX_MOVED} assets")));
        }
        Ok(Manual {
            title: bounded("title", &self.title, MAX_TITLE)?,
            customer: optional("customer", &self.customer, MAX_LABEL)?,
            assets,
            category: optional("category", &self.category, MAX_LABEL)?,
            severity: self.severity.clone(),
            danger: self.danger,
            ticket: optional("ticket", &self.ticket, MAX_LABEL)?,
            description: optional("description", &self.description, MAX_TEXT)?,
        })
    }
}

/// A hand-over note.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShiftNote {
    pub id: i64,
    pub at: chrono::DateTime<chrono::Utc>,
    pub author: String,
    pub text: String,
}

/// `count` placeholders from `$first`.
fn marks(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    /// Incident `id`'s alerts, newest first, at most [`MAX_ALERTS_SHOWN`].
    pub async fn alerts_of(&self, id: i64) -> Result<Vec<AlertRef>, StoreError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT alert_id, at FROM incident_alerts WHERE incident_id = $1
             ORDER BY at DESC, alert_id LIMIT {MAX_ALERTS_SHOWN}"
        )))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AlertRef {
                    id: r.try_get("alert_id")?,
                    at: time(r.try_get("at")?),
                })
            })
            .collect()
    }

    /// Opens an incident taken by hand (`m` checked by [`Manual::checked`]), announced like
    /// a detected one.
    pub async fn open_manual(&self, m: &Manual, actor: &str) -> Result<Incident, StoreError> {
        let m = m.checked()?;
        let now = self.now();
        let due = self
            .deadlines
            .get()
            .due(&m.severity, m.customer.as_deref(), now);
        let key = format!("manual\u{1f}{}", uuid::Uuid::now_v7().simple());
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO incidents (dedup_key, rule_id, title, status, severity, danger,
                 customer, group_key, count, first_seen, last_seen, updated_at, ack_by,
                 resolve_by, affected, assets, tags, category, ticket)
             VALUES ($1, 'manual', $2, 'open', $3, $4, $5, 'manual', 0, $6, $6, $6, $7, $8,
                 '', $9, '', $10, $11)
             RETURNING id",
        )
        .bind(key)
        .bind(&m.title)
        .bind(&m.severity)
        .bind(i64::from(m.danger))
        .bind(m.customer.clone())
        .bind(now)
        .bind(due.acknowledge)
        .bind(due.resolve)
        .bind(sorted_list(&m.assets, None).join(","))
        .bind(m.category.clone())
        .bind(m.ticket.clone())
        .fetch_one(&mut *tx)
        .await?;
        let detail = serde_json::json!({
            "manual": true, "severity": m.severity, "danger": m.danger,
            "category": m.category, "ticket": m.ticket, "message": m.description,
            "assets": m.assets,
        });
        let cause = timeline(&mut tx, id, now, actor, "opened", &detail).await?;
        let announced = self.announce(&mut tx, id, cause, Kind::Opened, now).await?;
        tx.commit().await?;
        if announced {
            self.wake.notify_one();
        }
        self.get(id).await
    }

    /// The incident `id` as it is in `tx`, locked for the change (written before read).
    async fn lock(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: i64,
        now: i64,
    ) -> Result<(Incident, sqlx::any::AnyRow), StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE incidents SET updated_at = $1 WHERE id = $2 RETURNING {COLUMNS}"
        )))
        .bind(now)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound(id))?;
        Ok((incident(&row)?, row))
    }

    /// Merges incidents `from` into `into` (all active): their alerts, counts, customers,
    /// assets and tags join it, its severity and danger rise to theirs; each of them is
    /// resolved as merged. `into` as it is after.
    pub async fn merge(
        &self,
        into: i64,
        from: &[i64],
        actor: &str,
    ) -> Result<Incident, StoreError> {
        let mut from = from.to_vec();
        from.sort_unstable();
        from.dedup();
        if from.is_empty() || from.len() > MAX_MOVED {
            return Err(invalid(format!(
                "name 1 to {MAX_MOVED} incidents to merge into {into}"
            )));
        }
        if from.contains(&into) {
            return Err(invalid(format!("incident {into} cannot merge into itself")));
        }
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let (target, target_row) = self.lock(&mut tx, into, now).await?;
        let not_active = |inc: &Incident| {
            StoreError::Action(ActionError::NotAllowed {
                action: "merge",
                status: inc.status.as_str(),
            })
        };
        if !target.status.active() {
            return Err(not_active(&target));
        }
        let (mut count, mut first, mut last) = (target.count, target.first_seen, target.last_seen);
        let (mut severity, mut danger) = (target.severity.clone(), target.danger);
        let own = target.customer.as_deref();
        let (mut customers_added, mut assets_added) = (Vec::new(), Vec::new());
        for &src in &from {
            let (inc, _) = self.lock(&mut tx, src, now).await?;
            if !inc.status.active() {
                return Err(not_active(&inc));
            }
            let moved =
                sqlx::query("UPDATE incident_alerts SET incident_id = $1 WHERE incident_id = $2")
                    .bind(into)
                    .bind(src)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            sqlx::query("UPDATE incidents SET status = 'resolved', merged_into = $1 WHERE id = $2")
                .bind(into)
                .bind(src)
                .execute(&mut *tx)
                .await?;
            let detail = serde_json::json!({"into": into, "alerts": moved});
            timeline(&mut tx, src, now, actor, "merged_into", &detail).await?;
            let detail = serde_json::json!({"from": src, "title": inc.title, "alerts": moved});
            timeline(&mut tx, into, now, actor, "merged", &detail).await?;
            count += inc.count;
            first = first.min(inc.first_seen);
            last = last.max(inc.last_seen);
            if severity_rank(&inc.severity) > severity_rank(&severity) {
                severity = inc.severity.clone();
            }
            danger |= inc.danger;
            // The other incident's customer is affected by this one now.
            let mut customers = inc.affected.clone();
            customers.extend(inc.customer.clone());
            customers_added
                .extend(add_to_list(&mut tx, into, List::Affected, own, &customers).await?);
            assets_added.extend(add_to_list(&mut tx, into, List::Assets, None, &inc.assets).await?);
            add_to_list(&mut tx, into, List::Tags, None, &inc.tags).await?;
        }
        let due = tighter(&target_row, self.deadlines.get().due(&severity, own, now))?;
        sqlx::query(
            "UPDATE incidents SET count = $1, first_seen = $2, last_seen = $3, severity = $4,
                 danger = $5, ack_by = $6, resolve_by = $7
             WHERE id = $8",
        )
        .bind(count)
        .bind(first.timestamp_millis())
        .bind(last.timestamp_millis())
        .bind(&severity)
        .bind(i64::from(danger))
        .bind(due.acknowledge)
        .bind(due.resolve)
        .bind(into)
        .execute(&mut *tx)
        .await?;
        let mut cause = None;
        for (action, key, list) in [
            ("customers_added", "customers", &customers_added),
            ("assets_added", "assets", &assets_added),
        ] {
            if !list.is_empty() {
                let detail = serde_json::json!({"merged": from, key: list});
                cause = Some(timeline(&mut tx, into, now, actor, action, &detail).await?);
            }
        }
        if danger && !target.danger {
            let detail = serde_json::json!({"merged": from});
            cause = Some(timeline(&mut tx, into, now, actor, "danger_raised", &detail).await?);
        }
        let announced = match cause {
            Some(cause) => {
                self.announce(&mut tx, into, cause, Kind::Changed, now)
                    .await?
            }
            None => false,
        };
        tx.commit().await?;
        if announced {
            self.wake.notify_one();
        }
        self.get(into).await
    }

    /// Splits alerts `alerts` (event ids, all of incident `id`'s, not all of them) off into a
    /// new incident of the same rule, customer, assets and severity, titled `title` or as
    /// `id`; announced as a new incident. The new incident.
    pub async fn split(
        &self,
        id: i64,
        alerts: &[String],
        title: Option<&str>,
        actor: &str,
    ) -> Result<Incident, StoreError> {
        let mut alerts = alerts.to_vec();
        alerts.sort();
        alerts.dedup();
        if alerts.is_empty() || alerts.len() > MAX_MOVED {
            return Err(invalid(format!(
                "name 1 to {MAX_MOVED} alerts of incident {id} to split off"
            )));
        }
        let title = title.map(|t| bounded("title", t, MAX_TITLE)).transpose()?;
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let (inc, _) = self.lock(&mut tx, id, now).await?;
        if !inc.status.active() {
            return Err(StoreError::Action(ActionError::NotAllowed {
                action: "split",
                status: inc.status.as_str(),
            }));
        }
        // Which of the named alerts are this incident's, and when they were.
        let mut found: Vec<(String, i64)> = Vec::with_capacity(alerts.len());
        for chunk in alerts.chunks(4 * ROWS_PER_STATEMENT) {
            let mut q = sqlx::query(AssertSqlSafe(format!(
                "SELECT alert_id, at FROM incident_alerts
                 WHERE incident_id = $1 AND alert_id IN ({})",
                marks(2, chunk.len())
            )))
            .bind(id);
            for a in chunk {
                q = q.bind(a);
            }
            for r in q.fetch_all(&mut *tx).await? {
                found.push((r.try_get("alert_id")?, r.try_get("at")?));
            }
        }
        if let Some(stranger) = alerts.iter().find(|a| !found.iter().any(|(f, _)| f == *a)) {
            return Err(invalid(format!(
                "alert {stranger:?} is not one of incident {id}'s"
            )));
        }
        let total: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM incident_alerts WHERE incident_id = $1")
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        if found.len() as i64 >= total {
            return Err(invalid(format!(
                "these are all of incident {id}'s alerts: split off fewer, or retitle it"
            )));
        }
        let first = found.iter().map(|(_, at)| *at).min().unwrap_or(now);
        let last = found.iter().map(|(_, at)| *at).max().unwrap_or(now);
        let due = self
            .deadlines
            .get()
            .due(&inc.severity, inc.customer.as_deref(), now);
        let key = format!("split\u{1f}{}", uuid::Uuid::now_v7().simple());
        let new: i64 = sqlx::query_scalar(
            "INSERT INTO incidents (dedup_key, rule_id, title, status, severity, danger,
                 customer, group_key, count, first_seen, last_seen, updated_at, ack_by,
                 resolve_by, affected, assets, tags, category)
             VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                 $16, $17)
             RETURNING id",
        )
        .bind(key)
        .bind(&inc.rule_id)
        .bind(title.unwrap_or_else(|| inc.title.clone()))
        .bind(&inc.severity)
        .bind(i64::from(inc.danger))
        .bind(inc.customer.clone())
        .bind(&inc.group_key)
        .bind(found.len() as i64)
        .bind(first)
        .bind(last)
        .bind(now)
        .bind(due.acknowledge)
        .bind(due.resolve)
        .bind(inc.affected.join(","))
        .bind(inc.assets.join(","))
        .bind(inc.tags.join(","))
        .bind(inc.category.clone())
        .fetch_one(&mut *tx)
        .await?;
        for chunk in alerts.chunks(4 * ROWS_PER_STATEMENT) {
            let mut q = sqlx::query(AssertSqlSafe(format!(
                "UPDATE incident_alerts SET incident_id = $1 WHERE alert_id IN ({})",
                marks(2, chunk.len())
            )))
            .bind(new);
            for a in chunk {
                q = q.bind(a);
            }
            q.execute(&mut *tx).await?;
        }
        // What stays: its count and span, from the alerts it keeps.
        let kept = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(at) AS first, MAX(at) AS last FROM incident_alerts
             WHERE incident_id = $1",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE incidents SET count = $1, first_seen = $2, last_seen = $3 WHERE id = $4",
        )
        .bind(kept.try_get::<i64, _>("n")?)
        .bind(kept.try_get::<Option<i64>, _>("first")?.unwrap_or(now))
        .bind(kept.try_get::<Option<i64>, _>("last")?.unwrap_or(now))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let moved = found.len();
        let detail = serde_json::json!({"into": new, "alerts": moved});
        timeline(&mut tx, id, now, actor, "split", &detail).await?;
        let detail = serde_json::json!({
            "split_from": id, "alerts": moved, "severity": inc.severity,
        });
        let cause = timeline(&mut tx, new, now, actor, "opened", &detail).await?;
        let announced = self
            .announce(&mut tx, new, cause, Kind::Opened, now)
            .await?;
        tx.commit().await?;
        if announced {
            self.wake.notify_one();
        }
        self.get(new).await
    }

    /// Adds a hand-over note by `author`.
    pub async fn shift_note(&self, author: &str, text: &str) -> Result<ShiftNote, StoreError> {
        let text = bounded("text", text, MAX_TEXT)?;
        let now = self.now();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO shift_log (at, author, text) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(now)
        .bind(author)
        .bind(&text)
        .fetch_one(&self.pool)
        .await?;
        Ok(ShiftNote {
            id,
            at: time(now),
            author: author.to_owned(),
            text,
        })
    }

    /// The latest `limit` hand-over notes (1 to 1000), newest first.
    pub async fn shift_log(&self, limit: usize) -> Result<Vec<ShiftNote>, StoreError> {
        if !(1..=1000).contains(&limit) {
            return Err(StoreError::Filter("limit must be 1 to 1000".into()));
        }
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT id, at, author, text FROM shift_log ORDER BY id DESC LIMIT {limit}"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ShiftNote {
                    id: r.try_get("id")?,
                    at: time(r.try_get("at")?),
                    author: r.try_get("author")?,
                    text: r.try_get("text")?,
                })
            })
            .collect()
    }
}
