//! Silences: `GET /api/v1/silences`, `POST /api/v1/silences`
//! (`{"matchers": [...], "starts_at"?, "ends_at" | "duration", "created_by", "comment"}`,
//! answered 201 with the silence) and `DELETE /api/v1/silences/{id}` (expires it now).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use serde::Serialize;

use super::{ApiError, AppState};
use crate::notify::silence::{self, NewSilence, Silence};

#[derive(Serialize)]
pub struct Silences {
    pub silences: Vec<Silence>,
}

pub async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Silences>, ApiError> {
    s.0.check_reader(&headers)?;
    let silences = silence::list(s.0.incidents.pool(), Utc::now()).await?;
    Ok(Json(Silences { silences }))
}

pub async fn create(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<NewSilence>, JsonRejection>,
) -> Result<(StatusCode, Json<Silence>), ApiError> {
    s.0.check_reader(&headers)?;
    let Json(new) = body.map_err(|e| ApiError::bad_request("bad_request", e.body_text()))?;
    match silence::create(s.0.incidents.pool(), &new, Utc::now()).await? {
        Ok(made) => {
            tracing::info!(id = made.id, by = %made.created_by, matchers = ?made.matchers, "silence created");
            Ok((StatusCode::CREATED, Json(made)))
        }
        Err(m) => Err(ApiError::bad_request("bad_silence", m)),
    }
}

pub async fn expire(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Silence>, ApiError> {
    s.0.check_reader(&headers)?;
    let id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request("bad_parameter", format!("{id:?} is not a silence id"))
    })?;
    silence::expire(s.0.incidents.pool(), id, Utc::now())
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no silence {id}")))
}
