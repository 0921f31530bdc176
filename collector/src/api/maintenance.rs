//! Maintenance windows: `GET /api/v1/maintenance`, `POST /api/v1/maintenance`
//! (`{"title", "ticket"?, "customers"? , "assets"?, "starts_at", "ends_at" | "duration",
//! "repeat_every"?, "repeat_until"?, "created_by"}`, answered 201) and `DELETE
//! /api/v1/maintenance/{id}` (ends it now, and stops it recurring).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use serde::Serialize;

use super::{ApiError, AppState};
use crate::notify::maintenance::{self, Maintenance, NewMaintenance};

#[derive(Serialize)]
pub struct Windows {
    pub maintenance: Vec<Maintenance>,
}

pub async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Windows>, ApiError> {
    s.0.check_reader(&headers)?;
    Ok(Json(Windows {
        maintenance: maintenance::list(s.0.incidents.pool(), Utc::now()).await?,
    }))
}

pub async fn create(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<NewMaintenance>, JsonRejection>,
) -> Result<(StatusCode, Json<Maintenance>), ApiError> {
    s.0.check_reader(&headers)?;
    let Json(new) = body.map_err(|e| ApiError::bad_request("bad_request", e.body_text()))?;
    let store = &s.0.incidents;
    match maintenance::create(
        store.pool(),
        store.notifier().map(|n| n.as_ref()),
        &s.0.directory,
        &new,
        Utc::now(),
    )
    .await?
    {
        Ok(m) => {
            store.wake().notify_one();
            tracing::info!(id = m.id, title = %m.title, customers = ?m.customers, by = %m.created_by, "maintenance planned");
            Ok((StatusCode::CREATED, Json(m)))
        }
        Err(e) => Err(ApiError::bad_request("bad_maintenance", e)),
    }
}

pub async fn end(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Maintenance>, ApiError> {
    s.0.check_reader(&headers)?;
    let id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request("bad_parameter", format!("{id:?} is not a maintenance id"))
    })?;
    maintenance::end(s.0.incidents.pool(), id, Utc::now())
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no maintenance window {id}")))
}
