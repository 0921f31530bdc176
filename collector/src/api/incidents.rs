//! The incident queue: `GET /api/v1/incidents?status=&severity=&customer=&limit=`,
//! `GET /api/v1/incidents/{id}` (with its timeline) and
//! `POST /api/v1/incidents/{id}/{ack,assign,comment,escalate,resolve,retract}`; for the desk,
//! `POST /api/v1/incidents` (taken by hand), `POST /api/v1/incidents/{id}/merge`
//! (`{"incidents": [ids]}` into this one) and `POST /api/v1/incidents/{id}/split`
//! (`{"alerts": [event ids], "title"}` off into a new one).
//!
//! The actor of an action is the `X-Vigil-Actor` header (the CLI sends the login name), or
//! `api` without one.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use serde::Serialize;

use super::{ApiError, AppState};
use crate::incidents::desk::Manual;
use crate::incidents::{Action, Filter, Incident};

/// Longest actor name kept.
const MAX_ACTOR: usize = 128;

#[derive(Serialize)]
pub struct Queue {
    pub incidents: Vec<Incident>,
    /// How many match the filter in all (beyond this page too).
    pub total: i64,
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
        total: s.0.incidents.count(&filter).await?,
    }))
}

pub fn incident_id(raw: &str) -> Result<i64, ApiError> {
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

/// `body` as JSON of `T`, or a 400 that says what is wrong with it.
pub fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request("bad_body", e.to_string()))
}

/// Refuses a manual incident naming a customer or an asset the directory does not know.
pub fn known(s: &AppState, m: &Manual) -> Result<(), ApiError> {
    let unknown = |what: &str, id: &str| {
        ApiError::bad_request("bad_incident", format!("no {what} {:?}", id.trim()))
    };
    if let Some(c) = m.customer.as_deref().filter(|c| !c.trim().is_empty())
        && s.0.directory.customer_source(c.trim()).is_none()
    {
        return Err(unknown("customer", c));
    }
    if let Some(a) = m
        .assets
        .iter()
        .find(|a| s.0.directory.asset_source(a.trim()).is_none())
    {
        return Err(unknown("asset", a));
    }
    Ok(())
}

pub async fn create(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(axum::http::StatusCode, Json<Incident>), ApiError> {
    s.0.check_reader(&headers)?;
    let m: Manual = json_body(&body)?;
    known(&s, &m)?;
    let actor = actor(&headers)?;
    let incident = s.0.incidents.open_manual(&m, &actor).await?;
    tracing::info!(incident = incident.id, %actor, "incident taken by hand");
    Ok((axum::http::StatusCode::CREATED, Json(incident)))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeBody {
    incidents: Vec<i64>,
}

pub async fn merge(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Incident>, ApiError> {
    s.0.check_reader(&headers)?;
    let id = incident_id(&id)?;
    let b: MergeBody = json_body(&body)?;
    let actor = actor(&headers)?;
    let incident = s.0.incidents.merge(id, &b.incidents, &actor).await?;
    tracing::info!(incident = id, merged = ?b.incidents, %actor, "incidents merged");
    Ok(Json(incident))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SplitBody {
    alerts: Vec<String>,
    title: Option<String>,
}

pub async fn split(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<(axum::http::StatusCode, Json<Incident>), ApiError> {
    s.0.check_reader(&headers)?;
    let id = incident_id(&id)?;
    let b: SplitBody = json_body(&body)?;
    let actor = actor(&headers)?;
    let new =
        s.0.incidents
            .split(id, &b.alerts, b.title.as_deref(), &actor)
            .await?;
    tracing::info!(incident = id, new = new.id, %actor, "incident split");
    Ok((axum::http::StatusCode::CREATED, Json(new)))
}
