//! Heartbeats: `GET/POST /api/v1/heartbeats`, `GET/DELETE /api/v1/heartbeats/{uuid or slug}`,
//! and the pings, `GET|HEAD|POST /ping/...` (healthchecks.io's pinging API: no token, the
//! uuid or the ping key is the secret; answered `OK` in plain text).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState};
use crate::uptime::heartbeat::{Heartbeat, NewHeartbeat};
use crate::uptime::ping::{self, Kind, Outcome, Ping, Target};

#[derive(Serialize)]
pub struct Listed {
    pub heartbeats: Vec<Heartbeat>,
}

pub async fn list(State(s): State<AppState>, headers: HeaderMap) -> Result<Json<Listed>, ApiError> {
    s.0.check_reader(&headers)?;
    let heartbeats = s.0.heartbeats.list().await.map_err(bad)?;
    Ok(Json(Listed { heartbeats }))
}

fn bad(e: crate::reference::directory::RefError) -> ApiError {
    ApiError::reference(e, "bad_heartbeat")
}

pub async fn create(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<NewHeartbeat>, JsonRejection>,
) -> Result<(StatusCode, Json<Heartbeat>), ApiError> {
    s.0.check_reader(&headers)?;
    let actor = super::incidents::actor(&headers)?;
    let Json(new) = body.map_err(|e| ApiError::bad_request("bad_heartbeat", e.body_text()))?;
    let hb = s.0.heartbeats.create(&new, &actor).await.map_err(bad)?;
    Ok((StatusCode::CREATED, Json(hb)))
}

pub async fn show(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Heartbeat>, ApiError> {
    s.0.check_reader(&headers)?;
    Ok(Json(s.0.heartbeats.get(&id).await.map_err(bad)?))
}

pub async fn delete(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Heartbeat>, ApiError> {
    s.0.check_reader(&headers)?;
    let actor = super::incidents::actor(&headers)?;
    let hb = s.0.heartbeats.delete(&id).await.map_err(bad)?;
    tracing::info!(slug = %hb.slug, %actor, "heartbeat deleted through the API");
    Ok(Json(hb))
}

#[derive(Debug, Deserialize)]
pub struct PingQuery {
    /// A run id, pairing a `/start` with the success or failure that ends the run.
    rid: Option<String>,
    /// `1`: a slug URL creates its heartbeat on its first ping.
    create: Option<String>,
}

/// A plain-text answer, as healthchecks.io gives them.
fn text(status: StatusCode, body: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// `/ping/{a}[/{b}[/{c}]]`: `{uuid}[/{kind}]` or `{ping-key}/{slug}[/{kind}]`.
pub async fn ping_any(
    State(s): State<AppState>,
    method: Method,
    Path(segments): Path<Vec<String>>,
    query: Result<Query<PingQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !matches!(method, Method::GET | Method::HEAD | Method::POST) {
        return text(StatusCode::METHOD_NOT_ALLOWED, "use GET, HEAD or POST");
    }
    let Ok(Query(q)) = query else {
        return text(StatusCode::BAD_REQUEST, "invalid query string");
    };
    let hb = &s.0.heartbeats;
    let is_uuid = |x: &str| uuid::Uuid::parse_str(x).is_ok();
    let (target, kind) = match segments.as_slice() {
        [u] if is_uuid(u) => (Target::Uuid(u.to_lowercase()), None),
        [u, k] if is_uuid(u) => (Target::Uuid(u.to_lowercase()), Some(k.as_str())),
        [key, slug, rest @ ..] if rest.len() <= 1 => {
            if hb.urls.ping_key.as_deref() != Some(key.as_str()) {
                return text(StatusCode::NOT_FOUND, "not found");
            }
            let target = Target::Slug {
                slug: slug.clone(),
                create: q.create.as_deref() == Some("1"),
            };
            (target, rest.first().map(String::as_str))
        }
        _ => return text(StatusCode::NOT_FOUND, "not found"),
    };
    let Ok(kind) = Kind::parse(kind) else {
        return text(StatusCode::BAD_REQUEST, "invalid url format");
    };
    if q.rid.as_ref().is_some_and(|r| r.is_empty() || r.len() > 64) {
        return text(StatusCode::BAD_REQUEST, "rid must be 1 to 64 characters");
    }
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(200).collect());
    let p = Ping {
        target,
        kind,
        rid: q.rid,
        user_agent,
        body: ping::keep(&body),
    };
    match s.0.pinger.ping(p).await {
        Ok(Outcome::Recorded) => text(StatusCode::OK, "OK"),
        Ok(Outcome::Created) => text(StatusCode::CREATED, "Created"),
        Ok(Outcome::NotFound) => text(StatusCode::NOT_FOUND, "not found"),
        Err(e) => {
            tracing::error!(error = %e, "ping not recorded");
            let mut r = text(StatusCode::SERVICE_UNAVAILABLE, "not recorded, try again");
            r.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            r
        }
    }
}
