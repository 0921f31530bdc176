//! Circuit breakers: a channel (a gateway, the SMTP relays; for webhooks, CAP and
//! Alertmanager each endpoint) that failed `breaker_failures` attempts in a row is not tried
//! for `breaker_cooldown`: its deliveries wait (postponed, not counted as attempts) instead
//! of spending their retries against it. After the cool-down the breaker is half-open: one
//! delivery, chosen at random among those waiting, is tried; a success closes the breaker,
//! a failure opens it again and spends none of that delivery's attempts (the channel
//! failed, not the delivery), so an outage of any length loses nothing. The choice is random
//! so that one delivery the channel refuses for itself cannot hold the breaker open.
//!
//! # Invariants
//! - A breaker only delays: every postponed delivery is still in the outbox, pending.
//! - While open or half-open, no delivery spends an attempt against it.
//! - Opening is reported once per opening (the failing channel's own incident).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use super::plan::{Channel, Delivery};

#[derive(Debug, Default, Clone, Copy)]
struct State {
    /// Failures in a row.
    failures: u32,
    /// Not tried before this time (ms); 0: closed.
    open_until: i64,
}

/// Whether deliveries may go through a breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Closed,
    /// Not tried before this time (ms).
    Open(i64),
    /// Cooled down: one trial may go.
    HalfOpen,
}

/// What an attempt's end did to its breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    None,
    /// It opened: the channel keeps failing.
    Opened,
    /// It closed after being open: the channel works again.
    Closed,
}

#[derive(Debug)]
pub struct Breakers {
    failures: u32,
    cooldown_ms: i64,
    states: Mutex<HashMap<String, State>>,
}

/// The breaker a delivery goes through: its channel, or for URL channels its endpoint.
pub fn key(d: &Delivery) -> String {
    match d.channel {
        Channel::Webhook | Channel::Cap | Channel::Alertmanager => {
            let endpoint = reqwest::Url::parse(&d.target)
                .ok()
                .and_then(|u| {
                    u.host_str()
                        .map(|h| format!("{h}:{}", u.port_or_known_default().unwrap_or(0)))
                })
                .unwrap_or_else(|| d.target.clone());
            format!("{}:{endpoint}", d.channel.as_str())
        }
        c => c.as_str().to_owned(),
    }
}

impl Breakers {
    pub fn new(failures: u32, cooldown: Duration) -> Breakers {
        Breakers {
            failures: failures.max(1),
            cooldown_ms: cooldown.as_millis() as i64,
            states: Mutex::new(HashMap::new()),
        }
    }

    /// Until when the breaker of `key` is open at `now`, if it is.
    pub fn open_until(&self, key: &str, now: i64) -> Option<i64> {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        states.get(key).map(|s| s.open_until).filter(|&u| u > now)
    }

    /// Whether deliveries may go through the breaker of `key` at `now`.
    pub fn gate(&self, key: &str, now: i64) -> Gate {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        match states.get(key) {
            Some(s) if s.open_until > now => Gate::Open(s.open_until),
            Some(s) if s.failures >= self.failures => Gate::HalfOpen,
            _ => Gate::Closed,
        }
    }

    /// Records how an attempt through `key` ended at `now`.
    pub fn record(&self, key: &str, ok: bool, now: i64) -> Change {
        let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let s = states.entry(key.to_owned()).or_default();
        if ok {
            let was_open = s.failures >= self.failures;
            *s = State::default();
            return if was_open {
                Change::Closed
            } else {
                Change::None
            };
        }
        s.failures += 1;
        if s.failures >= self.failures && s.open_until <= now {
            s.open_until = now + self.cooldown_ms;
            return Change::Opened;
        }
        Change::None
    }

    /// Keys whose breaker is open at `now`.
    pub fn open(&self, now: i64) -> Vec<String> {
        let states = self.states.lock().unwrap_or_else(|e| e.into_inner());
        let mut keys: Vec<String> = states
            .iter()
            .filter(|(_, s)| s.open_until > now)
            .map(|(k, _)| k.clone())
            .collect();
        keys.sort();
        keys
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_breaker_opens_after_failures_in_a_row_and_closes_on_a_success() {
        let b = Breakers::new(3, Duration::from_secs(60));
        assert_eq!(b.record("voice", false, 0), Change::None);
        assert_eq!(b.record("voice", true, 1), Change::None);
        for t in 2..4 {
            assert_eq!(b.record("voice", false, t), Change::None);
        }
        assert_eq!(b.gate("voice", 3), Gate::Closed);
        assert_eq!(b.record("voice", false, 4), Change::Opened);
        assert_eq!(b.open_until("voice", 5), Some(60_004));
        assert_eq!(b.gate("voice", 5), Gate::Open(60_004));
        assert_eq!(b.gate("voice", 60_004), Gate::HalfOpen);
        assert_eq!(b.open_until("sms", 5), None);
        // Failures while open (attempts that were already under way) do not reopen it.
        assert_eq!(b.record("voice", false, 6), Change::None);
        assert_eq!(
            b.open_until("voice", 60_004),
            None,
            "half-open after the cool-down"
        );
        assert_eq!(b.record("voice", false, 60_005), Change::Opened);
        assert_eq!(b.record("voice", true, 200_000), Change::Closed);
        assert_eq!(b.open(200_001), Vec::<String>::new());
    }

    #[test]
    fn url_channels_break_per_endpoint() {
        let d = |channel, target: &str| Delivery {
            receiver: "r".into(),
            channel,
            target: target.into(),
        };
        assert_eq!(key(&d(Channel::Voice, "+32470000001")), "voice");
        assert_eq!(
            key(&d(Channel::Webhook, "http://hooks.example/a?x=1")),
            "webhook:hooks.example:80"
        );
        assert_eq!(
            key(&d(Channel::Webhook, "https://other.example:8443/")),
            "webhook:other.example:8443"
        );
    }
}
