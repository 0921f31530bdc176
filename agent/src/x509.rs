//! The one thing the agent reads from an X.509 certificate: when it expires (`notAfter`), for
//! the TLS checks. A bounded DER walk: every length is checked against what is left before it
//! is used, and anything unexpected is an error naming what was wrong, never a panic.

use chrono::{DateTime, NaiveDate, Utc};

/// One DER element: its tag, its content, and what follows it.
fn element(buf: &[u8]) -> Result<(u8, &[u8], &[u8]), String> {
    let (&tag, rest) = buf.split_first().ok_or("the certificate ends early")?;
    let (&first, rest) = rest.split_first().ok_or("the certificate ends early")?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return Err("a length in the certificate is not DER".into());
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |a, &b| (a << 8) | usize::from(b));
        (len, &rest[n..])
    };
    if rest.len() < len {
        return Err("the certificate ends early".into());
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

/// The content of the element of `tag` at the start of `buf`, and what follows.
fn expect<'a>(buf: &'a [u8], tag: u8, what: &str) -> Result<(&'a [u8], &'a [u8]), String> {
    let (t, content, rest) = element(buf)?;
    if t != tag {
        return Err(format!(
            "the certificate's {what} is not where it should be"
        ));
    }
    Ok((content, rest))
}

/// When the certificate `der` expires.
pub fn not_after(der: &[u8]) -> Result<DateTime<Utc>, String> {
    let (cert, _) = expect(der, 0x30, "outer sequence")?;
    let (tbs, _) = expect(cert, 0x30, "to-be-signed part")?;
    let mut rest = tbs;
    // [0] version, present in v2 and v3 certificates.
    if rest.first() == Some(&0xa0) {
        rest = element(rest)?.2;
    }
    let (_, rest) = expect(rest, 0x02, "serial number")?;
    let (_, rest) = expect(rest, 0x30, "signature algorithm")?;
    let (_, rest) = expect(rest, 0x30, "issuer")?;
    let (validity, _) = expect(rest, 0x30, "validity")?;
    let (_, _, after) = element(validity)?;
    let (tag, time, _) = element(after)?;
    let text = std::str::from_utf8(time).map_err(|_| "the expiry time is not text")?;
    parse_time(tag, text).ok_or_else(|| format!("the expiry time {text:?} is not a DER time"))
}

/// UTCTime (`YYMMDDHHMMSSZ`, 1950 to 2049) or GeneralizedTime (`YYYYMMDDHHMMSSZ`).
fn parse_time(tag: u8, s: &str) -> Option<DateTime<Utc>> {
    let digits = s.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy: i32 = digits[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (0x18, 14) => (digits[..4].parse().ok()?, &digits[4..]),
        _ => return None,
    };
    let n = |i: usize| rest[i..i + 2].parse::<u32>().ok();
    NaiveDate::from_ymd_opt(year, n(0)?, n(2)?)?
        .and_hms_opt(n(4)?, n(6)?, n(8)?)
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_times_read_both_forms_and_refuse_the_rest() {
        assert_eq!(
            parse_time(0x17, "261205103000Z"),
            Some(
                Utc.with_ymd_and_hms(2026, 12, 5, 10, 30, 0)
                    .single()
                    .expect("time")
            )
        );
        assert_eq!(
            parse_time(0x17, "991231235959Z").map(|t| t.format("%Y").to_string()),
            Some("1999".into())
        );
        assert_eq!(
            parse_time(0x18, "20501231235959Z").map(|t| t.format("%Y").to_string()),
            Some("2050".into())
        );
        assert_eq!(parse_time(0x17, "2612051030Z"), None);
        assert_eq!(parse_time(0x17, "261305103000Z"), None);
        assert_eq!(parse_time(0x18, "261205103000Z"), None);
    }

    #[test]
    fn truncated_or_garbled_certificates_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"\x30",
            b"\x30\x84\xff\xff\xff\xff",
            b"\x30\x03\x30\x01",
            b"\x02\x01\x00",
        ] {
            assert!(not_after(bad).is_err(), "{bad:?}");
        }
        // Every prefix of a well-formed skeleton fails cleanly.
        let time = b"\x17\x0d261205103000Z";
        let validity = [&[0x30, 2 * time.len() as u8][..], time, time].concat();
        let tbs_body = [
            &b"\xa0\x03\x02\x01\x02"[..],
            b"\x02\x01\x01",
            b"\x30\x00",
            b"\x30\x00",
            &validity,
        ]
        .concat();
        let tbs = [&[0x30, tbs_body.len() as u8][..], &tbs_body].concat();
        let cert = [&[0x30, tbs.len() as u8][..], &tbs].concat();
        assert_eq!(
            not_after(&cert),
            Ok(Utc
                .with_ymd_and_hms(2026, 12, 5, 10, 30, 0)
                .single()
                .expect("time"))
        );
        for n in 0..cert.len() {
            assert!(not_after(&cert[..n]).is_err());
        }
    }

    use chrono::TimeZone;
}
