//! Answers from the people told: acknowledgement by a link in the e-mail or by an SMS reply,
//! and replies (questions, remarks) that land on the incident's timeline.
//!
//! - **E-mail link**: every announcement e-mail of an active incident carries
//!   `{external_url}/api/v1/notify/respond/{token}`, the token of that e-mail's delivery (128
//!   random bits: the link is its own credential, and names the address it was sent to). A
//!   `GET` shows the incident and a form; only the form's `POST` acts, so a mail scanner that
//!   fetches links acknowledges nothing.
//! - **SMS**: an SMS announcement ends with "Reply ACK <incident>". The SMS gateway forwards
//!   replies to `POST /api/v1/notify/sms/{inbound_token}`. `ACK <id>` from a number that was
//!   called or sent an SMS about incident `<id>` acknowledges it; any other text from a
//!   number told about an active incident is a reply on the newest such incident. Texts from
//!   numbers never told are ignored (and counted), never acted on.
//!
//! # Invariants
//! - Only a number or an address that was told about an incident can act on it, and the
//!   timeline names it (`email:<address>`, `sms:<number>`).

use crate::incidents::lifecycle::ActionError;
use crate::incidents::{Action, Incident, Store, StoreError};

/// Longest reply kept.
pub const MAX_REPLY: usize = 4096;

/// What a link's form asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Respond {
    Acknowledge,
    Reply(String),
}

/// What an answer did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Answered {
    pub incident: i64,
    /// `acknowledged`, `already` (acknowledged or closed before), `reply`, or `ignored`.
    pub outcome: &'static str,
}

/// The incident and address an e-mail link names; `None` for a token of no e-mail.
pub async fn link(store: &Store, token: &str) -> Result<Option<(Incident, String)>, StoreError> {
    let Some((incident, channel, target)) = super::outbox::by_token(store.pool(), token).await?
    else {
        return Ok(None);
    };
    if channel != "email" {
        return Ok(None);
    }
    Ok(Some((store.get_brief(incident).await?, target)))
}

/// Acts on an e-mail link's form.
pub async fn by_link(
    store: &Store,
    token: &str,
    what: &Respond,
) -> Result<Option<Answered>, StoreError> {
    let Some((inc, address)) = link(store, token).await? else {
        return Ok(None);
    };
    let actor = format!("email:{address}");
    let outcome = answer(store, inc.id, &actor, what, "email link").await?;
    Ok(Some(Answered {
        incident: inc.id,
        outcome,
    }))
}

/// Acknowledges incident `id` as `actor`, or puts the reply on its timeline (`via`: how it
/// came); `acknowledged`, `already` or `reply`.
pub async fn answer(
    store: &Store,
    id: i64,
    actor: &str,
    what: &Respond,
    via: &str,
) -> Result<&'static str, StoreError> {
    match what {
        Respond::Acknowledge => acknowledge(store, id, actor).await,
        Respond::Reply(text) => {
            store
                .note(
                    id,
                    actor,
                    "reply",
                    &serde_json::json!({"text": text, "via": via}),
                )
                .await?;
            Ok("reply")
        }
    }
}

async fn acknowledge(store: &Store, id: i64, actor: &str) -> Result<&'static str, StoreError> {
    match store.act(id, &Action::Ack, actor).await {
        Ok(_) => Ok("acknowledged"),
        Err(StoreError::Action(ActionError::NotAllowed { .. })) => Ok("already"),
        Err(e) => Err(e),
    }
}

/// `ACK 42`, `ack #42`, `Ack42`: the incident id.
pub fn ack_code(text: &str) -> Option<i64> {
    let t = text.trim();
    // `get` also refuses a cut inside a character.
    t.get(..3).filter(|p| p.eq_ignore_ascii_case("ack"))?;
    let n = t[3..].trim_start().trim_start_matches('#').trim();
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || n.len() > 18 {
        return None;
    }
    n.parse().ok()
}

/// An SMS from `from` saying `text`.
pub async fn by_sms(store: &Store, from: &str, text: &str) -> Result<Answered, StoreError> {
    let from = from.trim();
    let actor = format!("sms:{from}");
    if let Some(id) = ack_code(text) {
        if told_by_phone(store, id, from).await? {
            return Ok(Answered {
                incident: id,
                outcome: acknowledge(store, id, &actor).await?,
            });
        }
        return Ok(Answered {
            incident: id,
            outcome: "ignored",
        });
    }
    match newest_told(store, from).await? {
        Some(id) => {
            let text: String = text.chars().take(MAX_REPLY).collect();
            store
                .note(
                    id,
                    &actor,
                    "reply",
                    &serde_json::json!({"text": text, "via": "sms"}),
                )
                .await?;
            Ok(Answered {
                incident: id,
                outcome: "reply",
            })
        }
        None => Ok(Answered {
            incident: 0,
            outcome: "ignored",
        }),
    }
}

/// Whether `number` was called or sent an SMS about incident `id`.
async fn told_by_phone(store: &Store, id: i64, number: &str) -> Result<bool, sqlx::Error> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM outbox WHERE incident_id = $1 AND target = $2
           AND channel IN ('voice', 'sms', 'task')",
    )
    .bind(id)
    .bind(number)
    .fetch_one(store.pool())
    .await?;
    Ok(n > 0)
}

/// The newest active incident `number` was told about by phone.
async fn newest_told(store: &Store, number: &str) -> Result<Option<i64>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT MAX(o.incident_id) FROM outbox o JOIN incidents i ON i.id = o.incident_id
         WHERE o.target = $1 AND o.channel IN ('voice', 'sms', 'task')
           AND i.status IN ('open', 'acknowledged')",
    )
    .bind(number)
    .fetch_one(store.pool())
    .await
}

/// `text` safe inside HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page a link shows: the incident and the form (or what was done).
pub fn page(inc: &Incident, address: &str, done: Option<&Answered>) -> String {
    let e = escape;
    let state = match done.map(|d| d.outcome) {
        Some("acknowledged") => "<p><strong>Acknowledged. Thank you.</strong></p>".to_owned(),
        Some("already") => {
            "<p><strong>It was already acknowledged or closed.</strong></p>".to_owned()
        }
        Some("reply") => "<p><strong>Your reply is on the incident.</strong></p>".to_owned(),
        _ => String::new(),
    };
    let form = if inc.status.active() {
        format!(
            r#"<form method="post"><input type="hidden" name="action" value="ack">
<button type="submit">Acknowledge incident {id}</button></form>
<form method="post"><input type="hidden" name="action" value="reply">
<p><label>Reply or question<br><textarea name="text" rows="4" cols="60" maxlength="{MAX_REPLY}"></textarea></label></p>
<button type="submit">Send</button></form>"#,
            id = inc.id
        )
    } else {
        String::new()
    };
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Vigil incident {id}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head><body>
<h1>Incident {id}: {title}</h1>
<p>Customer: {customer}. Severity: {severity}. Probable danger: {danger}. Status: {status}.</p>
<p>For {address}.</p>
{state}{form}
</body></html>"#,
        id = inc.id,
        title = e(&inc.title),
        customer = e(inc.customer.as_deref().unwrap_or("none")),
        severity = e(&inc.severity),
        danger = if inc.danger { "yes" } else { "no" },
        status = inc.status.as_str(),
        address = e(address),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ack_codes_are_read_and_other_texts_are_not() {
        assert_eq!(ack_code("ACK 42"), Some(42));
        assert_eq!(ack_code(" ack #7 "), Some(7));
        assert_eq!(ack_code("Ack42"), Some(42));
        assert_eq!(ack_code("ACK"), None);
        assert_eq!(ack_code("ACK 4 2"), None);
        assert_eq!(ack_code("acknowledged"), None);
        assert_eq!(ack_code("what is this?"), None);
        assert_eq!(ack_code("ACK 99999999999999999999"), None);
        assert_eq!(ack_code("ÄCK 1"), None);
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
