//! Queries over the committed index: a query string, a time range, newest first.
//!
//! The query string is Tantivy's syntax on our field names, plus two things analysts expect
//! and Tantivy's parser lacks: `field:CIDR` on IP fields (`source.ip:10.0.0.0/8`,
//! `destination.ip:"2001:db8::/32"`) and `field:*` for "the field is present". Those terms
//! are cut out of the text before parsing (a placeholder word stands in), built directly as
//! range queries, and put back in the parsed query tree where their placeholder landed, so
//! they combine with AND, OR, NOT and parentheses like any other term.

use std::ops::Bound;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery};
use tantivy::schema::Value;
use tantivy::{DocAddress, Index, IndexReader, Order, TantivyDocument, Term};

use super::{FieldType, IndexSchema};

/// Most hits one request returns.
pub const MAX_LIMIT: usize = 10_000;
/// Deepest page reachable with `offset` (the top-k heap holds `offset + limit` entries).
pub const MAX_WINDOW: usize = 1_000_000;
/// Longest query text accepted.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone)]
pub struct SearchRequest {
    pub q: String,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub limit: usize,
    pub offset: usize,
}

#[derive(Debug, Serialize)]
pub struct SearchResult {
    pub total: usize,
    pub hits: Vec<serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("invalid query: {0}")]
    Query(String),
    #[error("{0}")]
    Limit(String),
    #[error("index error: {0}")]
    Index(#[from] tantivy::TantivyError),
}

#[derive(Clone)]
pub struct Searcher {
    index: Index,
    reader: IndexReader,
    schema: IndexSchema,
}

impl Searcher {
    pub fn new(index: Index, reader: IndexReader, schema: IndexSchema) -> Self {
        Searcher {
            index,
            reader,
            schema,
        }
    }

    /// Runs a search. Blocks (CPU and disk): call from a blocking thread.
    pub fn search(&self, req: &SearchRequest) -> Result<SearchResult, SearchError> {
        if req.limit > MAX_LIMIT {
            return Err(SearchError::Limit(format!(
                "limit must be at most {MAX_LIMIT}"
            )));
        }
        if req.offset.saturating_add(req.limit) > MAX_WINDOW {
            return Err(SearchError::Limit(format!(
                "offset + limit must be at most {MAX_WINDOW}; narrow the time range instead"
            )));
        }
        let query = self.query(req)?;
        let searcher = self.reader.searcher();
        let total = searcher.search(&query, &Count)?;
        if req.limit == 0 {
            return Ok(SearchResult {
                total,
                hits: Vec::new(),
            });
        }
        let top = TopDocs::with_limit(req.limit)
            .and_offset(req.offset)
            .order_by_fast_field::<tantivy::DateTime>(vigil_schema::fields::TIMESTAMP, Order::Desc);
        let docs: Vec<(tantivy::DateTime, DocAddress)> = searcher.search(&query, &top)?;
        let mut hits = Vec::with_capacity(docs.len());
        for (_, addr) in docs {
            let doc: TantivyDocument = searcher.doc(addr)?;
            let source = doc
                .get_first(self.schema.source)
                .and_then(|v| v.as_str())
                .unwrap_or("{}");
            hits.push(serde_json::from_str(source).unwrap_or(serde_json::Value::Null));
        }
        Ok(SearchResult { total, hits })
    }

    fn query(&self, req: &SearchRequest) -> Result<Box<dyn Query>, SearchError> {
        if req.q.len() > MAX_QUERY_BYTES {
            return Err(SearchError::Query(format!(
                "query is longer than {MAX_QUERY_BYTES} bytes"
            )));
        }
        let text = req.q.trim();
        let main: Box<dyn Query> = if text.is_empty() || text == "*" {
            Box::new(AllQuery)
        } else {
            let (text, subs) = self.extensions(text)?;
            let mut parser = QueryParser::for_index(&self.index, vec![self.schema.message]);
            parser.set_conjunction_by_default();
            let parsed = parser
                .parse_query(&text)
                .map_err(|e| SearchError::Query(e.to_string()))?;
            self.rebuild(parsed, &subs)
        };
        if req.from.is_none() && req.to.is_none() {
            return Ok(main);
        }
        let term = |t: DateTime<Utc>| {
            Term::from_field_date(
                self.schema.timestamp,
                tantivy::DateTime::from_timestamp_micros(t.timestamp_micros()),
            )
        };
        let range = RangeQuery::new(
            req.from
                .map_or(Bound::Unbounded, |t| Bound::Included(term(t))),
            req.to
                .map_or(Bound::Unbounded, |t| Bound::Excluded(term(t))),
        );
        Ok(Box::new(BooleanQuery::new(vec![
            (Occur::Must, main),
            (Occur::Must, Box::new(range)),
        ])))
    }
}

/// An extension term's query and the bytes of query text it spans.
type Extension = (Box<dyn Query>, usize);

/// The word that stands in for extension term `i` while Tantivy parses the rest.
fn placeholder(i: usize) -> String {
    format!("vigilterm{i}x")
}

impl Searcher {
    /// Cuts `field:CIDR` and `field:*` out of `text`: the text with placeholders, and the
    /// queries they stand for.
    fn extensions(&self, text: &str) -> Result<(String, Vec<Box<dyn Query>>), SearchError> {
        let mut out = String::with_capacity(text.len());
        let mut subs: Vec<Box<dyn Query>> = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            // A term starts at the beginning, after a space, `(`, `+` or `-`.
            let at_start = out
                .chars()
                .last()
                .is_none_or(|c| c.is_whitespace() || matches!(c, '(' | '+' | '-'));
            let hit = at_start
                .then(|| self.extension_at(rest))
                .transpose()?
                .flatten();
            match hit {
                Some((query, used)) => {
                    out.push_str(&format!("message:{}", placeholder(subs.len())));
                    subs.push(query);
                    rest = &rest[used..];
                }
                None => {
                    let c = rest.chars().next().unwrap_or(' ');
                    out.push(c);
                    rest = &rest[c.len_utf8()..];
                }
            }
        }
        Ok((out, subs))
    }

    /// An extension term at the start of `s` (`field:*` on any field of the schema,
    /// `field:CIDR` on an IP field), with the bytes it spans.
    fn extension_at(&self, s: &str) -> Result<Option<Extension>, SearchError> {
        // Field names are short: looking no further keeps a long query linear.
        let Some((colon, _)) = s.char_indices().take(64).find(|&(_, c)| c == ':') else {
            return Ok(None);
        };
        let name = &s[..colon];
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._@".contains(c))
        {
            return Ok(None);
        }
        let (ty, field) = match self.schema.typed.get(name) {
            Some(&(ty, field)) => (ty, field),
            None if name == vigil_schema::fields::TIMESTAMP => {
                (FieldType::Date, self.schema.timestamp)
            }
            None => return Ok(None),
        };
        let v = &s[colon + 1..];
        let (value, used) = match v.strip_prefix('"') {
            Some(q) => match q.find('"') {
                Some(end) => (&q[..end], colon + 1 + end + 2),
                None => return Ok(None),
            },
            None => {
                let end = v
                    .find(|c: char| c.is_whitespace() || c == ')')
                    .unwrap_or(v.len());
                (&v[..end], colon + 1 + end)
            }
        };
        if value == "*" {
            // Every indexed value is at or above the smallest one of its type.
            let low = match ty {
                FieldType::Keyword | FieldType::Text => Term::from_field_text(field, ""),
                FieldType::U64 => Term::from_field_u64(field, 0),
                FieldType::Ip => Term::from_field_ip_addr(field, std::net::Ipv6Addr::UNSPECIFIED),
                FieldType::Date => Term::from_field_date(field, tantivy::DateTime::MIN),
            };
            let q = RangeQuery::new(Bound::Included(low), Bound::Unbounded);
            return Ok(Some((Box::new(q), used)));
        }
        if ty != FieldType::Ip || !value.contains('/') {
            return Ok(None);
        }
        let (lo, hi) =
            cidr(value).map_err(|e| SearchError::Query(format!("{name}:{value}: {e}")))?;
        let q = RangeQuery::new(
            Bound::Included(Term::from_field_ip_addr(field, lo)),
            Bound::Included(Term::from_field_ip_addr(field, hi)),
        );
        Ok(Some((Box::new(q), used)))
    }

    /// `q` with each placeholder term replaced by the query it stands for, and `a AND NOT b`
    /// made to mean what it says: Tantivy's parser nests `NOT b` as a clause of its own that
    /// holds only an exclusion, which matches nothing, so `a AND NOT b` found nothing. Such
    /// exclusions are lifted into the clause list around them. (A boosted extension term,
    /// `source.ip:10.0.0.0/8^2`, is not reached: Tantivy's BoostQuery does not expose its inner
    /// query, so such a term matches nothing.)
    fn rebuild(&self, q: Box<dyn Query>, subs: &[Box<dyn Query>]) -> Box<dyn Query> {
        if let Some(t) = q.downcast_ref::<TermQuery>() {
            let term = t.term();
            if term.field() == self.schema.message
                && let Some(text) = term.value().as_str()
                && let Some(i) = (0..subs.len()).find(|&i| placeholder(i) == text)
            {
                return subs[i].box_clone();
            }
            return q;
        }
        let Some(b) = q.downcast_ref::<BooleanQuery>() else {
            return q;
        };
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for (occur, sub) in b.clauses() {
            let sub = self.rebuild(sub.box_clone(), subs);
            let only_exclusions = sub.downcast_ref::<BooleanQuery>().is_some_and(|inner| {
                !inner.clauses().is_empty()
                    && inner.clauses().iter().all(|(o, _)| *o == Occur::MustNot)
            });
            match (occur, sub.downcast_ref::<BooleanQuery>()) {
                (Occur::Must, Some(inner)) if only_exclusions => {
                    clauses.extend(inner.clauses().iter().map(|(o, q)| (*o, q.box_clone())));
                }
                _ => clauses.push((*occur, sub)),
            }
        }
        Box::new(BooleanQuery::new(clauses))
    }
}

/// The first and last address of a CIDR block, as Tantivy stores IPs (IPv4 mapped to IPv6).
fn cidr(s: &str) -> Result<(std::net::Ipv6Addr, std::net::Ipv6Addr), String> {
    let (addr, len) = s.split_once('/').ok_or("not a CIDR block")?;
    let ip: std::net::IpAddr = addr
        .parse()
        .map_err(|_| format!("`{addr}` is not an address"))?;
    let len: u32 = len
        .parse()
        .map_err(|_| format!("`{len}` is not a prefix length"))?;
    let (bits, len) = match ip {
        std::net::IpAddr::V4(v4) if len <= 32 => (u128::from(v4.to_ipv6_mapped()), len + 96),
        std::net::IpAddr::V6(v6) if len <= 128 => (u128::from(v6), len),
        _ => return Err(format!("prefix length {len} is too long")),
    };
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - len)
    };
    Ok(((bits & mask).into(), (bits | !mask).into()))
}

/// Parses a time bound: RFC 3339, `now`, or `now-<duration>` (`now-1h`, `now-15m`).
pub fn parse_time(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if s == "now" {
        return Ok(now);
    }
    if let Some(rest) = s.strip_prefix("now-") {
        let d = vigil_agent::config::parse_duration(rest)?;
        let d = chrono::Duration::from_std(d).map_err(|e| e.to_string())?;
        return now
            .checked_sub_signed(d)
            .ok_or_else(|| format!("`{s}` is out of range"));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("`{s}` is not RFC 3339 or now-<duration>: {e}"))
}
