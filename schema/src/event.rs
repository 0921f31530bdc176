//! The event model: one flat JSON object with ECS-style dotted keys (`"source.ip"`, not
//! nested objects), so an event reads the same in the index, the API and a Sigma rule.

use std::net::IpAddr;

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::fields::{self, Key};

/// What produced an event (`event.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Flow,
    Syslog,
    Probe,
    Heartbeat,
    Alert,
    /// A public alert read from a watched CAP feed.
    Cap,
    /// A change of a monitored thing's state (an uptime check's, by quorum).
    State,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Flow => "flow",
            EventKind::Syslog => "syslog",
            EventKind::Probe => "probe",
            EventKind::Heartbeat => "heartbeat",
            EventKind::Alert => "alert",
            EventKind::Cap => "cap",
            EventKind::State => "state",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "flow" => EventKind::Flow,
            "syslog" => EventKind::Syslog,
            "probe" => EventKind::Probe,
            "heartbeat" => EventKind::Heartbeat,
            "alert" => EventKind::Alert,
            "cap" => EventKind::Cap,
            "state" => EventKind::State,
            _ => return None,
        })
    }
}

/// One event: its fields in the order they were set. Serializes as a flat JSON object.
///
/// Not a JSON map: an agent builds hundreds of thousands of these a second, and a vector of
/// (name, value) pairs whose names are mostly static costs no allocation per name and no
/// tree. Events have a few dozen fields at most, so a lookup is a short scan, over a
/// fingerprint of each name first ([`fingerprint`]) so that only a likely match is compared;
/// and a one-word filter of the fingerprints present answers most lookups of an absent name
/// (and so most `set`s of a new one) without a scan.
///
/// Invariants: a name occurs at most once (`set` replaces). Every field's filter bit is set
/// in `present` (a removed field may leave its bit behind). Equality ignores field order.
#[derive(Debug, Clone, Default)]
pub struct Event {
    fields: Vec<Field>,
    present: u64,
}

#[derive(Debug, Clone)]
struct Field {
    fingerprint: u32,
    name: Key,
    value: Value,
}

/// Length, first, middle and last byte of a name: different for nearly every two field names
/// an event holds, and computed without reading the whole name.
fn fingerprint(name: &str) -> u32 {
    let b = name.as_bytes();
    match b.len() {
        0 => 0,
        n => {
            (n as u32 & 0xff)
                | u32::from(b[0]) << 8
                | u32::from(b[n / 2]) << 16
                | u32::from(b[n - 1]) << 24
        }
    }
}

/// The bit of `present` that stands for a fingerprint.
fn filter_bit(fingerprint: u32) -> u64 {
    1 << (fingerprint.wrapping_mul(0x9E37_79B1) >> 26)
}

impl Event {
    /// A new event of `kind` stamped with `at`.
    pub fn new(kind: EventKind, at: DateTime<Utc>) -> Self {
        // Room for what a syslog line or a flow has, so building one does not reallocate.
        let mut e = Event {
            fields: Vec::with_capacity(24),
            present: 0,
        };
        e.set_timestamp(at);
        e.set_str(fields::EVENT_KIND, kind.as_str());
        e
    }

    fn position(&self, field: &str) -> Option<usize> {
        self.position_of(fingerprint(field), field)
    }

    fn position_of(&self, fp: u32, field: &str) -> Option<usize> {
        if self.present & filter_bit(fp) == 0 {
            return None;
        }
        self.fields
            .iter()
            .position(|f| f.fingerprint == fp && f.name == field)
    }

    pub fn get(&self, field: &str) -> Option<&Value> {
        self.position(field).map(|i| &self.fields[i].value)
    }

    pub fn get_str(&self, field: &str) -> Option<&str> {
        self.get(field).and_then(Value::as_str)
    }

    pub fn get_u64(&self, field: &str) -> Option<u64> {
        self.get(field).and_then(Value::as_u64)
    }

    /// Sets `field`, replacing its value if it is there.
    pub fn set(&mut self, field: impl Into<Key>, value: Value) {
        let name = field.into();
        let fp = fingerprint(&name);
        match self.position_of(fp, &name) {
            Some(i) => self.fields[i].value = value,
            None => {
                self.present |= filter_bit(fp);
                self.fields.push(Field {
                    fingerprint: fp,
                    name,
                    value,
                });
            }
        }
    }

    pub fn set_str(&mut self, field: impl Into<Key>, value: impl Into<String>) {
        self.set(field, Value::String(value.into()));
    }

    pub fn set_u64(&mut self, field: impl Into<Key>, value: u64) {
        self.set(field, Value::from(value));
    }

    pub fn remove(&mut self, field: &str) -> Option<Value> {
        self.position(field).map(|i| self.fields.remove(i).value)
    }

    /// The fields in the order they were set.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.fields.iter().map(|f| (f.name.as_ref(), &f.value))
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The event as a JSON object (for consumers that want one; allocates every name).
    pub fn to_json_map(&self) -> Map<String, Value> {
        self.iter()
            .map(|(k, v)| (k.to_owned(), v.clone()))
            .collect()
    }

    pub fn kind(&self) -> Option<EventKind> {
        self.get_str(fields::EVENT_KIND).and_then(EventKind::parse)
    }

    /// `@timestamp`, if present and valid RFC 3339.
    pub fn timestamp(&self) -> Option<DateTime<Utc>> {
        let s = self.get_str(fields::TIMESTAMP)?;
        DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// Sets `@timestamp` (see [`Event::set_time`]).
    pub fn set_timestamp(&mut self, at: DateTime<Utc>) {
        self.set_time(fields::TIMESTAMP, at);
    }

    /// Sets a time field in RFC 3339, UTC, with the precision the value has (up to ns).
    pub fn set_time(&mut self, field: impl Into<Key>, at: DateTime<Utc>) {
        self.set_str(field, rfc3339(at));
    }

    /// Sets an address field in its usual text form.
    pub fn set_ip(&mut self, field: impl Into<Key>, ip: IpAddr) {
        self.set_str(field, ip_text(ip));
    }

    pub fn message(&self) -> Option<&str> {
        self.get_str(fields::MESSAGE)
    }
}

/// Where a source writes an event's fields: an [`Event`], or straight into an encoded batch
/// ([`crate::binary::EventWriter`]), so that one piece of code makes both. A name written
/// twice ends with its last value in both.
pub trait Fields {
    fn str(&mut self, name: &str, v: &str);
    fn u64(&mut self, name: &str, v: u64);
    /// An array of strings.
    fn strs(&mut self, name: &str, v: &[&str]);
    fn value(&mut self, name: &str, v: &Value);

    /// A time, as [`Event::set_time`] writes it.
    fn time(&mut self, name: &str, at: DateTime<Utc>) {
        with_rfc3339(at, |t| self.str(name, t));
    }

    /// An address, as [`Event::set_ip`] writes it.
    fn ip(&mut self, name: &str, ip: IpAddr) {
        with_ip_text(ip, |t| self.str(name, t));
    }
}

impl Fields for Event {
    fn str(&mut self, name: &str, v: &str) {
        self.set_str(fields::intern(name), v);
    }

    fn u64(&mut self, name: &str, v: u64) {
        self.set_u64(fields::intern(name), v);
    }

    fn strs(&mut self, name: &str, v: &[&str]) {
        let v = v.iter().map(|&s| Value::from(s)).collect();
        self.set(fields::intern(name), v);
    }

    fn value(&mut self, name: &str, v: &Value) {
        self.set(fields::intern(name), v.clone());
    }
}

/// `at` as chrono's `to_rfc3339_opts(SecondsFormat::AutoSi, true)` writes it, without its
/// formatting machinery (a third of the cost of a flow's times): years 0 to 9999 and no leap
/// second, else chrono's own.
pub fn rfc3339(at: DateTime<Utc>) -> String {
    with_rfc3339(at, str::to_owned)
}

/// Calls `f` with [`rfc3339`]'s text of `at`, written on the stack.
pub fn with_rfc3339<R>(at: DateTime<Utc>, f: impl FnOnce(&str) -> R) -> R {
    let (year, nanos) = (at.year(), at.timestamp_subsec_nanos());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return f(&at.to_rfc3339_opts(SecondsFormat::AutoSi, true));
    }
    let mut b = Digits::new();
    b.extend(&date_and_time(at));
    match nanos {
        0 => b.push(b'Z'),
        ns => {
            b.push(b'.');
            match (ns % 1_000_000, ns % 1000) {
                (0, _) => b.put(ns / 1_000_000, 3),
                (_, 0) => b.put(ns / 1000, 6),
                _ => b.put(ns, 9),
            }
            b.push(b'Z');
        }
    }
    f(b.as_str())
}

/// `YYYY-MM-DDTHH:MM:SS` of `at` (a year of four digits), from a small cache per thread:
/// the times of a datagram's flows, or of a burst of messages, share their seconds, and
/// working out a date is most of the cost of writing one.
fn date_and_time(at: DateTime<Utc>) -> [u8; 19] {
    thread_local! {
        static RECENT: std::cell::RefCell<[(i64, [u8; 19]); 8]> =
            const { std::cell::RefCell::new([(i64::MIN, [0; 19]); 8]) };
    }
    let secs = at.timestamp();
    RECENT.with(|recent| {
        let mut recent = recent.borrow_mut();
        let slot = &mut recent[secs.rem_euclid(8) as usize];
        if slot.0 != secs {
            let mut b = Digits::new();
            for (v, digits, sep) in [
                (at.year() as u32, 4, b'-'),
                (at.month(), 2, b'-'),
                (at.day(), 2, b'T'),
                (at.hour(), 2, b':'),
                (at.minute(), 2, b':'),
                (at.second(), 2, b' '),
            ] {
                b.put(v, digits);
                b.push(sep);
            }
            slot.1.copy_from_slice(&b.b[..19]);
            slot.0 = secs;
        }
        slot.1
    })
}

/// A short text of digits and separators, built on the stack.
struct Digits {
    b: [u8; 32],
    n: usize,
}

impl Digits {
    fn new() -> Self {
        Digits { b: [0; 32], n: 0 }
    }

    /// Appends `v` as exactly `digits` decimal digits (the low ones, zero-padded).
    fn put(&mut self, mut v: u32, digits: usize) {
        for d in self.b[self.n..self.n + digits].iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
        self.n += digits;
    }

    fn push(&mut self, c: u8) {
        self.b[self.n] = c;
        self.n += 1;
    }

    fn extend(&mut self, bytes: &[u8]) {
        self.b[self.n..self.n + bytes.len()].copy_from_slice(bytes);
        self.n += bytes.len();
    }

    fn as_str(&self) -> &str {
        // Only ASCII was written.
        std::str::from_utf8(&self.b[..self.n]).unwrap_or_default()
    }
}

/// `ip` as its `Display` writes it; IPv4 (nearly every address) without the formatter.
pub fn ip_text(ip: IpAddr) -> String {
    with_ip_text(ip, str::to_owned)
}

/// Calls `f` with [`ip_text`]'s text of `ip`, written on the stack when it is IPv4.
pub fn with_ip_text<R>(ip: IpAddr, f: impl FnOnce(&str) -> R) -> R {
    let IpAddr::V4(v4) = ip else {
        return f(&ip.to_string());
    };
    let mut b = Digits::new();
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            b.push(b'.');
        }
        let digits = 1 + usize::from(octet >= 10) + usize::from(octet >= 100);
        b.put(octet.into(), digits);
    }
    f(b.as_str())
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

/// From (name, value) pairs; a later pair of the same name replaces an earlier one.
impl<K: AsRef<str>> FromIterator<(K, Value)> for Event {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Self {
        let mut e = Event::default();
        for (k, v) in iter {
            e.set(fields::intern(k.as_ref()), v);
        }
        e
    }
}

impl From<Map<String, Value>> for Event {
    fn from(map: Map<String, Value>) -> Self {
        map.into_iter().collect()
    }
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Event;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an event (a JSON object)")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Event, A::Error> {
                let mut e = Event::default();
                while let Some(InternedKey(k)) = map.next_key()? {
                    let v = map.next_value()?;
                    e.set(k, v);
                }
                Ok(e)
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

/// A field name read straight into its [`Key`] (no intermediate `String` for known names).
struct InternedKey(Key);

impl<'de> Deserialize<'de> for InternedKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = InternedKey;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<InternedKey, E> {
                Ok(InternedKey(fields::intern(v)))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn timestamp_round_trips_in_utc() {
        let at = DateTime::parse_from_rfc3339("2026-11-22T10:00:00.123+02:00")
            .map(|t| t.with_timezone(&Utc))
            .expect("valid");
        let e = Event::new(EventKind::Syslog, at);
        assert_eq!(e.get_str("@timestamp"), Some("2026-11-22T08:00:00.123Z"));
        assert_eq!(e.timestamp(), Some(at));
        assert_eq!(e.kind(), Some(EventKind::Syslog));
    }

    #[test]
    fn fields_keep_their_order_and_names_stay_unique() {
        let mut e = Event::default();
        e.set_str("message", "a");
        e.set_u64(fields::SOURCE_PORT, 22);
        e.set_str(String::from("x.custom"), "c");
        e.set_str("message", "b");
        assert_eq!(e.len(), 3);
        assert_eq!(
            serde_json::to_string(&e).expect("json"),
            r#"{"message":"b","source.port":22,"x.custom":"c"}"#
        );
        assert_eq!(e.remove("source.port"), Some(Value::from(22)));
        assert_eq!(e.get("source.port"), None);
        // Equality ignores order; a repeated name in JSON keeps the last value.
        let back: Event =
            serde_json::from_str(r#"{"x.custom":"c","message":"a","message":"b"}"#).expect("event");
        assert_eq!(back, e);
        let mut other = e.clone();
        other.set_str("message", "z");
        assert_ne!(other, e);
        assert!(serde_json::from_str::<Event>("[1]").is_err());
    }

    proptest! {
        #[test]
        fn times_and_addresses_read_as_chrono_and_std_write_them(
            secs in -70_000_000_000i64..300_000_000_000,
            nanos in prop_oneof![
                0u32..2_000_000_000,
                (0u32..1000).prop_map(|m| m * 1_000_000),
                (0u32..1_000_000).prop_map(|u| u * 1000),
            ],
            v4 in any::<[u8; 4]>(),
            v6 in any::<[u16; 8]>(),
        ) {
            if let Some(at) = DateTime::from_timestamp(secs, nanos) {
                // Then through the cache of recent seconds: another time in the same slot,
                // and this second again with other nanoseconds.
                let later = at.checked_add_signed(chrono::TimeDelta::seconds(8)).unwrap_or(at);
                let again = at.with_nanosecond(nanos / 3).unwrap_or(at);
                for t in [at, later, again, at] {
                    prop_assert_eq!(rfc3339(t), t.to_rfc3339_opts(SecondsFormat::AutoSi, true));
                }
            }
            let v4 = IpAddr::from(v4);
            prop_assert_eq!(ip_text(v4), v4.to_string());
            let v6 = IpAddr::from(v6);
            prop_assert_eq!(ip_text(v6), v6.to_string());
        }
    }
}
