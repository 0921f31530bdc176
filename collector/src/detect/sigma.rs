//! [`RuleEngine`] on rsigma: detection per route, correlation in one shared store.
//!
//! # Routing
//! Each detection rule is compiled once per mapping source it sees, with that source's
//! field renames. An event is classified into a source mask; the first event with a given
//! mask builds (and caches) an rsigma `Engine` holding exactly the rules that can see it,
//! so an event is never tested against a rule whose logsource excludes it.
//!
//! # Correlation
//! Every detection, whichever route found it, goes into one `CorrelationEngine`, so a
//! group (a source address, a user) is counted across agents and routes. Its windows run
//! on event time (`@timestamp`), which makes replays and tests independent of the wall
//! clock; state is bounded by group count and by entries per group.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use rsigma_eval::{
    CompiledRule, CorrelationConfig, CorrelationEngine, CorrelationEventMode, Engine,
    EvaluationResult, ResultBody, TimestampFallback,
};
use rsigma_parser::SigmaRule;
use vigil_schema::Event;

use super::engine::{Hit, HitKind, RuleEngine, RuleInfo};
use super::event::SigmaEvent;
use super::mapping::{Mapping, SourceMask};
use super::ruleset::{RuleError, Ruleset, rule_key};

/// Bounds on correlation state.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most (correlation, group) windows held; beyond, expired ones are evicted first.
    pub max_groups: usize,
    /// Most entries kept in one group's window (the oldest go first).
    pub max_group_entries: usize,
    /// Most event ids an alert names.
    pub max_event_ids: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_groups: 100_000,
            max_group_entries: 10_000,
            max_event_ids: 50,
        }
    }
}

/// Evict expired correlation windows every this many events.
const EVICT_EVERY: u64 = 4096;
/// How late an event may come (behind the newest one) and still find its windows.
const LATENESS_SECS: i64 = 24 * 3600;

struct Compiled {
    /// The rule's key (its id, else name or title), as the API and metrics name it.
    key: String,
    mask: SourceMask,
    /// (source index, the rule compiled with that source's renames)
    per_source: Vec<(usize, CompiledRule)>,
}

pub struct SigmaEngine {
    mapping: Arc<Mapping>,
    rules: Vec<Compiled>,
    filters: Vec<rsigma_parser::FilterRule>,
    routes: HashMap<SourceMask, Engine>,
    correlation: CorrelationEngine,
    info: Vec<RuleInfo>,
    /// Detection result (rule id or title) to rule key, for hits of rules without an id.
    keys: HashMap<String, String>,
    /// Detection rules only counted by correlations (`generate: false`, the default): their
    /// matches are not alerts. Keyed like `keys` (rsigma recognises these by id only, so a
    /// rule referenced by name would otherwise alert on every match).
    silent: HashSet<String>,
    /// Predicates of `value_percentile` correlations, by result key: rsigma 0.23 reports the
    /// percentile without testing it against the condition, so the test is done here.
    percentile_bounds: HashMap<String, Vec<(rsigma_parser::ConditionOperator, f64)>>,
    max_event_ids: usize,
    events: u64,
    /// Events evaluated per route since [`RuleEngine::take_evaluations`] last asked.
    evaluated: HashMap<SourceMask, u64>,
    /// The newest event time a detection was seen at (seconds).
    newest_ts: i64,
}

impl SigmaEngine {
    /// Compiles `set`; rules that cannot compile, and correlations that reference rules
    /// that did not load, are returned as errors and left out.
    pub fn build(set: Ruleset, mapping: Arc<Mapping>, limits: Limits) -> (Self, Vec<RuleError>) {
        let mut errors = set.errors;
        let file_of = |key: &str| set.files.get(key).cloned().unwrap_or_default();
        let mut correlation = CorrelationEngine::new(CorrelationConfig {
            timestamp_fields: vec![vigil_schema::fields::TIMESTAMP.to_owned()],
            timestamp_fallback: TimestampFallback::WallClock,
            max_state_entries: limits.max_groups,
            max_group_entries: Some(limits.max_group_entries),
            // One alert per correlation hit, not one per contributing detection.
            emit_detections: false,
            correlation_event_mode: CorrelationEventMode::Refs,
            max_correlation_events: limits.max_event_ids,
            ..CorrelationConfig::default()
        });
        let mut rules = Vec::new();
        let mut info = Vec::new();
        let mut keys = HashMap::new();
        // Rule id or name -> the sources the rule sees (correlations inherit them).
        let mut known: HashMap<String, SourceMask> = HashMap::new();
        // Rule id or name -> the key rsigma's results carry (the id, else the title).
        let mut result_key: HashMap<String, String> = HashMap::new();
        let mut silent = HashSet::new();
        let mut percentile_bounds = HashMap::new();
        for r in &set.collection.rules {
            let key = rule_key(&r.id, &r.name, &r.title);
            // rsigma ties a detection to the correlations that count it by the rule's id
            // only; a rule referenced by name gets its name as id.
            let mut owned;
            let r = if r.id.is_none() {
                owned = r.clone();
                owned.id = Some(key.clone());
                &owned
            } else {
                r
            };
            let mask = mapping.sources_for(&r.logsource);
            match compile(r, mask, &mapping).and_then(|per_source| {
                correlation.add_rule(r).map_err(|e| e.to_string())?;
                Ok(per_source)
            }) {
                Ok((per_source, unseen_fields)) => {
                    rules.push(Compiled {
                        key: key.clone(),
                        mask,
                        per_source,
                    });
                    for k in [&r.id, &r.name].into_iter().flatten() {
                        known.insert(k.clone(), mask);
                        result_key.insert(k.clone(), key.clone());
                    }
                    keys.insert(key.clone(), key.clone());
                    info.push(RuleInfo {
                        file: file_of(&key),
                        key,
                        id: r.id.clone(),
                        title: r.title.clone(),
                        level: r.level.map(|l| l.as_str().to_owned()),
                        kind: "detection".into(),
                        sources: mapping.names(mask).into_iter().map(Into::into).collect(),
                        unseen_fields,
                    });
                }
                Err(reason) => errors.push(RuleError {
                    file: file_of(&key),
                    rule: Some(r.title.clone()),
                    reason,
                }),
            }
        }
        // A correlation may count another one defined later: load in dependency order.
        let mut pending: Vec<&rsigma_parser::CorrelationRule> =
            set.collection.correlations.iter().collect();
        let mut available: HashSet<String> = known.keys().cloned().collect();
        let mut order = Vec::with_capacity(pending.len());
        loop {
            let before = pending.len();
            pending.retain(|c| {
                if !c.rules.iter().all(|r| available.contains(r)) {
                    return true;
                }
                available.extend([&c.id, &c.name].into_iter().flatten().cloned());
                order.push(*c);
                false
            });
            if pending.len() == before {
                break;
            }
        }
        // What is left references something missing; it is refused below, naming it.
        order.extend(pending);
        for c in order {
            let key = rule_key(&c.id, &c.name, &c.title);
            let refuse = |reason: String, errors: &mut Vec<RuleError>| {
                errors.push(RuleError {
                    file: file_of(&key),
                    rule: Some(c.title.clone()),
                    reason,
                })
            };
            let mut mask = 0;
            let mut missing = None;
            for r in &c.rules {
                match known.get(r) {
                    Some(m) => mask |= m,
                    None => missing = Some(r.clone()),
                }
            }
            if let Some(r) = missing {
                refuse(
                    format!("references rule {r:?}, which is not loaded"),
                    &mut errors,
                );
                continue;
            }
            // Group-by and value fields are renamed like the fields of the rules it counts.
            let mut mapped = c.clone();
            all_rules_by_default(&mut mapped);
            let pipelines: Vec<_> = mapping
                .sources
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .filter_map(|(_, s)| s.pipeline.clone())
                .collect();
            if let Err(e) =
                rsigma_eval::pipeline::apply_pipelines_to_correlation(&pipelines, &mut mapped)
            {
                refuse(e.to_string(), &mut errors);
                continue;
            }
            if let Err(e) = correlation.add_correlation(&mapped) {
                refuse(e.to_string(), &mut errors);
                continue;
            }
            if let (
                rsigma_parser::CorrelationType::ValuePercentile,
                rsigma_parser::CorrelationCondition::Threshold { predicates, .. },
            ) = (&c.correlation_type, &c.condition)
            {
                percentile_bounds.insert(
                    c.id.clone().unwrap_or_else(|| c.title.clone()),
                    predicates.iter().map(|(op, n)| (*op, *n as f64)).collect(),
                );
            }
            if !c.generate {
                silent.extend(c.rules.iter().filter_map(|r| result_key.get(r).cloned()));
            }
            for k in [&c.id, &c.name].into_iter().flatten() {
                known.insert(k.clone(), mask);
            }
            keys.insert(c.id.clone().unwrap_or_else(|| c.title.clone()), key.clone());
            info.push(RuleInfo {
                file: file_of(&key),
                key,
                id: c.id.clone(),
                title: c.title.clone(),
                level: c.level.map(|l| l.as_str().to_owned()),
                kind: c.correlation_type.as_str().to_owned(),
                sources: mapping.names(mask).into_iter().map(Into::into).collect(),
                unseen_fields: Vec::new(),
            });
        }
        let mut engine = SigmaEngine {
            mapping,
            rules,
            filters: Vec::new(),
            routes: HashMap::new(),
            correlation,
            info,
            keys,
            silent,
            percentile_bounds,
            max_event_ids: limits.max_event_ids,
            events: 0,
            evaluated: HashMap::new(),
            newest_ts: 0,
        };
        // A filter that does not apply to the rules is refused here, not per route later.
        let mut probe = engine.route_engine(SourceMask::MAX);
        for f in &set.collection.filters {
            match probe.apply_filter(f) {
                Ok(()) => engine.filters.push(f.clone()),
                Err(e) => errors.push(RuleError {
                    file: String::new(),
                    rule: Some(f.title.clone()),
                    reason: format!("filter: {e}"),
                }),
            }
        }
        (engine, errors)
    }

    /// An rsigma engine with the rules that see any source of `mask`.
    fn route_engine(&self, mask: SourceMask) -> Engine {
        let mut e = Engine::new();
        let rules: Vec<CompiledRule> = self
            .rules
            .iter()
            .filter(|r| r.mask & mask != 0)
            .filter_map(|r| {
                r.per_source
                    .iter()
                    .find(|(s, _)| mask & (1 << s) != 0)
                    .map(|(_, c)| c.clone())
            })
            .collect();
        e.extend_compiled_rules(rules);
        for f in &self.filters {
            // Checked at build.
            let _ = e.apply_filter(f);
        }
        e
    }

    fn hit(&self, r: EvaluationResult) -> Hit {
        let h = r.header;
        let rule_key = h
            .rule_id
            .as_ref()
            .and_then(|id| self.keys.get(id))
            .or_else(|| self.keys.get(&h.rule_title))
            .cloned()
            .unwrap_or_else(|| h.rule_title.clone());
        let kind = match r.body {
            ResultBody::Detection(_) => HitKind::Detection,
            ResultBody::Correlation(c) => HitKind::Correlation {
                correlation_type: c.correlation_type.as_str().to_owned(),
                group_key: c.group_key,
                value: c.aggregated_value,
                timespan_secs: c.timespan_secs,
                event_ids: c
                    .event_refs
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|r| r.id)
                    .take(self.max_event_ids)
                    .collect(),
            },
        };
        Hit {
            rule_key,
            rule_id: h.rule_id,
            title: h.rule_title,
            level: h.level.map(|l| l.as_str().to_owned()),
            tags: h.tags,
            kind,
        }
    }
}

fn meets(value: f64, bounds: &[(rsigma_parser::ConditionOperator, f64)]) -> bool {
    use rsigma_parser::ConditionOperator::*;
    bounds.iter().all(|(op, n)| match op {
        Lt => value < *n,
        Lte => value <= *n,
        Gt => value > *n,
        Gte => value >= *n,
        Eq => (value - n).abs() < f64::EPSILON,
        Neq => (value - n).abs() >= f64::EPSILON,
    })
}

/// The Sigma specification: a temporal correlation without a condition fires when *all* its
/// rules matched in the window. rsigma 0.23 defaults it to `gte: 1` (any one rule, which is
/// an OR, not a correlation); make the default what the specification says.
fn all_rules_by_default(c: &mut rsigma_parser::CorrelationRule) {
    use rsigma_parser::{ConditionOperator, CorrelationCondition, CorrelationType};
    if !matches!(
        c.correlation_type,
        CorrelationType::Temporal | CorrelationType::TemporalOrdered
    ) {
        return;
    }
    if let CorrelationCondition::Threshold {
        predicates,
        field: None,
        ..
    } = &mut c.condition
        && predicates.as_slice() == [(ConditionOperator::Gte, 1)]
    {
        predicates[0].1 = c.rules.len() as u64;
    }
}

/// The field names a rule's detections test (the fields of array blocks, not of their
/// members).
fn tested_fields(rule: &SigmaRule) -> BTreeSet<String> {
    fn walk(d: &rsigma_parser::Detection, out: &mut BTreeSet<String>) {
        use rsigma_parser::Detection as D;
        match d {
            D::AllOf(items) => out.extend(items.iter().filter_map(|i| i.field.name.clone())),
            D::AnyOf(ds) | D::And(ds) => ds.iter().for_each(|d| walk(d, out)),
            D::ArrayMatch { field, .. } => {
                out.insert(field.clone());
            }
            D::Conditional { named, .. } => named.values().for_each(|d| walk(d, out)),
            D::Keywords(_) => {}
        }
    }
    let mut out = BTreeSet::new();
    rule.detection
        .named
        .values()
        .for_each(|d| walk(d, &mut out));
    out
}

/// A rule compiled for each source (by index) it sees, and the fields it tests that no
/// event of any of those sources carries.
type PerSource = (Vec<(usize, CompiledRule)>, Vec<String>);

/// The rule compiled for each source it sees, and the fields it tests (renamed for each
/// source) that no event of any of those sources carries.
fn compile(rule: &SigmaRule, mask: SourceMask, mapping: &Mapping) -> Result<PerSource, String> {
    let mut out = Vec::new();
    // Fields (by the rule's own names) that some source can carry.
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let own = tested_fields(rule);
    // Rules that see no source are still compiled, so that an invalid rule is reported.
    let sources: Vec<usize> = if mask == 0 {
        Vec::new()
    } else {
        (0..mapping.sources.len())
            .filter(|i| mask & (1 << i) != 0)
            .collect()
    };
    if sources.is_empty() {
        rsigma_eval::compile_rule(rule).map_err(|e| e.to_string())?;
    }
    for i in sources {
        let source = &mapping.sources[i];
        let compiled = match source.pipeline.as_ref() {
            None => rsigma_eval::compile_rule(rule),
            Some(p) => {
                let mut r = rule.clone();
                rsigma_eval::apply_pipelines(std::slice::from_ref(p), &mut r)
                    .and_then(|()| rsigma_eval::compile_rule(&r))
            }
        }
        .map_err(|e| e.to_string())?;
        for f in &own {
            let ours = source.fields.get(f).unwrap_or(f);
            if source.can_carry(ours) {
                seen.insert(f.clone());
            }
        }
        out.push((i, compiled));
    }
    let unseen = if out.is_empty() {
        Vec::new()
    } else {
        own.difference(&seen).cloned().collect()
    };
    Ok((out, unseen))
}

impl RuleEngine for SigmaEngine {
    fn process(&mut self, event: &Event) -> Vec<Hit> {
        let mask = self.mapping.classify(event);
        if mask == 0 {
            return Vec::new();
        }
        if !self.routes.contains_key(&mask) {
            let e = self.route_engine(mask);
            self.routes.insert(mask, e);
        }
        *self.evaluated.entry(mask).or_insert(0) += 1;
        let ev = SigmaEvent(event);
        let detections = match self.routes.get(&mask) {
            Some(e) => e.evaluate(&ev),
            None => return Vec::new(),
        };
        self.events += 1;
        // Evict windows that ended more than LATENESS before the newest event: an agent that
        // sends its spool's backlog after an outage sends events older than what others sent
        // meanwhile, and their windows (and suppressions) must survive that. Memory stays
        // bounded by max_correlation_groups whatever the order.
        if self.events.is_multiple_of(EVICT_EVERY) && self.newest_ts > 0 {
            self.correlation
                .evict_expired(self.newest_ts.saturating_sub(LATENESS_SECS));
        }
        if detections.is_empty() {
            return Vec::new();
        }
        if let Some(ts) = event.timestamp() {
            self.newest_ts = self.newest_ts.max(ts.timestamp());
        }
        let results = self.correlation.correlate_detections(&ev, detections);
        results
            .into_iter()
            .filter(|r| {
                let key = r.header.rule_id.as_ref().unwrap_or(&r.header.rule_title);
                match &r.body {
                    ResultBody::Detection(_) => !self.silent.contains(key),
                    ResultBody::Correlation(c) => self
                        .percentile_bounds
                        .get(key)
                        .is_none_or(|bounds| meets(c.aggregated_value, bounds)),
                }
            })
            .map(|r| self.hit(r))
            .collect()
    }

    fn rules(&self) -> &[RuleInfo] {
        &self.info
    }

    fn state_entries(&self) -> usize {
        self.correlation.state_count()
    }

    fn take_evaluations(&mut self) -> Vec<(String, u64)> {
        let mut per_rule: HashMap<&str, u64> = HashMap::new();
        for (mask, n) in self.evaluated.drain() {
            // The rules of the route: those that see one of the event's sources.
            for r in &self.rules {
                if r.mask & mask != 0 && r.per_source.iter().any(|(s, _)| mask & (1 << s) != 0) {
                    *per_rule.entry(r.key.as_str()).or_insert(0) += n;
                }
            }
        }
        per_rule
            .into_iter()
            .map(|(k, n)| (k.to_owned(), n))
            .collect()
    }

    fn export_state(&self) -> serde_json::Value {
        serde_json::to_value(self.correlation.export_state()).unwrap_or_default()
    }

    fn import_state(&mut self, state: serde_json::Value) -> bool {
        match serde_json::from_value(state) {
            Ok(s) => self.correlation.import_state(s),
            Err(_) => false,
        }
    }
}
