//! `vigil maintenance list|add|end`: planned work, during which customers' incidents are not
//! announced, and whose customers are told when it is planned, starts and ends.

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{Remote, print_columns};

#[derive(Args)]
pub struct MaintenanceArgs {
    #[command(subcommand)]
    pub command: MaintenanceCommand,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Subcommand)]
pub enum MaintenanceCommand {
    /// Windows not over, and those over in the last day.
    List,
    /// Plan a window for customers (--customer) or the customers of assets (--asset).
    Add(Box<Plan>),
    /// End a window now (a recurring one stops recurring).
    End { id: i64 },
}

#[derive(Args)]
pub struct Plan {
    #[arg(long)]
    title: String,
    /// The change ticket.
    #[arg(long)]
    ticket: Option<String>,
    #[arg(long = "customer")]
    customers: Vec<String>,
    #[arg(long = "asset")]
    assets: Vec<String>,
    /// When it starts (RFC 3339, `2026-12-05T22:00:00+01:00`).
    #[arg(long)]
    starts_at: String,
    /// How long each occurrence lasts (`4h`; at most 31 days).
    #[arg(long)]
    duration: String,
    /// It recurs this often (`7d`).
    #[arg(long)]
    repeat_every: Option<String>,
    /// The last occurrence starts at or before this time (RFC 3339).
    #[arg(long)]
    repeat_until: Option<String>,
    /// Who plans it (default: the login name).
    #[arg(long = "as", env = "VIGIL_ACTOR", value_name = "NAME")]
    actor: Option<String>,
}

pub async fn run(args: MaintenanceArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let server = args.remote.server();
    let body = match args.command {
        MaintenanceCommand::List => server.get("maintenance", &[]).await?,
        MaintenanceCommand::Add(plan) => {
            let Plan {
                title,
                ticket,
                customers,
                assets,
                starts_at,
                duration,
                repeat_every,
                repeat_until,
                actor,
            } = *plan;
            let by = super::actor(actor);
            let body = json!({"title": title, "ticket": ticket, "customers": customers,
                "assets": assets, "starts_at": starts_at, "duration": duration,
                "repeat_every": repeat_every, "repeat_until": repeat_until, "created_by": by});
            json!({"maintenance": [server.post("maintenance", &body, &by).await?]})
        }
        MaintenanceCommand::End { id } => {
            json!({"maintenance": [server.delete(&format!("maintenance/{id}")).await?]})
        }
    };
    if args.remote.json {
        writeln!(out, "{body}")?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = body["maintenance"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|m| {
            let s = |k: &str| m[k].as_str().unwrap_or("-").to_owned();
            let list = |k: &str| {
                m[k].as_array()
                    .map(|l| {
                        l.iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_default()
            };
            vec![
                m["id"].to_string(),
                s("title"),
                s("ticket"),
                list("customers"),
                s("starts_at"),
                s("ends_at"),
                m["repeat_every_ms"]
                    .as_i64()
                    .map_or_else(|| "-".into(), |ms| format!("{}h", ms / 3_600_000)),
            ]
        })
        .collect();
    print_columns(
        &[
            "ID",
            "TITLE",
            "TICKET",
            "CUSTOMERS",
            "STARTS",
            "ENDS",
            "EVERY",
        ],
        &rows,
        out,
    )?;
    Ok(())
}
