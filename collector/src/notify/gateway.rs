//! Voice calls and SMS through an HTTP gateway whose request is written as templates
//! (minijinja: Jinja syntax). The providers' request shapes differ; the templates make any
//! of them (see `docs/NOTIFICATIONS.md` for examples). A 2xx answer means the gateway took
//! the call or the message; anything else, or no answer within the timeout, is a failed
//! attempt, retried.
//!
//! Templates are compiled and rendered on a sample announcement when the configuration is
//! checked, with undefined variables as errors: a template that cannot render is refused at
//! `vigil config check`, not found out at 3 a.m.

use std::time::Duration;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use super::GatewayConfig;
use super::text::IncidentView;

fn env() -> Environment<'static> {
    let mut e = Environment::new();
    e.set_undefined_behavior(UndefinedBehavior::Strict);
    e
}

/// What a gateway template sees.
#[derive(Debug, Clone, Serialize)]
pub struct Request<'a> {
    pub to: &'a str,
    pub text: &'a str,
    pub key: &'a str,
    pub kind: &'a str,
    pub incident: &'a super::text::IncidentView,
    /// Where the gateway reports how the call went (`POST`, see `notify::callback`).
    pub callback: &'a str,
}

/// Whether `cfg`'s templates compile and render, its method is one, and its URL parses once
/// rendered; the error says which part and why.
pub fn check(cfg: &GatewayConfig) -> Result<(), String> {
    reqwest::Method::from_bytes(cfg.method.as_bytes())
        .map_err(|_| format!("method {:?} is not an HTTP method", cfg.method))?;
    let inc = IncidentView::sample();
    let r = render(
        cfg,
        &Request {
            to: "+32470000000",
            text: "Vigil. Sample.",
            key: "vigil-1-1",
            kind: "opened",
            incident: &inc,
            callback: "http://127.0.0.1:8080/api/v1/notify/callback/0123",
        },
    )?;
    reqwest::Url::parse(&r.0).map_err(|e| format!("url renders as {:?}: {e}", r.0))?;
    Ok(())
}

/// (url, headers, body) of a request.
type Rendered = (String, Vec<(String, String)>, String);

fn render(cfg: &GatewayConfig, req: &Request<'_>) -> Result<Rendered, String> {
    let e = env();
    let one = |what: &str, src: &str| {
        e.render_str(src, req)
            .map_err(|err| format!("{what} template: {err}"))
    };
    let url = one("url", &cfg.url)?;
    let headers = cfg
        .headers
        .iter()
        .map(|(k, v)| Ok((k.clone(), one(&format!("header {k}"), v)?)))
        .collect::<Result<_, String>>()?;
    let body = one("body", &cfg.body)?;
    Ok((url, headers, body))
}

pub struct Gateway {
    cfg: GatewayConfig,
    client: reqwest::Client,
}

impl Gateway {
    pub fn new(cfg: &GatewayConfig, timeout: Duration) -> Result<Gateway, String> {
        check(cfg)?;
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Gateway {
            cfg: cfg.clone(),
            client,
        })
    }

    /// Makes the request; the gateway's status and (up to 1 KiB of) its answer on a 2xx.
    pub async fn send(&self, req: &Request<'_>) -> Result<serde_json::Value, String> {
        let (url, headers, body) = render(&self.cfg, req)?;
        let method =
            reqwest::Method::from_bytes(self.cfg.method.as_bytes()).map_err(|e| e.to_string())?;
        let mut r = self
            .client
            .request(method, &url)
            .header("Idempotency-Key", req.key);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        let resp = r.body(body).send().await.map_err(|e| {
            if e.is_timeout() {
                format!("gateway {url}: no answer in time")
            } else {
                format!("gateway {url}: {e}")
            }
        })?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let excerpt: String = text.chars().take(1024).collect();
        if !status.is_success() {
            return Err(format!("gateway {url} answered {status}: {excerpt}"));
        }
        Ok(serde_json::json!({"status": status.as_u16(), "body": excerpt}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gw(url: &str, body: &str) -> GatewayConfig {
        GatewayConfig {
            method: "POST".into(),
            url: url.into(),
            headers: [("Content-Type".to_owned(), "application/json".to_owned())].into(),
            body: body.into(),
            inbound_token: None,
        }
    }

    #[test]
    fn templates_render_with_json_escaping_and_bad_ones_are_refused() {
        let cfg = gw(
            "https://gw.example/calls?to={{ to|urlencode }}",
            r#"{"to": {{ to|tojson }}, "say": {{ text|tojson }}, "ref": {{ incident.id }}}"#,
        );
        check(&cfg).expect("valid");
        let inc = IncidentView::sample();
        let (url, headers, body) = render(
            &cfg,
            &Request {
                to: "+32470000000",
                text: "Vigil \"quoted\"",
                key: "k",
                kind: "opened",
                incident: &inc,
                callback: "http://x/cb",
            },
        )
        .expect("renders");
        assert_eq!(url, "https://gw.example/calls?to=%2B32470000000");
        assert_eq!(headers[0].1, "application/json");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        assert_eq!(v["say"], "Vigil \"quoted\"");
        assert_eq!(v["ref"], 1);

        let e = check(&gw("https://x", "{{ nosuch }}")).expect_err("undefined");
        assert!(e.starts_with("body template"), "{e}");
        let e = check(&gw("https://x", "{% if %}")).expect_err("syntax");
        assert!(e.starts_with("body template"), "{e}");
        let e = check(&gw("not a url {{ to }}", "")).expect_err("url");
        assert!(e.starts_with("url renders as"), "{e}");
        let mut m = gw("https://x", "");
        m.method = "P OST".into();
        assert!(check(&m).is_err());
    }

    /// Every gateway example of docs/NOTIFICATIONS.md passes the check a configuration gets.
    #[test]
    fn the_documented_provider_examples_render() {
        let doc = include_str!("../../../docs/NOTIFICATIONS.md");
        let mut n = 0;
        for block in doc.split("```toml").skip(1) {
            let block = block.split("```").next().unwrap_or_default();
            for table in block.split("\n[").skip(1) {
                let Some(rest) = table
                    .strip_prefix("notify.voice]")
                    .or_else(|| table.strip_prefix("notify.sms]"))
                else {
                    continue;
                };
                let body = rest.split("\n\n").next().unwrap_or_default();
                let cfg: GatewayConfig = toml::from_str(body).expect("example toml");
                check(&cfg).unwrap_or_else(|e| panic!("{e}\n{body}"));
                n += 1;
            }
        }
        assert!(n >= 4, "found {n} examples");
    }
}
