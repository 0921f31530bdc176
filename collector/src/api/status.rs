//! The status pages. Public: `GET /status` (HTML, readable on a phone, nothing fetched from
//! elsewhere), `GET /api/v1/status` (the same as JSON) and `GET /status/badge/{check}.svg`;
//! no token: only checks marked `public` and the notices for everyone. A customer's own:
//! `GET /status/c/{token}` and `GET /api/v1/status/c/{token}`, in the customer's language,
//! with its checks (public or not), the public ones and its notices. Never the incidents (a
//! page must not tell an attacker what is open).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;

use super::{ApiError, AppState};
use crate::uptime::availability::Availability;

#[derive(Serialize)]
pub struct Public {
    pub id: String,
    pub name: String,
    pub group: String,
    pub state: String,
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub availability: Availability,
    /// The last 90 days (UTC), oldest first: `{"date", "availability"}`.
    pub days: Vec<Day>,
}

#[derive(Serialize)]
pub struct Day {
    pub date: String,
    pub availability: Option<f64>,
}

#[derive(Serialize)]
pub struct Page {
    /// Whose page: none for the public one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub customer: Option<String>,
    pub checks: Vec<Public>,
    pub notices: Vec<crate::uptime::statuspage::Notice>,
}

/// The public checks, and customer `who`'s own when given.
async fn shown(s: &AppState, who: Option<&str>) -> Result<Vec<Public>, ApiError> {
    let mut states = s.0.quorum.states().await?;
    let mut out: Vec<Public> =
        s.0.quorum
            .checks
            .get()
            .list
            .iter()
            .filter(|(c, _)| c.public || (who.is_some() && c.customer.as_deref() == who))
            .filter_map(|(c, _)| {
                let st = states.remove(&c.id)?;
                Some(Public {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    group: c
                        .labels
                        .get("group")
                        .cloned()
                        .unwrap_or_else(|| "Services".into()),
                    state: st.state,
                    since: st.since,
                    availability: st.availability,
                    days: st
                        .days
                        .into_iter()
                        .map(|(date, availability)| Day { date, availability })
                        .collect(),
                })
            })
            .collect();
    out.sort_by(|a, b| (&a.group, &a.name).cmp(&(&b.group, &b.name)));
    Ok(out)
}

async fn public(s: &AppState) -> Result<Vec<Public>, ApiError> {
    shown(s, None).await
}

/// The page of `who` (none: the public one).
async fn page_of(s: &AppState, who: Option<&str>) -> Result<Page, ApiError> {
    let notices =
        crate::uptime::statuspage::list(s.0.incidents.pool(), chrono::Utc::now(), Some(who))
            .await
            .map_err(|e| ApiError::from(crate::incidents::StoreError::Db(e)))?;
    Ok(Page {
        customer: who.map(str::to_owned),
        checks: shown(s, who).await?,
        notices,
    })
}

/// The customer a page token opens; the same `404` for a wrong token as for no customer.
async fn customer_of(s: &AppState, token: &str) -> Result<String, ApiError> {
    crate::uptime::statuspage::customer_of(s.0.incidents.pool(), token)
        .await
        .map_err(|e| ApiError::from(crate::incidents::StoreError::Db(e)))?
        .ok_or_else(|| ApiError::NotFound("no such status page".into()))
}

pub async fn json(State(s): State<AppState>) -> Result<Json<Page>, ApiError> {
    Ok(Json(page_of(&s, None).await?))
}

pub async fn customer_json(
    State(s): State<AppState>,
    Path(token): Path<String>,
) -> Result<Json<Page>, ApiError> {
    let who = customer_of(&s, &token).await?;
    Ok(Json(page_of(&s, Some(&who)).await?))
}

pub async fn customer_page(State(s): State<AppState>, Path(token): Path<String>) -> Response {
    let who = match customer_of(&s, &token).await {
        Ok(w) => w,
        Err(ApiError::NotFound(_)) => {
            return (
                StatusCode::NOT_FOUND,
                Html("<!doctype html><title>Not found</title><p>No such status page.</p>"),
            )
                .into_response();
        }
        Err(e) => return e.into_response(),
    };
    let lang =
        s.0.directory
            .customers()
            .get()
            .get(&who)
            .map(|c| crate::notify::words::Lang::parse(&c.language))
            .unwrap_or_default();
    match page_of(&s, Some(&who)).await {
        Ok(p) => Html(render(&p, lang)).into_response(),
        Err(e) => e.into_response(),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn color(state: &str) -> &'static str {
    match state {
        "up" => "#2e7d32",
        "degraded" => "#f9a825",
        "down" => "#c62828",
        _ => "#757575",
    }
}

fn percent(a: Option<f64>) -> String {
    a.map_or_else(|| "–".into(), |a| format!("{:.2} %", a * 100.0))
}

pub async fn page(State(s): State<AppState>) -> Result<Html<String>, ApiError> {
    Ok(Html(render(&page_of(&s, None).await?, Default::default())))
}

/// A page as HTML in `lang`: every text from people (names, notices) escaped.
fn render(p: &Page, lang: crate::notify::words::Lang) -> String {
    let w = &lang.words().status;
    let word = |state: &str| match state {
        "up" => w[1],
        "degraded" => w[2],
        "down" => w[3],
        _ => w[4],
    };
    let mut body = String::new();
    if !p.notices.is_empty() {
        body.push_str(&format!("<section class=\"notices\"><h2>{}</h2>", w[8]));
        for n in &p.notices {
            body.push_str(&format!(
                "<aside data-notice=\"{}\"><b>{}</b><time>{}</time><p>{}</p></aside>",
                n.id,
                escape(&n.title),
                n.starts_at.format("%Y-%m-%d %H:%M UTC"),
                escape(&n.body)
            ));
        }
        body.push_str("</section>");
    }
    let mut group = None;
    for c in &p.checks {
        if group != Some(&c.group) {
            if group.is_some() {
                body.push_str("</section>");
            }
            body.push_str(&format!("<section><h2>{}</h2>", escape(&c.group)));
            group = Some(&c.group);
        }
        let bars: String = c
            .days
            .iter()
            .map(|d| {
                let fill = match d.availability {
                    None => "#cfd8dc",
                    Some(a) if a >= 0.999 => "#2e7d32",
                    Some(a) if a >= 0.95 => "#f9a825",
                    Some(_) => "#c62828",
                };
                format!(
                    "<i style=\"background:{fill}\" title=\"{} {}\"></i>",
                    d.date,
                    percent(d.availability)
                )
            })
            .collect();
        body.push_str(&format!(
            "<article data-check=\"{id}\" data-state=\"{state}\"><header><b>{name}</b>\
             <span class=\"state\" style=\"background:{color}\">{shown}</span></header>\
             <div class=\"bar\">{bars}</div><small>{w90}: {q} · {w30}: {m} · {w24}: {d}</small></article>",
            id = escape(&c.id),
            name = escape(&c.name),
            state = escape(&c.state),
            shown = word(&c.state),
            color = color(&c.state),
            w90 = w[5],
            w30 = w[6],
            w24 = w[7],
            q = percent(c.availability.quarter),
            m = percent(c.availability.month),
            d = percent(c.availability.day),
        ));
    }
    if group.is_some() {
        body.push_str("</section>");
    } else {
        body.push_str(&format!("<p>{}</p>", w[9]));
    }
    let code = match lang {
        crate::notify::words::Lang::En => "en",
        crate::notify::words::Lang::Fr => "fr",
        crate::notify::words::Lang::Nl => "nl",
        crate::notify::words::Lang::De => "de",
    };
    format!(
        "<!doctype html><html lang=\"{code}\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"60\"><title>{title}</title><style>\
         body{{font:15px system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem;color:#222}}\
         article,aside{{border:1px solid #ddd;border-radius:6px;padding:.6rem .8rem;margin:.6rem 0}}\
         aside{{background:#fff8e1}}aside time{{float:right;color:#666;font-size:12px}}\
         header{{display:flex;justify-content:space-between;align-items:center}}\
         .state{{color:#fff;border-radius:4px;padding:.1rem .5rem;text-transform:uppercase;font-size:12px}}\
         .bar{{display:flex;gap:1px;margin:.5rem 0;height:1.6rem}}.bar i{{flex:1;border-radius:1px}}\
         small{{color:#666}}</style></head><body><h1>{title}</h1>{body}</body></html>",
        title = w[0]
    )
}

/// A status badge for a public check (`404` for others).
pub async fn badge(State(s): State<AppState>, Path(file): Path<String>) -> Response {
    let Some(id) = file.strip_suffix(".svg") else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let checks = match public(&s).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let Some(c) = checks.into_iter().find(|c| c.id == id) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    // Widths from the text length: 7 px a character, in a monospace-free estimate.
    let (left, right) = (escape(&c.name), escape(&c.state));
    let (lw, rw) = (
        c.name.chars().count() * 7 + 12,
        c.state.chars().count() * 7 + 12,
    );
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"20\" role=\"img\" \
         aria-label=\"{left}: {right}\"><rect width=\"{lw}\" height=\"20\" fill=\"#555\"/>\
         <rect x=\"{lw}\" width=\"{rw}\" height=\"20\" fill=\"{color}\"/>\
         <g fill=\"#fff\" font-family=\"Verdana,sans-serif\" font-size=\"11\">\
         <text x=\"6\" y=\"14\">{left}</text><text x=\"{rx}\" y=\"14\">{right}</text></g></svg>",
        w = lw + rw,
        rx = lw + 6,
        color = color(&c.state),
    );
    (
        [
            (header::CONTENT_TYPE, "image/svg+xml"),
            (header::CACHE_CONTROL, "max-age=60"),
        ],
        svg,
    )
        .into_response()
}
