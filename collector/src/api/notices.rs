//! Operators' notices on the status pages: `GET /api/v1/notices` (those not ended),
//! `POST /api/v1/notices` (201; a bad field named), `DELETE /api/v1/notices/{id}` (ends it
//! now). And the tokens of customers' own pages: `POST /api/v1/customers/{id}/status-token`
//! (201 with the token and the page's URL, shown this once), `DELETE` revokes them all.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;

use super::incidents::actor;
use super::{ApiError, AppState};
use crate::uptime::statuspage::{self, NewNotice, NoticeError};

fn notice_error(e: NoticeError) -> ApiError {
    match e {
        NoticeError::Invalid { .. } => ApiError::bad_request("bad_notice", e.to_string()),
        NoticeError::Db(e) => e.into(),
    }
}

pub async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    s.0.check_reader(&headers)?;
    let notices = statuspage::list(s.0.incidents.pool(), Utc::now(), None).await?;
    Ok(Json(serde_json::json!({ "notices": notices })))
}

pub async fn create(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<NewNotice>, JsonRejection>,
) -> Result<(StatusCode, Json<statuspage::Notice>), ApiError> {
    s.0.check_reader(&headers)?;
    let Json(n) = body.map_err(|e| ApiError::bad_request("bad_notice", e.body_text()))?;
    let by = actor(&headers)?;
    let customers = s.0.directory.customers().get();
    let made = statuspage::add(
        s.0.incidents.pool(),
        n,
        |c| customers.get(c).is_some(),
        &by,
        Utc::now(),
    )
    .await
    .map_err(notice_error)?;
    Ok((StatusCode::CREATED, Json(made)))
}

pub async fn end(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.0.check_reader(&headers)?;
    let id: i64 = id.parse().map_err(|_| {
        ApiError::bad_request("bad_parameter", format!("{id:?} is not a notice id"))
    })?;
    if statuspage::end(s.0.incidents.pool(), id, Utc::now()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no notice {id} shown")))
    }
}

pub async fn new_token(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(customer): Path<String>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    s.0.check_reader(&headers)?;
    if s.0.directory.customers().get().get(&customer).is_none() {
        return Err(ApiError::NotFound(format!("no customer {customer:?}")));
    }
    let by = actor(&headers)?;
    let token = statuspage::new_token(s.0.incidents.pool(), &customer, &by, Utc::now()).await?;
    let base =
        s.0.incidents
            .notifier()
            .map(|n| n.cfg.external_url.trim_end_matches('/').to_owned())
            .unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "customer": customer,
            "token": token,
            "url": format!("{base}/status/c/{token}"),
        })),
    ))
}

pub async fn revoke_tokens(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(customer): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    s.0.check_reader(&headers)?;
    let revoked = statuspage::revoke(s.0.incidents.pool(), &customer).await?;
    Ok(Json(
        serde_json::json!({ "customer": customer, "revoked": revoked }),
    ))
}
