//! Maintenance windows: planned work on customers' networks, one-off (with a change ticket)
//! or recurring (`repeat_every`, until `repeat_until`). The customers are given, or derived
//! from the assets named.
//!
//! - While an occurrence is on, the announcements of the incidents of the customers it names
//!   are not made, nor those of incidents whose every asset it names (a window on a router
//!   does not quiet its customer's other incidents); the incidents are still opened, the
//!   suppression is on their timeline, and a retraction still goes.
//! - The customers' contacts are told by e-mail when the window is planned, when each
//!   occurrence starts and when it ends: notices in the outbox like any announcement (kinds
//!   `maintenance_planned`, `maintenance_started`, `maintenance_ended`), about no incident.
//!
//! # Invariants
//! - Each occurrence's start and end notices are enqueued once: the row records the last
//!   occurrence noticed, updated in the transaction that enqueues them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{Any, AnyPool, Row, Transaction};

use super::Notifier;
use super::outbox::NO_INCIDENT;
use super::plan::{Channel, Delivery, Kind};
use super::words::{Lang, fill};
use crate::incidents::store::time;

/// A maintenance window as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Maintenance {
    pub id: i64,
    pub title: String,
    pub ticket: Option<String>,
    pub customers: Vec<String>,
    pub assets: Vec<String>,
    /// The customers named whole (all their incidents quiet); `None` for a window made
    /// before windows could name assets alone (all its customers).
    #[serde(skip)]
    pub whole: Option<Vec<String>>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    /// Milliseconds between occurrences, for a recurring window.
    pub repeat_every_ms: Option<i64>,
    pub repeat_until: Option<DateTime<Utc>>,
    pub created_by: String,
}

/// A new window (`POST /api/v1/maintenance`): `ends_at` or `duration`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMaintenance {
    pub title: String,
    #[serde(default)]
    pub ticket: Option<String>,
    #[serde(default)]
    pub customers: Vec<String>,
    #[serde(default)]
    pub assets: Vec<String>,
    pub starts_at: DateTime<Utc>,
    #[serde(default)]
    pub ends_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub duration: Option<String>,
    /// `7d`: the window recurs this often.
    #[serde(default)]
    pub repeat_every: Option<String>,
    #[serde(default)]
    pub repeat_until: Option<DateTime<Utc>>,
    pub created_by: String,
}

fn row(r: &sqlx::any::AnyRow) -> Result<Maintenance, sqlx::Error> {
    let list = |col: &str| -> Result<Vec<String>, sqlx::Error> {
        let text: String = r.try_get(col)?;
        Ok(serde_json::from_str(&text).unwrap_or_default())
    };
    Ok(Maintenance {
        id: r.try_get("id")?,
        title: r.try_get("title")?,
        ticket: r.try_get("ticket")?,
        customers: list("customers")?,
        assets: list("assets")?,
        whole: r
            .try_get::<Option<String>, _>("whole")?
            .map(|t| serde_json::from_str(&t).unwrap_or_default()),
        starts_at: time(r.try_get("starts_at")?),
        ends_at: time(r.try_get("ends_at")?),
        repeat_every_ms: r.try_get("every_ms")?,
        repeat_until: r.try_get::<Option<i64>, _>("until_at")?.map(time),
        created_by: r.try_get("created_by")?,
    })
}

const COLUMNS: &str = "id, title, ticket, customers, assets, whole, starts_at, ends_at, \
                       every_ms, until_at, created_by, started, ended";

impl Maintenance {
    /// The occurrence on at `t` (its number and window), if any.
    pub fn occurrence_at(&self, t: i64) -> Option<(i64, i64, i64)> {
        let (start, end) = (
            self.starts_at.timestamp_millis(),
            self.ends_at.timestamp_millis(),
        );
        let k = match self.repeat_every_ms {
            Some(every) if t >= start => (t - start) / every,
            _ => 0,
        };
        let (s, e) = (start + k * self.every(), end + k * self.every());
        (s <= t && t < e && self.within_until(s)).then_some((k, s, e))
    }

    /// The last occurrence that ended at or before `t`.
    pub fn last_ended(&self, t: i64) -> Option<i64> {
        let end = self.ends_at.timestamp_millis();
        if t < end {
            return None;
        }
        let k = match self.repeat_every_ms {
            Some(every) => (t - end) / every,
            None => 0,
        };
        // The last one whose start is within `repeat_until`.
        (0..=k)
            .rev()
            .find(|&k| self.within_until(self.starts_at.timestamp_millis() + k * self.every()))
    }

    fn every(&self) -> i64 {
        self.repeat_every_ms.unwrap_or(0)
    }

    fn within_until(&self, start: i64) -> bool {
        self.repeat_until
            .is_none_or(|u| start <= u.timestamp_millis())
    }
}

/// Checks `new` against the customers and assets in force and stores it, with the notices
/// that it is planned; the inner error names the field.
pub async fn create(
    pool: &AnyPool,
    n: Option<&Notifier>,
    directory: &crate::reference::directory::Directory,
    new: &NewMaintenance,
    now: DateTime<Utc>,
) -> Result<Result<Maintenance, String>, sqlx::Error> {
    let checked = (|| -> Result<(Vec<String>, i64, Option<i64>), String> {
        if new.title.trim().is_empty() || new.title.len() > 256 {
            return Err("title: 1 to 256 characters".into());
        }
        if new.created_by.trim().is_empty() {
            return Err("created_by: required".into());
        }
        let known = directory.customers().get();
        let mut customers = Vec::new();
        for c in &new.customers {
            if known.get(c).is_none() {
                return Err(format!("customers: no customer {c:?}"));
            }
            customers.push(c.clone());
        }
        let assets = directory.assets();
        for a in &new.assets {
            let asset = assets
                .get(a)
                .ok_or_else(|| format!("assets: no asset {a:?}"))?;
            customers.push(asset.customer.clone());
        }
        customers.sort();
        customers.dedup();
        if customers.is_empty() {
            return Err("customers or assets: at least one".into());
        }
        let (starts, ends) = super::silence::window(
            now,
            Some(new.starts_at),
            new.ends_at,
            new.duration.as_deref(),
            31,
            "a maintenance occurrence",
        )?;
        let every = new
            .repeat_every
            .as_deref()
            .map(|d| {
                vigil_schema::config::parse_duration(d)
                    .map(|d| d.as_millis() as i64)
                    .map_err(|e| format!("repeat_every: {e}"))
            })
            .transpose()?;
        if let Some(e) = every
            && e <= (ends - starts).num_milliseconds()
        {
            return Err("repeat_every: longer than one occurrence".into());
        }
        if new.repeat_until.is_some() && every.is_none() {
            return Err("repeat_until: only with repeat_every".into());
        }
        Ok((customers, (ends - starts).num_milliseconds(), every))
    })();
    let (customers, length, every) = match checked {
        Ok(c) => c,
        Err(e) => return Ok(Err(e)),
    };
    let starts = new.starts_at.timestamp_millis();
    let mut tx = pool.begin().await?;
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO maintenance (title, ticket, customers, assets, whole, starts_at, ends_at,
             every_ms, until_at, created_by, created_at, started, ended)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, -1, -1) RETURNING {COLUMNS}"
    )))
    .bind(new.title.trim())
    .bind(new.ticket.as_deref())
    .bind(serde_json::to_string(&customers).unwrap_or_default())
    .bind(serde_json::to_string(&new.assets).unwrap_or_default())
    .bind(serde_json::to_string(&new.customers).unwrap_or_default())
    .bind(starts)
    .bind(starts + length)
    .bind(every)
    .bind(new.repeat_until.map(|u| u.timestamp_millis()))
    .bind(new.created_by.trim())
    .bind(now.timestamp_millis())
    .fetch_one(&mut *tx)
    .await?;
    let m = row(&r)?;
    if let Some(n) = n {
        notices(
            &mut tx,
            n,
            &m,
            Kind::MaintenancePlanned,
            now.timestamp_millis(),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(Ok(m))
}

/// Windows not over at `now` (and those over in the last day), soonest first.
pub async fn list(pool: &AnyPool, now: DateTime<Utc>) -> Result<Vec<Maintenance>, sqlx::Error> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM maintenance ORDER BY starts_at, id"
    )))
    .fetch_all(pool)
    .await?;
    let since = (now - chrono::Duration::days(1)).timestamp_millis();
    let mut out = Vec::new();
    for r in &rows {
        let m = row(r)?;
        let over = match (m.repeat_every_ms, m.repeat_until) {
            (Some(_), Some(u)) => u.timestamp_millis() + m.length() < since,
            (Some(_), None) => false,
            (None, _) => m.ends_at.timestamp_millis() < since,
        };
        if !over {
            out.push(m);
        }
    }
    Ok(out)
}

impl Maintenance {
    fn length(&self) -> i64 {
        (self.ends_at - self.starts_at).num_milliseconds()
    }
}

/// Ends window `id` now (no more occurrences); `None` when there is none.
pub async fn end(
    pool: &AnyPool,
    id: i64,
    now: DateTime<Utc>,
) -> Result<Option<Maintenance>, sqlx::Error> {
    let now = now.timestamp_millis();
    // A window not started yet ends before it starts; a recurring one stops recurring.
    sqlx::query(
        "UPDATE maintenance SET until_at = CASE WHEN every_ms IS NULL THEN NULL ELSE $1 END,
             ends_at = CASE WHEN every_ms IS NULL AND ends_at > $1 THEN
                 (CASE WHEN starts_at > $1 THEN starts_at ELSE $1 END) ELSE ends_at END
         WHERE id = $2",
    )
    .bind(now)
    .bind(id)
    .execute(pool)
    .await?;
    get(pool, id).await
}

/// The windows on at `now` that quiet an incident of `customer` concerning `assets`: those
/// naming its customer whole, and those naming every one of its assets (an incident about
/// an asset nobody is working on is never quieted by a window on another).
pub async fn active_for(
    tx: &mut Transaction<'_, Any>,
    customer: Option<&str>,
    assets: &[String],
    now: i64,
) -> Result<Vec<i64>, sqlx::Error> {
    // Windows over and not recurring are left out.
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM maintenance
         WHERE starts_at <= $1 AND (ends_at > $1 OR every_ms IS NOT NULL)"
    )))
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    let mut out = Vec::new();
    for r in &rows {
        let m = row(r)?;
        let whole = m.whole.as_ref().unwrap_or(&m.customers);
        let quiets = customer.is_some_and(|c| whole.iter().any(|w| w == c))
            || (!assets.is_empty() && assets.iter().all(|a| m.assets.contains(a)));
        if quiets && m.occurrence_at(now).is_some() {
            out.push(m.id);
        }
    }
    Ok(out)
}

/// Enqueues the start and end notices that are due at `now`; how many windows had any.
pub async fn tick(pool: &AnyPool, n: &Notifier, now: i64) -> Result<usize, sqlx::Error> {
    // A window not recurring whose end was noticed has nothing more to say.
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM maintenance
         WHERE starts_at <= $1 AND (every_ms IS NOT NULL OR ended < 0)"
    )))
    .bind(now)
    .fetch_all(pool)
    .await?;
    let mut done = 0;
    for r in &rows {
        let m = row(r)?;
        let (started, ended): (i64, i64) = (r.try_get("started")?, r.try_get("ended")?);
        let start = m
            .occurrence_at(now)
            .map(|(k, _, _)| k)
            .filter(|&k| k > started);
        let end = m.last_ended(now).filter(|&k| k > ended);
        if start.is_none() && end.is_none() {
            continue;
        }
        let mut tx = pool.begin().await?;
        if let Some(k) = end {
            let moved =
                sqlx::query("UPDATE maintenance SET ended = $1 WHERE id = $2 AND ended < $1")
                    .bind(k)
                    .bind(m.id)
                    .execute(&mut *tx)
                    .await?;
            if moved.rows_affected() == 1 {
                notices(&mut tx, n, &m, Kind::MaintenanceEnded, now).await?;
            }
        }
        if let Some(k) = start {
            let moved =
                sqlx::query("UPDATE maintenance SET started = $1 WHERE id = $2 AND started < $1")
                    .bind(k)
                    .bind(m.id)
                    .execute(&mut *tx)
                    .await?;
            if moved.rows_affected() == 1 {
                notices(&mut tx, n, &m, Kind::MaintenanceStarted, now).await?;
            }
        }
        tx.commit().await?;
        done += 1;
    }
    Ok(done)
}

/// The cause of a window's notices: negative, so it never meets an incident's timeline id.
pub fn cause(id: i64, kind: Kind) -> i64 {
    let phase = match kind {
        Kind::MaintenancePlanned => 1,
        Kind::MaintenanceStarted => 2,
        _ => 3,
    };
    -(id * 4 + phase)
}

/// The window a notice's cause names.
pub fn window_of(cause: i64) -> i64 {
    (-cause) / 4
}

/// Enqueues `kind` notices of `m` to the e-mail addresses of its customers' contacts.
async fn notices(
    tx: &mut Transaction<'_, Any>,
    n: &Notifier,
    m: &Maintenance,
    kind: Kind,
    now: i64,
) -> Result<(), sqlx::Error> {
    let customers = n.customers.get();
    let mut targets: Vec<String> = m
        .customers
        .iter()
        .filter_map(|c| customers.get(c))
        .flat_map(|c| c.contacts.iter().filter_map(|k| k.email.clone()))
        .collect();
    targets.sort();
    targets.dedup();
    let deliveries: Vec<Delivery> = targets
        .into_iter()
        .map(|target| Delivery {
            receiver: "maintenance".into(),
            channel: Channel::Email,
            target,
        })
        .collect();
    super::outbox::enqueue(tx, NO_INCIDENT, cause(m.id, kind), kind, &deliveries, now).await
}

/// The notice e-mail of `kind` about `m`: (subject, body).
pub fn email(m: &Maintenance, kind: Kind, lang: Lang) -> (String, String) {
    let w = lang.words();
    let what = match kind {
        Kind::MaintenancePlanned => w.maintenance_planned,
        Kind::MaintenanceStarted => w.maintenance_started,
        _ => w.maintenance_ended,
    };
    let ticket = m
        .ticket
        .as_deref()
        .map(|t| format!(" ({t})"))
        .unwrap_or_default();
    let subject = format!("[Vigil] {what}: {}{ticket}", m.title);
    let (from, to) = (m.starts_at.to_rfc3339(), m.ends_at.to_rfc3339());
    let mut body = format!(
        "{what}: {}{ticket}.\n\n{}",
        m.title,
        fill(w.maintenance_window, &[("from", &from), ("to", &to)])
    );
    if let Some(every) = m.repeat_every_ms {
        let hours = (every / 3_600_000).to_string();
        body.push_str(&fill(w.maintenance_every, &[("hours", &hours)]));
        if let Some(u) = m.repeat_until {
            body.push_str(&fill(w.maintenance_until, &[("until", &u.to_rfc3339())]));
        }
    }
    body.push_str(&format!(
        ".\n{}: {}.\n",
        w.labels[2],
        m.customers.join(", ")
    ));
    if !m.assets.is_empty() {
        body.push_str(&format!(
            "{}: {}.\n",
            w.maintenance_assets,
            m.assets.join(", ")
        ));
    }
    body.push_str(&format!("\n{}\n", w.maintenance_quiet));
    (subject, body)
}

/// Window `id`, whatever its state.
pub async fn get(pool: &AnyPool, id: i64) -> Result<Option<Maintenance>, sqlx::Error> {
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM maintenance WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?;
    r.as_ref().map(row).transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weekly() -> Maintenance {
        let t = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("t")
                .with_timezone(&Utc)
        };
        Maintenance {
            id: 1,
            title: "t".into(),
            ticket: None,
            customers: vec!["ulb".into()],
            assets: Vec::new(),
            whole: None,
            starts_at: t("2026-12-01T22:00:00Z"),
            ends_at: t("2026-12-02T02:00:00Z"),
            repeat_every_ms: Some(7 * 86_400_000),
            repeat_until: Some(t("2026-12-15T22:00:00Z")),
            created_by: "a".into(),
        }
    }

    #[test]
    fn a_recurring_window_is_on_in_each_occurrence_until_its_end() {
        let m = weekly();
        let at = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("t")
                .timestamp_millis()
        };
        assert_eq!(m.occurrence_at(at("2026-12-01T21:59:59Z")), None);
        assert_eq!(
            m.occurrence_at(at("2026-12-01T23:00:00Z")).map(|o| o.0),
            Some(0)
        );
        assert_eq!(m.occurrence_at(at("2026-12-02T02:00:00Z")), None);
        assert_eq!(
            m.occurrence_at(at("2026-12-09T01:00:00Z")).map(|o| o.0),
            Some(1)
        );
        assert_eq!(
            m.occurrence_at(at("2026-12-16T01:00:00Z")).map(|o| o.0),
            Some(2)
        );
        assert_eq!(
            m.occurrence_at(at("2026-12-23T01:00:00Z")),
            None,
            "past repeat_until"
        );
        assert_eq!(m.last_ended(at("2026-12-02T01:59:59Z")), None);
        assert_eq!(m.last_ended(at("2026-12-02T02:00:00Z")), Some(0));
        assert_eq!(m.last_ended(at("2026-12-10T00:00:00Z")), Some(1));
        assert_eq!(m.last_ended(at("2027-01-30T00:00:00Z")), Some(2));
        assert_eq!(cause(7, Kind::MaintenanceEnded), -31);
        assert_eq!(window_of(cause(7, Kind::MaintenanceStarted)), 7);
    }
}
