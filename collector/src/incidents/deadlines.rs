//! Deadlines: by when an incident must be acknowledged and resolved, per severity and, where
//! configured, per customer; and what happens when one passes.
//!
//! # Invariants
//! - Deadlines are set when an incident opens and tightened (never loosened) when its
//!   severity rises: the new severity's deadline counts from the rise.
//! - Only an open incident escalates: an acknowledgement by a person (through the API or a
//!   key pressed in a call) stops escalation; an answering machine does not acknowledge.
//! - An operator call task not recorded as made by its deadline escalates its incident the
//!   same way, once.
//! - Each passed acknowledge-by deadline moves the incident one level up the on-call rota
//!   and sets the next deadline, as long as a rota named by its route has that level; past
//!   the last level the breach stays on the queue. A breach is on the timeline once per
//!   level and counted in `vigil_incident_deadlines_breached_total`.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::Row;

use super::{IncidentsConfig, SEVERITIES, Store, StoreError};
use crate::notify::plan::Kind;
use crate::reference::Customers;

/// Deadlines by severity.
#[derive(Debug, Clone, Default, PartialEq)]
struct BySeverity {
    acknowledge: BTreeMap<String, Duration>,
    resolve: BTreeMap<String, Duration>,
}

impl BySeverity {
    fn parse(
        acknowledge: &BTreeMap<String, String>,
        resolve: &BTreeMap<String, String>,
    ) -> Result<BySeverity, String> {
        let table = |name: &str, raw: &BTreeMap<String, String>| {
            raw.iter()
                .map(|(sev, d)| {
                    if !SEVERITIES.contains(&sev.as_str()) {
                        return Err(format!(
                            "{name}: {sev:?} is not a severity ({})",
                            SEVERITIES.join(", ")
                        ));
                    }
                    let d = vigil_schema::config::parse_duration(d)
                        .map_err(|e| format!("{name}.{sev}: {e}"))?;
                    if d < Duration::from_secs(1) {
                        return Err(format!("{name}.{sev}: at least 1s"));
                    }
                    Ok((sev.clone(), d))
                })
                .collect::<Result<BTreeMap<_, _>, String>>()
        };
        Ok(BySeverity {
            acknowledge: table("acknowledge_within", acknowledge)?,
            resolve: table("resolve_within", resolve)?,
        })
    }
}

/// Checks a pair of deadline tables; the error is (field, message).
pub fn check_tables(
    acknowledge: &BTreeMap<String, String>,
    resolve: &BTreeMap<String, String>,
) -> Result<(), (String, String)> {
    BySeverity::parse(acknowledge, resolve)
        .map(|_| ())
        .map_err(|e| {
            let (field, message) = e.split_once(": ").unwrap_or(("deadlines", &e));
            (field.to_owned(), message.to_owned())
        })
}

/// The deadline policy, checked.
#[derive(Debug, Clone, Default)]
pub struct Deadlines {
    all: BySeverity,
    customers: BTreeMap<String, BySeverity>,
}

/// An incident's deadlines in milliseconds since the epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Due {
    pub acknowledge: Option<i64>,
    pub resolve: Option<i64>,
}

impl Deadlines {
    /// From `[incidents]` and the customers' own tables; the error names the key.
    pub fn new(
        cfg: &IncidentsConfig,
        customers: &Customers,
    ) -> Result<Deadlines, (&'static str, String)> {
        let all = BySeverity::parse(&cfg.acknowledge_within, &cfg.resolve_within)
            .map_err(|e| ("incidents", e))?;
        let mut by_customer = BTreeMap::new();
        for c in customers.all() {
            if c.acknowledge_within.is_empty() && c.resolve_within.is_empty() {
                continue;
            }
            let own = BySeverity::parse(&c.acknowledge_within, &c.resolve_within)
                .map_err(|e| ("customers", format!("customer {:?}: {e}", c.id)))?;
            by_customer.insert(c.id.clone(), own);
        }
        Ok(Deadlines {
            all,
            customers: by_customer,
        })
    }

    /// The deadlines of an incident of `severity` for `customer` whose clock starts at `from`.
    pub fn due(&self, severity: &str, customer: Option<&str>, from: i64) -> Due {
        let own = customer.and_then(|c| self.customers.get(c));
        let pick = |f: fn(&BySeverity) -> &BTreeMap<String, Duration>| {
            own.and_then(|o| f(o).get(severity))
                .or_else(|| f(&self.all).get(severity))
                .map(|d| from.saturating_add(d.as_millis() as i64))
        };
        Due {
            acknowledge: pick(|b| &b.acknowledge),
            resolve: pick(|b| &b.resolve),
        }
    }
}

/// The earlier of two optional deadlines.
pub fn earlier(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// What one pass of [`Store::enforce`] did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Enforced {
    /// (incident, the level it is at now) for each acknowledge-by deadline passed.
    pub escalated: Vec<(i64, i64)>,
    /// (task, incident, level) for each operator call task not made in time.
    pub tasks_overdue: Vec<(i64, i64, i64)>,
    /// Incidents whose resolve-by deadline passed.
    pub resolve_breached: Vec<i64>,
}

/// Why an incident escalates.
#[derive(Debug, Clone, Copy)]
enum Why {
    /// Its acknowledge-by deadline passed.
    Acknowledge,
    /// Operator call task `0` was not recorded as made by its deadline.
    Task(i64),
}

/// Incidents looked at in one pass (the rest in the next).
const PASS: i64 = 256;

impl Store {
    /// At `now`: escalates the open incidents whose acknowledge-by deadline is past and the
    /// incidents of call tasks not made in time, and marks those whose resolve-by deadline
    /// is past.
    pub async fn enforce(&self, now: DateTime<Utc>) -> Result<Enforced, StoreError> {
        let now = now.timestamp_millis();
        let mut out = Enforced::default();
        let due = sqlx::query(
            "SELECT id FROM incidents WHERE status = 'open' AND ack_by <= $1 ORDER BY ack_by
             LIMIT $2",
        )
        .bind(now)
        .bind(PASS)
        .fetch_all(self.pool())
        .await?;
        for r in due {
            let id: i64 = r.try_get("id")?;
            if let Some(level) = self.escalate(id, now, Why::Acknowledge).await? {
                out.escalated.push((id, level));
            }
        }
        let late = sqlx::query(
            "SELECT id, incident_id FROM call_tasks WHERE state = 'open' AND due_at <= $1
             ORDER BY due_at LIMIT $2",
        )
        .bind(now)
        .bind(PASS)
        .fetch_all(self.pool())
        .await?;
        for r in late {
            let (task, id): (i64, i64) = (r.try_get("id")?, r.try_get("incident_id")?);
            if let Some(level) = self.escalate(id, now, Why::Task(task)).await? {
                out.tasks_overdue.push((task, id, level));
            }
        }
        let mut tx = self.pool().begin().await?;
        let breached = sqlx::query(
            "UPDATE incidents SET resolve_breached_at = $1
             WHERE status IN ('open', 'acknowledged') AND resolve_by <= $1
               AND resolve_breached_at IS NULL
             RETURNING id, resolve_by",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for r in breached {
            let id: i64 = r.try_get("id")?;
            let by: i64 = r.try_get("resolve_by")?;
            let detail = serde_json::json!({"deadline": "resolve", "due": super::store::time(by)});
            super::store::timeline(&mut tx, id, now, "vigil", "deadline_breached", &detail).await?;
            out.resolve_breached.push(id);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Escalates incident `id` for `why`: the next level is told and given its own
    /// acknowledge-by deadline (when a rota has that level). The level the incident is at
    /// now, or `None` when another collector, an acknowledgement or a recorded call got there
    /// first.
    async fn escalate(&self, id: i64, now: i64, why: Why) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool().begin().await?;
        let row = match why {
            Why::Acknowledge => {
                sqlx::query(
                    "UPDATE incidents SET updated_at = $1,
                         ack_breached_at = COALESCE(ack_breached_at, $1)
                     WHERE id = $2 AND status = 'open' AND ack_by <= $1
                     RETURNING level, severity, customer",
                )
                .bind(now)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
            }
            Why::Task(task) => {
                let marked = sqlx::query(
                    "UPDATE call_tasks SET state = 'overdue', updated_at = $1
                     WHERE id = $2 AND state = 'open'",
                )
                .bind(now)
                .bind(task)
                .execute(&mut *tx)
                .await?;
                if marked.rows_affected() == 0 {
                    return Ok(None);
                }
                sqlx::query(
                    "UPDATE incidents SET updated_at = $1
                     WHERE id = $2 AND status IN ('open', 'acknowledged')
                     RETURNING level, severity, customer",
                )
                .bind(now)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
            }
        };
        let Some(r) = row else {
            // An ended incident does not escalate; an overdue task of one stays marked.
            tx.commit().await?;
            return Ok(None);
        };
        let level: i64 = r.try_get("level")?;
        let severity: String = r.try_get("severity")?;
        let customer: Option<String> = r.try_get("customer")?;
        let top = self.notifier().map_or(1, |n| n.levels()) as i64;
        let next = level < top;
        let level = level + i64::from(next);
        let ack_by = next
            .then(|| {
                self.deadlines()
                    .due(&severity, customer.as_deref(), now)
                    .acknowledge
            })
            .flatten();
        let mut detail = serde_json::json!({"level": level, "escalated": next});
        match why {
            Why::Acknowledge => {
                // The next level gets its own deadline; past the last, none.
                sqlx::query("UPDATE incidents SET level = $1, ack_by = $2 WHERE id = $3")
                    .bind(level)
                    .bind(ack_by)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                detail["deadline"] = "acknowledge".into();
            }
            Why::Task(task) => {
                sqlx::query("UPDATE incidents SET level = $1 WHERE id = $2")
                    .bind(level)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                detail["deadline"] = "call_task".into();
                detail["task"] = task.into();
            }
        }
        let cause =
            super::store::timeline(&mut tx, id, now, "vigil", "deadline_breached", &detail).await?;
        let announced = next
            && self
                .announce(&mut tx, id, cause, Kind::Escalated, now)
                .await?;
        tx.commit().await?;
        if announced {
            self.wake().notify_one();
        }
        Ok(Some(level))
    }
}

impl Store {
    /// Announces again (kind `reminder`) the active incidents whose route's `repeat_interval`
    /// has passed since they were last announced; their ids.
    pub async fn remind(&self, now: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
        let Some(n) = self.notifier().cloned() else {
            return Ok(Vec::new());
        };
        if !n.route.repeats() {
            return Ok(Vec::new());
        }
        let now = now.timestamp_millis();
        let active = self
            .list(&super::Filter {
                status: Some("active".into()),
                limit: Some(1000),
                ..super::Filter::default()
            })
            .await?;
        let mut out = Vec::new();
        for inc in active {
            let id = inc.id;
            let subject = super::store::subject_of(inc);
            let Some(every) = n
                .route
                .chosen(&subject.labels())
                .into_iter()
                .filter_map(|c| c.repeat_interval)
                .min()
            else {
                continue;
            };
            let last: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(created_at) FROM outbox WHERE incident_id = $1
                   AND kind IN ('opened', 'changed', 'escalated', 'reminder')",
            )
            .bind(id)
            .fetch_one(self.pool())
            .await?;
            // Never announced (silenced, held): nothing to remind of.
            let Some(last) = last else { continue };
            if now - last < every.as_millis() as i64 {
                continue;
            }
            let mut tx = self.pool().begin().await?;
            let detail = serde_json::json!({"last_announced": super::store::time(last)});
            let cause =
                super::store::timeline(&mut tx, id, now, "vigil", "reminder", &detail).await?;
            let announced = self
                .announce(&mut tx, id, cause, Kind::Reminder, now)
                .await?;
            tx.commit().await?;
            if announced {
                self.wake().notify_one();
                out.push(id);
            }
        }
        Ok(out)
    }
}

/// How often reminders are looked for.
const REMIND_EVERY: i64 = 30_000;

/// How often deadlines are looked at.
const EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Enforces deadlines every second, by `clock`, until `shutdown`; counts what passed.
pub async fn run(
    store: Store,
    clock: crate::index::writer::Clock,
    metrics: std::sync::Arc<crate::metrics::Metrics>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut reminded = i64::MIN;
    let mut gauged = i64::MIN;
    loop {
        let now = clock();
        match store.enforce(now).await {
            Ok(e) => count(&metrics, &e),
            Err(e) => tracing::error!(error = %e, "incident deadlines cannot be checked; retrying"),
        }
        if now.timestamp_millis().saturating_sub(gauged) >= GAUGE_EVERY {
            gauged = now.timestamp_millis();
            if let Err(e) = gauges(&store, &metrics, now.timestamp_millis()).await {
                tracing::warn!(error = %e, "incident gauges not read; next time");
            }
        }
        if now.timestamp_millis().saturating_sub(reminded) >= REMIND_EVERY {
            reminded = now.timestamp_millis();
            if let Err(e) = store.remind(now).await {
                tracing::error!(error = %e, "reminders cannot be made; retrying");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(EVERY) => {}
        }
    }
}

/// How often the open incidents and the outbox's oldest wait are read into the metrics.
const GAUGE_EVERY: i64 = 15_000;

/// Sets `vigil_incidents_open` and `vigil_notify_outbox_oldest_seconds` from the database.
pub async fn gauges(
    store: &Store,
    metrics: &crate::metrics::Metrics,
    now: i64,
) -> Result<(), sqlx::Error> {
    use sqlx::Row;
    let rows = sqlx::query(
        "SELECT severity, customer, COUNT(*) AS n FROM incidents
         WHERE status IN ('open', 'acknowledged') GROUP BY severity, customer",
    )
    .fetch_all(store.pool())
    .await?;
    // Series of customers with nothing open any more go, not stay at their last count.
    metrics.incidents_open.clear();
    for r in rows {
        let customer: Option<String> = r.try_get("customer")?;
        metrics
            .incidents_open
            .get_or_create(&vec![
                ("severity", r.try_get::<String, _>("severity")?),
                ("customer", customer.unwrap_or_default()),
            ])
            .set(r.try_get("n")?);
    }
    let oldest: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(created_at) FROM outbox WHERE state IN ('pending', 'started')",
    )
    .fetch_one(store.pool())
    .await?;
    metrics
        .notify_outbox_oldest
        .set(oldest.map_or(0, |o| (now - o).max(0) / 1000));
    Ok(())
}

/// Counts one pass in the metrics, and logs it.
pub fn count(metrics: &crate::metrics::Metrics, e: &Enforced) {
    for &(id, level) in &e.escalated {
        tracing::warn!(incident = id, level, "acknowledge-by deadline passed");
    }
    for id in &e.resolve_breached {
        tracing::warn!(incident = id, "resolve-by deadline passed");
    }
    for &(task, id, level) in &e.tasks_overdue {
        tracing::warn!(
            task,
            incident = id,
            level,
            "operator call task not made in time"
        );
    }
    for (deadline, n) in [
        ("acknowledge", e.escalated.len()),
        ("call_task", e.tasks_overdue.len()),
        ("resolve", e.resolve_breached.len()),
    ] {
        metrics
            .incident_deadlines_breached
            .get_or_create(&vec![("deadline", deadline.to_owned())])
            .inc_by(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_deadline_overrides_the_general_one_per_severity() {
        let cfg: IncidentsConfig = toml::from_str(
            "[acknowledge_within]\ncritical = \"5m\"\nhigh = \"15m\"\n[resolve_within]\ncritical = \"4h\"\n",
        )
        .expect("toml");
        let customers: Vec<crate::reference::Customer> = toml::from_str::<toml::Table>(
            "[[c]]\nid = \"ulb\"\n[c.acknowledge_within]\nhigh = \"2m\"\n",
        )
        .expect("toml")["c"]
            .clone()
            .try_into()
            .expect("customers");
        let d =
            Deadlines::new(&cfg, &Customers::new(customers).expect("customers")).expect("valid");
        assert_eq!(
            d.due("critical", Some("ulb"), 0),
            Due {
                acknowledge: Some(300_000),
                resolve: Some(14_400_000)
            }
        );
        assert_eq!(d.due("high", Some("ulb"), 0).acknowledge, Some(120_000));
        assert_eq!(d.due("high", Some("kul"), 0).acknowledge, Some(900_000));
        assert_eq!(d.due("high", None, 0).resolve, None);
        assert_eq!(d.due("low", None, 0), Due::default());
    }

    #[test]
    fn unknown_severities_and_bad_durations_are_named() {
        let bad = |t: &str| {
            let cfg: IncidentsConfig = toml::from_str(t).expect("toml");
            Deadlines::new(&cfg, &Customers::default())
                .expect_err("invalid")
                .1
        };
        assert!(bad("[acknowledge_within]\nurgent = \"5m\"\n").contains("\"urgent\""));
        assert!(bad("[resolve_within]\nhigh = \"soon\"\n").contains("resolve_within.high"));
    }
}
