//! The dispatcher against a gateway that refuses every call, with a controlled clock: after
//! `breaker_failures` failures in a row the voice channel's breaker opens, its incident is
//! raised once, and the calls wait (postponed, their attempts not spent) until the cool-down
//! ends; then one round goes through, fails, and opens it again.

mod postgres;

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use postgres::{TestClock, on_postgres, on_sqlite};
use sqlx::Row;
use vigil_collector::config::CollectorConfig;
use vigil_collector::incidents::{Alert, Filter, Store};
use vigil_collector::notify::Notifier;
use vigil_collector::notify::dispatch::Dispatcher;

const CONFIG: &str = r#"
[notify]
attempts = 5
retry_backoff = "1s"
timeout = "2s"
breaker_failures = 2
breaker_cooldown = "10m"
[notify.smtp]
host = "127.0.0.1"
port = 1
security = "none"
from = "vigil@example.org"
[notify.voice]
url = "http://127.0.0.1:1/call"
[[notify.receivers]]
name = "oncall"
voice = ["+32470000001", "+32470000002", "+32470000003"]
[notify.route]
receiver = "oncall"
"#;

const MIN: i64 = 60_000;

/// (attempts, state, not_before) of every voice delivery, in order.
async fn calls(store: &Store) -> Vec<(i64, String, i64)> {
    sqlx::query(
        "SELECT attempts, state, not_before FROM outbox WHERE channel = 'voice' ORDER BY id",
    )
    .fetch_all(store.pool())
    .await
    .expect("outbox")
    .iter()
    .map(|r| {
        (
            r.try_get("attempts").expect("a"),
            r.try_get("state").expect("s"),
            r.try_get("not_before").expect("n"),
        )
    })
    .collect()
}

async fn scenario(store: Store) {
    let cfg: CollectorConfig = toml::from_str(CONFIG).expect("config");
    let path = std::path::Path::new("test.toml");
    cfg.validate(path).expect("valid");
    let n: Arc<Notifier> = Arc::new(cfg.notifier(path).expect("notify").expect("routed"));
    let t = Utc
        .with_ymd_and_hms(2026, 12, 2, 10, 0, 0)
        .single()
        .expect("t")
        .timestamp_millis();
    let clock = TestClock::at(t);
    let clock_fn = clock.clock();
    let store = store.with_notifier(n.clone()).with_clock(clock_fn.clone());
    let metrics = Arc::new(vigil_collector::metrics::Metrics::new());
    let d = Dispatcher::new(store.clone(), n, clock_fn, store.wake(), metrics.clone())
        .expect("dispatcher");
    store
        .record(&[Alert {
            id: "b.1".into(),
            rule_id: "r".into(),
            title: "core router down".into(),
            severity: "critical".into(),
            customer: Some("ulb".into()),
            group_key: "host.name=r1".into(),
            at: DateTime::from_timestamp_millis(t).expect("t"),
            message: None,
            danger: true,
            affected: Vec::new(),
            tags: Vec::new(),
            seen: Default::default(),
        }])
        .await
        .expect("record");
    let failing = || async {
        store
            .list(&Filter {
                status: Some("active".into()),
                ..Filter::default()
            })
            .await
            .expect("list")
            .into_iter()
            .find(|i| i.rule_id == "vigil-notify-voice")
    };

    // Three calls fail: the breaker opens (at the second) and the channel's incident is raised.
    assert_eq!(d.round().await.expect("round"), 3);
    assert!(
        calls(&store)
            .await
            .iter()
            .all(|c| c.0 == 1 && c.1 == "pending")
    );
    let inc = failing().await.expect("the voice channel's incident");
    assert_eq!(inc.count, 1);
    assert!(metrics.render().contains("vigil_notify_breakers_open 1"));
    // Their retries come due while it is open: they wait for the cool-down, unspent.
    clock.set(t + 2_000);
    assert_eq!(d.round().await.expect("round"), 3);
    let waiting = calls(&store).await;
    assert!(
        waiting
            .iter()
            .all(|c| *c == (1, "pending".to_owned(), t + 10 * MIN)),
        "{waiting:?}"
    );
    let router = store
        .list(&Filter::default())
        .await
        .expect("list")
        .into_iter()
        .find(|i| i.rule_id == "r")
        .expect("the router's incident");
    let steps = store.get(router.id).await.expect("get").timeline;
    assert!(
        steps.iter().any(|e| e.action == "notify_postponed"),
        "{steps:?}"
    );
    clock.set(t + 10 * MIN - 1);
    assert_eq!(d.round().await.expect("round"), 0);
    // After the cool-down one of them is tried, fails, and opens it again: none spent an
    // attempt, all wait for the next cool-down.
    clock.set(t + 10 * MIN);
    assert_eq!(d.round().await.expect("round"), 3);
    // The two that waited for the trial's end find the breaker open again.
    assert_eq!(d.round().await.expect("round"), 2);
    let after = calls(&store).await;
    assert!(
        after
            .iter()
            .all(|c| c.0 == 1 && c.1 == "pending" && c.2 == t + 20 * MIN),
        "{after:?}"
    );
    assert_eq!(failing().await.expect("still active").count, 2);
    // However long the outage, nothing is given up: ten more cool-downs, ten more trials.
    for k in 2..12 {
        clock.set(t + k * 10 * MIN);
        assert_eq!(d.round().await.expect("round"), 3);
        assert_eq!(d.round().await.expect("round"), 2);
    }
    let after = calls(&store).await;
    assert!(
        after.iter().all(|c| c.0 == 1 && c.1 == "pending"),
        "{after:?}"
    );
    store.close().await;
}

#[tokio::test]
async fn a_failing_channel_is_left_alone_for_its_cool_down_on_sqlite() {
    on_sqlite(scenario).await;
}

#[tokio::test]
async fn a_failing_channel_is_left_alone_for_its_cool_down_on_postgres() {
    on_postgres(scenario).await;
}
