//! The event model: one flat JSON object with ECS-style dotted keys (`"source.ip"`, not
//! nested objects), so an event reads the same in the index, the API and a Sigma rule.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::fields;

/// What produced an event (`event.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Flow,
    Syslog,
    Probe,
    Heartbeat,
    Alert,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Flow => "flow",
            EventKind::Syslog => "syslog",
            EventKind::Probe => "probe",
            EventKind::Heartbeat => "heartbeat",
            EventKind::Alert => "alert",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "flow" => EventKind::Flow,
            "syslog" => EventKind::Syslog,
            "probe" => EventKind::Probe,
            "heartbeat" => EventKind::Heartbeat,
            "alert" => EventKind::Alert,
            _ => return None,
        })
    }
}

/// One event. Serializes as the flat JSON object itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Event(pub Map<String, Value>);

impl Event {
    /// A new event of `kind` stamped with `at`.
    pub fn new(kind: EventKind, at: DateTime<Utc>) -> Self {
        let mut e = Event(Map::new());
        e.set_timestamp(at);
        e.set_str(fields::EVENT_KIND, kind.as_str());
        e
    }

    pub fn get(&self, field: &str) -> Option<&Value> {
        self.0.get(field)
    }

    pub fn get_str(&self, field: &str) -> Option<&str> {
        self.0.get(field).and_then(Value::as_str)
    }

    pub fn get_u64(&self, field: &str) -> Option<u64> {
        self.0.get(field).and_then(Value::as_u64)
    }

    pub fn set_str(&mut self, field: &str, value: impl Into<String>) {
        self.0.insert(field.to_owned(), Value::String(value.into()));
    }

    pub fn set_u64(&mut self, field: &str, value: u64) {
        self.0.insert(field.to_owned(), Value::from(value));
    }

    pub fn set(&mut self, field: &str, value: Value) {
        self.0.insert(field.to_owned(), value);
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

    /// Sets `@timestamp` in RFC 3339, UTC, with the precision the value has (up to ns).
    pub fn set_timestamp(&mut self, at: DateTime<Utc>) {
        self.set_str(
            fields::TIMESTAMP,
            at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        );
    }

    pub fn message(&self) -> Option<&str> {
        self.get_str(fields::MESSAGE)
    }

    /// Size of the event as JSON, computed without allocating the text.
    pub fn json_len(&self) -> usize {
        struct Counter(usize);
        impl std::io::Write for Counter {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                self.0 += buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut c = Counter(0);
        // Writing a Map to a counter cannot fail.
        let _ = serde_json::to_writer(&mut c, &self.0);
        c.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn json_len_matches_serialized_length() {
        let mut e = Event::new(EventKind::Flow, Utc::now());
        e.set_str("message", "héllo \"quoted\"\n");
        e.set_u64("source.port", 443);
        let text = serde_json::to_string(&e).expect("serializes");
        assert_eq!(e.json_len(), text.len());
    }
}
