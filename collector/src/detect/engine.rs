//! The contract between the detection stage and a Sigma engine, so the engine can be
//! swapped: one event in, hits out; rules listed; correlation state counted, exported
//! and imported (a reload keeps the state of unchanged correlations).

use serde::Serialize;
use vigil_schema::Event;

/// One rule that fired on one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The key the rule is known by (id, else name, else title).
    pub rule_key: String,
    pub rule_id: Option<String>,
    pub title: String,
    pub level: Option<String>,
    pub tags: Vec<String>,
    pub kind: HitKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum HitKind {
    /// A detection rule matched this event.
    Detection,
    /// A correlation's condition was met by this event and earlier ones.
    Correlation {
        correlation_type: String,
        /// (field, value) of the group, in the rule's `group-by` order.
        group_key: Vec<(String, String)>,
        value: f64,
        timespan_secs: u64,
        /// `event.id`s of the latest events of the group (bounded).
        event_ids: Vec<String>,
    },
}

/// A loaded rule, as `GET /api/v1/rules` and `vigil rules check` show it.
#[derive(Debug, Clone, Serialize)]
pub struct RuleInfo {
    pub key: String,
    pub id: Option<String>,
    pub title: String,
    pub level: Option<String>,
    /// `detection` or the correlation type.
    pub kind: String,
    pub file: String,
    /// The mapping sources whose events the rule sees; empty: it sees none.
    pub sources: Vec<String>,
    /// Fields the rule tests (after the mapping's renames) that no event it sees carries:
    /// the parts of the rule that can never match.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unseen_fields: Vec<String>,
}

pub trait RuleEngine: Send {
    /// Evaluates one event; correlation windows run on the event's `@timestamp`.
    fn process(&mut self, event: &Event) -> Vec<Hit>;
    fn rules(&self) -> &[RuleInfo];
    /// Correlation window entries held in memory.
    fn state_entries(&self) -> usize;
    /// How many events each rule (by key) was evaluated on since the last call; rules that
    /// evaluated none may be left out.
    fn take_evaluations(&mut self) -> Vec<(String, u64)> {
        Vec::new()
    }
    fn export_state(&self) -> serde_json::Value;
    /// Takes over the state of correlations that exist in both; false if unusable.
    fn import_state(&mut self, state: serde_json::Value) -> bool;
}
