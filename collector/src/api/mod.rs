//! The collector's HTTP API: `fn app(state) -> Router`, one handler module per resource.

pub mod agents;
pub mod aggregate;
pub mod assets;
pub mod cap;
pub mod checks;
pub mod customers;
pub mod error;
pub mod heartbeats;
pub mod incidents;
pub mod ingest;
pub mod maintenance;
pub mod notices;
pub mod notify;
pub mod oncall;
pub mod rules;
pub mod search;
pub mod shiftlog;
pub mod silences;
pub mod status;
pub mod tasks;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{any, delete, get, post};
use tokio::sync::mpsc;

use crate::index::search::Searcher;
use crate::index::writer::Msg;
use crate::metrics::Metrics;
pub use error::ApiError;

#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

/// Largest search or aggregation body read (the query itself is refused beyond 16 KiB, with a
/// message that says so, rather than a bare 413).
const QUERY_BODY_BYTES: usize = 2 << 20;

pub struct Inner {
    pub searcher: Searcher,
    pub ingest: mpsc::Sender<Msg>,
    /// Cleared at shutdown, before the pipeline is drained.
    pub ingest_open: AtomicBool,
    /// False once the index writer stopped on an error.
    pub writer_healthy: Arc<AtomicBool>,
    /// token → agent id.
    pub agents: HashMap<String, String>,
    pub api_token: Option<String>,
    pub metrics: Arc<Metrics>,
    pub max_body_bytes: usize,
    pub max_batch_events: usize,
    pub max_expansion: u64,
    /// Memory for batches being received and decoded, in KiB permits.
    pub decode_budget: Arc<tokio::sync::Semaphore>,
    /// The whole budget, in KiB.
    pub decode_budget_kib: u32,
    pub detect: Arc<crate::detect::DetectView>,
    pub detect_cfg: crate::detect::DetectConfig,
    pub incidents: crate::incidents::Store,
    /// False while alerts cannot be handed to the incident database.
    pub incidents_healthy: Arc<AtomicBool>,
    /// Customers and assets in force.
    pub directory: Arc<crate::reference::directory::Directory>,
    /// Our on-call rotas.
    pub oncall: Arc<crate::oncall::OnCall>,
    pub heartbeats: crate::uptime::heartbeat::Heartbeats,
    /// Each configured agent and how long it may be silent.
    pub agent_limits: Vec<(String, std::time::Duration)>,
    /// Where pings are handed to be written.
    pub pinger: crate::uptime::ping::Pinger,
    /// The checks' results and states by quorum.
    pub quorum: Arc<crate::uptime::quorum::Quorum>,
    /// The configuration's checks (the database's join them).
    pub configured_checks: Vec<crate::uptime::check::Check>,
    /// The last read of each watched CAP feed.
    pub cap_feeds: crate::uptime::capwatch::Feeds,
    /// Who is logged in to the console.
    pub sessions: crate::console::Sessions,
}

pub fn app(state: AppState) -> Router {
    let max_body = state.0.max_body_bytes;
    Router::new()
        .route(
            "/healthz",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route(
            "/api/v1/ingest",
            post(ingest::ingest).layer(DefaultBodyLimit::max(max_body)),
        )
        .route(
            "/api/v1/search",
            get(search::search)
                .post(search::search)
                .layer(DefaultBodyLimit::max(QUERY_BODY_BYTES)),
        )
        .route(
            "/api/v1/aggregate",
            get(aggregate::aggregate)
                .post(aggregate::aggregate)
                .layer(DefaultBodyLimit::max(QUERY_BODY_BYTES)),
        )
        .route("/api/v1/rules", get(rules::list))
        .route(
            "/api/v1/rules/test",
            post(rules::test).layer(DefaultBodyLimit::max(max_body)),
        )
        .route("/api/v1/rules/reload", post(rules::reload_handler))
        .route(
            "/api/v1/incidents",
            get(incidents::list)
                .post(incidents::create)
                .layer(DefaultBodyLimit::max(64 << 10)),
        )
        .route("/api/v1/incidents/{id}", get(incidents::show))
        .route(
            "/api/v1/incidents/{id}/merge",
            post(incidents::merge).layer(DefaultBodyLimit::max(64 << 10)),
        )
        .route(
            "/api/v1/incidents/{id}/split",
            post(incidents::split).layer(DefaultBodyLimit::max(1 << 20)),
        )
        .route(
            "/api/v1/shiftlog",
            get(shiftlog::list)
                .post(shiftlog::add)
                .layer(DefaultBodyLimit::max(64 << 10)),
        )
        .route(
            "/api/v1/incidents/{id}/{action}",
            post(incidents::act).layer(DefaultBodyLimit::max(64 << 10)),
        )
        .route(
            "/api/v1/silences",
            get(silences::list_silences)
                .post(silences::create_silence)
                .layer(DefaultBodyLimit::max(64 << 10)),
        )
        .route("/api/v1/silences/{id}", delete(silences::expire_silence))
        .route(
            "/api/v1/exclusions",
            get(silences::list_exclusions)
                .post(silences::create_exclusion)
                .layer(DefaultBodyLimit::max(64 << 10)),
        )
        .route(
            "/api/v1/exclusions/{id}",
            delete(silences::expire_exclusion),
        )
        .route("/api/v1/tasks", get(tasks::list))
        .route(
            "/api/v1/tasks/{id}",
            get(tasks::show)
                .post(tasks::record)
                .layer(DefaultBodyLimit::max(64 << 10)),
        )
        .route(
            "/api/v1/maintenance",
            get(maintenance::list)
                .post(maintenance::create)
                .layer(DefaultBodyLimit::max(64 << 10)),
        )
        .route("/api/v1/maintenance/{id}", delete(maintenance::end))
        .route("/api/v1/oncall", get(oncall::now))
        .route(
            "/api/v1/oncall/overrides",
            get(oncall::list)
                .post(oncall::create)
                .layer(DefaultBodyLimit::max(64 << 10)),
        )
        .route("/api/v1/oncall/overrides/{id}", delete(oncall::end))
        .route("/api/v1/cap/feed", get(cap::feed))
        .route("/api/v1/cap/watched", get(cap::watched))
        .route(
            "/api/v1/customers",
            get(customers::list)
                .post(customers::create)
                .layer(DefaultBodyLimit::max(1 << 20)),
        )
        .route(
            "/api/v1/customers/import",
            post(customers::import).layer(DefaultBodyLimit::max(16 << 20)),
        )
        .route(
            "/api/v1/customers/{id}",
            get(customers::show)
                .put(customers::replace)
                .delete(customers::delete)
                .layer(DefaultBodyLimit::max(1 << 20)),
        )
        .route(
            "/api/v1/assets",
            get(assets::list)
                .post(assets::create)
                .layer(DefaultBodyLimit::max(1 << 20)),
        )
        .route("/api/v1/assets/changes", get(assets::changes))
        .route(
            "/api/v1/assets/{id}",
            get(assets::show)
                .put(assets::replace)
                .delete(assets::delete)
                .layer(DefaultBodyLimit::max(1 << 20)),
        )
        .route(
            "/api/v1/notify/callback/{token}",
            post(notify::callback_handler).layer(DefaultBodyLimit::max(64 << 10)),
        )
        .route(
            "/api/v1/notify/respond/{token}",
            get(notify::respond_page)
                .post(notify::respond)
                .layer(DefaultBodyLimit::max(64 << 10)),
        )
        .route(
            "/api/v1/notify/sms/{secret}",
            post(notify::sms_inbound).layer(DefaultBodyLimit::max(64 << 10)),
        )
        .route(
            "/api/v1/heartbeats",
            get(heartbeats::list)
                .post(heartbeats::create)
                .layer(DefaultBodyLimit::max(64 << 10)),
        )
        .route(
            "/api/v1/heartbeats/{id}",
            get(heartbeats::show).delete(heartbeats::delete),
        )
        .route("/api/v1/agents", get(agents::list))
        .route("/api/v1/agents/checks", get(checks::for_agent))
        .route("/api/v1/agents/customers", get(customers::for_agent))
        .route(
            "/api/v1/checks",
            get(checks::list)
                .post(checks::create)
                .layer(DefaultBodyLimit::max(64 << 10)),
        )
        .route(
            "/api/v1/checks/{id}",
            get(checks::show)
                .put(checks::replace)
                .delete(checks::delete)
                .layer(DefaultBodyLimit::max(64 << 10)),
        )
        .route(
            "/api/v1/agents/report",
            post(agents::report).layer(DefaultBodyLimit::max(16 << 10)),
        )
        .route("/api/v1/status", get(status::json))
        .route("/api/v1/status/c/{token}", get(status::customer_json))
        .route("/status", get(status::page))
        .route("/status/c/{token}", get(status::customer_page))
        .route("/api/v1/notices", get(notices::list).post(notices::create))
        .route("/api/v1/notices/{id}", delete(notices::end))
        .route(
            "/api/v1/customers/{id}/status-token",
            post(notices::new_token).delete(notices::revoke_tokens),
        )
        .route("/status/badge/{file}", get(status::badge))
        .route("/ping/{a}", ping())
        .route("/ping/{a}/{b}", ping())
        .route("/ping/{a}/{b}/{c}", ping())
        // Pages compress about tenfold; the API's answers are left as they were.
        .merge(crate::console::routes().layer(tower_http::compression::CompressionLayer::new()))
        .fallback(crate::console::fallback)
        .with_state(state)
}

/// The pings' routes: any method (the handler answers 405 to all but GET, HEAD and POST),
/// bodies up to healthchecks.io's limit.
fn ping() -> axum::routing::MethodRouter<AppState> {
    any(heartbeats::ping_any).layer(DefaultBodyLimit::max(crate::uptime::ping::MAX_BODY_BYTES))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

impl Inner {
    /// The agent id a request's token belongs to.
    pub fn agent_for(&self, headers: &HeaderMap) -> Result<&str, ApiError> {
        let token =
            bearer(headers).ok_or_else(|| ApiError::Unauthorized("missing bearer token".into()))?;
        self.agents
            .get(token)
            .map(String::as_str)
            .ok_or_else(|| ApiError::Unauthorized("unknown agent token".into()))
    }

    /// Read APIs: open unless an API token is configured.
    pub fn check_reader(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match &self.api_token {
            None => Ok(()),
            Some(t) if bearer(headers) == Some(t.as_str()) => Ok(()),
            Some(_) => Err(ApiError::Unauthorized("missing or wrong API token".into())),
        }
    }
}

async fn ready(State(s): State<AppState>) -> impl IntoResponse {
    let (ready, body) = s.0.readiness().await;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body))
}

/// How long a database probe may take before the store counts as unreachable.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

impl Inner {
    /// Whether this collector is ready, and each component's state (`/readyz`, and what the
    /// outside heartbeat reports): ready while the index writer runs, ingest is open, the
    /// incident database answers and takes alerts, and heartbeats are being checked.
    /// Informative: the ingest queue's depth and the oldest announcement not yet delivered.
    pub async fn readiness(&self) -> (bool, serde_json::Value) {
        let writer = self.writer_healthy.load(Ordering::SeqCst);
        let open = self.ingest_open.load(Ordering::SeqCst);
        let incidents = self.incidents_healthy.load(Ordering::SeqCst);
        let oldest = tokio::time::timeout(
            PROBE_TIMEOUT,
            sqlx::query_scalar::<_, Option<i64>>(
                "SELECT MIN(created_at) FROM outbox WHERE state IN ('pending', 'started')",
            )
            .fetch_one(self.incidents.pool()),
        )
        .await;
        let (database, oldest) = match oldest {
            Ok(Ok(o)) => (true, o),
            _ => (false, None),
        };
        let now = self.heartbeats.now().timestamp_millis();
        let sweeping = self.heartbeats.sweeping(now);
        let ready = writer && open && incidents && database && sweeping;
        // Checks nobody probes are the agents' trouble, not this collector's: reported, but
        // they do not make it unready.
        let overdue = self.quorum.overdue();
        let body = serde_json::json!({
            "status": if ready { "ready" } else { "not_ready" },
            "components": {
                "index_writer": if writer { "ok" } else { "failed" },
                "ingest": if open { "open" } else { "closed" },
                "incidents": if incidents { "ok" } else { "failing" },
                "incident_database": if database { "ok" } else { "unreachable" },
                "heartbeats": if sweeping { "ok" } else { "stalled" },
                "checks": if overdue.is_empty() { "ok" } else { "overdue" },
            },
            "checks_overdue": overdue.iter().take(20).collect::<Vec<_>>(),
            "checks_overdue_count": overdue.len(),
            "ingest_queue_batches": self.ingest.max_capacity() - self.ingest.capacity(),
            "outbox_oldest_pending_seconds": oldest.map(|t| (now - t).max(0) / 1000),
        });
        (ready, body)
    }
}

async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.0.metrics.render(),
    )
}
