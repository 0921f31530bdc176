//! Silences and exclusions, the same shape: `GET /api/v1/silences`, `POST /api/v1/silences`
//! (`{"matchers": [...], "starts_at"?, "ends_at" | "duration", "created_by", "comment"}`,
//! answered 201) and `DELETE /api/v1/silences/{id}` (expires it now); the same under
//! `/api/v1/exclusions`, where `comment` is the decision's reason.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use serde::Serialize;

use super::{ApiError, AppState};
use crate::notify::silence::{self, Mute, NewSilence, Silence};

#[derive(Serialize)]
pub struct Silences {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silences: Option<Vec<Silence>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclusions: Option<Vec<Silence>>,
}

async fn list(s: AppState, headers: HeaderMap, mute: Mute) -> Result<Json<Silences>, ApiError> {
    s.0.check_reader(&headers)?;
    let all = Some(silence::list(s.0.incidents.pool(), mute, Utc::now()).await?);
    Ok(Json(match mute {
        Mute::Silence => Silences {
            silences: all,
            exclusions: None,
        },
        Mute::Exclusion => Silences {
            silences: None,
            exclusions: all,
        },
    }))
}

async fn create(
    s: AppState,
    headers: HeaderMap,
    body: Result<Json<NewSilence>, JsonRejection>,
    mute: Mute,
) -> Result<(StatusCode, Json<Silence>), ApiError> {
    s.0.check_reader(&headers)?;
    let code = match mute {
        Mute::Silence => "bad_silence",
        Mute::Exclusion => "bad_exclusion",
    };
    let Json(new) = body.map_err(|e| ApiError::bad_request("bad_request", e.body_text()))?;
    match silence::create(s.0.incidents.pool(), mute, &new, Utc::now()).await? {
        Ok(made) => {
            tracing::info!(id = made.id, kind = mute.as_str(), by = %made.created_by, matchers = ?made.matchers, "made");
            Ok((StatusCode::CREATED, Json(made)))
        }
        Err(m) => Err(ApiError::bad_request(code, m)),
    }
}

async fn expire(
    s: AppState,
    headers: HeaderMap,
    id: String,
    mute: Mute,
) -> Result<Json<Silence>, ApiError> {
    s.0.check_reader(&headers)?;
    let id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request(
            "bad_parameter",
            format!("{id:?} is not a {} id", mute.as_str()),
        )
    })?;
    silence::expire(s.0.incidents.pool(), mute, id, Utc::now())
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no {} {id}", mute.as_str())))
}

pub async fn list_silences(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Silences>, ApiError> {
    list(s, headers, Mute::Silence).await
}

pub async fn create_silence(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<NewSilence>, JsonRejection>,
) -> Result<(StatusCode, Json<Silence>), ApiError> {
    create(s, headers, body, Mute::Silence).await
}

pub async fn expire_silence(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Silence>, ApiError> {
    expire(s, headers, id, Mute::Silence).await
}

pub async fn list_exclusions(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Silences>, ApiError> {
    list(s, headers, Mute::Exclusion).await
}

pub async fn create_exclusion(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<NewSilence>, JsonRejection>,
) -> Result<(StatusCode, Json<Silence>), ApiError> {
    create(s, headers, body, Mute::Exclusion).await
}

pub async fn expire_exclusion(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Silence>, ApiError> {
    expire(s, headers, id, Mute::Exclusion).await
}
