//! The outbox: every delivery of every announcement, in the incident database.
//!
//! # Invariants
//! - [`enqueue`] runs in the transaction of the incident change it announces: the change and
//!   its deliveries are committed together or not at all.
//! - A delivery is claimed (`started`, its attempt counted and on the timeline) before it is
//!   sent, and finished (`sent`, or `pending` again with a later `not_before`, or `failed`
//!   after the last attempt) after. A delivery left `started` longer than the lease (its
//!   collector died mid-attempt) is claimed again: the same delivery, the same idempotency
//!   key.
//! - A stage-1 delivery (the e-mail) is due only once every stage-0 delivery of the same
//!   announcement (the calls) has ended, or `confirm_after` after the announcement.

use sqlx::any::AnyRow;
use sqlx::{Any, AnyPool, Row, Transaction};

use super::plan::{Channel, Delivery, Kind};
use crate::incidents::store::ROWS_PER_STATEMENT;

/// The incident of a notice that is about no incident (a maintenance window's): such
/// deliveries have a negative `cause` of their own and no timeline.
pub const NO_INCIDENT: i64 = 0;

/// One delivery as the dispatcher works on it.
#[derive(Debug, Clone)]
pub struct Item {
    pub id: i64,
    pub incident_id: i64,
    pub cause: i64,
    pub kind: Kind,
    pub delivery: Delivery,
    /// Attempts so far, this one included once claimed.
    pub attempts: i64,
    pub created_at: i64,
    /// Names this delivery in the gateway's status callback.
    pub token: String,
}

impl Item {
    /// What a receiver uses to drop a repeat: the same for every attempt of this delivery.
    pub fn key(&self) -> String {
        format!("vigil-{}-{}", self.incident_id, self.id)
    }
}

/// Everyone told about incident `id` so far (every delivery of every announcement, each
/// channel and target once, in the order first told).
pub async fn told(tx: &mut Transaction<'_, Any>, id: i64) -> Result<Vec<Delivery>, sqlx::Error> {
    let rows = sqlx::query(
        // A group's announcement is about each incident it lists: its deliveries were told.
        "SELECT receiver, channel, target FROM outbox WHERE incident_id = $1
            OR (kind = 'group' AND cause IN
                (SELECT digest FROM digest_items WHERE incident_id = $1 AND grp IS NOT NULL))
         ORDER BY id",
    )
    .bind(id)
    .fetch_all(&mut **tx)
    .await?;
    let mut out: Vec<Delivery> = Vec::new();
    for r in rows {
        let channel: String = r.try_get("channel")?;
        let Some(channel) = Channel::parse(&channel) else {
            continue;
        };
        let d = Delivery {
            receiver: r.try_get("receiver")?,
            channel,
            target: r.try_get("target")?,
        };
        if !out
            .iter()
            .any(|o| o.channel == d.channel && o.target == d.target)
        {
            out.push(d);
        }
    }
    Ok(out)
}

/// Writes the deliveries of one announcement (`cause`: the timeline entry of the change).
pub async fn enqueue(
    tx: &mut Transaction<'_, Any>,
    incident: i64,
    cause: i64,
    kind: Kind,
    deliveries: &[Delivery],
    now: i64,
) -> Result<(), sqlx::Error> {
    // A few statements for all of them (each statement is a round trip to the database);
    // placeholders numbered in the order they first appear, as SQLite through `Any` needs.
    for chunk in deliveries.chunks(ROWS_PER_STATEMENT) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let b = 4 + i * 5;
                format!(
                    "($1, $2, $3, $4, $4, $4, ${}, ${}, ${}, ${}, ${}, 'pending', 0)",
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
            "INSERT INTO outbox (incident_id, cause, kind, not_before, created_at, updated_at,
                 receiver, channel, target, stage, token, state, attempts) VALUES {}",
            values.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(incident)
            .bind(cause)
            .bind(kind.as_str())
            .bind(now);
        for d in chunk {
            let token: String = {
                use rand::Rng;
                let mut rng = rand::rng();
                (0..32)
                    .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
                    .collect()
            };
            q = q
                .bind(d.receiver.clone())
                .bind(d.channel.as_str())
                .bind(d.target.clone())
                .bind(d.channel.stage())
                .bind(token);
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

fn item(r: &AnyRow) -> Result<Option<Item>, sqlx::Error> {
    let channel: String = r.try_get("channel")?;
    let kind: String = r.try_get("kind")?;
    let (Some(channel), Some(kind)) = (Channel::parse(&channel), Kind::parse(&kind)) else {
        return Ok(None);
    };
    Ok(Some(Item {
        id: r.try_get("id")?,
        incident_id: r.try_get("incident_id")?,
        cause: r.try_get("cause")?,
        kind,
        delivery: Delivery {
            receiver: r.try_get("receiver")?,
            channel,
            target: r.try_get("target")?,
        },
        attempts: r.try_get("attempts")?,
        created_at: r.try_get("created_at")?,
        token: r.try_get("token")?,
    }))
}

/// When a claim is due and how long one may stay `started`.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub now: i64,
    /// A stage-1 delivery waits at most this long for the calls of its announcement.
    pub confirm_ms: i64,
    /// A `started` delivery older than this is taken to be abandoned.
    pub lease_ms: i64,
}

/// Claims up to `limit` due deliveries: each is `started`, its attempt counted, and the
/// start is on the incident's timeline, before it is returned.
pub async fn claim(pool: &AnyPool, t: Timing, limit: i64) -> Result<Vec<Item>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT o.id, o.incident_id, o.cause, o.kind, o.receiver, o.channel, o.target,
                o.attempts, o.created_at, o.token
         FROM outbox o
         WHERE ((o.state = 'pending' AND o.not_before <= $1)
                OR (o.state = 'started' AND o.updated_at <= $2))
           AND (o.stage = 0 OR o.created_at <= $3 OR NOT EXISTS (
                SELECT 1 FROM outbox v
                WHERE v.cause = o.cause AND v.stage = 0 AND v.state IN ('pending', 'started')))
         ORDER BY o.id
         LIMIT $4",
    )
    .bind(t.now)
    .bind(t.now - t.lease_ms)
    .bind(t.now - t.confirm_ms)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let mut candidates = Vec::with_capacity(rows.len());
    // One transaction for the whole batch, and a few statements for all of it: a commit per
    // delivery, then a statement per delivery, were most of the dispatcher's time.
    let mut tx = pool.begin().await?;
    for r in &rows {
        match item(r)? {
            Some(it) => candidates.push(it),
            None => {
                // Written by a newer version: given up here rather than blocking the queue.
                let id: i64 = r.try_get("id")?;
                tracing::error!(
                    delivery = id,
                    "notification of an unknown channel or kind given up"
                );
                sqlx::query(
                    "UPDATE outbox SET state = 'failed', last_error = 'unknown channel or kind',
                         updated_at = $1 WHERE id = $2",
                )
                .bind(t.now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
        }
    }
    // Another dispatcher (a second collector) may have taken some since the select: only
    // those this update moves are ours.
    let mut taken = std::collections::HashSet::new();
    for chunk in candidates.chunks(4 * ROWS_PER_STATEMENT) {
        let marks: Vec<String> = (4..4 + chunk.len()).map(|i| format!("${i}")).collect();
        // Only placeholders are formatted into the statement; every value is bound.
        let sql = format!(
            "UPDATE outbox SET state = 'started', attempts = attempts + 1, updated_at = $1
             WHERE ((state = 'pending' AND not_before <= $2)
                    OR (state = 'started' AND updated_at <= $3))
               AND id IN ({}) RETURNING id",
            marks.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(t.now)
            .bind(t.now)
            .bind(t.now - t.lease_ms);
        for it in chunk {
            q = q.bind(it.id);
        }
        for r in q.fetch_all(&mut *tx).await? {
            taken.insert(r.try_get::<i64, _>("id")?);
        }
    }
    let mut out = Vec::with_capacity(taken.len());
    let mut steps = Vec::new();
    for mut it in candidates.into_iter().filter(|it| taken.contains(&it.id)) {
        it.attempts += 1;
        if it.incident_id != NO_INCIDENT {
            let detail = serde_json::json!({
                "channel": it.delivery.channel.as_str(),
                "target": it.delivery.target,
                "receiver": it.delivery.receiver,
                "kind": it.kind.as_str(),
                "attempt": it.attempts,
                "key": it.key(),
            });
            steps.push((
                it.incident_id,
                t.now,
                "vigil",
                "notify_started",
                detail.to_string(),
            ));
        }
        out.push(it);
    }
    crate::incidents::store::timeline_many(&mut tx, &steps).await?;
    tx.commit().await?;
    Ok(out)
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    Sent(serde_json::Value),
    /// Failed; tried again at `retry_at` (ms), or given up when `None`.
    Failed {
        error: String,
        retry_at: Option<i64>,
    },
}

/// Records the end of an attempt on the delivery and on the incident's timeline.
pub async fn finish(
    pool: &AnyPool,
    it: &Item,
    outcome: &Outcome,
    now: i64,
) -> Result<(), sqlx::Error> {
    finish_all(pool, &[(it.clone(), outcome.clone())], now).await
}

/// [`finish`] for several attempts, in one transaction and a few statements.
pub async fn finish_all(
    pool: &AnyPool,
    ended: &[(Item, Outcome)],
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    let sent: Vec<i64> = ended
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Sent(_)))
        .map(|(it, _)| it.id)
        .collect();
    for chunk in sent.chunks(4 * ROWS_PER_STATEMENT) {
        let marks: Vec<String> = (2..2 + chunk.len()).map(|i| format!("${i}")).collect();
        // Only placeholders are formatted into the statement; every value is bound.
        let sql = format!(
            "UPDATE outbox SET state = 'sent', updated_at = $1, last_error = NULL WHERE id IN ({})",
            marks.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
        for id in chunk {
            q = q.bind(*id);
        }
        q.execute(&mut *tx).await?;
    }
    let mut steps = Vec::new();
    for (it, outcome) in ended {
        let mut detail = serde_json::json!({
            "channel": it.delivery.channel.as_str(),
            "target": it.delivery.target,
            "attempt": it.attempts,
            "key": it.key(),
        });
        let action = match outcome {
            Outcome::Sent(extra) => {
                detail["answer"] = extra.clone();
                "notified"
            }
            Outcome::Failed { error, retry_at } => {
                let (state, not_before) = match retry_at {
                    Some(at) => ("pending", *at),
                    None => ("failed", now),
                };
                sqlx::query(
                    "UPDATE outbox SET state = $1, not_before = $2, updated_at = $3, last_error = $4
                     WHERE id = $5",
                )
                .bind(state)
                .bind(not_before)
                .bind(now)
                .bind(error)
                .bind(it.id)
                .execute(&mut *tx)
                .await?;
                detail["error"] = error.clone().into();
                if retry_at.is_some() {
                    detail["retry_at_ms"] = (*retry_at).into();
                    "notify_retry"
                } else {
                    "notify_failed"
                }
            }
        };
        if it.incident_id != NO_INCIDENT {
            steps.push((it.incident_id, now, "vigil", action, detail.to_string()));
        } else {
            tracing::info!(delivery = it.id, kind = it.kind.as_str(), action, %detail, "notice");
        }
    }
    crate::incidents::store::timeline_many(&mut tx, &steps).await?;
    tx.commit().await
}

/// Puts claimed deliveries back, not attempted and their attempt not counted, until `until`
/// (their channel's breaker is open); on their incidents' timelines as `notify_postponed`.
pub async fn postpone(
    pool: &AnyPool,
    items: &[Item],
    until: i64,
    now: i64,
) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    for it in items {
        sqlx::query(
            "UPDATE outbox SET state = 'pending', attempts = attempts - 1, not_before = $1,
                 updated_at = $2 WHERE id = $3 AND state = 'started'",
        )
        .bind(until)
        .bind(now)
        .bind(it.id)
        .execute(&mut *tx)
        .await?;
        if it.incident_id != NO_INCIDENT {
            let detail = serde_json::json!({
                "channel": it.delivery.channel.as_str(), "target": it.delivery.target,
                "until_ms": until, "why": "the channel keeps failing (circuit breaker open)",
            });
            crate::incidents::store::timeline(
                &mut tx,
                it.incident_id,
                now,
                "vigil",
                "notify_postponed",
                &detail,
            )
            .await?;
        }
    }
    tx.commit().await
}

/// The calls of an announcement and how they ended (`sent`, `failed`, or still `pending` /
/// `started`), for the e-mail that confirms them.
pub async fn calls(
    pool: &AnyPool,
    cause: i64,
) -> Result<Vec<(String, String, String)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT channel, target, state FROM outbox WHERE cause = $1 AND stage = 0
           AND channel IN ('voice', 'sms', 'task') ORDER BY id",
    )
    .bind(cause)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                r.try_get("channel")?,
                r.try_get("target")?,
                r.try_get("state")?,
            ))
        })
        .collect()
}

/// The first e-mail delivery to `target` about `incident` (later ones thread under it).
pub async fn first_email(
    pool: &AnyPool,
    incident: i64,
    target: &str,
) -> Result<Option<i64>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT MIN(id) AS id FROM outbox WHERE incident_id = $1 AND channel = 'email' AND target = $2",
    )
    .bind(incident)
    .bind(target)
    .fetch_one(pool)
    .await?;
    row.try_get::<Option<i64>, _>("id")
}

/// Deliveries not sent yet, by state (`pending`, `started`), for metrics and readiness.
pub async fn backlog(pool: &AnyPool) -> Result<i64, sqlx::Error> {
    let row = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE state IN ('pending', 'started')")
        .fetch_one(pool)
        .await?;
    row.try_get("n")
}

/// One delivery about an incident, as the desk sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sent {
    pub kind: String,
    pub receiver: String,
    pub channel: String,
    pub target: String,
    /// `pending`, `started`, `sent` or `failed`.
    pub state: String,
    pub attempts: i64,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// The latest deliveries about incident `id` (at most 200), newest first.
pub async fn of_incident(pool: &AnyPool, id: i64) -> Result<Vec<Sent>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT kind, receiver, channel, target, state, attempts, updated_at, last_error
         FROM outbox WHERE incident_id = $1 ORDER BY id DESC LIMIT 200",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Sent {
                kind: r.try_get("kind")?,
                receiver: r.try_get("receiver")?,
                channel: r.try_get("channel")?,
                target: r.try_get("target")?,
                state: r.try_get("state")?,
                attempts: r.try_get("attempts")?,
                updated_at: crate::incidents::store::time(r.try_get("updated_at")?),
                last_error: r.try_get("last_error")?,
            })
        })
        .collect()
}

/// The delivery a gateway callback names by its token: (incident, channel, target).
pub async fn by_token(
    pool: &AnyPool,
    token: &str,
) -> Result<Option<(i64, String, String)>, sqlx::Error> {
    let row = sqlx::query("SELECT incident_id, channel, target FROM outbox WHERE token = $1")
        .bind(token)
        .fetch_optional(pool)
        .await?;
    row.map(|r| {
        Ok((
            r.try_get("incident_id")?,
            r.try_get("channel")?,
            r.try_get("target")?,
        ))
    })
    .transpose()
}

/// Adds `instead` (another channel for the same announcement) after `failed` was given up,
/// unless the announcement already has it; on the timeline as `notify_failover`. Whether it
/// was added.
pub async fn fail_over(
    pool: &AnyPool,
    failed: &Item,
    instead: &Delivery,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let there = sqlx::query(
        "SELECT COUNT(*) AS n FROM outbox WHERE cause = $1 AND channel = $2 AND target = $3",
    )
    .bind(failed.cause)
    .bind(instead.channel.as_str())
    .bind(&instead.target)
    .fetch_one(&mut *tx)
    .await?
    .try_get::<i64, _>("n")?;
    if there > 0 {
        return Ok(false);
    }
    enqueue(
        &mut tx,
        failed.incident_id,
        failed.cause,
        failed.kind,
        std::slice::from_ref(instead),
        now,
    )
    .await?;
    let detail = serde_json::json!({
        "from": failed.delivery.channel.as_str(), "to": instead.channel.as_str(),
        "target": instead.target,
    });
    crate::incidents::store::timeline(
        &mut tx,
        failed.incident_id,
        now,
        "vigil",
        "notify_failover",
        &detail,
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}
