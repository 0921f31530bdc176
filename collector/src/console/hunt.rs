//! The hunt: a query over a time range, with the hits over time, the events, the top values
//! of a chosen field (each a click away from being a filter or an exclusion), the search as
//! a `vigil search` command and as an API address, and the results exported as NDJSON or
//! CSV.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::render::{page_with, problem};
use super::{Login, Session, api_headers};
use crate::api::aggregate::{AggregateParams, aggregate};
use crate::api::search::{Params, SearchParams, search};
use crate::api::{ApiError, AppState};

#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct HuntQuery {
    pub q: Option<String>,
    /// `now-1h` style or RFC 3339; default the last 24 hours.
    pub from: Option<String>,
    pub to: Option<String>,
    /// The field whose top values the side panel shows.
    pub field: Option<String>,
    pub limit: Option<usize>,
}

/// Ranges the picker offers.
const RANGES: &[(&str, &str)] = &[
    ("now-15m", "15 minutes"),
    ("now-1h", "1 hour"),
    ("now-24h", "24 hours"),
    ("now-7d", "7 days"),
    ("now-30d", "30 days"),
];

/// How far a hunt that found nothing looks for events of its query elsewhere.
const WIDER: &str = "now-30d";

/// Bars of the histogram, about.
const BARS: i64 = 60;
/// Most events one export writes.
pub const MAX_EXPORT: usize = 10_000;

fn blank(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// A histogram interval that gives about [`BARS`] bars over the range.
fn interval(from: &str, to: Option<&str>) -> String {
    let now = chrono::Utc::now();
    let parse = |t: &str| crate::index::search::parse_time(t, now).ok();
    let start = parse(from).unwrap_or(now - chrono::Duration::hours(24));
    let end = to.and_then(parse).unwrap_or(now);
    let secs = (end - start).num_seconds().max(60) / BARS;
    let nice = [
        1,
        5,
        10,
        30,
        60,
        300,
        600,
        1800,
        3600,
        3 * 3600,
        6 * 3600,
        12 * 3600,
        86_400,
    ];
    let step = nice.iter().copied().find(|n| *n >= secs).unwrap_or(86_400);
    format!("{step}s")
}

/// A value as a quoted term of the query language.
pub(super) fn quoted(v: &str) -> String {
    format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Single-quoted for a POSIX shell.
fn shell(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

pub async fn page(
    State(s): State<AppState>,
    Login(who): Login,
    q: Result<Query<HuntQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return problem(StatusCode::BAD_REQUEST, Some(&who), &e.body_text()),
    };
    hunt(&s, &who, q).await
}

async fn hunt(s: &AppState, who: &Session, q: HuntQuery) -> Response {
    let query = blank(&q.q).unwrap_or_default();
    let from = blank(&q.from).unwrap_or_else(|| "now-24h".into());
    let to = blank(&q.to);
    let field = blank(&q.field).unwrap_or_else(|| "host.name".into());
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let headers = api_headers(s, who);
    // The events, the histogram and the top values at once: each is a blocking search of
    // its own, and the machine's cores take them side by side.
    let agg =
        |params: AggregateParams| aggregate(State(s.clone()), headers.clone(), Ok(Params(params)));
    let (found, hist, terms) = tokio::join!(
        search(
            State(s.clone()),
            headers.clone(),
            Ok(Params(SearchParams {
                q: Some(query.clone()),
                from: Some(from.clone()),
                to: to.clone(),
                limit: Some(limit),
                offset: None,
            })),
        ),
        agg(AggregateParams {
            q: Some(query.clone()),
            from: Some(from.clone()),
            to: to.clone(),
            histogram: Some(interval(&from, to.as_deref())),
            ..AggregateParams::default()
        }),
        agg(AggregateParams {
            q: Some(query.clone()),
            from: Some(from.clone()),
            to: to.clone(),
            terms: Some(field.clone()),
            size: Some(10),
            ..AggregateParams::default()
        }),
    );
    let (result, error, position) = match found {
        Ok(Json(r)) => (Some(r), None, None),
        Err(e) => {
            let message = e.to_string();
            // The parser says where: "at position N".
            let position = message
                .split("at position ")
                .nth(1)
                .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|n| n.parse::<usize>().ok());
            (None, Some(message), position)
        }
    };
    let mut histogram = None;
    let mut top = None;
    let mut outside = None;
    if let Some(r) = &result {
        if let Ok(Json(h)) = hist {
            histogram = h.histogram;
        }
        if let Ok(Json(t)) = terms {
            top = t.terms;
        }
        // Nothing in the range: are there any outside it? Counted within a bound, the last
        // [`WIDER`], however far back the index goes.
        if r.total == 0 && !query.is_empty() {
            let all = search(
                State(s.clone()),
                headers.clone(),
                Ok(Params(SearchParams {
                    q: Some(query.clone()),
                    from: Some(WIDER.into()),
                    to: None,
                    limit: Some(1),
                    offset: None,
                })),
            )
            .await;
            if let Ok(Json(a)) = all
                && a.total > 0
            {
                outside = Some(a.total);
            }
        }
    }
    // Each top value, with the hunts that keep only it or leave it out.
    let link = |q: &str| {
        format!(
            "/hunt?{}",
            serde_urlencoded::to_string([
                ("q", q),
                ("from", from.as_str()),
                ("to", to.as_deref().unwrap_or("")),
                ("field", field.as_str()),
            ])
            .unwrap_or_default()
        )
    };
    let values: Vec<minijinja::Value> =
        top.as_ref()
            .map(|t| {
                t.buckets
                .iter()
                .map(|b| {
                    let key = match &b.key {
                        serde_json::Value::String(s) => s.clone(),
                        v => v.to_string(),
                    };
                    let term = format!("{field}:{}", quoted(&key));
                    let (plus, minus) = if query.trim().is_empty() {
                        (term.clone(), format!("NOT {term}"))
                    } else {
                        (format!("({query}) AND {term}"), format!("({query}) AND NOT {term}"))
                    };
                    context! { key, count => b.count, plus => link(&plus), minus => link(&minus) }
                })
                .collect()
            })
            .unwrap_or_default();
    let max_bar = histogram
        .as_ref()
        .and_then(|h| h.buckets.iter().map(|b| b.count).max())
        .unwrap_or(0);
    let api = format!(
        "/api/v1/search?{}",
        serde_urlencoded::to_string([
            ("q", query.as_str()),
            ("from", from.as_str()),
            ("to", to.as_deref().unwrap_or("")),
        ])
        .unwrap_or_default()
        .trim_end_matches("&to=")
    );
    let mut cli = format!("vigil search {}", shell(&query));
    if from.starts_with("now-") && to.is_none() {
        cli.push_str(&format!(" --since {}", &from[4..]));
    } else {
        cli.push_str(&format!(" --from {}", shell(&from)));
        if let Some(t) = &to {
            cli.push_str(&format!(" --to {}", shell(t)));
        }
    }
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    page_with(
        status,
        "hunt.html",
        Some(who),
        "hunt",
        context! {
            query, from, to, field, limit, error, outside, wider => WIDER,
            caret => position.map(|p| " ".repeat(p.min(query.len()))),
            total => result.as_ref().map(|r| r.total),
            hits => result.map(|r| r.hits).unwrap_or_default(),
            histogram, max_bar, values, other => top.map(|t| t.other_count), api, cli,
            ranges => RANGES.iter().map(|(v, l)| context! { value => *v, label => *l }).collect::<Vec<_>>(),
        },
    )
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ExportQuery {
    pub q: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    /// `ndjson` (default) or `csv`.
    pub format: Option<String>,
}

/// The hunt's events (at most [`MAX_EXPORT`], newest first) as a file.
pub async fn export(
    State(s): State<AppState>,
    Login(who): Login,
    q: Result<Query<ExportQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return problem(StatusCode::BAD_REQUEST, Some(&who), &e.body_text()),
    };
    let format = q.format.as_deref().unwrap_or("ndjson");
    if format != "ndjson" && format != "csv" {
        return super::api_problem(
            &who,
            ApiError::bad_request("bad_parameter", "format is ndjson or csv"),
        );
    }
    let found = search(
        State(s.clone()),
        api_headers(&s, &who),
        Ok(Params(SearchParams {
            q: q.q.clone(),
            from: Some(blank(&q.from).unwrap_or_else(|| "now-24h".into())),
            to: blank(&q.to),
            limit: Some(MAX_EXPORT),
            offset: None,
        })),
    )
    .await;
    let hits = match found {
        Ok(Json(r)) => r.hits,
        Err(e) => return super::api_problem(&who, e),
    };
    let (body, kind) = if format == "csv" {
        (csv(&hits), "text/csv; charset=utf-8")
    } else {
        let mut out = String::new();
        for h in &hits {
            out.push_str(&h.to_string());
            out.push('\n');
        }
        (out, "application/x-ndjson")
    };
    (
        [
            (header::CONTENT_TYPE, kind.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"vigil-hunt.{format}\""),
            ),
        ],
        body,
    )
        .into_response()
}

/// Most columns a CSV export has (the first fields by name).
const MAX_COLUMNS: usize = 100;

/// `hits` as CSV: a column per field any of them has (sorted, `@timestamp` first), values as
/// text (lists and objects as JSON).
fn csv(hits: &[serde_json::Value]) -> String {
    let mut columns: Vec<String> = hits
        .iter()
        .filter_map(|h| h.as_object())
        .flat_map(|o| o.keys().cloned())
        .collect();
    columns.sort_by(|a, b| (a != "@timestamp", a).cmp(&(b != "@timestamp", b)));
    columns.dedup();
    columns.truncate(MAX_COLUMNS);
    let mut w = csv::Writer::from_writer(Vec::new());
    let _ = w.write_record(&columns);
    for h in hits {
        let row: Vec<String> = columns
            .iter()
            .map(|c| match h.get(c) {
                None | Some(serde_json::Value::Null) => String::new(),
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
            })
            .collect();
        let _ = w.write_record(&row);
    }
    String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_a_column_per_field_and_quotes_what_needs_it() {
        let hits = vec![
            serde_json::json!({"@timestamp": "t1", "message": "a, \"b\"", "n": 3}),
            serde_json::json!({"@timestamp": "t2", "host.name": "h"}),
        ];
        assert_eq!(
            csv(&hits),
            "@timestamp,host.name,message,n\nt1,,\"a, \"\"b\"\"\",3\nt2,h,,\n"
        );
    }

    #[test]
    fn histogram_intervals_give_about_sixty_bars() {
        assert_eq!(interval("now-1h", None), "60s");
        assert_eq!(interval("now-24h", None), "1800s");
        assert_eq!(interval("now-15m", None), "30s");
    }

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(shell("it's"), "'it'\\''s'");
    }
}
