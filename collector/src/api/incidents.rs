//! The incident queue: `GET /api/v1/incidents?status=&severity=&customer=&limit=`,
//! `GET /api/v1/incidents/{id}` (with its timeline) and
//! `POST /api/v1/incidents/{id}/{ack,assign,comment,escalate,resolve,retract}`.
//!
//! The actor of an action is the `X-Vigil-Actor` header (the CLI sends the login name), or
//! `api` without one.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::Serialize;

use super::{ApiError, AppState};
use crate::incidents::{Action, Filter, Incident};

/// Longest actor name kept.
const MAX_ACTOR: usize = 128;

#[derive(Serialize)]
pub struct Queue {
    pub incidents: Vec<Incident>,
}

pub async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
    filter: Result<Query<Filter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Queue>, ApiError> {
    s.0.check_reader(&headers)?;
    let Query(filter) =
        filter.map_err(|e| ApiError::bad_request("bad_parameter", e.body_text()))?;
    Ok(Json(Queue {
        incidents: s.0.incidents.list(&filter).await?,
    }))
}

fn incident_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::bad_request("bad_parameter", format!("{raw:?} is not an incident id"))
    })
}

pub async fn show(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Incident>, ApiError> {
    s.0.check_reader(&headers)?;
    Ok(Json(s.0.incidents.get(incident_id(&id)?).await?))
}

/// Who acts: the `X-Vigil-Actor` header, or `api`.
pub fn actor(headers: &HeaderMap) -> Result<String, ApiError> {
    Ok(match headers.get("x-vigil-actor") {
        None => "api".to_owned(),
        Some(v) => v
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|a| !a.is_empty() && a.len() <= MAX_ACTOR)
            .ok_or_else(|| {
                ApiError::bad_request(
                    "bad_parameter",
                    format!("X-Vigil-Actor must be 1 to {MAX_ACTOR} visible ASCII characters"),
                )
            })?
            .to_owned(),
    })
}

pub async fn act(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((id, action)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Incident>, ApiError> {
    s.0.check_reader(&headers)?;
    let id = incident_id(&id)?;
    let action = Action::parse(&action, &body)?;
    let actor = actor(&headers)?;
    let incident = s.0.incidents.act(id, &action, &actor).await?;
    s.0.metrics
        .incidents_actions
        .get_or_create(&vec![("action", action.name().to_owned())])
        .inc();
    tracing::info!(incident = id, action = action.name(), %actor, status = incident.status.as_str(), "incident action");
    Ok(Json(incident))
}
