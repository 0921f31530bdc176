//! The web console: the desk's queue, incidents, call tasks and shift log; the analysts'
//! hunt; rules, uptime and agents. Server-rendered from templates compiled into the binary,
//! with one small script of our own for live updates, countdowns and shortcuts: nothing to
//! build, nothing fetched from elsewhere.
//!
//! # Layout
//! - [`session`]: logins and their cookies.
//! - [`render`]: the templates, their filters, and the pages for errors.
//! - [`desk`]: the queue (live through server-sent events), an incident, incidents taken by
//!   hand, merged and split, call tasks, the shift log.
//! - [`hunt`]: search with histogram, top values, export.
//! - [`views`]: rules (and their test), uptime, agents.
//!
//! # Invariants
//! - Every page but the login needs a live session; without one the user is sent to log in
//!   and brought back afterwards.
//! - The console acts through the API's own handlers, with the API's token and the login's
//!   name as actor: one set of rules and permissions for both.
//! - Every form that changes something carries the session's form token.
//! - Templates escape every value (auto-escaping by the `.html` name): text from events,
//!   comments and rules is shown as text, never run.

pub mod desk;
pub mod hunt;
pub mod render;
pub mod session;
pub mod views;

use axum::Router;
use axum::extract::{FromRequest, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;

use crate::api::{ApiError, AppState};
pub use session::{Session, Sessions};

/// The session cookie's name.
pub const COOKIE: &str = "vigil_session";
/// Longest login name (it is the actor on timelines).
const MAX_NAME: usize = 64;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/desk") }))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/console/assets/{file}", get(asset))
        .route("/desk", get(desk::queue))
        .route("/desk/rows", get(desk::rows))
        .route("/desk/events", get(desk::events))
        .route("/desk/ack", post(desk::bulk_ack))
        .route("/incidents/new", get(desk::new_page).post(desk::create))
        .route("/incidents/{id}", get(desk::incident))
        .route("/incidents/{id}/act", post(desk::act))
        .route("/incidents/{id}/merge", post(desk::merge))
        .route("/incidents/{id}/split", post(desk::split))
        .route("/tasks", get(desk::tasks))
        .route("/tasks/{id}", post(desk::record_call))
        .route("/shift", get(desk::shift).post(desk::shift_note))
        .route("/hunt", get(hunt::page))
        .route("/hunt/export", get(hunt::export))
        .route("/rules", get(views::rules))
        .route("/rules/test", post(views::test_rule))
        .route("/uptime", get(views::uptime))
        .route("/uptime/{id}", get(views::check))
        .route("/agents", get(views::agents))
}

/// What an unknown path answers: the API's JSON 404 under `/api/`, else a page.
pub async fn fallback(uri: axum::http::Uri) -> Response {
    if uri.path().starts_with("/api/") {
        return ApiError::NotFound("no such endpoint".into()).into_response();
    }
    render::problem(
        StatusCode::NOT_FOUND,
        None,
        &format!("There is no page {}.", uri.path()),
    )
}

/// A logged-in user of the console (an extractor: without a live session, the request is
/// sent to the login page, to come back to where it was going).
pub struct Login(pub Session);

impl FromRequestParts<AppState> for Login {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        match cookie(&parts.headers).and_then(|c| s.0.sessions.get(c)) {
            Some(session) => Ok(Login(session)),
            None => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/desk");
                // A fragment or a stream asked by the script: its page goes to the login.
                let next = if next.starts_with("/desk/") {
                    "/desk"
                } else {
                    next
                };
                Err(Redirect::to(&format!("/login?next={}", encode(next))).into_response())
            }
        }
    }
}

/// A form posted by a logged-in user, carrying the login's form token (an extractor: without
/// a login, the login page; without the token, 403). Every handler of a form that changes
/// something takes one, so none can forget the check.
pub struct Posted(pub Session, pub Fields);

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(req: axum::extract::Request, s: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let Login(who) = Login::from_request_parts(&mut parts, s).await?;
        let req = axum::extract::Request::from_parts(parts, body);
        let body = axum::body::Bytes::from_request(req, s)
            .await
            .map_err(IntoResponse::into_response)?;
        let f = Fields::parse(&body);
        match f.refused(&who) {
            Some(r) => Err(r),
            None => Ok(Posted(who, f)),
        }
    }
}

/// The session cookie's value in `headers`.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
}

pub fn encode(s: &str) -> String {
    serde_urlencoded::to_string([("", s)])
        .map(|e| e[1..].to_owned())
        .unwrap_or_default()
}

/// Where a login may send its user back to: a path of this console, nothing else (and
/// nothing a `Location` header cannot carry).
fn safe_next(next: Option<&str>) -> &str {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && n.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            n
        }
        _ => "/desk",
    }
}

/// The headers with which the console calls the API for `who`.
pub fn api_headers(s: &AppState, who: &Session) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(t) = &s.0.api_token
        && let Ok(v) = HeaderValue::from_str(&format!("Bearer {t}"))
    {
        h.insert(header::AUTHORIZATION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&who.name) {
        h.insert("x-vigil-actor", v);
    }
    h
}

/// A form's fields, in order; a name may repeat (checkboxes).
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    pub fn parse(body: &[u8]) -> Fields {
        Fields(serde_urlencoded::from_bytes(body).unwrap_or_default())
    }

    /// The first value of `name`, trimmed; none when empty.
    pub fn one(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
            .collect()
    }

    /// The refusal of a form without `who`'s form token; none when it has it.
    fn refused(&self, who: &Session) -> Option<Response> {
        if self.one("csrf") == Some(who.csrf.as_str()) {
            None
        } else {
            Some(render::problem(
                StatusCode::FORBIDDEN,
                Some(who),
                "This form is out of date or not from this console: reload the page and try again.",
            ))
        }
    }
}

#[derive(Deserialize)]
struct NextParam {
    next: Option<String>,
}

async fn login_page(State(s): State<AppState>, Query(q): Query<NextParam>) -> Response {
    render::login(&s, safe_next(q.next.as_deref()), None, StatusCode::OK)
}

async fn login(State(s): State<AppState>, body: axum::body::Bytes) -> Response {
    let f = Fields::parse(&body);
    let next = safe_next(f.one("next")).to_owned();
    let name = f.one("name").unwrap_or_default();
    let refuse = |m: &str| render::login(&s, &next, Some(m), StatusCode::UNAUTHORIZED);
    if name.is_empty()
        || name.len() > MAX_NAME
        || !name.chars().all(|c| c.is_ascii_graphic() || c == ' ')
    {
        return refuse(&format!(
            "Your name: 1 to {MAX_NAME} letters, digits or signs (it is shown on what you do)."
        ));
    }
    if let Some(t) = &s.0.api_token {
        let given = f.one("token").unwrap_or_default();
        if !same(given.as_bytes(), t.as_bytes()) {
            return refuse("That is not this collector's API token.");
        }
    }
    let (cookie, _) = s.0.sessions.open(name);
    tracing::info!(name, "console login");
    let set = format!(
        "{COOKIE}={cookie}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        s.0.sessions.ttl().as_secs()
    );
    ([(header::SET_COOKIE, set)], Redirect::to(&next)).into_response()
}

/// Compares in time that does not depend on where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn logout(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(c) = cookie(&headers) {
        s.0.sessions.close(c);
    }
    (
        [(
            header::SET_COOKIE,
            format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
        )],
        Redirect::to("/login"),
    )
        .into_response()
}

const CSS: &str = include_str!("assets/console.css");
const JS: &str = include_str!("assets/console.js");

async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => {
            return render::problem(StatusCode::NOT_FOUND, None, "There is no such file.");
        }
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// An API error as the console shows it: its message, on a page with its status.
pub fn api_problem(who: &Session, e: ApiError) -> Response {
    let message = match &e {
        ApiError::Internal(_) => "Something went wrong on the collector (see its log).".into(),
        e => e.to_string(),
    };
    render::problem(e.status(), Some(who), &message)
}
