//! `vigil notices list|add|end`: what operators tell on the status pages; `vigil notices
//! token CUSTOMER [--revoke]`: the link to a customer's own status page.

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::json;

use super::{Remote, print_columns};

#[derive(Args)]
pub struct NoticesArgs {
    #[command(subcommand)]
    pub command: NoticesCommand,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Subcommand)]
pub enum NoticesCommand {
    /// Notices not ended (upcoming ones too).
    List,
    /// A new notice, shown on the public page (or on one customer's page with --customer).
    Add {
        title: String,
        /// More text under the title.
        #[arg(long, default_value = "")]
        body: String,
        /// Only on this customer's page.
        #[arg(long)]
        customer: Option<String>,
        /// From (RFC 3339; default now).
        #[arg(long)]
        starts: Option<String>,
        /// Until (RFC 3339; default until ended).
        #[arg(long)]
        ends: Option<String>,
        /// Who writes it (default: the login name).
        #[arg(long = "as", env = "VIGIL_ACTOR", value_name = "NAME")]
        actor: Option<String>,
    },
    /// End a notice now.
    End { id: i64 },
    /// A new link to CUSTOMER's own status page (shown once), or --revoke every link.
    Token {
        customer: String,
        #[arg(long)]
        revoke: bool,
        #[arg(long = "as", env = "VIGIL_ACTOR", value_name = "NAME")]
        actor: Option<String>,
    },
}

pub async fn run(args: NoticesArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let server = args.remote.server();
    let body = match args.command {
        NoticesCommand::List => server.get("notices", &[]).await?,
        NoticesCommand::Add {
            title,
            body,
            customer,
            starts,
            ends,
            actor,
        } => {
            let by = super::actor(actor);
            let n = json!({"title": title, "body": body, "customer": customer,
                "starts_at": starts, "ends_at": ends});
            json!({"notices": [server.post("notices", &n, &by).await?]})
        }
        NoticesCommand::End { id } => {
            server.delete(&format!("notices/{id}")).await?;
            writeln!(out, "notice {id} ended")?;
            return Ok(());
        }
        NoticesCommand::Token {
            customer,
            revoke,
            actor,
        } => {
            let path = format!("customers/{customer}/status-token");
            let answer = if revoke {
                server.delete(&path).await?
            } else {
                server.post(&path, &json!({}), &super::actor(actor)).await?
            };
            if args.remote.json {
                writeln!(out, "{answer}")?;
            } else if revoke {
                writeln!(
                    out,
                    "{} links to {customer}'s page revoked",
                    answer["revoked"]
                )?;
            } else {
                writeln!(out, "{}", answer["url"].as_str().unwrap_or_default())?;
            }
            return Ok(());
        }
    };
    if args.remote.json {
        writeln!(out, "{body}")?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = body["notices"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|n| {
            let s = |k: &str| n[k].as_str().unwrap_or("-").to_owned();
            vec![
                n["id"].to_string(),
                s("customer"),
                s("starts_at"),
                s("ends_at"),
                s("title"),
            ]
        })
        .collect();
    print_columns(&["ID", "CUSTOMER", "FROM", "UNTIL", "TITLE"], &rows, out)?;
    Ok(())
}
