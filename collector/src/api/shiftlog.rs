//! The shift log, hand-over notes between shifts: `GET /api/v1/shiftlog?limit=` (newest
//! first) and `POST /api/v1/shiftlog` (`{"text"}`, by the `X-Vigil-Actor`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::incidents::{actor, json_body};
use super::{ApiError, AppState};
use crate::incidents::desk::ShiftNote;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    limit: Option<usize>,
}

#[derive(Serialize)]
pub struct Log {
    pub notes: Vec<ShiftNote>,
}

pub async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Log>, ApiError> {
    s.0.check_reader(&headers)?;
    let Query(p) = params.map_err(|e| ApiError::bad_request("bad_parameter", e.body_text()))?;
    Ok(Json(Log {
        notes: s.0.incidents.shift_log(p.limit.unwrap_or(50)).await?,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    text: String,
}

pub async fn add(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<ShiftNote>), ApiError> {
    s.0.check_reader(&headers)?;
    let b: Body = json_body(&body)?;
    let note = s.0.incidents.shift_note(&actor(&headers)?, &b.text).await?;
    Ok((StatusCode::CREATED, Json(note)))
}
