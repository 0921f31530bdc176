//! `vigil oncall [now|overrides|override|end]`: who is on call, and temporary changes
//! ("I take tonight").

use std::io::Write;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::{Remote, print_columns};

#[derive(Args)]
pub struct OnCallArgs {
    #[command(subcommand)]
    pub command: Option<OnCallCommand>,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Subcommand)]
pub enum OnCallCommand {
    /// Who holds each level of each rota (the default).
    Now {
        /// Another time than now (RFC 3339, `2026-12-24T22:00:00+01:00`).
        #[arg(long)]
        at: Option<String>,
    },
    /// Overrides not ended, and those ended in the last day.
    Overrides,
    /// Put someone on call in place of the rota for a while.
    Override {
        #[arg(long)]
        rota: String,
        /// The level taken, from 1.
        #[arg(long, default_value_t = 1)]
        level: usize,
        /// Who takes it (an id of `[[oncall.people]]`).
        #[arg(long)]
        person: String,
        /// From when (RFC 3339; default now).
        #[arg(long)]
        starts_at: Option<String>,
        /// How long (`12h`, `1d`; at most 31 days).
        #[arg(long)]
        duration: String,
        #[arg(long, default_value = "")]
        comment: String,
        /// Who makes it (default: the login name).
        #[arg(long = "as", env = "VIGIL_ACTOR", value_name = "NAME")]
        actor: Option<String>,
    },
    /// End an override now.
    End { id: i64 },
}

pub async fn run(args: OnCallArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let server = args.remote.server();
    let command = args.command.unwrap_or(OnCallCommand::Now { at: None });
    let body = match command {
        OnCallCommand::Now { at } => {
            let params: Vec<(&str, String)> = at.into_iter().map(|t| ("at", t)).collect();
            let body = server.get("oncall", &params).await?;
            if !args.remote.json {
                return print_now(&body, out);
            }
            body
        }
        OnCallCommand::Overrides => server.get("oncall/overrides", &[]).await?,
        OnCallCommand::Override {
            rota,
            level,
            person,
            starts_at,
            duration,
            comment,
            actor,
        } => {
            let by = super::actor(actor);
            let mut body = json!({"rota": rota, "level": level, "person": person,
                "duration": duration, "created_by": by, "comment": comment});
            if let Some(s) = starts_at {
                body["starts_at"] = s.into();
            }
            json!({"overrides": [server.post("oncall/overrides", &body, &by).await?]})
        }
        OnCallCommand::End { id } => {
            json!({"overrides": [server.delete(&format!("oncall/overrides/{id}")).await?]})
        }
    };
    if args.remote.json {
        writeln!(out, "{body}")?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = list(&body["overrides"])
        .iter()
        .map(|o| {
            let t = |k: &str| o[k].as_str().unwrap_or_default().to_owned();
            vec![
                o["id"].to_string(),
                t("rota"),
                o["level"].to_string(),
                t("person"),
                t("starts_at"),
                t("ends_at"),
                t("created_by"),
                t("comment"),
            ]
        })
        .collect();
    print_columns(
        &[
            "ID", "ROTA", "LEVEL", "PERSON", "STARTS", "ENDS", "BY", "COMMENT",
        ],
        &rows,
        out,
    )?;
    Ok(())
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn print_now(body: &Value, out: &mut impl Write) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for r in list(&body["rotas"]) {
        for l in list(&r["levels"]) {
            let p = &l["person"];
            let s = |v: &Value| v.as_str().unwrap_or("-").to_owned();
            rows.push(vec![
                s(&r["rota"]),
                l["level"].to_string(),
                s(&p["name"]),
                s(&p["phone"]),
                s(&p["email"]),
                s(&l["ends_at"]),
                l["override_id"]
                    .as_i64()
                    .map_or_else(String::new, |id| format!("override {id}")),
            ]);
        }
    }
    print_columns(
        &["ROTA", "LEVEL", "PERSON", "PHONE", "E-MAIL", "UNTIL", ""],
        &rows,
        out,
    )?;
    Ok(())
}
