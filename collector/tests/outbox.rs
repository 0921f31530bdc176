//! The notification outbox on real SQLite and PostgreSQL: deliveries are written with the
//! incident change that causes them, claimed in order (the e-mail after the calls of its
//! announcement, or after `confirm_after`), retried, and taken again after a lease when the
//! attempt was abandoned. Times are given explicitly: no clock, no sleep.

mod postgres;

use std::sync::Arc;

use chrono::{TimeZone, Utc};
use postgres::{on_postgres, on_sqlite};
use vigil_collector::incidents::{Action, Alert, Store};
use vigil_collector::notify::outbox::{self, Outcome, Timing};
use vigil_collector::notify::plan::Kind;
use vigil_collector::notify::silence::{self, NewSilence};
use vigil_collector::notify::{Notifier, NotifyConfig};

fn notifier() -> Arc<Notifier> {
    let cfg: NotifyConfig = toml::from_str(
        r#"
[smtp]
host = "127.0.0.1"
from = "vigil@example.org"
[voice]
url = "http://127.0.0.1:1/call"
[[receivers]]
name = "desk"
email = ["desk@example.org"]
[[receivers]]
name = "oncall"
email = ["oncall@example.org"]
voice = ["+32470000001"]
[route]
receiver = "desk"
[[route.routes]]
matchers = ["danger=true"]
receiver = "oncall"
"#,
    )
    .expect("notify toml");
    Arc::new(
        Notifier::new(&cfg, Default::default(), Default::default())
            .expect("valid")
            .expect("routed"),
    )
}

fn alert(id: &str, rule: &str, severity: &str) -> Alert {
    Alert {
        id: id.into(),
        rule_id: rule.into(),
        title: format!("{rule} title"),
        severity: severity.into(),
        customer: Some("ulb".into()),
        group_key: "host.name=h".into(),
        at: Utc
            .with_ymd_and_hms(2026, 12, 1, 10, 0, 0)
            .single()
            .expect("time"),
        message: None,
        // These tests' high and critical rules judge their alerts a danger.
        danger: matches!(severity, "high" | "critical"),
        affected: Vec::new(),
        tags: Vec::new(),
        seen: Default::default(),
    }
}

/// (channel, target) of each claimed item.
fn claimed(items: &[outbox::Item]) -> Vec<(&str, &str)> {
    items
        .iter()
        .map(|i| (i.delivery.channel.as_str(), i.delivery.target.as_str()))
        .collect()
}

async fn scenario(store: Store) {
    let store = store.with_notifier(notifier());
    let pool = store.pool().clone();
    let recorded = store
        .record(&[
            alert("b.0", "danger-rule", "high"),
            alert("b.1", "quiet-rule", "medium"),
        ])
        .await
        .expect("record");
    let (danger, quiet) = (recorded.opened[0], recorded.opened[1]);
    // Grouped alerts (a rising count) add nothing to the outbox.
    store
        .record(&[alert("b.2", "quiet-rule", "medium")])
        .await
        .expect("record");

    // The deliveries' own creation time is the wall clock: claim "now" from well after it.
    let now = Utc::now().timestamp_millis() + 1_000;
    let t = |now| Timing {
        now,
        confirm_ms: 60_000,
        lease_ms: 90_000,
    };
    // First round: the call (stage 0) and the quiet incident's e-mail (no call to wait for);
    // the danger e-mail waits for its call.
    let first = outbox::claim(&pool, t(now), 10).await.expect("claim");
    assert_eq!(
        claimed(&first),
        [("voice", "+32470000001"), ("email", "desk@example.org")]
    );
    assert_eq!(first[0].incident_id, danger);
    assert_eq!(first[1].incident_id, quiet);
    // Claimed ones are not claimed twice while their lease runs.
    assert!(
        outbox::claim(&pool, t(now), 10)
            .await
            .expect("claim")
            .is_empty()
    );

    outbox::finish(&pool, &first[1], &Outcome::Sent(serde_json::json!({})), now)
        .await
        .expect("finish");
    // The call fails: retried later; the e-mail still waits (the call has not ended).
    let retry = Outcome::Failed {
        error: "gateway down".into(),
        retry_at: Some(now + 5_000),
    };
    outbox::finish(&pool, &first[0], &retry, now)
        .await
        .expect("finish");
    assert!(
        outbox::claim(&pool, t(now + 1_000), 10)
            .await
            .expect("claim")
            .is_empty()
    );
    let again = outbox::claim(&pool, t(now + 5_000), 10)
        .await
        .expect("claim");
    assert_eq!(claimed(&again), [("voice", "+32470000001")]);
    assert_eq!(again[0].attempts, 2);
    assert_eq!(again[0].key(), first[0].key(), "one key for every attempt");
    outbox::finish(
        &pool,
        &again[0],
        &Outcome::Sent(serde_json::json!({})),
        now + 6_000,
    )
    .await
    .expect("finish");
    // The call ended: now the e-mail is due.
    let confirm = outbox::claim(&pool, t(now + 6_000), 10)
        .await
        .expect("claim");
    assert_eq!(claimed(&confirm), [("email", "oncall@example.org")]);
    let calls = outbox::calls(&pool, confirm[0].cause).await.expect("calls");
    assert_eq!(
        calls,
        [("voice".into(), "+32470000001".into(), "sent".into())]
    );

    // An attempt abandoned (its collector died before recording the end) is taken again
    // once its lease has run out, with the same key.
    assert!(
        outbox::claim(&pool, t(now + 6_000 + 89_999), 10)
            .await
            .expect("claim")
            .is_empty()
    );
    let taken_again = outbox::claim(&pool, t(now + 6_000 + 90_000), 10)
        .await
        .expect("claim");
    assert_eq!(taken_again.len(), 1);
    assert_eq!(taken_again[0].key(), confirm[0].key());
    assert_eq!(taken_again[0].attempts, 2);
    let later = now + 100_000;
    outbox::finish(
        &pool,
        &taken_again[0],
        &Outcome::Sent(serde_json::json!({})),
        later,
    )
    .await
    .expect("finish");

    // Danger appears on the quiet incident: a call to on-call first; the e-mails to on-call
    // and to the desk (told before) wait for it, or for confirm_after at most.
    store
        .act(
            quiet,
            &Action::Escalate {
                severity: "high".into(),
                danger: Some(true),
            },
            "tester",
        )
        .await
        .expect("escalate");
    let now = Utc::now().timestamp_millis() + 1_000;
    let change = outbox::claim(&pool, t(now), 10).await.expect("claim");
    assert_eq!(claimed(&change), [("voice", "+32470000001")]);
    assert_eq!(change[0].kind.as_str(), "changed");
    let waited = outbox::claim(&pool, t(now + 60_000), 10)
        .await
        .expect("claim");
    assert_eq!(
        claimed(&waited),
        [
            ("email", "oncall@example.org"),
            ("email", "desk@example.org")
        ],
        "after confirm_after the e-mails go even while the call has not ended"
    );

    // A retraction of the danger incident: everyone told before, the call first.
    store
        .act(
            danger,
            &Action::Retract {
                reason: "false_positive".into(),
            },
            "tester",
        )
        .await
        .expect("retract");
    let r = outbox::claim(&pool, t(Utc::now().timestamp_millis() + 1_000), 10)
        .await
        .expect("claim");
    assert_eq!(claimed(&r), [("voice", "+32470000001")]);
    assert_eq!(r[0].incident_id, danger);
    assert_eq!(r[0].kind.as_str(), "retracted");

    // Every claim and end is on the timeline.
    let inc = store.get(danger).await.expect("get");
    let steps: Vec<&str> = inc.timeline.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        steps,
        [
            "opened",
            "notify_started",
            "notify_retry",
            "notify_started",
            "notified",
            "notify_started",
            "notify_started",
            "notified",
            "retract",
            "notify_started",
        ]
    );
    store.close().await;
}

/// A silence holds back announcements of the incidents it matches (on their timeline as
/// `suppressed`), never a retraction; an expired one holds back nothing.
async fn silences(store: Store) {
    let store = store.with_notifier(notifier());
    let pool = store.pool().clone();
    let now = Utc::now();
    let new = |matchers: &[&str]| NewSilence {
        matchers: matchers.iter().map(|m| m.to_string()).collect(),
        starts_at: None,
        ends_at: None,
        duration: Some("2h".into()),
        created_by: "alice".into(),
        comment: "router maintenance".into(),
    };
    let s = silence::create(
        &pool,
        silence::Mute::Silence,
        &new(&["customer=ulb", "rule=~noisy.*"]),
        now,
    )
    .await
    .expect("db")
    .expect("valid");
    assert_eq!(s.state, "active");
    let opened = store
        .record(&[
            alert("s.0", "noisy-rule", "high"),
            alert("s.1", "other-rule", "high"),
        ])
        .await
        .expect("record")
        .opened;
    let (silenced, heard) = (opened[0], opened[1]);
    let later = Utc::now().timestamp_millis() + 1_000;
    let t = Timing {
        now: later,
        confirm_ms: 60_000,
        lease_ms: 90_000,
    };
    let due = outbox::claim(&pool, t, 10).await.expect("claim");
    assert!(due.iter().all(|i| i.incident_id == heard), "{due:?}");
    assert_eq!(due.len(), 1, "the other incident's call");
    let steps = store.get(silenced).await.expect("get").timeline;
    assert_eq!(steps[1].action, "suppressed");
    assert_eq!(steps[1].detail["silences"], serde_json::json!([s.id]));

    // A retraction goes through the silence, to the route's receivers.
    store
        .act(
            silenced,
            &Action::Retract {
                reason: "false_positive".into(),
            },
            "bob",
        )
        .await
        .expect("retract");
    let t2 = Timing {
        now: Utc::now().timestamp_millis() + 1_000,
        ..t
    };
    let r = outbox::claim(&pool, t2, 10).await.expect("claim");
    assert_eq!(claimed(&r), [("voice", "+32470000001")]);
    assert_eq!(r[0].incident_id, silenced);

    // Expired, it holds back nothing.
    let gone = silence::expire(&pool, silence::Mute::Silence, s.id, Utc::now())
        .await
        .expect("db")
        .expect("there");
    assert_eq!(gone.state, "expired");
    let again = store
        .record(&[alert("s.2", "noisy-rule", "high")])
        .await
        .expect("record")
        .opened;
    assert_eq!(again.len(), 1, "a new incident after the retraction");
    let t3 = Timing {
        now: Utc::now().timestamp_millis() + 1_000,
        ..t
    };
    let d = outbox::claim(&pool, t3, 10).await.expect("claim");
    assert_eq!(claimed(&d), [("voice", "+32470000001")]);
    assert_eq!(d[0].incident_id, again[0]);

    // Bad silences are refused with the field named.
    let mut bad = new(&[]);
    let e = silence::create(&pool, silence::Mute::Silence, &bad, now)
        .await
        .expect("db")
        .expect_err("no matchers");
    assert!(e.starts_with("matchers"), "{e}");
    bad = new(&["severity=~("]);
    assert!(
        silence::create(&pool, silence::Mute::Silence, &bad, now)
            .await
            .expect("db")
            .is_err()
    );
    bad = new(&["customer=ulb"]);
    bad.duration = None;
    let e = silence::create(&pool, silence::Mute::Silence, &bad, now)
        .await
        .expect("db")
        .expect_err("no end");
    assert!(e.starts_with("ends_at or duration"), "{e}");
    store.close().await;
}

#[tokio::test]
async fn silences_on_sqlite() {
    on_sqlite(silences).await;
}

#[tokio::test]
async fn silences_on_postgres() {
    on_postgres(silences).await;
}

#[tokio::test]
async fn outbox_on_sqlite() {
    on_sqlite(scenario).await;
}

#[tokio::test]
async fn outbox_on_postgres() {
    on_postgres(scenario).await;
}

/// A parent check's outage reaches the customers behind it: each one's NOC is told once with
/// the incident (not one incident each); a customer added later is an essential change,
/// announced at once to everyone told and to the new one; one already told adds nothing.
async fn affected(store: Store) {
    let cfg: NotifyConfig = toml::from_str(
        r#"
[smtp]
host = "127.0.0.1"
from = "vigil@example.org"
[[receivers]]
name = "customers"
email = ["desk@example.org"]
roles = ["noc"]
[route]
receiver = "customers"
"#,
    )
    .expect("notify toml");
    let customers: Vec<vigil_collector::reference::Customer> = ["kul", "ulb", "vub"]
        .iter()
        .map(|c| {
            serde_json::from_value(serde_json::json!({"id": c, "name": c,
                "contacts": [{"role": "noc", "name": "NOC", "email": format!("noc@{c}.example")}]}))
            .expect("a customer")
        })
        .collect();
    let customers = vigil_collector::reference::directory::Shared::new(
        vigil_collector::reference::Customers::new(customers).expect("customers"),
    );
    let n = Notifier::new(&cfg, customers, Default::default())
        .expect("valid")
        .expect("routed");
    let store = store.with_notifier(Arc::new(n));
    let pool = store.pool().clone();
    // The point of presence is nobody's: its customers are those behind it.
    let pop = |id: &str, affected: &[&str]| Alert {
        affected: affected.iter().map(|c| (*c).to_owned()).collect(),
        customer: None,
        ..alert(id, "vigil.check", "high")
    };
    let t = |now| Timing {
        now,
        confirm_ms: 0,
        lease_ms: 90_000,
    };
    let now = Utc::now().timestamp_millis() + 1_000;
    let opened = store
        .record(&[pop("check:pop:1", &["kul", "ulb"])])
        .await
        .expect("record")
        .opened;
    assert_eq!(opened.len(), 1);
    let mut first: Vec<String> = outbox::claim(&pool, t(now), 100)
        .await
        .expect("claim")
        .iter()
        .map(|i| i.delivery.target.clone())
        .collect();
    first.sort();
    assert_eq!(
        first,
        ["desk@example.org", "noc@kul.example", "noc@ulb.example"]
    );
    // Told already: nothing new.
    store
        .record(&[pop("check:pop:1b", &["ulb"])])
        .await
        .expect("record");
    assert!(
        outbox::claim(&pool, t(now + 1), 100)
            .await
            .expect("claim")
            .is_empty()
    );
    // VUB behind it too now: an essential change to everyone, VUB's NOC included.
    store
        .record(&[pop("check:pop:1c", &["ulb", "vub"])])
        .await
        .expect("record");
    let mut change: Vec<String> = outbox::claim(&pool, t(now + 2), 100)
        .await
        .expect("claim")
        .iter()
        .map(|i| i.delivery.target.clone())
        .collect();
    change.sort();
    assert_eq!(
        change,
        [
            "desk@example.org",
            "noc@kul.example",
            "noc@ulb.example",
            "noc@vub.example"
        ]
    );
    let inc = store.get(opened[0]).await.expect("incident");
    assert_eq!(inc.affected, ["kul", "ulb", "vub"]);
    let added: Vec<&serde_json::Value> = inc
        .timeline
        .iter()
        .filter(|e| e.action == "customers_added")
        .map(|e| &e.detail["customers"])
        .collect();
    assert_eq!(added, [&serde_json::json!(["vub"])]);
}

#[tokio::test]
async fn affected_customers_on_sqlite() {
    on_sqlite(affected).await;
}

#[tokio::test]
async fn affected_customers_on_postgres() {
    on_postgres(affected).await;
}

/// An incident's assets are those watching what its alerts were seen on (an agent, a check,
/// an address within a prefix); routes match them; an asset added to an active incident is
/// an essential change (decree art. 5), announced at once to everyone told before and to
/// the new asset's route; an alert on an asset already there adds nothing.
async fn assets(store: Store) {
    use vigil_collector::incidents::Seen;
    use vigil_collector::reference::assets::{Asset, Assets};
    let cfg: NotifyConfig = toml::from_str(
        r#"
[smtp]
host = "127.0.0.1"
from = "vigil@example.org"
[[receivers]]
name = "desk"
email = ["desk@example.org"]
[[receivers]]
name = "netops"
email = ["netops@example.org"]
[[receivers]]
name = "soc"
email = ["soc@example.org"]
[route]
receiver = "desk"
[[route.routes]]
matchers = ["asset=~RTR-.*"]
receiver = "netops"
continue = true
[[route.routes]]
matchers = ["tags=attack.t1110"]
receiver = "soc"
"#,
    )
    .expect("notify toml");
    let n = Notifier::new(&cfg, Default::default(), Default::default())
        .expect("valid")
        .expect("routed");
    let asset = |id: &str, watched: serde_json::Value| -> Asset {
        serde_json::from_value(serde_json::json!({
            "id": id, "customer": "ulb", "kind": "router", "watched_by": watched,
        }))
        .expect("an asset")
    };
    let list = Assets::new(vec![
        asset("FW-0002", serde_json::json!({"agents": ["edge-1"]})),
        asset(
            "RTR-0001",
            serde_json::json!({"prefixes": ["192.0.2.0/24", "2001:db8::/32"]}),
        ),
        asset("SRV-0003", serde_json::json!({"checks": ["web"]})),
    ])
    .expect("assets");
    let store = store
        .with_notifier(Arc::new(n))
        .with_assets(vigil_collector::reference::directory::Shared::new(list));
    let pool = store.pool().clone();
    let t = |now| Timing {
        now,
        confirm_ms: 0,
        lease_ms: 90_000,
    };
    let seen_on = |id: &str, agent: Option<&str>, ips: &[&str]| Alert {
        seen: Seen {
            agent: agent.map(str::to_owned),
            check: None,
            ips: ips.iter().map(|ip| ip.parse().expect("ip")).collect(),
        },
        ..alert(id, "r1", "medium")
    };
    let targets = |items: Vec<outbox::Item>| -> Vec<String> {
        let mut t: Vec<String> = items.into_iter().map(|i| i.delivery.target).collect();
        t.sort();
        t
    };
    let now = Utc::now().timestamp_millis() + 1_000;
    // Seen by the firewall's agent: the desk is told; netops's route wants routers.
    let id = store
        .record(&[seen_on("a.1", Some("edge-1"), &["198.51.100.9"])])
        .await
        .expect("record")
        .opened[0];
    assert_eq!(store.get(id).await.expect("get").assets, ["FW-0002"]);
    assert_eq!(
        targets(outbox::claim(&pool, t(now), 100).await.expect("claim")),
        ["desk@example.org"]
    );
    // Again on the firewall: a rising count, nothing announced.
    store
        .record(&[seen_on("a.2", Some("edge-1"), &[])])
        .await
        .expect("record");
    assert!(
        outbox::claim(&pool, t(now + 1), 100)
            .await
            .expect("claim")
            .is_empty()
    );
    // Now an address behind the router (IPv6): the router is added, announced at once to the
    // desk told before and to netops, whose route now matches.
    store
        .record(&[seen_on("a.3", Some("edge-1"), &["2001:db8::7"])])
        .await
        .expect("record");
    let change = outbox::claim(&pool, t(now + 2), 100).await.expect("claim");
    assert!(change.iter().all(|i| i.kind == Kind::Changed), "{change:?}");
    assert_eq!(targets(change), ["desk@example.org", "netops@example.org"]);
    let inc = store.get(id).await.expect("get");
    assert_eq!(inc.assets, ["FW-0002", "RTR-0001"]);
    let added: Vec<&serde_json::Value> = inc
        .timeline
        .iter()
        .filter(|e| e.action == "assets_added")
        .map(|e| &e.detail["assets"])
        .collect();
    assert_eq!(added, [&serde_json::json!(["RTR-0001"])]);
    // A check's incident concerns the asset its check watches.
    let web = store
        .record(&[Alert {
            seen: Seen {
                check: Some("web".into()),
                ..Default::default()
            },
            ..alert("check:web:1", "vigil.check", "medium")
        }])
        .await
        .expect("record")
        .opened[0];
    assert_eq!(store.get(web).await.expect("get").assets, ["SRV-0003"]);
    outbox::claim(&pool, t(now + 3), 100).await.expect("claim");
    // A rule's tags are labels too: one of them is enough for the SOC's route.
    let tagged = store
        .record(&[Alert {
            tags: vec!["attack.t1110".into(), "attack.credential_access".into()],
            ..alert("a.5", "r2", "medium")
        }])
        .await
        .expect("record")
        .opened[0];
    assert_eq!(
        store.get(tagged).await.expect("get").tags,
        ["attack.credential_access", "attack.t1110"]
    );
    assert_eq!(
        targets(outbox::claim(&pool, t(now + 4), 100).await.expect("claim")),
        ["soc@example.org"]
    );
}

#[tokio::test]
async fn incident_assets_on_sqlite() {
    on_sqlite(assets).await;
}

#[tokio::test]
async fn incident_assets_on_postgres() {
    on_postgres(assets).await;
}
