//! The client side of `vigil search`: asks a collector's API and prints a table or JSON.

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
    pub url: String,
    pub token: Option<String>,
}

pub async fn search(args: SearchArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let mut params: Vec<(&str, String)> = vec![
        ("q", args.query.clone()),
        ("limit", args.limit.to_string()),
        ("offset", args.offset.to_string()),
    ];
    match (&args.since, &args.from) {
        (Some(s), None) => params.push(("from", format!("now-{s}"))),
        (None, Some(f)) => params.push(("from", f.clone())),
        (Some(_), Some(_)) => bail!("use either --since or --from, not both"),
        (None, None) => {}
    }
    if let Some(t) = &args.to {
        params.push(("to", t.clone()));
    }
    let url = format!("{}/api/v1/search", args.url.trim_end_matches('/'));
    let mut req = reqwest::Client::new().get(&url).query(&params);
    if let Some(t) = &args.token {
        req = req.bearer_auth(t);
    }
    let resp = req
        .send()
        .await
        .with_context(|| format!("cannot reach the collector at {}", args.url))?;
    let status = resp.status();
    let body: Value = resp
        .json()
        .await
        .context("the collector's answer is not JSON")?;
    if !status.is_success() {
        let msg = body
            .pointer("/error/message")
            .and_then(Value::as_str)
            .unwrap_or("unknown error");
        bail!("search failed ({status}): {msg}");
    }
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

fn print_table(body: &Value, out: &mut impl Write) -> anyhow::Result<()> {
    let hits = body
        .get("hits")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let total = body.get("total").and_then(Value::as_u64).unwrap_or(0);
    let s = |h: &Value, f: &str| h.get(f).and_then(Value::as_str).unwrap_or("-").to_owned();
    let rows: Vec<[String; 4]> = hits
        .iter()
        .map(|h| {
            let mut msg: String = s(h, "message").replace(['\n', '\r', '\t'], " ");
            if msg.chars().count() > 160 {
                msg = msg.chars().take(159).collect::<String>() + "…";
            }
            [
                s(h, "@timestamp"),
                s(h, "event.kind"),
                s(h, "host.name"),
                msg,
            ]
        })
        .collect();
    let header = ["TIME", "KIND", "HOST", "MESSAGE"];
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].chars().count())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    writeln!(
        out,
        "{:w0$}  {:w1$}  {:w2$}  {}",
        header[0], header[1], header[2], header[3]
    )?;
    for r in &rows {
        writeln!(out, "{:w0$}  {:w1$}  {:w2$}  {}", r[0], r[1], r[2], r[3])?;
    }
    writeln!(out, "{} of {} events", rows.len(), total)?;
    Ok(())
}

/// `vigil rules check [PATH...]`: loads the rules (Vigil's own when no path is given) and
/// reports every one that cannot load, and every one that sees no events; `Ok(false)` when
/// any was rejected.
pub fn rules_check(
    paths: &[std::path::PathBuf],
    mappings: &[std::path::PathBuf],
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
    writeln!(
        out,
        "{} rules loaded ({} of them see no events), {} rejected",
        rules.len(),
        blind.len(),
        errors.len()
    )?;
    Ok(errors.is_empty())
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
