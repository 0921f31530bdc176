//! A gateway's report of a call (its status callback): what was answered, by whom, and which
//! keys were pressed. Only a person acknowledges: a key press (`ack_digit`, default `1`) in a
//! call that the gateway's answering-machine detection did not mark as a machine
//! acknowledges the incident, as `phone:<number>`; a voicemail, a fax or a call without the
//! key changes nothing but the timeline.
//!
//! Providers name the fields differently; these are read, from a form, a JSON object or the
//! query string: `digits` / `Digits` (the keys pressed), `answered_by` / `AnsweredBy`
//! (`human`, `machine_start`, `machine_end_beep`, `fax`, `unknown`), `status` / `CallStatus`.

use std::collections::BTreeMap;

use crate::incidents::lifecycle::ActionError;
use crate::incidents::{Action, Store, StoreError};

/// What a callback did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    pub incident: i64,
    pub acknowledged: bool,
}

fn field<'a>(f: &'a BTreeMap<String, String>, names: &[&str]) -> Option<&'a str> {
    names.iter().find_map(|n| f.get(*n)).map(String::as_str)
}

/// Records the report of the delivery with `token`; acknowledges when a person pressed the
/// key. `None` for a token no delivery has.
pub async fn report(
    store: &Store,
    token: &str,
    fields: &BTreeMap<String, String>,
    ack_digit: &str,
) -> Result<Option<Report>, StoreError> {
    let Some((incident, channel, target)) = super::outbox::by_token(store.pool(), token).await?
    else {
        return Ok(None);
    };
    let digits = field(fields, &["digits", "Digits"]).unwrap_or("");
    let answered_by = field(fields, &["answered_by", "AnsweredBy"]).unwrap_or("");
    let status = field(fields, &["status", "CallStatus"]).unwrap_or("");
    let machine = answered_by.starts_with("machine") || answered_by == "fax";
    let pressed = !ack_digit.is_empty() && digits.contains(ack_digit);
    let person = pressed && !machine && channel == "voice";
    let detail = serde_json::json!({
        "channel": channel, "target": target, "digits": digits,
        "answered_by": answered_by, "status": status, "by_a_person": person,
    });
    store
        .note(incident, "gateway", "call_report", &detail)
        .await?;
    let mut acknowledged = false;
    if person {
        match store
            .act(incident, &Action::Ack, &format!("phone:{target}"))
            .await
        {
            Ok(_) => acknowledged = true,
            // Acknowledged (or closed) already: the report is on the timeline.
            Err(StoreError::Action(ActionError::NotAllowed { .. })) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Some(Report {
        incident,
        acknowledged,
    }))
}
