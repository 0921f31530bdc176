//! The desk's pages: the queue (filters, sort, countdowns, bulk acknowledge, live through
//! server-sent events), one incident (timeline, evidence, actions, notifications, merge,
//! split), incidents taken by hand, the operator call tasks and the shift log.

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::render::{page, page_with, problem};
use super::{Fields, Login, Posted, Session, api_headers, api_problem};
use crate::api::{ApiError, AppState, incidents as api};
use crate::incidents::desk::Manual;
use crate::incidents::{Filter, Incident, SEVERITIES};

/// What the queue shows, from the page's address.
#[derive(Debug, Default, Clone, Deserialize, Serialize)]
#[serde(default)]
pub struct DeskQuery {
    /// A status, `active` (the default) or `all`.
    pub status: Option<String>,
    pub severity: Option<String>,
    pub customer: Option<String>,
    /// An assignee, or `-` for nobody.
    pub assignee: Option<String>,
    /// `yes` or `no`.
    pub danger: Option<String>,
    /// Seen within: `1h`, `24h`, `7d`.
    pub age: Option<String>,
    /// `last_seen` (default), `severity`, `ack_by`, `id`.
    pub sort: Option<String>,
    /// The page, from 0, of [`PAGE`] incidents.
    pub page: Option<usize>,
    /// A message to show (after a bulk action).
    pub notice: Option<String>,
}

/// Incidents on one page of the queue.
const PAGE: usize = 1000;

fn blank(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// One page of the queue as the desk asks for it, and how many match in all.
async fn queue_of(
    s: &AppState,
    who: &Session,
    q: &DeskQuery,
) -> Result<(Vec<Incident>, i64), ApiError> {
    let status = match blank(&q.status) {
        None => Some("active".to_owned()),
        Some("all") => None,
        Some(st) => Some(st.to_owned()),
    };
    let filter = Filter {
        status,
        severity: blank(&q.severity).map(str::to_owned),
        customer: blank(&q.customer).map(str::to_owned),
        breached: None,
        assignee: blank(&q.assignee).map(str::to_owned),
        danger: match blank(&q.danger) {
            Some("yes") => Some(true),
            Some("no") => Some(false),
            _ => None,
        },
        since: blank(&q.age).map(str::to_owned),
        sort: blank(&q.sort).map(str::to_owned),
        limit: Some(PAGE),
        offset: Some(q.page.unwrap_or(0).saturating_mul(PAGE)),
    };
    let Json(list) = api::list(State(s.clone()), api_headers(s, who), Ok(Query(filter))).await?;
    Ok((list.incidents, list.total))
}

/// The page's address parameters, without its notice, on page `page`.
fn query_string(q: &DeskQuery, page: Option<usize>) -> String {
    let mut q = q.clone();
    q.notice = None;
    q.page = page.filter(|p| *p > 0);
    serde_urlencoded::to_string(&q).unwrap_or_default()
}

pub async fn queue(
    State(s): State<AppState>,
    Login(who): Login,
    q: Result<Query<DeskQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return problem(StatusCode::BAD_REQUEST, Some(&who), &e.body_text()),
    };
    let (incidents, total, error) = match queue_of(&s, &who, &q).await {
        Ok((l, n)) => (l, n, None),
        Err(e) => (Vec::new(), 0, Some(e.to_string())),
    };
    let page_no = q.page.unwrap_or(0);
    let first = page_no * PAGE;
    let customers: Vec<String> =
        s.0.directory
            .list_customers()
            .into_iter()
            .map(|(c, _)| c.id)
            .collect();
    page(
        "desk.html",
        Some(&who),
        "desk",
        context! {
            error, q => &q, qs => query_string(&q, q.page), customers, total,
            shown_from => first + 1, shown_to => first + incidents.len(),
            newer => (page_no > 0).then(|| query_string(&q, Some(page_no - 1))),
            older => ((first + incidents.len()) < usize::try_from(total).unwrap_or(0))
                .then(|| query_string(&q, Some(page_no + 1))),
            incidents,
            severities => SEVERITIES,
            statuses => ["active", "open", "acknowledged", "resolved", "retracted", "all"],
        },
    )
}

/// The queue's rows alone, for the script to swap in when something changed.
pub async fn rows(
    State(s): State<AppState>,
    Login(who): Login,
    q: Result<Query<DeskQuery>, QueryRejection>,
) -> Response {
    let q = match q {
        Ok(Query(q)) => q,
        Err(e) => return problem(StatusCode::BAD_REQUEST, Some(&who), &e.body_text()),
    };
    match queue_of(&s, &who, &q).await {
        Ok((incidents, _)) => page("rows.html", Some(&who), "desk", context! { incidents }),
        Err(e) => api_problem(&who, e),
    }
}

/// How often the queue's version is read for the live desks.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// `changed` whenever an incident is opened or changes (read from the database, so the
/// changes of collectors sharing it show too), and at once on connecting.
pub async fn events(State(s): State<AppState>, Login(_): Login) -> impl IntoResponse {
    let pool = s.0.incidents.pool().clone();
    let stream = futures_util::stream::unfold((pool, None::<String>), |(pool, last)| async move {
        loop {
            let version: Result<(i64, Option<i64>, Option<i64>), _> =
                sqlx::query_as("SELECT COUNT(*), MAX(updated_at), MAX(id) FROM incidents")
                    .fetch_one(&pool)
                    .await;
            if let Ok((n, at, id)) = version {
                let v = format!("{n}.{}.{}", at.unwrap_or(0), id.unwrap_or(0));
                if last.as_deref() != Some(v.as_str()) {
                    let ev = SseEvent::default().event("changed").data(v.clone());
                    return Some((Ok::<_, Infallible>(ev), (pool, Some(v))));
                }
            }
            tokio::time::sleep(WATCH_EVERY).await;
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Acknowledges the incidents checked on the queue.
pub async fn bulk_ack(State(s): State<AppState>, Posted(who, f): Posted) -> Response {
    let mut done = 0;
    let mut refused = Vec::new();
    let ids = f.all("id");
    if ids.len() > PAGE {
        refused.push(format!("all but the first {PAGE}: one page at a time"));
    }
    for id in ids.into_iter().take(PAGE) {
        let h = api_headers(&s, &who);
        let ack = (id.to_owned(), "ack".to_owned());
        match api::act(State(s.clone()), h, Path(ack), Bytes::new()).await {
            Ok(_) => done += 1,
            Err(e) => refused.push(format!("#{id}: {e}")),
        }
    }
    let mut notice = format!("{done} acknowledged.");
    if !refused.is_empty() {
        notice.push_str(&format!(" Not acknowledged: {}.", refused.join("; ")));
    }
    // The queue as it was: its parameters read and written again, never passed through.
    let back: DeskQuery =
        serde_urlencoded::from_str(f.one("back").unwrap_or_default()).unwrap_or_default();
    let back = DeskQuery {
        notice: Some(notice),
        ..back
    };
    Redirect::to(&format!(
        "/desk?{}",
        serde_urlencoded::to_string(&back).unwrap_or_default()
    ))
    .into_response()
}

/// Incident `id` with its notifications.
async fn incident_of(s: &AppState, who: &Session, id: &str) -> Result<Incident, ApiError> {
    let Json(inc) = api::show(State(s.clone()), api_headers(s, who), Path(id.to_owned())).await?;
    Ok(inc)
}

/// The alert events of `inc` shown inline (at most this many) and the evidence behind them.
const EVIDENCE_SHOWN: usize = 20;

/// `field:"a" OR field:"b" ...` for `values`.
fn any_of(field: &str, values: &[String]) -> String {
    values
        .iter()
        .map(|v| format!("{field}:{}", super::hunt::quoted(v)))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// The events of `ids`, newest first, as the index has them.
async fn events_by_id(s: &AppState, ids: &[String]) -> Vec<serde_json::Value> {
    if ids.is_empty() {
        return Vec::new();
    }
    let req = crate::index::search::SearchRequest {
        q: any_of("event.id", ids),
        from: None,
        to: None,
        limit: ids.len().min(100),
        offset: 0,
    };
    let searcher = s.0.searcher.clone();
    match tokio::task::spawn_blocking(move || searcher.search(&req)).await {
        Ok(Ok(r)) => r.hits,
        _ => Vec::new(),
    }
}

async fn incident_page(
    s: &AppState,
    who: &Session,
    id: &str,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let inc = match incident_of(s, who, id).await {
        Ok(i) => i,
        Err(e) => return api_problem(who, e),
    };
    let alert_ids: Vec<String> = inc
        .alerts
        .iter()
        .take(EVIDENCE_SHOWN)
        .map(|a| a.id.clone())
        .collect();
    let alerts = events_by_id(s, &alert_ids).await;
    let mut evidence_ids: Vec<String> = alerts
        .iter()
        .filter_map(|a| a.get("alert.event_ids")?.as_array().cloned())
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    evidence_ids.sort();
    evidence_ids.dedup();
    evidence_ids.truncate(100);
    let evidence = events_by_id(s, &evidence_ids).await;
    let hunt = if evidence_ids.is_empty() {
        any_of("event.id", &alert_ids)
    } else {
        any_of("event.id", &evidence_ids)
    };
    page_with(
        status,
        "incident.html",
        Some(who),
        "desk",
        context! {
            inc => &inc, alerts, evidence, hunt, error, severities => SEVERITIES,
        },
    )
}

pub async fn incident(
    State(s): State<AppState>,
    Login(who): Login,
    Path(id): Path<String>,
) -> Response {
    incident_page(&s, &who, &id, None, StatusCode::OK).await
}

/// The API body of an action from the incident page's form.
fn action_body(f: &Fields) -> serde_json::Value {
    let mut body = serde_json::Map::new();
    for key in ["assignee", "comment", "severity", "resolution", "reason"] {
        if let Some(v) = f.one(key) {
            body.insert(key.into(), v.into());
        }
    }
    if f.one("action") == Some("escalate") {
        body.insert("danger".into(), f.one("danger").is_some().into());
    }
    serde_json::Value::Object(body)
}

/// What an incident form answers: on to `to` when the API did it, else the incident page
/// `id` with the API's reason and status.
async fn answered<T>(
    s: &AppState,
    who: &Session,
    id: &str,
    done: Result<T, ApiError>,
    to: impl FnOnce(T) -> String,
) -> Response {
    match done {
        Ok(v) => Redirect::to(&to(v)).into_response(),
        Err(e) => incident_page(s, who, id, Some(e.to_string()), e.status()).await,
    }
}

pub async fn act(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Posted(who, f): Posted,
) -> Response {
    let action = f.one("action").unwrap_or_default().to_owned();
    let json = Bytes::from(action_body(&f).to_string());
    let h = api_headers(&s, &who);
    let done = api::act(State(s.clone()), h, Path((id.clone(), action)), json).await;
    answered(&s, &who, &id, done, |_| format!("/incidents/{id}")).await
}

/// Incident numbers as people type them: `12, 14`, `#12 #14`.
fn numbers(raw: &str) -> Result<Vec<i64>, ApiError> {
    raw.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .map(|p| p.trim_start_matches('#').parse::<i64>())
        .collect::<Result<_, _>>()
        .map_err(|_| {
            ApiError::bad_request(
                "bad_body",
                format!("{raw:?}: incident numbers, separated by commas or spaces"),
            )
        })
}

pub async fn merge(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Posted(who, f): Posted,
) -> Response {
    let done = match numbers(f.one("incidents").unwrap_or_default()) {
        Ok(from) => {
            let json = Bytes::from(serde_json::json!({ "incidents": from }).to_string());
            let h = api_headers(&s, &who);
            api::merge(State(s.clone()), h, Path(id.clone()), json).await
        }
        Err(e) => Err(e),
    };
    answered(&s, &who, &id, done, |_| format!("/incidents/{id}")).await
}

pub async fn split(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Posted(who, f): Posted,
) -> Response {
    let json = serde_json::json!({ "alerts": f.all("alert"), "title": f.one("title") });
    let h = api_headers(&s, &who);
    let done = api::split(
        State(s.clone()),
        h,
        Path(id.clone()),
        Bytes::from(json.to_string()),
    )
    .await;
    answered(&s, &who, &id, done, |(_, Json(new))| {
        format!("/incidents/{}", new.id)
    })
    .await
}

fn new_page_with(
    s: &AppState,
    who: &Session,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let customers: Vec<String> =
        s.0.directory
            .list_customers()
            .into_iter()
            .map(|(c, _)| c.id)
            .collect();
    page_with(
        status,
        "new.html",
        Some(who),
        "desk",
        context! { customers, error, severities => SEVERITIES },
    )
}

pub async fn new_page(State(s): State<AppState>, Login(who): Login) -> Response {
    new_page_with(&s, &who, None, StatusCode::OK)
}

/// Takes an incident by hand from the form.
pub async fn create(State(s): State<AppState>, Posted(who, f): Posted) -> Response {
    let m = Manual {
        title: f.one("title").unwrap_or_default().to_owned(),
        customer: f.one("customer").map(str::to_owned),
        assets: f
            .one("assets")
            .unwrap_or_default()
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect(),
        category: f.one("category").map(str::to_owned),
        severity: f.one("severity").unwrap_or("medium").to_owned(),
        danger: f.one("danger").is_some(),
        ticket: f.one("ticket").map(str::to_owned),
        description: f.one("description").map(str::to_owned),
    };
    let body = Bytes::from(serde_json::to_vec(&m).unwrap_or_default());
    match api::create(State(s.clone()), api_headers(&s, &who), body).await {
        Ok((_, Json(inc))) => Redirect::to(&format!("/incidents/{}", inc.id)).into_response(),
        Err(e) => new_page_with(&s, &who, Some(e.to_string()), e.status()),
    }
}

async fn tasks_page(
    s: &AppState,
    who: &Session,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let tasks = crate::notify::task::list(s.0.incidents.pool(), None).await;
    match tasks {
        Ok(tasks) => page_with(
            status,
            "tasks.html",
            Some(who),
            "tasks",
            context! { tasks, error, outcomes => crate::notify::task::OUTCOMES },
        ),
        Err(e) => api_problem(who, ApiError::from(e)),
    }
}

pub async fn tasks(State(s): State<AppState>, Login(who): Login) -> Response {
    tasks_page(&s, &who, None, StatusCode::OK).await
}

/// Records a call's outcome from the tasks page.
pub async fn record_call(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Posted(who, f): Posted,
) -> Response {
    let attempt = crate::notify::task::Attempt {
        outcome: f.one("outcome").unwrap_or_default().to_owned(),
        answered_by: f.one("answered_by").map(str::to_owned),
        note: f.one("note").map(str::to_owned),
    };
    match crate::api::tasks::record(
        State(s.clone()),
        api_headers(&s, &who),
        Path(id),
        Ok(Json(attempt)),
    )
    .await
    {
        Ok(_) => Redirect::to("/tasks").into_response(),
        Err(e) => tasks_page(&s, &who, Some(e.to_string()), e.status()).await,
    }
}

async fn shift_page(
    s: &AppState,
    who: &Session,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    match s.0.incidents.shift_log(200).await {
        Ok(notes) => page_with(
            status,
            "shift.html",
            Some(who),
            "shift",
            context! { notes, error },
        ),
        Err(e) => api_problem(who, ApiError::from(e)),
    }
}

pub async fn shift(State(s): State<AppState>, Login(who): Login) -> Response {
    shift_page(&s, &who, None, StatusCode::OK).await
}

pub async fn shift_note(State(s): State<AppState>, Posted(who, f): Posted) -> Response {
    let json = serde_json::json!({ "text": f.one("text").unwrap_or_default() });
    let h = api_headers(&s, &who);
    match crate::api::shiftlog::add(State(s.clone()), h, Bytes::from(json.to_string())).await {
        Ok(_) => Redirect::to("/shift").into_response(),
        Err(e) => shift_page(&s, &who, Some(e.to_string()), e.status()).await,
    }
}
