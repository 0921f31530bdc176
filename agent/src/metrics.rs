//! Every metric the agent exports, in one place. Where an occurrence deserves a log line
//! too, a method here writes both, so the log and the counter cannot drift apart.
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

/// The label names of each family, by its name without the `vigil_agent_` prefix.
pub const LABELS: &[(&str, &[&str])] = &[
    ("events_received", &["listener"]),
    ("events_dropped", &["listener", "reason"]),
    ("syslog_malformed", &["listener"]),
    ("syslog_truncated", &["listener"]),
    ("connections_refused", &["listener"]),
    ("connections_timed_out", &["listener"]),
    ("connections_open", &["listener"]),
    ("tls_handshakes_failed", &["listener"]),
    ("ship_errors", &["kind"]),
    ("netflow_messages", &["exporter"]),
    ("netflow_flows", &["exporter"]),
    ("netflow_templates", &["exporter"]),
    ("netflow_decode_errors", &["exporter"]),
    ("netflow_missing_template", &["exporter"]),
    ("capture_packets", &["interface"]),
    ("capture_malformed", &["interface"]),
    ("capture_fragments", &["interface"]),
    ("capture_errors", &["interface"]),
    ("capture_kernel_drops", &["interface"]),
    ("capture_flows", &["interface", "end"]),
    ("capture_flows_active", &["interface"]),
    ("probes", &["type", "status"]),
    ("probe_duration_seconds", &["type"]),
    ("check_status", &["check"]),
];

pub struct Metrics {
    registry: Registry,
    pub events_received: Family<Labels, Counter>,
    pub events_dropped: Family<Labels, Counter>,
    pub syslog_malformed: Family<Labels, Counter>,
    pub syslog_truncated: Family<Labels, Counter>,
    pub connections_refused: Family<Labels, Counter>,
    pub connections_timed_out: Family<Labels, Counter>,
    pub connections_open: Family<Labels, Gauge>,
    pub tls_failed: Family<Labels, Counter>,
    pub batches_spooled: Counter,
    pub events_spooled: Counter,
    pub spool_bytes: Gauge,
    pub spool_batches: Gauge,
    pub spool_dropped_batches: Counter,
    pub spool_dropped_events: Counter,
    pub spool_corrupt: Counter,
    pub batches_acked: Counter,
    pub events_acked: Counter,
    pub batches_duplicate: Counter,
    pub batches_rejected: Counter,
    pub ship_errors: Family<Labels, Counter>,
    pub netflow_messages: Family<Labels, Counter>,
    pub netflow_flows: Family<Labels, Counter>,
    pub netflow_templates: Family<Labels, Counter>,
    pub netflow_decode_errors: Family<Labels, Counter>,
    pub netflow_missing_template: Family<Labels, Counter>,
    pub capture_packets: Family<Labels, Counter>,
    pub capture_malformed: Family<Labels, Counter>,
    pub capture_fragments: Family<Labels, Counter>,
    pub capture_errors: Family<Labels, Counter>,
    /// Frames the kernel dropped before capture read them (its socket buffer full).
    pub capture_kernel_drops: Family<Labels, Counter>,
    pub capture_flows: Family<Labels, Counter>,
    pub capture_flows_active: Family<Labels, Gauge>,
    pub checks: Gauge,
    pub probes: Family<Labels, Counter>,
    pub probe_drift: Histogram,
    pub probe_duration: Family<Labels, Histogram>,
    /// The last result of each check this agent runs: 1 up, 2 degraded, 3 down.
    pub check_status: Family<Labels, Gauge>,
    pub batches_in_flight: Gauge,
    /// From a batch's send to the collector's acknowledgement.
    pub ship_duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("vigil_agent");
        macro_rules! reg {
            ($name:literal, $help:literal, $m:expr) => {{
                let m = $m;
                registry.register($name, $help, m.clone());
                m
            }};
        }
        Metrics {
            events_received: reg!(
                "events_received",
                "Events read from sources, by listener",
                Family::default()
            ),
            events_dropped: reg!(
                "events_dropped",
                "Events dropped before the spool, by listener and reason",
                Family::default()
            ),
            syslog_malformed: reg!(
                "syslog_malformed",
                "Syslog messages that did not parse and were kept whole",
                Family::default()
            ),
            syslog_truncated: reg!(
                "syslog_truncated",
                "Syslog messages truncated at the maximum size",
                Family::default()
            ),
            connections_refused: reg!(
                "connections_refused",
                "TCP connections refused at the connection limit",
                Family::default()
            ),
            connections_timed_out: reg!(
                "connections_timed_out",
                "TCP connections closed after the idle timeout",
                Family::default()
            ),
            tls_failed: reg!(
                "tls_handshakes_failed",
                "TLS connections closed because the handshake failed",
                Family::default()
            ),
            connections_open: reg!(
                "connections_open",
                "TCP connections open now (at most the listener's max_connections)",
                Family::default()
            ),
            batches_spooled: reg!(
                "batches_spooled",
                "Batches written to the disk spool",
                Counter::default()
            ),
            events_spooled: reg!(
                "events_spooled",
                "Events written to the disk spool",
                Counter::default()
            ),
            spool_bytes: reg!("spool_bytes", "Bytes in the disk spool", Gauge::default()),
            spool_batches: reg!(
                "spool_batches",
                "Batches in the disk spool",
                Gauge::default()
            ),
            spool_dropped_batches: reg!(
                "spool_dropped_batches",
                "Oldest batches dropped because the spool was full",
                Counter::default()
            ),
            spool_dropped_events: reg!(
                "spool_dropped_events",
                "Events in batches dropped because the spool was full",
                Counter::default()
            ),
            spool_corrupt: reg!(
                "spool_corrupt",
                "Spool files found damaged at start and set aside",
                Counter::default()
            ),
            batches_acked: reg!(
                "batches_acked",
                "Batches acknowledged by the collector",
                Counter::default()
            ),
            events_acked: reg!(
                "events_acked",
                "Events acknowledged by the collector",
                Counter::default()
            ),
            batches_duplicate: reg!(
                "batches_duplicate",
                "Batches the collector already had (a retry after a lost ack)",
                Counter::default()
            ),
            batches_rejected: reg!(
                "batches_rejected",
                "Batches the collector refused as invalid, set aside in spool/rejected",
                Counter::default()
            ),
            ship_errors: reg!(
                "ship_errors",
                "Failed sends to the collector, by kind",
                Family::default()
            ),
            netflow_messages: reg!(
                "netflow_messages",
                "NetFlow/IPFIX messages decoded, by exporter",
                Family::default()
            ),
            netflow_flows: reg!(
                "netflow_flows",
                "Flow records decoded, by exporter",
                Family::default()
            ),
            netflow_templates: reg!(
                "netflow_templates",
                "Templates and options templates received, by exporter",
                Family::default()
            ),
            netflow_decode_errors: reg!(
                "netflow_decode_errors",
                "Datagrams that did not decode (or not to the end), by exporter",
                Family::default()
            ),
            netflow_missing_template: reg!(
                "netflow_missing_template",
                "Data sets dropped because their template is unknown, by exporter",
                Family::default()
            ),
            capture_packets: reg!(
                "capture_packets",
                "Frames captured, by interface",
                Family::default()
            ),
            capture_malformed: reg!(
                "capture_malformed",
                "Captured frames shorter than their headers say, by interface",
                Family::default()
            ),
            capture_fragments: reg!(
                "capture_fragments",
                "Non-first IP fragments captured (counted in a flow without ports)",
                Family::default()
            ),
            capture_errors: reg!(
                "capture_errors",
                "Failures to open or read the capture interface (it is retried)",
                Family::default()
            ),
            capture_kernel_drops: reg!(
                "capture_kernel_drops",
                "Frames the kernel dropped before the capture read them (socket buffer full)",
                Family::default()
            ),
            capture_flows: reg!(
                "capture_flows",
                "Flows exported by the capture, by interface and why they ended",
                Family::default()
            ),
            capture_flows_active: reg!(
                "capture_flows_active",
                "Flows in the capture's flow table",
                Family::default()
            ),
            checks: reg!("checks", "Uptime checks this agent runs", Gauge::default()),
            probes: reg!(
                "probes",
                "Probes run, by check type and result (up, degraded, down)",
                Family::default()
            ),
            check_status: reg!(
                "check_status",
                "The last result of each check this agent runs: 1 up, 2 degraded, 3 down",
                Family::default()
            ),
            batches_in_flight: reg!(
                "batches_in_flight",
                "Batches sent to the collector and not yet acknowledged",
                Gauge::default()
            ),
            ship_duration: reg!(
                "ship_duration_seconds",
                "From a batch's send to the collector's acknowledgement (durable there)",
                Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                    0.001, 2.0, 15
                ))
            ),
            probe_drift: reg!(
                "probe_drift_seconds",
                "How late a probe started against its schedule",
                Histogram::new([0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0])
            ),
            probe_duration: reg!(
                "probe_duration_seconds",
                "How long probes took, by check type (one histogram per type, not per check)",
                Family::<Labels, Histogram>::new_with_constructor(|| Histogram::new([
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0
                ]))
            ),
            registry,
        }
    }

    /// Counts what one NetFlow datagram from `exporter` gave.
    pub fn netflow(&self, exporter: &str, d: &crate::flow::netflow::Decoded) {
        let l = vec![("exporter", exporter.to_owned())];
        for (fam, n) in [
            (&self.netflow_messages, d.messages),
            (&self.netflow_flows, d.flows),
            (&self.netflow_templates, d.templates),
            (&self.netflow_decode_errors, d.errors),
            (&self.netflow_missing_template, d.missing_template),
        ] {
            if n > 0 {
                fam.get_or_create(&l).inc_by(n);
            }
        }
    }

    /// Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    pub fn spool_dropped(&self, seq: u64, events: u64, bytes: u64) {
        tracing::warn!(seq, events, bytes, "spool full: dropped oldest batch");
        self.spool_dropped_batches.inc();
        self.spool_dropped_events.inc_by(events);
    }

    pub fn ship_error(&self, kind: &'static str) {
        self.ship_errors
            .get_or_create(&vec![("kind", kind.to_owned())])
            .inc();
    }
}

pub fn listener_label(name: &str) -> Labels {
    vec![("listener", name.to_owned())]
}
