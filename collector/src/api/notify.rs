//! `POST /api/v1/notify/callback/{token}`: a voice gateway reports how a call went (see
//! `notify::callback`). No bearer token: gateways cannot send one; the delivery's token in
//! the path is unguessable (128 random bits) and names one call. Fields come from a form, a
//! JSON object or the query string.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};

use super::{ApiError, AppState};
use crate::notify::callback::{self, Report};

pub async fn callback_handler(
    State(s): State<AppState>,
    Path(token): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Report>, ApiError> {
    let store = &s.0.incidents;
    let notifier = store
        .notifier()
        .ok_or_else(|| ApiError::NotFound("notifications are not configured".into()))?;
    let bad = |m: String| ApiError::bad_request("bad_body", m);
    let mut fields: BTreeMap<String, String> = match query {
        Some(q) => serde_urlencoded::from_str(&q).map_err(|e| bad(format!("query: {e}")))?,
        None => BTreeMap::new(),
    };
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if json {
        let v: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&body).map_err(|e| bad(format!("JSON body: {e}")))?;
        for (k, v) in v {
            let text = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            fields.insert(k, text);
        }
    } else if !body.is_empty() {
        let text = std::str::from_utf8(&body).map_err(|_| bad("body is not UTF-8".into()))?;
        let form: Vec<(String, String)> =
            serde_urlencoded::from_str(text).map_err(|e| bad(format!("form body: {e}")))?;
        fields.extend(form);
    }
    match callback::report(store, &token, &fields, &notifier.cfg.ack_digit).await? {
        Some(r) => Ok(Json(r)),
        None => Err(ApiError::NotFound("no call with this token".into())),
    }
}
