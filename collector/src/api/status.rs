//! The public status page: `GET /status` (HTML, readable on a phone, nothing fetched from
//! elsewhere), `GET /api/v1/status` (the same as JSON) and `GET /status/badge/{check}.svg`.
//! No token: only checks marked `public` are shown, with their state and availability, and
//! never the incidents (a public page must not tell an attacker what is open).

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
    pub checks: Vec<Public>,
}

async fn public(s: &AppState) -> Result<Vec<Public>, ApiError> {
    let mut states = s.0.quorum.states().await?;
    let mut out: Vec<Public> =
        s.0.quorum
            .checks
            .get()
            .list
            .iter()
            .filter(|(c, _)| c.public)
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

pub async fn json(State(s): State<AppState>) -> Result<Json<Page>, ApiError> {
    Ok(Json(Page {
        checks: public(&s).await?,
    }))
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
    let checks = public(&s).await?;
    let mut body = String::new();
    let mut group = None;
    for c in &checks {
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
             <span class=\"state\" style=\"background:{color}\">{state}</span></header>\
             <div class=\"bar\">{bars}</div><small>90 days: {q} · 30 days: {m} · 24 hours: {d}</small></article>",
            id = escape(&c.id),
            name = escape(&c.name),
            state = escape(&c.state),
            color = color(&c.state),
            q = percent(c.availability.quarter),
            m = percent(c.availability.month),
            d = percent(c.availability.day),
        ));
    }
    if group.is_some() {
        body.push_str("</section>");
    } else {
        body.push_str("<p>No public checks.</p>");
    }
    Ok(Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"refresh\" content=\"60\"><title>Status</title><style>\
         body{{font:15px system-ui,sans-serif;margin:0 auto;max-width:60rem;padding:1rem;color:#222}}\
         article{{border:1px solid #ddd;border-radius:6px;padding:.6rem .8rem;margin:.6rem 0}}\
         header{{display:flex;justify-content:space-between;align-items:center}}\
         .state{{color:#fff;border-radius:4px;padding:.1rem .5rem;text-transform:uppercase;font-size:12px}}\
         .bar{{display:flex;gap:1px;margin:.5rem 0;height:1.6rem}}.bar i{{flex:1;border-radius:1px}}\
         small{{color:#666}}</style></head><body><h1>Status</h1>{body}</body></html>"
    )))
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
