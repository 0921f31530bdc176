//! Agents: `GET /api/v1/agents` (every configured agent, its state, version, last report,
//! throughput and spool backlog) and `POST /api/v1/agents/report` (an agent, with its token).

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;

use super::{ApiError, AppState};
use crate::uptime::agents::{self, Agent, Report};

#[derive(Serialize)]
pub struct Listed {
    pub agents: Vec<Agent>,
}

pub async fn list(State(s): State<AppState>, headers: HeaderMap) -> Result<Json<Listed>, ApiError> {
    s.0.check_reader(&headers)?;
    let agents = agents::list(&s.0.heartbeats, &s.0.agent_limits)
        .await
        .map_err(|e| ApiError::reference(e, "bad_report"))?;
    Ok(Json(Listed { agents }))
}

pub async fn report(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<Report>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let id = s.0.agent_for(&headers)?.to_owned();
    let Json(r) = body.map_err(|e| ApiError::bad_request("bad_report", e.body_text()))?;
    let limit =
        s.0.agent_limits
            .iter()
            .find(|(a, _)| *a == id)
            .map(|(_, l)| *l)
            .unwrap_or(std::time::Duration::from_secs(60));
    agents::report(&s.0.heartbeats, &s.0.pinger, &id, limit, &r)
        .await
        .map_err(|e| match e {
            crate::reference::directory::RefError::Conflict(m) => ApiError::Forbidden(m),
            e => ApiError::reference(e, "bad_report"),
        })?;
    Ok(StatusCode::NO_CONTENT)
}
