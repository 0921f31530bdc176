//! Scheduled test notifications (`[notify.selftest]`): every `every`, one test message through
//! each channel of a chosen receiver (its e-mail, voice and SMS numbers, webhooks, CAP
//! endpoints). They go through the outbox like any announcement, with its retries and
//! breakers; a test that is given up raises its channel's incident (`vigil-notify-<channel>`),
//! announced through the other channels. So a broken channel is found on a quiet day, not
//! during the incident that needed it.
//!
//! # Invariants
//! - One round per period: the round (`now / every`) is claimed in the database in the
//!   transaction that writes its deliveries, so collectors sharing the database and restarts
//!   send each round once.
//! - A test says it is a test and asks for nothing: the webhook's alert is `resolved`, the
//!   CAP message's status is `Test`; no incident is opened for a test that arrives.

use std::time::Duration;

use serde::Deserialize;
use sqlx::AnyPool;

use super::Notifier;
use super::plan::{Channel, Delivery, Kind};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SelftestConfig {
    /// The receiver whose channels are tested (a mailbox, a number and endpoints that
    /// someone watches).
    pub receiver: String,
    /// How often (default 1d; at least 1m).
    #[serde(
        default = "one_day",
        deserialize_with = "vigil_schema::config::de_duration"
    )]
    pub every: Duration,
}

fn one_day() -> Duration {
    Duration::from_secs(86_400)
}

/// The outbox `cause` of round `round`: negative and a multiple of four, so it never meets an
/// incident's timeline id or a maintenance notice's (`-(4 id + 1..3)`).
pub fn cause(round: i64) -> i64 {
    -(round * 4)
}

/// The round a test delivery's cause names.
pub fn round_of(cause: i64) -> i64 {
    -cause / 4
}

/// The deliveries of one round: each channel target of the receiver once (the desk's call
/// tasks and Alertmanager pushes are not tested: a test must not wake anyone).
pub fn deliveries(n: &Notifier, receiver: &str) -> Vec<Delivery> {
    let Some(r) = n.receivers.get(receiver) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut add = |channel, targets: &[String]| {
        for t in targets {
            out.push(Delivery {
                receiver: receiver.to_owned(),
                channel,
                target: t.clone(),
            });
        }
    };
    add(Channel::Voice, &r.voice);
    add(Channel::Sms, &r.sms);
    add(Channel::Email, &r.email);
    add(Channel::Webhook, &r.webhook);
    add(Channel::Cap, &r.cap);
    out
}

/// Writes this period's round when it is not written yet; whether it was.
pub async fn tick(pool: &AnyPool, n: &Notifier, now: i64) -> Result<bool, sqlx::Error> {
    let Some(cfg) = &n.cfg.selftest else {
        return Ok(false);
    };
    let every = cfg.every.as_millis().max(1) as i64;
    let round = now / every;
    // Looked at every second: a read, and a write only once a period.
    let written: Option<i64> =
        sqlx::query_scalar("SELECT round FROM selftest_rounds WHERE round = $1")
            .bind(round)
            .fetch_optional(pool)
            .await?;
    if written.is_some() {
        return Ok(false);
    }
    let mut tx = pool.begin().await?;
    let claimed = sqlx::query(
        "INSERT INTO selftest_rounds (round, at) VALUES ($1, $2) ON CONFLICT (round) DO NOTHING",
    )
    .bind(round)
    .bind(now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if claimed == 0 {
        tx.rollback().await?;
        return Ok(false);
    }
    let ds = deliveries(n, &cfg.receiver);
    super::outbox::enqueue(
        &mut tx,
        super::outbox::NO_INCIDENT,
        cause(round),
        Kind::SelfTest,
        &ds,
        now,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(round, deliveries = ds.len(), "test notifications queued");
    Ok(true)
}

/// The words of a test through `channel`.
pub fn text(channel: Channel, round: i64) -> String {
    format!(
        "This is Vigil's scheduled test of its {} channel (test {round}). Nothing to do. \
         If these tests stop arriving, tell the operations desk.",
        channel.as_str()
    )
}

/// The e-mail: subject and body.
pub fn email(round: i64) -> (String, String) {
    (
        "[Vigil] Test notification, nothing to do".into(),
        text(Channel::Email, round) + "\n",
    )
}

/// An incident as a gateway's request template sees it, for a test call or SMS.
pub fn view(round: i64, external_url: &str) -> super::text::IncidentView {
    let now = chrono::Utc::now().to_rfc3339();
    super::text::IncidentView {
        id: 0,
        title: format!("Vigil test notification {round}"),
        severity: "info".into(),
        danger: false,
        customer: None,
        assets: Vec::new(),
        status: "resolved".into(),
        rule_id: "vigil.selftest".into(),
        group_key: format!("selftest={round}"),
        count: 1,
        first_seen: now.clone(),
        last_seen: now,
        url: external_url.to_owned(),
    }
}

/// An Alertmanager webhook payload for a test: one alert, already `resolved`, so receivers
/// written for Alertmanager record it and page nobody.
pub fn webhook(receiver: &str, round: i64, external_url: &str) -> serde_json::Value {
    let now = chrono::Utc::now().to_rfc3339();
    let labels = serde_json::json!({"alertname": "VigilSelfTest", "severity": "none"});
    let annotations = serde_json::json!({"summary": text(Channel::Webhook, round)});
    serde_json::json!({
        "version": "4",
        "groupKey": format!("{{}}:{{alertname=\"VigilSelfTest\",round=\"{round}\"}}"),
        "truncatedAlerts": 0,
        "status": "resolved",
        "receiver": receiver,
        "groupLabels": {"alertname": "VigilSelfTest"},
        "commonLabels": labels.clone(),
        "commonAnnotations": annotations.clone(),
        "externalURL": external_url,
        "alerts": [{
            "status": "resolved",
            "labels": labels,
            "annotations": annotations,
            "startsAt": now,
            "endsAt": now,
            "generatorURL": external_url,
            "fingerprint": format!("{:016x}", round),
        }],
    })
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A CAP 1.2 message of status `Test` (receivers act on none).
pub fn cap(n: &Notifier, round: i64) -> String {
    let c = &n.cfg.cap;
    let sent = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S+00:00");
    let restriction = if c.scope == "Restricted" {
        format!("<restriction>{}</restriction>", xml_escape(&c.restriction))
    } else {
        String::new()
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
         <alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\">\
         <identifier>vigil-selftest-{round}</identifier><sender>{sender}</sender>\
         <sent>{sent}</sent><status>Test</status><msgType>Alert</msgType>\
         <scope>{scope}</scope>{restriction}<info><category>{category}</category>\
         <event>Vigil test notification</event><urgency>Unknown</urgency>\
         <severity>Unknown</severity><certainty>Unknown</certainty>\
         <headline>Vigil test notification {round}</headline>\
         <description>{text}</description><area><areaDesc>{area}</areaDesc></area></info>\
         </alert>\n",
        sender = xml_escape(&c.sender),
        scope = xml_escape(&c.scope),
        category = xml_escape(&c.category),
        text = xml_escape(&text(Channel::Cap, round)),
        area = xml_escape(&c.area),
    )
}
