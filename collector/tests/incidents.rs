//! The incident queue on a real SQLite file, and on the real PostgreSQL of the scale-out mode
//! (`VIGIL_TEST_POSTGRES_URL`), where two collectors share it.

mod postgres;

use chrono::{TimeZone, Utc};
use postgres::{drop_postgres, fresh_postgres};
use vigil_collector::incidents::lifecycle::ActionError;
use vigil_collector::incidents::{Action, Alert, Filter, Status, Store, StoreError};

fn alert(id: &str, rule: &str, group: &str, severity: &str, minute: u32) -> Alert {
    Alert {
        id: id.into(),
        rule_id: rule.into(),
        title: format!("{rule} title"),
        severity: severity.into(),
        customer: Some("uni-a".into()),
        group_key: group.into(),
        at: Utc
            .with_ymd_and_hms(2026, 11, 20, 10, minute, 0)
            .single()
            .expect("time"),
        message: Some(format!("{rule} on {group}")),
        danger: false,
        affected: Vec::new(),
        tags: Vec::new(),
        seen: Default::default(),
    }
}

fn filter(status: &str) -> Filter {
    Filter {
        status: Some(status.into()),
        ..Filter::default()
    }
}

/// The whole life of incidents, the same on either database.
async fn lifecycle(store: &Store) {
    // A storm of one rule and group is one incident with a count; another group is another.
    let storm: Vec<Alert> = (0..5)
        .map(|i| {
            alert(
                &format!("b1.a{i}"),
                "ssh-bf",
                "source.ip=10.0.0.1",
                "medium",
                i,
            )
        })
        .collect();
    let r = store.record(&storm).await.expect("record");
    assert_eq!((r.opened.len(), r.grouped, r.duplicate), (1, 4, 0));
    let first = r.opened[0];
    // A replay hands the same alerts again: nothing changes.
    let r = store.record(&storm[2..]).await.expect("replay");
    assert_eq!((r.opened.len(), r.grouped, r.duplicate), (0, 0, 3));
    let other = store
        .record(&[alert("b2.a0", "ssh-bf", "source.ip=10.0.0.2", "medium", 9)])
        .await
        .expect("record")
        .opened;
    assert_eq!(other.len(), 1);
    let inc = store.get(first).await.expect("get");
    assert_eq!(inc.count, 5);
    assert_eq!((inc.status, inc.danger), (Status::Open, false));
    assert_eq!(inc.first_seen.format("%H:%M").to_string(), "10:00");
    assert_eq!(inc.last_seen.format("%H:%M").to_string(), "10:04");
    assert_eq!(inc.customer.as_deref(), Some("uni-a"));
    assert_eq!(inc.timeline.len(), 1);
    assert_eq!(inc.timeline[0].action, "opened");
    assert_eq!(inc.timeline[0].detail["alert_id"], "b1.a0");

    // A later alert of higher level raises the severity; danger is the rule's judgement, not
    // the level.
    store
        .record(&[alert("b3.a0", "ssh-bf", "source.ip=10.0.0.1", "high", 10)])
        .await
        .expect("record");
    let inc = store.get(first).await.expect("get");
    assert_eq!(
        (inc.severity.as_str(), inc.danger, inc.count),
        ("high", false, 6)
    );
    assert_eq!(inc.timeline[1].action, "severity_raised");

    // The desk works it; every step is on the timeline with its actor.
    let act = |name: &str, body: &str| Action::parse(name, body.as_bytes()).expect("action");
    let inc = store
        .act(first, &act("ack", "{}"), "alice")
        .await
        .expect("ack");
    assert_eq!(inc.status, Status::Acknowledged);
    let again = store.act(first, &act("ack", "{}"), "bob").await;
    assert!(
        matches!(
            again,
            Err(StoreError::Action(ActionError::NotAllowed { .. }))
        ),
        "{again:?}"
    );
    store
        .act(first, &act("assign", r#"{"assignee":"noc-team"}"#), "alice")
        .await
        .expect("assign");
    store
        .act(
            first,
            &act("comment", r#"{"comment":"blocked at the edge"}"#),
            "alice",
        )
        .await
        .expect("comment");
    let inc = store
        .act(
            first,
            &act("escalate", r#"{"severity":"critical"}"#),
            "carol",
        )
        .await
        .expect("escalate");
    assert_eq!(
        (inc.severity.as_str(), inc.danger, inc.assignee.as_deref()),
        ("critical", false, Some("noc-team"))
    );
    // The operator judges it a danger.
    let inc = store
        .act(
            first,
            &act("escalate", r#"{"severity":"critical","danger":true}"#),
            "carol",
        )
        .await
        .expect("escalate");
    assert!(inc.danger);
    // A later alert of its rule, which does not judge it so, leaves the danger.
    store
        .record(&[alert("b3.a1", "ssh-bf", "source.ip=10.0.0.1", "high", 10)])
        .await
        .expect("record");
    assert!(store.get_brief(first).await.expect("get").danger);
    // Grouping still holds while acknowledged.
    let r = store
        .record(&[alert("b4.a0", "ssh-bf", "source.ip=10.0.0.1", "medium", 11)])
        .await
        .expect("record");
    assert_eq!((r.opened.len(), r.grouped), (0, 1));
    let inc = store
        .act(
            first,
            &act("resolve", r#"{"resolution":"blocked"}"#),
            "alice",
        )
        .await
        .expect("resolve");
    assert_eq!(inc.status, Status::Resolved);
    // A false alarm found out later: retracted after resolution, with the reason.
    let inc = store
        .act(first, &act("retract", r#"{"reason":"pen test"}"#), "carol")
        .await
        .expect("retract");
    assert_eq!(inc.status, Status::Retracted);
    let steps: Vec<(&str, &str)> = inc
        .timeline
        .iter()
        .map(|e| (e.actor.as_str(), e.action.as_str()))
        .collect();
    assert_eq!(
        steps,
        [
            ("vigil", "opened"),
            ("vigil", "severity_raised"),
            ("alice", "ack"),
            ("alice", "assign"),
            ("alice", "comment"),
            ("carol", "escalate"),
            ("carol", "escalate"),
            ("alice", "resolve"),
            ("carol", "retract"),
        ]
    );
    assert_eq!(inc.timeline[8].detail["reason"], "pen test");
    assert_eq!(inc.count, 8);

    // The key's next alert opens a new incident.
    let r = store
        .record(&[alert("b5.a0", "ssh-bf", "source.ip=10.0.0.1", "medium", 12)])
        .await
        .expect("record");
    assert_eq!(r.opened.len(), 1);
    assert_ne!(r.opened[0], first);

    // The queue and its filters.
    let active = store.list(&filter("active")).await.expect("list");
    let mut ids: Vec<i64> = active.iter().map(|i| i.id).collect();
    ids.sort();
    let mut want = vec![other[0], r.opened[0]];
    want.sort();
    assert_eq!(ids, want);
    assert!(active.iter().all(|i| i.timeline.is_empty()));
    assert_eq!(
        store.list(&filter("retracted")).await.expect("list").len(),
        1
    );
    let all = store.list(&Filter::default()).await.expect("list");
    assert_eq!(all.len(), 3);
    assert!(all.windows(2).all(|w| w[0].last_seen >= w[1].last_seen));
    let none = Filter {
        customer: Some("uni-b".into()),
        ..Filter::default()
    };
    assert!(store.list(&none).await.expect("list").is_empty());
    for bad in [
        filter("closed"),
        Filter {
            severity: Some("urgent".into()),
            ..Filter::default()
        },
        Filter {
            limit: Some(0),
            ..Filter::default()
        },
    ] {
        assert!(matches!(store.list(&bad).await, Err(StoreError::Filter(_))));
    }
    assert!(matches!(
        store.get(999_999).await,
        Err(StoreError::NotFound(999_999))
    ));
    assert!(matches!(
        store.act(999_999, &act("ack", "{}"), "x").await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn sqlite_queue_groups_and_records_every_step() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("sub/incidents.db").display());
    let store = Store::open(&url).await.expect("open");
    lifecycle(&store).await;
    // Reopened, everything is still there.
    drop(store);
    let store = Store::open(&url).await.expect("reopen");
    assert_eq!(store.list(&Filter::default()).await.expect("list").len(), 3);
}

#[tokio::test]
async fn postgres_queue_is_shared_by_collectors() {
    let Some((url, name)) = fresh_postgres().await else {
        return;
    };
    // Two collectors open the same database at once, then record one storm in parallel,
    // each its own alerts, in batches of 10: one incident, with every alert counted.
    let (a, b) = tokio::join!(Store::open(&url), Store::open(&url));
    let (a, b) = (a.expect("open a"), b.expect("open b"));
    let batches = |who: &'static str| {
        (0..20)
            .map(move |n| {
                (0..10)
                    .map(|i| {
                        alert(
                            &format!("{who}{n}.a{i}"),
                            "scan",
                            "source.ip=10.9.9.9",
                            "low",
                            1,
                        )
                    })
                    .collect::<Vec<_>>()
            })
            .collect::<Vec<_>>()
    };
    let run = |s: Store, who: &'static str| async move {
        let mut opened = 0;
        for b in batches(who) {
            opened += s.record(&b).await.expect("record").opened.len();
        }
        opened
    };
    let (oa, ob) = tokio::join!(
        tokio::spawn(run(a.clone(), "x")),
        tokio::spawn(run(b.clone(), "y"))
    );
    assert_eq!(
        oa.expect("a") + ob.expect("b"),
        1,
        "one incident for one storm"
    );
    let list = a.list(&filter("active")).await.expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].count, 400);
    // The other collector sees the same queue; then the whole life, on PostgreSQL.
    assert_eq!(b.list(&Filter::default()).await.expect("list"), list);
    let act = Action::parse("resolve", b"{}").expect("resolve");
    let done = b.act(list[0].id, &act, "alice").await.expect("resolve");
    assert_eq!(a.get(list[0].id).await.expect("get"), done);
    a.close().await;
    b.close().await;
    drop_postgres(&name).await;
}

#[tokio::test]
async fn postgres_queue_groups_and_records_every_step() {
    let Some((url, name)) = fresh_postgres().await else {
        return;
    };
    let store = Store::open(&url).await.expect("open");
    lifecycle(&store).await;
    store.close().await;
    drop_postgres(&name).await;
}
