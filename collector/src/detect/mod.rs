//! Detection: every event against every Sigma rule that can see it, streaming.
//!
//! # Layout
//! - [`ruleset`]: rule files (embedded `rules/` and configured directories), errors per file.
//! - [`mapping`]: `rules/mappings/`: which events a logsource sees, and field renames.
//! - [`engine`]: the trait a Sigma engine implements, so it can be swapped.
//! - [`sigma`]: that trait on rsigma: routing by logsource, one shared correlation store.
//! - [`event`]: our events as rsigma reads them, without rebuilding JSON.
//! - [`alert`]: a hit as an `event.kind = alert` event.
//!
//! # Invariants
//! - The detector runs on the index writer thread, on each batch the writer accepts (never
//!   a duplicate), and its alerts are handed to the incident queue, then indexed in the same
//!   batch: an alert is durable with its evidence, and a replay after a crash derives the
//!   same alert ids again (which the queue knows).
//! - Alerts are not evaluated again (no rule sees `event.kind = alert`; a correlation over
//!   other rules is rsigma's chaining).

pub mod alert;
pub mod engine;
pub mod event;
pub mod mapping;
pub mod ruleset;
pub mod sigma;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use vigil_schema::{Event, fields as f};

use crate::metrics::Metrics;
use engine::{HitKind, RuleEngine, RuleInfo};
use mapping::{Mapping, MappingError};
use ruleset::{RuleError, Ruleset};

/// `[detect]` in the collector configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    pub enabled: bool,
    /// Load Vigil's own rules (compiled in from `rules/`).
    pub builtin_rules: bool,
    /// More rule files or directories (searched recursively for .yml/.yaml).
    pub rules: Vec<PathBuf>,
    /// Mapping files; when empty, the builtin `rules/mappings/vigil.yml`.
    pub mappings: Vec<PathBuf>,
    /// Most correlation windows (rule, group) in memory.
    pub max_correlation_groups: usize,
    /// Most entries kept in one correlation window.
    pub max_group_entries: usize,
    /// How often, at most, the correlation state is saved (at an index commit), so that a
    /// crash loses none of it: the write-ahead log is kept from the last save on and replayed
    /// through detection at start.
    #[serde(deserialize_with = "vigil_schema::config::de_duration")]
    pub snapshot_interval: std::time::Duration,
}

impl Default for DetectConfig {
    fn default() -> Self {
        let l = sigma::Limits::default();
        DetectConfig {
            enabled: true,
            builtin_rules: true,
            rules: Vec::new(),
            mappings: Vec::new(),
            max_correlation_groups: l.max_groups,
            max_group_entries: l.max_group_entries,
            snapshot_interval: std::time::Duration::from_secs(10),
        }
    }
}

impl DetectConfig {
    pub fn mapping(&self) -> Result<Mapping, MappingError> {
        if self.mappings.is_empty() {
            return Ok(Mapping::builtin());
        }
        Mapping::merge(
            self.mappings
                .iter()
                .map(|p| Mapping::load(p))
                .collect::<Result<_, _>>()?,
        )
    }

    /// Loads and compiles the configured rules; rejected rules come back as errors.
    pub fn load(&self) -> Result<(sigma::SigmaEngine, Vec<RuleError>), MappingError> {
        let mapping = Arc::new(self.mapping()?);
        let set = Ruleset::load(self.builtin_rules, &self.rules);
        Ok(self.build(set, mapping))
    }

    pub fn build(
        &self,
        set: Ruleset,
        mapping: Arc<Mapping>,
    ) -> (sigma::SigmaEngine, Vec<RuleError>) {
        sigma::SigmaEngine::build(
            set,
            mapping,
            sigma::Limits {
                max_groups: self.max_correlation_groups,
                max_group_entries: self.max_group_entries,
                ..sigma::Limits::default()
            },
        )
    }
}

/// What the API shows of detection: loaded rules, rejections, hit counts.
#[derive(Default)]
pub struct DetectView {
    pub rules: RwLock<Vec<RuleInfo>>,
    pub errors: RwLock<Vec<RuleError>>,
    /// Per rule: its hits, and when it last hit.
    pub hits: Mutex<HashMap<String, (u64, chrono::DateTime<chrono::Utc>)>>,
}

#[derive(Debug, Serialize)]
pub struct RuleRow {
    #[serde(flatten)]
    pub info: RuleInfo,
    pub hits: u64,
    pub last_hit: Option<chrono::DateTime<chrono::Utc>>,
}

impl DetectView {
    pub fn rows(&self) -> Vec<RuleRow> {
        let hits = self.hits.lock().map(|h| h.clone()).unwrap_or_default();
        self.rules
            .read()
            .map(|r| r.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|info| {
                let (hits, last_hit) = match hits.get(&info.key) {
                    Some((n, at)) => (*n, Some(*at)),
                    None => (0, None),
                };
                RuleRow {
                    hits,
                    last_hit,
                    info,
                }
            })
            .collect()
    }
}

/// The detection stage: owned by the index writer thread.
pub struct Detector {
    engine: Box<dyn RuleEngine>,
    view: Arc<DetectView>,
    metrics: Arc<Metrics>,
}

impl Detector {
    pub fn new(
        engine: Box<dyn RuleEngine>,
        errors: Vec<RuleError>,
        view: Arc<DetectView>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let d = Detector {
            engine,
            view,
            metrics,
        };
        d.publish(errors);
        d
    }

    /// Swaps in a new engine, carrying over the correlation state of the rules both have.
    pub fn replace(&mut self, mut engine: Box<dyn RuleEngine>, errors: Vec<RuleError>) {
        engine.import_state(self.engine.export_state());
        self.engine = engine;
        self.publish(errors);
    }

    /// Writes the correlation state to `path` (atomically, durably), as of the events of the
    /// write-ahead log up to segment `wal_through`. Blocks on disk I/O.
    pub fn save(&self, path: &std::path::Path, wal_through: u64) -> std::io::Result<()> {
        use std::io::Write;
        let tmp = path.with_extension("tmp");
        let snapshot = serde_json::json!({
            "wal_through": wal_through,
            "state": self.engine.export_state(),
        });
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(snapshot.to_string().as_bytes())?;
        f.sync_data()?;
        std::fs::rename(&tmp, path)
    }

    /// Takes over the state saved in `path`; returns the write-ahead-log segment it is as of
    /// (events after it are to be replayed through [`Detector::process`]), or `None` when
    /// there is no usable state.
    pub fn restore(&mut self, path: &std::path::Path) -> Option<u64> {
        let text = std::fs::read_to_string(path).ok()?;
        let mut v: serde_json::Value = match serde_json::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "saved correlation state unusable; starting empty");
                return None;
            }
        };
        let through = v.get("wal_through").and_then(serde_json::Value::as_u64);
        let state = match through {
            Some(_) => v["state"].take(),
            // Saved before snapshots named their place in the log: as of the last commit.
            None => v,
        };
        if !self.engine.import_state(state) {
            tracing::warn!(path = %path.display(), "saved correlation state unusable; starting empty");
            return None;
        }
        Some(through.unwrap_or(u64::MAX))
    }

    fn publish(&self, errors: Vec<RuleError>) {
        let rules = self.engine.rules().to_vec();
        let blind = rules.iter().filter(|r| r.sources.is_empty()).count();
        let m = &self.metrics.detect_rules;
        m.get_or_create(&vec![("state", "loaded".to_owned())])
            .set(rules.len() as i64);
        m.get_or_create(&vec![("state", "blind".to_owned())])
            .set(blind as i64);
        m.get_or_create(&vec![("state", "rejected".to_owned())])
            .set(errors.len() as i64);
        for e in &errors {
            tracing::warn!(file = %e.file, rule = ?e.rule, reason = %e.reason, "sigma rule not loaded");
        }
        tracing::info!(
            rules = rules.len(),
            blind,
            rejected = errors.len(),
            "sigma rules loaded"
        );
        if let Ok(mut r) = self.view.rules.write() {
            *r = rules;
        }
        if let Ok(mut e) = self.view.errors.write() {
            *e = errors;
        }
    }

    /// Evaluates `events` (which carry their `event.id`) and returns the alerts they
    /// raise; alert ids are `<batch>.a<n>`, so a replay derives the same ones.
    pub fn process(&mut self, events: &[Event], batch_id: &str) -> Vec<Event> {
        let mut alerts = Vec::new();
        for ev in events.iter().filter(|e| !is_drill(e)) {
            for hit in self.engine.process(ev) {
                let kind = match &hit.kind {
                    HitKind::Detection => "detection",
                    HitKind::Correlation {
                        correlation_type, ..
                    } => correlation_type.as_str(),
                };
                let counter = self
                    .metrics
                    .detect_alerts
                    .get_or_create(&vec![("type", kind.to_owned())]);
                counter.inc();
                drop(counter);
                self.metrics
                    .detect_rule_hits
                    .get_or_create(&vec![("rule", hit.rule_key.clone())])
                    .inc();
                if let Ok(mut h) = self.view.hits.lock() {
                    let e = h
                        .entry(hit.rule_key.clone())
                        .or_insert((0, chrono::Utc::now()));
                    e.0 += 1;
                    e.1 = chrono::Utc::now();
                }
                let id = format!("{batch_id}.a{}", alerts.len());
                alerts.push(alert::alert(&hit, ev, id));
            }
        }
        self.metrics.detect_events.inc_by(events.len() as u64);
        for (rule, n) in self.engine.take_evaluations() {
            self.metrics
                .detect_rule_evaluations
                .get_or_create(&vec![("rule", rule)])
                .inc_by(n);
        }
        self.metrics
            .detect_correlation_groups
            .set(self.engine.state_entries() as i64);
        alerts
    }
}

/// A public alert that is a test, an exercise or a draft (CAP's `status`): searchable like
/// any event, never evaluated, so it never raises an incident.
fn is_drill(ev: &Event) -> bool {
    ev.get_str(f::EVENT_KIND) == Some("cap")
        && matches!(
            ev.get_str(f::CAP_STATUS),
            Some("Test" | "Exercise" | "Draft")
        )
}

/// Evaluates `events` with a fresh engine and returns the alerts, for `vigil rules test`
/// and `POST /api/v1/rules/test`. Events without `event.id` get their line number.
pub fn test_events(engine: &mut dyn RuleEngine, events: &mut [Event]) -> Vec<Event> {
    let mut alerts = Vec::new();
    for (n, ev) in events.iter_mut().enumerate() {
        if ev.get(f::EVENT_ID).is_none() {
            ev.set_str(f::EVENT_ID, (n + 1).to_string());
        }
        if ev.timestamp().is_none() {
            ev.set_timestamp(chrono::Utc::now());
        }
        if is_drill(ev) {
            continue;
        }
        for hit in engine.process(ev) {
            let id = format!("test.a{}", alerts.len());
            alerts.push(alert::alert(&hit, ev, id));
        }
    }
    alerts
}
