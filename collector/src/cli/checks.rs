//! `vigil checks list|show|add|rm`: uptime checks the agents run, with their state by quorum.

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{Remote, print_columns};

#[derive(Args)]
pub struct ChecksArgs {
    #[command(subcommand)]
    pub command: ChecksCommand,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Subcommand)]
pub enum ChecksCommand {
    /// Every check with its state, how many vantage points reported, and the quorum.
    List,
    /// One check with each vantage point's latest result and its probe latency over 24 h.
    Show { id: String },
    /// Create a check: `--type http|cap --target https://...`, `--type tcp|tls --target
    /// host:port`, `--type dns --target NAME [--server IP] [--expect IP]...`, `--type icmp
    /// --target HOST`.
    Add(Box<NewArgs>),
    /// Delete a check made through the API (configured ones are changed in the configuration).
    Rm { id: String },
}

#[derive(Args)]
pub struct NewArgs {
    #[arg(long)]
    name: String,
    /// http, tcp, tls, dns, icmp or cap.
    #[arg(long = "type", value_name = "TYPE")]
    kind: String,
    #[arg(long)]
    target: String,
    /// How often each agent probes (default 10s).
    #[arg(long)]
    interval: Option<String>,
    /// How long a probe may take (default 5s).
    #[arg(long)]
    timeout: Option<String>,
    /// How many vantage points must agree (default 1).
    #[arg(long)]
    quorum: Option<u32>,
    /// An agent that runs it (repeat; default: all).
    #[arg(long = "agent")]
    agents: Vec<String>,
    #[arg(long)]
    customer: Option<String>,
    /// An HTTP status that is up (repeat; default: any 2xx or 3xx).
    #[arg(long = "status")]
    status: Vec<u16>,
    /// The body must contain this text.
    #[arg(long)]
    contains: Option<String>,
    /// DNS: A (default) or AAAA.
    #[arg(long)]
    record: Option<String>,
    /// DNS: the server asked (`ip` or `ip:port`; default: each agent's resolver).
    #[arg(long)]
    server: Option<String>,
    /// DNS: an address the name may resolve to (repeat); any other is down.
    #[arg(long = "expect", value_name = "IP")]
    expect: Vec<String>,
    /// CAP: the collector also reads the feed's alerts into events.
    #[arg(long)]
    watch: bool,
    /// Its outages are a probable danger: announced by phone first.
    #[arg(long)]
    danger: bool,
    /// Who creates it (default: the login name).
    #[arg(long = "as", env = "VIGIL_ACTOR", value_name = "NAME")]
    actor: Option<String>,
}

pub async fn run(args: ChecksArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let server = args.remote.server();
    let (body, one) = match args.command {
        ChecksCommand::List => (server.get("checks", &[]).await?, false),
        ChecksCommand::Show { id } => (server.get(&format!("checks/{id}"), &[]).await?, true),
        ChecksCommand::Add(a) => {
            let NewArgs {
                name,
                kind,
                target,
                interval,
                timeout,
                quorum,
                agents,
                customer,
                status,
                contains,
                record,
                server: dns_server,
                expect,
                watch,
                danger,
                actor,
            } = *a;
            let mut body = json!({"name": name, "type": kind, "target": target,
                "agents": agents, "status": status, "danger": danger});
            if !expect.is_empty() {
                body["expect"] = json!(expect);
            }
            if watch {
                body["watch"] = json!(true);
            }
            for (k, v) in [
                ("interval", interval),
                ("timeout", timeout),
                ("customer", customer),
                ("contains", contains),
                ("record", record),
                ("server", dns_server),
            ] {
                if let Some(v) = v {
                    body[k] = Value::String(v);
                }
            }
            if let Some(q) = quorum {
                body["quorum"] = json!(q);
            }
            let by = super::actor(actor);
            (server.post("checks", &body, &by).await?, true)
        }
        ChecksCommand::Rm { id } => {
            server.delete(&format!("checks/{id}")).await?;
            writeln!(out, "check {id} deleted")?;
            return Ok(());
        }
    };
    if args.remote.json {
        writeln!(out, "{body}")?;
        return Ok(());
    }
    let list = if one {
        vec![body.clone()]
    } else {
        body["checks"].as_array().cloned().unwrap_or_default()
    };
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or("-").to_owned();
            vec![
                s("id"),
                s("type"),
                s("state"),
                format!("{}/{}", c["reported"], c["expected"]),
                c["quorum"].to_string(),
                s("interval"),
                s("target"),
                s("source"),
            ]
        })
        .collect();
    print_columns(
        &[
            "ID", "TYPE", "STATE", "REPORTED", "QUORUM", "EVERY", "TARGET", "SOURCE",
        ],
        &rows,
        out,
    )?;
    if one && let Some(vantage) = body["vantage"].as_array() {
        writeln!(out)?;
        let rows: Vec<Vec<String>> = vantage
            .iter()
            .map(|v| {
                let s = |k: &str| v[k].as_str().unwrap_or("-").to_owned();
                vec![
                    s("agent"),
                    s("status"),
                    s("at"),
                    if v["fresh"] == true { "yes" } else { "no" }.into(),
                    s("error"),
                ]
            })
            .collect();
        print_columns(&["AGENT", "RESULT", "AT", "COUNTED", "ERROR"], &rows, out)?;
    }
    let l = &body["latency_24h"];
    if one && l.is_object() {
        let ms = |k: &str| l[k].as_f64().map_or("-".to_owned(), |v| format!("{v} ms"));
        writeln!(
            out,
            "\nlatency, last 24 h: {} probes, p50 {}, p90 {}, p99 {}, max {}",
            l["probes"],
            ms("p50_ms"),
            ms("p90_ms"),
            ms("p99_ms"),
            ms("max_ms")
        )?;
    }
    Ok(())
}
