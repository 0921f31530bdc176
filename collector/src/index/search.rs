//! Queries over the committed index: a query string, a time range, newest first.

use std::ops::Bound;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery};
use tantivy::schema::Value;
use tantivy::{DocAddress, Index, IndexReader, Order, TantivyDocument, Term};

use super::IndexSchema;

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
            let mut parser = QueryParser::for_index(&self.index, vec![self.schema.message]);
            parser.set_conjunction_by_default();
            parser
                .parse_query(text)
                .map_err(|e| SearchError::Query(e.to_string()))?
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
