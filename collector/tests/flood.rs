//! Flood control on real SQLite and PostgreSQL, with a controlled clock: past a receiver's
//! limit announcements are held and go as one digest per interval; an exclusion holds a
//! customer's announcements but never its retraction; past the monthly SMS cap further SMS
//! are held while the calls and e-mails still go. Every hold is on the timeline.

mod postgres;

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use postgres::{TestClock, on_postgres, on_sqlite};
use sqlx::Row;
use vigil_collector::config::CollectorConfig;
use vigil_collector::incidents::{Action, Alert, Seen, Store};
use vigil_collector::notify::plan::Kind;
use vigil_collector::notify::silence::{self, Mute, NewSilence};
use vigil_collector::notify::words::Lang;
use vigil_collector::notify::{Notifier, digest};

const CONFIG: &str = r#"
[notify]
digest_interval = "1h"
sms_cap = 1
[notify.smtp]
host = "127.0.0.1"
from = "vigil@example.org"
[notify.voice]
url = "http://127.0.0.1:1/call"
[notify.sms]
url = "http://127.0.0.1:1/sms"
[[notify.receivers]]
name = "desk"
email = ["desk@example.org"]
limit = { count = 2, per = "1h" }
[[notify.receivers]]
name = "oncall"
email = ["oncall@example.org"]
voice = ["+32470000001"]
sms = ["+32470000002"]
[notify.route]
receiver = "desk"
[[notify.route.routes]]
matchers = ["danger=true"]
receiver = "oncall"
"#;

const MIN: i64 = 60_000;

fn t0() -> i64 {
    Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0)
        .single()
        .expect("t")
        .timestamp_millis()
}

fn alert(id: &str, rule: &str, customer: &str, danger: bool) -> Alert {
    Alert {
        id: id.into(),
        rule_id: rule.into(),
        title: format!("{rule} title"),
        severity: if danger { "high" } else { "medium" }.into(),
        customer: Some(customer.into()),
        group_key: "host.name=h".into(),
        at: DateTime::from_timestamp_millis(t0()).expect("t"),
        message: None,
        danger,
        affected: Vec::new(),
        tags: Vec::new(),
        seen: Default::default(),
    }
}

/// (kind, channel, target) of incident `id`'s deliveries, in order.
async fn outbox_of(store: &Store, id: i64) -> Vec<(String, String, String)> {
    sqlx::query("SELECT kind, channel, target FROM outbox WHERE incident_id = $1 ORDER BY id")
        .bind(id)
        .fetch_all(store.pool())
        .await
        .expect("outbox")
        .iter()
        .map(|r| {
            (
                r.try_get("kind").expect("kind"),
                r.try_get("channel").expect("channel"),
                r.try_get("target").expect("target"),
            )
        })
        .collect()
}

fn d(kind: &str, channel: &str, target: &str) -> (String, String, String) {
    (kind.into(), channel.into(), target.into())
}

async fn held_reasons(store: &Store, id: i64) -> Vec<String> {
    let inc = store.get(id).await.expect("get");
    inc.timeline
        .iter()
        .filter(|e| e.action == "held")
        .flat_map(|e| {
            e.detail["held"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|h| h["reason"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

async fn scenario(store: Store) {
    let cfg: CollectorConfig = toml::from_str(CONFIG).expect("config");
    let path = std::path::Path::new("test.toml");
    cfg.validate(path).expect("valid");
    let n: Arc<Notifier> = Arc::new(cfg.notifier(path).expect("notify").expect("routed"));
    let clock = TestClock::at(t0());
    let store = store.with_notifier(n.clone()).with_clock(clock.clock());
    let pool = store.pool().clone();
    let t = t0();
    let set = |ms: i64| clock.set(ms);

    // The desk's limit: two announcements an hour; the third and fourth are held.
    let opened = store
        .record(&[
            alert("f.1", "r1", "ulb", false),
            alert("f.2", "r2", "ulb", false),
            alert("f.3", "r3", "ulb", false),
            alert("f.4", "r4", "ulb", false),
        ])
        .await
        .expect("record")
        .opened;
    for &i in &opened[..2] {
        assert_eq!(
            outbox_of(&store, i).await,
            [d("opened", "email", "desk@example.org")]
        );
    }
    for &i in &opened[2..] {
        assert!(outbox_of(&store, i).await.is_empty());
        assert_eq!(held_reasons(&store, i).await, ["limit"]);
    }
    // The first digest goes at once, with both.
    assert_eq!(digest::make_due(&pool, &n, t).await.expect("digest"), 1);
    let anchor = opened[3];
    assert_eq!(
        outbox_of(&store, anchor).await,
        [d("digest", "email", "desk@example.org")]
    );
    let cause: i64 =
        sqlx::query_scalar("SELECT cause FROM outbox WHERE kind = 'digest' ORDER BY id LIMIT 1")
            .fetch_one(&pool)
            .await
            .expect("cause");
    let lines = digest::lines(&pool, cause).await.expect("lines");
    assert_eq!(
        lines.iter().map(|l| l.incident).collect::<Vec<_>>(),
        [opened[2], opened[3]]
    );
    let (subject, body) = digest::email(&lines, "http://vigil.example", Lang::En);
    assert_eq!(subject, "[Vigil] Digest: 2 announcements held");
    assert!(
        body.contains("your limit was reached") && body.contains("r3 title"),
        "{body}"
    );
    let (subject, body) = digest::email(&lines, "http://vigil.example", Lang::Nl);
    assert_eq!(subject, "[Vigil] Overzicht: 2 meldingen vastgehouden");
    assert!(body.contains("uw limiet was bereikt"), "{body}");
    // Another held one waits for the next interval.
    set(t + 10 * MIN);
    let fifth = store
        .record(&[alert("f.5", "r5", "ulb", false)])
        .await
        .expect("record")
        .opened[0];
    assert_eq!(held_reasons(&store, fifth).await, ["limit"]);
    assert_eq!(
        digest::make_due(&pool, &n, t + 59 * MIN)
            .await
            .expect("digest"),
        0
    );
    assert_eq!(
        digest::make_due(&pool, &n, t + 60 * MIN)
            .await
            .expect("digest"),
        1
    );
    assert_eq!(
        outbox_of(&store, fifth).await,
        [d("digest", "email", "desk@example.org")]
    );
    // An hour after the first two, the desk is told one by one again.
    set(t + 61 * MIN);
    let sixth = store
        .record(&[alert("f.6", "r6", "ulb", false)])
        .await
        .expect("record")
        .opened[0];
    assert_eq!(
        outbox_of(&store, sixth).await,
        [d("opened", "email", "desk@example.org")]
    );

    // An exclusion of a customer holds its announcements, never its retraction.
    let now = DateTime::from_timestamp_millis(t + 200 * MIN).expect("t");
    set(t + 200 * MIN);
    silence::create(
        &pool,
        Mute::Exclusion,
        &NewSilence {
            matchers: vec!["customer=kul".into()],
            starts_at: None,
            ends_at: None,
            duration: Some("30d".into()),
            created_by: "head of the desk".into(),
            comment: "KU Leuven handles its own incidents until the contract is renewed".into(),
        },
        now,
    )
    .await
    .expect("db")
    .expect("valid");
    let kul = store
        .record(&[alert("k.1", "r1", "kul", false)])
        .await
        .expect("record")
        .opened[0];
    assert!(outbox_of(&store, kul).await.is_empty());
    assert_eq!(held_reasons(&store, kul).await, ["exclusion"]);
    store
        .act(
            kul,
            &Action::Retract {
                reason: "false_positive".into(),
            },
            "alice",
        )
        .await
        .expect("retract");
    assert_eq!(
        outbox_of(&store, kul).await,
        [d("retracted", "email", "desk@example.org")]
    );

    // The SMS cap: one SMS a month for ULB; the second danger incident calls and e-mails,
    // its SMS is held.
    set(t + 300 * MIN);
    let first = store
        .record(&[alert("s.1", "d1", "ulb", true)])
        .await
        .expect("record")
        .opened[0];
    assert_eq!(
        outbox_of(&store, first).await,
        [
            d("opened", "voice", "+32470000001"),
            d("opened", "sms", "+32470000002"),
            d("opened", "email", "oncall@example.org"),
        ]
    );
    let second = store
        .record(&[alert("s.2", "d2", "ulb", true)])
        .await
        .expect("record")
        .opened[0];
    assert_eq!(
        outbox_of(&store, second).await,
        [
            d("opened", "voice", "+32470000001"),
            d("opened", "email", "oncall@example.org"),
        ]
    );
    assert_eq!(held_reasons(&store, second).await, ["sms_cap"]);
    // Another customer has its own cap.
    let other = store
        .record(&[alert("s.3", "d1", "umons", true)])
        .await
        .expect("record")
        .opened[0];
    assert!(
        outbox_of(&store, other)
            .await
            .contains(&d("opened", "sms", "+32470000002"))
    );
    // Two digests are due: the desk's (the excluded customer's incident) and on-call's (the
    // held SMS).
    assert_eq!(
        digest::make_due(&pool, &n, t + 300 * MIN)
            .await
            .expect("digest"),
        2
    );
    assert!(
        outbox_of(&store, second)
            .await
            .contains(&d("digest", "email", "oncall@example.org"))
    );
    assert!(
        outbox_of(&store, kul)
            .await
            .contains(&d("digest", "email", "desk@example.org"))
    );
    store.close().await;
}

#[tokio::test]
async fn flood_control_on_sqlite() {
    on_sqlite(scenario).await;
}

#[tokio::test]
async fn flood_control_on_postgres() {
    on_postgres(scenario).await;
}

const MAINTENANCE: &str = r#"
[[customers]]
id = "ulb"
[[customers.contacts]]
role = "noc"
name = "NOC ULB"
email = "noc@ulb.example"
[[customers]]
id = "kul"
[assets]
[[assets.list]]
id = "ulb-core-1"
customer = "ulb"
kind = "router"
watched_by = { prefixes = ["192.0.2.0/24"], checks = ["ulb-core"] }

[notify.smtp]
host = "127.0.0.1"
from = "vigil@example.org"
[[notify.receivers]]
name = "desk"
email = ["desk@example.org"]
[notify.route]
receiver = "desk"
"#;

/// (kind, target) of the notices about no incident, in order.
async fn notices(store: &Store) -> Vec<(String, String)> {
    sqlx::query("SELECT kind, target FROM outbox WHERE incident_id = 0 ORDER BY id")
        .fetch_all(store.pool())
        .await
        .expect("outbox")
        .iter()
        .map(|r| {
            (
                r.try_get("kind").expect("k"),
                r.try_get("target").expect("t"),
            )
        })
        .collect()
}

/// A recurring maintenance window of a router's customer: planned, started and ended
/// notices to the customer's contacts, once per occurrence; while it is on, that customer's
/// incidents are recorded but not announced (a retraction still is), another customer's are;
/// one still open when the window ends is announced then.
async fn maintenance_windows(store: Store) {
    use vigil_collector::notify::maintenance::{self, NewMaintenance};
    let cfg: CollectorConfig = toml::from_str(MAINTENANCE).expect("config");
    let path = std::path::Path::new("test.toml");
    cfg.validate(path).expect("valid");
    let directory = cfg.directory(path).expect("directory");
    let n: Arc<Notifier> = Arc::new(
        cfg.notifier_with(path, directory.customers())
            .expect("notify")
            .expect("routed"),
    );
    let t = t0();
    let clock = TestClock::at(t);
    let store = store
        .with_notifier(n.clone())
        .with_clock(clock.clock())
        .with_assets(directory.shared_assets());
    let pool = store.pool().clone();
    directory.reload(&pool).await.expect("reload");
    // Seen on the router: by an address within its prefix, by its check.
    let on_router = |a: Alert| Alert {
        seen: Seen {
            ips: vec!["192.0.2.7".parse().expect("ip")],
            ..Default::default()
        },
        ..a
    };
    let at = |ms: i64| DateTime::from_timestamp_millis(ms).expect("t");
    let new = |customers: Vec<String>, assets: Vec<String>| NewMaintenance {
        title: "core router upgrade".into(),
        ticket: Some("CHG-1234".into()),
        customers,
        assets,
        starts_at: at(t + 60 * MIN),
        ends_at: None,
        duration: Some("2h".into()),
        repeat_every: Some("1d".into()),
        repeat_until: Some(at(t + 1440 * MIN + 60 * MIN)),
        created_by: "alice".into(),
    };
    for (bad, field) in [
        (new(vec!["nobody".into()], vec![]), "customers: no customer"),
        (new(vec![], vec!["nothing".into()]), "assets: no asset"),
        (new(vec![], vec![]), "customers or assets"),
    ] {
        let e = maintenance::create(&pool, Some(&n), &directory, &bad, at(t))
            .await
            .expect("db")
            .expect_err("refused");
        assert!(e.starts_with(field), "{e}");
    }
    // The customer comes from the router.
    let m = maintenance::create(
        &pool,
        Some(&n),
        &directory,
        &new(vec![], vec!["ulb-core-1".into()]),
        at(t),
    )
    .await
    .expect("db")
    .expect("valid");
    assert_eq!(m.customers, ["ulb"]);
    let p = |k: &str| (k.to_owned(), "noc@ulb.example".to_owned());
    assert_eq!(notices(&store).await, [p("maintenance_planned")]);
    let (subject, body) = maintenance::email(&m, Kind::MaintenanceStarted, Lang::En);
    assert_eq!(
        subject,
        "[Vigil] Maintenance started: core router upgrade (CHG-1234)"
    );
    assert!(body.contains("ulb-core-1"), "{body}");
    let (subject, body) = maintenance::email(&m, Kind::MaintenanceEnded, Lang::Fr);
    assert_eq!(
        subject,
        "[Vigil] Maintenance terminée: core router upgrade (CHG-1234)"
    );
    assert!(
        body.contains("Équipements: ulb-core-1") && body.contains("toutes les 24 heures"),
        "{body}"
    );

    // Before it starts, incidents are announced.
    clock.set(t + 30 * MIN);
    let before = store
        .record(&[alert("m.0", "r0", "ulb", false)])
        .await
        .expect("record")
        .opened[0];
    assert_eq!(outbox_of(&store, before).await.len(), 1);
    // On: the start notice once; ULB's incidents on the router are not announced; KUL's
    // are, and so are ULB's elsewhere (the window names the router, not the customer).
    clock.set(t + 61 * MIN);
    assert_eq!(
        maintenance::tick(&pool, &n, t + 61 * MIN)
            .await
            .expect("tick"),
        1
    );
    assert_eq!(
        maintenance::tick(&pool, &n, t + 62 * MIN)
            .await
            .expect("tick"),
        0
    );
    let during = store
        .record(&[
            on_router(alert("m.1", "r1", "ulb", false)),
            alert("m.2", "r2", "kul", false),
            alert("m.1b", "r3", "ulb", false),
        ])
        .await
        .expect("record")
        .opened;
    assert!(outbox_of(&store, during[0]).await.is_empty());
    let on = store.get(during[0]).await.expect("get");
    assert_eq!(on.assets, ["ulb-core-1"]);
    let steps = on.timeline;
    assert!(
        steps
            .iter()
            .any(|e| e.action == "suppressed" && e.detail["maintenance"][0] == m.id),
        "{steps:?}"
    );
    assert_eq!(outbox_of(&store, during[1]).await.len(), 1);
    assert_eq!(outbox_of(&store, during[2]).await.len(), 1);
    assert!(store.get(during[2]).await.expect("get").assets.is_empty());
    // A retraction goes even during maintenance.
    store
        .act(
            during[0],
            &Action::Retract {
                reason: "out_of_scope".into(),
            },
            "alice",
        )
        .await
        .expect("retract");
    assert_eq!(
        outbox_of(&store, during[0]).await,
        [d("retracted", "email", "desk@example.org")]
    );
    // A ULB check goes down during the work: held while the window is on...
    clock.set(t + 90 * MIN);
    let still_down = store
        .record(&[Alert {
            seen: Seen {
                check: Some("ulb-core".into()),
                ..Default::default()
            },
            ..alert("m.3", "vigil.check", "ulb", false)
        }])
        .await
        .expect("record")
        .opened[0];
    assert!(outbox_of(&store, still_down).await.is_empty());
    clock.set(t + 120 * MIN);
    assert_eq!(store.announce_after_maintenance().await.expect("held"), 0);
    // The end, then the next day's occurrence, and no third (past repeat_until).
    assert_eq!(
        maintenance::tick(&pool, &n, t + 180 * MIN)
            .await
            .expect("tick"),
        1
    );
    // ... and, still down when the work ends, announced then (once).
    clock.set(t + 181 * MIN);
    assert_eq!(store.announce_after_maintenance().await.expect("held"), 1);
    assert_eq!(store.announce_after_maintenance().await.expect("held"), 0);
    assert_eq!(outbox_of(&store, still_down).await.len(), 1);
    let steps = store.get(still_down).await.expect("get").timeline;
    assert!(
        steps
            .iter()
            .any(|e| e.action == "maintenance_over" && e.detail["maintenance"][0] == m.id),
        "{steps:?}"
    );
    assert_eq!(
        maintenance::tick(&pool, &n, t + 1501 * MIN)
            .await
            .expect("tick"),
        1
    );
    assert_eq!(
        maintenance::tick(&pool, &n, t + 1621 * MIN)
            .await
            .expect("tick"),
        1
    );
    assert_eq!(
        maintenance::tick(&pool, &n, t + 2941 * MIN)
            .await
            .expect("tick"),
        0
    );
    assert_eq!(
        notices(&store).await,
        [
            p("maintenance_planned"),
            p("maintenance_started"),
            p("maintenance_ended"),
            p("maintenance_started"),
            p("maintenance_ended"),
        ]
    );
    store.close().await;
}

#[tokio::test]
async fn maintenance_windows_on_sqlite() {
    on_sqlite(maintenance_windows).await;
}

#[tokio::test]
async fn maintenance_windows_on_postgres() {
    on_postgres(maintenance_windows).await;
}

const GROUPING: &str = r#"
[notify.smtp]
host = "127.0.0.1"
from = "vigil@example.org"
[[notify.receivers]]
name = "desk"
email = ["desk@example.org"]
[notify.route]
receiver = "desk"
group_wait = "30s"
repeat_interval = "4h"
"#;

/// A route's `group_wait` holds a new incident's first announcement (its count rises
/// meanwhile without another), and its `repeat_interval` announces an incident still
/// active again, until it ends.
async fn grouping(store: Store) {
    use vigil_collector::notify::outbox::{self, Timing};
    let cfg: CollectorConfig = toml::from_str(GROUPING).expect("config");
    let path = std::path::Path::new("test.toml");
    cfg.validate(path).expect("valid");
    let n: Arc<Notifier> = Arc::new(cfg.notifier(path).expect("notify").expect("routed"));
    let t = t0();
    let clock = TestClock::at(t);
    let store = store.with_notifier(n.clone()).with_clock(clock.clock());
    let pool = store.pool().clone();
    let at = |ms: i64| DateTime::from_timestamp_millis(ms).expect("t");
    let id = store
        .record(&[alert("g.1", "r1", "ulb", false)])
        .await
        .expect("record")
        .opened[0];
    clock.set(t + 10_000);
    store
        .record(&[alert("g.2", "r1", "ulb", false)])
        .await
        .expect("record");
    let timing = |now| Timing {
        now,
        confirm_ms: MIN,
        lease_ms: 90_000,
    };
    assert!(
        outbox::claim(&pool, timing(t + 29_999), 10)
            .await
            .expect("claim")
            .is_empty()
    );
    let due = outbox::claim(&pool, timing(t + 30_000), 10)
        .await
        .expect("claim");
    assert_eq!(
        due.len(),
        1,
        "one announcement for the incident and its rising count"
    );
    outbox::finish(
        &pool,
        &due[0],
        &outbox::Outcome::Sent(serde_json::json!({})),
        t + 30_000,
    )
    .await
    .expect("finish");
    // Still active four hours after its announcement: a reminder, once.
    assert!(
        store
            .remind(at(t + 30_000 + 240 * MIN - 1))
            .await
            .expect("remind")
            .is_empty()
    );
    clock.set(t + 30_000 + 240 * MIN);
    assert_eq!(
        store
            .remind(at(t + 30_000 + 240 * MIN))
            .await
            .expect("remind"),
        [id]
    );
    assert!(
        store
            .remind(at(t + 30_000 + 240 * MIN))
            .await
            .expect("remind")
            .is_empty()
    );
    assert_eq!(
        outbox_of(&store, id).await,
        [
            d("opened", "email", "desk@example.org"),
            d("reminder", "email", "desk@example.org"),
        ]
    );
    // Ended: no more reminders.
    store
        .act(id, &Action::Resolve { resolution: None }, "alice")
        .await
        .expect("resolve");
    assert!(
        store
            .remind(at(t + 30_000 + 600 * MIN))
            .await
            .expect("remind")
            .is_empty()
    );
    store.close().await;
}

#[tokio::test]
async fn group_wait_and_repeat_interval_on_sqlite() {
    on_sqlite(grouping).await;
}

#[tokio::test]
async fn group_wait_and_repeat_interval_on_postgres() {
    on_postgres(grouping).await;
}

const GROUP_BY: &str = r#"
[notify.smtp]
host = "127.0.0.1"
from = "vigil@example.org"
[[notify.receivers]]
name = "desk"
email = ["desk@example.org"]
webhook = ["http://127.0.0.1:9/hook"]
[notify.route]
receiver = "desk"
group_by = ["customer"]
group_wait = "30s"
group_interval = "5m"
"#;

/// A route's `group_by`, `group_wait` and `group_interval`, as Alertmanager has them: the
/// first announcements of a customer's incidents without danger go together (one e-mail,
/// one webhook), `group_wait` after the group's first, then at most once per
/// `group_interval`; another customer is another group; an incident with danger is never
/// held for its group; what a group said counts as told for each of its incidents.
async fn group_by(store: Store) {
    use vigil_collector::notify::{digest, outbox};
    let cfg: CollectorConfig = toml::from_str(GROUP_BY).expect("config");
    let path = std::path::Path::new("test.toml");
    cfg.validate(path).expect("valid");
    let n: Arc<Notifier> = Arc::new(cfg.notifier(path).expect("notify").expect("routed"));
    let t = t0();
    let clock = TestClock::at(t);
    let store = store.with_notifier(n.clone()).with_clock(clock.clock());
    let pool = store.pool().clone();
    let record = |id: &'static str, rule: &'static str, customer: &'static str, danger| {
        let store = &store;
        async move {
            store
                .record(&[alert(id, rule, customer, danger)])
                .await
                .expect("record")
                .opened[0]
        }
    };
    // (kind, channel, target) of every delivery of the group announcements, in order.
    let groups = || async {
        sqlx::query(
            "SELECT kind, channel, target, cause FROM outbox WHERE kind = 'group' ORDER BY id",
        )
        .fetch_all(store.pool())
        .await
        .expect("outbox")
        .iter()
        .map(|r| {
            (
                r.try_get::<String, _>("channel").expect("c"),
                r.try_get::<String, _>("target").expect("t"),
                r.try_get::<i64, _>("cause").expect("cause"),
            )
        })
        .collect::<Vec<_>>()
    };
    let listed = |cause: i64| {
        let pool = pool.clone();
        async move {
            digest::lines(&pool, cause)
                .await
                .expect("lines")
                .iter()
                .map(|l| l.incident)
                .collect::<Vec<_>>()
        }
    };
    let g1 = record("g.1", "r1", "ulb", false).await;
    clock.set(t + 5_000);
    let g2 = record("g.2", "r2", "ulb", false).await;
    let k1 = record("g.3", "r1", "kul", false).await;
    clock.set(t + 10_000);
    let d1 = record("g.4", "r3", "ulb", true).await;
    // Nothing of the groups is in the outbox yet; the danger incident's own e-mail is.
    assert!(outbox_of(&store, g1).await.is_empty());
    assert_eq!(
        outbox_of(&store, d1).await,
        [
            d("opened", "email", "desk@example.org"),
            d("opened", "webhook", "http://127.0.0.1:9/hook")
        ]
    );
    let steps = store.get(g2).await.expect("get").timeline;
    assert!(
        steps
            .iter()
            .any(|e| e.action == "waits_for_group"
                && e.detail["group"] == "route:{customer=\"ulb\"}"),
        "{steps:?}"
    );
    // ULB's group is due 30 s after its first, KUL's 30 s after its own.
    assert_eq!(
        digest::make_due(&pool, &n, t + 29_999).await.expect("due"),
        0
    );
    assert_eq!(
        digest::make_due(&pool, &n, t + 30_000).await.expect("due"),
        1
    );
    let ulb = groups().await;
    assert_eq!(
        ulb.iter()
            .map(|(c, t, _)| (c.as_str(), t.as_str()))
            .collect::<Vec<_>>(),
        [
            ("email", "desk@example.org"),
            ("webhook", "http://127.0.0.1:9/hook")
        ]
    );
    assert_eq!(listed(ulb[0].2).await, [g1, g2]);
    assert_eq!(
        digest::group_labels(&pool, ulb[0].2).await.expect("labels"),
        [("customer".to_owned(), "ulb".to_owned())].into()
    );
    assert_eq!(
        digest::make_due(&pool, &n, t + 34_999).await.expect("due"),
        0
    );
    assert_eq!(
        digest::make_due(&pool, &n, t + 35_000).await.expect("due"),
        1
    );
    let all = groups().await;
    assert_eq!(listed(all[2].2).await, [k1]);
    // What the group said counts as told for each of its incidents.
    let mut tx = pool.begin().await.expect("tx");
    let told = outbox::told(&mut tx, g1).await.expect("told");
    tx.rollback().await.expect("rollback");
    assert_eq!(
        told.iter().map(|d| d.target.as_str()).collect::<Vec<_>>(),
        ["desk@example.org", "http://127.0.0.1:9/hook"]
    );
    // A new ULB incident a minute later waits for the group's interval: 5 min after it went.
    clock.set(t + 60_000);
    let g5 = record("g.5", "r4", "ulb", false).await;
    assert_eq!(
        digest::make_due(&pool, &n, t + 30_000 + 5 * MIN - 1)
            .await
            .expect("due"),
        0
    );
    assert_eq!(
        digest::make_due(&pool, &n, t + 30_000 + 5 * MIN)
            .await
            .expect("due"),
        1
    );
    let all = groups().await;
    assert_eq!(all.len(), 6);
    assert_eq!(listed(all[4].2).await, [g5]);
    // Long after, a new one waits only group_wait.
    clock.set(t + 120 * MIN);
    let g6 = record("g.6", "r5", "ulb", false).await;
    assert_eq!(
        digest::make_due(&pool, &n, t + 120 * MIN + 29_999)
            .await
            .expect("due"),
        0
    );
    assert_eq!(
        digest::make_due(&pool, &n, t + 120 * MIN + 30_000)
            .await
            .expect("due"),
        1
    );
    assert_eq!(listed(groups().await[6].2).await, [g6]);
    store.close().await;
}

#[tokio::test]
async fn group_by_on_sqlite() {
    on_sqlite(group_by).await;
}

#[tokio::test]
async fn group_by_on_postgres() {
    on_postgres(group_by).await;
}
