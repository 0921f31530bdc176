//! `GET /api/v1/cap/feed`: the CAP 1.2 messages of incidents routed to CAP, newest first, as
//! an Atom feed whose entries hold each alert.

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;

use super::{ApiError, AppState};

/// Entries in the feed.
const FEED_ENTRIES: i64 = 100;

pub async fn feed(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    s.0.check_reader(&headers)?;
    let base =
        s.0.incidents
            .notifier()
            .map(|n| n.cfg.external_url.trim_end_matches('/').to_owned())
            .unwrap_or_default();
    let xml = crate::notify::cap::feed(
        s.0.incidents.pool(),
        &format!("{base}/api/v1/cap/feed"),
        FEED_ENTRIES,
    )
    .await
    .map_err(|e| ApiError::from(crate::incidents::StoreError::Db(e)))?;
    Ok((
        [(header::CONTENT_TYPE, "application/atom+xml; charset=utf-8")],
        xml,
    ))
}

#[derive(serde::Deserialize)]
pub struct WatchedQuery {
    #[serde(default = "hundred")]
    limit: i64,
}

fn hundred() -> i64 {
    100
}

/// `GET /api/v1/cap/watched`: each watched feed's last read (with why it failed), and the
/// alerts read, newest first, each with its state (`active`, or `updated` / `cancelled` by a
/// later message).
pub async fn watched(
    State(s): State<AppState>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<WatchedQuery>,
) -> Result<impl IntoResponse, ApiError> {
    s.0.check_reader(&headers)?;
    let alerts = crate::uptime::capwatch::list(s.0.incidents.pool(), q.limit.clamp(1, 10_000))
        .await
        .map_err(|e| ApiError::from(crate::incidents::StoreError::Db(e)))?;
    let feeds: Vec<crate::uptime::capwatch::FeedStatus> =
        s.0.cap_feeds
            .lock()
            .map(|f| f.values().cloned().collect())
            .unwrap_or_default();
    Ok(axum::Json(
        serde_json::json!({ "feeds": feeds, "alerts": alerts }),
    ))
}
