//! A check's state by quorum: the latest result of each vantage point (agent), and every
//! second, per check, `up`, `degraded`, `down` or `unknown`:
//!
//! - Only fresh results count: taken within two intervals and a timeout of now. An agent
//!   that did not report does not count, and results that arrive late from an agent's spool
//!   are too old to count: they never page, but fill the intervals the state was `unknown`
//!   for availability ([`Quorum::backfill`]).
//! - On a shared database (PostgreSQL) every collector decides on every agent's results:
//!   each round writes its new results to `check_results` and reads all of them.
//! - Fewer fresh results than the quorum `k`: `unknown` (shown with how many reported).
//!   Else `down` when at least `k` say down; `degraded` when at least `k` say degraded or
//!   down; else `up`.
//! - Flap damping: a new state is taken only once it has held for a whole interval.
//! - `down` opens an incident (rule [`RULE`], grouped per check, with the check's danger,
//!   severity and customer); `up` or `degraded` after it resolves it with the outage's length.
//!
//! # Invariants
//! - A check's state and its outage count live in `check_states`, changed by a conditional
//!   update from the state read; each outage's number names the alert that opens its incident
//!   (`check:{id}:{outage}`), so one outage opens one incident.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{AnyPool, Row};
use vigil_schema::check::ProbeStatus;
use vigil_schema::{Event, EventKind, fields as f};

use super::check::{Check, Checks};
use crate::incidents::store::time;
use crate::incidents::{Alert, Store, StoreError};
use crate::index::writer::Clock;
use crate::reference::directory::Shared;

/// The rule id of check incidents.
pub const RULE: &str = "vigil.check";

/// One vantage point's latest result of one check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Seen {
    pub status: ProbeStatus,
    pub at: DateTime<Utc>,
    pub error: Option<String>,
}

/// A probe event's result: (check, result); none for another kind of event.
pub fn result_of(ev: &Event) -> Option<(String, Seen)> {
    if ev.kind() != Some(EventKind::Probe) {
        return None;
    }
    let status = match ev.get_str(f::MONITOR_STATUS)? {
        "up" => ProbeStatus::Up,
        "degraded" => ProbeStatus::Degraded,
        "down" => ProbeStatus::Down,
        _ => return None,
    };
    Some((
        ev.get_str(f::MONITOR_ID)?.to_owned(),
        Seen {
            status,
            at: ev.timestamp()?,
            error: ev.get_str(f::ERROR_MESSAGE).map(str::to_owned),
        },
    ))
}

/// A check's state, as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct State {
    /// `up`, `degraded`, `down` or `unknown`.
    pub state: String,
    pub since: Option<DateTime<Utc>>,
    /// Fresh results, and how many vantage points are expected.
    pub reported: usize,
    pub expected: usize,
    pub quorum: u32,
    pub vantage: Vec<Vantage>,
    pub availability: super::availability::Availability,
    /// Each of the last 90 days (UTC): its date and availability, oldest first.
    #[serde(skip)]
    pub days: Vec<(String, Option<f64>)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Vantage {
    pub agent: String,
    #[serde(flatten)]
    pub seen: Seen,
    /// Counted in the state (taken recently enough).
    pub fresh: bool,
}

/// What the evaluation holds between rounds: a candidate state and since when.
#[derive(Debug, Clone)]
struct Candidate {
    state: &'static str,
    since: i64,
}

/// The checks' latest results and states.
pub struct Quorum {
    pool: AnyPool,
    store: Store,
    clock: Clock,
    pub checks: Shared<Checks>,
    metrics: Arc<crate::metrics::Metrics>,
    /// Every configured agent (a check without `agents` runs on all).
    agents: Vec<String>,
    results: Mutex<HashMap<String, HashMap<String, Seen>>>,
    candidates: Mutex<HashMap<String, Candidate>>,
    /// When each check was first asked about by [`Quorum::overdue`] (ms).
    known_since: Mutex<HashMap<String, i64>>,
    /// Results too old to count for the state when they arrived (an agent's spool drained
    /// after it was cut off), by check: they count for availability only ([`Quorum::backfill`]).
    late: Mutex<HashMap<String, Vec<(String, Seen)>>>,
    /// On a shared database: results taken here not yet written to `check_results`.
    dirty: Mutex<Vec<(String, String, Seen)>>,
    /// Every vantage point's latest results as the last round read them (other collectors'
    /// agents' too, on a shared database).
    snapshot: Mutex<Results>,
}

/// Latest result by check, then by agent.
type Results = HashMap<String, HashMap<String, Seen>>;

/// Adds `more` to `into`, the later result of an agent winning.
fn merge(into: &mut Results, more: &Results) {
    for (check, per) in more {
        let mine = into.entry(check.clone()).or_default();
        for (agent, seen) in per {
            if mine.get(agent).is_none_or(|o| o.at < seen.at) {
                mine.insert(agent.clone(), seen.clone());
            }
        }
    }
}

/// What is behind check `c` (the checks that depend on it, at any depth): their ids and
/// their customers other than `c`'s, sorted. The reach of its outage, told in its incident
/// (and to those customers) instead of in theirs.
fn behind(c: &Check, checks: &Checks) -> (Vec<String>, Vec<String>) {
    let mut ids = vec![c.id.clone()];
    let mut found: Vec<&Check> = Vec::new();
    while let Some(id) = ids.pop() {
        for (o, _) in &checks.list {
            if o.depends_on.as_deref() == Some(id.as_str()) && !found.iter().any(|f| f.id == o.id) {
                found.push(o);
                ids.push(o.id.clone());
            }
        }
    }
    let mut customers: Vec<String> = found
        .iter()
        .filter_map(|o| o.customer.clone())
        .filter(|cu| Some(cu) != c.customer.as_ref())
        .collect();
    customers.sort_unstable();
    customers.dedup();
    let mut names: Vec<String> = found.iter().map(|o| o.id.clone()).collect();
    names.sort_unstable();
    (names, customers)
}

/// How long a result counts for `check`'s state (ms): two intervals and a timeout.
fn fresh_for(check: &Check) -> i64 {
    2 * check.interval().as_millis() as i64
        + vigil_schema::config::parse_duration(&check.timeout)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(5000)
}

/// A check's computed state from its fresh results.
fn decide(
    check: &Check,
    results: Option<&HashMap<String, Seen>>,
    now: i64,
) -> (&'static str, usize) {
    let window = fresh_for(check);
    let fresh: Vec<&Seen> = results
        .map(|r| {
            r.iter()
                .filter(|(a, s)| check.runs_on(a) && now - s.at.timestamp_millis() <= window)
                .map(|(_, s)| s)
                .collect()
        })
        .unwrap_or_default();
    (judge(check.quorum as usize, &fresh), fresh.len())
}

/// The state `results` (one per vantage point) give with a quorum of `k`.
fn judge(k: usize, results: &[&Seen]) -> &'static str {
    let count = |f: &dyn Fn(ProbeStatus) -> bool| results.iter().filter(|s| f(s.status)).count();
    if results.len() < k {
        "unknown"
    } else if count(&|s| s == ProbeStatus::Down) >= k {
        "down"
    } else if count(&|s| s != ProbeStatus::Up) >= k {
        "degraded"
    } else {
        "up"
    }
}

impl Quorum {
    pub fn new(
        store: Store,
        clock: Clock,
        checks: Shared<Checks>,
        agents: Vec<String>,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Quorum {
        Quorum {
            pool: store.pool().clone(),
            store,
            clock,
            checks,
            metrics,
            agents,
            results: Mutex::new(HashMap::new()),
            candidates: Mutex::new(HashMap::new()),
            known_since: Mutex::new(HashMap::new()),
            late: Mutex::new(HashMap::new()),
            dirty: Mutex::new(Vec::new()),
            snapshot: Mutex::new(HashMap::new()),
        }
    }

    /// Every vantage point's latest results: this collector's, and on a shared database
    /// (PostgreSQL) those other collectors took, written and read in `check_results`.
    async fn pooled(&self) -> Result<Results, sqlx::Error> {
        let mut all = self
            .results
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if self.store.is_shared() {
            let dirty = std::mem::take(&mut *self.dirty.lock().unwrap_or_else(|e| e.into_inner()));
            if !dirty.is_empty() {
                let mut tx = self.pool.begin().await?;
                for (check, agent, seen) in &dirty {
                    sqlx::query(
                        "INSERT INTO check_results (check_id, agent, status, at, error) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (check_id, agent) DO UPDATE \
                         SET status = excluded.status, at = excluded.at, error = excluded.error \
                         WHERE check_results.at < excluded.at",
                    )
                    .bind(check)
                    .bind(agent)
                    .bind(seen.status.as_str())
                    .bind(seen.at.timestamp_millis())
                    .bind(seen.error.clone())
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
            }
            let rows = sqlx::query("SELECT check_id, agent, status, at, error FROM check_results")
                .fetch_all(&self.pool)
                .await?;
            let mut shared: Results = HashMap::new();
            for r in rows {
                let status = match r.try_get::<String, _>("status")?.as_str() {
                    "up" => ProbeStatus::Up,
                    "degraded" => ProbeStatus::Degraded,
                    _ => ProbeStatus::Down,
                };
                shared.entry(r.try_get("check_id")?).or_default().insert(
                    r.try_get("agent")?,
                    Seen {
                        status,
                        at: time(r.try_get("at")?),
                        error: r.try_get("error")?,
                    },
                );
            }
            merge(&mut all, &shared);
        }
        *self.snapshot.lock().unwrap_or_else(|e| e.into_inner()) = all.clone();
        Ok(all)
    }

    /// The checks no vantage point has reported within their freshness window (two intervals
    /// and a timeout) although this collector has known them for that long: probes that
    /// should run and do not (no agent runs them, or none reaches this collector).
    pub fn overdue(&self) -> Vec<String> {
        let now = (self.clock)().timestamp_millis();
        let checks = self.checks.get();
        let mut all = self
            .results
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        merge(
            &mut all,
            &self.snapshot.lock().unwrap_or_else(|e| e.into_inner()),
        );
        let mut known = self.known_since.lock().unwrap_or_else(|e| e.into_inner());
        known.retain(|id, _| checks.get(id).is_some());
        let mut out: Vec<String> = checks
            .list
            .iter()
            .filter(|(c, _)| {
                let since = *known.entry(c.id.clone()).or_insert(now);
                now - since > fresh_for(c) && decide(c, all.get(&c.id), now).1 == 0
            })
            .map(|(c, _)| c.id.clone())
            .collect();
        out.sort_unstable();
        out
    }

    /// Takes the results of a batch agent `agent` delivered.
    pub fn record(&self, agent: &str, results: Vec<(String, Seen)>) {
        if results.is_empty() {
            return;
        }
        let now = (self.clock)().timestamp_millis();
        let checks = self.checks.get();
        let mut all = self.results.lock().unwrap_or_else(|e| e.into_inner());
        for (check, seen) in results {
            if let Some((c, _)) = checks.get(&check)
                && now - seen.at.timestamp_millis() > fresh_for(c)
            {
                self.late
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry(check.clone())
                    .or_default()
                    .push((agent.to_owned(), seen.clone()));
            }
            let per = all.entry(check.clone()).or_default();
            // Results of one agent can arrive out of order (a spool drained after a live
            // one): the latest taken wins.
            match per.get(agent) {
                Some(old) if old.at > seen.at => {}
                _ => {
                    if self.store.is_shared() {
                        self.dirty.lock().unwrap_or_else(|e| e.into_inner()).push((
                            check.clone(),
                            agent.to_owned(),
                            seen.clone(),
                        ));
                    }
                    per.insert(agent.to_owned(), seen);
                }
            }
        }
    }

    /// Every check's transitions, oldest first.
    async fn transitions(&self) -> Result<HashMap<String, Vec<(i64, String)>>, sqlx::Error> {
        let rows = sqlx::query("SELECT check_id, at, state FROM check_transitions ORDER BY at, id")
            .fetch_all(&self.pool)
            .await?;
        let mut out: HashMap<String, Vec<(i64, String)>> = HashMap::new();
        for r in rows {
            out.entry(r.try_get("check_id")?)
                .or_default()
                .push((r.try_get("at")?, r.try_get("state")?));
        }
        Ok(out)
    }

    /// The state of every check, as the API shows it.
    pub async fn states(&self) -> Result<HashMap<String, State>, sqlx::Error> {
        let now = (self.clock)().timestamp_millis();
        let stored = self.stored().await?;
        let transitions = self.transitions().await?;
        let checks = self.checks.get();
        let all = self.pooled().await?;
        let mut out = HashMap::new();
        for (c, _) in &checks.list {
            let results = all.get(&c.id);
            let (_, reported) = decide(c, results, now);
            let (state, since, _, _) = stored
                .get(&c.id)
                .cloned()
                .unwrap_or_else(|| ("unknown".into(), None, 0, None));
            let window = fresh_for(c);
            let mut vantage: Vec<Vantage> = results
                .map(|r| {
                    r.iter()
                        .filter(|(a, _)| c.runs_on(a))
                        .map(|(a, s)| Vantage {
                            agent: a.clone(),
                            seen: s.clone(),
                            fresh: now - s.at.timestamp_millis() <= window,
                        })
                        .collect()
                })
                .unwrap_or_default();
            vantage.sort_by(|a, b| a.agent.cmp(&b.agent));
            out.insert(
                c.id.clone(),
                State {
                    state,
                    since: since.map(time),
                    reported,
                    expected: if c.agents.is_empty() {
                        self.agents.len()
                    } else {
                        c.agents.len()
                    },
                    quorum: c.quorum,
                    vantage,
                    availability: super::availability::windows(
                        transitions
                            .get(&c.id)
                            .map(Vec::as_slice)
                            .unwrap_or_default(),
                        now,
                    ),
                    days: super::availability::daily(
                        transitions
                            .get(&c.id)
                            .map(Vec::as_slice)
                            .unwrap_or_default(),
                        now,
                        90,
                    ),
                },
            );
        }
        Ok(out)
    }

    /// id → (state, since, outages, down_since) as stored.
    #[allow(clippy::type_complexity)]
    async fn stored(
        &self,
    ) -> Result<HashMap<String, (String, Option<i64>, i64, Option<i64>)>, sqlx::Error> {
        let rows = sqlx::query("SELECT id, state, since, outages, down_since FROM check_states")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("id")?,
                    (
                        r.try_get("state")?,
                        r.try_get("since")?,
                        r.try_get("outages")?,
                        r.try_get("down_since")?,
                    ),
                ))
            })
            .collect()
    }

    /// One round at `now`: each check's state from its fresh results, damped; the changes
    /// taken, with their incidents. Returns the checks that changed, with their new state.
    pub async fn evaluate(&self, now: DateTime<Utc>) -> Result<Vec<(String, String)>, StoreError> {
        let now_ms = now.timestamp_millis();
        let checks = self.checks.get();
        let stored = self.stored().await?;
        let all = self.pooled().await?;
        let mut changed: Vec<(String, String)> = Vec::new();
        // Each check's state as this round leaves it (its parent's, for a child).
        let state_of = |id: &str, changed: &[(String, String)]| {
            changed
                .iter()
                .find(|(c, _)| c == id)
                .map(|(_, s)| s.clone())
                .or_else(|| stored.get(id).map(|s| s.0.clone()))
        };
        for (c, _) in &checks.list {
            let (mut state, reported) = decide(c, all.get(&c.id), now_ms);
            // Behind a parent that is down, nothing can be said of it.
            if let Some(p) = &c.depends_on
                && state_of(p, &changed).as_deref() == Some("down")
            {
                state = "unknown";
            }
            let (current, _, outages, down_since) = stored
                .get(&c.id)
                .cloned()
                .unwrap_or_else(|| ("unknown".into(), None, 0, None));
            let take = {
                let mut cands = self.candidates.lock().unwrap_or_else(|e| e.into_inner());
                if state == current {
                    cands.remove(&c.id);
                    false
                } else {
                    let cand = cands.entry(c.id.clone()).or_insert(Candidate {
                        state,
                        since: now_ms,
                    });
                    if cand.state != state {
                        *cand = Candidate {
                            state,
                            since: now_ms,
                        };
                    }
                    // Damping: the new state must hold for an interval.
                    now_ms - cand.since >= c.interval().as_millis() as i64
                }
            };
            if !take {
                continue;
            }
            // An outage lasts from `down` to `up` or `degraded`, through `unknown`: down
            // again after unknown is the same outage.
            let outage = if state == "down" && down_since.is_none() {
                outages + 1
            } else {
                outages
            };
            let down_since = match state {
                "down" | "unknown" => down_since.or((state == "down").then_some(now_ms)),
                _ => None,
            };
            // The incident first, the state after: whoever reads the state `down` finds its
            // incident. Both steps are idempotent (the outage's alert id; only active
            // incidents are resolved), so a collector that loses the race below did no harm.
            if state == "down" {
                let said: Vec<String> = all
                    .get(&c.id)
                    .map(|r| {
                        let mut v: Vec<String> = r
                            .iter()
                            .filter(|(a, s)| c.runs_on(a) && s.status == ProbeStatus::Down)
                            .map(|(a, s)| format!("{a}: {}", s.error.as_deref().unwrap_or("down")))
                            .collect();
                        v.sort();
                        v
                    })
                    .unwrap_or_default();
                let (names, customers) = behind(c, &checks);
                let reach = if names.is_empty() {
                    String::new()
                } else {
                    format!(
                        ". Behind it: {} (customers: {})",
                        names.join(", "),
                        if customers.is_empty() {
                            "none named".to_owned()
                        } else {
                            customers.join(", ")
                        }
                    )
                };
                let alert = Alert {
                    id: format!("check:{}:{outage}", c.id),
                    rule_id: RULE.into(),
                    title: format!("Check {} is down", c.name),
                    severity: c.severity.clone(),
                    customer: c.customer.clone(),
                    group_key: format!("check={}", c.id),
                    at: now,
                    message: Some(format!(
                        "{} of {reported} vantage points say down (quorum {}): {}{}",
                        said.len(),
                        c.quorum,
                        said.join("; "),
                        reach
                    )),
                    danger: c.danger,
                    affected: customers,
                    tags: Vec::new(),
                    seen: crate::incidents::Seen {
                        check: Some(c.id.clone()),
                        ..Default::default()
                    },
                };
                self.store.record(&[alert]).await?;
            } else if state != "unknown"
                && let Some(began) = stored.get(&c.id).and_then(|s| s.3)
            {
                self.resolve(c, began, now_ms).await?;
            }
            let mut tx = self.pool.begin().await?;
            let went = sqlx::query(
                "INSERT INTO check_states (id, state, since, outages, down_since)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (id) DO UPDATE SET state = excluded.state,
                     since = excluded.since, outages = excluded.outages,
                     down_since = excluded.down_since
                 WHERE check_states.state = $6",
            )
            .bind(&c.id)
            .bind(state)
            .bind(now_ms)
            .bind(outage)
            .bind(down_since)
            .bind(&current)
            .execute(&mut *tx)
            .await?;
            if went.rows_affected() == 1 {
                sqlx::query(
                    "INSERT INTO check_transitions (check_id, at, state) VALUES ($1, $2, $3)",
                )
                .bind(&c.id)
                .bind(now_ms)
                .bind(state)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            self.candidates
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&c.id);
            if went.rows_affected() == 0 {
                continue;
            }
            tracing::info!(check = %c.id, from = %current, to = state, reported, "check state changed");
            changed.push((c.id.clone(), state.to_owned()));
        }
        // One series per check in force (a deleted check's goes), its state after this round.
        self.metrics.check_state.clear();
        for (c, _) in &checks.list {
            let state = changed
                .iter()
                .find(|(id, _)| *id == c.id)
                .map(|(_, s)| s.as_str())
                .or_else(|| stored.get(&c.id).map(|s| s.0.as_str()))
                .unwrap_or("unknown");
            let value = match state {
                "up" => 1,
                "degraded" => 2,
                "down" => 3,
                _ => 0,
            };
            self.metrics
                .check_state
                .get_or_create(&vec![("check", c.id.clone())])
                .set(value);
        }
        Ok(changed)
    }

    /// Late results count for availability, never for the state: where a check's recorded
    /// state was `unknown` (its vantage points silent), each interval the late results cover
    /// gets the state they give by quorum, as transitions of its own (and `unknown` again at
    /// its end unless a recorded transition ends it first). A span already known, live or
    /// filled before, is left as it is. No incident is opened or resolved. Returns how many
    /// intervals were filled.
    pub async fn backfill(&self) -> Result<usize, sqlx::Error> {
        let late = std::mem::take(&mut *self.late.lock().unwrap_or_else(|e| e.into_inner()));
        let checks = self.checks.get();
        let mut filled = 0;
        for (id, results) in late {
            let Some((c, _)) = checks.get(&id) else {
                continue;
            };
            let slot = (c.interval().as_millis() as i64).max(1);
            // Each interval's latest result per vantage point.
            let mut slots: std::collections::BTreeMap<i64, HashMap<String, Seen>> =
                Default::default();
            for (agent, seen) in results.into_iter().filter(|(a, _)| c.runs_on(a)) {
                let per = slots
                    .entry(seen.at.timestamp_millis().div_euclid(slot))
                    .or_default();
                if per.get(&agent).is_none_or(|o| o.at < seen.at) {
                    per.insert(agent, seen);
                }
            }
            let mut tx = super::heartbeat::begin_write(&self.pool).await?;
            let recorded: Vec<(i64, String)> = sqlx::query(
                "SELECT at, state FROM check_transitions WHERE check_id = $1 ORDER BY at, id",
            )
            .bind(&c.id)
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|r| Ok((r.try_get("at")?, r.try_get("state")?)))
            .collect::<Result<_, sqlx::Error>>()?;
            let mut add = Vec::new();
            for (n, per) in &slots {
                let (start, end) = (n * slot, (n + 1) * slot);
                let before = recorded
                    .iter()
                    .take_while(|(at, _)| *at <= start)
                    .last()
                    .map_or("unknown", |(_, s)| s.as_str());
                let seen: Vec<&Seen> = per.values().collect();
                let state = judge(c.quorum as usize, &seen);
                if before != "unknown" || state == "unknown" {
                    continue;
                }
                add.push((start, state));
                let ended = recorded.iter().any(|(at, _)| *at > start && *at < end);
                if !ended {
                    add.push((end, "unknown"));
                }
                filled += 1;
            }
            for (at, state) in add {
                sqlx::query(
                    "INSERT INTO check_transitions (check_id, at, state) VALUES ($1, $2, $3)",
                )
                .bind(&c.id)
                .bind(at)
                .bind(state)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        }
        Ok(filled)
    }

    /// Writes the state transitions not yet in the index as events (`event.kind: state`,
    /// `event.dataset: vigil.check`, `monitor.id`, `monitor.status` the new state), then marks
    /// them: after a crash between the two they are written again, never lost. Returns how
    /// many were written.
    pub async fn index_transitions(
        &self,
        ingest: &tokio::sync::mpsc::Sender<crate::index::writer::Msg>,
    ) -> anyhow::Result<usize> {
        let rows = sqlx::query(
            "SELECT id, check_id, at, state FROM check_transitions WHERE indexed = 0 \
             ORDER BY id LIMIT 1000",
        )
        .fetch_all(&self.pool)
        .await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let checks = self.checks.get();
        let mut ids = Vec::with_capacity(rows.len());
        let mut events = Vec::with_capacity(rows.len());
        for r in &rows {
            let id: i64 = r.try_get("id")?;
            let check: String = r.try_get("check_id")?;
            let at: i64 = r.try_get("at")?;
            let state: String = r.try_get("state")?;
            let at = DateTime::from_timestamp_millis(at).unwrap_or_else(Utc::now);
            let mut ev = Event::new(EventKind::State, at);
            ev.set_str(f::EVENT_DATASET, "vigil.check");
            ev.set_str(f::MONITOR_ID, check.clone());
            ev.set_str(f::MONITOR_STATUS, state.clone());
            let known = checks.get(&check).map(|(c, _)| c);
            if let Some(c) = known {
                ev.set_str(f::MONITOR_TYPE, c.kind.clone());
                if let Some(cu) = &c.customer {
                    ev.set_str(f::CUSTOMER, cu.clone());
                }
            }
            let name = known.map_or(check.as_str(), |c| c.name.as_str());
            ev.set_str(f::MESSAGE, format!("check {name} is {state}"));
            ids.push(id);
            events.push(ev);
        }
        crate::index::writer::write_own(ingest, events).await?;
        let marks: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "UPDATE check_transitions SET indexed = 1 WHERE id IN ({})",
            marks.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for id in &ids {
            q = q.bind(*id);
        }
        q.execute(&self.pool).await?;
        Ok(ids.len())
    }

    async fn resolve(&self, c: &Check, since: i64, now: i64) -> Result<(), StoreError> {
        super::end_outage(
            &self.store,
            (RULE, &format!("check={}", c.id)),
            since,
            now,
            &format!("check {} answers again", c.id),
        )
        .await?;
        Ok(())
    }
}

/// Evaluates every second until `shutdown`; reloads the checks every 30 s (changes made
/// through another collector sharing the database).
pub async fn run(
    q: Arc<Quorum>,
    configured: Vec<Check>,
    ingest: tokio::sync::mpsc::Sender<crate::index::writer::Msg>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut loaded = std::time::Instant::now();
    loop {
        if let Err(e) = q.evaluate((q.clock)()).await {
            tracing::error!(error = %e, "check states cannot be evaluated; retrying");
        }
        if let Err(e) = q.backfill().await {
            tracing::warn!(error = %e, "late results not counted for availability yet; retrying");
        }
        if let Err(e) = q.index_transitions(&ingest).await {
            tracing::warn!(error = %e, "check state changes not indexed yet; retrying");
        }
        if loaded.elapsed() >= std::time::Duration::from_secs(30) {
            loaded = std::time::Instant::now();
            match super::check::load(&q.pool, &configured).await {
                Ok(c) => q.checks.set(c),
                Err(e) => tracing::error!(error = %e, "checks not reloaded; retrying"),
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
        }
    }
}
