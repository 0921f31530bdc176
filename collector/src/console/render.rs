//! The console's templates (compiled into the binary, Jinja through minijinja, every value
//! HTML-escaped), the filters they use, and the pages every part shares: login and problems.

use std::sync::OnceLock;

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::{DateTime, Utc};
use minijinja::{Environment, Value, context};

use super::Session;
use crate::api::AppState;

/// Each template, by the name pages ask for.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("login.html", include_str!("templates/login.html")),
    ("problem.html", include_str!("templates/problem.html")),
    ("desk.html", include_str!("templates/desk.html")),
    ("rows.html", include_str!("templates/rows.html")),
    ("incident.html", include_str!("templates/incident.html")),
    ("new.html", include_str!("templates/new.html")),
    ("tasks.html", include_str!("templates/tasks.html")),
    ("shift.html", include_str!("templates/shift.html")),
    ("hunt.html", include_str!("templates/hunt.html")),
    ("rules.html", include_str!("templates/rules.html")),
    ("uptime.html", include_str!("templates/uptime.html")),
    ("check.html", include_str!("templates/check.html")),
    ("agents.html", include_str!("templates/agents.html")),
];

fn env() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, text) in TEMPLATES {
            // Our own templates: a broken one fails its test, not a user.
            if let Err(e) = env.add_template(name, text) {
                tracing::error!(template = name, error = %e, "console template does not parse");
            }
        }
        env.add_filter("when", when);
        env.add_filter("until", until);
        env.add_filter("pct", pct);
        env.add_filter("ms", ms);
        env
    })
}

fn parse(ts: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(ts)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// An RFC 3339 time as `2026-12-03 14:05:09` (UTC); anything else as it is.
fn when(v: Value) -> String {
    match v.as_str().and_then(parse) {
        Some(t) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        None if v.is_none() || v.is_undefined() => String::new(),
        None => v.to_string(),
    }
}

/// How long until an RFC 3339 time (`in 4m 10s`), or since (`4m 10s ago`); the script
/// keeps it counting.
fn until(v: Value) -> String {
    let Some(t) = v.as_str().and_then(parse) else {
        return String::new();
    };
    span(t.signed_duration_since(Utc::now()).num_seconds())
}

/// Seconds as the console says them: `in 1h 02m`, `3m 05s ago`.
pub fn span(secs: i64) -> String {
    let a = secs.unsigned_abs();
    let text = if a >= 86_400 {
        format!("{}d {:02}h", a / 86_400, a % 86_400 / 3600)
    } else if a >= 3600 {
        format!("{}h {:02}m", a / 3600, a % 3600 / 60)
    } else {
        format!("{}m {:02}s", a / 60, a % 60)
    };
    if secs >= 0 {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// A fraction as a percentage with three decimals.
fn pct(v: Value) -> String {
    match f64::try_from(v) {
        Ok(f) => format!("{:.3} %", f * 100.0),
        Err(_) => "—".into(),
    }
}

/// Milliseconds, rounded to a tenth.
fn ms(v: Value) -> String {
    match f64::try_from(v) {
        Ok(f) => format!("{f:.1} ms"),
        Err(_) => "—".into(),
    }
}

/// Renders template `name` with `ctx` and the login's name and form token.
pub fn page(name: &str, who: Option<&Session>, nav: &str, ctx: Value) -> Response {
    page_with(StatusCode::OK, name, who, nav, ctx)
}

pub fn page_with(
    status: StatusCode,
    name: &str,
    who: Option<&Session>,
    nav: &str,
    ctx: Value,
) -> Response {
    let full = context! {
        who => who.map(|w| w.name.clone()),
        csrf => who.map(|w| w.csrf.clone()),
        nav => nav,
        version => env!("CARGO_PKG_VERSION"),
        ..ctx
    };
    match env().get_template(name).and_then(|t| t.render(full)) {
        Ok(html) => (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "console page cannot render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>Vigil</title><p>This page cannot be shown (see the collector's log).</p>".to_owned()),
            )
                .into_response()
        }
    }
}

/// A page that says what went wrong, with `status`.
pub fn problem(status: StatusCode, who: Option<&Session>, message: &str) -> Response {
    page_with(
        status,
        "problem.html",
        who,
        "",
        context! { status => status.as_u16(), reason => status.canonical_reason(), message },
    )
}

/// The login page, sending back to `next` afterwards.
pub fn login(s: &AppState, next: &str, error: Option<&str>, status: StatusCode) -> Response {
    page_with(
        status,
        "login.html",
        None,
        "",
        context! { next, error, token => s.0.api_token.is_some() },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        for (name, _) in TEMPLATES {
            env()
                .get_template(name)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn spans_read_as_people_say_them() {
        assert_eq!(span(250), "in 4m 10s");
        assert_eq!(span(-3725), "1h 02m ago");
        assert_eq!(span(90_000), "in 1d 01h");
    }
}
