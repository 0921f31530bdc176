//! Names of the event fields of DESIGN.md, in one place so the agent, the index and the
//! detection stage cannot disagree on spelling.

/// Defines the field name constants and [`ALL`], the list that [`intern`] searches.
macro_rules! fields {
    ($($(#[$doc:meta])* $name:ident = $value:literal;)*) => {
        $($(#[$doc])* pub const $name: &str = $value;)*
        /// Every field name above.
        pub const ALL: &[&str] = &[$($name),*];
    };
}

fields! {
    TIMESTAMP = "@timestamp";
    EVENT_KIND = "event.kind";
    EVENT_DATASET = "event.dataset";
    EVENT_OUTCOME = "event.outcome";
    EVENT_START = "event.start";
    EVENT_END = "event.end";
    EVENT_DURATION = "event.duration";
    /// Set by the collector: `<batch id>.<position>`, stable across replays.
    EVENT_ID = "event.id";
    /// ECS categorisation of what an event records (`authentication`, ...).
    EVENT_CATEGORY = "event.category";
    EVENT_ACTION = "event.action";
    AGENT_ID = "agent.id";
    AGENT_NAME = "agent.name";
    HOST_NAME = "host.name";
    CUSTOMER = "customer";
    MESSAGE = "message";
    OBSERVER_IP = "observer.ip";
    /// The interface a flow was captured on.
    OBSERVER_NAME = "observer.ingress.interface.name";
    TAGS = "tags";
    /// The file a line was read from (file source).
    LOG_FILE_PATH = "log.file.path";

    SOURCE_IP = "source.ip";
    SOURCE_PORT = "source.port";
    /// A peer known only by name (a PAM `rhost` that is not an address).
    SOURCE_DOMAIN = "source.domain";
    USER_NAME = "user.name";
    DESTINATION_IP = "destination.ip";
    DESTINATION_PORT = "destination.port";
    NETWORK_TRANSPORT = "network.transport";
    NETWORK_IANA_NUMBER = "network.iana_number";
    NETWORK_BYTES = "network.bytes";
    NETWORK_PACKETS = "network.packets";
    SOURCE_BYTES = "source.bytes";
    DESTINATION_BYTES = "destination.bytes";
    SOURCE_PACKETS = "source.packets";
    DESTINATION_PACKETS = "destination.packets";
    /// ICMP type and code of an ICMP flow (which has no ports).
    ICMP_TYPE = "icmp.type";
    ICMP_CODE = "icmp.code";
    TCP_FLAGS = "tcp.flags";
    NETWORK_COMMUNITY_ID = "network.community_id";
    /// Application protocol of a flow where the source recognised it (`dns`, `http`, ...).
    NETWORK_PROTOCOL = "network.protocol";

    SYSLOG_FACILITY = "log.syslog.facility.code";
    SYSLOG_SEVERITY = "log.syslog.severity.code";
    SYSLOG_HOSTNAME = "log.syslog.hostname";
    SYSLOG_APPNAME = "log.syslog.appname";
    SYSLOG_PROCID = "log.syslog.procid";
    SYSLOG_MSGID = "log.syslog.msgid";
    PROCESS_NAME = "process.name";
    PROCESS_PID = "process.pid";

    MONITOR_ID = "monitor.id";
    MONITOR_TYPE = "monitor.type";
    MONITOR_STATUS = "monitor.status";
    URL_FULL = "url.full";
    HTTP_STATUS_CODE = "http.response.status_code";

    // Web server and proxy access logs (`event.category = web`).
    HTTP_REQUEST_METHOD = "http.request.method";
    HTTP_REQUEST_REFERRER = "http.request.referrer";
    HTTP_VERSION = "http.version";
    HTTP_RESPONSE_BYTES = "http.response.body.bytes";
    /// The request target as the client sent it (path and query, or a whole URL to a proxy).
    URL_ORIGINAL = "url.original";
    URL_PATH = "url.path";
    URL_QUERY = "url.query";
    /// The last path segment's extension, without the dot.
    URL_EXTENSION = "url.extension";
    URL_SCHEME = "url.scheme";
    URL_DOMAIN = "url.domain";
    USER_AGENT = "user_agent.original";
    TLS_NOT_AFTER = "tls.server.not_after";
    /// The addresses a DNS check's name resolved to.
    DNS_RESOLVED_IP = "dns.resolved_ip";
    ERROR_MESSAGE = "error.message";

    // Public alerts read from a watched CAP feed (`event.kind = cap`).
    CAP_IDENTIFIER = "cap.identifier";
    CAP_SENDER = "cap.sender";
    CAP_SENT = "cap.sent";
    CAP_STATUS = "cap.status";
    CAP_MSG_TYPE = "cap.msg_type";
    CAP_SCOPE = "cap.scope";
    /// The messages an `Update` or `Cancel` amends, each `sender,identifier,sent`.
    CAP_REFERENCES = "cap.references";
    CAP_EVENT = "cap.event";
    CAP_CATEGORY = "cap.category";
    CAP_URGENCY = "cap.urgency";
    CAP_SEVERITY = "cap.severity";
    CAP_CERTAINTY = "cap.certainty";
    CAP_HEADLINE = "cap.headline";
    CAP_AREA = "cap.area";

    // Alerts (`event.kind = alert`), written by the collector's detection stage.
    RULE_ID = "rule.id";
    RULE_NAME = "rule.name";
    RULE_LEVEL = "rule.level";
    /// `detection`, or the Sigma correlation type (`event_count`, `value_count`, ...).
    ALERT_TYPE = "alert.type";
    /// The correlation's group, as `field=value` pairs joined by `, `.
    ALERT_GROUP_KEY = "alert.group_key";
    /// The aggregated value that met the correlation's condition.
    ALERT_VALUE = "alert.value";
    /// The correlation's window, in seconds.
    ALERT_TIMESPAN = "alert.timespan";
    /// `event.id`s of the events behind the alert (bounded).
    ALERT_EVENT_IDS = "alert.event_ids";
}

/// Whether events of `kind` (`event.kind`) can carry field `name`: the fields of that kind
/// in the event schema, and the families of names that sources add (exporters' flow
/// elements, RFC 5424 structured data). An unknown kind may carry anything. This is what
/// `vigil rules check` holds a rule's fields against.
pub fn carried_by(kind: &str, name: &str) -> bool {
    const COMMON: &[&str] = &[
        TIMESTAMP,
        EVENT_KIND,
        EVENT_DATASET,
        EVENT_ID,
        AGENT_ID,
        AGENT_NAME,
        HOST_NAME,
        CUSTOMER,
        TAGS,
        OBSERVER_IP,
    ];
    let (names, families): (&[&str], &[&str]) = match kind {
        "flow" => (
            &[
                SOURCE_IP,
                SOURCE_PORT,
                DESTINATION_IP,
                DESTINATION_PORT,
                NETWORK_TRANSPORT,
                NETWORK_IANA_NUMBER,
                NETWORK_BYTES,
                NETWORK_PACKETS,
                SOURCE_BYTES,
                DESTINATION_BYTES,
                SOURCE_PACKETS,
                DESTINATION_PACKETS,
                ICMP_TYPE,
                ICMP_CODE,
                TCP_FLAGS,
                NETWORK_COMMUNITY_ID,
                NETWORK_PROTOCOL,
                EVENT_START,
                EVENT_END,
                EVENT_DURATION,
                EVENT_ACTION,
                EVENT_OUTCOME,
                OBSERVER_NAME,
            ],
            &[
                "netflow.",
                "observer.",
                "source.as.",
                "destination.as.",
                "source.nat.",
                "destination.nat.",
                "source.mac",
                "destination.mac",
                "network.vlan.",
            ],
        ),
        "syslog" => (
            &[
                MESSAGE,
                SYSLOG_FACILITY,
                SYSLOG_SEVERITY,
                SYSLOG_HOSTNAME,
                SYSLOG_APPNAME,
                SYSLOG_PROCID,
                SYSLOG_MSGID,
                PROCESS_NAME,
                PROCESS_PID,
                LOG_FILE_PATH,
                EVENT_CATEGORY,
                EVENT_ACTION,
                EVENT_OUTCOME,
                SOURCE_IP,
                SOURCE_PORT,
                SOURCE_DOMAIN,
                DESTINATION_IP,
                DESTINATION_PORT,
                NETWORK_TRANSPORT,
                USER_NAME,
                HTTP_REQUEST_METHOD,
                HTTP_REQUEST_REFERRER,
                HTTP_VERSION,
                HTTP_RESPONSE_BYTES,
                HTTP_STATUS_CODE,
                URL_ORIGINAL,
                URL_PATH,
                URL_QUERY,
                URL_EXTENSION,
                URL_SCHEME,
                URL_DOMAIN,
                USER_AGENT,
            ],
            &["log.syslog.structured_data."],
        ),
        "probe" | "heartbeat" | "state" => (
            &[
                MESSAGE,
                MONITOR_ID,
                MONITOR_TYPE,
                MONITOR_STATUS,
                URL_FULL,
                EVENT_DURATION,
                HTTP_STATUS_CODE,
                TLS_NOT_AFTER,
                DNS_RESOLVED_IP,
                ERROR_MESSAGE,
            ],
            &[],
        ),
        "alert" => (
            &[
                MESSAGE,
                RULE_ID,
                RULE_NAME,
                RULE_LEVEL,
                ALERT_TYPE,
                ALERT_GROUP_KEY,
                ALERT_VALUE,
                ALERT_TIMESPAN,
                ALERT_EVENT_IDS,
            ],
            &[],
        ),
        "cap" => (
            &[
                MESSAGE,
                URL_FULL,
                MONITOR_ID,
                CAP_IDENTIFIER,
                CAP_SENDER,
                CAP_SENT,
                CAP_STATUS,
                CAP_MSG_TYPE,
                CAP_SCOPE,
                CAP_REFERENCES,
                CAP_EVENT,
                CAP_CATEGORY,
                CAP_URGENCY,
                CAP_SEVERITY,
                CAP_CERTAINTY,
                CAP_HEADLINE,
                CAP_AREA,
            ],
            &[],
        ),
        _ => return true,
    };
    COMMON.contains(&name) || names.contains(&name) || families.iter().any(|f| name.starts_with(f))
}

/// `name` as a [`Key`]: the static name when it is one of [`ALL`] (no allocation, and equal
/// names share one pointer), else an owned copy.
pub fn intern(name: &str) -> Key {
    static SORTED: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    let sorted = SORTED.get_or_init(|| {
        let mut v = ALL.to_vec();
        v.sort_unstable();
        v
    });
    match sorted.binary_search(&name) {
        Ok(i) => Key::Borrowed(sorted[i]),
        Err(_) => Key::Owned(name.to_owned()),
    }
}

/// A field name: static for the names above, owned for the rest (structured data, flow
/// elements without a name of ours, fields of rules).
pub type Key = std::borrow::Cow<'static, str>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_names_intern_to_the_constant() {
        assert!(matches!(intern(SOURCE_IP), Key::Borrowed(s) if s == SOURCE_IP));
        assert!(matches!(intern("x.unknown"), Key::Owned(s) if s == "x.unknown"));
        let mut names = ALL.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len(), "a field name is defined twice");
    }
}
