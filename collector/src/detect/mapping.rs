//! Field mappings (`rules/mappings/*.yml`): which of our events a Sigma `logsource` sees, and
//! what a rule's field names are called in our events.
//!
//! ```yaml
//! sources:
//!   - name: zeek-conn
//!     logsource: { product: zeek, service: conn }
//!     events: { event.kind: flow }          # all of these fields; a list value is any-of
//!     fields: { id.orig_h: source.ip }      # Sigma name -> our name
//! ```
//! `events` may also be a list of such maps, any of which admits an event.
//!
//! Invariants:
//! - A rule sees the events of every source its logsource selects: each of the rule's
//!   `category`, `product` and `service` that is set must equal the source's (case-insensitive);
//!   a rule with none set sees every source. A rule that selects no source loads but sees
//!   nothing, and says so.
//! - An event's sources are a bit mask ([`SourceMask`]), computed once per event; at most 64
//!   sources.

use std::collections::BTreeMap;
use std::path::Path;

use rsigma_eval::Pipeline;
use rsigma_parser::LogSource;
use serde::Deserialize;
use serde_json::Value;
use vigil_schema::Event;

/// The mapping shipped with Vigil.
pub const BUILTIN: &str = include_str!("../../../rules/mappings/vigil.yml");

pub type SourceMask = u64;

#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    sources: Vec<RawSource>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: String,
    logsource: RawLogSource,
    events: OneOrMany<BTreeMap<String, OneOrMany<Scalar>>>,
    #[serde(default)]
    fields: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLogSource {
    category: Option<String>,
    product: Option<String>,
    service: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl Scalar {
    fn into_string(self) -> String {
        match self {
            Scalar::Str(s) => s,
            Scalar::Int(i) => i.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

/// One source: a logsource and the events it stands for.
#[derive(Debug)]
pub struct Source {
    pub name: String,
    category: Option<String>,
    product: Option<String>,
    service: Option<String>,
    /// Any of these admits an event; each is a list of (field, allowed values).
    admits: Vec<Vec<(String, Vec<String>)>>,
    pub fields: BTreeMap<String, String>,
    /// The field renames as an rsigma pipeline (none when there are no renames).
    pub pipeline: Option<Pipeline>,
}

impl Source {
    /// Whether some event this source admits can carry field `name` (of our events, after
    /// the renames): under every admitting condition that names `event.kind`, some kind
    /// allowed there carries it ([`vigil_schema::fields::carried_by`]); a condition on the
    /// web category admits syslog events (access logs).
    pub fn can_carry(&self, name: &str) -> bool {
        use vigil_schema::fields::{EVENT_CATEGORY, EVENT_KIND, carried_by};
        self.admits.iter().any(|cond| {
            let kinds: Vec<&str> = match cond.iter().find(|(f, _)| f == EVENT_KIND) {
                Some((_, kinds)) => kinds.iter().map(String::as_str).collect(),
                None if cond
                    .iter()
                    .any(|(f, v)| f == EVENT_CATEGORY && v.iter().all(|c| c == "web")) =>
                {
                    vec!["syslog"]
                }
                None => return true,
            };
            kinds.iter().any(|k| carried_by(k, name))
        })
    }
}

#[derive(Debug)]
pub struct Mapping {
    pub sources: Vec<Source>,
}

impl Mapping {
    pub fn builtin() -> Self {
        // The builtin file is tested (below); failing here is a build defect.
        Self::parse(BUILTIN, "builtin rules/mappings/vigil.yml").unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn load(path: &Path) -> Result<Self, MappingError> {
        let text = std::fs::read_to_string(path).map_err(|e| MappingError::Invalid {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Several mapping files as one: their sources in order.
    pub fn merge(parts: Vec<Mapping>) -> Result<Self, MappingError> {
        let sources: Vec<Source> = parts.into_iter().flat_map(|m| m.sources).collect();
        if sources.len() > 64 {
            return Err(MappingError::Invalid {
                path: "mappings".into(),
                message: format!("{} sources; at most 64", sources.len()),
            });
        }
        Ok(Mapping { sources })
    }

    pub fn parse(text: &str, path: &str) -> Result<Self, MappingError> {
        let invalid = |message: String| MappingError::Invalid {
            path: path.to_owned(),
            message,
        };
        let raw: RawFile = yaml_serde::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if raw.sources.len() > 64 {
            return Err(invalid(format!(
                "{} sources; at most 64",
                raw.sources.len()
            )));
        }
        let mut sources = Vec::with_capacity(raw.sources.len());
        for s in raw.sources {
            let ls = &s.logsource;
            if ls.category.is_none() && ls.product.is_none() && ls.service.is_none() {
                return Err(invalid(format!(
                    "source {}: logsource needs category, product or service",
                    s.name
                )));
            }
            let admits: Vec<Vec<(String, Vec<String>)>> = s
                .events
                .into_vec()
                .into_iter()
                .map(|m| {
                    m.into_iter()
                        .map(|(k, v)| {
                            (
                                k,
                                v.into_vec().into_iter().map(Scalar::into_string).collect(),
                            )
                        })
                        .collect()
                })
                .collect();
            if admits.iter().any(Vec::is_empty) || admits.is_empty() {
                return Err(invalid(format!(
                    "source {}: events needs at least one field condition",
                    s.name
                )));
            }
            let pipeline = if s.fields.is_empty() {
                None
            } else {
                let doc = serde_json::json!({
                    "name": format!("vigil mapping {}", s.name),
                    "transformations": [{
                        "id": format!("{}-fields", s.name),
                        "type": "field_name_mapping",
                        "mapping": s.fields,
                    }],
                });
                // JSON is YAML: rsigma reads its own pipeline format from it.
                Some(
                    rsigma_eval::parse_pipeline(&doc.to_string())
                        .map_err(|e| invalid(format!("source {}: fields: {e}", s.name)))?,
                )
            };
            sources.push(Source {
                name: s.name,
                category: s.logsource.category.map(|c| c.to_lowercase()),
                product: s.logsource.product.map(|c| c.to_lowercase()),
                service: s.logsource.service.map(|c| c.to_lowercase()),
                admits,
                fields: s.fields,
                pipeline,
            });
        }
        Ok(Mapping { sources })
    }

    /// The sources a rule with this logsource sees.
    pub fn sources_for(&self, ls: &LogSource) -> SourceMask {
        let eq = |rule: &Option<String>, source: &Option<String>| match rule {
            None => true,
            Some(r) => source.as_deref() == Some(r.to_lowercase().as_str()),
        };
        self.sources
            .iter()
            .enumerate()
            .filter(|(_, s)| {
                eq(&ls.category, &s.category)
                    && eq(&ls.product, &s.product)
                    && eq(&ls.service, &s.service)
            })
            .fold(0, |m, (i, _)| m | (1 << i))
    }

    /// The sources an event belongs to.
    pub fn classify(&self, ev: &Event) -> SourceMask {
        let mut mask = 0;
        for (i, s) in self.sources.iter().enumerate() {
            if s.admits.iter().any(|all| {
                all.iter()
                    .all(|(field, allowed)| ev.get(field).is_some_and(|v| admitted(v, allowed)))
            }) {
                mask |= 1 << i;
            }
        }
        mask
    }

    pub fn names(&self, mask: SourceMask) -> Vec<&str> {
        self.sources
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, s)| s.name.as_str())
            .collect()
    }
}

fn admitted(v: &Value, allowed: &[String]) -> bool {
    match v {
        Value::String(s) => allowed.iter().any(|a| a == s),
        Value::Number(n) => {
            let n = n.to_string();
            allowed.contains(&n)
        }
        Value::Bool(b) => allowed
            .iter()
            .any(|a| a == if *b { "true" } else { "false" }),
        Value::Array(items) => items.iter().any(|i| admitted(i, allowed)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ls(category: Option<&str>, product: Option<&str>, service: Option<&str>) -> LogSource {
        LogSource {
            category: category.map(Into::into),
            product: product.map(Into::into),
            service: service.map(Into::into),
            ..LogSource::default()
        }
    }

    #[test]
    fn builtin_mapping_routes_syslog_and_flows() {
        let m = Mapping::builtin();
        let names = |mask| m.names(mask).join(",");
        let mut sshd = Event::default();
        sshd.set_str("event.kind", "syslog");
        sshd.set_str("process.name", "sshd");
        sshd.set_u64("log.syslog.facility.code", 4);
        let mut cron = Event::default();
        cron.set_str("event.kind", "syslog");
        cron.set_str("process.name", "CRON");
        cron.set_u64("log.syslog.facility.code", 9);
        let mut flow = Event::default();
        flow.set_str("event.kind", "flow");

        let linux_sshd = m.sources_for(&ls(None, Some("linux"), Some("sshd")));
        let linux = m.sources_for(&ls(None, Some("Linux"), None));
        let firewall = m.sources_for(&ls(Some("firewall"), None, None));
        let process_creation = m.sources_for(&ls(Some("process_creation"), Some("linux"), None));
        assert_eq!(names(linux_sshd), "linux-sshd");
        assert!(names(linux).contains("linux-syslog"), "{}", names(linux));
        assert_eq!(process_creation, 0, "no source for linux process creation");

        assert_ne!(m.classify(&sshd) & linux_sshd, 0);
        assert_eq!(m.classify(&cron) & linux_sshd, 0);
        assert_ne!(m.classify(&cron) & linux, 0);
        assert_eq!(m.classify(&flow) & linux, 0);
        assert_ne!(m.classify(&flow) & firewall, 0);
        assert!(m.sources.iter().any(|s| s.pipeline.is_some()));
    }

    #[test]
    fn bad_mappings_name_the_problem() {
        for (text, needle) in [
            (
                "sources: [{name: a, logsource: {}, events: {event.kind: flow}}]",
                "logsource",
            ),
            (
                "sources: [{name: a, logsource: {product: x}, events: {}}]",
                "at least one",
            ),
            (
                "sources: [{name: a, logsource: {product: x}, events: {a: b}, colour: red}]",
                "colour",
            ),
        ] {
            let err = Mapping::parse(text, "m.yml").expect_err(text).to_string();
            assert!(err.contains(needle) && err.contains("m.yml"), "{err}");
        }
    }
}
