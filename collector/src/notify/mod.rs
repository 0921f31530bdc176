//! Notifications: who is told about an incident, by which channel, in which order, and the
//! outbox that makes sure they are.
//!
//! # Layout
//! - this file: the configuration (`[notify]`) and the [`Notifier`] built from it.
//! - [`route`]: the Alertmanager-style routing tree.
//! - [`plan`]: the deliveries an incident change calls for (danger decides the channel).
//! - [`outbox`]: deliveries in the incident database, written in the transaction of the
//!   change that causes them; claimed, finished and retried by the dispatcher.
//! - [`dispatch`]: the loop that sends what is due, and records every attempt on the timeline;
//!   [`breaker`]: a channel that keeps failing is left alone for a while.
//! - [`callback`]: the gateway's report of a call: a key pressed by a person acknowledges.
//! - [`reply`]: acknowledgement by the e-mail's link or an SMS reply, and replies that land
//!   on the timeline; [`inbound`]: replies by e-mail, through a small SMTP listener.
//! - [`task`]: operator call tasks, for receivers whose calls a person at the desk makes.
//! - [`flood`]: what is held for a digest (an exclusion, a limit, the SMS cap), and
//!   [`digest`]: the held announcements sent together, at most once per interval.
//! - [`maintenance`]: maintenance windows: their customers' incidents are not announced while
//!   one is on; the customers are told when it is planned, starts and ends.
//! - [`silence`]: time windows in which matching incidents are not announced (retractions
//!   always are).
//! - [`text`]: what an announcement says, in the words ([`words`]) of each language. [`email`], [`gateway`] (voice and SMS through an
//!   HTTP gateway), [`webhook`] (Alertmanager's payload) and [`cap`] (OASIS CAP 1.2) send it.
//!
//! # Invariants
//! - Danger decides the channel: with probable danger, voice (and SMS where configured)
//!   first, the e-mail once the voice attempts have ended or after `confirm_after` at most;
//!   without danger, e-mail only.
//! - Essential changes (danger appearing or disappearing) and retractions go, voice first
//!   then e-mail, to everyone told before as well as to whom the route names now. A rising
//!   count is not announced.
//! - A delivery is in the outbox before the change that causes it is committed; an attempt
//!   is recorded as started before it is made. After a crash, a delivery whose attempt was
//!   started but not recorded as ended is made again with the same idempotency key.

pub mod breaker;
pub mod callback;
pub mod cap;
pub mod digest;
pub mod dispatch;
pub mod email;
pub mod flood;
pub mod gateway;
pub mod inbound;
pub mod maintenance;
pub mod outbox;
pub mod plan;
pub mod reply;
pub mod route;
pub mod selftest;
pub mod silence;
pub mod task;
pub mod template;
pub mod text;
pub mod webhook;
pub mod words;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use vigil_schema::config::de_duration;

use crate::oncall::OnCall;
use crate::reference::Customers;
use crate::reference::directory::Shared;
use route::{Route, RouteConfig};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// This Vigil's address as people reach it, for links in announcements.
    pub external_url: String,
    /// The e-mail after a voice call waits for the call to end, at most this long.
    #[serde(deserialize_with = "de_duration")]
    pub confirm_after: Duration,
    /// Attempts per delivery before it is given up (and the failure is on the timeline).
    pub attempts: u32,
    /// Wait after the first failed attempt; doubled after each, at most 5 minutes.
    #[serde(deserialize_with = "de_duration")]
    pub retry_backoff: Duration,
    /// Longest an attempt may take (a gateway that hangs, an SMTP server that stalls).
    #[serde(deserialize_with = "de_duration")]
    pub timeout: Duration,
    pub smtp: Option<SmtpConfig>,
    /// The HTTP gateway that places voice calls.
    pub voice: Option<GatewayConfig>,
    /// The HTTP gateway that sends SMS.
    pub sms: Option<GatewayConfig>,
    pub receivers: Vec<ReceiverConfig>,
    /// Without a route, nothing is announced.
    pub route: Option<RouteConfig>,
    /// The key a person presses in a call to acknowledge the incident.
    pub ack_digit: String,
    /// What CAP messages say about their sender, scope and area.
    pub cap: cap::CapConfig,
    /// Announcements held (an exclusion, a limit, the SMS cap) go to each receiver as one
    /// digest e-mail at most this often.
    #[serde(deserialize_with = "de_duration")]
    pub digest_interval: Duration,
    /// The language of announcements to whoever is not a customer's contact (`en`, `fr`,
    /// `nl`, `de`); a contact gets theirs, else their customer's.
    pub language: String,
    /// How often the alerts of active incidents are pushed to Alertmanager again (each
    /// stays active there five times as long without a push).
    #[serde(deserialize_with = "de_duration")]
    pub alertmanager_refresh: Duration,
    /// A channel (for webhooks, CAP and Alertmanager: an endpoint) that fails this many
    /// attempts in a row is not tried for `breaker_cooldown`, and raises its own incident.
    pub breaker_failures: u32,
    #[serde(deserialize_with = "de_duration")]
    pub breaker_cooldown: Duration,
    /// An SMTP listener for replies to announcement e-mails (see `[notify.smtp] reply_to`).
    pub inbound: Option<inbound::InboundConfig>,
    /// At most this many announcements about one customer's incidents per interval; the
    /// next are held for the digest.
    pub customer_limit: Option<LimitConfig>,
    /// At most this many SMS about one customer's incidents per calendar month (UTC); the
    /// next are held for the digest (calls and e-mails still go).
    pub sms_cap: Option<u32>,
    /// Scheduled test notifications through each channel of a receiver.
    pub selftest: Option<selftest::SelftestConfig>,
    /// Texts of one's own per channel and language ([`template`]).
    pub templates: Vec<template::TemplateConfig>,
    /// Who the people told may call back (decree art. 4: the contact person and their
    /// phone numbers), said in every e-mail about an incident.
    pub contact: Option<ContactConfig>,
}

/// `[notify.contact]`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ContactConfig {
    pub name: String,
    /// E.164 numbers.
    #[serde(default)]
    pub phones: Vec<String>,
    #[serde(default)]
    pub email: Option<String>,
}

/// `{ count = 20, per = "1h" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    pub count: u32,
    #[serde(deserialize_with = "de_duration")]
    pub per: Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            external_url: "http://127.0.0.1:8080".into(),
            confirm_after: Duration::from_secs(60),
            attempts: 5,
            retry_backoff: Duration::from_secs(5),
            timeout: Duration::from_secs(10),
            smtp: None,
            voice: None,
            sms: None,
            receivers: Vec::new(),
            route: None,
            ack_digit: "1".into(),
            cap: cap::CapConfig::default(),
            digest_interval: Duration::from_secs(3600),
            language: "en".into(),
            alertmanager_refresh: Duration::from_secs(60),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(60),
            inbound: None,
            customer_limit: None,
            sms_cap: None,
            selftest: None,
            templates: Vec::new(),
            contact: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// `starttls` (default), `tls` (implicit, port 465) or `none` (a relay on a trusted
    /// network only).
    #[serde(default)]
    pub security: SmtpSecurity,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// The sender, `Vigil <vigil@example.org>`.
    pub from: String,
    /// Where replies go (`Reply-To`): an address the mail server forwards to
    /// `[notify.inbound]`.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// A second relay, tried when this one fails (an e-mail's failover is another relay,
    /// never a phone).
    #[serde(default)]
    pub fallback: Option<RelayConfig>,
}

/// A relay of its own (`[notify.smtp.fallback]`): the sender is `[notify.smtp] from`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    #[serde(default)]
    pub security: SmtpSecurity,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

fn default_smtp_port() -> u16 {
    587
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    #[default]
    Starttls,
    Tls,
    None,
}

/// An HTTP request made from templates (minijinja, Jinja syntax): `url`, each header and
/// `body` see `to`, `text`, `incident` (`id`, `title`, `severity`, `danger`, `customer`,
/// `status`, `url`), `kind` (`opened`, `changed`, `retracted`, `resolved`), `key` (the
/// idempotency key) and `callback` (the URL the gateway reports the call's outcome to).
/// `{{ text|tojson }}` writes a JSON string.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayConfig {
    #[serde(default = "default_method")]
    pub method: String,
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: String,
    /// SMS only: the secret in the URL the gateway forwards replies to
    /// (`/api/v1/notify/sms/{inbound_token}`); without it, replies are not taken.
    #[serde(default)]
    pub inbound_token: Option<String>,
}

fn default_method() -> String {
    "POST".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiverConfig {
    pub name: String,
    /// Addresses told by e-mail.
    #[serde(default)]
    pub email: Vec<String>,
    /// Numbers (E.164) called when there is probable danger.
    #[serde(default)]
    pub voice: Vec<String>,
    /// Numbers (E.164) sent an SMS, with the call, when there is probable danger.
    #[serde(default)]
    pub sms: Vec<String>,
    /// URLs sent Alertmanager's webhook payload.
    #[serde(default)]
    pub webhook: Vec<String>,
    /// URLs sent each announcement as a CAP 1.2 message (`POST`, `application/cap+xml`).
    #[serde(default)]
    pub cap: Vec<String>,
    /// Alertmanagers (`http://alertmanager:9093`) the incident's alert is pushed to
    /// (`POST /api/v2/alerts`), pushed again while the incident is active, and ended with it.
    #[serde(default)]
    pub alertmanager: Vec<String>,
    /// Roles of the incident's customer's contacts who are told too (their e-mail, and
    /// their phone when there is danger).
    #[serde(default)]
    pub roles: Vec<String>,
    /// A rota of `[[oncall.rotas]]`: the person on call at the incident's level is told
    /// (e-mail, and phone when there is danger); the next level when it is not
    /// acknowledged in time.
    #[serde(default)]
    pub oncall: Option<String>,
    /// Who places this receiver's calls: `gateway` (automated voice, the default) or `desk`
    /// (an operator call task for each number, with a script and a deadline).
    #[serde(default)]
    pub calls_by: CallsBy,
    /// With `calls_by = "desk"`: by when a call task must be recorded as made; past it, the
    /// incident escalates as if not acknowledged.
    #[serde(default = "default_call_within", deserialize_with = "de_duration")]
    pub call_within: Duration,
    /// At most this many announcements to this receiver per interval; the next are held
    /// for its digest (by e-mail: it needs an address or roles).
    #[serde(default)]
    pub limit: Option<LimitConfig>,
    /// Whether a resolution is announced (by e-mail and webhook).
    #[serde(default = "default_true")]
    pub send_resolved: bool,
}

fn default_true() -> bool {
    true
}

fn default_call_within() -> Duration {
    Duration::from_secs(15 * 60)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallsBy {
    #[default]
    Gateway,
    Desk,
}

/// The notification settings, checked and ready: the routing tree, the receivers, the
/// customers, the compiled gateway templates.
#[derive(Debug)]
pub struct Notifier {
    pub cfg: NotifyConfig,
    pub route: Route,
    pub receivers: BTreeMap<String, ReceiverConfig>,
    /// The customers in force (reloaded when they change).
    pub customers: Shared<Customers>,
    pub oncall: OnCall,
    /// Texts of one's own ([`template`]); empty: the built-in ones.
    pub templates: template::Templates,
}

impl Notifier {
    /// `None` when no route is configured (nothing is announced). The error names the key
    /// (`notify.receivers`, `notify.route`, `notify.voice`, ...) and what is wrong with it.
    pub fn new(
        cfg: &NotifyConfig,
        customers: Shared<Customers>,
        oncall: OnCall,
    ) -> Result<Option<Notifier>, (&'static str, String)> {
        let mut receivers = BTreeMap::new();
        for r in &cfg.receivers {
            let bad = |m: String| ("notify.receivers", format!("receiver {:?}: {m}", r.name));
            for e in &r.email {
                e.parse::<lettre::message::Mailbox>()
                    .map_err(|_| bad(format!("{e:?} is not an e-mail address")))?;
            }
            for n in r.voice.iter().chain(&r.sms) {
                if !crate::reference::is_e164(n) {
                    return Err(bad(format!(
                        "{n:?} is not in E.164 form (+ and 8 to 15 digits)"
                    )));
                }
            }
            for u in r.webhook.iter().chain(&r.cap).chain(&r.alertmanager) {
                reqwest::Url::parse(u).map_err(|e| bad(format!("URL {u:?}: {e}")))?;
            }
            if !r.voice.is_empty() && cfg.voice.is_none() && r.calls_by == CallsBy::Gateway {
                return Err(bad(
                    "has voice numbers but [notify.voice] is not configured".into(),
                ));
            }
            if !r.sms.is_empty() && cfg.sms.is_none() {
                return Err(bad(
                    "has SMS numbers but [notify.sms] is not configured".into()
                ));
            }
            if (!r.email.is_empty() || !r.roles.is_empty()) && cfg.smtp.is_none() {
                return Err(bad(
                    "has e-mail recipients but [notify.smtp] is not configured".into(),
                ));
            }
            if let Some(rota) = &r.oncall {
                if !oncall.has_rota(rota) {
                    return Err(bad(format!("rota {rota:?} is not in [[oncall.rotas]]")));
                }
                if cfg.smtp.is_none() && oncall.people().any(|p| p.email.is_some()) {
                    return Err(bad(
                        "names a rota whose people have e-mail addresses but [notify.smtp] is not configured".into(),
                    ));
                }
                if cfg.voice.is_none()
                    && r.calls_by == CallsBy::Gateway
                    && oncall.people().any(|p| p.phone.is_some())
                {
                    return Err(bad(
                        "names a rota whose people have phones but [notify.voice] is not configured".into(),
                    ));
                }
            }
            if let Some(l) = &r.limit {
                if l.count == 0 || l.per < Duration::from_secs(1) {
                    return Err(bad("limit: count at least 1, per at least 1s".into()));
                }
                if r.email.is_empty() && r.roles.is_empty() {
                    return Err(bad(
                        "limit: what it holds goes by e-mail digest, and it has no e-mail or roles"
                            .into(),
                    ));
                }
            }
            if receivers.insert(r.name.clone(), r.clone()).is_some() {
                return Err(bad("is defined twice".into()));
            }
        }
        if let Some(s) = &cfg.smtp {
            s.from.parse::<lettre::message::Mailbox>().map_err(|_| {
                (
                    "notify.smtp.from",
                    format!("{:?} is not an e-mail address", s.from),
                )
            })?;
        }
        for (key, g) in [("notify.voice", &cfg.voice), ("notify.sms", &cfg.sms)] {
            if let Some(g) = g {
                gateway::check(g).map_err(|e| (key, e))?;
            }
        }
        if cfg
            .voice
            .as_ref()
            .is_some_and(|g| g.inbound_token.is_some())
        {
            return Err((
                "notify.voice.inbound_token",
                "replies come by SMS: set it under [notify.sms]".into(),
            ));
        }
        if let Some(t) = cfg.sms.as_ref().and_then(|g| g.inbound_token.as_ref())
            && (t.len() < 16
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        {
            return Err((
                "notify.sms.inbound_token",
                "at least 16 letters, digits, - or _ (it is the reply URL's secret)".into(),
            ));
        }
        cfg.cap.check().map_err(|e| ("notify.cap", e))?;
        if let Some(c) = &cfg.contact {
            if c.name.trim().is_empty() {
                return Err(("notify.contact", "name: required".into()));
            }
            if let Some(p) = c.phones.iter().find(|p| !crate::reference::is_e164(p)) {
                return Err((
                    "notify.contact",
                    format!("phones: {p:?} is not in E.164 form (+ and 8 to 15 digits)"),
                ));
            }
        }
        let templates = template::Templates::new(&cfg.templates, cfg.contact.as_ref())
            .map_err(|e| ("notify.templates", e))?;
        if cfg
            .customer_limit
            .as_ref()
            .is_some_and(|l| l.count == 0 || l.per < Duration::from_secs(1))
        {
            return Err((
                "notify.customer_limit",
                "count at least 1, per at least 1s".into(),
            ));
        }
        if !crate::reference::LANGUAGES.contains(&cfg.language.as_str()) {
            return Err((
                "notify.language",
                format!(
                    "{:?} is not one of {}",
                    cfg.language,
                    crate::reference::LANGUAGES.join(", ")
                ),
            ));
        }
        if let Some(i) = &cfg.inbound {
            i.listen.parse::<std::net::SocketAddr>().map_err(|e| {
                (
                    "notify.inbound.listen",
                    format!("{:?} is not an address and port: {e}", i.listen),
                )
            })?;
            if i.max_message_bytes < 1024 {
                return Err(("notify.inbound.max_message_bytes", "at least 1024".into()));
            }
        }
        if cfg.breaker_failures == 0 {
            return Err(("notify.breaker_failures", "at least 1".into()));
        }
        if cfg.alertmanager_refresh < Duration::from_secs(1) {
            return Err(("notify.alertmanager_refresh", "at least 1s".into()));
        }
        if cfg.digest_interval < Duration::from_secs(60) {
            return Err(("notify.digest_interval", "at least 1m".into()));
        }
        if cfg.attempts == 0 {
            return Err(("notify.attempts", "must be at least 1".into()));
        }
        if let Some(t) = &cfg.selftest {
            if !receivers.contains_key(&t.receiver) {
                return Err((
                    "notify.selftest.receiver",
                    format!("no receiver {:?}", t.receiver),
                ));
            }
            if t.every < Duration::from_secs(60) {
                return Err(("notify.selftest.every", "at least 1m".into()));
            }
        }
        let Some(route) = &cfg.route else {
            return Ok(None);
        };
        let names: Vec<&str> = receivers.keys().map(String::as_str).collect();
        let route = Route::build(route, &names).map_err(|e| ("notify.route", e))?;
        Ok(Some(Notifier {
            cfg: cfg.clone(),
            route,
            receivers,
            customers,
            oncall,
            templates,
        }))
    }

    /// The language of announcements to `target` (an address or a number) about an incident
    /// of `customer`: the contact's, else the customer's for its contacts, else
    /// `[notify] language`.
    pub fn language_of(&self, customer: Option<&str>, target: &str) -> words::Lang {
        self.language_among(customer.as_slice(), target)
    }

    /// [`Notifier::language_of`] for a target that is a contact of one of `customers` (a
    /// maintenance window's).
    pub fn language_among(&self, customers: &[impl AsRef<str>], target: &str) -> words::Lang {
        let all = self.customers.get();
        let contact = customers
            .iter()
            .filter_map(|c| all.get(c.as_ref()))
            .find_map(|c| {
                c.contacts
                    .iter()
                    .find(|k| {
                        k.email.as_deref() == Some(target) || k.phone.as_deref() == Some(target)
                    })
                    .map(|k| k.language.clone().unwrap_or_else(|| c.language.clone()))
            });
        words::Lang::parse(contact.as_deref().unwrap_or(&self.cfg.language))
    }

    /// Whose number `number` is: a contact of `customer`, or one of our people.
    pub fn owner(&self, customer: Option<&str>, number: &str) -> Option<String> {
        let customers = self.customers.get();
        let contact = customer.and_then(|c| customers.get(c)).and_then(|c| {
            c.contacts
                .iter()
                .find(|k| k.phone.as_deref() == Some(number))
                .map(|k| {
                    format!(
                        "{} ({}, {})",
                        k.name,
                        k.role,
                        c.name.as_deref().unwrap_or(&c.id)
                    )
                })
        });
        contact.or_else(|| {
            self.oncall
                .people()
                .find(|p| p.phone.as_deref() == Some(number))
                .map(|p| p.name.clone())
        })
    }

    /// The most levels of the rotas receivers name (1 without any): how far an incident
    /// escalates.
    pub fn levels(&self) -> usize {
        self.receivers
            .values()
            .filter_map(|r| r.oncall.as_deref())
            .map(|rota| self.oncall.levels(rota))
            .max()
            .unwrap_or(1)
            .max(1)
    }
}
