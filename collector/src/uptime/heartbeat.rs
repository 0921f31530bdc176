//! Heartbeats: push health checks. A job pings `/ping/{uuid}` when it succeeds (and
//! `/start` when it begins, `/fail` or a non-zero exit status when it fails); a heartbeat
//! expects its pings on a schedule, a period or a cron expression in a time zone, each with a
//! grace time.
//!
//! # States
//! - `new`: never pinged; nothing is expected yet (a job not yet deployed pages nobody).
//! - `up`: the last ping was a success, and the next is not overdue. Shown `late` once the
//!   next ping is due, while the grace time runs.
//! - `down`: no success by the due time plus grace (`late`), a run started and not
//!   finished within grace (`late`), or a failure reported (`failed`, `exit_status`). Down
//!   opens an incident (rule [`RULE`], grouped per heartbeat) announced through the
//!   notification routing; the next success resolves it, with the outage's length.
//!
//! # Invariants
//! - The heartbeat's row is the state; incidents follow it. Each outage is named by its
//!   heartbeat and its number (`outages`, raised as it goes down), which is the id of the
//!   alert that opens its incident: however many collectors (sharing PostgreSQL) see it go
//!   down, and however often the state is reconciled, one outage opens one incident.
//! - A heartbeat goes down from `up` only through a conditional update on the row as it was
//!   read, so a ping that lands between the read and the update wins.
//! - A late heartbeat's outage begins at its deadline (due time plus grace), computed from
//!   the row: every collector computes the same one.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use crate::incidents::store::time;
use crate::incidents::{Alert, SEVERITIES, Store};
use crate::index::writer::Clock;
use crate::reference::directory::{RefError, Shared};
use crate::reference::{Bad, Customers};

/// The rule id of heartbeat incidents (routes match it as `rule`).
pub const RULE: &str = "vigil.heartbeat";
/// Pings kept per heartbeat (older ones are pruned).
pub const KEEP_PINGS: i64 = 100;
/// The default schedule of a heartbeat, as healthchecks.io's: a ping a day, an hour's grace.
const DEFAULT_PERIOD: Duration = Duration::from_secs(86_400);
const DEFAULT_GRACE: Duration = Duration::from_secs(3_600);
/// Bounds of period and grace: a second (the sweep runs every second) to a year.
const MIN_PERIOD: Duration = Duration::from_secs(1);
const MAX_PERIOD: Duration = Duration::from_secs(365 * 86_400);
/// How often state and incidents are reconciled (an incident not opened or not resolved
/// because the collector stopped between the two steps).
const RECONCILE_EVERY_MS: i64 = 30_000;
/// How often old pings are pruned.
const PRUNE_EVERY_MS: i64 = 60_000;

/// When pings are expected.
#[derive(Debug, Clone)]
pub enum Schedule {
    Every(Duration),
    Cron { cron: Box<croner::Cron>, tz: Tz },
}

impl Schedule {
    /// When the ping after one at `last` is due.
    pub fn next_after(&self, last: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(p) => Some(last + chrono::Duration::from_std(*p).ok()?),
            Schedule::Cron { cron, tz } => cron
                .find_next_occurrence(&last.with_timezone(tz), false)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        }
    }
}

/// Parses a cron expression (five fields, or six with seconds) the way it is stored.
fn parse_cron(s: &str) -> Result<croner::Cron, String> {
    croner::Cron::from_str(s).map_err(|e| format!("{s:?} is not a cron expression: {e}"))
}

fn parse_tz(s: &str) -> Result<Tz, String> {
    s.parse::<Tz>()
        .map_err(|_| format!("{s:?} is not a time zone (use a name like Europe/Brussels)"))
}

/// A heartbeat as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Heartbeat {
    pub uuid: String,
    pub slug: String,
    pub name: String,
    pub customer: Option<String>,
    /// Seconds between pings (a period schedule).
    pub period_seconds: Option<u64>,
    /// A cron expression, in `tz` (a cron schedule).
    pub schedule: Option<String>,
    pub tz: String,
    pub grace_seconds: u64,
    pub severity: String,
    pub danger: bool,
    /// `new`, `up`, `late` (due, within grace) or `down`.
    pub status: String,
    /// A run started (`/start`) and not yet finished.
    pub running: bool,
    pub last_ping: Option<DateTime<Utc>>,
    /// When the next success is due (the grace time runs after it).
    pub next_due: Option<DateTime<Utc>>,
    /// The last run's length, from its `/start` to its success.
    pub last_duration_seconds: Option<f64>,
    pub down_since: Option<DateTime<Utc>>,
    /// `late`, `failed` or `exit_status`.
    pub down_reason: Option<String>,
    pub pings: i64,
    /// Ping this (GET, HEAD or POST); `/start`, `/fail`, `/log`, `/{exit-status}` after it.
    pub ping_url: String,
    /// The slug form, when a ping key is configured.
    pub slug_url: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// The latest pings, newest first (one heartbeat's view only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent: Vec<PingRecord>,
}

/// One ping as it was received.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PingRecord {
    pub at: DateTime<Utc>,
    /// `success`, `start`, `fail`, `log`.
    pub kind: String,
    pub exit_status: Option<i64>,
    pub rid: Option<String>,
    pub duration_seconds: Option<f64>,
    pub user_agent: Option<String>,
    /// What the client sent in the body (the run's output), cut at [`super::ping::BODY_BYTES`].
    pub body: String,
}

/// A new heartbeat (`POST /api/v1/heartbeats`): a `period` or a cron `schedule` (with `tz`),
/// and a `grace`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NewHeartbeat {
    pub slug: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub period: Option<String>,
    #[serde(default)]
    pub schedule: Option<String>,
    #[serde(default)]
    pub tz: Option<String>,
    #[serde(default)]
    pub grace: Option<String>,
    #[serde(default)]
    pub customer: Option<String>,
    #[serde(default)]
    pub severity: Option<String>,
    /// Its outages are a probable danger (announced by phone first).
    #[serde(default)]
    pub danger: bool,
}

fn bad(field: &str, message: impl Into<String>) -> RefError {
    RefError::Invalid(Bad {
        field: field.into(),
        message: message.into(),
    })
}

fn duration_in(field: &str, s: &str, min: Duration, max: Duration) -> Result<Duration, RefError> {
    let d = vigil_schema::config::parse_duration(s).map_err(|m| bad(field, m))?;
    if d < min || d > max {
        return Err(bad(
            field,
            format!(
                "{s:?} is out of range (from {}s to {}s)",
                min.as_secs(),
                max.as_secs()
            ),
        ));
    }
    Ok(d)
}

/// A new heartbeat, checked: the row to insert.
pub(crate) struct Checked {
    slug: String,
    name: String,
    customer: Option<String>,
    period_ms: Option<i64>,
    schedule: Option<String>,
    tz: String,
    grace_ms: i64,
    severity: String,
    danger: bool,
}

impl NewHeartbeat {
    pub(crate) fn check(&self, customers: &Customers) -> Result<Checked, RefError> {
        if !crate::reference::is_id(&self.slug) {
            return Err(bad(
                "slug",
                "1 to 64 letters, digits, `.`, `_` or `-`, starting with a letter or digit",
            ));
        }
        if self.period.is_some() && self.schedule.is_some() {
            return Err(bad("schedule", "give a period or a schedule, not both"));
        }
        let tz = self.tz.clone().unwrap_or_else(|| "UTC".into());
        parse_tz(&tz).map_err(|m| bad("tz", m))?;
        if self.tz.is_some() && self.schedule.is_none() {
            return Err(bad("tz", "a time zone is for a cron schedule"));
        }
        let period_ms = match (&self.period, &self.schedule) {
            (Some(p), _) => Some(duration_in("period", p, MIN_PERIOD, MAX_PERIOD)?),
            (None, Some(s)) => {
                parse_cron(s).map_err(|m| bad("schedule", m))?;
                None
            }
            (None, None) => Some(DEFAULT_PERIOD),
        }
        .map(|d| d.as_millis() as i64);
        let grace = match &self.grace {
            Some(g) => duration_in("grace", g, MIN_PERIOD, MAX_PERIOD)?,
            None => DEFAULT_GRACE,
        };
        let severity = self.severity.clone().unwrap_or_else(|| "high".into());
        if !SEVERITIES.contains(&severity.as_str()) {
            return Err(bad("severity", format!("one of {}", SEVERITIES.join(", "))));
        }
        if let Some(c) = &self.customer
            && customers.get(c).is_none()
        {
            return Err(bad("customer", format!("no customer {c:?}")));
        }
        let name = self.name.clone().unwrap_or_else(|| self.slug.clone());
        if name.is_empty() || name.len() > 200 {
            return Err(bad("name", "1 to 200 characters"));
        }
        Ok(Checked {
            slug: self.slug.clone(),
            name,
            customer: self.customer.clone(),
            period_ms,
            schedule: self.schedule.clone(),
            tz,
            grace_ms: grace.as_millis() as i64,
            severity,
            danger: self.danger,
        })
    }
}

pub(crate) const COLUMNS: &str = "uuid, slug, name, customer, period_ms, schedule, tz, grace_ms, \
    severity, danger, created_by, created_at, status, last_ping_at, last_start_at, \
    last_start_rid, last_duration_ms, down_since, down_reason, pings, outages";

/// A heartbeat's row, as the state machine needs it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub uuid: String,
    pub slug: String,
    pub name: String,
    pub customer: Option<String>,
    pub period_ms: Option<i64>,
    pub schedule: Option<String>,
    pub tz: String,
    pub grace_ms: i64,
    pub severity: String,
    pub danger: bool,
    pub created_by: String,
    pub created_at: i64,
    pub status: String,
    pub last_ping_at: Option<i64>,
    pub last_start_at: Option<i64>,
    pub last_start_rid: Option<String>,
    pub last_duration_ms: Option<i64>,
    pub down_since: Option<i64>,
    pub down_reason: Option<String>,
    pub pings: i64,
    /// Outages so far; the current one's number while down.
    pub outages: i64,
}

pub(crate) fn row(r: &AnyRow) -> Result<Stored, sqlx::Error> {
    Ok(Stored {
        uuid: r.try_get("uuid")?,
        slug: r.try_get("slug")?,
        name: r.try_get("name")?,
        customer: r.try_get("customer")?,
        period_ms: r.try_get("period_ms")?,
        schedule: r.try_get("schedule")?,
        tz: r.try_get("tz")?,
        grace_ms: r.try_get("grace_ms")?,
        severity: r.try_get("severity")?,
        danger: r.try_get::<i64, _>("danger")? != 0,
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        status: r.try_get("status")?,
        last_ping_at: r.try_get("last_ping_at")?,
        last_start_at: r.try_get("last_start_at")?,
        last_start_rid: r.try_get("last_start_rid")?,
        last_duration_ms: r.try_get("last_duration_ms")?,
        down_since: r.try_get("down_since")?,
        down_reason: r.try_get("down_reason")?,
        pings: r.try_get("pings")?,
        outages: r.try_get("outages")?,
    })
}

impl Stored {
    pub fn schedule(&self) -> Option<Schedule> {
        match (&self.schedule, self.period_ms) {
            (Some(s), _) => Some(Schedule::Cron {
                cron: Box::new(parse_cron(s).ok()?),
                tz: parse_tz(&self.tz).ok()?,
            }),
            (None, Some(ms)) => Some(Schedule::Every(Duration::from_millis(ms.max(0) as u64))),
            (None, None) => None,
        }
    }

    /// When the next success is due, for an `up` heartbeat.
    fn next_due(&self) -> Option<DateTime<Utc>> {
        self.schedule()?.next_after(time(self.last_ping_at?))
    }

    /// The moment an `up` heartbeat goes down if no success comes: its due time plus grace,
    /// or, for a run started and not finished, its start plus grace, whichever is first.
    pub fn deadline(&self) -> Option<i64> {
        let due = self
            .next_due()
            .map(|d| d.timestamp_millis().saturating_add(self.grace_ms));
        let run = self.last_start_at.map(|s| s.saturating_add(self.grace_ms));
        match (due, run) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn show(&self, now: DateTime<Utc>, urls: &Urls) -> Heartbeat {
        let next_due = if self.status == "up" {
            self.next_due()
        } else {
            None
        };
        let status = match next_due {
            Some(d) if now > d => "late".to_owned(),
            _ => self.status.clone(),
        };
        Heartbeat {
            uuid: self.uuid.clone(),
            slug: self.slug.clone(),
            name: self.name.clone(),
            customer: self.customer.clone(),
            period_seconds: self.period_ms.map(|ms| (ms / 1000) as u64),
            schedule: self.schedule.clone(),
            tz: self.tz.clone(),
            grace_seconds: (self.grace_ms / 1000) as u64,
            severity: self.severity.clone(),
            danger: self.danger,
            status,
            running: self.last_start_at.is_some(),
            last_ping: self.last_ping_at.map(time),
            next_due,
            last_duration_seconds: self.last_duration_ms.map(|ms| ms as f64 / 1000.0),
            down_since: self.down_since.map(time),
            down_reason: self.down_reason.clone(),
            pings: self.pings,
            ping_url: format!("{}/ping/{}", urls.base, self.uuid),
            slug_url: urls
                .ping_key
                .as_ref()
                .map(|k| format!("{}/ping/{k}/{}", urls.base, self.slug)),
            created_by: self.created_by.clone(),
            created_at: time(self.created_at),
            recent: Vec::new(),
        }
    }

    /// The alert that opens this outage's incident.
    fn alert(&self, message: Option<String>) -> Alert {
        let since = self.down_since.unwrap_or_default();
        let title = match self.down_reason.as_deref() {
            Some("failed") => format!("Heartbeat {}: the job reported a failure", self.name),
            Some("exit_status") => format!("Heartbeat {}: the job exited with an error", self.name),
            _ => format!("Heartbeat {}: no ping in time", self.name),
        };
        Alert {
            // The outage's number, not its start: two outages may begin in one millisecond.
            id: format!("heartbeat:{}:{}", self.uuid, self.outages),
            rule_id: RULE.into(),
            title,
            severity: self.severity.clone(),
            customer: self.customer.clone(),
            group_key: group_key(&self.slug),
            at: time(since),
            message,
            danger: self.danger,
            affected: Vec::new(),
            tags: Vec::new(),
            // Assets name a heartbeat among their checks by its slug.
            seen: crate::incidents::Seen {
                check: Some(self.slug.clone()),
                ..Default::default()
            },
        }
    }
}

/// Begins a transaction that reads, then writes: its first statement takes the write lock,
/// so that on SQLite a read transaction is never refused its upgrade to a write one (busy
/// with a snapshot that another writer made stale, which no waiting cures).
pub(crate) async fn begin_write(
    pool: &AnyPool,
) -> Result<sqlx::Transaction<'static, sqlx::Any>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("UPDATE heartbeats SET pings = pings WHERE uuid = ''")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// `3725` seconds as `1h 2m 5s`.
pub fn span(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m {s}s"),
        _ => format!("{h}h {m}m {s}s"),
    }
}

/// The grouping key of a heartbeat's incidents.
pub fn group_key(slug: &str) -> String {
    format!("heartbeat={slug}")
}

/// Where ping URLs point.
#[derive(Debug, Clone)]
pub struct Urls {
    /// This Vigil as clients reach it (`notify.external_url`), without a trailing `/`.
    pub base: String,
    pub ping_key: Option<String>,
}

/// The heartbeats: their rows, the pings' effects, and the incidents that follow them.
#[derive(Clone)]
pub struct Heartbeats {
    pub(crate) pool: AnyPool,
    pub(crate) store: Store,
    pub(crate) clock: Clock,
    pub urls: Arc<Urls>,
    customers: Shared<Customers>,
    metrics: Arc<crate::metrics::Metrics>,
    /// When the last sweep ended (ms); `/readyz` says the checking stalled when it is old.
    swept: Arc<std::sync::atomic::AtomicI64>,
}

/// A sweep older than this is a stall.
const STALLED_AFTER_MS: i64 = 10_000;

/// What one pass of [`Heartbeats::sweep`] did.
#[derive(Debug, Default, PartialEq)]
pub struct Swept {
    /// Heartbeats that went down for lateness.
    pub late: Vec<String>,
    /// Incidents opened or resolved to match the state (after a stop between the two steps).
    pub reconciled: usize,
}

impl Heartbeats {
    pub fn new(
        store: Store,
        clock: Clock,
        urls: Urls,
        customers: Shared<Customers>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Heartbeats {
        let swept = Arc::new(std::sync::atomic::AtomicI64::new(
            clock().timestamp_millis(),
        ));
        Heartbeats {
            pool: store.pool().clone(),
            store,
            clock,
            urls: Arc::new(Urls {
                base: urls.base.trim_end_matches('/').to_owned(),
                ping_key: urls.ping_key,
            }),
            customers,
            metrics,
            swept,
        }
    }

    /// Whether sweeps are running (one ended in the last 10 s before `now_ms`).
    pub fn sweeping(&self, now_ms: i64) -> bool {
        now_ms - self.swept.load(std::sync::atomic::Ordering::SeqCst) <= STALLED_AFTER_MS
    }

    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    pub async fn create(&self, new: &NewHeartbeat, actor: &str) -> Result<Heartbeat, RefError> {
        let checked = new.check(&self.customers.get())?;
        let mut tx = self.pool.begin().await?;
        let Some(r) = self.insert(&mut tx, &checked, actor).await? else {
            return Err(RefError::Conflict(format!(
                "a heartbeat with slug {:?} exists",
                checked.slug
            )));
        };
        tx.commit().await?;
        tracing::info!(uuid = %r.uuid, slug = %r.slug, by = actor, "heartbeat created");
        self.get(&r.uuid).await
    }

    /// Inserts a heartbeat checked by [`NewHeartbeat::check`]; none if its slug is taken.
    pub(crate) async fn insert(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        c: &Checked,
        actor: &str,
    ) -> Result<Option<Stored>, sqlx::Error> {
        let uuid = uuid::Uuid::new_v4().to_string();
        let done = sqlx::query(
            "INSERT INTO heartbeats (uuid, slug, name, customer, period_ms, schedule, tz,
                 grace_ms, severity, danger, created_by, created_at, status, pings)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'new', 0)
             ON CONFLICT (slug) DO NOTHING",
        )
        .bind(&uuid)
        .bind(&c.slug)
        .bind(&c.name)
        .bind(c.customer.clone())
        .bind(c.period_ms)
        .bind(c.schedule.clone())
        .bind(&c.tz)
        .bind(c.grace_ms)
        .bind(&c.severity)
        .bind(i64::from(c.danger))
        .bind(actor)
        .bind(self.now().timestamp_millis())
        .execute(&mut **tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM heartbeats WHERE uuid = $1"
        )))
        .bind(&uuid)
        .fetch_one(&mut **tx)
        .await?;
        row(&r).map(Some)
    }

    /// Counts a change of state in the metrics.
    pub(crate) fn count_transition(&self, to: &str) {
        self.metrics
            .heartbeat_transitions
            .get_or_create(&vec![("to", to.to_owned())])
            .inc();
    }

    /// Counts a ping in the metrics.
    pub(crate) fn count_ping(&self, kind: &'static str, outcome: super::ping::Outcome) {
        let outcome = match outcome {
            super::ping::Outcome::NotFound => "not_found",
            _ => kind,
        };
        self.metrics
            .heartbeat_pings
            .get_or_create(&vec![("kind", outcome.to_owned())])
            .inc();
    }

    /// All heartbeats, by slug.
    pub async fn list(&self) -> Result<Vec<Heartbeat>, RefError> {
        let now = self.now();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM heartbeats ORDER BY slug"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(row(r)?.show(now, &self.urls)))
            .collect()
    }

    /// One heartbeat (by uuid or slug), with its latest pings.
    pub async fn get(&self, id: &str) -> Result<Heartbeat, RefError> {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM heartbeats WHERE uuid = $1 OR slug = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or_else(|| RefError::NotFound(format!("no heartbeat {id}")))?;
        let r = row(&r)?;
        let mut hb = r.show(self.now(), &self.urls);
        let pings = sqlx::query(
            "SELECT at, kind, exit_status, rid, duration_ms, user_agent, body
             FROM heartbeat_pings WHERE uuid = $1 ORDER BY id DESC LIMIT 20",
        )
        .bind(&r.uuid)
        .fetch_all(&self.pool)
        .await?;
        hb.recent = pings
            .iter()
            .map(|p| {
                Ok(PingRecord {
                    at: time(p.try_get("at")?),
                    kind: p.try_get("kind")?,
                    exit_status: p.try_get("exit_status")?,
                    rid: p.try_get("rid")?,
                    duration_seconds: p
                        .try_get::<Option<i64>, _>("duration_ms")?
                        .map(|ms| ms as f64 / 1000.0),
                    user_agent: p.try_get("user_agent")?,
                    body: p.try_get("body")?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()?;
        Ok(hb)
    }

    /// Deletes a heartbeat and its pings; an open incident of it stays for the desk.
    pub async fn delete(&self, id: &str) -> Result<Heartbeat, RefError> {
        let hb = self.get(id).await?;
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM heartbeat_pings WHERE uuid = $1")
            .bind(&hb.uuid)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM heartbeats WHERE uuid = $1")
            .bind(&hb.uuid)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(uuid = %hb.uuid, slug = %hb.slug, "heartbeat deleted");
        Ok(hb)
    }

    /// Opens the incident of the outage `r` shows (a row as it was when it went down; once
    /// per outage, whoever calls). `said`: what the job sent with its failure.
    pub(crate) async fn open_incident(
        &self,
        r: &Stored,
        said: Option<&str>,
    ) -> Result<(), crate::incidents::StoreError> {
        let message = match (r.down_reason.as_deref(), said) {
            (Some("late"), _) => Some(match r.last_ping_at {
                Some(at) => format!("last success at {}", time(at).to_rfc3339()),
                None => "no success yet".into(),
            }),
            (_, Some(b)) if !b.is_empty() => Some(b.chars().take(500).collect()),
            _ => None,
        };
        let recorded = self.store.record(&[r.alert(message)]).await?;
        for id in recorded.opened {
            self.metrics.incidents_opened.inc();
            tracing::warn!(incident = id, slug = %r.slug, reason = ?r.down_reason, "heartbeat down");
        }
        Ok(())
    }

    /// Resolves the active incident of `slug`'s outage, saying how long it lasted.
    pub(crate) async fn resolve_incident(
        &self,
        slug: &str,
        down_since: Option<i64>,
        up_at: i64,
    ) -> Result<(), crate::incidents::StoreError> {
        super::end_outage(
            &self.store,
            (RULE, &group_key(slug)),
            down_since.unwrap_or(up_at),
            up_at,
            &format!("heartbeat {slug} pinged again"),
        )
        .await?;
        Ok(())
    }

    /// One pass: heartbeats past their deadline go down and open their incident; every
    /// [`RECONCILE_EVERY_MS`], incidents are matched to the state; every
    /// [`PRUNE_EVERY_MS`], old pings go.
    pub async fn sweep(
        &self,
        now: DateTime<Utc>,
        last: &mut Passes,
    ) -> Result<Swept, crate::incidents::StoreError> {
        let mut out = Swept::default();
        let now_ms = now.timestamp_millis();
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM heartbeats WHERE status = 'up'"
        )))
        .fetch_all(&self.pool)
        .await?;
        for r in rows {
            let r = row(&r)?;
            let Some(deadline) = r.deadline() else {
                continue;
            };
            if now_ms <= deadline {
                continue;
            }
            let went = sqlx::query(
                "UPDATE heartbeats SET status = 'down', down_since = $1, down_reason = 'late',
                     outages = outages + 1
                 WHERE uuid = $2 AND status = 'up' AND COALESCE(last_ping_at, -1) = $3
                     AND COALESCE(last_start_at, -1) = $4",
            )
            .bind(deadline)
            .bind(&r.uuid)
            .bind(r.last_ping_at.unwrap_or(-1))
            .bind(r.last_start_at.unwrap_or(-1))
            .execute(&self.pool)
            .await?;
            if went.rows_affected() == 1 {
                self.count_transition("down");
                let down = Stored {
                    status: "down".into(),
                    down_since: Some(deadline),
                    down_reason: Some("late".into()),
                    outages: r.outages + 1,
                    ..r
                };
                self.open_incident(&down, None).await?;
                out.late.push(down.slug);
            }
        }
        if now_ms.saturating_sub(last.reconciled) >= RECONCILE_EVERY_MS {
            last.reconciled = now_ms;
            out.reconciled = self.reconcile().await?;
        }
        if now_ms.saturating_sub(last.pruned) >= PRUNE_EVERY_MS {
            last.pruned = now_ms;
            sqlx::query(
                "DELETE FROM heartbeat_pings WHERE id IN (SELECT id FROM (SELECT id,
                     ROW_NUMBER() OVER (PARTITION BY uuid ORDER BY id DESC) AS n
                     FROM heartbeat_pings) AS ranked WHERE n > $1)",
            )
            .bind(KEEP_PINGS)
            .execute(&self.pool)
            .await?;
        }
        Ok(out)
    }

    /// Opens the incidents of down heartbeats that have none for their outage, resolves
    /// the active incidents of heartbeats that are up; how many it did.
    async fn reconcile(&self) -> Result<usize, crate::incidents::StoreError> {
        let mut n = 0;
        let down = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM heartbeats h WHERE h.status = 'down' AND NOT EXISTS (
                 SELECT 1 FROM incident_alerts a
                 WHERE a.alert_id = 'heartbeat:' || h.uuid || ':' || CAST(h.outages AS TEXT))"
        )))
        .fetch_all(&self.pool)
        .await?;
        for r in down {
            self.open_incident(&row(&r)?, None).await?;
            n += 1;
        }
        let up = sqlx::query(
            "SELECT h.slug, h.last_ping_at FROM heartbeats h JOIN incidents i
                 ON i.rule_id = $1 AND i.group_key = 'heartbeat=' || h.slug
             WHERE h.status <> 'down' AND i.status IN ('open', 'acknowledged')",
        )
        .bind(RULE)
        .fetch_all(&self.pool)
        .await?;
        for r in up {
            let slug: String = r.try_get("slug")?;
            let at: Option<i64> = r.try_get("last_ping_at")?;
            let at = at.unwrap_or_else(|| self.now().timestamp_millis());
            self.resolve_incident(&slug, None, at).await?;
            n += 1;
        }
        Ok(n)
    }
}

/// When the sweep last reconciled and pruned.
#[derive(Debug, Clone, Copy)]
pub struct Passes {
    reconciled: i64,
    pruned: i64,
}

impl Default for Passes {
    fn default() -> Self {
        Passes {
            reconciled: i64::MIN / 2,
            pruned: i64::MIN / 2,
        }
    }
}

/// How often overdue heartbeats are looked for.
const EVERY: Duration = Duration::from_secs(1);

/// Sweeps every second until `shutdown`.
pub async fn run(hb: Heartbeats, shutdown: tokio_util::sync::CancellationToken) {
    let mut passes = Passes::default();
    loop {
        let result = hb.sweep(hb.now(), &mut passes).await;
        if result.is_ok() {
            hb.swept.store(
                hb.now().timestamp_millis(),
                std::sync::atomic::Ordering::SeqCst,
            );
        }
        match result {
            Ok(s) if s.reconciled > 0 => {
                tracing::warn!(
                    n = s.reconciled,
                    "heartbeat incidents matched to their state"
                )
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "heartbeats cannot be checked; retrying"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}
