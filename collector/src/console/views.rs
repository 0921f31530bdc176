//! Rules (hit counts, last hit, load errors, a rule tested on pasted events), uptime
//! (checks and heartbeats) and agents.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use minijinja::context;

use super::render::page_with;
use super::{Login, Posted, Session, api_headers, api_problem};
use crate::api::{AppState, agents, checks, heartbeats, rules};

/// What was tested on the rules page, to show again with its outcome.
#[derive(Default, serde::Serialize)]
struct Tested {
    rule: String,
    events: String,
    alerts: Option<Vec<serde_json::Value>>,
    error: Option<String>,
}

async fn rules_page(s: &AppState, who: &Session, tested: Tested, status: StatusCode) -> Response {
    match rules::list(State(s.clone()), api_headers(s, who)).await {
        Ok(Json(list)) => page_with(
            status,
            "rules.html",
            Some(who),
            "rules",
            context! { rules => list.rules, errors => list.errors, tested },
        ),
        Err(e) => api_problem(who, e),
    }
}

pub async fn rules(State(s): State<AppState>, Login(who): Login) -> Response {
    rules_page(&s, &who, Tested::default(), StatusCode::OK).await
}

/// Events pasted as a JSON array, or one JSON object per line.
fn pasted(text: &str) -> Result<Vec<vigil_schema::Event>, String> {
    let t = text.trim();
    if t.starts_with('[') {
        return serde_json::from_str(t).map_err(|e| format!("events: {e}"));
    }
    t.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("events, line {}: {e}", i + 1)))
        .collect()
}

/// Tests the pasted rule on the pasted events.
pub async fn test_rule(State(s): State<AppState>, Posted(who, f): Posted) -> Response {
    let mut tested = Tested {
        rule: f.one("rule").unwrap_or_default().to_owned(),
        events: f.one("events").unwrap_or_default().to_owned(),
        ..Tested::default()
    };
    let events = match pasted(&tested.events) {
        Ok(e) => e,
        Err(e) => {
            tested.error = Some(e);
            return rules_page(&s, &who, tested, StatusCode::BAD_REQUEST).await;
        }
    };
    let req = rules::TestRequest {
        rule: tested.rule.clone(),
        events,
    };
    let status = match rules::test(State(s.clone()), api_headers(&s, &who), Ok(Json(req))).await {
        Ok(Json(r)) => {
            tested.alerts = Some(
                r.alerts
                    .iter()
                    .map(|a| serde_json::to_value(a).unwrap_or_default())
                    .collect(),
            );
            if !r.errors.is_empty() {
                tested.error = Some(
                    r.errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                );
            }
            StatusCode::OK
        }
        Err(e) => {
            let status = e.status();
            tested.error = Some(e.to_string());
            status
        }
    };
    rules_page(&s, &who, tested, status).await
}

pub async fn uptime(State(s): State<AppState>, Login(who): Login) -> Response {
    let h = api_headers(&s, &who);
    let listed = checks::list(State(s.clone()), h.clone()).await;
    let beats = heartbeats::list(State(s.clone()), h).await;
    match (listed, beats) {
        (Ok(Json(c)), Ok(Json(b))) => page_with(
            StatusCode::OK,
            "uptime.html",
            Some(&who),
            "uptime",
            context! {
                checks => serde_json::to_value(&c).unwrap_or_default()["checks"].clone(),
                heartbeats => serde_json::to_value(&b).unwrap_or_default()["heartbeats"].clone(),
            },
        ),
        (Err(e), _) | (_, Err(e)) => api_problem(&who, e),
    }
}

/// One check: its state by vantage point, availability and probe latency over 24 hours.
pub async fn check(
    State(s): State<AppState>,
    Login(who): Login,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    match checks::show(
        State(s.clone()),
        api_headers(&s, &who),
        axum::extract::Path(id),
    )
    .await
    {
        Ok(Json(c)) => page_with(
            StatusCode::OK,
            "check.html",
            Some(&who),
            "uptime",
            context! { c => serde_json::to_value(&c).unwrap_or_default() },
        ),
        Err(e) => api_problem(&who, e),
    }
}

pub async fn agents(State(s): State<AppState>, Login(who): Login) -> Response {
    match agents::list(State(s.clone()), api_headers(&s, &who)).await {
        Ok(Json(a)) => page_with(
            StatusCode::OK,
            "agents.html",
            Some(&who),
            "agents",
            context! { agents => a.agents },
        ),
        Err(e) => api_problem(&who, e),
    }
}
