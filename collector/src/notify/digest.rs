//! Digests: the announcements [`super::flood`] held for a receiver, sent together as one
//! e-mail at most once per `digest_interval` (the first as soon as something is held); and
//! groups: the first announcements of the incidents of a route's group (`group_by`), sent
//! together as one e-mail and one webhook payload, `group_wait` after the group's first and
//! then at most once per `group_interval`.
//!
//! # Invariants
//! - Held items and the digest that takes them are written in one transaction with the
//!   digest's deliveries (kind `digest` in the outbox), so a digest is sent like any
//!   announcement: retried, recorded, never lost, never twice with different contents.
//! - A digest lists exactly the items it took (`digest_items.digest` = its cause).

use std::collections::BTreeSet;

use sqlx::{Any, AnyPool, Row, Transaction};

use super::Notifier;
use super::flood::Held;
use super::plan::{Channel, Delivery, Kind};
use crate::incidents::store::timeline;

/// Most items one digest takes (the rest go in the next).
const MAX_ITEMS: i64 = 1000;

/// Records `held` (deliveries of the announcement `cause` about `incident`) for the digests.
pub async fn keep(
    tx: &mut Transaction<'_, Any>,
    incident: i64,
    customer: Option<&str>,
    cause: i64,
    kind: Kind,
    held: &[Held],
    now: i64,
) -> Result<(), sqlx::Error> {
    for h in held {
        sqlx::query(
            "INSERT INTO digest_items (incident_id, cause, kind, receiver, customer, reason,
                 created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(incident)
        .bind(cause)
        .bind(kind.as_str())
        .bind(&h.receiver)
        .bind(customer)
        .bind(h.reason)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Records the first announcement `cause` of `incident` for `receiver`'s group `grp` (with
/// its labels), to go with the group's others when the group is due.
#[allow(clippy::too_many_arguments)]
pub async fn keep_group(
    tx: &mut Transaction<'_, Any>,
    incident: i64,
    customer: Option<&str>,
    cause: i64,
    receiver: &str,
    grp: &(String, std::collections::BTreeMap<String, String>),
    chosen: &super::route::Chosen,
    now: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO digest_items (incident_id, cause, kind, receiver, customer, reason,
             created_at, grp, grp_labels, wait_ms, every_ms)
         VALUES ($1, $2, 'opened', $3, $4, 'group', $5, $6, $7, $8, $9)",
    )
    .bind(incident)
    .bind(cause)
    .bind(receiver)
    .bind(customer)
    .bind(now)
    .bind(&grp.0)
    .bind(serde_json::to_string(&grp.1).unwrap_or_default())
    .bind(chosen.group_wait.as_millis() as i64)
    .bind(chosen.group_interval.as_millis() as i64)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Makes the digests and groups that are due at `now`: a digest per receiver with held
/// items whose last digest is at least `digest_interval` old; a group's announcement once
/// `group_wait` has passed since its first waiting incident and `group_interval` since the
/// group last went. How many were made.
pub async fn make_due(pool: &AnyPool, n: &Notifier, now: i64) -> Result<usize, sqlx::Error> {
    let interval = n.cfg.digest_interval.as_millis() as i64;
    let pending: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT receiver FROM digest_items WHERE digest IS NULL AND grp IS NULL
         ORDER BY receiver",
    )
    .fetch_all(pool)
    .await?;
    let mut made = 0;
    for receiver in pending {
        let last: Option<i64> = sqlx::query_scalar(
            "SELECT MAX(created_at) FROM outbox WHERE kind = 'digest' AND receiver = $1",
        )
        .bind(&receiver)
        .fetch_one(pool)
        .await?;
        if last.is_some_and(|l| l > now - interval) {
            continue;
        }
        if make(pool, n, &receiver, None, now).await? {
            made += 1;
        }
    }
    let groups = sqlx::query(
        "SELECT d.receiver, d.grp, MIN(d.created_at) AS first, MAX(d.wait_ms) AS wait,
             MAX(d.every_ms) AS every, MAX(g.flushed_at) AS flushed
         FROM digest_items d LEFT JOIN notify_groups g ON g.receiver = d.receiver AND g.grp = d.grp
         WHERE d.digest IS NULL AND d.grp IS NOT NULL
         GROUP BY d.receiver, d.grp ORDER BY d.receiver, d.grp",
    )
    .fetch_all(pool)
    .await?;
    for g in groups {
        let (first, wait, every): (i64, i64, i64) =
            (g.try_get("first")?, g.try_get("wait")?, g.try_get("every")?);
        let flushed: Option<i64> = g.try_get("flushed")?;
        let due = (first + wait).max(flushed.map_or(i64::MIN, |f| f + every));
        if due > now {
            continue;
        }
        let (receiver, grp): (String, String) = (g.try_get("receiver")?, g.try_get("grp")?);
        if make(pool, n, &receiver, Some(&grp), now).await? {
            made += 1;
        }
    }
    Ok(made)
}

/// One digest for `receiver` (of its group `grp`, or of what flood control held); whether
/// it took any items.
async fn make(
    pool: &AnyPool,
    n: &Notifier,
    receiver: &str,
    grp: Option<&str>,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // The group's key, bound only when there is one: `$3` is the limit either way.
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT id, incident_id, customer FROM digest_items
         WHERE receiver = $1 AND digest IS NULL AND {} ORDER BY id LIMIT $3",
        if grp.is_some() {
            "grp = $2"
        } else {
            "grp IS NULL AND $2 = ''"
        }
    )))
    .bind(receiver)
    .bind(grp.unwrap_or_default())
    .bind(MAX_ITEMS)
    .fetch_all(&mut *tx)
    .await?;
    let (Some(first), Some(last)) = (rows.first(), rows.last()) else {
        return Ok(false);
    };
    let (first_id, last_id): (i64, i64) = (first.try_get("id")?, last.try_get("id")?);
    let anchor: i64 = last.try_get("incident_id")?;
    let mut incidents = BTreeSet::new();
    let mut customers = BTreeSet::new();
    for r in &rows {
        incidents.insert(r.try_get::<i64, _>("incident_id")?);
        if let Some(c) = r.try_get::<Option<String>, _>("customer")? {
            customers.insert(c);
        }
    }
    // Where it goes: the receiver's addresses and its roles' contacts' addresses; a group
    // also to the receiver's webhooks (one payload with an alert per incident).
    let mut deliveries: Vec<Delivery> = Vec::new();
    let to = |channel, target: &String| Delivery {
        receiver: receiver.to_owned(),
        channel,
        target: target.clone(),
    };
    if let Some(r) = n.receivers.get(receiver) {
        let mut targets: Vec<String> = r.email.clone();
        let all = n.customers.get();
        for c in &customers {
            for k in all.contacts(Some(c), &r.roles) {
                if let Some(e) = &k.email {
                    targets.push(e.clone());
                }
            }
        }
        targets.sort();
        targets.dedup();
        deliveries.extend(targets.iter().map(|t| to(Channel::Email, t)));
        if grp.is_some() {
            deliveries.extend(r.webhook.iter().map(|t| to(Channel::Webhook, t)));
        }
    }
    let (action, each, kind) = match grp {
        Some(_) => ("group", "grouped", Kind::Group),
        None => ("digest", "digested", Kind::Digest),
    };
    let detail = serde_json::json!({
        "receiver": receiver, "group": grp, "items": rows.len(), "incidents": incidents,
        "to": deliveries.iter().map(|d| &d.target).collect::<Vec<_>>(),
    });
    let cause = timeline(&mut tx, anchor, now, "vigil", action, &detail).await?;
    for &i in incidents.iter().filter(|&&i| i != anchor) {
        timeline(
            &mut tx,
            i,
            now,
            "vigil",
            each,
            &serde_json::json!({"receiver": receiver, action: cause, "incident": anchor}),
        )
        .await?;
    }
    sqlx::query(
        "UPDATE digest_items SET digest = $1
         WHERE receiver = $2 AND digest IS NULL AND id >= $3 AND id <= $4
           AND (grp = $5 OR (grp IS NULL AND $5 = ''))",
    )
    .bind(cause)
    .bind(receiver)
    .bind(first_id)
    .bind(last_id)
    .bind(grp.unwrap_or_default())
    .execute(&mut *tx)
    .await?;
    if let Some(g) = grp {
        sqlx::query(
            "INSERT INTO notify_groups (receiver, grp, flushed_at) VALUES ($1, $2, $3)
             ON CONFLICT (receiver, grp) DO UPDATE SET flushed_at = excluded.flushed_at",
        )
        .bind(receiver)
        .bind(g)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    }
    if deliveries.is_empty() {
        tracing::warn!(
            receiver,
            "a {action} has no e-mail address or webhook to go to (the receiver has none)"
        );
    }
    super::outbox::enqueue(&mut tx, anchor, cause, kind, &deliveries, now).await?;
    tx.commit().await?;
    Ok(true)
}

/// One held announcement, as a digest lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub incident: i64,
    pub title: String,
    pub customer: Option<String>,
    pub severity: String,
    pub kind: String,
    pub reason: String,
    pub at: i64,
}

/// What digest `cause` holds, oldest first.
pub async fn lines(pool: &AnyPool, cause: i64) -> Result<Vec<Line>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT d.incident_id, d.kind, d.reason, d.created_at, d.customer, i.title, i.severity
         FROM digest_items d JOIN incidents i ON i.id = d.incident_id
         WHERE d.digest = $1 ORDER BY d.id",
    )
    .bind(cause)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Line {
                incident: r.try_get("incident_id")?,
                title: r.try_get("title")?,
                customer: r.try_get("customer")?,
                severity: r.try_get("severity")?,
                kind: r.try_get("kind")?,
                reason: r.try_get("reason")?,
                at: r.try_get("created_at")?,
            })
        })
        .collect()
}

/// The labels of the group whose announcement is `cause` (empty for a digest).
pub async fn group_labels(
    pool: &AnyPool,
    cause: i64,
) -> Result<std::collections::BTreeMap<String, String>, sqlx::Error> {
    let text: Option<String> = sqlx::query_scalar(
        "SELECT grp_labels FROM digest_items WHERE digest = $1 AND grp IS NOT NULL LIMIT 1",
    )
    .bind(cause)
    .fetch_optional(pool)
    .await?
    .flatten();
    Ok(text
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default())
}

/// The digest e-mail in `lang`: (subject, body).
pub fn email(lines: &[Line], external_url: &str, lang: super::words::Lang) -> (String, String) {
    let w = lang.words();
    let n = lines.len().to_string();
    let subject = format!(
        "[Vigil] {}",
        super::words::fill(w.digest_subject, &[("n", &n)])
    );
    let mut body = format!("{}\n\n", w.digest_intro);
    for l in lines {
        let at = chrono::DateTime::from_timestamp_millis(l.at)
            .unwrap_or_default()
            .to_rfc3339();
        let why = match l.reason.as_str() {
            "exclusion" => w.held_because[0],
            "customer_limit" => w.held_because[1],
            "limit" => w.held_because[2],
            "sms_cap" => w.held_because[3],
            _ => w.held_because[4],
        };
        body.push_str(&format!(
            "- {at} incident {} ({}, {}): {} — {}, {why}\n  {}\n",
            l.incident,
            l.customer.as_deref().unwrap_or(w.no_customer),
            l.severity,
            l.title,
            l.kind,
            super::text::incident_url(external_url, l.incident)
        ));
    }
    (subject, body)
}
