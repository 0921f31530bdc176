//! The dispatcher: claims what is due in the outbox, sends it by its channel, and records how
//! each attempt ended; failed attempts are retried with a doubling backoff, up to
//! `attempts`, then given up (on the timeline, and counted).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::breaker::Gate;
use super::email::Mailer;
use super::gateway::{self, Gateway};
use super::outbox::{self, Item, Outcome, Timing};
use super::plan::Channel;
use super::text::{Announcement, Call};
use super::{Notifier, webhook};
use crate::incidents::Store;
use crate::index::writer::Clock;
use crate::metrics::Metrics;

/// Longest wait between two looks at the outbox when nothing wakes the dispatcher.
const POLL: Duration = Duration::from_millis(250);
/// Most deliveries sent at once.
const BATCH: i64 = 128;
const MAX_BACKOFF: Duration = Duration::from_secs(300);

pub struct Dispatcher {
    pub store: Store,
    pub notifier: Arc<Notifier>,
    pub clock: Clock,
    /// Woken when the store enqueued deliveries.
    pub wake: Arc<Notify>,
    pub metrics: Arc<Metrics>,
    channels: Arc<Channels>,
    /// When the alerts of active incidents were last pushed to Alertmanager again.
    refreshed: std::sync::atomic::AtomicI64,
    /// When maintenance notices and digests were last looked at.
    housekept: std::sync::atomic::AtomicI64,
    breakers: super::breaker::Breakers,
}

struct Channels {
    mailer: Option<Mailer>,
    voice: Option<Gateway>,
    sms: Option<Gateway>,
    http: reqwest::Client,
}

impl Channels {
    /// The gateway that places `channel`'s messages (voice or SMS).
    fn gateway(&self, channel: Channel) -> Result<&Gateway, String> {
        let gw = if channel == Channel::Voice {
            &self.voice
        } else {
            &self.sms
        };
        gw.as_ref()
            .ok_or_else(|| format!("no [notify.{}] gateway", channel.as_str()))
    }
}

/// Where a gateway reports how a call went (`notify::callback`).
fn callback_url(external: &str, token: &str) -> String {
    format!(
        "{}/api/v1/notify/callback/{token}",
        external.trim_end_matches('/')
    )
}

/// Sends `req` with the delivery's idempotency key; the status when it is a success, else
/// an error naming `what` and `url`.
async fn post(
    req: reqwest::RequestBuilder,
    what: &str,
    url: &str,
    key: &str,
) -> Result<u16, String> {
    let resp = req
        .header("Idempotency-Key", key)
        .send()
        .await
        .map_err(|e| format!("{what} {url}: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(format!("{what} {url} answered {status}"));
    }
    Ok(status.as_u16())
}

impl Dispatcher {
    pub fn new(
        store: Store,
        notifier: Arc<Notifier>,
        clock: Clock,
        wake: Arc<Notify>,
        metrics: Arc<Metrics>,
    ) -> Result<Dispatcher, String> {
        let cfg = &notifier.cfg;
        let channels = Channels {
            mailer: cfg
                .smtp
                .as_ref()
                .map(|s| Mailer::new(s, cfg.timeout))
                .transpose()?,
            voice: cfg
                .voice
                .as_ref()
                .map(|g| Gateway::new(g, cfg.timeout))
                .transpose()?,
            sms: cfg
                .sms
                .as_ref()
                .map(|g| Gateway::new(g, cfg.timeout))
                .transpose()?,
            http: reqwest::Client::builder()
                .timeout(cfg.timeout)
                .build()
                .map_err(|e| e.to_string())?,
        };
        let breakers = super::breaker::Breakers::new(cfg.breaker_failures, cfg.breaker_cooldown);
        Ok(Dispatcher {
            store,
            notifier,
            clock,
            wake,
            metrics,
            channels: Arc::new(channels),
            refreshed: std::sync::atomic::AtomicI64::new(i64::MIN),
            housekept: std::sync::atomic::AtomicI64::new(i64::MIN),
            breakers,
        })
    }

    fn now(&self) -> i64 {
        (self.clock)().timestamp_millis()
    }

    /// Sends what is due until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            match self.round().await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "notification outbox cannot be read; retrying")
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// One pass: claims what is due and sends it; how many were claimed.
    pub async fn round(&self) -> Result<usize, sqlx::Error> {
        let cfg = &self.notifier.cfg;
        let timing = Timing {
            now: self.now(),
            confirm_ms: cfg.confirm_after.as_millis() as i64,
            // An attempt takes at most the timeout; a started one twice as old was abandoned.
            lease_ms: 2 * cfg.timeout.as_millis() as i64 + 1000,
        };
        // Maintenance notices and digests are minutes-scale: looked at once a second, not
        // in every round of a busy outbox.
        let housekept = self.housekept.load(std::sync::atomic::Ordering::Relaxed);
        let housekeeping = timing.now.saturating_sub(housekept) >= 1000;
        if housekeeping {
            self.housekept
                .store(timing.now, std::sync::atomic::Ordering::Relaxed);
            if let Err(e) =
                super::maintenance::tick(self.store.pool(), &self.notifier, timing.now).await
            {
                tracing::error!(error = %e, "maintenance notices not made; retrying");
            }
            if let Err(e) = self.store.announce_after_maintenance().await {
                tracing::error!(error = %e, "incidents held by maintenance not announced yet; retrying");
            }
            if let Err(e) =
                super::selftest::tick(self.store.pool(), &self.notifier, timing.now).await
            {
                tracing::error!(error = %e, "test notifications not queued; retrying");
            }
        }
        let last = self.refreshed.load(std::sync::atomic::Ordering::Relaxed);
        if timing.now.saturating_sub(last) >= cfg.alertmanager_refresh.as_millis() as i64 {
            self.refreshed
                .store(timing.now, std::sync::atomic::Ordering::Relaxed);
            if let Err(e) = self.refresh_alerts().await {
                tracing::warn!(error = %e, "alerts not pushed to Alertmanager again; next minute");
            }
        }
        // Digests due join the outbox first, and go out in this round.
        if housekeeping
            && let Err(e) =
                super::digest::make_due(self.store.pool(), &self.notifier, timing.now).await
        {
            tracing::error!(error = %e, "digests not made; retrying");
        }
        let items = outbox::claim(self.store.pool(), timing, BATCH).await?;
        let n = items.len();
        // Deliveries through an open breaker wait for it instead of failing against it;
        // through a half-open one, one of them, at random, is the trial and the others wait
        // for its end (the next round).
        let mut blocked: std::collections::BTreeMap<i64, Vec<Item>> = Default::default();
        let mut go = Vec::with_capacity(items.len());
        let mut trials: std::collections::HashMap<String, Vec<Item>> = Default::default();
        for it in items {
            let key = super::breaker::key(&it.delivery);
            match self.breakers.gate(&key, timing.now) {
                Gate::Open(until) => blocked.entry(until).or_default().push(it),
                Gate::HalfOpen => trials.entry(key).or_default().push(it),
                Gate::Closed => go.push(it),
            }
        }
        let mut trial_ids = std::collections::HashSet::new();
        for (_, mut waiting) in trials {
            let trial = waiting.swap_remove(rand::random_range(0..waiting.len()));
            trial_ids.insert(trial.id);
            go.push(trial);
            if !waiting.is_empty() {
                blocked.entry(timing.now).or_default().extend(waiting);
            }
        }
        for (until, items) in &blocked {
            outbox::postpone(self.store.pool(), items, *until, timing.now).await?;
        }
        // The incidents of the round in a few queries, not one per delivery (a failure here
        // only means each delivery reads its own).
        let ids: Vec<i64> = go
            .iter()
            .map(|it| it.incident_id)
            .filter(|&id| id != outbox::NO_INCIDENT)
            .collect();
        let briefs = self.store.get_many_brief(&ids).await.unwrap_or_default();
        let mut set = JoinSet::new();
        for it in go {
            let store = self.store.clone();
            let notifier = self.notifier.clone();
            let channels = self.channels.clone();
            let now = timing.now;
            let brief = briefs.get(&it.incident_id).cloned();
            set.spawn(async move {
                let outcome = send(&store, &notifier, &channels, &it, brief, now).await;
                (it, outcome)
            });
        }
        drop(briefs);
        // The attempts that have ended are recorded together (one commit), as soon as the
        // first of them ends: a slow one does not hold back the others' ends.
        while let Some(first) = set.join_next().await {
            let mut done = vec![first];
            while let Some(more) = set.try_join_next() {
                done.push(more);
            }
            let now = self.now();
            let mut ended = Vec::with_capacity(done.len());
            for d in done {
                let (it, result) = match d {
                    Ok(r) => r,
                    Err(e) => {
                        // The delivery stays started: taken again when its lease runs out.
                        tracing::error!(error = %e, "a notification attempt panicked");
                        continue;
                    }
                };
                // A failed trial spends nothing: the channel failed, and the breaker opens
                // again; the delivery waits for it like the others.
                if trial_ids.contains(&it.id)
                    && let Err(error) = &result
                {
                    let key = super::breaker::key(&it.delivery);
                    self.breaker_ended(&it, Some(error), now).await;
                    let until = self.breakers.open_until(&key, now).unwrap_or(now);
                    outbox::postpone(self.store.pool(), std::slice::from_ref(&it), until, now)
                        .await?;
                    continue;
                }
                let outcome = self.outcome(&it, result, now);
                ended.push((it, outcome));
            }
            outbox::finish_all(self.store.pool(), &ended, now).await?;
            self.count_sms(&ended).await;
            for (it, outcome) in &ended {
                let error = match outcome {
                    Outcome::Failed { error, .. } => Some(error.as_str()),
                    Outcome::Sent(_) => None,
                };
                self.breaker_ended(it, error, now).await;
            }
            self.metrics
                .notify_breakers_open
                .set(self.breakers.open(now).len() as i64);
            for (it, outcome) in &ended {
                if let Outcome::Failed {
                    error,
                    retry_at: None,
                } = outcome
                {
                    self.given_up(it, error).await?;
                }
            }
        }
        Ok(n)
    }
}

impl Dispatcher {
    /// Records how an attempt through its breaker ended (`error`: how it failed); an
    /// opening raises the channel's incident.
    async fn breaker_ended(&self, it: &Item, error: Option<&str>, now: i64) {
        let key = super::breaker::key(&it.delivery);
        match self.breakers.record(&key, error.is_none(), now) {
            super::breaker::Change::Opened => {
                tracing::error!(breaker = %key, "a notification channel keeps failing: not tried for a while");
                self.channel_failing(
                    it,
                    &format!(
                        "{key}: {} attempts in a row failed, the last: {}; not tried for {:?}",
                        self.notifier.cfg.breaker_failures,
                        error.unwrap_or_default(),
                        self.notifier.cfg.breaker_cooldown
                    ),
                )
                .await;
            }
            super::breaker::Change::Closed => {
                tracing::info!(breaker = %key, "a notification channel works again")
            }
            super::breaker::Change::None => {}
        }
    }

    /// What an attempt's result means: sent, retried later (doubling backoff), or given up
    /// after the last attempt; counted by channel and outcome.
    fn outcome(&self, it: &Item, result: Result<serde_json::Value, String>, now: i64) -> Outcome {
        let cfg = &self.notifier.cfg;
        let outcome = match result {
            Ok(answer) => Outcome::Sent(answer),
            Err(error) => {
                let retry_at = (it.attempts < i64::from(cfg.attempts)).then(|| {
                    let factor = 1u32 << (it.attempts.clamp(1, 16) - 1);
                    now + cfg
                        .retry_backoff
                        .saturating_mul(factor)
                        .min(MAX_BACKOFF)
                        .as_millis() as i64
                });
                tracing::warn!(incident = it.incident_id, channel = it.delivery.channel.as_str(),
                    target = %it.delivery.target, attempt = it.attempts, %error,
                    retry = retry_at.is_some(), "notification attempt failed");
                Outcome::Failed { error, retry_at }
            }
        };
        let label = match &outcome {
            Outcome::Sent(_) => "sent",
            Outcome::Failed {
                retry_at: Some(_), ..
            } => "retry",
            Outcome::Failed { retry_at: None, .. } => "failed",
        };
        self.metrics
            .notify_attempts
            .get_or_create(&vec![
                ("channel", it.delivery.channel.as_str().to_owned()),
                ("outcome", label.to_owned()),
            ])
            .inc();
        outcome
    }

    /// Pushes the alerts of the active incidents already pushed to an Alertmanager again, one
    /// request per Alertmanager, so they do not expire there.
    pub async fn refresh_alerts(&self) -> Result<usize, String> {
        let rows = sqlx::query(
            "SELECT DISTINCT o.incident_id, o.target FROM outbox o
             JOIN incidents i ON i.id = o.incident_id
             WHERE o.channel = 'alertmanager' AND o.state = 'sent'
               AND i.status IN ('open', 'acknowledged')
             ORDER BY o.target, o.incident_id",
        )
        .fetch_all(self.store.pool())
        .await
        .map_err(|e| e.to_string())?;
        let mut by: std::collections::BTreeMap<String, Vec<serde_json::Value>> =
            std::collections::BTreeMap::new();
        let external = &self.notifier.cfg.external_url;
        for r in rows {
            use sqlx::Row;
            let (id, target): (i64, String) = (
                r.try_get("incident_id").map_err(|e| e.to_string())?,
                r.try_get("target").map_err(|e| e.to_string())?,
            );
            let inc = self.store.get_brief(id).await.map_err(|e| e.to_string())?;
            let a = Announcement::new(super::plan::Kind::Opened, &inc, external, Vec::new());
            let now = (self.clock)();
            if let serde_json::Value::Array(alerts) =
                webhook::pushed(&a, now, alert_ttl(&self.notifier))
            {
                by.entry(target).or_default().extend(alerts);
            }
        }
        let n = by.len();
        for (target, alerts) in by {
            let key = format!("vigil-refresh-{}", self.now());
            push(
                &self.channels.http,
                &target,
                &key,
                &serde_json::Value::Array(alerts),
            )
            .await?;
        }
        Ok(n)
    }

    /// Counts the SMS sent, per customer: what the SMS gateway bills.
    async fn count_sms(&self, ended: &[(Item, Outcome)]) {
        for (it, outcome) in ended {
            if it.delivery.channel != Channel::Sms || !matches!(outcome, Outcome::Sent(_)) {
                continue;
            }
            let customer = match self.store.get_brief(it.incident_id).await {
                Ok(inc) => inc.customer.unwrap_or_default(),
                Err(_) => String::new(),
            };
            self.metrics
                .notify_sms_sent
                .get_or_create(&vec![("customer", customer)])
                .inc();
        }
    }

    /// After a delivery's last failed attempt: a call fails over to an SMS to the same number
    /// (when an SMS gateway is configured), and the channel's failure becomes an incident of
    /// its own (rule `vigil-notify-<channel>`, one per channel while active: further failures
    /// add to its count), announced by the other channels.
    async fn given_up(&self, it: &Item, error: &str) -> Result<(), sqlx::Error> {
        let now = self.now();
        if it.delivery.channel == Channel::Voice && self.channels.sms.is_some() {
            let sms = super::plan::Delivery {
                channel: Channel::Sms,
                ..it.delivery.clone()
            };
            if outbox::fail_over(self.store.pool(), it, &sms, now).await? {
                self.wake.notify_one();
            }
        }
        let message = format!(
            "{} to {} given up after {} attempts: {error}",
            it.delivery.channel.as_str(),
            it.delivery.target,
            it.attempts
        );
        self.record_failing(it, &format!("notify-failed-{}", it.id), message)
            .await;
        Ok(())
    }

    /// A channel's breaker opened on `it`'s attempt: the channel's own incident.
    async fn channel_failing(&self, it: &Item, message: &str) {
        let id = format!("notify-breaker-{}-{}", it.id, self.now());
        self.record_failing(it, &id, message.to_owned()).await;
    }

    /// Records alert `id` of the incident of `it`'s failing channel (rule
    /// `vigil-notify-<channel>`, one per channel while active: further failures add to its
    /// count), announced by the other channels.
    async fn record_failing(&self, it: &Item, id: &str, message: String) {
        let channel = it.delivery.channel.as_str();
        let alert = crate::incidents::Alert {
            id: id.to_owned(),
            rule_id: format!("{CHANNEL_RULE}{channel}"),
            title: format!("Notification channel {channel} is failing"),
            severity: "high".into(),
            customer: None,
            group_key: format!("channel={channel}"),
            at: (self.clock)(),
            message: Some(message),
            // Nobody may be told of the next incidents: the desk is called.
            danger: true,
            affected: Vec::new(),
            tags: Vec::new(),
            seen: Default::default(),
        };
        if let Err(e) = self.store.record(&[alert]).await {
            tracing::error!(error = %e, channel, "the failing channel's incident could not be recorded");
        }
    }
}

/// How long a pushed alert stays active in Alertmanager without being pushed again: five
/// refresh intervals.
fn alert_ttl(n: &Notifier) -> chrono::Duration {
    chrono::Duration::from_std(n.cfg.alertmanager_refresh * 5)
        .unwrap_or(chrono::Duration::minutes(5))
}

/// `POST {base}/api/v2/alerts` with `body`.
async fn push(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    let url = format!("{}/api/v2/alerts", base.trim_end_matches('/'));
    let status = post(http.post(&url).json(body), "alertmanager", &url, key).await?;
    Ok(serde_json::json!({"status": status}))
}

/// The rule of the incident a failing channel raises: `vigil-notify-<channel>`. Its own
/// announcements never use that channel.
pub const CHANNEL_RULE: &str = "vigil-notify-";

/// Whether an announcement of `kind` asks for an acknowledgement (the incident is active).
fn awaits_ack(kind: super::plan::Kind) -> bool {
    use super::plan::Kind;
    matches!(kind, Kind::Opened | Kind::Changed | Kind::Escalated)
}

/// Sends one scheduled test; what the receiving side answered.
async fn selftest(
    notifier: &Notifier,
    ch: &Channels,
    it: &Item,
) -> Result<serde_json::Value, String> {
    use super::selftest as t;
    let round = t::round_of(it.cause);
    let key = it.key();
    let target = it.delivery.target.as_str();
    let external = &notifier.cfg.external_url;
    match it.delivery.channel {
        Channel::Email => {
            let (subject, body) = t::email(round);
            let mailer = ch.mailer.as_ref().ok_or("no [notify.smtp]")?;
            let answer = mailer.send(target, &subject, body, &key, None).await?;
            Ok(serde_json::json!({"smtp": answer, "selftest": round}))
        }
        Channel::Voice | Channel::Sms => {
            ch.gateway(it.delivery.channel)?
                .send(&gateway::Request {
                    to: target,
                    text: &t::text(it.delivery.channel, round),
                    key: &key,
                    kind: super::plan::Kind::SelfTest.as_str(),
                    incident: &t::view(round, external),
                    callback: &callback_url(external, &it.token),
                })
                .await
        }
        Channel::Webhook => {
            let body = t::webhook(&it.delivery.receiver, round, external);
            let status = post(ch.http.post(target).json(&body), "webhook", target, &key).await?;
            Ok(serde_json::json!({"status": status, "selftest": round}))
        }
        Channel::Cap => {
            let req = ch
                .http
                .post(target)
                .header("Content-Type", "application/cap+xml")
                .body(t::cap(notifier, round));
            let status = post(req, "cap", target, &key).await?;
            Ok(serde_json::json!({"status": status, "selftest": round}))
        }
        Channel::Task | Channel::Alertmanager => Err("not tested".into()),
    }
}

/// Sends one delivery at `now`; what the receiving side answered.
async fn send(
    store: &Store,
    notifier: &Notifier,
    ch: &Channels,
    it: &Item,
    brief: Option<crate::incidents::Incident>,
    now: i64,
) -> Result<serde_json::Value, String> {
    if it.kind == super::plan::Kind::SelfTest {
        return selftest(notifier, ch, it).await;
    }
    if it.kind.is_notice() {
        let id = super::maintenance::window_of(it.cause);
        let m = super::maintenance::get(store.pool(), id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no maintenance window {id}"))?;
        let lang = notifier.language_among(&m.customers, &it.delivery.target);
        let (subject, body) = super::maintenance::email(&m, it.kind, lang);
        let mailer = ch.mailer.as_ref().ok_or("no [notify.smtp]")?;
        let answer = mailer
            .send(&it.delivery.target, &subject, body, &it.key(), None)
            .await?;
        return Ok(serde_json::json!({"smtp": answer, "maintenance": id}));
    }
    // Only a retraction's texts need the timeline (its reason), which grows with every
    // attempt recorded on it: the others load the incident alone.
    let inc = match brief {
        Some(inc) if it.kind != super::plan::Kind::Retracted => inc,
        _ if it.kind == super::plan::Kind::Retracted => store
            .get(it.incident_id)
            .await
            .map_err(|e| format!("incident {}: {e}", it.incident_id))?,
        _ => store
            .get_brief(it.incident_id)
            .await
            .map_err(|e| format!("incident {}: {e}", it.incident_id))?,
    };
    let external = &notifier.cfg.external_url;
    let key = it.key();
    let target = it.delivery.target.as_str();
    // The incident's customer and those it affects besides: the target is a contact of one.
    let customers: Vec<&str> = inc
        .customer
        .iter()
        .chain(&inc.affected)
        .map(String::as_str)
        .collect();
    let lang = notifier.language_among(&customers, target);
    match it.delivery.channel {
        Channel::Task => {
            let a = Announcement::new(it.kind, &inc, external, Vec::new()).in_language(lang);
            let contact = customers
                .iter()
                .find_map(|c| notifier.owner(Some(c), target))
                .or_else(|| notifier.owner(None, target));
            let within = notifier
                .receivers
                .get(&it.delivery.receiver)
                .map_or(std::time::Duration::from_secs(900), |r| r.call_within);
            let task = super::task::NewTask {
                incident_id: it.incident_id,
                outbox_id: it.id,
                receiver: &it.delivery.receiver,
                number: target,
                contact: contact.as_deref(),
                script: &a.script(target, contact.as_deref()),
                due_at: now + within.as_millis() as i64,
            };
            let id = super::task::create(store.pool(), &task, now)
                .await
                .map_err(|e| format!("call task: {e}"))?;
            Ok(serde_json::json!({"task": id}))
        }
        Channel::Voice | Channel::Sms => {
            let a = Announcement::new(it.kind, &inc, external, Vec::new())
                .in_language(lang)
                .with_contact(notifier.cfg.contact.as_ref());
            let gw = ch.gateway(it.delivery.channel)?;
            let mut text = notifier
                .templates
                .spoken(it.delivery.channel, &a, a.spoken());
            // Replies reach Vigil only when the SMS gateway forwards them.
            let replies = notifier
                .cfg
                .sms
                .as_ref()
                .is_some_and(|g| g.inbound_token.is_some());
            if it.delivery.channel == Channel::Sms && awaits_ack(it.kind) && replies {
                text.push_str(&a.reply_ack());
            }
            gw.send(&gateway::Request {
                to: target,
                text: &text,
                key: &key,
                kind: a.kind,
                incident: &a.incident,
                callback: &callback_url(external, &it.token),
            })
            .await
        }
        Channel::Email | Channel::Webhook if it.kind == super::plan::Kind::Group => {
            let lines = super::digest::lines(store.pool(), it.cause)
                .await
                .map_err(|e| e.to_string())?;
            let labels = super::digest::group_labels(store.pool(), it.cause)
                .await
                .map_err(|e| e.to_string())?;
            let ids: Vec<i64> = lines.iter().map(|l| l.incident).collect();
            let incidents = store
                .get_many_brief(&ids)
                .await
                .map_err(|e| format!("group's incidents: {e}"))?;
            let group_customers: Vec<&str> =
                lines.iter().filter_map(|l| l.customer.as_deref()).collect();
            let lang = notifier.language_among(&group_customers, target);
            let anns: Vec<Announcement> = ids
                .iter()
                .filter_map(|i| incidents.get(i))
                .map(|inc| {
                    Announcement::new(super::plan::Kind::Opened, inc, external, Vec::new())
                        .in_language(lang)
                })
                .collect();
            if it.delivery.channel == Channel::Webhook {
                let body = webhook::group_payload(&anns, &it.delivery.receiver, &labels, external);
                let status =
                    post(ch.http.post(target).json(&body), "webhook", target, &key).await?;
                return Ok(serde_json::json!({"status": status, "alerts": anns.len()}));
            }
            let (subject, body) = super::text::group_email(&anns, &labels, lang);
            let mailer = ch.mailer.as_ref().ok_or("no [notify.smtp]")?;
            let answer = mailer.send(target, &subject, body, &key, None).await?;
            Ok(serde_json::json!({"smtp": answer, "incidents": anns.len()}))
        }
        Channel::Email if it.kind == super::plan::Kind::Digest => {
            let lines = super::digest::lines(store.pool(), it.cause)
                .await
                .map_err(|e| e.to_string())?;
            let held_customers: Vec<&str> =
                lines.iter().filter_map(|l| l.customer.as_deref()).collect();
            let lang = notifier.language_among(&held_customers, target);
            let (subject, body) = super::digest::email(&lines, external, lang);
            let mailer = ch.mailer.as_ref().ok_or("no [notify.smtp]")?;
            let answer = mailer.send(target, &subject, body, &key, None).await?;
            Ok(serde_json::json!({"smtp": answer, "digest": lines.len()}))
        }
        Channel::Email => {
            let calls = outbox::calls(store.pool(), it.cause)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|(channel, target, state)| Call {
                    channel,
                    target,
                    state,
                })
                .collect();
            let a = Announcement::new(it.kind, &inc, external, calls)
                .in_language(lang)
                .with_contact(notifier.cfg.contact.as_ref());
            let mailer = ch.mailer.as_ref().ok_or("no [notify.smtp]")?;
            let first = outbox::first_email(store.pool(), it.incident_id, target)
                .await
                .map_err(|e| e.to_string())?;
            let thread = first
                .filter(|&f| f != it.id)
                .map(|f| format!("vigil-{}-{f}", it.incident_id));
            let (subject, mut body) = notifier.templates.email(&a, a.subject(), a.email_body());
            // The link that acknowledges: whatever a template says, it is there.
            if awaits_ack(it.kind) {
                let url = format!(
                    "{}/api/v1/notify/respond/{}",
                    external.trim_end_matches('/'),
                    it.token
                );
                body.push_str(&format!("\n{}\n", a.respond(&url)));
            }
            let answer = mailer
                .send(target, &subject, body, &key, thread.as_deref())
                .await?;
            Ok(serde_json::json!({"smtp": answer, "message_id": mailer.message_id(&key)}))
        }
        Channel::Cap => {
            let web = super::text::incident_url(external, inc.id);
            let Some(m) = super::cap::message(
                store.pool(),
                &notifier.cfg.cap,
                it.cause,
                it.kind,
                &inc,
                &web,
                chrono::Utc::now(),
            )
            .await
            .map_err(|e| e.to_string())?
            else {
                return Ok(serde_json::json!({"skipped": "no CAP message to cancel"}));
            };
            let req = ch
                .http
                .post(target)
                .header("Content-Type", "application/cap+xml")
                .body(m.xml);
            let status = post(req, "cap", target, &key).await?;
            Ok(
                serde_json::json!({"status": status, "identifier": m.identifier,
                "msg_type": m.msg_type}),
            )
        }
        Channel::Alertmanager => {
            let a = Announcement::new(it.kind, &inc, external, Vec::new());
            let body = webhook::pushed(&a, chrono::Utc::now(), alert_ttl(notifier));
            push(&ch.http, target, &key, &body).await
        }
        Channel::Webhook => {
            let a = Announcement::new(it.kind, &inc, external, Vec::new()).in_language(lang);
            let body = webhook::payload(&a, &it.delivery.receiver, external);
            let status = post(ch.http.post(target).json(&body), "webhook", target, &key).await?;
            Ok(serde_json::json!({"status": status}))
        }
    }
}
