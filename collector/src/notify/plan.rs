//! The deliveries an incident change calls for: which receivers the route names, and on
//! which channels — danger decides.

use std::collections::{BTreeMap, HashSet};

use super::Notifier;
use crate::oncall::Roster;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Voice,
    Sms,
    Email,
    Webhook,
    /// A CAP 1.2 message POSTed to the target.
    Cap,
    /// A call a person at the desk makes: an operator call task.
    Task,
    /// An alert pushed to an Alertmanager (`POST /api/v2/alerts`), ended with the incident.
    Alertmanager,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Voice => "voice",
            Channel::Sms => "sms",
            Channel::Email => "email",
            Channel::Webhook => "webhook",
            Channel::Cap => "cap",
            Channel::Task => "task",
            Channel::Alertmanager => "alertmanager",
        }
    }

    pub const ALL: [Channel; 7] = [
        Channel::Voice,
        Channel::Sms,
        Channel::Email,
        Channel::Webhook,
        Channel::Cap,
        Channel::Task,
        Channel::Alertmanager,
    ];

    /// A call, by a machine or by a person.
    pub fn calls(self) -> bool {
        matches!(self, Channel::Voice | Channel::Sms | Channel::Task)
    }

    pub fn parse(s: &str) -> Option<Channel> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// 0: sent at once; 1: the e-mail, after the calls of the same announcement ended (or
    /// `confirm_after`).
    pub fn stage(self) -> i64 {
        match self {
            Channel::Email => 1,
            _ => 0,
        }
    }
}

/// Why an announcement is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Opened,
    /// An essential change: danger appeared or disappeared.
    Changed,
    Retracted,
    Resolved,
    /// Not acknowledged in time: the next on-call level is told.
    Escalated,
    /// Held announcements sent together ([`super::digest`]); never planned by a route.
    Digest,
    /// The first announcements of a route's group, sent together ([`super::digest`]);
    /// never planned by a route.
    Group,
    /// An active incident announced again after its route's `repeat_interval`.
    Reminder,
    /// Notices of a maintenance window ([`super::maintenance`]), about no incident.
    MaintenancePlanned,
    MaintenanceStarted,
    MaintenanceEnded,
    /// A scheduled test of a channel ([`super::selftest`]), about no incident.
    SelfTest,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Opened => "opened",
            Kind::Changed => "changed",
            Kind::Retracted => "retracted",
            Kind::Resolved => "resolved",
            Kind::Escalated => "escalated",
            Kind::Digest => "digest",
            Kind::Group => "group",
            Kind::Reminder => "reminder",
            Kind::MaintenancePlanned => "maintenance_planned",
            Kind::MaintenanceStarted => "maintenance_started",
            Kind::MaintenanceEnded => "maintenance_ended",
            Kind::SelfTest => "selftest",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub const ALL: [Kind; 12] = [
        Kind::Opened,
        Kind::Changed,
        Kind::Retracted,
        Kind::Resolved,
        Kind::Escalated,
        Kind::Digest,
        Kind::Group,
        Kind::Reminder,
        Kind::MaintenancePlanned,
        Kind::MaintenanceStarted,
        Kind::MaintenanceEnded,
        Kind::SelfTest,
    ];

    /// A notice about no incident (a maintenance window).
    pub fn is_notice(self) -> bool {
        matches!(
            self,
            Kind::MaintenancePlanned | Kind::MaintenanceStarted | Kind::MaintenanceEnded
        )
    }
}

/// One message to send: to `target` (an address, a number, a URL) by `channel`, for
/// `receiver`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub receiver: String,
    pub channel: Channel,
    pub target: String,
}

/// An incident as routing sees it.
#[derive(Debug, Clone)]
pub struct Subject {
    pub customer: Option<String>,
    /// Customers it affects besides its own: their contacts are told too.
    pub affected: Vec<String>,
    /// The assets it concerns (ids).
    pub assets: Vec<String>,
    /// Its rules' tags.
    pub tags: Vec<String>,
    pub severity: String,
    pub danger: bool,
    pub rule: String,
    pub title: String,
    pub status: String,
    pub group: String,
    /// The on-call level told (from 1).
    pub level: usize,
}

impl Subject {
    pub fn labels(&self) -> BTreeMap<String, String> {
        [
            ("customer", self.customer.clone().unwrap_or_default()),
            // Several values, comma-separated: a matcher on it matches any one of them.
            ("asset", self.assets.join(",")),
            ("tags", self.tags.join(",")),
            ("severity", self.severity.clone()),
            ("danger", self.danger.to_string()),
            ("rule", self.rule.clone()),
            ("title", self.title.clone()),
            ("status", self.status.clone()),
            ("group", self.group.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

impl Notifier {
    /// The deliveries of an announcement of `kind` about `s`; `told` holds every delivery
    /// of earlier announcements of the incident.
    ///
    /// - Opened: the route's receivers; with danger voice and SMS too, else e-mail only.
    /// - Changed and Retracted: the same, plus everyone told before; voice too when there
    ///   is danger now or someone was called before (danger that disappears is announced
    ///   the way it came).
    /// - Resolved: e-mail, webhooks and CAP of the receivers that want resolutions, among
    ///   the route's and those told before.
    /// - Escalated: the person at the incident's (new) level of each rota the route's
    ///   receivers name; by phone too when there is danger.
    ///
    /// A receiver that names a rota tells the person holding the incident's level of it in
    /// `roster`.
    pub fn plan(
        &self,
        s: &Subject,
        kind: Kind,
        told: &[Delivery],
        roster: &Roster,
    ) -> Vec<Delivery> {
        if matches!(kind, Kind::Digest | Kind::Group | Kind::SelfTest) || kind.is_notice() {
            return Vec::new();
        }
        let called_before = told.iter().any(|d| d.channel.calls());
        // Whether a receiver is called: the incident's danger, or its route's saying so.
        let calls = |route_danger: bool| {
            let danger = s.danger || route_danger;
            match kind {
                Kind::Opened | Kind::Escalated | Kind::Reminder => danger,
                Kind::Changed | Kind::Retracted => danger || called_before,
                _ => false,
            }
        };
        let mut names: Vec<(String, bool)> = self
            .route
            .chosen(&s.labels())
            .into_iter()
            .map(|c| (c.receiver, c.danger))
            .collect();
        // A resolution also goes to the receivers told before (as Alertmanager sends the
        // resolved notification to whoever got the firing one).
        if kind == Kind::Resolved {
            for d in told {
                if !names.iter().any(|(n, _)| n == &d.receiver) {
                    names.push((d.receiver.clone(), false));
                }
            }
        }
        let customers = self.customers.get();
        let mut out = Vec::new();
        for (name, route_danger) in names {
            let voice = calls(route_danger);
            let Some(r) = self.receivers.get(&name) else {
                continue;
            };
            let mut add = |channel, target: &str| {
                out.push(Delivery {
                    receiver: name.clone(),
                    channel,
                    target: target.to_owned(),
                })
            };
            if kind == Kind::Resolved && !r.send_resolved {
                // An Alertmanager is told anyway: its alert must end.
                r.alertmanager
                    .iter()
                    .for_each(|u| add(Channel::Alertmanager, u));
                continue;
            }
            // Whether the receiver's calls are placed by the gateway or by a person.
            let call = if r.calls_by == super::CallsBy::Desk {
                Channel::Task
            } else {
                Channel::Voice
            };
            let on_duty = r
                .oncall
                .as_deref()
                .and_then(|rota| roster.person(rota, s.level));
            if kind == Kind::Escalated {
                let Some(p) = on_duty else { continue };
                if voice && let Some(n) = &p.phone {
                    add(call, n);
                }
                if let Some(e) = &p.email {
                    add(Channel::Email, e);
                }
                continue;
            }
            let mut contacts = customers.contacts(s.customer.as_deref(), &r.roles);
            for c in &s.affected {
                contacts.extend(customers.contacts(Some(c), &r.roles));
            }
            if voice {
                r.voice.iter().for_each(|n| add(call, n));
                if let Some(n) = on_duty.as_ref().and_then(|p| p.phone.as_deref()) {
                    add(call, n);
                }
                contacts
                    .iter()
                    .filter_map(|k| k.phone.as_deref())
                    .for_each(|n| add(call, n));
                r.sms.iter().for_each(|n| add(Channel::Sms, n));
            }
            r.email.iter().for_each(|e| add(Channel::Email, e));
            if let Some(e) = on_duty.as_ref().and_then(|p| p.email.as_deref()) {
                add(Channel::Email, e);
            }
            contacts
                .iter()
                .filter_map(|k| k.email.as_deref())
                .for_each(|e| add(Channel::Email, e));
            r.webhook.iter().for_each(|u| add(Channel::Webhook, u));
            r.cap.iter().for_each(|u| add(Channel::Cap, u));
            r.alertmanager
                .iter()
                .for_each(|u| add(Channel::Alertmanager, u));
        }
        if matches!(kind, Kind::Changed | Kind::Retracted) {
            out.extend(told.iter().cloned());
        }
        // A failing channel's own incident goes by the others.
        if let Some(failing) = s.rule.strip_prefix(super::dispatch::CHANNEL_RULE) {
            out.retain(|d| d.channel.as_str() != failing);
        }
        let mut seen = HashSet::new();
        out.retain(|d| seen.insert((d.channel, d.target.clone())));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::NotifyConfig;
    use crate::reference::{Customer, Customers};

    fn notifier() -> Notifier {
        let cfg: NotifyConfig = toml::from_str(
            r#"
[smtp]
host = "127.0.0.1"
from = "vigil@example.org"
[voice]
url = "http://127.0.0.1:1/call"
[sms]
url = "http://127.0.0.1:1/sms"
[[receivers]]
name = "desk"
email = ["desk@example.org"]
[[receivers]]
name = "oncall"
email = ["oncall@example.org"]
voice = ["+32470000001"]
sms = ["+32470000002"]
roles = ["noc"]
send_resolved = false
[route]
receiver = "desk"
[[route.routes]]
matchers = ["danger=true"]
receiver = "oncall"
"#,
        )
        .expect("notify toml");
        let customers: Vec<Customer> = toml::from_str::<toml::Table>(
            r#"
[[c]]
id = "ulb"
[[c.contacts]]
role = "noc"
name = "Noc"
email = "noc@ulb.example"
phone = "+3226501111"
"#,
        )
        .expect("toml")["c"]
            .clone()
            .try_into()
            .expect("customers");
        Notifier::new(
            &cfg,
            crate::reference::directory::Shared::new(Customers::new(customers).expect("customers")),
            crate::oncall::OnCall::default(),
        )
        .expect("valid")
        .expect("routed")
    }

    fn plan(n: &Notifier, s: &Subject, kind: Kind, told: &[Delivery]) -> Vec<Delivery> {
        let roster = Roster {
            oncall: &n.oncall,
            at: chrono::Utc::now(),
            overrides: &[],
        };
        n.plan(s, kind, told, &roster)
    }

    fn subject(danger: bool) -> Subject {
        Subject {
            customer: Some("ulb".into()),
            affected: Vec::new(),
            assets: Vec::new(),
            tags: Vec::new(),
            severity: if danger { "high" } else { "medium" }.into(),
            danger,
            rule: "r".into(),
            title: "t".into(),
            status: "open".into(),
            group: "g".into(),
            level: 1,
        }
    }

    fn targets(d: &[Delivery]) -> Vec<(&str, &str)> {
        d.iter()
            .map(|d| (d.channel.as_str(), d.target.as_str()))
            .collect()
    }

    #[test]
    fn a_contact_is_told_in_its_language_else_its_customer_s_else_the_default() {
        let n = notifier();
        // The ULB contact has no language of its own; ULB's is the default, English.
        assert_eq!(
            n.language_of(Some("ulb"), "+3226501111"),
            crate::notify::words::Lang::En
        );
        let mut c = n.customers.get().all().to_vec();
        c[0].language = "fr".into();
        n.customers
            .set(Customers::new(c.clone()).expect("customers"));
        use crate::notify::words::Lang;
        assert_eq!(n.language_of(Some("ulb"), "noc@ulb.example"), Lang::Fr);
        c[0].contacts[0].language = Some("nl".into());
        n.customers.set(Customers::new(c).expect("customers"));
        assert_eq!(n.language_of(Some("ulb"), "+3226501111"), Lang::Nl);
        assert_eq!(n.language_of(Some("ulb"), "desk@example.org"), Lang::En);
        assert_eq!(n.language_of(None, "+3226501111"), Lang::En);
    }

    #[test]
    fn every_channel_and_kind_reads_back_from_its_name() {
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()), Some(c));
        }
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
    }

    #[test]
    fn danger_calls_first_and_no_danger_is_email_only() {
        let n = notifier();
        assert_eq!(
            targets(&plan(&n, &subject(false), Kind::Opened, &[])),
            [("email", "desk@example.org")]
        );
        assert_eq!(
            targets(&plan(&n, &subject(true), Kind::Opened, &[])),
            [
                ("voice", "+32470000001"),
                ("voice", "+3226501111"),
                ("sms", "+32470000002"),
                ("email", "oncall@example.org"),
                ("email", "noc@ulb.example"),
            ]
        );
    }

    #[test]
    fn changes_and_retractions_reach_everyone_told_before() {
        let n = notifier();
        let told = plan(&n, &subject(true), Kind::Opened, &[]);
        // Danger disappears: the route now names the desk, and everyone called is called.
        let change = plan(&n, &subject(false), Kind::Changed, &told);
        assert_eq!(change[0].target, "desk@example.org");
        assert_eq!(change.len(), told.len() + 1);
        assert!(told.iter().all(|d| change.contains(d)));
        // A retraction of an incident told by e-mail only stays e-mail.
        let quiet = plan(&n, &subject(false), Kind::Opened, &[]);
        assert_eq!(
            targets(&plan(&n, &subject(false), Kind::Retracted, &quiet)),
            [("email", "desk@example.org")]
        );
        // Danger appearing calls.
        let up = plan(&n, &subject(true), Kind::Changed, &quiet);
        assert_eq!(up[0].channel, Channel::Voice);
        assert!(up.iter().any(|d| d.target == "desk@example.org"));
        // A resolution goes to receivers that want it (the route's and those told before),
        // never by phone.
        assert!(plan(&n, &subject(true), Kind::Resolved, &told).is_empty());
        assert_eq!(
            targets(&plan(&n, &subject(true), Kind::Resolved, &quiet)),
            [("email", "desk@example.org")]
        );
        assert_eq!(
            targets(&plan(&n, &subject(false), Kind::Resolved, &quiet)),
            [("email", "desk@example.org")]
        );
    }

    #[test]
    fn a_route_can_call_for_a_severity_the_rule_did_not_judge_a_danger() {
        let cfg: NotifyConfig = toml::from_str(
            r#"
[smtp]
host = "127.0.0.1"
from = "vigil@example.org"
[voice]
url = "http://127.0.0.1:1/call"
[[receivers]]
name = "desk"
email = ["desk@example.org"]
[[receivers]]
name = "oncall"
email = ["oncall@example.org"]
voice = ["+32470000001"]
[route]
receiver = "desk"
[[route.routes]]
matchers = ["severity=critical"]
receiver = "oncall"
danger = true
"#,
        )
        .expect("notify toml");
        let n = Notifier::new(&cfg, Default::default(), Default::default())
            .expect("valid")
            .expect("routed");
        let mut s = subject(false);
        s.severity = "critical".into();
        assert_eq!(
            targets(&plan(&n, &s, Kind::Opened, &[])),
            [("voice", "+32470000001"), ("email", "oncall@example.org")]
        );
        s.severity = "high".into();
        assert_eq!(
            targets(&plan(&n, &s, Kind::Opened, &[])),
            [("email", "desk@example.org")],
            "severity alone is not danger"
        );
    }
}
