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

/// The payload for `receiver` about `a`, from `external_url`: a group of one, the incident.
pub fn payload(a: &Announcement, receiver: &str, external_url: &str) -> Value {
    let group = [("incident".to_owned(), a.incident.id.to_string())].into();
    group_payload(std::slice::from_ref(a), receiver, &group, external_url)
}

/// What every map of `maps` holds with the same value.
fn common(maps: &[Map]) -> Map {
    let Some((first, rest)) = maps.split_first() else {
        return Map::new();
    };
    first
        .iter()
        .filter(|(k, v)| rest.iter().all(|m| m.get(*k) == Some(*v)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// The payload for `receiver` about a group's incidents (`anns`, an alert each) with the
/// group's labels `group`, from `external_url`: `firing` while one of them is.
pub fn group_payload(
    anns: &[Announcement],
    receiver: &str,
    group: &std::collections::BTreeMap<String, String>,
    external_url: &str,
) -> Value {
    let mut all_labels = Vec::new();
    let mut all_annotations = Vec::new();
    let mut alerts = Vec::new();
    for a in anns {
        let i = &a.incident;
        let ended = ends(a);
        let status = if ended { "resolved" } else { "firing" };
        let (labels, annotations) = alert(a);
        alerts.push(json!({
            "status": status,
            "labels": labels,
            "annotations": annotations,
            "startsAt": i.first_seen,
            "endsAt": if ended { i.last_seen.clone() } else { NOT_ENDED.to_owned() },
            "generatorURL": i.url,
            "fingerprint": fingerprint(&labels),
        }));
        all_labels.push(labels);
        all_annotations.push(annotations);
    }
    let firing = anns.iter().any(|a| !ends(a));
    let key = group
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join(",");
    json!({
        "version": "4",
        "groupKey": format!("{{}}:{{{key}}}"),
        "truncatedAlerts": 0,
        "status": if firing { "firing" } else { "resolved" },
        "receiver": receiver,
        "groupLabels": group,
        "commonLabels": common(&all_labels),
        "commonAnnotations": common(&all_annotations),
        "externalURL": external_url,
        "alerts": alerts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::incidents::Incident;
    use crate::notify::plan::Kind;

    fn incident(id: i64, severity: &str) -> Incident {
        Incident {
            id,
            title: format!("incident {id}"),
            severity: severity.into(),
            ..crate::notify::text::tests::incident(false)
        }
    }

    #[test]
    fn a_group_s_payload_has_an_alert_per_incident_and_what_they_share() {
        let anns: Vec<Announcement> = [incident(1, "high"), incident(2, "low")]
            .iter()
            .map(|i| Announcement::new(Kind::Opened, i, "http://v", Vec::new()))
            .collect();
        let group = [("customer".to_owned(), "ulb".to_owned())].into();
        let p = group_payload(&anns, "desk", &group, "http://v");
        assert_eq!(p["version"], "4");
        assert_eq!(p["status"], "firing");
        assert_eq!(p["groupKey"], "{}:{customer=\"ulb\"}");
        assert_eq!(p["groupLabels"], json!({"customer": "ulb"}));
        let alerts = p["alerts"].as_array().expect("alerts");
        assert_eq!(alerts.len(), 2);
        assert_eq!(alerts[1]["labels"]["incident"], "2");
        assert_ne!(alerts[0]["fingerprint"], alerts[1]["fingerprint"]);
        // Shared: customer and rule; not the incident, its title or its severity.
        let common = p["commonLabels"].as_object().expect("common");
        assert_eq!(common.get("customer"), Some(&json!("ulb")));
        assert_eq!(common.get("rule"), Some(&json!("ssh-bf")));
        assert!(!common.contains_key("incident") && !common.contains_key("severity"));
        // A group of one is the single incident's payload.
        let one = payload(&anns[0], "desk", "http://v");
        assert_eq!(one["groupLabels"], json!({"incident": "1"}));
        assert_eq!(one["commonLabels"], one["alerts"][0]["labels"]);
    }
}
