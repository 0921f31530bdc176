//! What the desk does besides working the queue, on real SQLite and PostgreSQL: incidents
//! taken by hand, merged and split, and the shift log.

mod postgres;

use chrono::{TimeZone, Utc};
use postgres::{on_postgres, on_sqlite};
use vigil_collector::incidents::desk::Manual;
use vigil_collector::incidents::lifecycle::ActionError;
use vigil_collector::incidents::{Alert, Status, Store, StoreError};

fn alert(id: &str, rule: &str, customer: &str, minute: u32, danger: bool) -> Alert {
    Alert {
        id: id.into(),
        rule_id: rule.into(),
        title: format!("{rule} title"),
        severity: if danger { "high" } else { "low" }.into(),
        customer: Some(customer.into()),
        group_key: format!("host.name={rule}-host"),
        at: Utc
            .with_ymd_and_hms(2026, 11, 20, 10, minute, 0)
            .single()
            .expect("time"),
        message: None,
        danger,
        affected: Vec::new(),
        tags: vec![format!("tag.{rule}")],
        seen: Default::default(),
    }
}

fn manual(title: &str, severity: &str) -> Manual {
    Manual {
        title: title.into(),
        customer: Some("ulb".into()),
        assets: vec!["rtr-1".into()],
        category: Some("outage".into()),
        severity: severity.into(),
        danger: false,
        ticket: Some("ULB-4711".into()),
        description: Some("called at 14:05".into()),
    }
}

fn invalid(r: Result<impl std::fmt::Debug, StoreError>) -> String {
    match r {
        Err(StoreError::Action(ActionError::Invalid(m))) => m,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn ids(inc: &vigil_collector::incidents::Incident) -> Vec<String> {
    let mut v: Vec<String> = inc.alerts.iter().map(|a| a.id.clone()).collect();
    v.sort();
    v
}

async fn desk(store: Store) {
    // Two detected incidents: three alerts of one rule, two of another (danger, high).
    let a: Vec<Alert> = (0..3)
        .map(|i| alert(&format!("a{i}"), "ra", "uni-a", i, false))
        .collect();
    let b: Vec<Alert> = (0..2)
        .map(|i| alert(&format!("b{i}"), "rb", "kul", 10 + i, true))
        .collect();
    let one = store.record(&a).await.expect("record").opened[0];
    let two = store.record(&b).await.expect("record").opened[0];

    // Taken by hand: no alert, the caller's ticket, the desk's category.
    let m = store
        .open_manual(&manual("  VPN down at ULB ", "low"), "bob")
        .await
        .expect("manual");
    assert_eq!(
        (m.title.as_str(), m.count, m.status, m.rule_id.as_str()),
        ("VPN down at ULB", 0, Status::Open, "manual")
    );
    assert_eq!(m.ticket.as_deref(), Some("ULB-4711"));
    assert_eq!(m.category.as_deref(), Some("outage"));
    assert_eq!(m.assets, ["rtr-1"]);
    assert_eq!(
        (m.timeline[0].action.as_str(), m.timeline[0].actor.as_str()),
        ("opened", "bob")
    );
    assert_eq!(m.timeline[0].detail["ticket"], "ULB-4711");
    assert!(
        invalid(store.open_manual(&manual("x", "apocalyptic"), "bob").await).contains("severity")
    );
    assert!(invalid(store.open_manual(&manual("   ", "low"), "bob").await).contains("title"));

    // Both detected incidents are the problem phoned in: merged into it.
    let merged = store
        .merge(m.id, &[one, two, one], "bob")
        .await
        .expect("merge");
    assert_eq!(merged.count, 5);
    assert_eq!(ids(&merged), ["a0", "a1", "a2", "b0", "b1"]);
    // Its span takes in theirs (it was last seen when the call came, after them).
    assert_eq!(merged.first_seen, a[0].at);
    assert_eq!(merged.last_seen, m.last_seen);
    assert_eq!((merged.severity.as_str(), merged.danger), ("high", true));
    assert_eq!(merged.affected, ["kul", "uni-a"]);
    assert_eq!(merged.tags, ["tag.ra", "tag.rb"]);
    let steps: Vec<&str> = merged.timeline.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        steps,
        [
            "opened",
            "merged",
            "merged",
            "customers_added",
            "danger_raised"
        ]
    );
    for old in [one, two] {
        let o = store.get(old).await.expect("get");
        assert_eq!((o.status, o.merged_into), (Status::Resolved, Some(m.id)));
        assert!(o.alerts.is_empty(), "its alerts moved");
        assert_eq!(
            o.timeline.last().map(|e| e.action.as_str()),
            Some("merged_into")
        );
    }
    // What cannot be merged.
    assert!(invalid(store.merge(m.id, &[m.id], "bob").await).contains("itself"));
    assert!(invalid(store.merge(m.id, &[], "bob").await).contains("1 to"));
    assert!(matches!(
        store.merge(m.id, &[one], "bob").await,
        Err(StoreError::Action(ActionError::NotAllowed {
            action: "merge",
            status: "resolved"
        }))
    ));
    assert!(matches!(
        store.merge(one, &[m.id], "bob").await,
        Err(StoreError::Action(ActionError::NotAllowed { .. }))
    ));
    assert!(matches!(
        store.merge(m.id, &[999_999], "bob").await,
        Err(StoreError::NotFound(999_999))
    ));
    // A refused merge changed nothing.
    assert_eq!(store.get(m.id).await.expect("get").count, 5);

    // The rule's next alert opens an incident of its own: the merged one's key is closed.
    let next = store
        .record(&[alert("a9", "ra", "uni-a", 30, false)])
        .await
        .expect("record");
    assert_eq!(next.opened.len(), 1);
    assert_ne!(next.opened[0], m.id);

    // Two of its alerts were another problem: split off.
    let n = store
        .split(
            m.id,
            &["a1".into(), "a2".into()],
            Some("the other problem"),
            "carol",
        )
        .await
        .expect("split");
    assert_eq!(
        (n.title.as_str(), n.count, n.status),
        ("the other problem", 2, Status::Open)
    );
    assert_eq!(ids(&n), ["a1", "a2"]);
    assert_eq!((n.first_seen, n.last_seen), (a[1].at, a[2].at));
    assert_eq!((n.severity.as_str(), n.danger), ("high", true));
    assert_eq!(n.timeline[0].detail["split_from"], m.id);
    let kept = store.get(m.id).await.expect("get");
    assert_eq!(kept.count, 3);
    assert_eq!(ids(&kept), ["a0", "b0", "b1"]);
    assert_eq!((kept.first_seen, kept.last_seen), (a[0].at, b[1].at));
    assert_eq!(
        kept.timeline.last().map(|e| e.action.as_str()),
        Some("split")
    );
    // Not its alert, or all of them: refused, naming why.
    assert!(invalid(store.split(m.id, &["a9".into()], None, "carol").await).contains("\"a9\""));
    assert!(
        invalid(
            store
                .split(
                    m.id,
                    &["a0".into(), "b0".into(), "b1".into()],
                    None,
                    "carol"
                )
                .await
        )
        .contains("all of")
    );
    assert_eq!(store.get(m.id).await.expect("get").count, 3);

    // The shift log, newest first.
    let first = store
        .shift_note("alice", "  router rtr-1 flaps, watch it ")
        .await
        .expect("note");
    assert_eq!(first.text, "router rtr-1 flaps, watch it");
    store
        .shift_note("bob", "ULB-4711 handed to netops")
        .await
        .expect("note");
    let log = store.shift_log(10).await.expect("log");
    let who: Vec<&str> = log.iter().map(|n| n.author.as_str()).collect();
    assert_eq!(who, ["bob", "alice"]);
    assert_eq!(store.shift_log(1).await.expect("log").len(), 1);
    assert!(invalid(store.shift_note("bob", "   ").await).contains("text"));
    assert!(matches!(
        store.shift_log(0).await,
        Err(StoreError::Filter(_))
    ));
}

#[tokio::test]
async fn sqlite_desk_takes_merges_splits_and_keeps_the_shift_log() {
    on_sqlite(desk).await;
}

#[tokio::test]
async fn postgres_desk_takes_merges_splits_and_keeps_the_shift_log() {
    on_postgres(desk).await;
}
