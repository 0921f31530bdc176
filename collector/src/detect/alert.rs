//! A hit becomes an `event.kind = alert` event, indexed beside its evidence: it carries the
//! evidence's time, customer and host, the group's fields under their own names (so a hunt
//! for `source.ip:1.2.3.4` finds the alert too), and the ids of the events behind it.

use serde_json::Value;
use vigil_schema::{Event, EventKind, fields as f};

use super::engine::{Hit, HitKind};

/// Fields of a detection's event that the alert repeats, for pivoting and routing.
const CONTEXT: &[&str] = &[
    f::CUSTOMER,
    f::HOST_NAME,
    f::AGENT_ID,
    f::AGENT_NAME,
    f::SOURCE_IP,
    f::SOURCE_PORT,
    f::DESTINATION_IP,
    f::DESTINATION_PORT,
    f::USER_NAME,
    f::OBSERVER_IP,
    f::MONITOR_ID,
];

/// The alert for `hit`, raised by `ev`; `id` becomes its `event.id`.
pub fn alert(hit: &Hit, ev: &Event, id: String) -> Event {
    let at = ev.timestamp().unwrap_or_else(chrono::Utc::now);
    let mut a = Event::new(EventKind::Alert, at);
    a.set_str(f::EVENT_ID, id);
    a.set_str(f::EVENT_DATASET, "vigil.detect");
    a.set_str(f::RULE_NAME, hit.title.as_str());
    a.set_str(f::RULE_ID, hit.rule_key.as_str());
    if let Some(l) = &hit.level {
        a.set_str(f::RULE_LEVEL, l.as_str());
    }
    if !hit.tags.is_empty() {
        a.set(f::TAGS, Value::from(hit.tags.clone()));
    }
    match &hit.kind {
        HitKind::Detection => {
            a.set_str(f::ALERT_TYPE, "detection");
            for &k in CONTEXT {
                if let Some(v) = ev.get(k) {
                    a.set(k, v.clone());
                }
            }
            if let Some(m) = ev.message() {
                a.set_str(f::MESSAGE, format!("{}: {m}", hit.title));
            } else {
                a.set_str(f::MESSAGE, hit.title.as_str());
            }
            if let Some(eid) = ev.get(f::EVENT_ID) {
                a.set(f::ALERT_EVENT_IDS, Value::Array(vec![eid.clone()]));
            }
        }
        HitKind::Correlation {
            correlation_type,
            group_key,
            value,
            timespan_secs,
            event_ids,
        } => {
            a.set_str(f::ALERT_TYPE, correlation_type.as_str());
            for k in [f::CUSTOMER, f::AGENT_ID, f::AGENT_NAME] {
                if let Some(v) = ev.get(k) {
                    a.set(k, v.clone());
                }
            }
            let group: Vec<String> = group_key.iter().map(|(k, v)| format!("{k}={v}")).collect();
            for (k, v) in group_key {
                a.set_str(f::intern(k), v.as_str());
            }
            a.set_str(f::ALERT_GROUP_KEY, group.join(", "));
            a.set(
                f::ALERT_VALUE,
                serde_json::Number::from_f64(*value).map_or(Value::Null, Value::Number),
            );
            a.set_u64(f::ALERT_TIMESPAN, *timespan_secs);
            a.set(
                f::ALERT_EVENT_IDS,
                Value::Array(event_ids.iter().map(|i| Value::from(i.as_str())).collect()),
            );
            a.set_str(
                f::MESSAGE,
                format!(
                    "{}: {} {} in {}s for {}",
                    hit.title,
                    correlation_type,
                    value,
                    timespan_secs,
                    group.join(", ")
                ),
            );
        }
    }
    a
}
