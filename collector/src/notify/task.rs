//! Operator call tasks: a call a person at the desk makes (decree art. 7, "par téléphone"),
//! for a receiver whose calls are made by the desk (`calls_by = "desk"`). A task holds the
//! number, who answers it, a script made from the incident, and a deadline. The operator
//! records each attempt; reaching someone ends the task.
//!
//! # Invariants
//! - One task per outbox delivery (a unique index): a delivery handed to the desk again after
//!   a crash finds its task and makes no second one.
//! - A task still open at its deadline becomes `overdue` once, and its incident escalates as
//!   an unacknowledged one does ([`crate::incidents::deadlines`]).
//! - Every attempt and the end are on the incident's timeline, with who recorded them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{AnyPool, Row};

use crate::incidents::store::{time, timeline};

/// A task as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Task {
    pub id: i64,
    pub incident_id: i64,
    pub receiver: String,
    pub number: String,
    /// Who the number belongs to, when known (a customer's contact, one of ours).
    pub contact: Option<String>,
    pub script: String,
    pub due_at: DateTime<Utc>,
    /// `open`, `done` or `overdue`.
    pub state: String,
    pub attempts: i64,
    pub answered_by: Option<String>,
    pub outcome: Option<String>,
    pub updated_by: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// What an operator records about a call (`POST /api/v1/tasks/{id}`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attempt {
    /// `reached` (ends the task), `no_answer`, `busy`, `voicemail` or `wrong_number`.
    pub outcome: String,
    /// Who answered (required when reached).
    #[serde(default)]
    pub answered_by: Option<String>,
    #[serde(default)]
    pub note: Option<String>,
}

pub const OUTCOMES: &[&str] = &["reached", "no_answer", "busy", "voicemail", "wrong_number"];

/// Why an attempt cannot be recorded.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum TaskError {
    #[error("no call task {0}")]
    NotFound(i64),
    #[error("{0}")]
    Invalid(String),
    #[error("call task {0} is done: someone was reached")]
    Done(i64),
}

const COLUMNS: &str = "id, incident_id, receiver, number, contact, script, due_at, state, \
                       attempts, answered_by, outcome, updated_by, created_at";

fn task(r: &sqlx::any::AnyRow) -> Result<Task, sqlx::Error> {
    Ok(Task {
        id: r.try_get("id")?,
        incident_id: r.try_get("incident_id")?,
        receiver: r.try_get("receiver")?,
        number: r.try_get("number")?,
        contact: r.try_get("contact")?,
        script: r.try_get("script")?,
        due_at: time(r.try_get("due_at")?),
        state: r.try_get("state")?,
        attempts: r.try_get("attempts")?,
        answered_by: r.try_get("answered_by")?,
        outcome: r.try_get("outcome")?,
        updated_by: r.try_get("updated_by")?,
        created_at: time(r.try_get("created_at")?),
    })
}

/// A new task for outbox delivery `outbox_id`.
pub struct NewTask<'a> {
    pub incident_id: i64,
    pub outbox_id: i64,
    pub receiver: &'a str,
    pub number: &'a str,
    pub contact: Option<&'a str>,
    pub script: &'a str,
    pub due_at: i64,
}

/// Puts the task on the desk (or finds the one made for the same delivery before); its id.
pub async fn create(pool: &AnyPool, t: &NewTask<'_>, now: i64) -> Result<i64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let made = sqlx::query(
        "INSERT INTO call_tasks (incident_id, outbox_id, receiver, number, contact, script,
             due_at, state, attempts, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', 0, $8, $8)
         ON CONFLICT (outbox_id) DO NOTHING RETURNING id",
    )
    .bind(t.incident_id)
    .bind(t.outbox_id)
    .bind(t.receiver)
    .bind(t.number)
    .bind(t.contact)
    .bind(t.script)
    .bind(t.due_at)
    .bind(now)
    .fetch_optional(&mut *tx)
    .await?;
    let id = match made {
        Some(r) => {
            let id: i64 = r.try_get("id")?;
            let detail = serde_json::json!({"task": id, "number": t.number,
                "contact": t.contact, "due": time(t.due_at)});
            timeline(&mut tx, t.incident_id, now, "vigil", "call_task", &detail).await?;
            id
        }
        None => sqlx::query("SELECT id FROM call_tasks WHERE outbox_id = $1")
            .bind(t.outbox_id)
            .fetch_one(&mut *tx)
            .await?
            .try_get("id")?,
    };
    tx.commit().await?;
    Ok(id)
}

pub const STATES: &[&str] = &["open", "overdue", "done"];

/// Tasks in `state` (one of [`STATES`]; none: open and overdue), oldest deadline first.
pub async fn list(pool: &AnyPool, state: Option<&str>) -> Result<Vec<Task>, sqlx::Error> {
    let (a, b) = match state {
        Some(s) => (s, s),
        None => ("open", "overdue"),
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM call_tasks WHERE state IN ($1, $2) ORDER BY due_at, id LIMIT 1000"
    )))
    .bind(a)
    .bind(b)
    .fetch_all(pool)
    .await?;
    rows.iter().map(task).collect()
}

pub async fn get(pool: &AnyPool, id: i64) -> Result<Option<Task>, sqlx::Error> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM call_tasks WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?
    .as_ref()
    .map(task)
    .transpose()
}

/// Records an attempt at task `id` by `actor`; `reached` ends the task. The task as it is now.
pub async fn record(
    pool: &AnyPool,
    id: i64,
    attempt: &Attempt,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Result<Task, TaskError>, sqlx::Error> {
    if !OUTCOMES.contains(&attempt.outcome.as_str()) {
        return Ok(Err(TaskError::Invalid(format!(
            "outcome {:?} is not one of {}",
            attempt.outcome,
            OUTCOMES.join(", ")
        ))));
    }
    let reached = attempt.outcome == "reached";
    let answered = attempt.answered_by.as_deref().map(str::trim).unwrap_or("");
    if reached && answered.is_empty() {
        return Ok(Err(TaskError::Invalid(
            "answered_by: who was reached is required with outcome reached".into(),
        )));
    }
    if answered.len() > 256 || attempt.note.as_ref().is_some_and(|n| n.len() > 4096) {
        return Ok(Err(TaskError::Invalid(
            "answered_by: at most 256 characters; note: at most 4096".into(),
        )));
    }
    let now = now.timestamp_millis();
    let mut tx = pool.begin().await?;
    let Some(r) = sqlx::query(
        "UPDATE call_tasks SET attempts = attempts + 1, updated_at = $1, updated_by = $2,
             outcome = $3, answered_by = COALESCE($4, answered_by),
             state = CASE WHEN $5 = 1 THEN 'done' ELSE state END
         WHERE id = $6 AND state <> 'done'
         RETURNING incident_id",
    )
    .bind(now)
    .bind(actor)
    .bind(&attempt.outcome)
    .bind((!answered.is_empty()).then_some(answered))
    .bind(i64::from(reached))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(Err(match get(pool, id).await? {
            Some(_) => TaskError::Done(id),
            None => TaskError::NotFound(id),
        }));
    };
    let incident: i64 = r.try_get("incident_id")?;
    let detail = serde_json::json!({"task": id, "outcome": attempt.outcome,
        "answered_by": attempt.answered_by, "note": attempt.note});
    timeline(&mut tx, incident, now, actor, "call_made", &detail).await?;
    tx.commit().await?;
    Ok(get(pool, id).await?.ok_or(TaskError::NotFound(id)))
}
