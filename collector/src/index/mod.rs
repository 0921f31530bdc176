//! The event index (Tantivy).
//!
//! # Layout
//! - this file: the index schema ([`IndexSchema`], typed from the one table [`FIELDS`]) and
//!   how an event becomes a document.
//! - [`partition`]: one Tantivy index per day of arrival, with the time bounds of each.
//! - [`writer`]: the single writer thread: deduplication, write-ahead log, indexing, commits.
//! - [`retention`]: which partitions to drop, by age and size.
//! - [`search`]: queries over the committed partitions, newest first.
//! - [`aggregate`]: top values, histograms and statistics over the same queries.
//!
//! # Invariants
//! - Every document stores the whole event as it came (`_source`), enriched only with
//!   `agent.id` from the authenticated batch and its `event.id`; searches return exactly that.
//! - A field value that does not fit its type (a port that is not a number) is not indexed
//!   under that field but stays in `_source`: nothing is lost, nothing fails.
//! - Every document carries its batch id (`_batch`, indexed, not stored): an index commit
//!   is therefore also the durable record of which batches are in.
//! - The commit payload names the last write-ahead-log segment the commit covers.

pub mod aggregate;
pub mod partition;
pub mod retention;
pub mod search;
pub mod writer;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;

use serde_json::Value;
use tantivy::schema::{
    DateOptions, DateTimePrecision, FAST, Field, INDEXED, IndexRecordOption, IpAddrOptions,
    JsonObjectOptions, NumericOptions, OwnedValue, STORED, STRING, Schema, TEXT, TextFieldIndexing,
};
use tantivy::{Index, TantivyDocument, Term};
use uuid::Uuid;
use vigil_schema::{Event, fields as f};

/// How a field is indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    /// One exact token: `host.name:web-1` matches only that host.
    Keyword,
    /// Tokenized full text.
    Text,
    /// Unsigned integer, fast (ranges, sums, sorting).
    U64,
    /// IPv4 or IPv6 (stored as IPv6, v4-mapped), fast.
    Ip,
    /// RFC 3339 date, fast, microsecond precision.
    Date,
}

/// Every field of DESIGN.md with its type; `@timestamp` is handled apart (always present).
pub const FIELDS: &[(&str, FieldType)] = {
    use FieldType::*;
    &[
        (f::MESSAGE, Text),
        (f::EVENT_KIND, Keyword),
        (f::EVENT_DATASET, Keyword),
        (f::EVENT_OUTCOME, Keyword),
        (f::EVENT_START, Date),
        (f::EVENT_END, Date),
        (f::EVENT_DURATION, U64),
        (f::EVENT_ID, Keyword),
        (f::EVENT_CATEGORY, Keyword),
        (f::EVENT_ACTION, Keyword),
        (f::AGENT_ID, Keyword),
        (f::AGENT_NAME, Keyword),
        (f::HOST_NAME, Keyword),
        (f::CUSTOMER, Keyword),
        (f::TAGS, Keyword),
        (f::OBSERVER_IP, Ip),
        (f::OBSERVER_NAME, Keyword),
        (f::LOG_FILE_PATH, Keyword),
        (f::SOURCE_IP, Ip),
        (f::SOURCE_PORT, U64),
        (f::SOURCE_DOMAIN, Keyword),
        (f::USER_NAME, Keyword),
        (f::DESTINATION_IP, Ip),
        (f::DESTINATION_PORT, U64),
        (f::NETWORK_TRANSPORT, Keyword),
        (f::NETWORK_IANA_NUMBER, Keyword),
        (f::NETWORK_BYTES, U64),
        (f::NETWORK_PACKETS, U64),
        (f::SOURCE_BYTES, U64),
        (f::DESTINATION_BYTES, U64),
        (f::SOURCE_PACKETS, U64),
        (f::DESTINATION_PACKETS, U64),
        (f::ICMP_TYPE, U64),
        (f::ICMP_CODE, U64),
        (f::TCP_FLAGS, Keyword),
        (f::NETWORK_COMMUNITY_ID, Keyword),
        (f::NETWORK_PROTOCOL, Keyword),
        (f::SYSLOG_FACILITY, U64),
        (f::SYSLOG_SEVERITY, U64),
        (f::SYSLOG_HOSTNAME, Keyword),
        (f::SYSLOG_APPNAME, Keyword),
        (f::SYSLOG_PROCID, Keyword),
        (f::SYSLOG_MSGID, Keyword),
        (f::PROCESS_NAME, Keyword),
        (f::PROCESS_PID, U64),
        (f::MONITOR_ID, Keyword),
        (f::MONITOR_TYPE, Keyword),
        (f::MONITOR_STATUS, Keyword),
        (f::URL_FULL, Keyword),
        (f::HTTP_STATUS_CODE, U64),
        (f::HTTP_REQUEST_METHOD, Keyword),
        (f::HTTP_REQUEST_REFERRER, Keyword),
        (f::HTTP_VERSION, Keyword),
        (f::HTTP_RESPONSE_BYTES, U64),
        (f::URL_ORIGINAL, Keyword),
        (f::URL_PATH, Keyword),
        (f::URL_QUERY, Keyword),
        (f::URL_EXTENSION, Keyword),
        (f::URL_SCHEME, Keyword),
        (f::URL_DOMAIN, Keyword),
        (f::USER_AGENT, Keyword),
        (f::TLS_NOT_AFTER, Date),
        (f::ERROR_MESSAGE, Text),
        (f::RULE_ID, Keyword),
        (f::RULE_NAME, Keyword),
        (f::RULE_LEVEL, Keyword),
        (f::ALERT_TYPE, Keyword),
        (f::ALERT_GROUP_KEY, Keyword),
        (f::ALERT_EVENT_IDS, Keyword),
    ]
};

/// The JSON field holding every field that has no field of its own.
pub const EXTRA: &str = "_extra";

#[derive(Clone)]
pub struct IndexSchema {
    pub schema: Schema,
    pub timestamp: Field,
    pub message: Field,
    pub source: Field,
    pub batch: Field,
    /// Every field that is not in [`FIELDS`], as one JSON object: `netflow.sampling_rate:100`
    /// finds it (see `search`). Strings are exact tokens, as keywords are.
    pub extra: Field,
    /// Looked up once per event key (events are small maps; the schema is the larger side).
    typed: HashMap<&'static str, (FieldType, Field)>,
}

fn date_options() -> DateOptions {
    DateOptions::from(INDEXED | FAST).set_precision(DateTimePrecision::Microseconds)
}

impl IndexSchema {
    pub fn new() -> Self {
        let mut b = Schema::builder();
        let timestamp = b.add_date_field(f::TIMESTAMP, date_options());
        let typed: HashMap<_, _> = FIELDS
            .iter()
            .map(|&(name, ty)| {
                let field = match ty {
                    FieldType::Keyword => b.add_text_field(name, STRING | FAST),
                    FieldType::Text => b.add_text_field(name, TEXT),
                    FieldType::U64 => {
                        b.add_u64_field(name, NumericOptions::default().set_indexed().set_fast())
                    }
                    FieldType::Ip => {
                        b.add_ip_addr_field(name, IpAddrOptions::default().set_indexed().set_fast())
                    }
                    FieldType::Date => b.add_date_field(name, date_options()),
                };
                (name, (ty, field))
            })
            .collect();
        let source = b.add_text_field("_source", STORED);
        let batch = b.add_text_field("_batch", STRING);
        let extra = b.add_json_field(
            EXTRA,
            JsonObjectOptions::default()
                .set_indexing_options(
                    TextFieldIndexing::default()
                        .set_tokenizer("raw")
                        .set_index_option(IndexRecordOption::Basic),
                )
                .set_expand_dots_enabled()
                // Columns too: ranges on JSON paths need them.
                .set_fast(Some("raw")),
        );
        let schema = b.build();
        let message = schema.get_field(f::MESSAGE).unwrap_or(source);
        IndexSchema {
            schema,
            timestamp,
            message,
            source,
            batch,
            extra,
            typed,
        }
    }

    /// Opens the index in `dir`, creating it if empty. Blocks on disk I/O.
    pub fn open_or_create(&self, dir: &Path) -> tantivy::Result<Index> {
        std::fs::create_dir_all(dir)?;
        let mmap = tantivy::directory::MmapDirectory::open(dir)?;
        Index::open_or_create(mmap, self.schema.clone())
    }

    pub fn batch_term(&self, id: &Uuid) -> Term {
        Term::from_field_text(self.batch, &id.to_string())
    }

    /// The document of event `e`, at `at`, of batch `batch_id`.
    pub fn document(
        &self,
        e: &Event,
        at: chrono::DateTime<chrono::Utc>,
        batch_id: &str,
    ) -> TantivyDocument {
        let mut doc = TantivyDocument::default();
        doc.add_date(
            self.timestamp,
            tantivy::DateTime::from_timestamp_micros(at.timestamp_micros()),
        );
        let mut extra = Vec::new();
        for (name, v) in e.iter() {
            let Some(&(ty, field)) = self.typed.get(name) else {
                if name != f::TIMESTAMP {
                    extra.push((name.to_owned(), OwnedValue::from(v.clone())));
                }
                continue;
            };
            match v {
                Value::Array(items) => items.iter().for_each(|v| add_value(&mut doc, ty, field, v)),
                v => add_value(&mut doc, ty, field, v),
            }
        }
        if !extra.is_empty() {
            doc.add_field_value(self.extra, &OwnedValue::Object(extra));
        }
        doc.add_text(self.source, serde_json::to_string(e).unwrap_or_default());
        doc.add_text(self.batch, batch_id);
        doc
    }
}

fn add_value(doc: &mut TantivyDocument, ty: FieldType, field: Field, v: &Value) {
    match (ty, v) {
        (FieldType::Keyword | FieldType::Text, Value::String(s)) => doc.add_text(field, s),
        (FieldType::Keyword, Value::Number(n)) => doc.add_text(field, n.to_string()),
        (FieldType::Keyword, Value::Bool(b)) => {
            doc.add_text(field, if *b { "true" } else { "false" })
        }
        (FieldType::U64, Value::Number(n)) => {
            if let Some(n) = n.as_u64() {
                doc.add_u64(field, n);
            }
        }
        (FieldType::U64, Value::String(s)) => {
            if let Ok(n) = s.trim().parse::<u64>() {
                doc.add_u64(field, n);
            }
        }
        (FieldType::Ip, Value::String(s)) => {
            if let Ok(ip) = s.trim().parse::<IpAddr>() {
                let v6 = match ip {
                    IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                    IpAddr::V6(v6) => v6,
                };
                doc.add_ip_addr(field, v6);
            }
        }
        (FieldType::Date, Value::String(s)) => {
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                doc.add_date(
                    field,
                    tantivy::DateTime::from_timestamp_micros(t.timestamp_micros()),
                );
            }
        }
        _ => {}
    }
}

impl Default for IndexSchema {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::search::{SearchRequest, Searcher};
    use vigil_schema::Batch;

    fn event(msg: &str, at: &str, extra: &[(&str, Value)]) -> Event {
        let mut e = Event::default();
        e.set_str(f::TIMESTAMP, at);
        e.set_str(f::EVENT_KIND, "flow");
        e.set_str(f::MESSAGE, msg);
        for (k, v) in extra {
            e.set(k.to_string(), v.clone());
        }
        e
    }

    /// A partition holding one batch, and a searcher over it (the directory lives as long).
    fn searcher(events: Vec<Event>) -> (tempfile::TempDir, Searcher) {
        let dir = tempfile::tempdir().expect("tempdir");
        let parts = partition::Partitions::open(dir.path(), IndexSchema::new()).expect("open");
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 22).expect("day");
        let p = parts.create(day).expect("partition");
        let mut w: tantivy::IndexWriter = p.index.writer(15_000_000).expect("writer");
        let batch = Batch {
            batch_id: Uuid::now_v7(),
            agent_id: "edge-1".into(),
            seq: 0,
            events,
        };
        let b = crate::ingest::enrich(batch);
        for (e, at) in b.events.iter().zip(&b.times) {
            w.add_document(parts.schema().document(e, *at, &b.batch_id))
                .expect("add");
        }
        w.commit().expect("commit");
        parts.refresh(day).expect("refresh");
        (dir, Searcher::new(parts))
    }

    fn req(q: &str) -> SearchRequest {
        SearchRequest {
            q: q.into(),
            from: None,
            to: None,
            limit: 100,
            offset: 0,
        }
    }

    fn messages(s: &Searcher, r: &SearchRequest) -> Vec<String> {
        s.search(r)
            .expect("search")
            .hits
            .iter()
            .map(|h| h["message"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    #[test]
    fn typed_fields_answer_exact_range_and_ip_queries_newest_first() {
        let (_dir, s) = searcher(vec![
            event(
                "first",
                "2026-11-22T10:00:00Z",
                &[
                    ("source.ip", "10.1.2.3".into()),
                    ("destination.port", 22.into()),
                    ("host.name", "web-1".into()),
                ],
            ),
            event(
                "second",
                "2026-11-22T10:00:01.5Z",
                &[
                    ("source.ip", "2001:db8::1".into()),
                    ("destination.port", 443.into()),
                    ("host.name", "web-10".into()),
                ],
            ),
            event(
                "third",
                "2026-11-22T10:00:02Z",
                &[
                    ("source.ip", "not an ip".into()),
                    ("destination.port", "8080".into()),
                ],
            ),
        ]);
        assert_eq!(messages(&s, &req("*")), ["third", "second", "first"]);
        assert_eq!(messages(&s, &req("host.name:web-1")), ["first"]);
        assert_eq!(
            messages(&s, &req("destination.port:[400 TO 9000]")),
            ["third", "second"]
        );
        assert_eq!(messages(&s, &req("source.ip:10.1.2.3")), ["first"]);
        assert_eq!(messages(&s, &req("source.ip:\"2001:db8::1\"")), ["second"]);
        // Kept whole in _source even where a value did not fit its type.
        let all = s.search(&req("third")).expect("search");
        assert_eq!(all.hits[0]["source.ip"], "not an ip");
        assert_eq!(all.hits[0]["agent.id"], "edge-1");

        let t = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .expect("time")
                .with_timezone(&chrono::Utc)
        };
        let mut r = req("*");
        r.from = Some(t("2026-11-22T10:00:01Z"));
        r.to = Some(t("2026-11-22T10:00:02Z"));
        assert_eq!(messages(&s, &r), ["second"]);
        r.offset = 1;
        r.from = None;
        r.to = None;
        assert_eq!(messages(&s, &r), ["second", "first"]);
    }

    #[test]
    fn cidr_and_existence_combine_with_the_rest_of_the_query() {
        let (_dir, s) = searcher(vec![
            event(
                "v4",
                "2026-11-22T10:00:00Z",
                &[
                    ("source.ip", "10.1.2.3".into()),
                    ("host.name", "h".into()),
                    ("destination.port", 22.into()),
                ],
            ),
            event(
                "v4-other",
                "2026-11-22T10:00:01Z",
                &[("source.ip", "192.0.2.9".into())],
            ),
            event(
                "v6",
                "2026-11-22T10:00:02Z",
                &[("source.ip", "2001:db8:1::5".into())],
            ),
            event(
                "v6-other",
                "2026-11-22T10:00:03Z",
                &[("source.ip", "2001:db9::1".into())],
            ),
        ]);
        let m = |q: &str| messages(&s, &req(q));
        assert_eq!(m("source.ip:10.0.0.0/8"), ["v4"]);
        assert_eq!(m("source.ip:0.0.0.0/0"), ["v4-other", "v4"]);
        assert_eq!(m("source.ip:\"2001:db8::/32\""), ["v6"]);
        assert_eq!(m("source.ip:\"2001:db8::/29\""), ["v6-other", "v6"]);
        assert_eq!(
            m("source.ip:192.0.2.9/32 OR source.ip:\"2001:db8::/32\""),
            ["v6", "v4-other"]
        );
        assert_eq!(
            m("event.kind:flow AND NOT source.ip:10.0.0.0/8"),
            ["v6-other", "v6", "v4-other"]
        );
        // Tantivy alone finds nothing for `a AND NOT b`; it must exclude b.
        assert_eq!(
            m("event.kind:flow AND NOT host.name:h"),
            ["v6-other", "v6", "v4-other"]
        );
        assert_eq!(m("host.name:*"), ["v4"]);
        assert_eq!(m("destination.port:* AND source.ip:10.0.0.0/8"), ["v4"]);
        assert_eq!(
            m("(source.ip:* AND NOT destination.port:*)"),
            ["v6-other", "v6", "v4-other"]
        );
        // Ordinary terms are left to Tantivy.
        assert_eq!(m("message:\"v4-other\" OR host.name:h"), ["v4-other", "v4"]);
        for bad in [
            "source.ip:10.0.0.0/33",
            "source.ip:10.0.0/8",
            "source.ip:\"2001:db8::/200\"",
        ] {
            assert!(s.search(&req(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn fields_without_a_field_of_their_own_are_searchable() {
        let (_dir, s) = searcher(vec![
            event(
                "sampled",
                "2026-11-22T10:00:00Z",
                &[
                    ("netflow.sampling_rate", 100.into()),
                    ("labels.site", "brussels".into()),
                ],
            ),
            event(
                "other",
                "2026-11-22T10:00:01Z",
                &[
                    ("netflow.sampling_rate", 1000.into()),
                    ("labels.site", "liege".into()),
                ],
            ),
        ]);
        let m = |q: &str| messages(&s, &req(q));
        assert_eq!(m("netflow.sampling_rate:100"), ["sampled"]);
        assert_eq!(m("netflow.sampling_rate:[500 TO 5000]"), ["other"]);
        assert_eq!(
            m("labels.site:brussels OR labels.site:liege"),
            ["other", "sampled"]
        );
        assert_eq!(m("labels.site:liege AND NOT event.kind:syslog"), ["other"]);
        assert_eq!(m("labels.site:brussel"), Vec::<String>::new());
        assert_eq!(m("netflow.sampling_rate:*"), ["other", "sampled"]);
        assert_eq!(m("labels.site:* AND message:sampled"), ["sampled"]);
        // A field no event has is still an error that names it.
        let e = s.search(&req("labels.city:x")).expect_err("unknown field");
        assert!(e.to_string().contains("labels.city"), "{e}");
    }

    #[test]
    fn bad_queries_and_limits_are_errors_not_panics() {
        let (_dir, s) = searcher(vec![event("x", "2026-11-22T10:00:00Z", &[])]);
        for q in ["message:(unbalanced", "\"open quote", "nosuchfield:x"] {
            assert!(s.search(&req(q)).is_err(), "{q}");
        }
        let mut r = req("*");
        r.limit = 1_000_000_000;
        assert!(s.search(&r).is_err());
        let huge = "a ".repeat(1 << 20);
        assert!(s.search(&req(&huge)).is_err());
    }
}
