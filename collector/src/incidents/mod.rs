//! Incidents: the queue the operations desk works. Alerts from detection become incidents;
//! people acknowledge, assign, comment, escalate, resolve and retract them, and every step is
//! on the incident's timeline.
//!
//! # Layout
//! - [`store`]: the incidents in SQL (SQLite under the data dir by default, PostgreSQL shared
//!   by several collectors), alerts grouped into them, the queue and one incident's timeline.
//! - [`lifecycle`]: the actions people take, and from which status each one is allowed.
//! - [`desk`]: what the desk does besides: incidents taken by hand, merged, split; the
//!   shift log.
//! - [`migrations`]: the database schema, as versioned migrations per dialect.
//!
//! # Invariants
//! - An alert is recorded at most once (its `event.id` is a key), so handing the same alerts
//!   again, as a write-ahead-log replay does, changes nothing.
//! - At most one *active* (open or acknowledged) incident exists per grouping key (rule,
//!   customer, group): a unique index enforces it, so collectors sharing a database raise one
//!   incident for one storm, however their alerts interleave. The storm is that incident's count.
//! - Once an incident is resolved or retracted, the next alert of its key opens a new one.
//! - An incident's danger is a judgement, not a severity: the rule's (a Sigma tag,
//!   [`DANGER_TAG`]) or an operator's (escalate). Once there, a later alert does not take it
//!   away; only an operator does.

pub mod deadlines;
pub mod desk;
pub mod lifecycle;
pub mod migrations;
pub mod store;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigil_schema::{Event, fields as f};

pub use lifecycle::Action;
pub use store::{Store, StoreError};

/// `[incidents]` in the collector configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IncidentsConfig {
    /// `sqlite://PATH` or `postgres://USER@HOST/DB`; by default `incidents.db` in the data dir.
    pub database: Option<String>,
    /// How long after it opens an incident of each severity must be acknowledged
    /// (`critical = "5m"`); past it, the next on-call level is told. None: no deadline.
    pub acknowledge_within: std::collections::BTreeMap<String, String>,
    /// How long after it opens an incident of each severity must be resolved.
    pub resolve_within: std::collections::BTreeMap<String, String>,
}

impl IncidentsConfig {
    /// The database URL, with the default under `data_dir`.
    pub fn url(&self, data_dir: &Path) -> String {
        match &self.database {
            Some(u) => u.clone(),
            None => format!("sqlite://{}", data_dir.join("incidents.db").display()),
        }
    }
}

/// The hand-over from detection (on the index writer thread) to the store.
#[derive(Clone)]
pub struct Queue {
    pub store: Store,
    pub rt: tokio::runtime::Handle,
    /// False while the database refuses alerts (`/readyz` shows it).
    pub healthy: Arc<AtomicBool>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// Longest wait between two attempts to reach a failing database.
const RETRY_MAX: Duration = Duration::from_secs(30);

impl Queue {
    /// Records the alert events among `events`. Blocks until the database has them: it is
    /// called before the batch that raised them is indexed, and the index commit is what ends
    /// the batch's replay from the write-ahead log, so an alert is never indexed without
    /// reaching the queue. While the database fails, this retries, and ingest waits behind it
    /// (agents spool) rather than losing an alert.
    pub fn hand(&self, events: &[Event]) {
        let alerts: Vec<Alert> = events.iter().filter_map(Alert::from_event).collect();
        if alerts.is_empty() {
            return;
        }
        let mut wait = Duration::from_millis(100);
        loop {
            match self.rt.block_on(self.store.record(&alerts)) {
                Ok(r) => {
                    self.healthy.store(true, Ordering::SeqCst);
                    let m = &self.metrics;
                    for (outcome, n) in [
                        ("opened", r.opened.len()),
                        ("grouped", r.grouped),
                        ("duplicate", r.duplicate),
                    ] {
                        m.incidents_alerts
                            .get_or_create(&vec![("outcome", outcome.to_owned())])
                            .inc_by(n as u64);
                    }
                    m.incidents_opened.inc_by(r.opened.len() as u64);
                    for id in r.opened {
                        tracing::info!(incident = id, "incident opened");
                    }
                    return;
                }
                Err(e) => {
                    self.healthy.store(false, Ordering::SeqCst);
                    self.metrics.incidents_errors.inc();
                    tracing::error!(error = %e, alerts = alerts.len(), retry_in = ?wait, "alerts not handed to the incident queue; ingest waits until they are");
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(RETRY_MAX);
                }
            }
        }
    }
}

/// Sigma's levels, lowest first; an incident's severity is one of them.
pub const SEVERITIES: &[&str] = &["informational", "low", "medium", "high", "critical"];

/// Rank of a severity in [`SEVERITIES`]; unknown ones rank as `medium`, Sigma's default.
pub fn severity_rank(s: &str) -> usize {
    SEVERITIES.iter().position(|l| *l == s).unwrap_or(2)
}

/// The Sigma tag by which a rule judges its detections a probable danger (an attack in
/// progress, a platform down): announced by phone first. Severity alone is not danger.
pub const DANGER_TAG: &str = "vigil.danger";

/// Where an incident is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Open,
    Acknowledged,
    Resolved,
    /// A false alarm, or no longer ours (different from resolved).
    Retracted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "open",
            Status::Acknowledged => "acknowledged",
            Status::Resolved => "resolved",
            Status::Retracted => "retracted",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        [
            Status::Open,
            Status::Acknowledged,
            Status::Resolved,
            Status::Retracted,
        ]
        .into_iter()
        .find(|st| st.as_str() == s)
    }

    /// Open or acknowledged: still being worked, and collecting alerts of its key.
    pub fn active(self) -> bool {
        matches!(self, Status::Open | Status::Acknowledged)
    }
}

/// An incident as the API shows it (DESIGN.md's shape, plus the rule and the assignee).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Incident {
    pub id: i64,
    pub title: String,
    pub status: Status,
    pub severity: String,
    pub danger: bool,
    pub customer: Option<String>,
    /// Customers it affects besides its own (behind a parent check that is down), each told
    /// like its own.
    #[serde(default)]
    pub affected: Vec<String>,
    /// The assets it concerns (ids), found from what its alerts were seen on.
    #[serde(default)]
    pub assets: Vec<String>,
    /// Its rules' tags.
    #[serde(default)]
    pub tags: Vec<String>,
    pub group_key: String,
    pub rule_id: String,
    pub assignee: Option<String>,
    /// Alerts grouped into it.
    pub count: i64,
    pub first_seen: chrono::DateTime<chrono::Utc>,
    pub last_seen: chrono::DateTime<chrono::Utc>,
    /// By when a person must acknowledge it before the next on-call level is told.
    #[serde(default)]
    pub acknowledge_by: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    pub resolve_by: Option<chrono::DateTime<chrono::Utc>>,
    /// The on-call level told, from 1; raised each time an acknowledge-by deadline passes.
    #[serde(default = "first_level")]
    pub level: i64,
    /// The deadlines that passed: `acknowledge`, `resolve`.
    #[serde(default)]
    pub breached: Vec<String>,
    /// Taken by hand: what kind of problem (`outage`, `security`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Taken by hand: the caller's or another desk's ticket reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ticket: Option<String>,
    /// Merged into another incident, which carries on (this one is resolved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<i64>,
    /// Its alerts (event ids), newest first, at most [`desk::MAX_ALERTS_SHOWN`]; only on
    /// one incident, not in the queue listing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<AlertRef>,
    /// What was sent about it and how each delivery stands, newest first (only on one
    /// incident).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notifications: Vec<crate::notify::outbox::Sent>,
    /// Oldest first; empty in the queue listing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub timeline: Vec<Entry>,
}

fn first_level() -> i64 {
    1
}

/// One alert of an incident: the alert event's id (searchable as `event.id`) and its time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRef {
    pub id: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// One step on an incident's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub at: chrono::DateTime<chrono::Utc>,
    pub actor: String,
    /// `opened`, `severity_raised`, or a [`lifecycle::Action`] name.
    pub action: String,
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// What the queue is filtered on (`GET /api/v1/incidents`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    /// A status, or `active` for open and acknowledged.
    pub status: Option<String>,
    pub severity: Option<String>,
    pub customer: Option<String>,
    /// Only incidents with (`true`) or without (`false`) a passed deadline.
    pub breached: Option<bool>,
    /// Assigned to this person; `-`: to nobody.
    pub assignee: Option<String>,
    /// Only probable dangers (`true`) or only the others (`false`).
    pub danger: Option<bool>,
    /// Seen within this long (`1h`, `7d`).
    pub since: Option<String>,
    /// `last_seen` (the default, most recent first), `severity` (highest first, danger
    /// first among equals), `ack_by` (soonest first, none last) or `id` (newest first).
    pub sort: Option<String>,
    pub limit: Option<usize>,
    /// Incidents skipped before the first listed (paging).
    pub offset: Option<usize>,
}

/// The part of an alert event the queue groups and shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub id: String,
    pub rule_id: String,
    pub title: String,
    pub severity: String,
    pub customer: Option<String>,
    /// A correlation's group; for a single detection, the host (or source) it was seen on.
    pub group_key: String,
    pub at: chrono::DateTime<chrono::Utc>,
    pub message: Option<String>,
    /// The rule judged it a probable danger (its tag [`DANGER_TAG`]).
    pub danger: bool,
    /// Customers it affects besides `customer`; one added to an active incident is an
    /// essential change (announced at once).
    pub affected: Vec<String>,
    /// What it was seen on: the assets watching any of it are the incident's (decree art.
    /// 3 and 4); an asset added to an active incident is an essential change.
    pub seen: Seen,
    /// Its rule's tags (Sigma `tags`): routes match them (`tags=attack.t1110`).
    pub tags: Vec<String>,
}

/// What an alert was seen on, for the assets that watch it (`watched_by` of an asset).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    pub agent: Option<String>,
    /// A check's id or a heartbeat's slug.
    pub check: Option<String>,
    pub ips: Vec<std::net::IpAddr>,
}

impl Alert {
    /// `None` for an event that is not an alert with an id and a rule.
    pub fn from_event(ev: &Event) -> Option<Alert> {
        let s = |k: &str| ev.get_str(k).map(str::to_owned);
        let group_key = s(f::ALERT_GROUP_KEY)
            .or_else(|| s(f::HOST_NAME).map(|h| format!("host.name={h}")))
            .or_else(|| s(f::SOURCE_IP).map(|ip| format!("source.ip={ip}")))
            .unwrap_or_default();
        Some(Alert {
            id: s(f::EVENT_ID)?,
            rule_id: s(f::RULE_ID)?,
            title: s(f::RULE_NAME).unwrap_or_else(|| "alert".into()),
            severity: s(f::RULE_LEVEL)
                .filter(|l| SEVERITIES.contains(&l.as_str()))
                .unwrap_or_else(|| "medium".into()),
            customer: s(f::CUSTOMER),
            group_key,
            at: ev.timestamp().unwrap_or_else(chrono::Utc::now),
            message: s(f::MESSAGE),
            danger: ev
                .get(f::TAGS)
                .and_then(|t| t.as_array())
                .is_some_and(|t| t.iter().any(|t| t.as_str() == Some(DANGER_TAG))),
            affected: Vec::new(),
            tags: ev
                .get(f::TAGS)
                .and_then(|t| t.as_array())
                .map(|t| {
                    t.iter()
                        .filter_map(|t| t.as_str())
                        .filter(|t| !t.is_empty() && !t.contains(','))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            seen: Seen {
                agent: s(f::AGENT_ID),
                check: None,
                ips: [f::SOURCE_IP, f::DESTINATION_IP]
                    .iter()
                    .filter_map(|k| ev.get_str(k)?.parse().ok())
                    .collect(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn danger_is_the_rule_s_judgement_not_its_level() {
        let mut ev = Event::new(vigil_schema::EventKind::Alert, chrono::Utc::now());
        ev.set_str(f::EVENT_ID, "a1");
        ev.set_str(f::RULE_ID, "r");
        ev.set_str(f::RULE_LEVEL, "critical");
        let a = Alert::from_event(&ev).expect("an alert");
        assert_eq!((a.severity.as_str(), a.danger), ("critical", false));
        ev.set(f::TAGS, serde_json::json!(["attack.t1486", DANGER_TAG]));
        assert!(Alert::from_event(&ev).expect("an alert").danger);
    }
}
