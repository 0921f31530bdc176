//! Queries over the committed partitions: a query string, a time range, newest first.
//!
//! A search opens only the partitions whose time bounds overlap its range, takes the newest
//! `offset + limit` of each, and merges them; `total` is the sum of the partitions' counts.
//!
//! The query string is Tantivy's syntax on our field names, plus two things analysts expect
//! and Tantivy's parser lacks: `field:CIDR` on IP fields (`source.ip:10.0.0.0/8`,
//! `destination.ip:"2001:db8::/32"`) and `field:*` for "the field is present". Those terms
//! are cut out of the text before parsing (a placeholder word stands in), built directly as
//! range queries, and put back in the parsed query tree where their placeholder landed, so
//! they combine with AND, OR, NOT and parentheses like any other term.
//!
//! A field without a field of its own (an exporter's extra element, `netflow.direction`) is
//! searched in the JSON field under its name, as soon as some committed event has it; a name
//! no event has stays an error that names it.

use std::ops::Bound;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{
    AllQuery, BooleanQuery, ExistsQuery, Occur, Query, QueryParser, QueryParserError, RangeQuery,
    TermQuery, TermSetQuery,
};
use tantivy::schema::Value;
use tantivy::tokenizer::TokenizerManager;
use tantivy::{DocAddress, Order, TantivyDocument, Term};

use super::partition::Partitions;
use super::{FieldType, IndexSchema};
use vigil_schema::fields as f;

/// Most hits one request returns.
pub const MAX_LIMIT: usize = 10_000;
/// Deepest page reachable with `offset` (the top-k heap holds `offset + limit` entries).
pub const MAX_WINDOW: usize = 1_000_000;
/// Longest query text accepted.
pub const MAX_QUERY_BYTES: usize = 16 * 1024;
/// Most distinct terms one wildcard or regular expression may stand for.
pub const MAX_EXPANSION: usize = 10_000;

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
    parts: Partitions,
    schema: IndexSchema,
}

impl Searcher {
    pub fn new(parts: Partitions) -> Self {
        let schema = parts.schema().clone();
        Searcher { parts, schema }
    }

    pub fn partitions(&self) -> &Partitions {
        &self.parts
    }

    /// Whether some committed event has field `name` among those without a field of their own
    /// (the JSON field holds them; its terms start with the path, then byte 0).
    pub(super) fn is_extra_field(&self, name: &str) -> bool {
        let mut from = name.replace('.', "\u{1}").into_bytes();
        from.push(0);
        let mut to = from.clone();
        if let Some(last) = to.last_mut() {
            *last = 1;
        }
        self.parts.all().iter().rev().any(|p| {
            p.reader.searcher().segment_readers().iter().any(|seg| {
                seg.inverted_index(self.schema.extra).is_ok_and(|inv| {
                    inv.terms()
                        .range()
                        .ge(&from)
                        .lt(&to)
                        .into_stream()
                        .is_ok_and(|mut s| s.advance())
                })
            })
        })
    }

    /// How `name` is indexed, `None` for a field that is not in the schema.
    pub fn field_type(&self, name: &str) -> Option<FieldType> {
        match self.schema.typed.get(name) {
            Some(&(ty, _)) => Some(ty),
            None if name == vigil_schema::fields::TIMESTAMP => Some(FieldType::Date),
            None => None,
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
        let query = self.query(&req.q, req.from, req.to)?;
        let window = req.offset + req.limit;
        let mut total = 0;
        // (time, partition, doc) of the newest `window` matches seen so far.
        let mut newest: Vec<(tantivy::DateTime, usize, DocAddress)> = Vec::new();
        let searchers: Vec<_> = self
            .parts
            .overlapping(req.from, req.to)
            .iter()
            .map(|p| p.reader.searcher())
            .collect();
        for (i, searcher) in searchers.iter().enumerate() {
            if req.limit == 0 {
                total += searcher.search(&query, &Count)?;
                continue;
            }
            let top = TopDocs::with_limit(window).order_by_fast_field::<tantivy::DateTime>(
                vigil_schema::fields::TIMESTAMP,
                Order::Desc,
            );
            let (n, docs) = searcher.search(&query, &(Count, top))?;
            total += n;
            newest.extend(docs.into_iter().map(|(t, addr)| (t, i, addr)));
            // Stable: among equal times, the newer partition's documents stay first.
            newest.sort_by_key(|&(t, ..)| std::cmp::Reverse(t));
            newest.truncate(window);
        }
        let mut hits = Vec::with_capacity(req.limit);
        for &(_, i, addr) in newest.iter().skip(req.offset) {
            let doc: TantivyDocument = searchers[i].doc(addr)?;
            let source = doc
                .get_first(self.schema.source)
                .and_then(|v| v.as_str())
                .unwrap_or("{}");
            hits.push(serde_json::from_str(source).unwrap_or(serde_json::Value::Null));
        }
        Ok(SearchResult { total, hits })
    }

    /// The query for `q` over `[from, to)`: what [`Searcher::search`] and aggregations run.
    pub fn query(
        &self,
        q: &str,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
    ) -> Result<Box<dyn Query>, SearchError> {
        if q.len() > MAX_QUERY_BYTES {
            return Err(SearchError::Query(format!(
                "query is longer than {MAX_QUERY_BYTES} bytes"
            )));
        }
        let lead = q.len() - q.trim_start().len();
        let text = q.trim();
        let main: Box<dyn Query> = if text.is_empty() || text == "*" {
            Box::new(AllQuery)
        } else {
            let (parsed_text, subs, origin) = self.extensions(text)?;
            let mut parser = QueryParser::new(
                self.schema.schema.clone(),
                vec![self.schema.message],
                TokenizerManager::default(),
            );
            parser.set_conjunction_by_default();
            let parsed = match parser.parse_query(&parsed_text) {
                // Only exclusions (`NOT a`, `-a`): everything but those, as in Lucene's and
                // Kibana's query languages. The lenient parse adds the "everything" clause.
                Err(QueryParserError::AllButQueryForbidden) => {
                    let (q, errors) = parser.parse_query_lenient(&parsed_text);
                    match errors
                        .into_iter()
                        .find(|e| !matches!(e, QueryParserError::AllButQueryForbidden))
                    {
                        Some(e) => return Err(query_error(e, text, &parsed_text, &origin, lead)),
                        None => q,
                    }
                }
                r => r.map_err(|e| query_error(e, text, &parsed_text, &origin, lead))?,
            };
            self.rebuild(parsed, &subs)
        };
        if from.is_none() && to.is_none() {
            return Ok(main);
        }
        let term = |t: DateTime<Utc>| {
            Term::from_field_date(
                self.schema.timestamp,
                tantivy::DateTime::from_timestamp_micros(t.timestamp_micros()),
            )
        };
        let range = RangeQuery::new(
            from.map_or(Bound::Unbounded, |t| Bound::Included(term(t))),
            to.map_or(Bound::Unbounded, |t| Bound::Excluded(term(t))),
        );
        Ok(Box::new(BooleanQuery::new(vec![
            (Occur::Must, main),
            (Occur::Must, Box::new(range)),
        ])))
    }
}

/// The field name of a `name:` at the start of `s`, and the position of its colon.
fn field_name_at(s: &str) -> Option<(&str, usize)> {
    // Field names are short: looking no further keeps a long query linear.
    let (colon, _) = s.char_indices().take(64).find(|&(_, c)| c == ':')?;
    let name = &s[..colon];
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
    valid.then_some((name, colon))
}

/// An extension term's query and the bytes of query text it spans.
type Extension = (Box<dyn Query>, usize);

/// Query text with placeholders, the queries they stand for, and where each byte came from.
type Substituted = (String, Vec<Box<dyn Query>>, Vec<usize>);

/// A parse error as the user should read it: where in their query, and what was expected.
fn query_error(
    e: QueryParserError,
    text: &str,
    parsed: &str,
    origin: &[usize],
    lead: usize,
) -> SearchError {
    let at = |pos: usize| {
        let p = origin.get(pos).copied().unwrap_or(text.len());
        let near: String = text[p..].chars().take(20).collect();
        if near.is_empty() {
            format!("at position {} (end of query)", p + lead)
        } else {
            format!("at position {} (`{near}`)", p + lead)
        }
    };
    let msg = match &e {
        QueryParserError::SyntaxError(_) => {
            let (_, errors) = tantivy::query_grammar::parse_query_lenient(parsed);
            match errors.first() {
                Some(err) => format!("{}: {}", at(err.pos), err.message),
                None => "syntax error".to_owned(),
            }
        }
        QueryParserError::FieldDoesNotExist(field) => {
            let pos = parsed.find(&format!("{field}:")).unwrap_or(0);
            format!("{}: unknown field `{field}`", at(pos))
        }
        other => other.to_string(),
    };
    SearchError::Query(msg)
}

/// The word that stands in for extension term `i` while Tantivy parses the rest.
fn placeholder(i: usize) -> String {
    format!("vigilterm{i}x")
}

impl Searcher {
    /// Cuts `field:CIDR` and `field:*` out of `text`: the text with placeholders, the
    /// queries they stand for, and for each byte of the new text the byte of `text` it came
    /// from (so a syntax error points into what the user wrote).
    fn extensions(&self, text: &str) -> Result<Substituted, SearchError> {
        let mut out = String::with_capacity(text.len());
        let mut origin = Vec::with_capacity(text.len());
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
            if hit.is_none()
                && at_start
                && let Some((name, _)) = field_name_at(rest)
                && self.field_type(name).is_none()
                && self.is_extra_field(name)
            {
                // A field without a field of its own: it is in the JSON field.
                let at = text.len() - rest.len();
                let word = format!("{}.", super::EXTRA);
                origin.extend(std::iter::repeat_n(at, word.len()));
                out.push_str(&word);
            }
            match hit {
                Some((query, used)) => {
                    let word = format!("message:{}", placeholder(subs.len()));
                    let at = text.len() - rest.len();
                    origin.extend(std::iter::repeat_n(at, word.len()));
                    out.push_str(&word);
                    subs.push(query);
                    rest = &rest[used..];
                }
                None => {
                    let c = rest.chars().next().unwrap_or(' ');
                    let at = text.len() - rest.len();
                    origin.extend(at..at + c.len_utf8());
                    out.push(c);
                    rest = &rest[c.len_utf8()..];
                }
            }
        }
        Ok((out, subs, origin))
    }

    /// An extension term at the start of `s` (`field:*` on any field of the schema,
    /// `field:CIDR` on an IP field, a wildcard or `/regex/` term with or without a field),
    /// with the bytes it spans.
    fn extension_at(&self, s: &str) -> Result<Option<Extension>, SearchError> {
        let Some((name, colon)) = field_name_at(s) else {
            // A term of the default field: a word, not a group, an operator or `a:b` that is
            // not a field.
            let word = &s[..s.find(char::is_whitespace).unwrap_or(s.len())];
            if !s.starts_with(|c: char| c.is_alphanumeric() || "*?/".contains(c))
                || word.contains([':', '('])
            {
                return Ok(None);
            }
            return match multi_term(s)? {
                Some((pattern, used)) => {
                    let q = self.expand(
                        self.schema.message,
                        f::MESSAGE,
                        FieldType::Text,
                        &pattern,
                        &s[..used],
                    )?;
                    Ok(Some((q, used)))
                }
                None => Ok(None),
            };
        };
        if let Some((pattern, used)) = multi_term(&s[colon + 1..])? {
            let shown = &s[..colon + 1 + used];
            let (ty, field) = match self.schema.typed.get(name) {
                Some(&(ty @ (FieldType::Text | FieldType::Keyword), field)) => (ty, field),
                _ if self.field_type(name).is_none() && !self.is_extra_field(name) => {
                    // Tantivy's parser names the unknown field.
                    return Ok(None);
                }
                _ => {
                    return Err(SearchError::Query(format!(
                        "`{shown}`: wildcards and regular expressions apply to text and \
                         keyword fields only, and `{name}` is not one"
                    )));
                }
            };
            let q = self.expand(field, name, ty, &pattern, shown)?;
            return Ok(Some((q, colon + 1 + used)));
        }
        let Some(ty) = self.field_type(name) else {
            // `name:*` on a field without a field of its own: its column in the JSON field.
            let star = s[colon + 1..].strip_prefix('*').is_some_and(|r| {
                r.is_empty() || r.starts_with(|c: char| c.is_whitespace() || c == ')')
            });
            if star && self.is_extra_field(name) {
                let q = ExistsQuery::new(format!("{}.{name}", super::EXTRA), true);
                return Ok(Some((Box::new(q), colon + 2)));
            }
            return Ok(None);
        };
        let field = match self.schema.typed.get(name) {
            Some(&(_, field)) => field,
            None => self.schema.timestamp,
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

    /// The terms of `field` that `pattern` (a whole-term regular expression) matches, in
    /// every partition, as one query; more than [`MAX_EXPANSION`] is an error. On text
    /// fields, whose terms are lowercase, the pattern ignores case.
    fn expand(
        &self,
        field: tantivy::schema::Field,
        name: &str,
        ty: FieldType,
        pattern: &Pattern,
        shown: &str,
    ) -> Result<Box<dyn Query>, SearchError> {
        let regex = match (pattern, ty) {
            (Pattern::Regex(r), FieldType::Text) => format!("(?i:{r})"),
            (Pattern::Regex(r), _) => r.clone(),
            (Pattern::Wildcard(w), FieldType::Text) => wildcard_regex(&w.to_lowercase()),
            (Pattern::Wildcard(w), _) => wildcard_regex(w),
        };
        let automaton = tantivy_fst::Regex::new(&regex).map_err(|e| {
            SearchError::Query(format!("`{shown}`: not a valid regular expression: {e}"))
        })?;
        let mut terms = std::collections::BTreeSet::new();
        for p in self.parts.all().iter() {
            for seg in p.reader.searcher().segment_readers() {
                let inv = seg.inverted_index(field)?;
                let mut stream = inv
                    .terms()
                    .search(&automaton)
                    .into_stream()
                    .map_err(tantivy::TantivyError::from)?;
                while stream.advance() {
                    if terms.len() >= MAX_EXPANSION && !terms.contains(stream.key()) {
                        return Err(SearchError::Query(format!(
                            "`{shown}` matches more than {MAX_EXPANSION} different terms of \
                             `{name}`; make it more specific"
                        )));
                    }
                    terms.insert(stream.key().to_vec());
                }
            }
        }
        let terms = terms
            .into_iter()
            .filter_map(|t| String::from_utf8(t).ok())
            .map(|t| Term::from_field_text(field, &t));
        Ok(Box::new(TermSetQuery::new(terms)))
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
        if !b.clauses().is_empty() && b.clauses().iter().all(|(o, _)| *o == Occur::MustNot) {
            // A group of exclusions only (`a OR NOT b`, `a OR (NOT b)`) is everything but
            // them, as in Kibana's query language; Tantivy's would match nothing.
            clauses.push((Occur::Must, Box::new(AllQuery)));
        }
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

/// What a multi-term value asks for.
#[derive(Debug)]
enum Pattern {
    /// `*` any characters, `?` one, as Lucene's wildcard terms.
    Wildcard(String),
    /// A regular expression that a whole term must match, as Lucene's `/regex/` terms.
    Regex(String),
}

/// A multi-term value at the start of `v`: `/regex/` (a `\/` inside does not end it), or an
/// unquoted term with `*` or `?` (other than `*` alone, "present"), with the bytes it spans.
/// An unquoted term with `~` (Lucene's fuzzy search, which is not supported) is an error
/// rather than another query.
fn multi_term(v: &str) -> Result<Option<(Pattern, usize)>, SearchError> {
    if let Some(rest) = v.strip_prefix('/') {
        let mut escaped = false;
        for (i, c) in rest.char_indices() {
            match c {
                '\\' => escaped = !escaped,
                '/' if !escaped => {
                    return Ok(Some((Pattern::Regex(rest[..i].to_owned()), i + 2)));
                }
                _ => escaped = false,
            }
        }
        return Err(SearchError::Query(format!(
            "`{}`: a regular expression must end with `/`",
            v.chars().take(40).collect::<String>()
        )));
    }
    if v.starts_with('"') {
        return Ok(None);
    }
    let end = v
        .find(|c: char| c.is_whitespace() || c == ')')
        .unwrap_or(v.len());
    let term = &v[..end];
    if term.contains('~') {
        return Err(SearchError::Query(format!(
            "`{term}`: fuzzy terms (`~`) are not supported; use a wildcard (`*`, `?`) or a \
             /regex/"
        )));
    }
    // `*` alone is "present", and a range's open bound (`[1 TO *]`) is no wildcard.
    if term == "*" || !term.contains(['*', '?']) || term.contains(['[', ']', '{', '}']) {
        return Ok(None);
    }
    Ok(Some((Pattern::Wildcard(term.to_owned()), end)))
}

/// The whole-term regular expression of a wildcard term.
fn wildcard_regex(w: &str) -> String {
    let mut out = String::with_capacity(w.len() + 8);
    for c in w.chars() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            // Everything the regex syntax treats specially, taken literally.
            '\\' | '.' | '+' | '(' | ')' | '|' | '[' | ']' | '{' | '}' | '^' | '$' | '#' | '&'
            | '-' | '~' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
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
        let d = vigil_schema::config::parse_duration(rest)?;
        let d = chrono::Duration::from_std(d).map_err(|e| e.to_string())?;
        return now
            .checked_sub_signed(d)
            .ok_or_else(|| format!("`{s}` is out of range"));
    }
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("`{s}` is not RFC 3339 or now-<duration>: {e}"))
}
