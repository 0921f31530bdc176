//! `vigil tasks list|show|record`: the calls the desk must make, and what came of them.

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::json;

use super::{Remote, print_columns};

#[derive(Args)]
pub struct TasksArgs {
    #[command(subcommand)]
    pub command: TasksCommand,
    #[command(flatten)]
    pub remote: Remote,
    /// Who records, as the timeline shows it (default: the login name).
    #[arg(long = "as", global = true, env = "VIGIL_ACTOR", value_name = "NAME")]
    pub actor: Option<String>,
}

#[derive(Subcommand)]
pub enum TasksCommand {
    /// Calls to make, the most urgent first.
    List {
        /// open, overdue or done (default: open and overdue).
        #[arg(long)]
        state: Option<String>,
    },
    /// One task, with the script to read.
    Show { id: i64 },
    /// Record a call: `reached` (with --answered-by) ends the task; `no_answer`, `busy`,
    /// `voicemail` and `wrong_number` leave it open.
    Record {
        id: i64,
        #[arg(long)]
        outcome: String,
        /// Who answered.
        #[arg(long)]
        answered_by: Option<String>,
        #[arg(long)]
        note: Option<String>,
    },
}

pub async fn run(args: TasksArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let server = args.remote.server();
    let body = match args.command {
        TasksCommand::List { state } => {
            let params: Vec<(&str, String)> = state.into_iter().map(|s| ("state", s)).collect();
            server.get("tasks", &params).await?
        }
        TasksCommand::Show { id } => {
            let t = server.get(&format!("tasks/{id}"), &[]).await?;
            if !args.remote.json {
                writeln!(out, "{}", t["script"].as_str().unwrap_or_default())?;
            }
            json!({"tasks": [t]})
        }
        TasksCommand::Record {
            id,
            outcome,
            answered_by,
            note,
        } => {
            let by = super::actor(args.actor);
            let body = json!({"outcome": outcome, "answered_by": answered_by, "note": note});
            json!({"tasks": [server.post(&format!("tasks/{id}"), &body, &by).await?]})
        }
    };
    if args.remote.json {
        writeln!(out, "{body}")?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = body["tasks"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|t| {
            let s = |k: &str| t[k].as_str().unwrap_or_default().to_owned();
            vec![
                t["id"].to_string(),
                t["incident_id"].to_string(),
                s("state"),
                s("number"),
                s("contact"),
                s("due_at"),
                t["attempts"].to_string(),
                s("outcome"),
                s("answered_by"),
            ]
        })
        .collect();
    print_columns(
        &[
            "ID", "INCIDENT", "STATE", "NUMBER", "CONTACT", "DUE", "CALLS", "OUTCOME", "ANSWERED",
        ],
        &rows,
        out,
    )?;
    Ok(())
}
