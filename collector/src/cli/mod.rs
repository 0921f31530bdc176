//! The client side of the `vigil` commands that talk to a collector (`search`, `incidents`)
//! or read rules locally (`rules check|test`): they print tables, or JSON with `--json`; and
//! `config check --route` ([`route`]); `silences` ([`silences`]); `oncall` ([`oncall`]); `tasks` ([`tasks`]); `customers`
//! ([`customers`]); `assets` ([`assets`]); `maintenance` ([`maintenance`]); `heartbeats`
//! ([`heartbeats`]); `checks` ([`checks`]).

pub mod assets;
pub mod checks;
pub mod customers;
pub mod heartbeats;
pub mod incidents;
pub mod maintenance;
pub mod notices;
pub mod oncall;
pub mod route;
pub mod silences;
pub mod tasks;

use std::io::Write;

use anyhow::{Context, bail};
use serde_json::Value;

pub struct SearchArgs {
    pub query: String,
    pub since: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: usize,
    pub offset: usize,
    pub json: bool,
    pub server: Server,
    /// Aggregate instead of listing events: top values of this field...
    pub top: Option<String>,
    /// ...this many of them...
    pub size: usize,
    /// ...ranked by the sum of this numeric field (also summed per histogram bucket)...
    pub sum: Option<String>,
    /// ...and/or event counts in buckets of this width...
    pub histogram: Option<String>,
    /// ...and/or statistics of this numeric field.
    pub stats: Option<String>,
}

impl SearchArgs {
    fn aggregates(&self) -> bool {
        self.top.is_some() || self.histogram.is_some() || self.stats.is_some()
    }
}

pub async fn search(args: SearchArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let mut params: Vec<(&str, String)> = vec![("q", args.query.clone())];
    match (&args.since, &args.from) {
        (Some(s), None) => params.push(("from", format!("now-{s}"))),
        (None, Some(f)) => params.push(("from", f.clone())),
        (Some(_), Some(_)) => bail!("use either --since or --from, not both"),
        (None, None) => {}
    }
    if let Some(t) = &args.to {
        params.push(("to", t.clone()));
    }
    if args.sum.is_some() && !args.aggregates() {
        bail!("--sum goes with --top or --histogram");
    }
    if args.aggregates() {
        let optional = [
            ("terms", &args.top),
            ("sum", &args.sum),
            ("histogram", &args.histogram),
            ("stats", &args.stats),
        ];
        for (name, v) in optional {
            if let Some(v) = v {
                params.push((name, v.clone()));
            }
        }
        params.push(("size", args.size.to_string()));
        let body = args.server.get("aggregate", &params).await?;
        if args.json {
            writeln!(out, "{body}")?;
            return Ok(());
        }
        return print_aggregate(&body, out);
    }
    params.push(("limit", args.limit.to_string()));
    params.push(("offset", args.offset.to_string()));
    let body = args.server.get("search", &params).await?;
    if args.json {
        for hit in body
            .get("hits")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            writeln!(out, "{hit}")?;
        }
        return Ok(());
    }
    print_table(&body, out)
}

/// Where a command reaches the collector, and how it prints the answer.
#[derive(clap::Args)]
pub struct Remote {
    #[arg(
        long,
        global = true,
        env = "VIGIL_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    #[arg(long, global = true, env = "VIGIL_TOKEN")]
    pub token: Option<String>,
    /// The answer as JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Remote {
    pub fn server(&self) -> Server {
        Server {
            url: self.url.clone(),
            token: self.token.clone(),
        }
    }
}

/// Who acts, as the timeline records it: `--as`, else the login name.
pub fn actor(given: Option<String>) -> String {
    given
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "cli".into())
}

/// A collector's API as the CLI reaches it.
pub struct Server {
    pub url: String,
    pub token: Option<String>,
}

impl Server {
    /// `GET /api/v1/<path>` with `params`; the JSON answer, or the collector's error message.
    pub async fn get(&self, path: &str, params: &[(&str, String)]) -> anyhow::Result<Value> {
        self.send(path, self.request(reqwest::Method::GET, path).query(params))
            .await
    }

    /// `POST /api/v1/<path>` with a JSON `body`, as `actor` (the timeline's name for who acted).
    pub async fn post(&self, path: &str, body: &Value, actor: &str) -> anyhow::Result<Value> {
        let req = self
            .request(reqwest::Method::POST, path)
            .header("x-vigil-actor", actor)
            .json(body);
        self.send(path, req).await
    }

    /// `PUT /api/v1/<path>` with a JSON body.
    pub async fn put(&self, path: &str, body: &Value, actor: &str) -> anyhow::Result<Value> {
        let req = self
            .request(reqwest::Method::PUT, path)
            .header("x-vigil-actor", actor)
            .json(body);
        self.send(path, req).await
    }

    /// `POST /api/v1/<path>` with a body of `content_type`.
    pub async fn post_text(
        &self,
        path: &str,
        body: String,
        content_type: &str,
        actor: &str,
    ) -> anyhow::Result<Value> {
        let req = self
            .request(reqwest::Method::POST, path)
            .header("x-vigil-actor", actor)
            .header("content-type", content_type)
            .body(body);
        self.send(path, req).await
    }

    /// `DELETE /api/v1/<path>`.
    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(path, self.request(reqwest::Method::DELETE, path))
            .await
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}/api/v1/{path}", self.url.trim_end_matches('/'));
        let req = reqwest::Client::new().request(method, url);
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    async fn send(&self, path: &str, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the collector at {}", self.url))?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .with_context(|| format!("the collector at {} did not answer whole", self.url))?;
        // 204 No Content (a deletion) has no body.
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).context("the collector's answer is not JSON")?
        };
        if !status.is_success() {
            let msg = body
                .pointer("/error/message")
                .and_then(Value::as_str)
                .unwrap_or("unknown error");
            bail!("{path} failed ({status}): {msg}");
        }
        Ok(body)
    }
}

/// Rows under a header, each column as wide as its widest cell; numbers right-aligned.
pub(crate) fn print_columns(
    header: &[&str],
    rows: &[Vec<String>],
    out: &mut impl Write,
) -> std::io::Result<()> {
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..header.len()).map(width).collect();
    let line = |cells: Vec<&str>, out: &mut dyn Write| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, &w))| {
                let numeric = i > 0
                    && c.chars()
                        .all(|ch| ch.is_ascii_digit() || ",.-".contains(ch));
                if numeric {
                    format!("{c:>w$}")
                } else {
                    format!("{c:w$}")
                }
            })
            .collect();
        writeln!(out, "{}", text.join("  ").trim_end())
    };
    line(header.to_vec(), out)?;
    for r in rows {
        line(r.iter().map(String::as_str).collect(), out)?;
    }
    Ok(())
}

/// 1234567 → "1,234,567"; fractions keep two decimals.
fn number(v: &Value) -> String {
    let Some(f) = v.as_f64() else {
        return "-".into();
    };
    if f.fract() != 0.0 {
        return format!("{f:.2}");
    }
    let digits = format!("{}", f.abs() as u64);
    let mut s = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            s.push(',');
        }
        s.push(c);
    }
    if f < 0.0 { format!("-{s}") } else { s }
}

fn print_aggregate(body: &Value, out: &mut impl Write) -> anyhow::Result<()> {
    writeln!(out, "{} events", number(&body["total"]))?;
    if let Some(t) = body.get("terms") {
        let field = t["field"].as_str().unwrap_or("value").to_uppercase();
        let summed = t["buckets"]
            .as_array()
            .is_some_and(|b| b.iter().any(|b| b.get("sum").is_some()));
        let mut header = vec![field.as_str(), "EVENTS"];
        if summed {
            header.push("SUM");
        }
        let mut rows: Vec<Vec<String>> = Vec::new();
        for b in t["buckets"].as_array().into_iter().flatten() {
            let key = match &b["key"] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let mut row = vec![key, number(&b["count"])];
            if summed {
                row.push(number(&b["sum"]));
            }
            rows.push(row);
        }
        if t["other_count"].as_u64().unwrap_or(0) > 0 {
            let mut row = vec!["(others)".to_owned(), number(&t["other_count"])];
            if summed {
                row.push(String::new());
            }
            rows.push(row);
        }
        writeln!(out)?;
        print_columns(&header, &rows, out)?;
    }
    if let Some(h) = body.get("histogram") {
        let buckets = h["buckets"].as_array().cloned().unwrap_or_default();
        let max = buckets
            .iter()
            .filter_map(|b| b["count"].as_u64())
            .max()
            .unwrap_or(0)
            .max(1);
        let summed = buckets.iter().any(|b| b.get("sum").is_some());
        let rows: Vec<Vec<String>> = buckets
            .iter()
            .map(|b| {
                let n = b["count"].as_u64().unwrap_or(0);
                let bar = "█".repeat(((n * 40).div_ceil(max)) as usize);
                let mut row = vec![
                    b["key"].as_str().unwrap_or("-").to_owned(),
                    number(&b["count"]),
                ];
                if summed {
                    row.push(number(&b["sum"]));
                }
                row.push(bar);
                row
            })
            .collect();
        writeln!(out)?;
        let header: &[&str] = if summed {
            &["TIME", "EVENTS", "SUM", ""]
        } else {
            &["TIME", "EVENTS", ""]
        };
        print_columns(header, &rows, out)?;
    }
    if let Some(s) = body.get("stats") {
        writeln!(out)?;
        let p = &s["percentiles"];
        let rows = vec![vec![
            s["field"].as_str().unwrap_or("-").to_owned(),
            number(&s["count"]),
            number(&s["min"]),
            number(&s["avg"]),
            number(&p["50"]),
            number(&p["90"]),
            number(&p["99"]),
            number(&s["max"]),
            number(&s["sum"]),
        ]];
        print_columns(
            &[
                "FIELD", "COUNT", "MIN", "AVG", "P50", "P90", "P99", "MAX", "SUM",
            ],
            &rows,
            out,
        )?;
    }
    Ok(())
}

fn print_table(body: &Value, out: &mut impl Write) -> anyhow::Result<()> {
    let hits = body
        .get("hits")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let total = body.get("total").and_then(Value::as_u64).unwrap_or(0);
    let s = |h: &Value, f: &str| h.get(f).and_then(Value::as_str).unwrap_or("-").to_owned();
    let rows: Vec<Vec<String>> = hits
        .iter()
        .map(|h| {
            let mut msg: String = s(h, "message").replace(['\n', '\r', '\t'], " ");
            if msg.chars().count() > 160 {
                msg = msg.chars().take(159).collect::<String>() + "…";
            }
            vec![
                s(h, "@timestamp"),
                s(h, "event.kind"),
                s(h, "host.name"),
                msg,
            ]
        })
        .collect();
    print_columns(&["TIME", "KIND", "HOST", "MESSAGE"], &rows, out)?;
    writeln!(out, "{} of {} events", rows.len(), total)?;
    Ok(())
}

/// `vigil rules check [PATH...]`: loads the rules (Vigil's own when no path is given) and
/// reports every one that cannot load, every one that sees no events, and every field a
/// rule tests that no event it sees carries; `Ok(false)` when any was rejected (or, with
/// `strict`, when any tests such a field).
pub fn rules_check(
    paths: &[std::path::PathBuf],
    mappings: &[std::path::PathBuf],
    strict: bool,
    out: &mut impl Write,
) -> anyhow::Result<bool> {
    use crate::detect::DetectConfig;
    use crate::detect::engine::RuleEngine;
    let cfg = DetectConfig {
        builtin_rules: paths.is_empty(),
        rules: paths.to_vec(),
        mappings: mappings.to_vec(),
        ..DetectConfig::default()
    };
    let (engine, errors) = cfg.load()?;
    for e in &errors {
        writeln!(out, "error: {e}")?;
    }
    let rules = engine.rules();
    let blind: Vec<_> = rules.iter().filter(|r| r.sources.is_empty()).collect();
    for r in &blind {
        writeln!(
            out,
            "note: {}: rule {:?} loads but sees no events (no mapping source for its logsource)",
            r.file, r.title
        )?;
    }
    let partial: Vec<_> = rules
        .iter()
        .filter(|r| !r.unseen_fields.is_empty())
        .collect();
    for r in &partial {
        let fields: Vec<String> = r.unseen_fields.iter().map(|f| format!("`{f}`")).collect();
        writeln!(
            out,
            "warning: {}: rule {:?} tests {}, which no event it sees ({}) carries: that part \
             can never match",
            r.file,
            r.title,
            fields.join(", "),
            r.sources.join(", ")
        )?;
    }
    writeln!(
        out,
        "{} rules loaded ({} of them see no events, {} test fields their events never carry), \
         {} rejected",
        rules.len(),
        blind.len(),
        partial.len(),
        errors.len()
    )?;
    Ok(errors.is_empty() && (partial.is_empty() || !strict))
}

/// `vigil rules test RULE --events FILE.ndjson`: the alerts RULE raises on the events.
pub fn rules_test(
    rule: &std::path::Path,
    events: &std::path::Path,
    mappings: &[std::path::PathBuf],
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<usize> {
    use std::io::BufRead;

    use crate::detect::engine::RuleEngine;
    use crate::detect::{DetectConfig, test_events};
    let cfg = DetectConfig {
        builtin_rules: false,
        rules: vec![rule.to_owned()],
        mappings: mappings.to_vec(),
        ..DetectConfig::default()
    };
    let (mut engine, errors) = cfg.load()?;
    for e in &errors {
        writeln!(out, "error: {e}")?;
    }
    if engine.rules().is_empty() {
        bail!("no rule loaded from {}", rule.display());
    }
    let file =
        std::fs::File::open(events).with_context(|| format!("cannot open {}", events.display()))?;
    let mut evs = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line.with_context(|| format!("cannot read {}", events.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let ev: vigil_schema::Event = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a JSON event object", events.display(), n + 1))?;
        evs.push(ev);
    }
    let alerts = test_events(&mut engine, &mut evs);
    for a in &alerts {
        if json {
            writeln!(out, "{}", serde_json::to_string(a)?)?;
        } else {
            let s = |f: &str| a.get_str(f).unwrap_or("-");
            writeln!(
                out,
                "{}  {:8}  {}  {}",
                s("@timestamp"),
                s("rule.level"),
                s("rule.id"),
                s("message")
            )?;
        }
    }
    if !json {
        writeln!(out, "{} alerts from {} events", alerts.len(), evs.len())?;
    }
    Ok(alerts.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `--histogram 1h --sum network.bytes`: the table shows each bucket's sum.
    #[test]
    fn histogram_sum_drops_the_sums_in_the_table_view() {
        let body = serde_json::json!({
            "total": 3,
            "histogram": {"buckets": [
                {"key": "2026-12-02T08:00:00Z", "count": 2, "sum": 4711},
                {"key": "2026-12-02T09:00:00Z", "count": 1, "sum": 17},
            ]}
        });
        let mut out = Vec::new();
        print_aggregate(&body, &mut out).expect("prints");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.iter().any(|l| l.contains("SUM")), "{text}");
        let row = |key: &str| lines.iter().find(|l| l.starts_with(key)).copied();
        let first = row("2026-12-02T08:00:00Z").unwrap_or_default();
        assert!(first.contains("4,711") || first.contains("4711"), "{text}");
        assert!(
            row("2026-12-02T09:00:00Z")
                .unwrap_or_default()
                .contains("17"),
            "{text}"
        );
    }
}
