//! Flood control: which deliveries of an announcement are held for the receivers' digest
//! instead of sent at once.
//!
//! - An **exclusion** ([`super::silence::Mute::Exclusion`]) matching the incident holds all.
//! - A **customer limit** (`[notify.customer_limit]`): past `count` announcements about one
//!   customer's incidents within `per`, the next are held.
//! - A **receiver limit** (`limit` on a receiver): the same, per receiver.
//! - The **SMS cap** (`[notify] sms_cap`): past this many SMS about one customer's incidents
//!   in a calendar month (UTC), further SMS are held (the calls and e-mails still go).
//!
//! # Invariants
//! - A retraction is never held (decree art. 6).
//! - Every hold is on the incident's timeline (`held`, with the reason and the receivers) and
//!   becomes a digest item: nothing held is dropped.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use sqlx::{Any, Row, Transaction};

use super::Notifier;
use super::plan::{Channel, Delivery, Kind, Subject};

/// Deliveries held for one receiver, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Held {
    pub receiver: String,
    /// `exclusion`, `customer_limit`, `limit` or `sms_cap`.
    pub reason: &'static str,
    pub deliveries: Vec<Delivery>,
}

/// Announcements about `customer`'s incidents (by their change) since `since`.
async fn announcements_for_customer(
    tx: &mut Transaction<'_, Any>,
    customer: &str,
    since: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "SELECT COUNT(DISTINCT o.cause) AS n FROM outbox o JOIN incidents i ON i.id = o.incident_id
         WHERE i.customer = $1 AND o.created_at > $2 AND o.kind <> 'digest'",
    )
    .bind(customer)
    .bind(since)
    .fetch_one(&mut **tx)
    .await?
    .try_get("n")
}

/// Announcements to `receiver` since `since`.
async fn announcements_to(
    tx: &mut Transaction<'_, Any>,
    receiver: &str,
    since: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "SELECT COUNT(DISTINCT cause) AS n FROM outbox
         WHERE receiver = $1 AND created_at > $2 AND kind <> 'digest'",
    )
    .bind(receiver)
    .bind(since)
    .fetch_one(&mut **tx)
    .await?
    .try_get("n")
}

/// SMS about `customer`'s incidents since `since`.
pub async fn sms_for_customer(
    exec: impl sqlx::Executor<'_, Database = Any>,
    customer: &str,
    since: i64,
) -> Result<i64, sqlx::Error> {
    sqlx::query(
        "SELECT COUNT(*) AS n FROM outbox o JOIN incidents i ON i.id = o.incident_id
         WHERE i.customer = $1 AND o.channel = 'sms' AND o.created_at >= $2",
    )
    .bind(customer)
    .bind(since)
    .fetch_one(exec)
    .await?
    .try_get("n")
}

/// The first instant of `now`'s calendar month (UTC), in milliseconds.
pub fn month_start(now: i64) -> i64 {
    let t = DateTime::from_timestamp_millis(now).unwrap_or_default();
    Utc.with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0)
        .single()
        .map_or(0, |m| m.timestamp_millis())
}

/// Splits `deliveries` into those sent now and those held; `excluded`: an exclusion matches
/// the incident.
pub async fn split(
    tx: &mut Transaction<'_, Any>,
    n: &Notifier,
    s: &Subject,
    kind: Kind,
    deliveries: Vec<Delivery>,
    excluded: bool,
    now: i64,
) -> Result<(Vec<Delivery>, Vec<Held>), sqlx::Error> {
    if kind == Kind::Retracted || deliveries.is_empty() {
        return Ok((deliveries, Vec::new()));
    }
    let all = |reason| {
        let mut by: BTreeMap<String, Vec<Delivery>> = BTreeMap::new();
        for d in &deliveries {
            by.entry(d.receiver.clone()).or_default().push(d.clone());
        }
        by.into_iter()
            .map(|(receiver, deliveries)| Held {
                receiver,
                reason,
                deliveries,
            })
            .collect::<Vec<_>>()
    };
    if excluded {
        return Ok((Vec::new(), all("exclusion")));
    }
    if let (Some(l), Some(c)) = (&n.cfg.customer_limit, &s.customer) {
        let since = now - l.per.as_millis() as i64;
        if announcements_for_customer(tx, c, since).await? >= i64::from(l.count) {
            return Ok((Vec::new(), all("customer_limit")));
        }
    }
    let mut held: Vec<Held> = Vec::new();
    let mut send = Vec::new();
    let mut over: BTreeMap<String, bool> = BTreeMap::new();
    for d in deliveries {
        let limited = match over.get(&d.receiver) {
            Some(&o) => o,
            None => {
                let o = match n.receivers.get(&d.receiver).and_then(|r| r.limit.as_ref()) {
                    Some(l) => {
                        let since = now - l.per.as_millis() as i64;
                        announcements_to(tx, &d.receiver, since).await? >= i64::from(l.count)
                    }
                    None => false,
                };
                over.insert(d.receiver.clone(), o);
                o
            }
        };
        if limited {
            hold(&mut held, "limit", d);
        } else {
            send.push(d);
        }
    }
    if let (Some(cap), Some(c)) = (n.cfg.sms_cap, &s.customer)
        && send.iter().any(|d| d.channel == Channel::Sms)
    {
        let mut used = sms_for_customer(&mut **tx, c, month_start(now)).await?;
        let mut kept = Vec::with_capacity(send.len());
        for d in send {
            if d.channel == Channel::Sms {
                if used >= i64::from(cap) {
                    hold(&mut held, "sms_cap", d);
                    continue;
                }
                used += 1;
            }
            kept.push(d);
        }
        send = kept;
    }
    Ok((send, held))
}

fn hold(held: &mut Vec<Held>, reason: &'static str, d: Delivery) {
    match held
        .iter_mut()
        .find(|h| h.receiver == d.receiver && h.reason == reason)
    {
        Some(h) => h.deliveries.push(d),
        None => held.push(Held {
            receiver: d.receiver.clone(),
            reason,
            deliveries: vec![d],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_month_starts_on_its_first_day_at_midnight_utc() {
        let t = Utc
            .with_ymd_and_hms(2026, 12, 31, 23, 59, 0)
            .single()
            .expect("t")
            .timestamp_millis();
        let m = Utc
            .with_ymd_and_hms(2026, 12, 1, 0, 0, 0)
            .single()
            .expect("m")
            .timestamp_millis();
        assert_eq!(month_start(t), m);
        assert_eq!(month_start(m), m);
    }
}
