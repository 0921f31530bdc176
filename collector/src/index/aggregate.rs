//! Aggregations over a search: top values of a field (optionally ranked by the sum of a
//! numeric field: top talkers by `network.bytes`), a date histogram, and statistics.
//!
//! Each overlapping partition computes Tantivy's intermediate results; they are merged and
//! finished once, so counts and sums are exact over partitions. Top values are exact while a
//! field has fewer distinct values per segment than `10 × size` (at least 1,000); beyond
//! that, as in Elasticsearch, a value's count can be low by what segments did not report.
//!
//! # Invariants
//! - Bounded: at most [`MAX_SIZE`] top values, [`MAX_BUCKETS`] histogram buckets, and a
//!   memory limit per request; beyond them, a clear error.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use tantivy::aggregation::intermediate_agg_result::IntermediateAggregationResults;
use tantivy::aggregation::{AggregationLimitsGuard, DistributedAggregationCollector};
use tantivy::collector::Count;

use super::FieldType;
use super::search::{SearchError, Searcher};

/// Most top values one request returns.
pub const MAX_SIZE: usize = 1_000;
/// Most histogram buckets one request returns.
pub const MAX_BUCKETS: u64 = 10_000;
/// Memory one aggregation may use.
const MEMORY_LIMIT: u64 = 256 << 20;
/// Percentiles reported by `stats`.
const PERCENTS: [f64; 3] = [50.0, 90.0, 99.0];

#[derive(Debug, Clone, Default)]
pub struct AggregateRequest {
    pub q: String,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    /// Top values of this field.
    pub terms: Option<String>,
    /// How many top values.
    pub size: usize,
    /// Sum this numeric field per top value and per histogram bucket; top values are then
    /// ranked by it.
    pub sum: Option<String>,
    /// Event counts over time in buckets of this width.
    pub histogram: Option<Duration>,
    /// Count, min, max, avg, sum and percentiles of this numeric field.
    pub stats: Option<String>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct AggregateResult {
    /// Events the query matches.
    pub total: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terms: Option<Terms>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Histogram>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stats: Option<Stats>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Terms {
    pub field: String,
    pub buckets: Vec<Bucket>,
    /// Events whose value is not among the top ones.
    pub other_count: u64,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Bucket {
    /// The value (a string, or a number for numeric fields), or for a histogram the start
    /// of the bucket (RFC 3339).
    pub key: Value,
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Histogram {
    pub interval_ms: u64,
    pub buckets: Vec<Bucket>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Stats {
    pub field: String,
    pub count: u64,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub avg: Option<f64>,
    pub sum: f64,
    /// `"50"`, `"90"`, `"99"` → value (approximate: DDSketch, 1 % relative error).
    pub percentiles: serde_json::Map<String, Value>,
}

impl Searcher {
    /// Runs an aggregation. Blocks (CPU and disk): call from a blocking thread.
    pub fn aggregate(&self, req: &AggregateRequest) -> Result<AggregateResult, SearchError> {
        let aggs = self.aggregations(req)?;
        let query = self.query(&req.q, req.from, req.to)?;
        let limits = || AggregationLimitsGuard::new(Some(MEMORY_LIMIT), Some(MAX_BUCKETS as u32));
        let mut total = 0;
        let mut merged: Option<IntermediateAggregationResults> = None;
        for p in self.partitions().overlapping(req.from, req.to) {
            let collector = DistributedAggregationCollector::from_aggs(aggs.clone(), limits());
            let (n, part) = p.reader.searcher().search(&query, &(Count, collector))?;
            total += n;
            match &mut merged {
                None => merged = Some(part),
                Some(m) => m.merge_fruits(part)?,
            }
        }
        let results = merged
            .unwrap_or_default()
            .into_final_result(aggs, limits())?;
        let v = serde_json::to_value(&results).map_err(|e| SearchError::Query(e.to_string()))?;
        Ok(AggregateResult {
            total,
            terms: req.terms.as_ref().map(|field| Terms {
                field: field.clone(),
                buckets: buckets(&v["terms"]["buckets"], |b| key(field, self, &b["key"])),
                other_count: v["terms"]["sum_other_doc_count"].as_u64().unwrap_or(0),
            }),
            histogram: req.histogram.map(|d| Histogram {
                interval_ms: d.as_millis() as u64,
                buckets: buckets(&v["histogram"]["buckets"], |b| b["key_as_string"].clone()),
            }),
            stats: req.stats.as_ref().map(|field| {
                let s = &v["stats"];
                Stats {
                    field: field.clone(),
                    count: s["count"].as_u64().unwrap_or(0),
                    min: s["min"].as_f64(),
                    max: s["max"].as_f64(),
                    avg: s["avg"].as_f64(),
                    sum: s["sum"].as_f64().unwrap_or(0.0),
                    percentiles: percentiles(&v["percentiles"]["values"]),
                }
            }),
        })
    }

    /// Tantivy's aggregation request for `req`, after checking its fields and bounds.
    fn aggregations(
        &self,
        req: &AggregateRequest,
    ) -> Result<tantivy::aggregation::agg_req::Aggregations, SearchError> {
        let bad = |m: String| SearchError::Limit(m);
        if req.terms.is_none() && req.histogram.is_none() && req.stats.is_none() {
            return Err(bad(
                "ask for terms=FIELD, histogram=INTERVAL or stats=FIELD".into(),
            ));
        }
        let sum_field = req
            .sum
            .as_deref()
            .map(|s| self.field_of(s, "sum", &[FieldType::U64]))
            .transpose()?;
        let sum = |field: &str| json!({ "sum": { "sum": { "field": field } } });
        let mut aggs = serde_json::Map::new();
        if let Some(name) = &req.terms {
            let field = self.field_of(
                name,
                "terms",
                &[FieldType::Keyword, FieldType::U64, FieldType::Ip],
            )?;
            if req.size == 0 || req.size > MAX_SIZE {
                return Err(bad(format!("size must be 1 to {MAX_SIZE}")));
            }
            let size = req.size as u64;
            let mut terms = json!({
                "field": field,
                "size": size,
                "segment_size": (size * 10).max(1_000),
            });
            let mut agg = json!({});
            if let Some(s) = &sum_field {
                terms["order"] = json!({ "sum": "desc" });
                agg["aggs"] = sum(s);
            }
            agg["terms"] = terms;
            aggs.insert("terms".into(), agg);
        }
        if let Some(width) = req.histogram {
            let ms = width.as_millis() as u64;
            if ms == 0 {
                return Err(bad("histogram interval must be at least 1ms".into()));
            }
            let span = self.span(req);
            if let Some((lo, hi)) = span {
                let n = (hi - lo).max(0) as u64 / 1000 / ms + 1;
                if n > MAX_BUCKETS {
                    return Err(bad(format!(
                        "histogram of {n} buckets; at most {MAX_BUCKETS}: use a wider interval or a shorter range"
                    )));
                }
            }
            let mut h = json!({
                "field": vigil_schema::fields::TIMESTAMP,
                "fixed_interval": format!("{ms}ms"),
                "min_doc_count": 0,
            });
            // The whole asked range, empty buckets included, so a chart has its time axis
            // (`--since 1h` asks up to now).
            if let (Some(from), Some(to)) = (req.from, upper(req)) {
                let bounds =
                    json!({ "min": from.timestamp_millis(), "max": to.timestamp_millis() - 1 });
                h["extended_bounds"] = bounds.clone();
                h["hard_bounds"] = bounds;
            }
            let mut agg = json!({ "date_histogram": h });
            if let Some(s) = &sum_field {
                agg["aggs"] = sum(s);
            }
            aggs.insert("histogram".into(), agg);
        }
        if let Some(name) = &req.stats {
            let field = self.field_of(name, "stats", &[FieldType::U64])?;
            aggs.insert("stats".into(), json!({ "stats": { "field": field } }));
            aggs.insert(
                "percentiles".into(),
                json!({ "percentiles": { "field": field, "percents": PERCENTS, "keyed": true } }),
            );
        }
        serde_json::from_value(Value::Object(aggs))
            .map_err(|e| SearchError::Query(format!("aggregation: {e}")))
    }

    /// The column to aggregate for field `name`: its own, or its path in the JSON field for a
    /// field without a field of its own (whatever its values are: a string column has no sum).
    fn field_of(&self, name: &str, what: &str, types: &[FieldType]) -> Result<String, SearchError> {
        match self.field_type(name) {
            Some(t) if types.contains(&t) => Ok(name.to_owned()),
            None if self.is_extra_field(name) => Ok(format!("{}.{name}", super::EXTRA)),
            Some(_) => Err(SearchError::Limit(format!(
                "{what}: `{name}` cannot be aggregated that way (it takes {})",
                if types == [FieldType::U64] {
                    "a numeric field such as network.bytes"
                } else {
                    "a keyword, numeric or IP field"
                }
            ))),
            None => Err(SearchError::Limit(format!(
                "{what}: unknown field `{name}`"
            ))),
        }
    }

    /// The time span the histogram covers: the asked range, or the data's bounds (µs).
    fn span(&self, req: &AggregateRequest) -> Option<(i64, i64)> {
        let parts = self.partitions().overlapping(req.from, req.to);
        let lo = req
            .from
            .map(|t| t.timestamp_micros())
            .or_else(|| parts.iter().filter_map(|p| p.bounds).map(|b| b.0).min())?;
        let hi = upper(req)
            .map(|t| t.timestamp_micros())
            .or_else(|| parts.iter().filter_map(|p| p.bounds).map(|b| b.1).max())?;
        Some((lo, hi))
    }
}

/// The end of the asked range: `to`, or now when only `from` is given.
fn upper(req: &AggregateRequest) -> Option<DateTime<Utc>> {
    req.to.or_else(|| req.from.map(|_| Utc::now()))
}

fn buckets(v: &Value, key: impl Fn(&Value) -> Value) -> Vec<Bucket> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|b| Bucket {
            key: key(b),
            count: b["doc_count"].as_u64().unwrap_or(0),
            sum: b.get("sum").map(|s| s["value"].as_f64().unwrap_or(0.0)),
        })
        .collect()
}

/// A top value as the user wrote it: IPv4 addresses without their IPv6 mapping, whole
/// numbers without a fraction (Tantivy gives every numeric key as a float).
fn key(field: &str, s: &Searcher, v: &Value) -> Value {
    if let Some(f) = v.as_f64()
        && f.fract() == 0.0
        && (0.0..9.0e15).contains(&f)
    {
        return Value::from(f as u64);
    }
    match (s.field_type(field), v.as_str()) {
        (Some(FieldType::Ip), Some(text)) => match text.parse::<std::net::Ipv6Addr>() {
            Ok(ip) => match ip.to_ipv4_mapped() {
                Some(v4) => Value::String(v4.to_string()),
                None => Value::String(ip.to_string()),
            },
            Err(_) => v.clone(),
        },
        _ => v.clone(),
    }
}

fn percentiles(v: &Value) -> serde_json::Map<String, Value> {
    PERCENTS
        .iter()
        .map(|p| {
            let value = v
                .get(format!("{p:.1}"))
                .or_else(|| v.get(p.to_string()))
                .cloned()
                .unwrap_or(Value::Null);
            (format!("{p}"), value)
        })
        .collect()
}
