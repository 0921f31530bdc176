//! `GET /api/v1/search?q=&from=&to=&limit=&offset=`: `{"total": N, "hits": [event, ...]}`,
//! newest first. `POST` takes the same parameters as a JSON object, for queries too long for
//! a URL (a few hundred addresses OR'ed together).

use axum::Json;
use axum::extract::{FromRequest, Query, Request, State};
use axum::http::{HeaderMap, Method};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::{ApiError, AppState};
use crate::index::search::{SearchRequest, SearchResult, parse_time};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    pub q: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: Option<usize>,
    pub offset: Option<usize>,
}

/// Parameters from the query string (`GET`) or from a JSON object body (`POST`).
pub struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bad = |m: String| ApiError::bad_request("bad_parameter", m);
        if req.method() == Method::POST {
            let Json(v) = Json::<T>::from_request(req, state)
                .await
                .map_err(|e| bad(e.body_text()))?;
            return Ok(Params(v));
        }
        let Query(v) = Query::<T>::try_from_uri(req.uri()).map_err(|e| bad(e.body_text()))?;
        Ok(Params(v))
    }
}

pub async fn search(
    State(s): State<AppState>,
    headers: HeaderMap,
    params: Result<Params<SearchParams>, ApiError>,
) -> Result<Json<SearchResult>, ApiError> {
    s.0.metrics.search_requests.inc();
    let start = std::time::Instant::now();
    let result = counted(&s, run(&s, &headers, params).await);
    crate::metrics::Metrics::time(&s.0.metrics.search_duration, start);
    result
}

/// `result`, its error counted by code in `vigil_search_errors_total` (searches and
/// aggregations alike).
pub fn counted<T>(s: &AppState, result: Result<T, ApiError>) -> Result<T, ApiError> {
    if let Err(e) = &result {
        s.0.metrics
            .search_errors
            .get_or_create(&vec![("code", e.code().to_owned())])
            .inc();
    }
    result
}

async fn run(
    s: &AppState,
    headers: &HeaderMap,
    params: Result<Params<SearchParams>, ApiError>,
) -> Result<Json<SearchResult>, ApiError> {
    s.0.check_reader(headers)?;
    let Params(p) = params?;
    let (from, to) = range(p.from, p.to)?;
    let req = SearchRequest {
        q: p.q.unwrap_or_default(),
        from,
        to,
        limit: p.limit.unwrap_or(100),
        offset: p.offset.unwrap_or(0),
    };
    let searcher = s.0.searcher.clone();
    let result = tokio::task::spawn_blocking(move || searcher.search(&req))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(result?))
}

/// A time range; either end may be open.
pub type Range = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// `from` and `to` parameters: RFC 3339 or `now-<duration>`.
pub fn range(from: Option<String>, to: Option<String>) -> Result<Range, ApiError> {
    let now = Utc::now();
    let time = |v: Option<String>, name: &str| {
        v.map(|t| {
            parse_time(&t, now)
                .map_err(|e| ApiError::bad_request("bad_parameter", format!("{name}: {e}")))
        })
        .transpose()
    };
    Ok((time(from, "from")?, time(to, "to")?))
}
