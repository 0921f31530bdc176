//! `vigil heartbeats list|show|add|rm`: push health checks that jobs and services ping.

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{Remote, print_columns};

#[derive(Args)]
pub struct HeartbeatsArgs {
    #[command(subcommand)]
    pub command: HeartbeatsCommand,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Subcommand)]
pub enum HeartbeatsCommand {
    /// Every heartbeat with its state and ping URL.
    List,
    /// One heartbeat (by uuid or slug) with its latest pings.
    Show { id: String },
    /// Create a heartbeat: expected every --period (default 1d), or on a cron --schedule in
    /// --tz; down after --grace (default 1h) without a success.
    Add(Box<NewArgs>),
    /// Delete a heartbeat and its pings.
    Rm { id: String },
}

#[derive(Args)]
pub struct NewArgs {
    /// Its name in URLs (`/ping/{ping-key}/{slug}`): letters, digits, `.`, `_`, `-`.
    slug: String,
    #[arg(long)]
    name: Option<String>,
    /// A success is expected this often (`1m`, `1h`, `1d`).
    #[arg(long)]
    period: Option<String>,
    /// A success is expected at these times (cron: `0 3 * * *`).
    #[arg(long)]
    schedule: Option<String>,
    /// The cron schedule's time zone (default UTC).
    #[arg(long)]
    tz: Option<String>,
    /// How long after the due time it goes down (`30m`).
    #[arg(long)]
    grace: Option<String>,
    #[arg(long)]
    customer: Option<String>,
    /// The severity of its incidents (default high).
    #[arg(long)]
    severity: Option<String>,
    /// Its outages are a probable danger: announced by phone first.
    #[arg(long)]
    danger: bool,
    /// Who creates it (default: the login name).
    #[arg(long = "as", env = "VIGIL_ACTOR", value_name = "NAME")]
    actor: Option<String>,
}

pub async fn run(args: HeartbeatsArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let server = args.remote.server();
    let (body, one) = match args.command {
        HeartbeatsCommand::List => (server.get("heartbeats", &[]).await?, false),
        HeartbeatsCommand::Show { id } => {
            (server.get(&format!("heartbeats/{id}"), &[]).await?, true)
        }
        HeartbeatsCommand::Add(a) => {
            let NewArgs {
                slug,
                name,
                period,
                schedule,
                tz,
                grace,
                customer,
                severity,
                danger,
                actor,
            } = *a;
            let mut body = json!({"slug": slug, "danger": danger});
            for (k, v) in [
                ("name", name),
                ("period", period),
                ("schedule", schedule),
                ("tz", tz),
                ("grace", grace),
                ("customer", customer),
                ("severity", severity),
            ] {
                if let Some(v) = v {
                    body[k] = Value::String(v);
                }
            }
            let by = super::actor(actor);
            (server.post("heartbeats", &body, &by).await?, true)
        }
        HeartbeatsCommand::Rm { id } => (server.delete(&format!("heartbeats/{id}")).await?, true),
    };
    if args.remote.json {
        writeln!(out, "{body}")?;
        return Ok(());
    }
    let list = if one {
        vec![body.clone()]
    } else {
        body["heartbeats"].as_array().cloned().unwrap_or_default()
    };
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|h| {
            let s = |k: &str| h[k].as_str().unwrap_or("-").to_owned();
            let every = match (h["period_seconds"].as_u64(), h["schedule"].as_str()) {
                (Some(p), _) => format!("every {}", crate::uptime::heartbeat::span(p as i64)),
                (None, Some(c)) => format!("{c} {}", s("tz")),
                _ => "-".into(),
            };
            vec![
                s("slug"),
                s("status"),
                every,
                crate::uptime::heartbeat::span(h["grace_seconds"].as_i64().unwrap_or(0)),
                s("last_ping"),
                s("ping_url"),
            ]
        })
        .collect();
    print_columns(
        &[
            "SLUG",
            "STATUS",
            "EXPECTED",
            "GRACE",
            "LAST PING",
            "PING URL",
        ],
        &rows,
        out,
    )?;
    if one && let Some(recent) = body["recent"].as_array() {
        writeln!(out)?;
        let rows: Vec<Vec<String>> = recent
            .iter()
            .map(|p| {
                let s = |k: &str| p[k].as_str().unwrap_or("-").to_owned();
                vec![
                    s("at"),
                    s("kind"),
                    p["exit_status"]
                        .as_i64()
                        .map_or("-".into(), |n| n.to_string()),
                    p["duration_seconds"]
                        .as_f64()
                        .map_or("-".into(), |d| format!("{d:.1}s")),
                    s("body")
                        .lines()
                        .next()
                        .unwrap_or("")
                        .chars()
                        .take(60)
                        .collect(),
                ]
            })
            .collect();
        print_columns(&["AT", "KIND", "EXIT", "RUN TIME", "OUTPUT"], &rows, out)?;
    }
    Ok(())
}
