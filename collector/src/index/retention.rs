//! Retention: which whole partitions to drop, by age and by disk size.
//!
//! # Invariants
//! - Only whole partitions are dropped, oldest first; the partition being written (today's)
//!   never is, even when it alone is over the size limit (that is logged instead).
//! - A partition is too old when its day is more than `max_age_days` before today: with
//!   `max_age_days = 30`, on day D the partitions of D-30 and later stay.

use super::partition::Day;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Policy {
    /// Drop partitions older than this many days; `None` keeps them forever.
    pub max_age_days: Option<u32>,
    /// Drop the oldest partitions while all of them together are larger; `None`: no limit.
    pub max_bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Age,
    Size,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Age => "age",
            Reason::Size => "size",
        }
    }
}

/// The partitions to drop, given every partition's day and size, oldest first in `parts`.
pub fn plan(parts: &[(Day, u64)], today: Day, policy: Policy) -> Vec<(Day, Reason)> {
    let mut drop = Vec::new();
    let mut kept: Vec<(Day, u64)> = Vec::with_capacity(parts.len());
    for &(day, bytes) in parts {
        let too_old = policy
            .max_age_days
            .is_some_and(|n| day < today - chrono::Days::new(u64::from(n)));
        if too_old && day != today {
            drop.push((day, Reason::Age));
        } else {
            kept.push((day, bytes));
        }
    }
    if let Some(max) = policy.max_bytes {
        let mut total: u64 = kept.iter().map(|&(_, b)| b).sum();
        for &(day, bytes) in &kept {
            if total <= max || day >= today {
                break;
            }
            drop.push((day, Reason::Size));
            total -= bytes;
        }
    }
    drop
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Day {
        Day::parse_from_str(s, "%Y-%m-%d").expect("day")
    }

    #[test]
    fn drops_by_age_then_oldest_first_by_size_never_today() {
        let parts = [
            (d("2026-10-01"), 100),
            (d("2026-10-23"), 100),
            (d("2026-10-24"), 100),
            (d("2026-11-22"), 100),
            (d("2026-11-23"), 100),
        ];
        let today = d("2026-11-23");
        let age = Policy {
            max_age_days: Some(30),
            max_bytes: None,
        };
        assert_eq!(
            plan(&parts, today, age),
            [
                (d("2026-10-01"), Reason::Age),
                (d("2026-10-23"), Reason::Age)
            ]
        );
        let both = Policy {
            max_age_days: Some(30),
            max_bytes: Some(150),
        };
        assert_eq!(
            plan(&parts, today, both),
            [
                (d("2026-10-01"), Reason::Age),
                (d("2026-10-23"), Reason::Age),
                (d("2026-10-24"), Reason::Size),
                (d("2026-11-22"), Reason::Size),
            ]
        );
        // Today alone over the limit: kept.
        let tiny = Policy {
            max_age_days: None,
            max_bytes: Some(10),
        };
        assert_eq!(plan(&parts[4..], today, tiny), []);
        assert_eq!(plan(&parts, today, Policy::default()), []);
    }
}
