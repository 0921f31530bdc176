//! `vigil assets list|show|add|remove|changes`: the base information, and its change log.

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{Remote, print_columns};

#[derive(Args)]
pub struct AssetsArgs {
    #[command(subcommand)]
    pub command: AssetsCommand,
    #[command(flatten)]
    pub remote: Remote,
    /// Who makes the change, as it is recorded (default: the login name).
    #[arg(long = "as", global = true, env = "VIGIL_ACTOR", value_name = "NAME")]
    pub actor: Option<String>,
}

#[derive(Subcommand)]
pub enum AssetsCommand {
    /// Every asset (of one customer with --customer).
    List {
        #[arg(long)]
        customer: Option<String>,
    },
    /// One asset with its changes (JSON).
    Show { id: String },
    /// Add an asset, or change it with --replace.
    Add {
        id: String,
        #[arg(long)]
        customer: String,
        /// router, firewall, web, dns, ...
        #[arg(long)]
        kind: String,
        #[arg(long, default_value = "")]
        description: String,
        /// Agents that watch it.
        #[arg(long = "agent")]
        agents: Vec<String>,
        /// Prefixes it answers on.
        #[arg(long = "prefix")]
        prefixes: Vec<String>,
        /// Change the existing asset instead of adding one.
        #[arg(long)]
        replace: bool,
    },
    /// Remove an asset (the removal is recorded and exported like any change).
    Remove { id: String },
    /// The newest changes of every asset.
    Changes,
}

pub async fn run(args: AssetsArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let server = args.remote.server();
    let by = super::actor(args.actor);
    let body = match args.command {
        AssetsCommand::List { customer } => {
            let params: Vec<(&str, String)> =
                customer.into_iter().map(|c| ("customer", c)).collect();
            server.get("assets", &params).await?
        }
        AssetsCommand::Show { id } => {
            let body = server.get(&format!("assets/{id}"), &[]).await?;
            writeln!(out, "{}", serde_json::to_string_pretty(&body)?)?;
            return Ok(());
        }
        AssetsCommand::Add {
            id,
            customer,
            kind,
            description,
            agents,
            prefixes,
            replace,
        } => {
            let asset = json!({"id": id, "customer": customer, "kind": kind,
                "description": description,
                "watched_by": {"agents": agents, "prefixes": prefixes}});
            let made = if replace {
                server.put(&format!("assets/{id}"), &asset, &by).await?
            } else {
                server.post("assets", &asset, &by).await?
            };
            json!({"assets": [made]})
        }
        AssetsCommand::Remove { id } => {
            server.delete(&format!("assets/{id}")).await?;
            writeln!(out, "asset {id} removed")?;
            return Ok(());
        }
        AssetsCommand::Changes => {
            let body = server.get("assets/changes", &[]).await?;
            if args.remote.json {
                writeln!(out, "{body}")?;
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list(&body["changes"])
                .iter()
                .map(|c| {
                    let s = |k: &str| c[k].as_str().unwrap_or("-").to_owned();
                    vec![
                        c["id"].to_string(),
                        s("at"),
                        s("asset"),
                        s("action"),
                        s("actor"),
                    ]
                })
                .collect();
            print_columns(&["ID", "AT", "ASSET", "ACTION", "BY"], &rows, out)?;
            return Ok(());
        }
    };
    if args.remote.json {
        writeln!(out, "{body}")?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list(&body["assets"])
        .iter()
        .map(|a| {
            let s = |k: &str| a[k].as_str().unwrap_or("-").to_owned();
            vec![
                s("id"),
                s("customer"),
                s("kind"),
                s("source"),
                s("description"),
            ]
        })
        .collect();
    print_columns(
        &["ID", "CUSTOMER", "KIND", "SOURCE", "DESCRIPTION"],
        &rows,
        out,
    )?;
    Ok(())
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}
