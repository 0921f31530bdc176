//! Digests: the announcements [`super::flood`] held for a receiver, sent together as one
//! e-mail at most once per `digest_interval` (the first as soon as something is held).
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

/// Makes the digests that are due at `now`: one per receiver with held items whose last
/// digest is at least `digest_interval` old. How many were made.
pub async fn make_due(pool: &AnyPool, n: &Notifier, now: i64) -> Result<usize, sqlx::Error> {
    let interval = n.cfg.digest_interval.as_millis() as i64;
    let pending: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT receiver FROM digest_items WHERE digest IS NULL ORDER BY receiver",
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
        if make(pool, n, &receiver, now).await? {
            made += 1;
        }
    }
    Ok(made)
}

/// One digest for `receiver`; whether it took any items.
async fn make(pool: &AnyPool, n: &Notifier, receiver: &str, now: i64) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "SELECT id, incident_id, customer FROM digest_items
         WHERE receiver = $1 AND digest IS NULL ORDER BY id LIMIT $2",
    )
    .bind(receiver)
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
    // Where the digest goes: the receiver's addresses and its roles' contacts' addresses.
    let mut targets: Vec<String> = Vec::new();
    if let Some(r) = n.receivers.get(receiver) {
        targets.extend(r.email.iter().cloned());
        let all = n.customers.get();
        for c in &customers {
            for k in all.contacts(Some(c), &r.roles) {
                if let Some(e) = &k.email {
                    targets.push(e.clone());
                }
            }
        }
    }
    targets.sort();
    targets.dedup();
    let detail = serde_json::json!({
        "receiver": receiver, "items": rows.len(), "incidents": incidents, "to": targets,
    });
    let cause = timeline(&mut tx, anchor, now, "vigil", "digest", &detail).await?;
    for &i in incidents.iter().filter(|&&i| i != anchor) {
        timeline(
            &mut tx,
            i,
            now,
            "vigil",
            "digested",
            &serde_json::json!({"receiver": receiver, "digest": cause, "incident": anchor}),
        )
        .await?;
    }
    sqlx::query(
        "UPDATE digest_items SET digest = $1
         WHERE receiver = $2 AND digest IS NULL AND id >= $3 AND id <= $4",
    )
    .bind(cause)
    .bind(receiver)
    .bind(first_id)
    .bind(last_id)
    .execute(&mut *tx)
    .await?;
    let deliveries: Vec<Delivery> = targets
        .into_iter()
        .map(|target| Delivery {
            receiver: receiver.to_owned(),
            channel: Channel::Email,
            target,
        })
        .collect();
    if deliveries.is_empty() {
        tracing::warn!(
            receiver,
            "a digest has no e-mail address to go to (the receiver has none)"
        );
    }
    super::outbox::enqueue(&mut tx, anchor, cause, Kind::Digest, &deliveries, now).await?;
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

/// Why an announcement was held, in words.
fn why(reason: &str) -> &'static str {
    match reason {
        "exclusion" => "excluded (art. 9)",
        "customer_limit" => "the customer's limit was reached",
        "limit" => "your limit was reached",
        "sms_cap" => "the monthly SMS cap was reached",
        _ => "held",
    }
}

/// The digest e-mail: (subject, body).
pub fn email(lines: &[Line], external_url: &str) -> (String, String) {
    let subject = format!(
        "[Vigil] Digest: {} announcement{} held",
        lines.len(),
        if lines.len() == 1 { "" } else { "s" }
    );
    let mut body = String::from(
        "These announcements were held instead of sent one by one. Each incident's page has \
         its timeline.\n\n",
    );
    for l in lines {
        let at = chrono::DateTime::from_timestamp_millis(l.at)
            .unwrap_or_default()
            .to_rfc3339();
        body.push_str(&format!(
            "- {at} incident {} ({}, {}): {} — {}, {}\n  {}\n",
            l.incident,
            l.customer.as_deref().unwrap_or("no customer"),
            l.severity,
            l.title,
            l.kind,
            why(&l.reason),
            super::text::incident_url(external_url, l.incident)
        ));
    }
    (subject, body)
}
