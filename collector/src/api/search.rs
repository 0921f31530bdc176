//! `GET /api/v1/search?q=&from=&to=&limit=&offset=`: `{"total": N, "hits": [event, ...]}`,
//! newest first.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use serde::Deserialize;

use super::{ApiError, AppState};
use crate::index::search::{SearchError, SearchRequest, SearchResult, parse_time};

#[derive(Debug, Deserialize)]
pub struct SearchParams {
    q: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

pub async fn search(
    State(s): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<SearchResult>, ApiError> {
    s.0.metrics.search_requests.inc();
    let result = run(&s, &headers, params).await;
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
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Json<SearchResult>, ApiError> {
    s.0.check_reader(headers)?;
    let Query(p) = params.map_err(|e| ApiError::bad_request("bad_parameter", e.body_text()))?;
    let now = chrono::Utc::now();
    let time = |v: Option<String>, name: &str| {
        v.map(|t| {
            parse_time(&t, now)
                .map_err(|e| ApiError::bad_request("bad_parameter", format!("{name}: {e}")))
        })
        .transpose()
    };
    let req = SearchRequest {
        q: p.q.unwrap_or_default(),
        from: time(p.from, "from")?,
        to: time(p.to, "to")?,
        limit: p.limit.unwrap_or(100),
        offset: p.offset.unwrap_or(0),
    };
    let searcher = s.0.searcher.clone();
    let result = tokio::task::spawn_blocking(move || searcher.search(&req))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    result.map(Json).map_err(|e| match e {
        SearchError::Query(m) => ApiError::bad_request("bad_query", m),
        SearchError::Limit(m) => ApiError::bad_request("bad_parameter", m),
        SearchError::Index(e) => ApiError::Internal(e.to_string()),
    })
}
