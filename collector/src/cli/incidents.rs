//! `vigil incidents list|show|ack|assign|comment|escalate|resolve|retract`: the desk's queue
//! from a terminal.

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{Remote, print_columns};

#[derive(Args)]
pub struct IncidentsArgs {
    #[command(subcommand)]
    pub command: IncidentsCommand,
    #[command(flatten)]
    pub remote: Remote,
    /// Who acts, as the timeline records it (default: the login name).
    #[arg(long = "as", global = true, env = "VIGIL_ACTOR", value_name = "NAME")]
    pub actor: Option<String>,
}

#[derive(Subcommand)]
pub enum IncidentsCommand {
    /// The queue, most recently seen first.
    List {
        /// open, acknowledged, resolved, retracted, or active (open and acknowledged).
        #[arg(long)]
        status: Option<String>,
        /// informational, low, medium, high or critical.
        #[arg(long)]
        severity: Option<String>,
        #[arg(long)]
        customer: Option<String>,
        /// Only incidents whose acknowledge-by or resolve-by deadline passed.
        #[arg(long)]
        breached: bool,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One incident with its timeline.
    Show { id: i64 },
    /// Acknowledge: someone is on it.
    Ack { id: i64 },
    /// Assign to a person or team.
    Assign { id: i64, assignee: String },
    /// Add a comment to the timeline.
    Comment { id: i64, comment: String },
    /// Change the severity; with --danger true|false, the probable danger too (else it
    /// stays as it is).
    Escalate {
        id: i64,
        #[arg(long)]
        severity: String,
        #[arg(long)]
        danger: Option<bool>,
    },
    /// Resolve: the problem is over.
    Resolve {
        id: i64,
        #[arg(long)]
        resolution: Option<String>,
    },
    /// Retract: a false alarm, or no longer ours (a reason is required); unlike a
    /// resolution, it says the incident should not have been raised.
    Retract {
        id: i64,
        #[arg(long)]
        reason: String,
    },
}

pub async fn run(args: IncidentsArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let server = args.remote.server();
    let actor = super::actor(args.actor);
    let (id, action, body) = match args.command {
        IncidentsCommand::List {
            status,
            severity,
            customer,
            breached,
            limit,
        } => {
            let mut params = vec![("limit", limit.to_string())];
            if breached {
                params.push(("breached", "true".into()));
            }
            for (k, v) in [
                ("status", status),
                ("severity", severity),
                ("customer", customer),
            ] {
                if let Some(v) = v {
                    params.push((k, v));
                }
            }
            let body = server.get("incidents", &params).await?;
            if args.remote.json {
                writeln!(out, "{body}")?;
                return Ok(());
            }
            return print_queue(&body, out);
        }
        IncidentsCommand::Show { id } => {
            let body = server.get(&format!("incidents/{id}"), &[]).await?;
            return print_incident(&body, args.remote.json, out);
        }
        IncidentsCommand::Ack { id } => (id, "ack", json!({})),
        IncidentsCommand::Assign { id, assignee } => {
            (id, "assign", json!({ "assignee": assignee }))
        }
        IncidentsCommand::Comment { id, comment } => (id, "comment", json!({ "comment": comment })),
        IncidentsCommand::Escalate {
            id,
            severity,
            danger,
        } => {
            let mut b = json!({ "severity": severity });
            if let Some(d) = danger {
                b["danger"] = json!(d);
            }
            (id, "escalate", b)
        }
        IncidentsCommand::Resolve { id, resolution } => {
            (id, "resolve", json!({ "resolution": resolution }))
        }
        IncidentsCommand::Retract { id, reason } => (id, "retract", json!({ "reason": reason })),
    };
    let body = server
        .post(&format!("incidents/{id}/{action}"), &body, &actor)
        .await?;
    print_incident(&body, args.remote.json, out)
}

fn text(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

/// The deadline that matters now: breached ones, else acknowledge-by while open, else
/// resolve-by while acknowledged.
fn deadline(i: &Value) -> String {
    let breached: Vec<&str> = i["breached"]
        .as_array()
        .map(|b| b.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if !breached.is_empty() {
        return format!(
            "BREACHED {} (level {})",
            breached.join("+"),
            text(i, "level")
        );
    }
    match i["status"].as_str() {
        Some("open") => format!("ack by {}", text(i, "acknowledge_by")),
        Some("acknowledged") => format!("resolve by {}", text(i, "resolve_by")),
        _ => "-".into(),
    }
}

fn print_queue(body: &Value, out: &mut impl Write) -> anyhow::Result<()> {
    let list = body
        .get("incidents")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|i| {
            vec![
                text(i, "id"),
                text(i, "status"),
                text(i, "severity"),
                if i["danger"] == json!(true) {
                    "yes"
                } else {
                    "no"
                }
                .into(),
                text(i, "count"),
                text(i, "customer"),
                deadline(i),
                text(i, "last_seen"),
                text(i, "title"),
                text(i, "group_key"),
            ]
        })
        .collect();
    print_columns(
        &[
            "ID",
            "STATUS",
            "SEVERITY",
            "DANGER",
            "COUNT",
            "CUSTOMER",
            "DEADLINE",
            "LAST SEEN",
            "TITLE",
            "GROUP",
        ],
        &rows,
        out,
    )?;
    writeln!(out, "{} incidents", rows.len())?;
    Ok(())
}

fn print_incident(body: &Value, json: bool, out: &mut impl Write) -> anyhow::Result<()> {
    if json {
        writeln!(out, "{body}")?;
        return Ok(());
    }
    writeln!(
        out,
        "incident {}: {}",
        text(body, "id"),
        text(body, "title")
    )?;
    for k in [
        "status",
        "severity",
        "danger",
        "customer",
        "group_key",
        "rule_id",
        "assignee",
        "count",
        "first_seen",
        "last_seen",
        "acknowledge_by",
        "resolve_by",
        "level",
    ] {
        writeln!(out, "  {k:14} {}", text(body, k))?;
    }
    for k in ["affected", "assets"] {
        let list: Vec<&str> = body[k]
            .as_array()
            .map(|l| l.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !list.is_empty() {
            writeln!(out, "  {k:14} {}", list.join(", "))?;
        }
    }
    writeln!(out, "  {:14} {}", "deadline", deadline(body))?;
    let steps = body
        .get("timeline")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !steps.is_empty() {
        writeln!(out, "timeline:")?;
    }
    for s in steps {
        let detail = match s.get("detail") {
            Some(Value::Object(m)) => m
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("{k}={}", v.as_str().map_or(v.to_string(), str::to_owned)))
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        };
        writeln!(
            out,
            "  {}  {:10} {:16} {detail}",
            text(&s, "at"),
            text(&s, "actor"),
            text(&s, "action")
        )?;
    }
    Ok(())
}
