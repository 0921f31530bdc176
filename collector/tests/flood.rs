//! Flood control on real SQLite and PostgreSQL, with a controlled clock: past a receiver's
//! limit announcements are held and go as one digest per interval; an exclusion holds a
//! customer's announcements but never its retraction; past the monthly SMS cap further SMS
//! are held while the calls and e-mails still go. Every hold is on the timeline.

mod postgres;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, TimeZone, Utc};
use postgres::{on_postgres, on_sqlite};
use sqlx::Row;
use vigil_collector::config::CollectorConfig;
use vigil_collector::incidents::{Action, Alert, Store};
use vigil_collector::notify::silence::{self, Mute, NewSilence};
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
    let clock = Arc::new(AtomicI64::new(t0()));
    let c = clock.clone();
    let store = store.with_notifier(n.clone()).with_clock(Arc::new(move || {
        DateTime::from_timestamp_millis(c.load(Ordering::SeqCst)).expect("t")
    }));
    let pool = store.pool().clone();
    let t = t0();
    let set = |ms: i64| clock.store(ms, Ordering::SeqCst);

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
    let (subject, body) = digest::email(&lines, "http://vigil.example");
    assert_eq!(subject, "[Vigil] Digest: 2 announcements held");
    assert!(
        body.contains("your limit was reached") && body.contains("r3 title"),
        "{body}"
    );
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
