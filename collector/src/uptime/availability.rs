//! Availability from a check's state transitions: the share of a window the check was up or
//! degraded, of the time its state was known (`unknown` counts for neither side: too few
//! vantage points reported, which says nothing about the service).
//!
//! # Invariants
//! - Exact to the millisecond of the transitions: a state holds from its transition to the
//!   next, the state before the window is the last transition before it.
//! - Pure: the transitions are read once, every window is computed from them.

use serde::Serialize;

/// Up (or degraded) and down time within a window, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    pub up_ms: i64,
    pub down_ms: i64,
}

impl Tally {
    /// The available share, none when the state was never known in the window.
    pub fn ratio(&self) -> Option<f64> {
        let known = self.up_ms + self.down_ms;
        (known > 0).then(|| self.up_ms as f64 / known as f64)
    }
}

/// `transitions` (time in ms, new state), oldest first: the tally over `[from, to)`.
pub fn tally(transitions: &[(i64, String)], from: i64, to: i64) -> Tally {
    let mut t = Tally::default();
    if to <= from {
        return t;
    }
    let mut state: Option<&str> = transitions
        .iter()
        .take_while(|(at, _)| *at <= from)
        .last()
        .map(|(_, s)| s.as_str());
    let mut at = from;
    let mut add = |state: Option<&str>, a: i64, b: i64| match state {
        Some("up" | "degraded") => t.up_ms += b - a,
        Some("down") => t.down_ms += b - a,
        _ => {}
    };
    for (when, next) in transitions.iter().filter(|(w, _)| *w > from && *w < to) {
        add(state, at, *when);
        at = *when;
        state = Some(next.as_str());
    }
    add(state, at, to);
    t
}

/// A check's availability over the usual windows, as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Availability {
    #[serde(rename = "24h")]
    pub day: Option<f64>,
    #[serde(rename = "7d")]
    pub week: Option<f64>,
    #[serde(rename = "30d")]
    pub month: Option<f64>,
    #[serde(rename = "90d")]
    pub quarter: Option<f64>,
    /// Down time in the last 24 hours, in seconds.
    pub down_seconds_24h: i64,
}

const DAY_MS: i64 = 86_400_000;

pub fn windows(transitions: &[(i64, String)], now: i64) -> Availability {
    let over = |days: i64| tally(transitions, now - days * DAY_MS, now);
    let day = over(1);
    Availability {
        day: day.ratio(),
        week: over(7).ratio(),
        month: over(30).ratio(),
        quarter: over(90).ratio(),
        down_seconds_24h: day.down_ms / 1000,
    }
}

/// The availability of each of the last `days` whole days (UTC), oldest first, today last
/// (up to `now`).
pub fn daily(transitions: &[(i64, String)], now: i64, days: i64) -> Vec<(String, Option<f64>)> {
    let today = now - now.rem_euclid(DAY_MS);
    (0..days)
        .rev()
        .map(|back| {
            let start = today - back * DAY_MS;
            let end = (start + DAY_MS).min(now);
            let date = chrono::DateTime::from_timestamp_millis(start)
                .map(|d| d.format("%Y-%m-%d").to_string())
                .unwrap_or_default();
            (date, tally(transitions, start, end).ratio())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tr(list: &[(i64, &str)]) -> Vec<(i64, String)> {
        list.iter().map(|(a, s)| (*a, (*s).to_owned())).collect()
    }

    #[test]
    fn time_is_split_at_each_transition_and_unknown_counts_for_neither() {
        let t = tr(&[
            (0, "up"),
            (100, "down"),
            (150, "unknown"),
            (170, "up"),
            (200, "degraded"),
        ]);
        assert_eq!(
            tally(&t, 0, 300),
            Tally {
                up_ms: 100 + 30 + 100,
                down_ms: 50
            }
        );
        // The state before the window carries into it.
        assert_eq!(
            tally(&t, 120, 160),
            Tally {
                up_ms: 0,
                down_ms: 30
            }
        );
        assert_eq!(tally(&t, 160, 165), Tally::default());
        assert_eq!(tally(&t, 160, 165).ratio(), None);
        // Before the first transition nothing is known.
        assert_eq!(
            tally(&t, -50, 50),
            Tally {
                up_ms: 50,
                down_ms: 0
            }
        );
        assert_eq!(tally(&t, 0, 300).ratio(), Some(230.0 / 280.0));
        assert_eq!(tally(&t, 300, 300), Tally::default());
    }

    #[test]
    fn days_are_whole_utc_days_and_today_ends_now() {
        let t = tr(&[(0, "up"), (DAY_MS + DAY_MS / 4, "down")]);
        let now = 2 * DAY_MS + DAY_MS / 2;
        let d = daily(&t, now, 3);
        assert_eq!(d[0], ("1970-01-01".to_owned(), Some(1.0)));
        assert_eq!(d[1], ("1970-01-02".to_owned(), Some(0.25)));
        assert_eq!(d[2], ("1970-01-03".to_owned(), Some(0.0)));
    }
}
