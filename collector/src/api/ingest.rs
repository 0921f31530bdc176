//! `POST /api/v1/ingest`: a batch from an agent, answered 2xx only once it is durable.
//!
//! # Invariants
//! - The token is checked from the headers before a byte of the body is read: an
//!   unauthenticated request costs no memory for its body.
//! - Before its body is read, a request reserves its body's size from the decode budget
//!   ([`super::Inner::decode_budget`]), and before decompressing, what its frame says it
//!   decompresses to (held to it) or else the most it may; a request that does not fit is
//!   answered 503 with `Retry-After` at once. What is being
//!   received and decoded at one time therefore stays within the budget, whatever the
//!   requests claim.
//! - A batch decompresses to at most `max(ALWAYS_DECODED_BYTES, max_expansion × body)`
//!   bytes, and every count in it (events, fields, value sizes) is checked before memory is
//!   reserved for it.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use tokio::sync::oneshot;
use vigil_schema::{Batch, DecodeError, wire::Limits};

use super::{ApiError, AppState};
use crate::index::writer::{IngestRequest, Msg, Outcome};

/// Batches that decompress to at most this many bytes are taken whatever their compression
/// ratio: an agent's batches are at most 2 MiB by default, so no ratio refuses them.
pub const ALWAYS_DECODED_BYTES: u64 = 16 << 20;

pub async fn ingest(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let result = accept(&s, &headers, body).await;
    if let Err(e) = &result {
        s.0.metrics.rejected(e.code());
    }
    result
}

/// The most bytes a body of `len` bytes may decompress to.
fn decoded_bound(len: usize, max_expansion: u64) -> u64 {
    (len as u64)
        .saturating_mul(max_expansion)
        .clamp(ALWAYS_DECODED_BYTES, vigil_schema::wire::MAX_DECODED_BYTES)
}

async fn accept(
    s: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Json<serde_json::Value>, ApiError> {
    let agent_id = s.0.agent_for(headers)?.to_owned();
    if !s.0.ingest_open.load(Ordering::SeqCst) {
        return Err(ApiError::Unavailable("collector is shutting down".into()));
    }
    let max_body = s.0.max_body_bytes;
    let too_large = || ApiError::TooLarge(format!("batch body is larger than {max_body} bytes"));
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max_body) {
        return Err(too_large());
    }
    let budget = &s.0.decode_budget;
    let reserve = |bytes: u64| {
        u32::try_from(bytes.div_ceil(1024))
            .ok()
            .and_then(|kib| budget.clone().try_acquire_many_owned(kib).ok())
            .ok_or_else(|| {
                ApiError::Unavailable(
                    "the collector is decoding as many batches as its memory budget allows".into(),
                )
            })
    };
    // The body first, then (once its frame says how large it is) what it decompresses to.
    let mut permit = reserve(declared.unwrap_or(max_body) as u64)?;
    let body = axum::body::to_bytes(body, max_body).await.map_err(|e| {
        let limit = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if limit {
            too_large()
        } else {
            ApiError::bad_request("bad_body", format!("cannot read the body: {e}"))
        }
    })?;
    // Never more than the budget holds beside the body (a small budget and a large body):
    // such a batch then decompresses to what is left, or is refused as too large.
    let room = u64::from(
        s.0.decode_budget_kib
            .saturating_sub(permit.num_permits() as u32),
    ) * 1024;
    let frame_bytes = body.len();
    let bound = decoded_bound(frame_bytes, s.0.max_expansion).min(room);
    // A frame that declares its size is held to it (decoding fails past it); one that does
    // not reserves the bound.
    let decoded = vigil_schema::wire::declared_size(&body).map_or(bound, |n| n.min(bound));
    permit.merge(reserve(decoded)?);
    let limits = Limits {
        decoded_bytes: bound,
        events: s.0.max_batch_events,
        ..Limits::default()
    };
    let frame = body.clone();
    let batch = tokio::task::spawn_blocking(move || Batch::decode_within(&frame, &limits))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| match e {
            DecodeError::TooLarge(_) | DecodeError::Limit(_) => ApiError::TooLarge(e.to_string()),
            e => ApiError::bad_request(e.code(), e.to_string()),
        })?;
    if batch.agent_id != agent_id {
        return Err(ApiError::Forbidden(format!(
            "batch says agent `{}` but the token belongs to `{agent_id}`",
            batch.agent_id
        )));
    }
    // The probe results, for the checks' states once the batch is durable.
    let probes: Vec<_> = batch
        .events
        .iter()
        .filter_map(crate::uptime::quorum::result_of)
        .collect();
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
    // The writer's queue, which the send waited on, bounds what is handed over.
    drop(permit);
    let outcome = answer
        .await
        .map_err(|_| unavailable())?
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let m = &s.0.metrics;
    if matches!(outcome, Outcome::Accepted { .. }) {
        s.0.quorum.record(&agent_id, probes);
    }
    Ok(Json(match outcome {
        Outcome::Accepted { events } => {
            m.ingest_batches
                .get_or_create(&vec![("outcome", "accepted".into())])
                .inc();
            m.ingest_events.inc_by(events as u64);
            let agent = vec![("agent", agent_id.clone())];
            m.ingest_agent_events
                .get_or_create(&agent)
                .inc_by(events as u64);
            m.ingest_agent_bytes
                .get_or_create(&agent)
                .inc_by(frame_bytes as u64);
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
