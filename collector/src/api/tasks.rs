//! Operator call tasks: `GET /api/v1/tasks` (`?state=open|overdue|done`; default open and
//! overdue), `GET /api/v1/tasks/{id}`, and `POST /api/v1/tasks/{id}` with `{"outcome",
//! "answered_by"?, "note"?}` to record a call (the actor is `X-Vigil-Actor`); `reached` ends
//! the task.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::notify::task::{self, Attempt, STATES, Task, TaskError};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskFilter {
    pub state: Option<String>,
}

#[derive(Serialize)]
pub struct Tasks {
    pub tasks: Vec<Task>,
}

fn task_id(raw: &str) -> Result<i64, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::bad_request("bad_parameter", format!("{raw:?} is not a task id")))
}

pub async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<TaskFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Tasks>, ApiError> {
    s.0.check_reader(&headers)?;
    let Query(q) = q.map_err(|e| ApiError::bad_request("bad_parameter", e.body_text()))?;
    if let Some(st) = &q.state
        && !STATES.contains(&st.as_str())
    {
        return Err(ApiError::bad_request(
            "bad_parameter",
            format!("state {st:?} is not one of {}", STATES.join(", ")),
        ));
    }
    let tasks = task::list(s.0.incidents.pool(), q.state.as_deref()).await?;
    Ok(Json(Tasks { tasks }))
}

pub async fn show(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Task>, ApiError> {
    s.0.check_reader(&headers)?;
    let id = task_id(&id)?;
    task::get(s.0.incidents.pool(), id)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no call task {id}")))
}

pub async fn record(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<Attempt>, JsonRejection>,
) -> Result<Json<Task>, ApiError> {
    s.0.check_reader(&headers)?;
    let id = task_id(&id)?;
    let actor = super::incidents::actor(&headers)?;
    let Json(attempt) = body.map_err(|e| ApiError::bad_request("bad_request", e.body_text()))?;
    match task::record(s.0.incidents.pool(), id, &attempt, &actor, Utc::now()).await? {
        Ok(t) => {
            tracing::info!(task = id, incident = t.incident_id, outcome = %attempt.outcome, %actor, "call recorded");
            Ok(Json(t))
        }
        Err(e @ TaskError::NotFound(_)) => Err(ApiError::NotFound(e.to_string())),
        Err(e @ TaskError::Done(_)) => Err(ApiError::Conflict(e.to_string())),
        Err(TaskError::Invalid(m)) => Err(ApiError::bad_request("bad_call", m)),
    }
}
