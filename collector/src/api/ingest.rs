//! `POST /api/v1/ingest`: a batch from an agent, answered 2xx only once it is durable.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use tokio::sync::oneshot;
use vigil_schema::Batch;

use super::{ApiError, AppState};
use crate::index::writer::{IngestRequest, Msg, Outcome};

pub async fn ingest(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let result = accept(&s, &headers, body).await;
    if let Err(e) = &result {
        s.0.metrics.rejected(e.code());
    }
    result
}

async fn accept(
    s: &AppState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let agent_id = s.0.agent_for(headers)?.to_owned();
    if !s.0.ingest_open.load(Ordering::SeqCst) {
        return Err(ApiError::Unavailable("collector is shutting down".into()));
    }
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(format!(
                "batch body is larger than {} bytes",
                s.0.max_body_bytes
            ))
        } else {
            ApiError::bad_request("bad_body", r.body_text())
        }
    })?;
    let frame = body.clone();
    let batch = tokio::task::spawn_blocking(move || Batch::decode(&frame))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
    if batch.agent_id != agent_id {
        return Err(ApiError::Forbidden(format!(
            "batch says agent `{}` but the token belongs to `{agent_id}`",
            batch.agent_id
        )));
    }
    if batch.events.len() > s.0.max_batch_events {
        return Err(ApiError::TooLarge(format!(
            "batch has {} events; at most {} are accepted",
            batch.events.len(),
            s.0.max_batch_events
        )));
    }
    let (reply, answer) = oneshot::channel();
    let unavailable = || ApiError::Unavailable("index writer is not running".into());
    s.0.ingest
        .send(Msg::Ingest(IngestRequest {
            batch,
            frame: body,
            reply,
        }))
        .await
        .map_err(|_| unavailable())?;
    let outcome = answer
        .await
        .map_err(|_| unavailable())?
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let m = &s.0.metrics;
    Ok(Json(match outcome {
        Outcome::Accepted { events } => {
            m.ingest_batches
                .get_or_create(&vec![("outcome", "accepted".into())])
                .inc();
            m.ingest_events.inc_by(events as u64);
            serde_json::json!({ "status": "accepted", "events": events })
        }
        Outcome::Duplicate => {
            m.ingest_batches
                .get_or_create(&vec![("outcome", "duplicate".into())])
                .inc();
            serde_json::json!({ "status": "duplicate" })
        }
    }))
}
