//! Uptime checks: `GET/POST /api/v1/checks`, `GET/PUT/DELETE /api/v1/checks/{id}` (each with
//! its state by quorum), and `GET /api/v1/agents/checks` (an agent, with its token: the
//! checks it runs).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use serde::Serialize;
use vigil_schema::check::CheckList;

use super::{ApiError, AppState};
use crate::reference::directory::Source;
use crate::uptime::check::{self, Check};
use crate::uptime::quorum;

/// A check with where it is defined and its state.
#[derive(Serialize)]
pub struct Shown {
    #[serde(flatten)]
    pub check: Check,
    pub source: Source,
    #[serde(flatten)]
    pub state: Option<quorum::State>,
    /// Probe latency over the last 24 hours, from the probe events in the index (one check
    /// only: `GET /api/v1/checks/{id}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_24h: Option<Latency>,
}

/// Percentiles of `event.duration` of a check's probe events (approximate: 1 % relative).
#[derive(Debug, Serialize)]
pub struct Latency {
    pub probes: u64,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

/// The latency of `id`'s probes since `since`.
async fn latency(
    s: &AppState,
    id: &str,
    since: chrono::DateTime<Utc>,
) -> Result<Latency, ApiError> {
    let req = crate::index::aggregate::AggregateRequest {
        q: format!(
            "event.kind:probe AND monitor.id:\"{}\"",
            id.replace('"', "")
        ),
        from: Some(since),
        stats: Some(vigil_schema::fields::EVENT_DURATION.into()),
        ..Default::default()
    };
    let searcher = s.0.searcher.clone();
    let r = tokio::task::spawn_blocking(move || searcher.aggregate(&req))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let ms = |v: Option<f64>| v.map(|ns| (ns / 1e4).round() / 100.0);
    let stats = r.stats;
    let pct = |k: &str| ms(stats.as_ref().and_then(|s| s.percentiles.get(k)?.as_f64()));
    Ok(Latency {
        probes: stats.as_ref().map_or(0, |s| s.count),
        p50_ms: pct("50"),
        p90_ms: pct("90"),
        p99_ms: pct("99"),
        max_ms: ms(stats.as_ref().and_then(|s| s.max)),
    })
}

#[derive(Serialize)]
pub struct Listed {
    pub checks: Vec<Shown>,
}

fn bad(e: crate::reference::directory::RefError) -> ApiError {
    ApiError::reference(e, "bad_check")
}

async fn shown(s: &AppState, only: Option<&str>) -> Result<Vec<Shown>, ApiError> {
    let mut states = s.0.quorum.states().await?;
    Ok(s.0
        .quorum
        .checks
        .get()
        .list
        .iter()
        .filter(|(c, _)| only.is_none_or(|id| c.id == id))
        .map(|(c, src)| Shown {
            check: c.clone(),
            source: *src,
            state: states.remove(&c.id),
            latency_24h: None,
        })
        .collect())
}

pub async fn list(State(s): State<AppState>, headers: HeaderMap) -> Result<Json<Listed>, ApiError> {
    s.0.check_reader(&headers)?;
    Ok(Json(Listed {
        checks: shown(&s, None).await?,
    }))
}

pub async fn show(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Shown>, ApiError> {
    s.0.check_reader(&headers)?;
    let mut one = shown(&s, Some(&id))
        .await?
        .pop()
        .ok_or_else(|| ApiError::NotFound(format!("no check {id:?}")))?;
    one.latency_24h = Some(latency(&s, &id, Utc::now() - chrono::Duration::hours(24)).await?);
    Ok(Json(one))
}

async fn put(
    s: &AppState,
    headers: &HeaderMap,
    body: Result<Json<Check>, JsonRejection>,
    replace: Option<&str>,
) -> Result<Shown, ApiError> {
    s.0.check_reader(headers)?;
    let actor = super::incidents::actor(headers)?;
    let Json(c) = body.map_err(|e| ApiError::bad_request("bad_check", e.body_text()))?;
    let agents: Vec<String> = s.0.agent_limits.iter().map(|(a, _)| a.clone()).collect();
    let c = c
        .checked(&agents, &s.0.directory.customers().get())
        .map_err(bad)?;
    let pool = s.0.incidents.pool();
    let current = s.0.quorum.checks.get();
    check::put(
        pool,
        &current,
        &c,
        replace,
        &actor,
        Utc::now().timestamp_millis(),
    )
    .await
    .map_err(bad)?;
    s.0.quorum
        .checks
        .set(check::load(pool, &s.0.configured_checks).await?);
    tracing::info!(check = %c.id, %actor, "check saved");
    shown(s, Some(&c.id))
        .await?
        .pop()
        .ok_or_else(|| ApiError::Internal("a saved check is missing".into()))
}

pub async fn create(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<Check>, JsonRejection>,
) -> Result<(StatusCode, Json<Shown>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(put(&s, &headers, body, None).await?),
    ))
}

pub async fn replace(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<Check>, JsonRejection>,
) -> Result<Json<Shown>, ApiError> {
    Ok(Json(put(&s, &headers, body, Some(&id)).await?))
}

pub async fn delete(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.0.check_reader(&headers)?;
    let actor = super::incidents::actor(&headers)?;
    let pool = s.0.incidents.pool();
    check::delete(pool, &s.0.quorum.checks.get(), &id)
        .await
        .map_err(bad)?;
    s.0.quorum
        .checks
        .set(check::load(pool, &s.0.configured_checks).await?);
    tracing::info!(check = %id, %actor, "check deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The checks the asking agent runs.
pub async fn for_agent(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<CheckList>, ApiError> {
    let agent = s.0.agent_for(&headers)?;
    Ok(Json(CheckList {
        checks: s
            .0
            .quorum
            .checks
            .get()
            .list
            .iter()
            .filter(|(c, _)| c.runs_on(agent))
            .map(|(c, _)| c.spec())
            .collect(),
    }))
}
