//! `GET /api/v1/rules` (loaded rules with hit counts, and the rules that did not load),
//! `POST /api/v1/rules/test` (a rule on given events) and `POST /api/v1/rules/reload`.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::HeaderMap;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use vigil_schema::Event;

use super::{ApiError, AppState};
use crate::detect::engine::RuleEngine;
use crate::detect::ruleset::{RuleError, Ruleset};
use crate::detect::{Detector, RuleRow, test_events};
use crate::index::writer::Msg;

/// Most events one test request may carry.
const MAX_TEST_EVENTS: usize = 100_000;

#[derive(Serialize)]
pub struct RulesList {
    pub rules: Vec<RuleRow>,
    pub errors: Vec<RuleError>,
}

pub async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<RulesList>, ApiError> {
    s.0.check_reader(&headers)?;
    let errors =
        s.0.detect
            .errors
            .read()
            .map(|e| e.clone())
            .unwrap_or_default();
    Ok(Json(RulesList {
        rules: s.0.detect.rows(),
        errors,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    /// Sigma YAML: one rule, or a correlation with the rules it counts (`---` between).
    pub rule: String,
    pub events: Vec<Event>,
}

#[derive(Serialize)]
pub struct TestResult {
    pub alerts: Vec<Event>,
    pub errors: Vec<RuleError>,
}

pub async fn test(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<TestRequest>, JsonRejection>,
) -> Result<Json<TestResult>, ApiError> {
    s.0.check_reader(&headers)?;
    let Json(req) = body.map_err(|e| ApiError::bad_request("bad_request", e.body_text()))?;
    if req.events.len() > MAX_TEST_EVENTS {
        return Err(ApiError::TooLarge(format!(
            "{} events; at most {MAX_TEST_EVENTS} per test",
            req.events.len()
        )));
    }
    let cfg = s.0.detect_cfg.clone();
    tokio::task::spawn_blocking(move || {
        let mapping = cfg
            .mapping()
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let mut set = Ruleset::default();
        set.add_text("request", &req.rule);
        let (mut engine, errors) = cfg.build(set, Arc::new(mapping));
        if engine.rules().is_empty() {
            let reason = errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            return Err(ApiError::bad_request(
                "bad_rule",
                format!("no rule loaded: {reason}"),
            ));
        }
        let mut events = req.events;
        let alerts = test_events(&mut engine, &mut events);
        Ok(Json(TestResult { alerts, errors }))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
}

#[derive(Serialize)]
pub struct ReloadResult {
    pub rules: usize,
    pub errors: Vec<RuleError>,
}

pub async fn reload_handler(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<ReloadResult>, ApiError> {
    s.0.check_reader(&headers)?;
    reload(&s).await.map(Json)
}

/// Loads the configured rules again and swaps them in on the writer thread; correlation
/// state of the rules that are still there carries over. The old rules stay if the
/// mapping cannot be read.
pub async fn reload(s: &AppState) -> Result<ReloadResult, ApiError> {
    let outcome = |o: &str| {
        s.0.metrics
            .detect_reloads
            .get_or_create(&vec![("outcome", o.to_owned())])
            .inc();
    };
    if !s.0.detect_cfg.enabled {
        return Err(ApiError::bad_request(
            "detection_disabled",
            "detection is disabled ([detect] enabled = false)",
        ));
    }
    let cfg = s.0.detect_cfg.clone();
    let loaded = tokio::task::spawn_blocking(move || cfg.load())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let (engine, errors) = match loaded {
        Ok(l) => l,
        Err(e) => {
            outcome("failed");
            return Err(ApiError::bad_request("bad_mapping", e.to_string()));
        }
    };
    let result = ReloadResult {
        rules: engine.rules().len(),
        errors: errors.clone(),
    };
    let (done, applied) = oneshot::channel();
    let change = Box::new(move |d: &mut Option<Detector>| {
        if let Some(d) = d {
            d.replace(Box::new(engine), errors);
        }
    });
    if s.0.ingest.send(Msg::Detect(change, done)).await.is_err() || applied.await.is_err() {
        outcome("failed");
        return Err(ApiError::Unavailable(
            "the index writer is not running".into(),
        ));
    }
    outcome("ok");
    tracing::info!(
        rules = result.rules,
        rejected = result.errors.len(),
        "sigma rules reloaded"
    );
    Ok(result)
}
