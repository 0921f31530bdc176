//! The incidents in SQL, through sqlx's Any driver: SQLite (bundled) by default, PostgreSQL
//! when several collectors share one queue. The statements are written once, in the SQL both
//! accept (`$N` parameters, `ON CONFLICT`, `RETURNING`); the tables are made by the
//! migrations of each dialect ([`super::migrations`]), where only the key column's type
//! differs.
//!
//! Times are stored as milliseconds since the epoch, and danger as 0/1, the types both read
//! back alike.
//!
//! Every transaction writes before it reads, so on SQLite it takes the write lock at once
//! and waits for another writer (busy timeout) instead of failing to upgrade a read lock.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, AssertSqlSafe, Row};

use tokio::sync::Notify;

use super::deadlines::{Deadlines, Due, earlier};
use super::lifecycle::{Action, ActionError};
use super::{Alert, Entry, Filter, Incident, SEVERITIES, Status, severity_rank};
use crate::index::writer::{Clock, system_clock};
use crate::notify::plan::{Channel, Kind, Subject};
use crate::notify::{Notifier, digest, flood, maintenance, outbox, silence};
use crate::reference::assets::Assets;
use crate::reference::directory::Shared;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the incident database {url}: {source}")]
    Open { url: String, source: sqlx::Error },
    #[error("cannot bring the incident database {url} to this version's schema: {source}")]
    Migrate {
        url: String,
        source: sqlx::migrate::MigrateError,
    },
    #[error("incident database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("no incident {0}")]
    NotFound(i64),
    #[error(transparent)]
    Action(#[from] ActionError),
    #[error("{0}")]
    Filter(String),
}

/// What [`Store::record`] did with a set of alerts.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Recorded {
    /// Incidents the alerts opened.
    pub opened: Vec<i64>,
    /// Alerts added to an active incident's count.
    pub grouped: usize,
    /// Alerts recorded before (a replay).
    pub duplicate: usize,
}

/// The queue's default and largest page.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;
/// The deepest page.
const MAX_OFFSET: usize = 1_000_000;

/// Actor of the steps Vigil itself takes.
pub(super) const SYSTEM: &str = "vigil";

#[derive(Clone)]
pub struct Store {
    pub(super) pool: AnyPool,
    /// Who is told about changes; none: nothing is announced.
    notifier: Option<Arc<Notifier>>,
    /// Woken when a change enqueued deliveries (the dispatcher waits on it).
    pub(super) wake: Arc<Notify>,
    /// By when incidents must be acknowledged and resolved.
    pub(super) deadlines: Shared<Deadlines>,
    /// The assets in force: an incident's are those watching what its alerts were seen on.
    assets: Shared<Assets>,
    /// The time of changes (a test's controlled clock, else the system's).
    pub(super) clock: Clock,
    /// PostgreSQL: possibly shared by several collectors.
    shared: bool,
}

/// `url` without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let user = &url[s + 3..at];
            match user.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &user[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

pub(super) fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

pub(crate) fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

pub(super) const COLUMNS: &str = "id, title, status, severity, danger, customer, affected, assets, tags, \
                       group_key, rule_id, assignee, count, first_seen, last_seen, ack_by, \
                       resolve_by, level, ack_breached_at, resolve_breached_at, category, ticket, \
                       merged_into";

pub(super) fn incident(row: &AnyRow) -> Result<Incident, sqlx::Error> {
    let status: String = row.try_get("status")?;
    Ok(Incident {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        status: Status::parse(&status).ok_or_else(|| sqlx::Error::ColumnDecode {
            index: "status".into(),
            source: format!("unknown status {status:?}").into(),
        })?,
        severity: row.try_get("severity")?,
        danger: row.try_get::<i64, _>("danger")? != 0,
        customer: row.try_get("customer")?,
        affected: split_list(&row.try_get::<String, _>("affected")?),
        assets: split_list(&row.try_get::<String, _>("assets")?),
        tags: split_list(&row.try_get::<String, _>("tags")?),
        group_key: row.try_get("group_key")?,
        rule_id: row.try_get("rule_id")?,
        assignee: row.try_get("assignee")?,
        count: row.try_get("count")?,
        first_seen: time(row.try_get("first_seen")?),
        last_seen: time(row.try_get("last_seen")?),
        acknowledge_by: row.try_get::<Option<i64>, _>("ack_by")?.map(time),
        resolve_by: row.try_get::<Option<i64>, _>("resolve_by")?.map(time),
        level: row.try_get("level")?,
        breached: [
            ("acknowledge", "ack_breached_at"),
            ("resolve", "resolve_breached_at"),
        ]
        .into_iter()
        .filter_map(|(name, col)| match row.try_get::<Option<i64>, _>(col) {
            Ok(Some(_)) => Some(Ok(name.to_owned())),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        })
        .collect::<Result<_, _>>()?,
        category: row.try_get("category")?,
        ticket: row.try_get("ticket")?,
        merged_into: row.try_get("merged_into")?,
        alerts: Vec::new(),
        notifications: Vec::new(),
        timeline: Vec::new(),
    })
}

impl Store {
    /// Opens (for SQLite: creates) the database and applies the migrations it lacks
    /// ([`super::migrations`]). Blocks on the network for PostgreSQL; several collectors may
    /// open one database at once.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let open_err = |source| StoreError::Open {
            url: redact(url),
            source,
        };
        let postgres = url.starts_with("postgres:") || url.starts_with("postgresql:");
        let mut target = url.to_owned();
        if let Some(path) = url.strip_prefix("sqlite://") {
            let path = path.split('?').next().unwrap_or_default();
            if let Some(dir) = std::path::Path::new(path).parent() {
                // A failure shows as the connection's error, which names the file.
                let _ = std::fs::create_dir_all(dir);
            }
            if !url.contains("mode=") {
                target.push(if url.contains('?') { '&' } else { '?' });
                target.push_str("mode=rwc");
            }
        }
        let pool = AnyPoolOptions::new()
            .max_connections(if postgres { 8 } else { 4 })
            .acquire_timeout(Duration::from_secs(10))
            .connect(&target)
            .await
            .map_err(open_err)?;
        super::migrations::apply(&pool, postgres)
            .await
            .map_err(|source| StoreError::Migrate {
                url: redact(url),
                source,
            })?;
        if !postgres {
            // Readers do not wait for the writer, and a commit is one append.
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await
                .map_err(open_err)?;
        }
        Ok(Store {
            pool,
            notifier: None,
            wake: Arc::new(Notify::new()),
            deadlines: Shared::default(),
            assets: Shared::default(),
            clock: system_clock(),
            shared: postgres,
        })
    }

    /// Whether the database can be shared by several collectors (PostgreSQL): what one
    /// collector holds in memory for a decision must then be in the database too.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// This store, giving incidents these deadlines.
    pub fn with_deadlines(mut self, deadlines: Deadlines) -> Store {
        self.deadlines = Shared::new(deadlines);
        self
    }

    /// This store, giving incidents the deadlines in force in `deadlines` (which a reload of
    /// the customers replaces).
    pub fn with_shared_deadlines(mut self, deadlines: Shared<Deadlines>) -> Store {
        self.deadlines = deadlines;
        self
    }

    /// This store, giving incidents the assets in force in `assets` (which a reload
    /// replaces).
    pub fn with_assets(mut self, assets: Shared<Assets>) -> Store {
        self.assets = assets;
        self
    }

    /// This store, reading the time of changes from `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Store {
        self.clock = clock;
        self
    }

    pub fn deadlines(&self) -> Arc<Deadlines> {
        self.deadlines.get()
    }

    pub(super) fn now(&self) -> i64 {
        millis((self.clock)())
    }

    /// This store, announcing incident changes as `notifier` says: each change's deliveries
    /// go into the outbox in the change's transaction.
    pub fn with_notifier(mut self, notifier: Arc<Notifier>) -> Store {
        self.notifier = Some(notifier);
        self
    }

    /// Who is told about changes, when notifications are configured.
    pub fn notifier(&self) -> Option<&Arc<Notifier>> {
        self.notifier.as_ref()
    }

    /// Woken after a change enqueued deliveries.
    pub fn wake(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Enqueues the deliveries of an announcement of `kind` about incident `id`, caused by
    /// timeline entry `cause`, in `tx`; whether there were any.
    pub(super) async fn announce(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: i64,
        cause: i64,
        kind: Kind,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        let Some(n) = &self.notifier else {
            return Ok(false);
        };
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM incidents WHERE id = $1"
        )))
        .bind(id)
        .fetch_one(&mut **tx)
        .await?;
        let subject = subject_of(incident(&row)?);
        // Silences and exclusions, in one look; neither holds back a retraction.
        let mutes = if kind == Kind::Retracted {
            Vec::new()
        } else {
            silence::matching(tx, &subject.labels(), now).await?
        };
        let excluded = mutes.iter().any(|(_, m)| *m == silence::Mute::Exclusion);
        // A silence holds back every announcement but a retraction.
        if kind != Kind::Retracted {
            let silenced: Vec<i64> = mutes
                .iter()
                .filter(|(_, m)| *m == silence::Mute::Silence)
                .map(|(id, _)| *id)
                .collect();
            if !silenced.is_empty() {
                let detail = serde_json::json!({"kind": kind.as_str(), "silences": silenced});
                timeline(tx, id, now, SYSTEM, "suppressed", &detail).await?;
                return Ok(false);
            }
        }
        // So does a maintenance window of the incident's customer or of its assets.
        if kind != Kind::Retracted {
            let windows =
                maintenance::active_for(tx, subject.customer.as_deref(), &subject.assets, now)
                    .await?;
            if !windows.is_empty() {
                let detail = serde_json::json!({"kind": kind.as_str(), "maintenance": windows});
                timeline(tx, id, now, SYSTEM, "suppressed", &detail).await?;
                return Ok(false);
            }
        }
        let told = match kind {
            Kind::Changed | Kind::Retracted | Kind::Resolved => outbox::told(tx, id).await?,
            _ => Vec::new(),
        };
        let at = time(now);
        let overrides = if n.oncall.is_empty() {
            Vec::new()
        } else {
            crate::oncall::active(&mut **tx, at).await?
        };
        let duty = crate::oncall::Roster {
            oncall: &n.oncall,
            at,
            overrides: &overrides,
        };
        let deliveries = n.plan(&subject, kind, &told, &duty);
        let mut grouped = false;
        let (deliveries, held) =
            flood::split(tx, n, &subject, kind, deliveries, excluded, now).await?;
        if !held.is_empty() {
            let detail = serde_json::json!({
                "kind": kind.as_str(),
                "held": held.iter().map(|h| serde_json::json!({
                    "receiver": h.receiver, "reason": h.reason,
                    "channels": h.deliveries.iter().map(|d| d.channel.as_str()).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            });
            timeline(tx, id, now, SYSTEM, "held", &detail).await?;
            digest::keep(tx, id, subject.customer.as_deref(), cause, kind, &held, now).await?;
        }
        // A new incident's first announcement waits its route's group_wait; alone, or,
        // without danger on a route grouping by labels, with its group's others (e-mail and
        // webhooks; calls, CAP and Alertmanager pushes go alone).
        let chosen = if kind == Kind::Opened {
            n.route.chosen(&subject.labels())
        } else {
            Vec::new()
        };
        let mut deliveries = deliveries;
        if !subject.danger {
            let labels = subject.labels();
            for c in &chosen {
                let Some(group) = c.group(&labels) else {
                    continue;
                };
                let before = deliveries.len();
                deliveries.retain(|d| {
                    d.receiver != c.receiver
                        || !matches!(d.channel, Channel::Email | Channel::Webhook)
                });
                if deliveries.len() == before {
                    continue;
                }
                let customer = subject.customer.as_deref();
                digest::keep_group(tx, id, customer, cause, &c.receiver, &group, c, now).await?;
                let detail = serde_json::json!({"receiver": c.receiver, "group": group.0});
                timeline(tx, id, now, SYSTEM, "waits_for_group", &detail).await?;
                grouped = true;
            }
        }
        let waits: std::collections::BTreeMap<String, i64> = chosen
            .iter()
            .map(|c| (c.receiver.clone(), c.group_wait.as_millis() as i64))
            .collect();
        let mut by_wait: std::collections::BTreeMap<i64, Vec<crate::notify::plan::Delivery>> =
            Default::default();
        for d in &deliveries {
            let wait = waits.get(&d.receiver).copied().unwrap_or(0);
            by_wait.entry(wait).or_default().push(d.clone());
        }
        for (wait, group) in &by_wait {
            outbox::enqueue(tx, id, cause, kind, group, now + wait).await?;
        }
        Ok(!deliveries.is_empty() || !held.is_empty() || grouped)
    }

    /// Closes the connections (waits for the ones in use).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Groups `alerts` into incidents, in one transaction: each alert opens an incident or
    /// adds to the active one of its key; an alert recorded before changes nothing.
    pub async fn record(&self, alerts: &[Alert]) -> Result<Recorded, StoreError> {
        let mut out = Recorded::default();
        if alerts.is_empty() {
            return Ok(out);
        }
        let now = self.now();
        let mut announced = false;
        // Each new alert's incident, written together at the end.
        let mut linked: Vec<(&str, i64)> = Vec::with_capacity(alerts.len());
        let mut tx = self.pool.begin().await?;
        for a in alerts {
            let at = millis(a.at);
            let new = sqlx::query(
                "INSERT INTO incident_alerts (alert_id, incident_id, at) VALUES ($1, 0, $2)
                 ON CONFLICT (alert_id) DO NOTHING",
            )
            .bind(&a.id)
            .bind(at)
            .execute(&mut *tx)
            .await?;
            if new.rows_affected() == 0 {
                out.duplicate += 1;
                continue;
            }
            let key = format!(
                "{}\u{1f}{}\u{1f}{}",
                a.rule_id,
                a.customer.as_deref().unwrap_or_default(),
                a.group_key
            );
            let due = self
                .deadlines
                .get()
                .due(&a.severity, a.customer.as_deref(), now);
            // A new incident starts with the alert's lists; an active one adds to its own
            // below (what is new there is announced).
            let affected = sorted_list(&a.affected, a.customer.as_deref());
            let assets = sorted_list(&self.assets.get().watching(&a.seen), None);
            let tags = sorted_list(&a.tags, None);
            let row = sqlx::query(
                "INSERT INTO incidents (dedup_key, rule_id, title, status, severity, danger,
                     customer, group_key, count, first_seen, last_seen, updated_at, ack_by,
                     resolve_by, affected, assets, tags)
                 VALUES ($1, $2, $3, 'open', $4, $5, $6, $7, 1, $8, $8, $9, $10, $11, $12, $13,
                     $14)
                 ON CONFLICT (dedup_key) WHERE status IN ('open', 'acknowledged') DO UPDATE SET
                     count = incidents.count + 1,
                     first_seen = CASE WHEN excluded.first_seen < incidents.first_seen
                         THEN excluded.first_seen ELSE incidents.first_seen END,
                     last_seen = CASE WHEN excluded.last_seen > incidents.last_seen
                         THEN excluded.last_seen ELSE incidents.last_seen END,
                     updated_at = excluded.updated_at
                 RETURNING id, count, severity, danger, status, ack_by, resolve_by",
            )
            .bind(key)
            .bind(&a.rule_id)
            .bind(&a.title)
            .bind(&a.severity)
            .bind(i64::from(a.danger))
            .bind(a.customer.clone())
            .bind(&a.group_key)
            .bind(at)
            .bind(now)
            .bind(due.acknowledge)
            .bind(due.resolve)
            .bind(affected.join(","))
            .bind(assets.join(","))
            .bind(tags.join(","))
            .fetch_one(&mut *tx)
            .await?;
            let id: i64 = row.try_get("id")?;
            let count: i64 = row.try_get("count")?;
            let severity: String = row.try_get("severity")?;
            let was_dangerous = row.try_get::<i64, _>("danger")? != 0;
            linked.push((a.id.as_str(), id));
            // Customers the alert reaches besides its own: on a new incident they are told
            // with the rest; added to an active one, an essential change (decree art. 5), as
            // are assets; another rule's tags join quietly.
            let (added, assets_added) = if count == 1 {
                (affected, assets)
            } else {
                let own = a.customer.as_deref();
                let added = add_to_list(&mut tx, id, List::Affected, own, &affected).await?;
                let assets_added = add_to_list(&mut tx, id, List::Assets, None, &assets).await?;
                add_to_list(&mut tx, id, List::Tags, None, &tags).await?;
                (added, assets_added)
            };
            if count == 1 {
                out.opened.push(id);
                let detail = serde_json::json!({
                    "alert_id": a.id, "severity": a.severity, "message": a.message,
                    "affected": added, "assets": assets_added,
                });
                let cause = timeline(&mut tx, id, now, SYSTEM, "opened", &detail).await?;
                announced |= self.announce(&mut tx, id, cause, Kind::Opened, now).await?;
            } else {
                out.grouped += 1;
                if severity_rank(&a.severity) > severity_rank(&severity) {
                    let due = tighter(
                        &row,
                        self.deadlines
                            .get()
                            .due(&a.severity, a.customer.as_deref(), now),
                    )?;
                    sqlx::query(
                        "UPDATE incidents SET severity = $1, ack_by = $2, resolve_by = $3
                         WHERE id = $4",
                    )
                    .bind(&a.severity)
                    .bind(due.acknowledge)
                    .bind(due.resolve)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    let detail = serde_json::json!({
                        "alert_id": a.id, "from": severity, "to": a.severity,
                    });
                    timeline(&mut tx, id, now, SYSTEM, "severity_raised", &detail).await?;
                }
                // Customers or assets added: an essential change (decree art. 5), announced
                // at once (once for both) to everyone told before and to the new ones.
                let mut cause = None;
                for (action, key, list) in [
                    ("customers_added", "customers", &added),
                    ("assets_added", "assets", &assets_added),
                ] {
                    if !list.is_empty() {
                        let detail = serde_json::json!({"alert_id": a.id, key: list});
                        cause = Some(timeline(&mut tx, id, now, SYSTEM, action, &detail).await?);
                    }
                }
                if let Some(cause) = cause {
                    announced |= self
                        .announce(&mut tx, id, cause, Kind::Changed, now)
                        .await?;
                }
                // Danger appearing is an essential change; an alert without it does not
                // take it away.
                if a.danger && !was_dangerous {
                    sqlx::query("UPDATE incidents SET danger = 1 WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    let detail = serde_json::json!({"alert_id": a.id, "rule": a.rule_id});
                    let cause =
                        timeline(&mut tx, id, now, SYSTEM, "danger_raised", &detail).await?;
                    announced |= self
                        .announce(&mut tx, id, cause, Kind::Changed, now)
                        .await?;
                }
            }
        }
        for chunk in linked.chunks(ROWS_PER_STATEMENT) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| {
                    format!(
                        "(CAST(${} AS TEXT), CAST(${} AS BIGINT))",
                        2 * i + 1,
                        2 * i + 2
                    )
                })
                .collect();
            // Only placeholders are formatted into the statement; every value is bound.
            let mut q = sqlx::query(AssertSqlSafe(format!(
                "UPDATE incident_alerts SET incident_id = v.column2
                 FROM (VALUES {}) AS v WHERE incident_alerts.alert_id = v.column1",
                values.join(", ")
            )));
            for (alert, incident) in chunk {
                q = q.bind(*alert).bind(*incident);
            }
            q.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        if announced {
            self.wake.notify_one();
        }
        Ok(out)
    }

    /// The queue as `filter` asks, most recently seen first unless it sorts otherwise.
    pub async fn list(&self, filter: &Filter) -> Result<Vec<Incident>, StoreError> {
        let (wheres, binds) = self.filter_sql(filter)?;
        let limit = filter.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(StoreError::Filter(format!(
                "limit must be 1 to {MAX_LIMIT}"
            )));
        }
        let offset = filter.offset.unwrap_or(0);
        if offset > MAX_OFFSET {
            return Err(StoreError::Filter(format!(
                "offset must be at most {MAX_OFFSET}"
            )));
        }
        let order = match filter.sort.as_deref() {
            None | Some("last_seen") => "last_seen DESC, id DESC",
            Some("severity") => {
                "CASE severity WHEN 'critical' THEN 4 WHEN 'high' THEN 3 WHEN 'medium' THEN 2
                     WHEN 'low' THEN 1 ELSE 0 END DESC, danger DESC, last_seen DESC, id DESC"
            }
            Some("ack_by") => "CASE WHEN ack_by IS NULL THEN 1 ELSE 0 END, ack_by, id DESC",
            Some("id") => "id DESC",
            Some(other) => {
                return Err(StoreError::Filter(format!(
                    "sort {other:?} is not one of last_seen, severity, ack_by, id"
                )));
            }
        };
        // Only our own text and numbered parameters: every value is bound.
        let sql = format!(
            "SELECT {COLUMNS} FROM incidents {wheres} ORDER BY {order} LIMIT {limit} OFFSET {offset}"
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(&self.pool).await?;
        Ok(rows.iter().map(incident).collect::<Result<_, _>>()?)
    }

    /// How many incidents `filter` matches (its limit, offset and sort aside).
    pub async fn count(&self, filter: &Filter) -> Result<i64, StoreError> {
        let (wheres, binds) = self.filter_sql(filter)?;
        // Only our own text and numbered parameters: every value is bound.
        let mut q = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM incidents {wheres}"
        )));
        for b in binds {
            q = q.bind(b);
        }
        Ok(q.fetch_one(&self.pool).await?)
    }

    /// The `WHERE` clause of `filter` (numbered parameters) and the values to bind.
    fn filter_sql(&self, filter: &Filter) -> Result<(String, Vec<String>), StoreError> {
        let mut wheres = Vec::new();
        let mut binds = Vec::new();
        if let Some(s) = &filter.status {
            if s == "active" {
                wheres.push("status IN ('open', 'acknowledged')".to_owned());
            } else if Status::parse(s).is_some() {
                binds.push(s.clone());
                wheres.push(format!("status = ${}", binds.len()));
            } else {
                return Err(StoreError::Filter(format!(
                    "status {s:?} is not one of open, acknowledged, resolved, retracted, active"
                )));
            }
        }
        if let Some(s) = &filter.severity {
            if !SEVERITIES.contains(&s.as_str()) {
                return Err(StoreError::Filter(format!(
                    "severity {s:?} is not one of {}",
                    SEVERITIES.join(", ")
                )));
            }
            binds.push(s.clone());
            wheres.push(format!("severity = ${}", binds.len()));
        }
        if let Some(c) = &filter.customer {
            binds.push(c.clone());
            wheres.push(format!("customer = ${}", binds.len()));
        }
        match filter.assignee.as_deref() {
            None => {}
            Some("-") => wheres.push("assignee IS NULL".to_owned()),
            Some(a) => {
                binds.push(a.to_owned());
                wheres.push(format!("assignee = ${}", binds.len()));
            }
        }
        match filter.danger {
            Some(true) => wheres.push("danger = 1".to_owned()),
            Some(false) => wheres.push("danger = 0".to_owned()),
            None => {}
        }
        if let Some(since) = &filter.since {
            let d = vigil_schema::config::parse_duration(since)
                .map_err(|e| StoreError::Filter(format!("since: {e}")))?;
            let from = self.now() - i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2);
            // Our own number, not a value from outside.
            wheres.push(format!("last_seen >= {from}"));
        }
        match filter.breached {
            Some(true) => wheres.push(
                "(ack_breached_at IS NOT NULL OR resolve_breached_at IS NOT NULL)".to_owned(),
            ),
            Some(false) => {
                wheres.push("ack_breached_at IS NULL AND resolve_breached_at IS NULL".to_owned())
            }
            None => {}
        }
        let wheres = if wheres.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", wheres.join(" AND "))
        };
        Ok((wheres, binds))
    }

    /// One incident without its timeline (what an announcement of most kinds needs).
    /// Incidents `ids` without their timelines, a few queries for all (unknown ids are left
    /// out).
    pub async fn get_many_brief(
        &self,
        ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, Incident>, StoreError> {
        let mut out = std::collections::HashMap::new();
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        for chunk in ids.chunks(4 * ROWS_PER_STATEMENT) {
            let marks: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let mut q = sqlx::query(AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM incidents WHERE id IN ({})",
                marks.join(", ")
            )));
            for id in chunk {
                q = q.bind(*id);
            }
            for r in q.fetch_all(&self.pool).await? {
                let inc = incident(&r)?;
                out.insert(inc.id, inc);
            }
        }
        Ok(out)
    }

    pub async fn get_brief(&self, id: i64) -> Result<Incident, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM incidents WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound(id))?;
        Ok(incident(&row)?)
    }

    /// One incident with its timeline.
    pub async fn get(&self, id: i64) -> Result<Incident, StoreError> {
        let mut inc = self.get_brief(id).await?;
        let steps = sqlx::query(
            "SELECT at, actor, action, detail FROM incident_timeline
             WHERE incident_id = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        for s in steps {
            let detail: String = s.try_get("detail")?;
            inc.timeline.push(Entry {
                at: time(s.try_get("at")?),
                actor: s.try_get("actor")?,
                action: s.try_get("action")?,
                detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
            });
        }
        inc.alerts = self.alerts_of(id).await?;
        inc.notifications = crate::notify::outbox::of_incident(&self.pool, id).await?;
        Ok(inc)
    }

    /// Adds a step to incident `id`'s timeline that changes nothing else (a gateway's report).
    pub async fn note(
        &self,
        id: i64,
        actor: &str,
        action: &str,
        detail: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        timeline(&mut tx, id, self.now(), actor, action, detail).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes `action` on incident `id` as `actor`, records it on the timeline, and returns
    /// the incident as it is now.
    /// Active incidents whose opening a maintenance window held back, once no window of their
    /// customer is on any more: announced now (`maintenance_over` on the timeline), so a
    /// check still down when the work ends reaches the desk. Returns how many.
    pub async fn announce_after_maintenance(&self) -> Result<usize, StoreError> {
        if self.notifier.is_none() {
            return Ok(0);
        }
        let now = self.now();
        let rows = sqlx::query(
            "SELECT i.id, i.customer, i.assets, t.detail FROM incidents i
             JOIN incident_timeline t ON t.incident_id = i.id AND t.action = 'suppressed'
             WHERE i.status IN ('open', 'acknowledged')
               AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.incident_id = i.id)
             ORDER BY i.id",
        )
        .fetch_all(&self.pool)
        .await?;
        // (incident, its customer, its assets, the windows that held it)
        type Held = (i64, Option<String>, Vec<String>, Vec<i64>);
        let mut held: Vec<Held> = Vec::new();
        for r in &rows {
            let detail: serde_json::Value =
                serde_json::from_str(&r.try_get::<String, _>("detail")?).unwrap_or_default();
            let windows: Vec<i64> = detail["maintenance"]
                .as_array()
                .map(|w| w.iter().filter_map(serde_json::Value::as_i64).collect())
                .unwrap_or_default();
            let (id, customer): (i64, Option<String>) = (r.try_get("id")?, r.try_get("customer")?);
            let assets = split_list(&r.try_get::<String, _>("assets")?);
            if !windows.is_empty() && !held.iter().any(|(h, ..)| *h == id) {
                held.push((id, customer, assets, windows));
            }
        }
        let mut done = 0;
        let mut announced = false;
        for (id, customer, assets, windows) in held {
            let mut tx = self.pool.begin().await?;
            if !maintenance::active_for(&mut tx, customer.as_deref(), &assets, now)
                .await?
                .is_empty()
            {
                continue;
            }
            let detail = serde_json::json!({"maintenance": windows});
            let cause = timeline(&mut tx, id, now, SYSTEM, "maintenance_over", &detail).await?;
            announced |= self.announce(&mut tx, id, cause, Kind::Opened, now).await?;
            tx.commit().await?;
            done += 1;
        }
        if announced {
            self.wake.notify_one();
        }
        Ok(done)
    }

    pub async fn act(&self, id: i64, action: &Action, actor: &str) -> Result<Incident, StoreError> {
        let now = self.now();
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE incidents SET updated_at = $1 WHERE id = $2
             RETURNING status, danger, customer, ack_by, resolve_by",
        )
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound(id))?;
        let from: String = row.try_get("status")?;
        let from = Status::parse(&from).unwrap_or(Status::Open);
        let was_dangerous = row.try_get::<i64, _>("danger")? != 0;
        // An action that is not allowed rolls back (the transaction is dropped).
        let to = action.apply(from)?;
        let (assignee, severity, danger) = match action {
            Action::Assign { assignee } => (Some(assignee.clone()), None, None),
            Action::Escalate { severity, danger } => {
                (None, Some(severity.clone()), danger.map(i64::from))
            }
            _ => (None, None, None),
        };
        let customer: Option<String> = row.try_get("customer")?;
        let due = match &severity {
            Some(sev) => tighter(
                &row,
                self.deadlines.get().due(sev, customer.as_deref(), now),
            )?,
            None => Due {
                acknowledge: row.try_get("ack_by")?,
                resolve: row.try_get("resolve_by")?,
            },
        };
        sqlx::query(
            "UPDATE incidents SET status = $1, assignee = COALESCE($2, assignee),
                 severity = COALESCE($3, severity), danger = COALESCE($4, danger),
                 ack_by = $5, resolve_by = $6
             WHERE id = $7",
        )
        .bind(to.as_str())
        .bind(assignee)
        .bind(severity)
        .bind(danger)
        .bind(due.acknowledge)
        .bind(due.resolve)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let cause = timeline(&mut tx, id, now, actor, action.name(), &action.detail()).await?;
        let kind = match action {
            Action::Retract { .. } => Some(Kind::Retracted),
            Action::Resolve { .. } => Some(Kind::Resolved),
            Action::Escalate {
                danger: Some(danger),
                ..
            } if *danger != was_dangerous => Some(Kind::Changed),
            _ => None,
        };
        let announced = match kind {
            Some(kind) => self.announce(&mut tx, id, cause, kind, now).await?,
            None => false,
        };
        tx.commit().await?;
        if announced {
            self.wake.notify_one();
        }
        self.get(id).await
    }
}

/// The customers of an `affected` column.
/// `list` sorted, each once, without `own`.
pub(super) fn sorted_list(list: &[String], own: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = list
        .iter()
        .filter(|c| Some(c.as_str()) != own)
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

pub(super) fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A list an incident keeps in one column, comma-separated and sorted: the customers it
/// affects besides its own, its assets.
#[derive(Clone, Copy)]
pub(super) enum List {
    Affected,
    Assets,
    Tags,
}

impl List {
    fn column(self) -> &'static str {
        match self {
            List::Affected => "affected",
            List::Assets => "assets",
            List::Tags => "tags",
        }
    }
}

/// Adds `more` to incident `id`'s `list` in `tx` (`own`, the incident's customer, is never
/// among its affected); the ones that were not there.
pub(super) async fn add_to_list(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: i64,
    list: List,
    own: Option<&str>,
    more: &[String],
) -> Result<Vec<String>, sqlx::Error> {
    if more.is_empty() {
        return Ok(Vec::new());
    }
    let col = list.column();
    // Only our own column names: the values are bound.
    let had: String = sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT {col} FROM incidents WHERE id = $1"
    )))
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    let mut all = split_list(&had);
    let mut added = Vec::new();
    for c in more {
        if Some(c.as_str()) != own && !all.contains(c) && !added.contains(c) {
            added.push(c.clone());
        }
    }
    if !added.is_empty() {
        all.extend(added.iter().cloned());
        all.sort();
        sqlx::query(AssertSqlSafe(format!(
            "UPDATE incidents SET {col} = $1 WHERE id = $2"
        )))
        .bind(all.join(","))
        .bind(id)
        .execute(&mut **tx)
        .await?;
    }
    Ok(added)
}

/// An incident as routing sees it.
pub(super) fn subject_of(inc: Incident) -> Subject {
    Subject {
        customer: inc.customer,
        affected: inc.affected,
        assets: inc.assets,
        tags: inc.tags,
        severity: inc.severity,
        danger: inc.danger,
        rule: inc.rule_id,
        title: inc.title,
        status: inc.status.as_str().to_owned(),
        group: inc.group_key,
        level: inc.level.max(1) as usize,
    }
}

/// The earlier of an incident's deadlines (its row's `ack_by`, `resolve_by`) and `new`.
pub(super) fn tighter(row: &AnyRow, new: Due) -> Result<Due, sqlx::Error> {
    Ok(Due {
        acknowledge: earlier(row.try_get("ack_by")?, new.acknowledge),
        resolve: earlier(row.try_get("resolve_by")?, new.resolve),
    })
}

/// Rows per statement of many rows: SQLite binds a statement's parameters in time quadratic
/// in their count, so several middling statements beat one large one.
pub(crate) const ROWS_PER_STATEMENT: usize = 32;

/// Adds many steps to timelines in `tx`, a few statements for all: (incident, at, actor,
/// action, detail).
pub(crate) async fn timeline_many(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    steps: &[(i64, i64, &str, &str, String)],
) -> Result<(), sqlx::Error> {
    for chunk in steps.chunks(ROWS_PER_STATEMENT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let b = i * 5;
                format!(
                    "(${}, ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5
                )
            })
            .collect();
        // Only placeholders are formatted into the statement; every value is bound.
        let sql = format!(
            "INSERT INTO incident_timeline (incident_id, at, actor, action, detail) VALUES {}",
            values.join(", ")
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for (id, at, actor, action, detail) in chunk {
            q = q
                .bind(*id)
                .bind(*at)
                .bind(*actor)
                .bind(*action)
                .bind(detail.clone());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// Adds a step to incident `id`'s timeline in `tx`; the step's id.
pub(crate) async fn timeline(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: i64,
    at: i64,
    actor: &str,
    action: &str,
    detail: &serde_json::Value,
) -> Result<i64, sqlx::Error> {
    let row = sqlx::query(
        "INSERT INTO incident_timeline (incident_id, at, actor, action, detail)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(id)
    .bind(at)
    .bind(actor)
    .bind(action)
    .bind(detail.to_string())
    .fetch_one(&mut **tx)
    .await?;
    row.try_get("id")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redact("postgres://vigil:s3cret@db:5432/vigil"),
            "postgres://vigil:***@db:5432/vigil"
        );
        assert_eq!(redact("sqlite:///x/y.db"), "sqlite:///x/y.db");
    }
}
