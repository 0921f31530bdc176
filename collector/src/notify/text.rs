//! What an announcement says (decree art. 4: what was seen and where, the customer, the time
//! window, a link to the incident), for each channel: a short speakable text for calls and
//! SMS, a subject and a body for e-mail, and the values gateway templates see.
//!
//! In the language of the person told ([`super::words`]): the contact's, else the
//! customer's, else `[notify] language`.

use serde::Serialize;

use super::plan::Kind;
use super::words::{Lang, Words, fill};
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
    /// Who may be called back (`[notify.contact]`).
    pub contact: Option<super::ContactConfig>,
    /// The language its texts are in (not a template value).
    #[serde(skip)]
    pub lang: Lang,
}

#[derive(Debug, Clone, Serialize)]
pub struct IncidentView {
    pub id: i64,
    pub title: String,
    pub severity: String,
    pub danger: bool,
    pub customer: Option<String>,
    /// The assets it concerns (decree art. 4: the asset id).
    pub assets: Vec<String>,
    pub status: String,
    pub rule_id: String,
    pub group_key: String,
    pub count: i64,
    pub first_seen: String,
    pub last_seen: String,
    pub url: String,
}

impl IncidentView {
    /// The incident templates are tried on when the configuration is read.
    pub fn sample() -> IncidentView {
        IncidentView {
            id: 1,
            title: "Sample".into(),
            severity: "high".into(),
            danger: true,
            customer: Some("sample".into()),
            assets: vec!["SAMPLE-0001".into()],
            status: "open".into(),
            rule_id: "rule".into(),
            group_key: "host.name=h".into(),
            count: 1,
            first_seen: "2026-01-01T00:00:00+00:00".into(),
            last_seen: "2026-01-01T00:00:00+00:00".into(),
            url: "http://127.0.0.1:8080/api/v1/incidents/1".into(),
        }
    }
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
                assets: inc.assets.clone(),
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
            contact: None,
            lang: Lang::En,
        }
    }

    /// The same, naming `contact` as whom to call back.
    pub fn with_contact(mut self, contact: Option<&super::ContactConfig>) -> Self {
        self.contact = contact.cloned();
        self
    }

    /// The same, in `lang`.
    pub fn in_language(mut self, lang: Lang) -> Self {
        self.lang = lang;
        self
    }

    /// The words of this announcement's language.
    fn words(&self) -> &'static Words {
        self.lang.words()
    }

    fn customer(&self) -> &str {
        self.incident
            .customer
            .as_deref()
            .unwrap_or(self.words().no_customer)
    }

    /// For a call or an SMS: short, speakable, no symbols.
    pub fn spoken(&self) -> String {
        let i = &self.incident;
        let w = self.words();
        let head = match (self.kind, i.danger) {
            ("retracted", _) => w.retracted,
            ("changed", true) => w.now_danger,
            ("changed", false) => w.no_longer_danger,
            ("resolved", _) => w.resolved,
            ("escalated", _) => w.escalated,
            (_, true) => w.opened_danger,
            (_, false) => w.opened,
        };
        let id = i.id.to_string();
        let values = [
            ("id", id.as_str()),
            ("reason", self.reason.as_deref().unwrap_or(w.no_reason)),
            ("title", i.title.as_str()),
            ("customer", self.customer()),
            ("severity", i.severity.as_str()),
        ];
        let mut said = format!("{} {}", fill(head, &values), fill(w.tail, &values));
        if !i.assets.is_empty() {
            said.push(' ');
            said.push_str(&fill(w.assets_said, &[("assets", &i.assets.join(", "))]));
        }
        said
    }

    /// The SMS's invitation to acknowledge by reply.
    pub fn reply_ack(&self) -> String {
        fill(
            self.words().reply_ack,
            &[("id", &self.incident.id.to_string())],
        )
    }

    /// The e-mail's line with the link that acknowledges or replies.
    pub fn respond(&self, url: &str) -> String {
        fill(self.words().respond, &[("url", url)])
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
        let w = self.words();
        let what = match (self.kind, i.danger) {
            ("retracted", _) => w.subject_retracted,
            ("resolved", _) => w.subject_resolved,
            ("escalated", true) => w.subject_escalated_danger,
            ("escalated", false) => w.subject_escalated,
            ("changed", true) => w.subject_now_danger,
            ("changed", false) => w.subject_no_longer_danger,
            ("reminder", true) => w.subject_danger,
            ("reminder", false) => w.subject_reminder,
            (_, true) => w.subject_danger,
            _ => "",
        };
        format!("[Vigil #{}] {what}{} ({})", i.id, i.title, self.customer())
    }

    pub fn email_body(&self) -> String {
        let i = &self.incident;
        let w = self.words();
        let mut b = String::new();
        b.push_str(&self.spoken());
        b.push_str("\n\n");
        if let Some(r) = &self.reason {
            b.push_str(&format!("{}: {r}\n\n", w.reason));
        }
        let values = [
            i.id.to_string(),
            i.title.clone(),
            self.customer().to_owned(),
            if i.assets.is_empty() {
                "-".to_owned()
            } else {
                i.assets.join(", ")
            },
            i.severity.clone(),
            if i.danger { w.yes } else { w.no }.to_owned(),
            i.status.clone(),
            i.group_key.clone(),
            i.rule_id.clone(),
            i.count.to_string(),
            i.first_seen.clone(),
            i.last_seen.clone(),
            i.url.clone(),
        ];
        for (k, v) in w.labels.iter().zip(values) {
            b.push_str(&format!("{k}: {v}\n"));
        }
        if let Some(c) = &self.contact {
            let how: Vec<&str> = c
                .phones
                .iter()
                .chain(&c.email)
                .map(String::as_str)
                .collect();
            b.push_str(&format!("{}: {}", w.contact, c.name));
            if !how.is_empty() {
                b.push_str(&format!(", {}", how.join(", ")));
            }
            b.push('\n');
        }
        if !self.calls.is_empty() {
            b.push_str(&format!("\n{}\n", w.calls));
            for c in &self.calls {
                let how = match c.state.as_str() {
                    "sent" if c.channel == "task" => w.handed,
                    "sent" => w.placed,
                    "failed" => w.failed,
                    _ => w.pending,
                };
                b.push_str(&format!("- {} {}: {how}\n", c.channel, c.target));
            }
        }
        b
    }
}

/// The e-mail of a group's announcement (`anns`, one per incident, in one language): its
/// subject and body.
pub fn group_email(
    anns: &[Announcement],
    labels: &std::collections::BTreeMap<String, String>,
    lang: Lang,
) -> (String, String) {
    let w = lang.words();
    let labels = labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ");
    let n = anns.len().to_string();
    let values = [("n", n.as_str()), ("labels", labels.as_str())];
    let subject = format!("[Vigil] {}", fill(w.group_subject, &values));
    let mut body = format!("{}\n\n", fill(w.group_intro, &values));
    for a in anns {
        body.push_str(&format!(
            "- {}\n  {}\n  {}\n",
            a.subject(),
            a.spoken(),
            a.incident.url
        ));
    }
    (subject, body)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::incidents::Status;

    /// An incident of ULB's, the other notification tests' too.
    pub(crate) fn incident(danger: bool) -> Incident {
        let t = chrono::DateTime::from_timestamp(1_790_000_000, 0).expect("t");
        Incident {
            id: 42,
            title: "SSH brute force".into(),
            status: Status::Open,
            severity: "high".into(),
            danger,
            customer: Some("ulb".into()),
            affected: Vec::new(),
            assets: Vec::new(),
            tags: Vec::new(),
            group_key: "source.ip=10.0.0.1".into(),
            rule_id: "ssh-bf".into(),
            assignee: None,
            count: 3,
            first_seen: t,
            last_seen: t,
            acknowledge_by: None,
            resolve_by: None,
            level: 1,
            breached: Vec::new(),
            category: None,
            ticket: None,
            merged_into: None,
            alerts: Vec::new(),
            notifications: Vec::new(),
            timeline: Vec::new(),
        }
    }

    #[test]
    fn announcements_speak_the_language_of_the_person_told() {
        let inc = incident(true);
        let en = Announcement::new(Kind::Opened, &inc, "http://v", Vec::new());
        assert_eq!(
            en.spoken(),
            "Vigil. Probable danger. Incident 42. SSH brute force. Customer ulb. Severity high."
        );
        let fr = en.clone().in_language(Lang::Fr);
        assert_eq!(
            fr.spoken(),
            "Vigil. Danger probable. Incident 42. SSH brute force. Client ulb. Gravité high."
        );
        assert_eq!(
            fr.subject(),
            "[Vigil #42] DANGER PROBABLE : SSH brute force (ulb)"
        );
        assert!(
            fr.email_body().contains("Danger probable: oui"),
            "{}",
            fr.email_body()
        );
        assert_eq!(fr.reply_ack(), " Répondez ACK 42 pour accuser réception.");
        // The asset ids are said and written (decree art. 4).
        let on_assets = Incident {
            assets: vec!["FW-0002".into(), "RTR-0001".into()],
            ..inc.clone()
        };
        let fr = Announcement::new(Kind::Opened, &on_assets, "http://v", Vec::new())
            .in_language(Lang::Fr);
        assert!(
            fr.spoken()
                .ends_with("Gravité high. Actifs FW-0002, RTR-0001."),
            "{}",
            fr.spoken()
        );
        assert!(
            fr.email_body().contains("Actifs: FW-0002, RTR-0001\n"),
            "{}",
            fr.email_body()
        );
        // Whom to call back (decree art. 4), when configured.
        let contact = super::super::ContactConfig {
            name: "NOC Vigil".into(),
            phones: vec!["+3220000000".into()],
            email: Some("noc@example.org".into()),
        };
        let nl = Announcement::new(Kind::Opened, &inc, "http://v", Vec::new())
            .in_language(Lang::Nl)
            .with_contact(Some(&contact));
        assert!(
            nl.email_body()
                .contains("Contactpersoon: NOC Vigil, +3220000000, noc@example.org\n"),
            "{}",
            nl.email_body()
        );
        let nl = Announcement::new(Kind::Escalated, &incident(false), "http://v", Vec::new())
            .in_language(Lang::Nl);
        assert!(
            nl.spoken()
                .starts_with("Vigil. Incident 42 werd niet op tijd bevestigd")
        );
        assert!(nl.subject().contains("GEËSCALEERD: "));
        let de =
            Announcement::new(Kind::Resolved, &inc, "http://v", Vec::new()).in_language(Lang::De);
        assert!(de.spoken().starts_with("Vigil. Vorfall 42 ist behoben."));
        assert!(de.email_body().contains("Schweregrad: high"));
        assert_eq!(
            de.respond("http://x"),
            "Bestätigen oder antworten Sie hier: http://x"
        );
    }
}
