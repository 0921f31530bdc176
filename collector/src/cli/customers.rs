//! `vigil customers list|show|import`: the institutions Vigil watches for.

use std::io::Write;

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::Value;

use super::{Remote, print_columns};

#[derive(Args)]
pub struct CustomersArgs {
    #[command(subcommand)]
    pub command: CustomersCommand,
    #[command(flatten)]
    pub remote: Remote,
    /// Who makes the change, as it is recorded (default: the login name).
    #[arg(long = "as", global = true, env = "VIGIL_ACTOR", value_name = "NAME")]
    pub actor: Option<String>,
}

#[derive(Subcommand)]
pub enum CustomersCommand {
    /// Every customer, with where it is defined (config: read-only; api).
    List,
    /// One customer with its contacts (JSON).
    Show { id: String },
    /// Create or update customers from a CSV file, all rows or none: one row per contact,
    /// columns id, name, language, time_zone, prefixes, agents, role, contact_name, email,
    /// phone, contact_language (a header names them; only id is required).
    Import { file: std::path::PathBuf },
}

pub async fn run(args: CustomersArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let server = args.remote.server();
    match args.command {
        CustomersCommand::List => {
            let body = server.get("customers", &[]).await?;
            if args.remote.json {
                writeln!(out, "{body}")?;
                return Ok(());
            }
            let rows: Vec<Vec<String>> = body["customers"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|c| {
                    let s = |k: &str| c[k].as_str().unwrap_or("-").to_owned();
                    let n = |k: &str| c[k].as_array().map_or(0, Vec::len).to_string();
                    vec![
                        s("id"),
                        s("name"),
                        s("language"),
                        n("prefixes"),
                        n("contacts"),
                        s("source"),
                    ]
                })
                .collect();
            print_columns(
                &["ID", "NAME", "LANGUAGE", "PREFIXES", "CONTACTS", "SOURCE"],
                &rows,
                out,
            )?;
            writeln!(out, "{} customers", rows.len())?;
        }
        CustomersCommand::Show { id } => {
            let body: Value = server.get(&format!("customers/{id}"), &[]).await?;
            writeln!(out, "{}", serde_json::to_string_pretty(&body)?)?;
        }
        CustomersCommand::Import { file } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let by = super::actor(args.actor);
            let body = server
                .post_text("customers/import", text, "text/csv", &by)
                .await?;
            if args.remote.json {
                writeln!(out, "{body}")?;
            } else {
                writeln!(
                    out,
                    "{}: {} customers created, {} updated",
                    file.display(),
                    body["created"],
                    body["updated"]
                )?;
            }
        }
    }
    Ok(())
}
