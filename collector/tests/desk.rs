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

/// The queue's filters, sorts and pages, as the desk asks for them.
async fn queue_filters(store: Store) {
    use vigil_collector::incidents::{Action, Filter};
    let now = Utc::now();
    let a = |id: &str, minutes_ago: i64, severity: &str, danger: bool| {
        let mut al = alert(id, id, "uni-a", 0, danger);
        al.severity = severity.into();
        al.at = now - chrono::Duration::minutes(minutes_ago);
        al
    };
    let alerts = vec![
        a("old", 120, "critical", false),
        a("low", 10, "low", false),
        a("high", 5, "high", true),
        a("med", 1, "medium", false),
    ];
    store.record(&alerts).await.expect("record");
    let by_rule = |l: &[vigil_collector::incidents::Incident]| -> Vec<String> {
        l.iter().map(|i| i.rule_id.clone()).collect()
    };
    let list = |f: Filter| {
        let store = store.clone();
        async move { store.list(&f).await.expect("list") }
    };
    // Most recently seen first, by default.
    assert_eq!(
        by_rule(&list(Filter::default()).await),
        ["med", "high", "low", "old"]
    );
    let id_of = |rule: &str, l: &[vigil_collector::incidents::Incident]| {
        l.iter().find(|i| i.rule_id == rule).expect("incident").id
    };
    let all = list(Filter::default()).await;
    let assign = Action::parse("assign", br#"{"assignee": "alice"}"#).expect("assign");
    store
        .act(id_of("low", &all), &assign, "bob")
        .await
        .expect("assign");
    for (filter, want) in [
        (
            Filter {
                assignee: Some("alice".into()),
                ..Filter::default()
            },
            vec!["low"],
        ),
        (
            Filter {
                assignee: Some("-".into()),
                ..Filter::default()
            },
            vec!["med", "high", "old"],
        ),
        (
            Filter {
                danger: Some(true),
                ..Filter::default()
            },
            vec!["high"],
        ),
        (
            Filter {
                danger: Some(false),
                ..Filter::default()
            },
            vec!["med", "low", "old"],
        ),
        (
            Filter {
                since: Some("1h".into()),
                ..Filter::default()
            },
            vec!["med", "high", "low"],
        ),
        (
            Filter {
                sort: Some("severity".into()),
                ..Filter::default()
            },
            vec!["old", "high", "med", "low"],
        ),
        (
            Filter {
                sort: Some("id".into()),
                ..Filter::default()
            },
            {
                let mut v: Vec<(i64, &str)> = ["old", "low", "high", "med"]
                    .iter()
                    .map(|r| (id_of(r, &all), *r))
                    .collect();
                v.sort_by_key(|x| std::cmp::Reverse(x.0));
                v.into_iter().map(|(_, r)| r).collect()
            },
        ),
        (
            Filter {
                limit: Some(2),
                offset: Some(2),
                ..Filter::default()
            },
            vec!["low", "old"],
        ),
    ] {
        let got = list(filter.clone()).await;
        assert_eq!(by_rule(&got), want, "{filter:?}");
        let n = store.count(&filter).await.expect("count");
        let unpaged = Filter {
            limit: None,
            offset: None,
            ..filter
        };
        assert_eq!(n as usize, list(unpaged).await.len());
    }
    assert_eq!(store.count(&Filter::default()).await.expect("count"), 4);
    for bad in [
        Filter {
            sort: Some("colour".into()),
            ..Filter::default()
        },
        Filter {
            since: Some("soon".into()),
            ..Filter::default()
        },
        Filter {
            offset: Some(2_000_000),
            ..Filter::default()
        },
    ] {
        assert!(
            matches!(store.list(&bad).await, Err(StoreError::Filter(_))),
            "{bad:?}"
        );
    }
}

#[tokio::test]
async fn sqlite_queue_filters_sorts_and_pages() {
    on_sqlite(queue_filters).await;
}

#[tokio::test]
async fn postgres_queue_filters_sorts_and_pages() {
    on_postgres(queue_filters).await;
}
