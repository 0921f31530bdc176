//! Every metric the collector exports, in one place.
//!
//! # Invariants
//! - [`LABELS`] names the labels of every family (metrics with labels); the dashboards in
//!   `dashboards/` are held to it and to the registry by a test.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// The label names of each family, by its name without the `vigil_` prefix.
pub const LABELS: &[(&str, &[&str])] = &[
    ("ingest_batches", &["outcome"]),
    ("ingest_rejected", &["code"]),
    ("ingest_agent_events", &["agent"]),
    ("ingest_agent_bytes", &["agent"]),
    ("detect_rule_hits", &["rule"]),
    ("detect_rule_evaluations", &["rule"]),
    ("incidents_open", &["severity", "customer"]),
    ("index_partition_docs", &["partition"]),
    ("index_partition_bytes", &["partition"]),
    ("index_partitions_dropped", &["reason"]),
    ("search_errors", &["code"]),
    ("detect_alerts", &["type"]),
    ("detect_rules", &["state"]),
    ("detect_reloads", &["outcome"]),
    ("incidents_alerts", &["outcome"]),
    ("incidents_actions", &["action"]),
    ("notify_attempts", &["channel", "outcome"]),
    ("incident_deadlines_breached", &["deadline"]),
    ("notify_replies", &["via", "outcome"]),
    ("notify_sms_sent", &["customer"]),
    ("heartbeat_pings", &["kind"]),
    ("heartbeat_transitions", &["to"]),
    ("outside_pings", &["kind", "outcome"]),
    ("check_state", &["check"]),
    ("cap_feed_reads", &["outcome"]),
];

pub struct Metrics {
    registry: Registry,
    pub ingest_batches: Family<Labels, Counter>,
    pub ingest_events: Counter,
    pub ingest_rejected: Family<Labels, Counter>,
    /// Per agent: bounded by the agents configured.
    pub ingest_agent_events: Family<Labels, Counter>,
    pub ingest_agent_bytes: Family<Labels, Counter>,
    pub index_commit_duration: Histogram,
    pub search_duration: Histogram,
    pub aggregate_duration: Histogram,
    /// Per rule: bounded by the rules loaded.
    pub detect_rule_hits: Family<Labels, Counter>,
    /// Events each rule was evaluated on (those its logsource sees).
    pub detect_rule_evaluations: Family<Labels, Counter>,
    /// Per severity and customer: bounded by the customers.
    pub incidents_open: Family<Labels, Gauge>,
    pub notify_outbox_oldest: Gauge,
    /// Per partition (a day): bounded by retention.
    pub index_partition_docs: Family<Labels, Gauge>,
    pub index_partition_bytes: Family<Labels, Gauge>,
    pub wal_syncs: Counter,
    pub wal_bytes: Counter,
    pub wal_replayed_batches: Counter,
    pub detect_replayed_batches: Counter,
    pub index_commits: Counter,
    pub index_docs: Gauge,
    pub index_partitions: Gauge,
    pub index_disk_bytes: Gauge,
    pub index_partitions_dropped: Family<Labels, Counter>,
    pub aggregate_requests: Counter,
    pub search_requests: Counter,
    pub search_errors: Family<Labels, Counter>,
    pub detect_events: Counter,
    pub detect_alerts: Family<Labels, Counter>,
    pub detect_correlation_groups: Gauge,
    pub detect_rules: Family<Labels, Gauge>,
    pub detect_reloads: Family<Labels, Counter>,
    pub incidents_alerts: Family<Labels, Counter>,
    pub incidents_opened: Counter,
    pub incidents_errors: Counter,
    pub incidents_actions: Family<Labels, Counter>,
    pub notify_attempts: Family<Labels, Counter>,
    pub incident_deadlines_breached: Family<Labels, Counter>,
    pub notify_replies: Family<Labels, Counter>,
    pub notify_sms_sent: Family<Labels, Counter>,
    pub notify_breakers_open: Gauge,
    pub heartbeat_pings: Family<Labels, Counter>,
    pub heartbeat_transitions: Family<Labels, Counter>,
    pub outside_pings: Family<Labels, Counter>,
    pub check_state: Family<Labels, Gauge>,
    pub cap_feed_reads: Family<Labels, Counter>,
}

/// 1 ms to about 16 s, doubling.
fn latency_buckets() -> impl Iterator<Item = f64> {
    prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 15)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("vigil");
        macro_rules! reg {
            ($name:literal, $help:literal, $m:expr) => {{
                let m = $m;
                registry.register($name, $help, m.clone());
                m
            }};
        }
        Metrics {
            ingest_batches: reg!(
                "ingest_batches",
                "Batches acknowledged to agents, by outcome (accepted, duplicate)",
                Family::default()
            ),
            ingest_events: reg!(
                "ingest_events",
                "Events accepted (durable in the write-ahead log)",
                Counter::default()
            ),
            ingest_rejected: reg!(
                "ingest_rejected",
                "Ingest requests refused, by error code",
                Family::default()
            ),
            ingest_agent_events: reg!(
                "ingest_agent_events",
                "Events accepted, by agent",
                Family::default()
            ),
            ingest_agent_bytes: reg!(
                "ingest_agent_bytes",
                "Compressed batch bytes accepted, by agent",
                Family::default()
            ),
            index_commit_duration: reg!(
                "index_commit_duration_seconds",
                "How long an index commit took (the write-ahead log rotated, the partition committed and reopened)",
                Histogram::new(latency_buckets())
            ),
            search_duration: reg!(
                "search_duration_seconds",
                "How long a search took, answered or refused",
                Histogram::new(latency_buckets())
            ),
            aggregate_duration: reg!(
                "aggregate_duration_seconds",
                "How long an aggregation took, answered or refused",
                Histogram::new(latency_buckets())
            ),
            detect_rule_hits: reg!(
                "detect_rule_hits",
                "Alerts raised, by rule",
                Family::default()
            ),
            detect_rule_evaluations: reg!(
                "detect_rule_evaluations",
                "Events evaluated, by rule (the events its logsource sees)",
                Family::default()
            ),
            incidents_open: reg!(
                "incidents_open",
                "Open and acknowledged incidents, by severity and customer (none: the empty string)",
                Family::default()
            ),
            notify_outbox_oldest: reg!(
                "notify_outbox_oldest_seconds",
                "Age of the oldest notification not yet sent or given up (0: none waits)",
                Gauge::default()
            ),
            index_partition_docs: reg!(
                "index_partition_docs",
                "Documents committed in each index partition (a day of arrival, YYYY-MM-DD)",
                Family::default()
            ),
            index_partition_bytes: reg!(
                "index_partition_bytes",
                "Bytes each index partition takes on disk (the one being written measured at each commit, the others at each retention pass)",
                Family::default()
            ),
            wal_syncs: reg!(
                "wal_syncs",
                "Write-ahead log fsyncs (each one acknowledges a group of batches)",
                Counter::default()
            ),
            wal_bytes: reg!(
                "wal_bytes",
                "Bytes appended to the write-ahead log",
                Counter::default()
            ),
            wal_replayed_batches: reg!(
                "wal_replayed_batches",
                "Batches re-indexed from the write-ahead log at start",
                Counter::default()
            ),
            detect_replayed_batches: reg!(
                "detect_replayed_batches",
                "Indexed batches run through detection again at start, to rebuild the correlation state its last save lacked",
                Counter::default()
            ),
            index_commits: reg!("index_commits", "Index commits", Counter::default()),
            index_partitions: reg!(
                "index_partitions",
                "Index partitions (one per day of arrival)",
                Gauge::default()
            ),
            index_disk_bytes: reg!(
                "index_disk_bytes",
                "Bytes the index partitions take on disk (measured at each retention pass)",
                Gauge::default()
            ),
            index_partitions_dropped: reg!(
                "index_partitions_dropped",
                "Index partitions dropped by retention, by reason (age, size)",
                Family::default()
            ),
            aggregate_requests: reg!(
                "aggregate_requests",
                "Aggregation requests",
                Counter::default()
            ),
            index_docs: reg!(
                "index_docs",
                "Documents in the committed index",
                Gauge::default()
            ),
            search_requests: reg!("search_requests", "Search requests", Counter::default()),
            search_errors: reg!(
                "search_errors",
                "Search requests refused, by error code",
                Family::default()
            ),
            detect_events: reg!(
                "detect_events",
                "Events evaluated against the Sigma rules",
                Counter::default()
            ),
            detect_alerts: reg!(
                "detect_alerts",
                "Alerts raised, by type (detection or the correlation type)",
                Family::default()
            ),
            detect_correlation_groups: reg!(
                "detect_correlation_groups",
                "Correlation windows (rule, group) held in memory",
                Gauge::default()
            ),
            detect_rules: reg!(
                "detect_rules",
                "Sigma rules by state (loaded, rejected, blind: loaded but no mapped events)",
                Family::default()
            ),
            detect_reloads: reg!(
                "detect_reloads",
                "Rule reloads, by outcome",
                Family::default()
            ),
            incidents_alerts: reg!(
                "incidents_alerts",
                "Alerts handed to the incident queue, by outcome (opened, grouped, duplicate)",
                Family::default()
            ),
            incidents_opened: reg!(
                "incidents_opened",
                "Incidents opened by alerts",
                Counter::default()
            ),
            incidents_errors: reg!(
                "incidents_errors",
                "Failed attempts to hand alerts to the incident database (retried; ingest waits)",
                Counter::default()
            ),
            incidents_actions: reg!(
                "incidents_actions",
                "Lifecycle actions taken on incidents, by action",
                Family::default()
            ),
            notify_attempts: reg!(
                "notify_attempts",
                "Notification attempts, by channel and outcome (sent, retry, failed: given up)",
                Family::default()
            ),
            incident_deadlines_breached: reg!(
                "incident_deadlines_breached",
                "Incident deadlines that passed, by deadline (acknowledge, resolve)",
                Family::default()
            ),
            notify_replies: reg!(
                "notify_replies",
                "Answers from people told, by way (email, sms) and outcome (acknowledged, already, reply, ignored)",
                Family::default()
            ),
            notify_sms_sent: reg!(
                "notify_sms_sent",
                "SMS sent, by the customer of the incident (what the SMS gateway bills)",
                Family::default()
            ),
            notify_breakers_open: reg!(
                "notify_breakers_open",
                "Notification channels (or endpoints) not tried for a while because they keep failing",
                Gauge::default()
            ),
            heartbeat_pings: reg!(
                "heartbeat_pings",
                "Heartbeat pings recorded, by kind (success, start, fail, log; not_found)",
                Family::default()
            ),
            heartbeat_transitions: reg!(
                "heartbeat_transitions",
                "Heartbeats that changed state, by new state (up, down)",
                Family::default()
            ),
            outside_pings: reg!(
                "outside_pings",
                "Pings of this Vigil's own heartbeat outside, by kind (success, fail) and outcome (sent, refused, unreachable)",
                Family::default()
            ),
            check_state: reg!(
                "check_state",
                "Each uptime check's state by quorum: 0 unknown, 1 up, 2 degraded, 3 down",
                Family::default()
            ),
            cap_feed_reads: reg!(
                "cap_feed_reads",
                "Reads of watched CAP feeds, by outcome (new alerts, unchanged, failed)",
                Family::default()
            ),
            registry,
        }
    }

    /// Seconds since `start`, into `h`.
    pub fn time(h: &Histogram, start: std::time::Instant) {
        h.observe(start.elapsed().as_secs_f64());
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }

    pub fn rejected(&self, code: &str) {
        self.ingest_rejected
            .get_or_create(&vec![("code", code.to_owned())])
            .inc();
    }
}
