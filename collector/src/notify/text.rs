//! What an announcement says (decree art. 4: what was seen and where, the customer, the time
//! window, a link to the incident), for each channel: a short speakable text for calls and
//! SMS, a subject and a body for e-mail, and the values gateway templates see.
//!
//! English only for now; the customer's or contact's language is not used yet.

use serde::Serialize;

use super::plan::Kind;
use crate::incidents::Incident;

/// The values of an announcement, as gateway templates and webhooks see them.
#[derive(Debug, Clone, Serialize)]
pub struct Announcement {
    pub kind: &'static str,
    pub incident: IncidentView,
    /// A retraction's reason.
    pub reason: Option<String>,
    /// Calls of the same announcement and how they ended (e-mail only).
    pub calls: Vec<Call>,
}

#[derive(Debug, Clone, Serialize)]
pub struct IncidentView {
    pub id: i64,
    pub title: String,
    pub severity: String,
    pub danger: bool,
    pub customer: Option<String>,
    pub status: String,
    pub rule_id: String,
    pub group_key: String,
    pub count: i64,
    pub first_seen: String,
    pub last_seen: String,
    pub url: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Call {
    pub channel: String,
    pub target: String,
    pub state: String,
}

/// Where incident `id` is, under this Vigil's `external_url`.
pub fn incident_url(external_url: &str, id: i64) -> String {
    format!(
        "{}/api/v1/incidents/{id}",
        external_url.trim_end_matches('/')
    )
}

/// The reason of an incident's latest retraction, from its timeline (loaded with it).
pub fn retraction_reason(inc: &Incident) -> Option<&str> {
    inc.timeline
        .iter()
        .rev()
        .find(|e| e.action == "retract")
        .and_then(|e| e.detail["reason"].as_str())
}

impl Announcement {
    pub fn new(kind: Kind, inc: &Incident, external_url: &str, calls: Vec<Call>) -> Self {
        let reason = (kind == Kind::Retracted)
            .then(|| retraction_reason(inc).map(str::to_owned))
            .flatten();
        Announcement {
            kind: kind.as_str(),
            incident: IncidentView {
                id: inc.id,
                title: inc.title.clone(),
                severity: inc.severity.clone(),
                danger: inc.danger,
                customer: inc.customer.clone(),
                status: inc.status.as_str().to_owned(),
                rule_id: inc.rule_id.clone(),
                group_key: inc.group_key.clone(),
                count: inc.count,
                first_seen: inc.first_seen.to_rfc3339(),
                last_seen: inc.last_seen.to_rfc3339(),
                url: incident_url(external_url, inc.id),
            },
            reason,
            calls,
        }
    }

    fn customer(&self) -> &str {
        self.incident.customer.as_deref().unwrap_or("no customer")
    }

    /// For a call or an SMS: short, speakable, no symbols.
    pub fn spoken(&self) -> String {
        let i = &self.incident;
        let head = match (self.kind, i.danger) {
            ("retracted", _) => format!(
                "Vigil. Incident {} is retracted: {}.",
                i.id,
                self.reason.as_deref().unwrap_or("no reason given")
            ),
            ("changed", true) => format!("Vigil. Incident {} is now a probable danger.", i.id),
            ("changed", false) => {
                format!("Vigil. Incident {} is no longer a probable danger.", i.id)
            }
            ("resolved", _) => format!("Vigil. Incident {} is resolved.", i.id),
            ("escalated", _) => format!(
                "Vigil. Incident {} was not acknowledged in time: it is yours now.",
                i.id
            ),
            (_, true) => format!("Vigil. Probable danger. Incident {}.", i.id),
            (_, false) => format!("Vigil. Incident {}.", i.id),
        };
        format!(
            "{head} {}. Customer {}. Severity {}.",
            i.title,
            self.customer(),
            i.severity
        )
    }

    /// What the desk says when it calls `number` (belonging to `contact`) for an operator
    /// call task.
    pub fn script(&self, number: &str, contact: Option<&str>) -> String {
        let i = &self.incident;
        let whom = contact.map_or_else(|| number.to_owned(), |c| format!("{c} on {number}"));
        format!(
            "Call {whom}. Introduce yourself as the Vigil operations desk. Read: \"{}\" \
             Give the incident number {} and offer the link {}. Ask who you are speaking to, \
             and record the call with their name.",
            self.spoken(),
            i.id,
            i.url
        )
    }

    pub fn subject(&self) -> String {
        let i = &self.incident;
        let what = match (self.kind, i.danger) {
            ("retracted", _) => "RETRACTED: ",
            ("resolved", _) => "Resolved: ",
            ("escalated", true) => "ESCALATED, PROBABLE DANGER: ",
            ("escalated", false) => "ESCALATED: ",
            ("changed", true) => "NOW PROBABLE DANGER: ",
            ("changed", false) => "No longer a danger: ",
            (_, true) => "PROBABLE DANGER: ",
            _ => "",
        };
        format!("[Vigil #{}] {what}{} ({})", i.id, i.title, self.customer())
    }

    pub fn email_body(&self) -> String {
        let i = &self.incident;
        let mut b = String::new();
        b.push_str(&self.spoken());
        b.push_str("\n\n");
        if let Some(r) = &self.reason {
            b.push_str(&format!("Reason for the retraction: {r}\n\n"));
        }
        for (k, v) in [
            ("Incident", i.id.to_string()),
            ("What", i.title.clone()),
            ("Customer", self.customer().to_owned()),
            ("Severity", i.severity.clone()),
            (
                "Probable danger",
                if i.danger { "yes" } else { "no" }.to_owned(),
            ),
            ("Status", i.status.clone()),
            ("Where", i.group_key.clone()),
            ("Rule", i.rule_id.clone()),
            ("Alerts", i.count.to_string()),
            ("First seen", i.first_seen.clone()),
            ("Last seen", i.last_seen.clone()),
            ("Link", i.url.clone()),
        ] {
            b.push_str(&format!("{k}: {v}\n"));
        }
        if !self.calls.is_empty() {
            b.push_str("\nCalls made for this announcement:\n");
            for c in &self.calls {
                let how = match c.state.as_str() {
                    "sent" if c.channel == "task" => "handed to the desk to call",
                    "sent" => "placed",
                    "failed" => "failed",
                    _ => "not ended yet",
                };
                b.push_str(&format!("- {} {}: {how}\n", c.channel, c.target));
            }
        }
        b
    }
}
