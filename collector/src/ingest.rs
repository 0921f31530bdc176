//! What a batch becomes at ingest, between its acknowledgement and detection and indexing:
//! each event gets what only the collector knows (the authenticated agent, a stable id, a
//! time when it has none) and what agents leave to the collector (the fields a flow's other
//! fields imply, its Community ID).
//!
//! # Invariants
//! - [`enrich`] depends on the batch alone: a batch replayed from the write-ahead log after a
//!   crash yields the same events, the same `event.id`s and so the same alert ids.
//! - Fields an event already has are kept (a Community ID an exporter computed, a total).

use vigil_schema::{Batch, Event, community_id, fields as f, flow};

/// A batch's events as [`enrich`] makes them, with their times (parsed once).
pub struct Enriched {
    pub batch_id: String,
    pub events: Vec<Event>,
    pub times: Vec<chrono::DateTime<chrono::Utc>>,
}

/// The events of a batch as they are stored: each gets the batch's agent id, an
/// `event.id` of `<batch id>.<position>`, without a valid `@timestamp` its batch's
/// creation time, a flow the fields that follow from others ([`flow::complete`]) and,
/// without a `network.community_id`, its Community ID (agents leave these to the
/// collector). Deterministic, so a replay after a crash yields the same
/// events.
pub fn enrich(batch: Batch) -> Enriched {
    let batch_id = batch.batch_id.to_string();
    let batch_time = batch
        .batch_id
        .get_timestamp()
        .map(|ts| {
            let (s, ns) = ts.to_unix();
            chrono::DateTime::from_timestamp(s as i64, ns).unwrap_or_default()
        })
        .unwrap_or_default();
    let agent_id = batch.agent_id;
    let mut times = Vec::with_capacity(batch.events.len());
    let events = batch
        .events
        .into_iter()
        .enumerate()
        .map(|(n, mut e)| {
            e.set_str(f::AGENT_ID, agent_id.as_str());
            e.set_str(f::EVENT_ID, format!("{batch_id}.{n}"));
            flow::complete(&mut e);
            if e.get(f::NETWORK_COMMUNITY_ID).is_none()
                && let Some(id) = community_id::of_event(&e)
            {
                e.set_str(f::NETWORK_COMMUNITY_ID, &*id);
            }
            let at = e.timestamp().unwrap_or_else(|| {
                e.set_timestamp(batch_time);
                batch_time
            });
            times.push(at);
            e
        })
        .collect();
    Enriched {
        batch_id,
        events,
        times,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use uuid::Uuid;

    use super::*;

    fn batch(events: Vec<Event>) -> Batch {
        Batch {
            batch_id: Uuid::now_v7(),
            agent_id: "edge-1".into(),
            seq: 0,
            events,
        }
    }

    fn event(msg: &str, at: &str, extra: &[(&str, Value)]) -> Event {
        let mut e = Event::default();
        e.set_str(f::TIMESTAMP, at);
        e.set_str(f::EVENT_KIND, "flow");
        e.set_str(f::MESSAGE, msg);
        for (k, v) in extra {
            e.set(k.to_string(), v.clone());
        }
        e
    }

    #[test]
    fn flows_get_their_community_id_at_ingest_and_keep_one_they_have() {
        let tcp = |extra: &[(&str, Value)]| {
            let mut base = vec![
                (f::SOURCE_IP, Value::from("1.2.3.4")),
                (f::DESTINATION_IP, Value::from("5.6.7.8")),
                (f::SOURCE_PORT, Value::from(1122)),
                (f::DESTINATION_PORT, Value::from(3344)),
                (f::NETWORK_IANA_NUMBER, Value::from("6")),
            ];
            base.extend_from_slice(extra);
            event("tcp", "2026-11-22T10:00:00Z", &base)
        };
        let mut syslog = tcp(&[]);
        syslog.set_str(f::EVENT_KIND, "syslog");
        let batch = batch(vec![
            tcp(&[]),
            tcp(&[(f::NETWORK_COMMUNITY_ID, Value::from("1:given"))]),
            syslog,
        ]);
        let enriched = enrich(batch);
        let ids: Vec<Option<&str>> = enriched
            .events
            .iter()
            .map(|e| e.get_str(f::NETWORK_COMMUNITY_ID))
            .collect();
        // The spec's vector for this flow.
        assert_eq!(
            ids,
            [
                Some("1:wCb3OG7yAFWelaUydu0D+125CLM="),
                Some("1:given"),
                None
            ]
        );
    }

    /// What an agent leaves out of a flow event (fields that follow from others) is there
    /// once the batch is ingested, and its time is the flow's end.
    #[test]
    fn flows_as_agents_send_them_are_completed_at_ingest() {
        // The fields an agent writes for a bidirectional TCP flow, and no more.
        let mut sent = Event::default();
        for (k, v) in [
            (f::EVENT_KIND, Value::from("flow")),
            (f::SOURCE_IP, Value::from("1.2.3.4")),
            (f::DESTINATION_IP, Value::from("5.6.7.8")),
            (f::SOURCE_PORT, Value::from(1122)),
            (f::DESTINATION_PORT, Value::from(3344)),
            (f::NETWORK_IANA_NUMBER, Value::from("6")),
            (f::SOURCE_BYTES, Value::from(100)),
            (f::SOURCE_PACKETS, Value::from(2)),
            (f::DESTINATION_BYTES, Value::from(50)),
            (f::TCP_FLAGS, Value::from(0x12)),
            (f::EVENT_START, Value::from("2026-09-21T14:13:20Z")),
            (f::EVENT_END, Value::from("2026-09-21T14:13:21.5Z")),
        ] {
            sent.set(k.to_owned(), v);
        }
        let enriched = enrich(batch(vec![sent]));
        let e = &enriched.events[0];
        assert_eq!(e.get_u64(f::NETWORK_BYTES), Some(150));
        assert_eq!(e.get_u64(f::NETWORK_PACKETS), Some(2));
        assert_eq!(e.get_str(f::NETWORK_TRANSPORT), Some("tcp"));
        assert_eq!(e.get_u64(f::EVENT_DURATION), Some(1_500_000_000));
        assert_eq!(
            e.get(f::TCP_FLAGS),
            Some(&serde_json::json!(["SYN", "ACK"]))
        );
        assert_eq!(e.get_str(f::TIMESTAMP), e.get_str(f::EVENT_END));
        assert_eq!(
            enriched.times[0],
            chrono::DateTime::from_timestamp(1_790_000_001, 500_000_000).expect("time")
        );
        assert_eq!(
            e.get_str(f::NETWORK_COMMUNITY_ID),
            Some("1:wCb3OG7yAFWelaUydu0D+125CLM=")
        );
    }

    /// Each event gets the batch's agent and its position; one without a time gets the
    /// batch's, and enriching the same batch twice (a replay) gives the same events.
    #[test]
    fn agent_ids_and_times_are_set_and_a_replay_enriches_the_same() {
        let mut e = Event::default();
        e.set_str(f::MESSAGE, "no time");
        let b = batch(vec![e.clone(), e]);
        let id = b.batch_id;
        let once = enrich(b.clone());
        assert_eq!(
            once.events[1].get_str(f::EVENT_ID),
            Some(&*format!("{id}.1"))
        );
        assert_eq!(once.events[0].get_str(f::AGENT_ID), Some("edge-1"));
        let (s, ns) = id.get_timestamp().expect("v7").to_unix();
        let created = chrono::DateTime::from_timestamp(s as i64, ns).expect("time");
        assert_eq!(once.times, [created, created]);
        assert_eq!(enrich(b).events, once.events);
    }
}
