//! Answers from gateways and people: `POST /api/v1/notify/callback/{token}`, a voice gateway
//! reports how a call went (see `notify::callback`); `GET`/`POST
//! /api/v1/notify/respond/{token}`, an e-mail's link, and `POST
//! /api/v1/notify/sms/{inbound_token}`, an SMS reply (see `notify::reply`).
//!
//! For the callback: No bearer token: gateways cannot send one; the delivery's token in
//! the path is unguessable (128 random bits) and names one call. Fields come from a form, a
//! JSON object or the query string.

use std::collections::BTreeMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::Html;

use super::{ApiError, AppState};
use crate::notify::callback::{self, Report};
use crate::notify::reply::{self, Answered, Respond};

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
    let fields = fields(query, &headers, &body)?;
    match callback::report(store, &token, &fields, &notifier.cfg.ack_digit).await? {
        Some(r) => Ok(Json(r)),
        None => Err(ApiError::NotFound("no call with this token".into())),
    }
}

/// A gateway's fields, from the query string and a form or JSON body (JSON values that are
/// not strings as their JSON text).
fn fields(
    query: Option<String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<BTreeMap<String, String>, ApiError> {
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
            serde_json::from_slice(body).map_err(|e| bad(format!("JSON body: {e}")))?;
        for (k, v) in v {
            let text = match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            fields.insert(k, text);
        }
    } else if !body.is_empty() {
        let text = std::str::from_utf8(body).map_err(|_| bad("body is not UTF-8".into()))?;
        let form: Vec<(String, String)> =
            serde_urlencoded::from_str(text).map_err(|e| bad(format!("form body: {e}")))?;
        fields.extend(form);
    }
    Ok(fields)
}

/// `GET /api/v1/notify/respond/{token}`: the page an e-mail's link opens (the incident and a
/// form; nothing is done by opening it).
pub async fn respond_page(
    State(s): State<AppState>,
    Path(token): Path<String>,
) -> Result<Html<String>, ApiError> {
    match reply::link(&s.0.incidents, &token).await? {
        Some((inc, address)) => Ok(Html(reply::page(&inc, &address, None))),
        None => Err(ApiError::NotFound("no e-mail with this link".into())),
    }
}

/// `POST /api/v1/notify/respond/{token}` (a form: `action=ack`, or `action=reply&text=...`).
pub async fn respond(
    State(s): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Html<String>, ApiError> {
    let f = fields(None, &headers, &body)?;
    let what = match f.get("action").map(String::as_str) {
        Some("ack") => Respond::Acknowledge,
        Some("reply") => {
            let text = f.get("text").map(|t| t.trim()).unwrap_or_default();
            if text.is_empty() || text.len() > reply::MAX_REPLY {
                return Err(ApiError::bad_request(
                    "bad_body",
                    format!("text: 1 to {} characters", reply::MAX_REPLY),
                ));
            }
            Respond::Reply(text.to_owned())
        }
        _ => {
            return Err(ApiError::bad_request("bad_body", "action: ack or reply"));
        }
    };
    let store = &s.0.incidents;
    let Some(done) = reply::by_link(store, &token, &what).await? else {
        return Err(ApiError::NotFound("no e-mail with this link".into()));
    };
    tracing::info!(
        incident = done.incident,
        outcome = done.outcome,
        "answer by e-mail link"
    );
    s.0.metrics
        .notify_replies
        .get_or_create(&vec![
            ("via", "email".to_owned()),
            ("outcome", done.outcome.to_owned()),
        ])
        .inc();
    let (inc, address) = reply::link(store, &token)
        .await?
        .ok_or_else(|| ApiError::NotFound("no e-mail with this link".into()))?;
    Ok(Html(reply::page(&inc, &address, Some(&done))))
}

/// `POST /api/v1/notify/sms/{inbound_token}`: an SMS reply the gateway forwards (`from` /
/// `From`, `text` / `Body` / `body`; form, JSON or query).
pub async fn sms_inbound(
    State(s): State<AppState>,
    Path(secret): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Answered>, ApiError> {
    let store = &s.0.incidents;
    let expected = store
        .notifier()
        .and_then(|n| n.cfg.sms.as_ref())
        .and_then(|g| g.inbound_token.as_deref());
    // Compared in constant time: the path is the credential.
    let known = expected.is_some_and(|e| {
        e.len() == secret.len()
            && e.bytes()
                .zip(secret.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if !known {
        return Err(ApiError::NotFound("no SMS reply endpoint here".into()));
    }
    let f = fields(query, &headers, &body)?;
    let get = |names: &[&str]| names.iter().find_map(|n| f.get(*n)).cloned();
    let (Some(from), Some(text)) = (get(&["from", "From"]), get(&["text", "Body", "body"])) else {
        return Err(ApiError::bad_request(
            "bad_body",
            "from (or From) and text (or Body) are required",
        ));
    };
    let done = reply::by_sms(store, &from, &text).await?;
    s.0.metrics
        .notify_replies
        .get_or_create(&vec![
            ("via", "sms".to_owned()),
            ("outcome", done.outcome.to_owned()),
        ])
        .inc();
    Ok(Json(done))
}
