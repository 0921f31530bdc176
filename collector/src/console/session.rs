//! Console logins: a session per login, named by a random cookie of which only the SHA-256
//! is kept, in memory (a restart asks everyone to log in again).
//!
//! # Invariants
//! - A session ends `ttl` after its login, on the clock given (a test's controlled one);
//!   an ended or unknown session is no session, and the console sends its user to log in.
//! - Each session has its own form token; a form that does not carry it changes nothing.
//! - At most [`MAX_SESSIONS`] live at once: the oldest give way (a flood of logins cannot
//!   grow memory without bound).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::index::writer::Clock;

/// Most sessions kept.
pub const MAX_SESSIONS: usize = 10_000;

/// Who is logged in, until when, and the token their forms carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub name: String,
    pub csrf: String,
    pub expires: DateTime<Utc>,
}

pub struct Sessions {
    ttl: Duration,
    clock: Clock,
    live: Mutex<HashMap<[u8; 32], Session>>,
}

fn random_hex() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn digest(cookie: &str) -> [u8; 32] {
    Sha256::digest(cookie.as_bytes()).into()
}

impl Sessions {
    pub fn new(ttl: Duration, clock: Clock) -> Sessions {
        Sessions {
            ttl,
            clock,
            live: Mutex::new(HashMap::new()),
        }
    }

    /// A new session for `name`: the cookie's value and the session.
    pub fn open(&self, name: &str) -> (String, Session) {
        let now = (self.clock)();
        let cookie = random_hex();
        let session = Session {
            name: name.to_owned(),
            csrf: random_hex(),
            expires: now + chrono::Duration::from_std(self.ttl).unwrap_or_default(),
        };
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.retain(|_, s| s.expires > now);
        while live.len() >= MAX_SESSIONS {
            let Some(oldest) = live.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k) else {
                break;
            };
            live.remove(&oldest);
        }
        live.insert(digest(&cookie), session.clone());
        (cookie, session)
    }

    /// The session of `cookie`, if it is live.
    pub fn get(&self, cookie: &str) -> Option<Session> {
        let now = (self.clock)();
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        let key = digest(cookie);
        match live.get(&key) {
            Some(s) if s.expires > now => Some(s.clone()),
            Some(_) => {
                live.remove(&key);
                None
            }
            None => None,
        }
    }

    /// Ends the session of `cookie`.
    pub fn close(&self, cookie: &str) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        live.remove(&digest(cookie));
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};

    #[test]
    fn a_session_ends_at_its_time_and_unknown_cookies_are_none() {
        let t = Arc::new(AtomicI64::new(1_790_000_000_000));
        let clock_t = t.clone();
        let clock: Clock = Arc::new(move || {
            DateTime::from_timestamp_millis(clock_t.load(Ordering::SeqCst)).expect("time")
        });
        let s = Sessions::new(Duration::from_secs(3600), clock);
        let (cookie, opened) = s.open("alice");
        assert_eq!(s.get(&cookie), Some(opened.clone()));
        assert_eq!(s.get("not-a-session"), None);
        let (other, _) = s.open("bob");
        assert_ne!(cookie, other);
        t.fetch_add(3_599_999, Ordering::SeqCst);
        assert_eq!(s.get(&cookie).map(|x| x.name), Some("alice".into()));
        t.fetch_add(1, Ordering::SeqCst);
        assert_eq!(s.get(&cookie), None, "ended at login + ttl");
        s.close(&other);
        assert_eq!(s.get(&other), None);
    }
}
