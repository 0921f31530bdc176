//! `GET /api/v1/aggregate?q=&from=&to=&terms=FIELD&size=N&sum=FIELD&histogram=INTERVAL&stats=FIELD`:
//! top values (ranked by the sum of `sum` when given), event counts over time, statistics.
//! `POST` takes the same parameters as a JSON object.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use serde::Deserialize;

use super::search::{Params, counted, range};
use super::{ApiError, AppState};
use crate::index::aggregate::{AggregateRequest, AggregateResult};

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateParams {
    pub q: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub terms: Option<String>,
    pub size: Option<usize>,
    pub sum: Option<String>,
    pub histogram: Option<String>,
    pub stats: Option<String>,
}

pub async fn aggregate(
    State(s): State<AppState>,
    headers: HeaderMap,
    params: Result<Params<AggregateParams>, ApiError>,
) -> Result<Json<AggregateResult>, ApiError> {
    s.0.metrics.aggregate_requests.inc();
    let start = std::time::Instant::now();
    let result = counted(&s, run(&s, &headers, params).await);
    crate::metrics::Metrics::time(&s.0.metrics.aggregate_duration, start);
    result
}

async fn run(
    s: &AppState,
    headers: &HeaderMap,
    params: Result<Params<AggregateParams>, ApiError>,
) -> Result<Json<AggregateResult>, ApiError> {
    s.0.check_reader(headers)?;
    let Params(p) = params?;
    let (from, to) = range(p.from, p.to)?;
    let histogram = p
        .histogram
        .map(|h| {
            vigil_schema::config::parse_duration(&h)
                .map_err(|e| ApiError::bad_request("bad_parameter", format!("histogram: {e}")))
        })
        .transpose()?;
    let req = AggregateRequest {
        q: p.q.unwrap_or_default(),
        from,
        to,
        terms: p.terms,
        size: p.size.unwrap_or(10),
        sum: p.sum,
        histogram,
        stats: p.stats,
    };
    let searcher = s.0.searcher.clone();
    let result = tokio::task::spawn_blocking(move || searcher.aggregate(&req))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(result?))
}
