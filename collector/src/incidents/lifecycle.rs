//! What people do to an incident, and from which status: the one place these rules live.
//!
//! | action    | allowed when          | becomes        |
//! |-----------|-----------------------|----------------|
//! | ack       | open                  | acknowledged   |
//! | assign    | open, acknowledged    | (unchanged)    |
//! | comment   | any                   | (unchanged)    |
//! | escalate  | open, acknowledged    | (unchanged); sets severity and danger |
//! | resolve   | open, acknowledged    | resolved       |
//! | retract   | open, acknowledged, resolved | retracted (a reason is required) |
//!
//! A resolved incident can still be retracted: a false alarm is often found out afterwards,
//! and the people told must then hear it.

use serde::Deserialize;
use serde_json::json;

use super::{SEVERITIES, Status};

/// A lifecycle action with its body (`POST /api/v1/incidents/{id}/{action}`).
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Ack,
    Assign {
        assignee: String,
    },
    Comment {
        comment: String,
    },
    /// A new severity; danger set or taken away by the operator, else as it was.
    Escalate {
        severity: String,
        danger: Option<bool>,
    },
    Resolve {
        resolution: Option<String>,
    },
    Retract {
        reason: String,
    },
}

/// Why an action was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ActionError {
    /// The body is wrong for the action (unknown action, missing or empty field).
    #[error("{0}")]
    Invalid(String),
    /// The incident's status does not allow it.
    #[error("cannot {action} an incident that is {status}")]
    NotAllowed {
        action: &'static str,
        status: &'static str,
    },
}

/// Longest free text (comment, reason, resolution, assignee) kept.
pub const MAX_TEXT: usize = 16 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    assignee: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommentBody {
    comment: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EscalateBody {
    severity: String,
    danger: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    resolution: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetractBody {
    reason: String,
}

fn text(field: &str, v: String) -> Result<String, ActionError> {
    let v = v.trim().to_owned();
    if v.is_empty() {
        return Err(ActionError::Invalid(format!("{field} must not be empty")));
    }
    if v.len() > MAX_TEXT {
        return Err(ActionError::Invalid(format!(
            "{field} is longer than {MAX_TEXT} bytes"
        )));
    }
    Ok(v)
}

impl Action {
    /// The action named `name` with its JSON body (an empty body counts as `{}`).
    pub fn parse(name: &str, body: &[u8]) -> Result<Action, ActionError> {
        let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            body
        };
        fn de<T: serde::de::DeserializeOwned>(name: &str, body: &[u8]) -> Result<T, ActionError> {
            serde_json::from_slice(body)
                .map_err(|e| ActionError::Invalid(format!("bad body for {name}: {e}")))
        }
        Ok(match name {
            "ack" => {
                de::<Empty>(name, body)?;
                Action::Ack
            }
            "assign" => Action::Assign {
                assignee: text("assignee", de::<AssignBody>(name, body)?.assignee)?,
            },
            "comment" => Action::Comment {
                comment: text("comment", de::<CommentBody>(name, body)?.comment)?,
            },
            "escalate" => {
                let b: EscalateBody = de(name, body)?;
                if !SEVERITIES.contains(&b.severity.as_str()) {
                    return Err(ActionError::Invalid(format!(
                        "severity {:?} is not one of {}",
                        b.severity,
                        SEVERITIES.join(", ")
                    )));
                }
                Action::Escalate {
                    severity: b.severity,
                    danger: b.danger,
                }
            }
            "resolve" => Action::Resolve {
                resolution: de::<ResolveBody>(name, body)?
                    .resolution
                    .map(|r| text("resolution", r))
                    .transpose()?,
            },
            "retract" => Action::Retract {
                reason: text("reason", de::<RetractBody>(name, body)?.reason)?,
            },
            other => {
                return Err(ActionError::Invalid(format!(
                    "unknown action {other:?}: ack, assign, comment, escalate, resolve or retract"
                )));
            }
        })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Action::Ack => "ack",
            Action::Assign { .. } => "assign",
            Action::Comment { .. } => "comment",
            Action::Escalate { .. } => "escalate",
            Action::Resolve { .. } => "resolve",
            Action::Retract { .. } => "retract",
        }
    }

    /// The status after the action, or why it is not allowed from `from`.
    pub fn apply(&self, from: Status) -> Result<Status, ActionError> {
        let to = match (self, from) {
            (Action::Comment { .. }, s) => s,
            (Action::Ack, Status::Open) => Status::Acknowledged,
            (Action::Assign { .. } | Action::Escalate { .. }, s) if s.active() => s,
            (Action::Resolve { .. }, s) if s.active() => Status::Resolved,
            (Action::Retract { .. }, s) if s != Status::Retracted => Status::Retracted,
            _ => {
                return Err(ActionError::NotAllowed {
                    action: self.name(),
                    status: from.as_str(),
                });
            }
        };
        Ok(to)
    }

    /// What the timeline records beside the action's name.
    pub fn detail(&self) -> serde_json::Value {
        match self {
            Action::Ack => json!({}),
            Action::Assign { assignee } => json!({ "assignee": assignee }),
            Action::Comment { comment } => json!({ "comment": comment }),
            Action::Escalate { severity, danger } => {
                json!({ "severity": severity, "danger": danger })
            }
            Action::Resolve { resolution } => json!({ "resolution": resolution }),
            Action::Retract { reason } => json!({ "reason": reason }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_follow_the_table() {
        let ack = Action::parse("ack", b"").expect("ack");
        assert_eq!(ack.apply(Status::Open), Ok(Status::Acknowledged));
        assert!(ack.apply(Status::Acknowledged).is_err());
        let retract = Action::parse("retract", br#"{"reason":"test traffic"}"#).expect("retract");
        assert_eq!(retract.apply(Status::Resolved), Ok(Status::Retracted));
        assert_eq!(
            retract.apply(Status::Retracted),
            Err(ActionError::NotAllowed {
                action: "retract",
                status: "retracted"
            })
        );
        let resolve = Action::parse("resolve", b"{}").expect("resolve");
        assert!(resolve.apply(Status::Retracted).is_err());
        let comment = Action::parse("comment", br#"{"comment":"x"}"#).expect("comment");
        assert_eq!(comment.apply(Status::Retracted), Ok(Status::Retracted));
    }

    #[test]
    fn bodies_are_checked() {
        for (name, body) in [
            ("retract", "{}"),
            ("retract", r#"{"reason":"  "}"#),
            ("assign", r#"{"who":"x"}"#),
            ("ack", r#"{"x":1}"#),
            ("escalate", r#"{"severity":"urgent"}"#),
            ("close", "{}"),
            ("comment", "not json"),
        ] {
            assert!(
                matches!(
                    Action::parse(name, body.as_bytes()),
                    Err(ActionError::Invalid(_))
                ),
                "{name} {body}"
            );
        }
        assert_eq!(
            Action::parse("escalate", br#"{"severity":"critical"}"#),
            Ok(Action::Escalate {
                severity: "critical".into(),
                danger: None
            })
        );
    }
}
