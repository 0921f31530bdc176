//! `vigil silences list|add|expire`: hold back the announcements of matching incidents for
//! a while (never a retraction); `vigil exclusions list|add|expire`, the same shape: hold
//! them for the receivers' digest (decree art. 9).

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{Remote, print_columns};

#[derive(Args)]
pub struct SilencesArgs {
    #[command(subcommand)]
    pub command: SilencesCommand,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Subcommand)]
pub enum SilencesCommand {
    /// Silences not expired, and those expired in the last day.
    List,
    /// A new silence: every matcher must match (`customer=ulb`, `rule=~port-scan.*`,
    /// `severity!=critical`).
    Add {
        #[arg(required = true, value_name = "MATCHER")]
        matchers: Vec<String>,
        /// How long from now (`30m`, `2h`, `1d`; at most 90 days for a silence, 366 for an
        /// exclusion).
        #[arg(long)]
        duration: String,
        /// Why (a change ticket, a pen test; for an exclusion, the decision).
        #[arg(long)]
        comment: String,
        /// Who silences (default: the login name).
        #[arg(long = "as", env = "VIGIL_ACTOR", value_name = "NAME")]
        actor: Option<String>,
    },
    /// End a silence now.
    Expire { id: i64 },
}

/// `what` is `silences` or `exclusions`: the API path and the answer's key.
pub async fn run(args: SilencesArgs, what: &str, out: &mut impl Write) -> anyhow::Result<()> {
    let server = args.remote.server();
    let body = match args.command {
        SilencesCommand::List => server.get(what, &[]).await?,
        SilencesCommand::Add {
            matchers,
            duration,
            comment,
            actor,
        } => {
            let by = super::actor(actor);
            let body = json!({"matchers": matchers, "duration": duration,
                "created_by": by, "comment": comment});
            json!({what: [server.post(what, &body, &by).await?]})
        }
        SilencesCommand::Expire { id } => {
            json!({what: [server.delete(&format!("{what}/{id}")).await?]})
        }
    };
    if args.remote.json {
        writeln!(out, "{body}")?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = body[what]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let t = |k: &str| s[k].as_str().unwrap_or_default().to_owned();
            let matchers = s["matchers"]
                .as_array()
                .map(|m| {
                    m.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .unwrap_or_default();
            vec![
                s["id"].to_string(),
                t("state"),
                matchers,
                t("starts_at"),
                t("ends_at"),
                t("created_by"),
                t("comment"),
            ]
        })
        .collect();
    print_columns(
        &["ID", "STATE", "MATCHERS", "STARTS", "ENDS", "BY", "COMMENT"],
        &rows,
        out,
    )?;
    Ok(())
}
