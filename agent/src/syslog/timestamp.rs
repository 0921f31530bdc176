//! The time at the start of a log line that is not syslog: application logs sent over
//! syslog or read from files (log4j, Python, Apache, Hadoop, Spark, Android logcat, ...).
//!
//! Invariants: a line yields a time only when one whole known format matches at its start
//! (or right after its first token, as in `file.log 2017-05-16 00:00:00.008 ...`), or when
//! one of its first five tokens is a 10-digit Unix time; never from digits elsewhere. Formats
//! without a year get the year that puts the time nearest to now, never more than a day
//! ahead. Times without an offset are read in the source's time zone.

use chrono::{DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;

/// Formats with a year, most specific first (chrono's `%.f` also accepts no fraction).
const WITH_YEAR: &[&str] = &[
    "%Y-%m-%d %H:%M:%S,%3f", // log4j, Zookeeper, Hadoop
    "%Y-%m-%d %H:%M:%S%.f",  // Python logging, OpenStack, Windows CBS
    "%Y-%m-%dT%H:%M:%S%.f",  // ISO 8601 without an offset
    "%Y%m%d-%H:%M:%S",       // HealthApp (milliseconds after `:`, unpadded: see below)
    "%Y/%m/%d %H:%M:%S%.f",
    "%y/%m/%d %H:%M:%S",         // Spark
    "%y%m%d %H%M%S",             // HDFS
    "[%a %b %d %H:%M:%S%.f %Y]", // Apache error log
    "%d/%b/%Y:%H:%M:%S",
];

/// Formats without a year (the year is inferred).
const WITHOUT_YEAR: &[&str] = &[
    "%m-%d %H:%M:%S%.f", // Android logcat
    "[%m.%d %H:%M:%S]",  // Proxifier
    "%b %d %H:%M:%S%.f", // syslog-like, without PRI
];

/// The time at the start of `line`, if a known format is there.
pub fn leading(line: &str, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    let line = line.trim_start();
    let after_first_token = line.split_once(' ').map(|(_, rest)| rest.trim_start());
    std::iter::once(line)
        .chain(after_first_token)
        .find_map(|s| at_start(s, now, tz))
        .or_else(|| unix_time(line))
}

fn at_start(s: &str, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
    // A zone given in the line wins over the source's.
    if let Some(t) = s
        .split_ascii_whitespace()
        .next()
        .and_then(|tok| DateTime::parse_from_rfc3339(tok.trim_end_matches([',', ']'])).ok())
    {
        return Some(t.with_timezone(&Utc));
    }
    // `%Y` also reads `17` as the year 17: such a match is not this format.
    if let Some(t) = WITH_YEAR.iter().find_map(|f| {
        let (naive, rest) = NaiveDateTime::parse_and_remainder(s, f).ok()?;
        local(naive + colon_millis(rest), tz)
    }) {
        return Some(t);
    }
    let year = now.with_timezone(&tz).year();
    let with_year = format!("{year} {s}");
    WITHOUT_YEAR.iter().find_map(|f| {
        let (naive, _) = NaiveDateTime::parse_and_remainder(&with_year, &format!("%Y {f}")).ok()?;
        let t = local(naive, tz)?;
        if t > now + chrono::Days::new(1) {
            let last_year = NaiveDate::from_ymd_opt(year - 1, naive.month(), naive.day())?;
            local(last_year.and_time(naive.time()), tz)
        } else {
            Some(t)
        }
    })
}

/// Milliseconds written after the seconds as `:` and 1 to 3 unpadded digits (Java's `SSS`
/// without padding, as HealthApp writes them: `22:15:35:11` is 11 ms).
fn colon_millis(rest: &str) -> chrono::Duration {
    let Some(digits) = rest.strip_prefix(':') else {
        return chrono::Duration::zero();
    };
    let n = digits.bytes().take_while(u8::is_ascii_digit).count();
    match digits[..n].parse::<i64>() {
        Ok(ms) if (1..=3).contains(&n) => chrono::Duration::milliseconds(ms),
        _ => chrono::Duration::zero(),
    }
}

/// A local time in `tz`; in the hour a DST change skips, the offset of the hour before.
fn local(naive: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    if naive.year() < 1970 {
        return None;
    }
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
        LocalResult::None => {
            let offset = tz.offset_from_utc_datetime(&naive).fix();
            Some((naive - offset).and_utc())
        }
    }
}

/// A 10-digit Unix time among the first five tokens (BGL, Thunderbird, HPC logs).
fn unix_time(line: &str) -> Option<DateTime<Utc>> {
    line.split_ascii_whitespace()
        .take(5)
        .filter(|t| t.len() == 10 && t.bytes().all(|b| b.is_ascii_digit()))
        .find_map(|t| DateTime::from_timestamp(t.parse().ok()?, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(line: &str, tz: Tz) -> Option<String> {
        let now = DateTime::parse_from_rfc3339("2026-11-22T12:00:00Z")
            .expect("now")
            .with_timezone(&Utc);
        leading(line, now, tz).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    }

    #[test]
    fn common_formats() {
        let utc = Tz::UTC;
        let cases = [
            (
                "2015-10-18 18:01:47,978 INFO [main] x",
                "2015-10-18T18:01:47.978Z",
            ),
            (
                "2016-09-28 04:30:30, Info CBS x",
                "2016-09-28T04:30:30.000Z",
            ),
            (
                "app.log.1 2017-05-16 00:00:00.008 25746 INFO x",
                "2017-05-16T00:00:00.008Z",
            ),
            (
                "20171223-22:15:29:606|Step_LSC|1|x",
                "2017-12-23T22:15:29.606Z",
            ),
            (
                "20171223-22:15:35:11|Step_LSC|1|x",
                "2017-12-23T22:15:35.011Z",
            ),
            (
                "17/06/09 20:10:40 INFO executor",
                "2017-06-09T20:10:40.000Z",
            ),
            ("081109 203615 148 INFO dfs", "2008-11-09T20:36:15.000Z"),
            (
                "[Sun Dec 04 04:47:44 2005] [notice] x",
                "2005-12-04T04:47:44.000Z",
            ),
            ("- 1117838570 2005.06.03 R02 x", "2005-06-03T22:42:50.000Z"),
            (
                "134681 node-246 unix.hw state 1077804742 1 x",
                "2004-02-26T14:12:22.000Z",
            ),
            (
                "2026-11-22T10:00:00+02:00 host x",
                "2026-11-22T08:00:00.000Z",
            ),
            (
                "03-17 16:13:38.811  1702 D WindowManager: x",
                "2026-03-17T16:13:38.811Z",
            ),
            (
                "[10.30 16:49:06] chrome.exe - x",
                "2026-10-30T16:49:06.000Z",
            ),
            // Later in the year than now: last year's.
            ("12-24 08:00:00.000 1 D x", "2025-12-24T08:00:00.000Z"),
        ];
        for (line, want) in cases {
            assert_eq!(t(line, utc).as_deref(), Some(want), "{line}");
        }
    }

    #[test]
    fn the_source_time_zone_applies_to_local_times_only() {
        let brussels: Tz = "Europe/Brussels".parse().expect("tz");
        assert_eq!(
            t("2026-07-01 12:00:00,000 INFO x", brussels).as_deref(),
            Some("2026-07-01T10:00:00.000Z")
        );
        assert_eq!(
            t("2026-01-01 12:00:00,000 INFO x", brussels).as_deref(),
            Some("2026-01-01T11:00:00.000Z")
        );
        assert_eq!(
            t("2026-07-01T12:00:00Z x", brussels).as_deref(),
            Some("2026-07-01T12:00:00.000Z")
        );
    }

    #[test]
    fn no_time_no_guess() {
        for line in [
            "",
            "hello world",
            "user 12345 logged in at the 2015-10-18 meeting",
            "99-99 99:99:99 x",
            "12345678901 is not a time",
        ] {
            assert_eq!(t(line, Tz::UTC), None, "{line}");
        }
    }
}
