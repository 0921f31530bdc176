//! Alertmanager's shapes: webhooks with its payload (version 4), so receivers written for
//! Alertmanager work unchanged, and alerts pushed to an existing Alertmanager
//! (`POST /api/v2/alerts`). One alert per incident, its labels the incident's routing labels.

use serde_json::{Value, json};

use super::text::Announcement;

/// A stable 16-hex-digit fingerprint of the labels (FNV-1a over `name=value` pairs in
/// order), as Alertmanager gives each alert one.
fn fingerprint(labels: &serde_json::Map<String, Value>) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in labels {
        for b in k
            .bytes()
            .chain([b'='])
            .chain(v.as_str().unwrap_or_default().bytes())
            .chain([0xff])
        {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// Alertmanager's "zero" time for an alert that has not ended.
const NOT_ENDED: &str = "0001-01-01T00:00:00Z";

type Map = serde_json::Map<String, Value>;

/// Whether `a` ends its incident's alert.
fn ends(a: &Announcement) -> bool {
    matches!(a.kind, "resolved" | "retracted")
}

/// The alert's labels and annotations.
fn alert(a: &Announcement) -> (Map, Map) {
    let i = &a.incident;
    let mut labels = serde_json::Map::new();
    for (k, v) in [
        ("alertname", Some(i.title.clone())),
        ("incident", Some(i.id.to_string())),
        ("severity", Some(i.severity.clone())),
        ("danger", Some(i.danger.to_string())),
        ("customer", i.customer.clone()),
        ("rule", Some(i.rule_id.clone())),
        ("group", Some(i.group_key.clone())),
    ] {
        if let Some(v) = v {
            labels.insert(k.to_owned(), Value::String(v));
        }
    }
    let mut annotations = serde_json::Map::new();
    annotations.insert("summary".into(), Value::String(a.spoken()));
    annotations.insert("vigil_kind".into(), Value::String(a.kind.to_owned()));
    if let Some(r) = &a.reason {
        annotations.insert("retraction_reason".into(), Value::String(r.clone()));
    }
    (labels, annotations)
}

/// The body of `POST /api/v2/alerts` about `a` at `now`: an active incident's alert ends at
/// `now + ttl` (unless pushed again before), an ended one at `now`.
pub fn pushed(
    a: &Announcement,
    now: chrono::DateTime<chrono::Utc>,
    ttl: chrono::Duration,
) -> Value {
    let (labels, mut annotations) = alert(a);
    annotations.remove("vigil_kind");
    let ends_at = if ends(a) { now } else { now + ttl };
    json!([{
        "labels": labels,
        "annotations": annotations,
        "startsAt": a.incident.first_seen,
        "endsAt": ends_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "generatorURL": a.incident.url,
    }])
}

/// The payload for `receiver` about `a`, from `external_url`.
pub fn payload(a: &Announcement, receiver: &str, external_url: &str) -> Value {
    let i = &a.incident;
    let ended = ends(a);
    let status = if ended { "resolved" } else { "firing" };
    let (labels, annotations) = alert(a);
    let fp = fingerprint(&labels);
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{incident=\"{}\"}}", i.id),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": {"incident": i.id.to_string()},
        "commonLabels": labels.clone(),
        "commonAnnotations": annotations.clone(),
        "externalURL": external_url,
        "alerts": [{
            "status": status,
            "labels": labels,
            "annotations": annotations,
            "startsAt": i.first_seen,
            "endsAt": if ended { i.last_seen.clone() } else { NOT_ENDED.to_owned() },
            "generatorURL": i.url,
            "fingerprint": fp,
        }],
    })
}
