//! Who is on call: `GET /api/v1/oncall` (`?at=` an RFC 3339 time, default now: every rota's
//! levels with the person holding each, the shift or override, and its end), and overrides:
//! `GET /api/v1/oncall/overrides`, `POST /api/v1/oncall/overrides` (`{"rota", "level"?,
//! "person", "starts_at"?, "ends_at" | "duration", "created_by", "comment"?}`, answered 201)
//! and `DELETE /api/v1/oncall/overrides/{id}` (ends it now).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::oncall::{self, NewOverride, Override, RotaNow};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct At {
    pub at: Option<String>,
}

#[derive(Serialize)]
pub struct OnCallNow {
    pub at: DateTime<Utc>,
    pub rotas: Vec<RotaNow>,
}

#[derive(Serialize)]
pub struct Overrides {
    pub overrides: Vec<Override>,
}

pub async fn now(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<At>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<OnCallNow>, ApiError> {
    s.0.check_reader(&headers)?;
    let Query(q) = q.map_err(|e| ApiError::bad_request("bad_parameter", e.body_text()))?;
    let at = match q.at {
        Some(t) => DateTime::parse_from_rfc3339(&t)
            .map_err(|e| {
                ApiError::bad_request(
                    "bad_parameter",
                    format!("at {t:?} is not an RFC 3339 time: {e}"),
                )
            })?
            .with_timezone(&Utc),
        None => Utc::now(),
    };
    let overrides = oncall::active(s.0.incidents.pool(), at).await?;
    Ok(Json(OnCallNow {
        at,
        rotas: s.0.oncall.now(at, &overrides),
    }))
}

pub async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Overrides>, ApiError> {
    s.0.check_reader(&headers)?;
    let overrides = oncall::list(s.0.incidents.pool(), Utc::now()).await?;
    Ok(Json(Overrides { overrides }))
}

pub async fn create(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<NewOverride>, JsonRejection>,
) -> Result<(StatusCode, Json<Override>), ApiError> {
    s.0.check_reader(&headers)?;
    let Json(new) = body.map_err(|e| ApiError::bad_request("bad_request", e.body_text()))?;
    match s
        .0
        .oncall
        .create_override(s.0.incidents.pool(), &new, Utc::now())
        .await?
    {
        Ok(made) => {
            tracing::info!(id = made.id, rota = %made.rota, level = made.level,
                person = %made.person, by = %made.created_by, "on-call override made");
            Ok((StatusCode::CREATED, Json(made)))
        }
        Err(m) => Err(ApiError::bad_request("bad_override", m)),
    }
}

pub async fn end(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Override>, ApiError> {
    s.0.check_reader(&headers)?;
    let id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request("bad_parameter", format!("{id:?} is not an override id"))
    })?;
    oncall::end(s.0.incidents.pool(), id, Utc::now())
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no override {id}")))
}
