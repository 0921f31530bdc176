//! Names of the event fields of DESIGN.md, in one place so the agent, the index and the
//! detection stage cannot disagree on spelling.

pub const TIMESTAMP: &str = "@timestamp";
pub const EVENT_KIND: &str = "event.kind";
pub const EVENT_DATASET: &str = "event.dataset";
pub const EVENT_OUTCOME: &str = "event.outcome";
pub const EVENT_START: &str = "event.start";
pub const EVENT_END: &str = "event.end";
pub const EVENT_DURATION: &str = "event.duration";
/// Set by the collector: `<batch id>.<position>`, stable across replays.
pub const EVENT_ID: &str = "event.id";
/// ECS categorisation of what an event records (`authentication`, ...).
pub const EVENT_CATEGORY: &str = "event.category";
pub const EVENT_ACTION: &str = "event.action";
pub const AGENT_ID: &str = "agent.id";
pub const AGENT_NAME: &str = "agent.name";
pub const HOST_NAME: &str = "host.name";
pub const CUSTOMER: &str = "customer";
pub const MESSAGE: &str = "message";
pub const OBSERVER_IP: &str = "observer.ip";
/// The interface a flow was captured on.
pub const OBSERVER_NAME: &str = "observer.ingress.interface.name";
pub const TAGS: &str = "tags";
/// The file a line was read from (file source).
pub const LOG_FILE_PATH: &str = "log.file.path";

pub const SOURCE_IP: &str = "source.ip";
pub const SOURCE_PORT: &str = "source.port";
/// A peer known only by name (a PAM `rhost` that is not an address).
pub const SOURCE_DOMAIN: &str = "source.domain";
pub const USER_NAME: &str = "user.name";
pub const DESTINATION_IP: &str = "destination.ip";
pub const DESTINATION_PORT: &str = "destination.port";
pub const NETWORK_TRANSPORT: &str = "network.transport";
pub const NETWORK_IANA_NUMBER: &str = "network.iana_number";
pub const NETWORK_BYTES: &str = "network.bytes";
pub const NETWORK_PACKETS: &str = "network.packets";
pub const SOURCE_BYTES: &str = "source.bytes";
pub const DESTINATION_BYTES: &str = "destination.bytes";
pub const SOURCE_PACKETS: &str = "source.packets";
pub const DESTINATION_PACKETS: &str = "destination.packets";
/// ICMP type and code of an ICMP flow (which has no ports).
pub const ICMP_TYPE: &str = "icmp.type";
pub const ICMP_CODE: &str = "icmp.code";
pub const TCP_FLAGS: &str = "tcp.flags";
pub const NETWORK_COMMUNITY_ID: &str = "network.community_id";
/// Application protocol of a flow where the source recognised it (`dns`, `http`, ...).
pub const NETWORK_PROTOCOL: &str = "network.protocol";

pub const SYSLOG_FACILITY: &str = "log.syslog.facility.code";
pub const SYSLOG_SEVERITY: &str = "log.syslog.severity.code";
pub const SYSLOG_HOSTNAME: &str = "log.syslog.hostname";
pub const SYSLOG_APPNAME: &str = "log.syslog.appname";
pub const SYSLOG_PROCID: &str = "log.syslog.procid";
pub const SYSLOG_MSGID: &str = "log.syslog.msgid";
pub const PROCESS_NAME: &str = "process.name";
pub const PROCESS_PID: &str = "process.pid";

pub const MONITOR_ID: &str = "monitor.id";
pub const MONITOR_TYPE: &str = "monitor.type";
pub const MONITOR_STATUS: &str = "monitor.status";
pub const URL_FULL: &str = "url.full";
pub const HTTP_STATUS_CODE: &str = "http.response.status_code";

// Web server and proxy access logs (`event.category = web`).
pub const HTTP_REQUEST_METHOD: &str = "http.request.method";
pub const HTTP_REQUEST_REFERRER: &str = "http.request.referrer";
pub const HTTP_VERSION: &str = "http.version";
pub const HTTP_RESPONSE_BYTES: &str = "http.response.body.bytes";
/// The request target as the client sent it (path and query, or a whole URL to a proxy).
pub const URL_ORIGINAL: &str = "url.original";
pub const URL_PATH: &str = "url.path";
pub const URL_QUERY: &str = "url.query";
/// The last path segment's extension, without the dot.
pub const URL_EXTENSION: &str = "url.extension";
pub const URL_SCHEME: &str = "url.scheme";
pub const URL_DOMAIN: &str = "url.domain";
pub const USER_AGENT: &str = "user_agent.original";
pub const TLS_NOT_AFTER: &str = "tls.server.not_after";
pub const ERROR_MESSAGE: &str = "error.message";

// Alerts (`event.kind = alert`), written by the collector's detection stage.
pub const RULE_ID: &str = "rule.id";
pub const RULE_NAME: &str = "rule.name";
pub const RULE_LEVEL: &str = "rule.level";
/// `detection`, or the Sigma correlation type (`event_count`, `value_count`, ...).
pub const ALERT_TYPE: &str = "alert.type";
/// The correlation's group, as `field=value` pairs joined by `, `.
pub const ALERT_GROUP_KEY: &str = "alert.group_key";
/// The aggregated value that met the correlation's condition.
pub const ALERT_VALUE: &str = "alert.value";
/// The correlation's window, in seconds.
pub const ALERT_TIMESPAN: &str = "alert.timespan";
/// `event.id`s of the events behind the alert (bounded).
pub const ALERT_EVENT_IDS: &str = "alert.event_ids";
