//! Assets: `GET /api/v1/assets` (`?customer=`), `GET /api/v1/assets/{id}` (with its
//! changes), `POST /api/v1/assets` (201), `PUT /api/v1/assets/{id}`, `DELETE
//! /api/v1/assets/{id}`, and `GET /api/v1/assets/changes` (the newest 1000). Every change is
//! recorded with its actor (`X-Vigil-Actor`) and exported as configured. Assets defined in the
//! configuration file are read-only here (409 saying so).

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::reference::assets::{self, Asset, AssetChange};
use crate::reference::directory::Source;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetFilter {
    pub customer: Option<String>,
}

#[derive(Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub asset: Asset,
    pub source: Source,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<Vec<AssetChange>>,
}

#[derive(Serialize)]
pub struct AssetList {
    pub assets: Vec<Listed>,
}

#[derive(Serialize)]
pub struct Changes {
    pub changes: Vec<AssetChange>,
}

fn listed(s: &AppState, a: &Asset) -> Listed {
    Listed {
        asset: a.clone(),
        source: s.0.directory.asset_source(&a.id).unwrap_or(Source::Api),
        changes: None,
    }
}

pub async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<AssetFilter>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AssetList>, ApiError> {
    s.0.check_reader(&headers)?;
    let Query(q) = q.map_err(|e| ApiError::bad_request("bad_parameter", e.body_text()))?;
    let all = s.0.directory.assets();
    let assets = all
        .all()
        .filter(|a| q.customer.as_ref().is_none_or(|c| &a.customer == c))
        .map(|a| listed(&s, a))
        .collect();
    Ok(Json(AssetList { assets }))
}

pub async fn show(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Listed>, ApiError> {
    s.0.check_reader(&headers)?;
    let all = s.0.directory.assets();
    let a = all
        .get(&id)
        .ok_or_else(|| ApiError::NotFound(format!("no asset {id:?}")))?;
    let mut out = listed(&s, a);
    out.changes = Some(assets::changes(s.0.incidents.pool(), Some(&id), 100).await?);
    Ok(Json(out))
}

pub async fn changes(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Changes>, ApiError> {
    s.0.check_reader(&headers)?;
    Ok(Json(Changes {
        changes: assets::changes(s.0.incidents.pool(), None, 1000).await?,
    }))
}

fn body(b: Result<Json<Asset>, JsonRejection>) -> Result<Asset, ApiError> {
    b.map(|Json(v)| v)
        .map_err(|e| ApiError::bad_request("bad_asset", e.body_text()))
}

pub async fn create(
    State(s): State<AppState>,
    headers: HeaderMap,
    b: Result<Json<Asset>, JsonRejection>,
) -> Result<(StatusCode, Json<Listed>), ApiError> {
    s.0.check_reader(&headers)?;
    let actor = super::incidents::actor(&headers)?;
    let a = body(b)?;
    s.0.directory
        .put_asset(s.0.incidents.pool(), &a, None, &actor, Utc::now())
        .await
        .map_err(|e| ApiError::reference(e, "bad_asset"))?;
    tracing::info!(asset = %a.id, %actor, "asset created");
    Ok((StatusCode::CREATED, Json(listed(&s, &a))))
}

pub async fn replace(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    b: Result<Json<Asset>, JsonRejection>,
) -> Result<Json<Listed>, ApiError> {
    s.0.check_reader(&headers)?;
    let actor = super::incidents::actor(&headers)?;
    let a = body(b)?;
    s.0.directory
        .put_asset(s.0.incidents.pool(), &a, Some(&id), &actor, Utc::now())
        .await
        .map_err(|e| ApiError::reference(e, "bad_asset"))?;
    tracing::info!(asset = %a.id, %actor, "asset changed");
    Ok(Json(listed(&s, &a)))
}

pub async fn delete(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.0.check_reader(&headers)?;
    let actor = super::incidents::actor(&headers)?;
    s.0.directory
        .delete_asset(s.0.incidents.pool(), &id, &actor, Utc::now())
        .await
        .map_err(|e| ApiError::reference(e, "bad_asset"))?;
    tracing::info!(asset = %id, %actor, "asset deleted");
    Ok(StatusCode::NO_CONTENT)
}
