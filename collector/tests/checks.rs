//! Uptime checks' state by quorum on real SQLite and PostgreSQL with a controlled clock: two
//! vantage points and a quorum of 2. Down from one of them only is no incident; down from
//! both, held for an interval, opens one; an agent that stops reporting does not count, so
//! the survivor's word alone makes the state `unknown` (saying 1 of 2 reported), not `down`;
//! both up again resolves the incident with the outage's length, counted by hand here.

mod postgres;

use chrono::{DateTime, Duration, TimeZone, Utc};
use postgres::{TestClock, on_postgres, on_sqlite};
use vigil_collector::incidents::{Filter, Status, Store};
use vigil_collector::reference::directory::{Shared, Source};
use vigil_collector::uptime::check::{Check, Checks};
use vigil_collector::uptime::quorum::{Quorum, RULE, Seen};
use vigil_schema::check::ProbeStatus;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0)
        .single()
        .expect("a time")
}

fn at(s: i64) -> DateTime<Utc> {
    t0() + Duration::seconds(s)
}

fn seen(status: ProbeStatus, s: i64) -> Seen {
    Seen {
        status,
        at: at(s),
        error: (status == ProbeStatus::Down).then(|| "connection refused".to_owned()),
    }
}

async fn scenario(store: Store) {
    let clock = TestClock::at(t0().timestamp_millis());
    let store = store.with_clock(clock.clock());
    let check: Check = serde_json::from_value(serde_json::json!({
        "name": "Portal", "type": "http", "target": "http://portal.example/",
        "interval": "10s", "timeout": "5s", "quorum": 2, "danger": true,
    }))
    .expect("a check");
    let check = check
        .checked(&["a".into(), "b".into()], &Default::default())
        .expect("valid");
    assert_eq!(check.id, "portal");
    let metrics = std::sync::Arc::new(vigil_collector::metrics::Metrics::new());
    let q = Quorum::new(
        store.clone(),
        clock.clock(),
        Shared::new(Checks {
            list: vec![(check, Source::Api)],
        }),
        vec!["a".into(), "b".into()],
        metrics.clone(),
    );
    let both = |sa: ProbeStatus, sb: ProbeStatus, s: i64| {
        q.record("a", vec![("portal".into(), seen(sa, s))]);
        q.record("b", vec![("portal".into(), seen(sb, s))]);
    };
    let eval = |s: i64| {
        clock.set(at(s).timestamp_millis());
        q.evaluate(at(s))
    };
    let state = || async { q.states().await.expect("states")["portal"].clone() };
    let incidents = || async { store.list(&Filter::default()).await.expect("list") };

    assert!(eval(0).await.expect("round").is_empty());
    assert_eq!(state().await.state, "unknown");
    both(ProbeStatus::Up, ProbeStatus::Up, 0);
    assert!(
        eval(0).await.expect("round").is_empty(),
        "damped: not yet an interval"
    );
    assert_eq!(
        eval(10).await.expect("round"),
        [("portal".to_owned(), "up".to_owned())]
    );

    // Down from a only: with a quorum of 2, still up; no incident.
    both(ProbeStatus::Down, ProbeStatus::Up, 20);
    assert!(eval(20).await.expect("round").is_empty());
    assert!(eval(31).await.expect("round").is_empty());
    assert_eq!(state().await.state, "up");
    assert!(incidents().await.is_empty());

    // Down from both, held for an interval: down, one incident.
    both(ProbeStatus::Down, ProbeStatus::Down, 40);
    assert!(eval(40).await.expect("round").is_empty());
    assert_eq!(
        eval(50).await.expect("round"),
        [("portal".to_owned(), "down".to_owned())]
    );
    assert!(eval(51).await.expect("round").is_empty());
    assert!(
        metrics
            .render()
            .contains("vigil_check_state{check=\"portal\"} 3"),
        "{}",
        metrics.render()
    );
    let inc = incidents().await;
    assert_eq!(inc.len(), 1);
    assert_eq!(
        (inc[0].rule_id.as_str(), inc[0].group_key.as_str()),
        (RULE, "check=portal")
    );
    assert_eq!(inc[0].title, "Check Portal is down");
    assert!(inc[0].danger);
    let opened = store.get(inc[0].id).await.expect("incident");
    assert_eq!(
        opened.timeline[0].detail["message"],
        "2 of 2 vantage points say down (quorum 2): a: connection refused; b: connection refused"
    );

    // b stops reporting: its last result (at 40) is fresh until 65 (two intervals and a
    // timeout); after, a alone is fewer than the quorum: unknown, not down.
    q.record("a", vec![("portal".into(), seen(ProbeStatus::Down, 70))]);
    assert!(eval(70).await.expect("round").is_empty());
    q.record("a", vec![("portal".into(), seen(ProbeStatus::Down, 80))]);
    assert_eq!(
        eval(80).await.expect("round"),
        [("portal".to_owned(), "unknown".to_owned())]
    );
    let s = state().await;
    assert_eq!(
        (s.state.as_str(), s.reported, s.expected),
        ("unknown", 1, 2)
    );
    assert_eq!(
        incidents().await[0].status,
        Status::Open,
        "unknown does not resolve"
    );

    // Both up again: up after an interval, the incident resolved, down from 50 to 100.
    both(ProbeStatus::Up, ProbeStatus::Up, 90);
    assert!(eval(90).await.expect("round").is_empty());
    both(ProbeStatus::Up, ProbeStatus::Up, 100);
    assert_eq!(
        eval(100).await.expect("round"),
        [("portal".to_owned(), "up".to_owned())]
    );
    let done = store.get(inc[0].id).await.expect("incident");
    assert_eq!(done.status, Status::Resolved);
    let ended = done
        .timeline
        .iter()
        .find(|e| e.action == "outage_ended")
        .expect("the outage on the timeline");
    assert_eq!(ended.detail["duration_seconds"], 50);

    // Availability over the last 24 h, to the second: up 10..50 (40 s), down 50..80 (30 s),
    // unknown 80..100 (neither).
    let s = state().await;
    assert_eq!(s.availability.day, Some(40.0 / 70.0));
    assert_eq!(s.availability.down_seconds_24h, 30);
    assert_eq!(s.availability.quarter, Some(40.0 / 70.0));

    // A result older than the last of its agent changes nothing (a spool drained late).
    q.record("a", vec![("portal".into(), seen(ProbeStatus::Down, 60))]);
    assert_eq!(state().await.vantage[0].seen.at, at(100));
}

#[tokio::test]
async fn quorum_on_sqlite() {
    on_sqlite(scenario).await;
}

#[tokio::test]
async fn quorum_on_postgres() {
    on_postgres(scenario).await;
}

/// An agent cut off from the collector: the state goes `unknown` (nobody reported), and its
/// results, arriving later from its spool, never page but count for availability, interval
/// by interval, where the state was unknown. Counted by hand: up 10..50 s (live), down
/// 50..70 s and up 70..100 s (late), unknown after: 70 s up of 90 s known, 20 s down.
async fn late_scenario(store: Store) {
    let clock = TestClock::at(t0().timestamp_millis());
    let store = store.with_clock(clock.clock());
    let c: Check = serde_json::from_value(serde_json::json!({
        "name": "Portal", "type": "http", "target": "http://portal.example/",
        "interval": "10s", "timeout": "5s",
    }))
    .expect("a check");
    let c = c
        .checked(&["a".into()], &Default::default())
        .expect("valid");
    let q = Quorum::new(
        store.clone(),
        clock.clock(),
        Shared::new(Checks {
            list: vec![(c, Source::Api)],
        }),
        vec!["a".into()],
        std::sync::Arc::new(vigil_collector::metrics::Metrics::new()),
    );
    let eval = |s: i64| {
        clock.set(at(s).timestamp_millis());
        q.evaluate(at(s))
    };
    q.record("a", vec![("portal".into(), seen(ProbeStatus::Up, 0))]);
    eval(0).await.expect("round");
    eval(10).await.expect("round");
    // Cut off: its last result is too old from 26 s on; unknown, damped, at 50 s.
    eval(40).await.expect("round");
    assert_eq!(
        eval(50).await.expect("round"),
        [("portal".to_owned(), "unknown".to_owned())]
    );
    // Back at 130 s with its spool: down at 52 and 62 s, up from 72 s; and a live result.
    clock.set(at(130).timestamp_millis());
    let late: Vec<(String, Seen)> = [
        (52, ProbeStatus::Down),
        (62, ProbeStatus::Down),
        (72, ProbeStatus::Up),
        (82, ProbeStatus::Up),
        (92, ProbeStatus::Up),
        (130, ProbeStatus::Up),
    ]
    .into_iter()
    .map(|(s, st)| ("portal".to_owned(), seen(st, s)))
    .collect();
    q.record("a", late);
    assert_eq!(q.backfill().await.expect("backfill"), 5);
    assert!(eval(130).await.expect("round").is_empty(), "damped");
    assert_eq!(
        eval(140).await.expect("round"),
        [("portal".to_owned(), "up".to_owned())]
    );
    // Nothing paged: the late downs opened no incident.
    assert!(
        store
            .list(&Filter::default())
            .await
            .expect("list")
            .is_empty()
    );
    let st = q.states().await.expect("states")["portal"].clone();
    assert_eq!(st.availability.down_seconds_24h, 20);
    let ratio = st.availability.day.expect("known");
    assert!((ratio - 70.0 / 90.0).abs() < 1e-9, "{ratio}");
    // The same late results again change nothing.
    q.record(
        "a",
        vec![("portal".to_owned(), seen(ProbeStatus::Down, 82))],
    );
    assert_eq!(q.backfill().await.expect("backfill"), 0);
}

#[tokio::test]
async fn late_results_count_for_availability_on_sqlite() {
    on_sqlite(late_scenario).await;
}

#[tokio::test]
async fn late_results_count_for_availability_on_postgres() {
    on_postgres(late_scenario).await;
}

/// Two collectors sharing PostgreSQL, each taking one agent's results: with a quorum of 2,
/// each decides on both agents' results (pooled in the database), so the check goes down when
/// both say so, with one incident, and each collector shows both vantage points.
async fn pooled_scenario(store: Store) {
    let clock = TestClock::at(t0().timestamp_millis());
    let store = store.with_clock(clock.clock());
    let c: Check = serde_json::from_value(serde_json::json!({
        "name": "Portal", "type": "http", "target": "http://portal.example/",
        "interval": "10s", "timeout": "5s", "quorum": 2,
    }))
    .expect("a check");
    let c = c
        .checked(&["a".into(), "b".into()], &Default::default())
        .expect("valid");
    let collector = || {
        Quorum::new(
            store.clone(),
            clock.clock(),
            Shared::new(Checks {
                list: vec![(c.clone(), Source::Api)],
            }),
            vec!["a".into(), "b".into()],
            std::sync::Arc::new(vigil_collector::metrics::Metrics::new()),
        )
    };
    let (one, two) = (collector(), collector());
    let (one, two) = (&one, &two);
    let round = |s: i64| {
        clock.set(at(s).timestamp_millis());
        async move {
            let mut changed = one.evaluate(at(s)).await.expect("round");
            changed.extend(two.evaluate(at(s)).await.expect("round"));
            changed
        }
    };
    let both = |status, s| {
        one.record("a", vec![("portal".into(), seen(status, s))]);
        two.record("b", vec![("portal".into(), seen(status, s))]);
    };
    both(ProbeStatus::Up, 0);
    round(0).await;
    round(10).await;
    assert_eq!(one.states().await.expect("states")["portal"].state, "up");
    assert_eq!(one.states().await.expect("states")["portal"].reported, 2);
    both(ProbeStatus::Down, 20);
    round(20).await;
    assert_eq!(
        round(30).await,
        [("portal".to_owned(), "down".to_owned())],
        "taken once, by one of them"
    );
    round(31).await;
    let inc = store.list(&Filter::default()).await.expect("list");
    assert_eq!(inc.len(), 1, "{inc:?}");
    for q in [one, two] {
        let st = q.states().await.expect("states")["portal"].clone();
        assert_eq!((st.state.as_str(), st.reported), ("down", 2));
    }
}

#[tokio::test]
async fn collectors_sharing_postgres_pool_their_agents_results() {
    on_postgres(pooled_scenario).await;
}

/// A check nobody probes is overdue once the collector has known it for its freshness window
/// (two intervals and a timeout: 25 s here), and no longer once a result arrives.
#[tokio::test]
async fn checks_nobody_probes_are_reported_overdue() {
    on_sqlite(|store| async move {
        let clock = TestClock::at(t0().timestamp_millis());
        let c: Check = serde_json::from_value(serde_json::json!({
            "name": "Portal", "type": "http", "target": "http://portal.example/",
            "interval": "10s", "timeout": "5s",
        }))
        .expect("a check");
        let c = c
            .checked(&["a".into()], &Default::default())
            .expect("valid");
        let q = Quorum::new(
            store,
            clock.clock(),
            Shared::new(Checks {
                list: vec![(c, Source::Api)],
            }),
            vec!["a".into()],
            std::sync::Arc::new(vigil_collector::metrics::Metrics::new()),
        );
        assert!(q.overdue().is_empty(), "just known");
        clock.set(at(25).timestamp_millis());
        assert!(q.overdue().is_empty(), "within its window");
        clock.set(at(26).timestamp_millis());
        assert_eq!(q.overdue(), ["portal"]);
        q.record("a", vec![("portal".into(), seen(ProbeStatus::Up, 26))]);
        assert!(q.overdue().is_empty());
        clock.set(at(26 + 26).timestamp_millis());
        assert_eq!(q.overdue(), ["portal"], "its last result too old");
    })
    .await;
}

/// Ten thousand checks: one state series each, and nothing else per check.
#[tokio::test]
async fn metrics_stay_bounded_with_ten_thousand_checks() {
    on_sqlite(|store| async move {
        let list = (0..10_000)
            .map(|i| {
                let c: Check = serde_json::from_value(serde_json::json!({
                    "name": format!("c{i}"), "type": "tcp", "target": "127.0.0.1:9",
                }))
                .expect("a check");
                (
                    c.checked(&["a".into()], &Default::default())
                        .expect("valid"),
                    Source::Api,
                )
            })
            .collect();
        let metrics = std::sync::Arc::new(vigil_collector::metrics::Metrics::new());
        let q = Quorum::new(
            store,
            TestClock::at(t0().timestamp_millis()).clock(),
            Shared::new(Checks { list }),
            vec!["a".into()],
            metrics.clone(),
        );
        q.evaluate(t0()).await.expect("round");
        let text = metrics.render();
        let per_check = text.lines().filter(|l| l.contains("check=\"")).count();
        assert_eq!(per_check, 10_000);
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("vigil_check_state{"))
                .count(),
            10_000
        );
    })
    .await;
}

/// A point of presence with three customers' sites behind it: down together, one incident,
/// the parent's, naming the three customers, and none of the children's (they are
/// `unknown`: nothing can be said of them); the parent back while the sites stay down, the
/// sites are evaluated again and open their own.
async fn dependency_scenario(store: Store) {
    let clock = TestClock::at(t0().timestamp_millis());
    let store = store.with_clock(clock.clock());
    let check = |id: &str, customer: Option<&str>, parent: Option<&str>| -> (Check, Source) {
        let c: Check = serde_json::from_value(serde_json::json!({
            "id": id, "name": id, "type": "tcp", "target": "10.0.0.1:443",
            "interval": "10s", "timeout": "5s", "customer": customer, "depends_on": parent,
        }))
        .expect("a check");
        (c, Source::Api)
    };
    let list = vec![
        check("pop", None, None),
        check("ulb-site", Some("ulb"), Some("pop")),
        check("vub-site", Some("vub"), Some("pop")),
        check("kul-site", Some("kul"), Some("pop")),
    ];
    let q = Quorum::new(
        store.clone(),
        clock.clock(),
        Shared::new(Checks { list }),
        vec!["a".into()],
        std::sync::Arc::new(vigil_collector::metrics::Metrics::new()),
    );
    let all = |pop: ProbeStatus, sites: ProbeStatus, s: i64| {
        let mut r = vec![("pop".to_owned(), seen(pop, s))];
        for site in ["ulb-site", "vub-site", "kul-site"] {
            r.push((site.to_owned(), seen(sites, s)));
        }
        q.record("a", r);
    };
    let eval = |s: i64| {
        clock.set(at(s).timestamp_millis());
        q.evaluate(at(s))
    };
    let incidents = || async {
        let mut l = store.list(&Filter::default()).await.expect("list");
        l.sort_by_key(|i| i.id);
        l
    };
    all(ProbeStatus::Up, ProbeStatus::Up, 0);
    eval(0).await.expect("round");
    assert_eq!(eval(10).await.expect("round").len(), 4);

    all(ProbeStatus::Down, ProbeStatus::Down, 20);
    eval(20).await.expect("round");
    all(ProbeStatus::Down, ProbeStatus::Down, 30);
    assert_eq!(
        eval(30).await.expect("round"),
        [("pop".to_owned(), "down".to_owned())]
    );
    all(ProbeStatus::Down, ProbeStatus::Down, 40);
    let changed = eval(40).await.expect("round");
    assert_eq!(changed.len(), 3, "the sites unknown: {changed:?}");
    assert!(changed.iter().all(|(_, s)| s == "unknown"));
    let inc = incidents().await;
    assert_eq!(inc.len(), 1, "{inc:?}");
    assert_eq!(inc[0].group_key, "check=pop");
    let opened = store.get(inc[0].id).await.expect("incident");
    let said = opened.timeline[0].detail["message"]
        .as_str()
        .expect("message");
    assert!(
        said.ends_with("Behind it: kul-site, ulb-site, vub-site (customers: kul, ulb, vub)"),
        "{said}"
    );
    // The customers behind it are the incident's: each is told with it.
    assert_eq!(opened.affected, ["kul", "ulb", "vub"]);

    // The parent back, the sites still down: they are evaluated again.
    all(ProbeStatus::Up, ProbeStatus::Down, 50);
    eval(50).await.expect("round");
    all(ProbeStatus::Up, ProbeStatus::Down, 60);
    assert_eq!(
        eval(60).await.expect("round"),
        [("pop".to_owned(), "up".to_owned())]
    );
    all(ProbeStatus::Up, ProbeStatus::Down, 70);
    assert_eq!(eval(70).await.expect("round").len(), 3);
    let inc = incidents().await;
    assert_eq!(inc.len(), 4, "{inc:?}");
    assert_eq!(inc[0].status, Status::Resolved);
    let mut sites: Vec<(&str, Option<&str>)> = inc[1..]
        .iter()
        .map(|i| (i.group_key.as_str(), i.customer.as_deref()))
        .collect();
    sites.sort_unstable();
    assert_eq!(
        sites,
        [
            ("check=kul-site", Some("kul")),
            ("check=ulb-site", Some("ulb")),
            ("check=vub-site", Some("vub"))
        ]
    );
}

#[tokio::test]
async fn dependencies_on_both_databases() {
    on_sqlite(dependency_scenario).await;
    on_postgres(dependency_scenario).await;
}
