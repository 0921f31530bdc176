//! OASIS CAP 1.2 for incidents routed to a receiver's `cap` endpoints: the first
//! announcement of an incident is an `Alert`, a change or a resolution an `Update`, a
//! retraction a `Cancel`; each later message `references` every earlier one of the incident
//! (`sender,identifier,sent`). One message per announcement, made once and kept
//! (`cap_messages`): every endpoint and every retry gets the same, and the Atom feed
//! (`GET /api/v1/cap/feed`) publishes them.
//!
//! Times carry an explicit offset (`2026-12-02T14:30:00+00:00`): the CAP schema refuses `Z`.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sqlx::{AnyPool, Row};
// The CAP 1.2 enumerations, as the reader of CAP documents holds them.
use vigil_schema::cap::{CATEGORY as CATEGORIES, SCOPE as SCOPES};

use super::plan::Kind;
use crate::incidents::Incident;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CapConfig {
    /// The `sender` of every message (no spaces or commas), e.g. `vigil@noc.example.org`.
    pub sender: String,
    /// `Public`, `Restricted` (default) or `Private`.
    pub scope: String,
    /// The rule for who may see a `Restricted` message.
    pub restriction: String,
    /// CAP category of the messages: `Infra` (default), `Security`, ...
    pub category: String,
    /// `areaDesc` of every message.
    pub area: String,
}

impl Default for CapConfig {
    fn default() -> Self {
        CapConfig {
            sender: "vigil@localhost".into(),
            scope: "Restricted".into(),
            restriction: "For the operators of the networks concerned".into(),
            category: "Infra".into(),
            area: "Network".into(),
        }
    }
}

impl CapConfig {
    pub fn check(&self) -> Result<(), String> {
        if self.sender.is_empty() || self.sender.contains([' ', ',', '<', '&']) {
            return Err(format!(
                "sender {:?}: no spaces, commas, < or & (CAP)",
                self.sender
            ));
        }
        if !SCOPES.contains(&self.scope.as_str()) {
            return Err(format!(
                "scope {:?}: one of {}",
                self.scope,
                SCOPES.join(", ")
            ));
        }
        if !CATEGORIES.contains(&self.category.as_str()) {
            return Err(format!(
                "category {:?}: one of {}",
                self.category,
                CATEGORIES.join(", ")
            ));
        }
        Ok(())
    }
}

/// CAP's time: seconds, an explicit offset.
pub fn cap_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
}

fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            // XML 1.0 has no place for other control characters.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

fn severity(s: &str) -> &'static str {
    match s {
        "critical" => "Extreme",
        "high" => "Severe",
        "medium" => "Moderate",
        "low" | "informational" => "Minor",
        _ => "Unknown",
    }
}

/// One message: what it is and the XML.
#[derive(Debug, Clone)]
pub struct Message {
    pub identifier: String,
    pub sent: String,
    pub msg_type: String,
    pub headline: String,
    pub xml: String,
}

/// The XML of a message about `inc`; `references` as CAP writes them.
#[allow(clippy::too_many_arguments)]
fn xml(
    cfg: &CapConfig,
    identifier: &str,
    sent: &str,
    msg_type: &str,
    references: &str,
    inc: &Incident,
    headline: &str,
    description: &str,
    urgency: &str,
    web: &str,
) -> String {
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str("<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\">\n");
    for (tag, v) in [
        ("identifier", identifier),
        ("sender", cfg.sender.as_str()),
        ("sent", sent),
        ("status", "Actual"),
        ("msgType", msg_type),
        ("scope", cfg.scope.as_str()),
    ] {
        x.push_str(&format!("  <{tag}>{}</{tag}>\n", esc(v)));
    }
    if cfg.scope == "Restricted" {
        x.push_str(&format!(
            "  <restriction>{}</restriction>\n",
            esc(&cfg.restriction)
        ));
    }
    if !references.is_empty() {
        x.push_str(&format!("  <references>{}</references>\n", esc(references)));
    }
    x.push_str("  <info>\n");
    x.push_str("    <language>en-US</language>\n");
    x.push_str(&format!(
        "    <category>{}</category>\n",
        esc(&cfg.category)
    ));
    for (tag, v) in [
        ("event", inc.title.as_str()),
        ("urgency", urgency),
        ("severity", severity(&inc.severity)),
        ("certainty", "Observed"),
        ("senderName", "Vigil"),
        ("headline", headline),
        ("description", description),
        ("web", web),
    ] {
        x.push_str(&format!("    <{tag}>{}</{tag}>\n", esc(v)));
    }
    x.push_str("    <parameter>\n      <valueName>vigil_incident</valueName>\n");
    x.push_str(&format!(
        "      <value>{}</value>\n    </parameter>\n",
        inc.id
    ));
    if let Some(c) = &inc.customer {
        x.push_str("    <parameter>\n      <valueName>vigil_customer</valueName>\n");
        x.push_str(&format!(
            "      <value>{}</value>\n    </parameter>\n",
            esc(c)
        ));
    }
    x.push_str(&format!(
        "    <area>\n      <areaDesc>{}</areaDesc>\n    </area>\n",
        esc(&cfg.area)
    ));
    x.push_str("  </info>\n</alert>\n");
    x
}

/// The message of announcement `cause` (of `kind`, about `inc`): the one made before, or a
/// new one (kept). `None` for a retraction of an incident that had no CAP message: nothing
/// to cancel.
pub async fn message(
    pool: &AnyPool,
    cfg: &CapConfig,
    cause: i64,
    kind: Kind,
    inc: &Incident,
    web: &str,
    now: DateTime<Utc>,
) -> Result<Option<Message>, sqlx::Error> {
    let row_to = |r: &sqlx::any::AnyRow| -> Result<Message, sqlx::Error> {
        Ok(Message {
            identifier: r.try_get("identifier")?,
            sent: r.try_get("sent")?,
            msg_type: r.try_get("msg_type")?,
            headline: r.try_get("headline")?,
            xml: r.try_get("xml")?,
        })
    };
    let cols = "identifier, sent, msg_type, headline, xml";
    if let Some(r) = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {cols} FROM cap_messages WHERE cause = $1"
    )))
    .bind(cause)
    .fetch_optional(pool)
    .await?
    {
        return Ok(Some(row_to(&r)?));
    }
    let earlier =
        sqlx::query("SELECT identifier, sent FROM cap_messages WHERE incident_id = $1 ORDER BY id")
            .bind(inc.id)
            .fetch_all(pool)
            .await?;
    let references = earlier
        .iter()
        .map(|r| {
            Ok(format!(
                "{},{},{}",
                cfg.sender,
                r.try_get::<String, _>("identifier")?,
                r.try_get::<String, _>("sent")?
            ))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()?
        .join(" ");
    let msg_type = match (kind, earlier.is_empty()) {
        (Kind::Retracted, true) => return Ok(None),
        (Kind::Retracted, false) => "Cancel",
        (_, true) => "Alert",
        (_, false) => "Update",
    };
    let reason = super::text::retraction_reason(inc).unwrap_or("no reason given");
    let customer = inc.customer.as_deref().unwrap_or("no customer");
    let (headline, urgency) = match kind {
        Kind::Retracted => (format!("Retracted: {}", inc.title), "Past"),
        Kind::Resolved => (format!("Resolved: {}", inc.title), "Past"),
        _ if inc.danger => (format!("Probable danger: {}", inc.title), "Immediate"),
        _ => (inc.title.clone(), "Expected"),
    };
    let mut description = format!(
        "Incident {} for {customer}: {} ({} alerts, first {}, last {}; {}).",
        inc.id,
        inc.title,
        inc.count,
        cap_time(inc.first_seen),
        cap_time(inc.last_seen),
        inc.group_key
    );
    if kind == Kind::Retracted {
        description.push_str(&format!(" Retracted: {reason}."));
    }
    let sent = cap_time(now);
    let identifier = format!("vigil-{}-{cause}", inc.id);
    let body = xml(
        cfg,
        &identifier,
        &sent,
        msg_type,
        &references,
        inc,
        &headline,
        &description,
        urgency,
        web,
    );
    // Another dispatcher may have made it since: the unique cause keeps one.
    sqlx::query(
        "INSERT INTO cap_messages (cause, incident_id, identifier, sent, msg_type, headline, xml,
             created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (cause) DO NOTHING",
    )
    .bind(cause)
    .bind(inc.id)
    .bind(&identifier)
    .bind(&sent)
    .bind(msg_type)
    .bind(&headline)
    .bind(&body)
    .bind(now.timestamp_millis())
    .execute(pool)
    .await?;
    let r = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {cols} FROM cap_messages WHERE cause = $1"
    )))
    .bind(cause)
    .fetch_one(pool)
    .await?;
    Ok(Some(row_to(&r)?))
}

/// The newest messages, as an Atom feed whose entries hold the CAP XML.
pub async fn feed(pool: &AnyPool, self_url: &str, limit: i64) -> Result<String, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT identifier, sent, msg_type, headline, xml FROM cap_messages
         ORDER BY id DESC LIMIT $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    let updated = rows
        .first()
        .and_then(|r| r.try_get::<String, _>("sent").ok())
        .unwrap_or_else(|| cap_time(DateTime::<Utc>::UNIX_EPOCH));
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str("<feed xmlns=\"http://www.w3.org/2005/Atom\">\n");
    x.push_str(&format!("  <id>{}</id>\n", esc(self_url)));
    x.push_str("  <title>Vigil CAP alerts</title>\n");
    x.push_str(&format!("  <updated>{}</updated>\n", esc(&updated)));
    x.push_str("  <author><name>Vigil</name></author>\n");
    x.push_str(&format!(
        "  <link rel=\"self\" href=\"{}\"/>\n",
        esc(self_url)
    ));
    for r in &rows {
        let s = |c: &str| r.try_get::<String, _>(c).unwrap_or_default();
        let body = s("xml");
        // The alert element inline (its XML declaration left out).
        let alert = body
            .split_once("?>")
            .map(|(_, rest)| rest.trim())
            .unwrap_or(&body);
        x.push_str("  <entry>\n");
        x.push_str(&format!(
            "    <id>urn:vigil:cap:{}</id>\n",
            esc(&s("identifier"))
        ));
        x.push_str(&format!(
            "    <title>{}: {}</title>\n",
            esc(&s("msg_type")),
            esc(&s("headline"))
        ));
        x.push_str(&format!("    <updated>{}</updated>\n", esc(&s("sent"))));
        x.push_str(&format!(
            "    <content type=\"application/cap+xml\">{alert}</content>\n"
        ));
        x.push_str("  </entry>\n");
    }
    x.push_str("</feed>\n");
    Ok(x)
}
