//! Deadlines and escalation on real SQLite and PostgreSQL, with a controlled clock: an
//! incident not acknowledged in time goes to the next level of the on-call rota (the call and
//! the e-mail to that person are in the outbox), a person's acknowledgement stops it, an
//! override changes who is called, and a passed resolve-by deadline shows on the queue.

mod postgres;

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use postgres::{TestClock, on_postgres, on_sqlite};
use vigil_collector::config::CollectorConfig;
use vigil_collector::incidents::{Action, Alert, Filter, Store};
use vigil_collector::notify::Notifier;
use vigil_collector::notify::outbox::{self, Timing};
use vigil_collector::oncall::NewOverride;

const CONFIG: &str = r#"
[incidents.acknowledge_within]
critical = "5m"
high = "15m"
[incidents.resolve_within]
high = "4h"

[[oncall.people]]
id = "ann"
name = "Ann"
phone = "+32470000011"
email = "ann@example.org"
[[oncall.people]]
id = "bob"
name = "Bob"
phone = "+32470000012"
email = "bob@example.org"
[[oncall.people]]
id = "cy"
name = "Cy"
phone = "+32470000013"
email = "cy@example.org"
[[oncall.rotas]]
name = "soc"
start = "2026-11-30"
levels = [["ann", "bob"], ["cy"]]

[notify.smtp]
host = "127.0.0.1"
from = "vigil@example.org"
[notify.voice]
url = "http://127.0.0.1:1/call"
[[notify.receivers]]
name = "desk"
email = ["desk@example.org"]
[[notify.receivers]]
name = "soc"
oncall = "soc"
[notify.route]
receiver = "desk"
[[notify.route.routes]]
matchers = ["danger=true"]
receiver = "soc"
"#;

/// 10:00 UTC on Wednesday 2 December 2026: Ann holds level 1, Cy level 2.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0)
        .single()
        .expect("time")
}

const MIN: i64 = 60_000;

fn alert(id: &str, rule: &str, severity: &str) -> Alert {
    Alert {
        id: id.into(),
        rule_id: rule.into(),
        title: format!("{rule} title"),
        severity: severity.into(),
        customer: Some("ulb".into()),
        group_key: "host.name=h".into(),
        at: t0(),
        message: None,
        // These tests' high and critical rules judge their alerts a danger.
        danger: matches!(severity, "high" | "critical"),
        affected: Vec::new(),
        tags: Vec::new(),
        seen: Default::default(),
    }
}

/// Everything due in the outbox at `now`, as (channel, target), ended as sent.
async fn due(store: &Store, now: i64) -> Vec<(String, String)> {
    let pool = store.pool();
    let t = Timing {
        now,
        confirm_ms: MIN,
        lease_ms: 90_000,
    };
    let items = outbox::claim(pool, t, 100).await.expect("claim");
    let out = items
        .iter()
        .map(|i| {
            (
                i.delivery.channel.as_str().to_owned(),
                i.delivery.target.clone(),
            )
        })
        .collect();
    let ended: Vec<_> = items
        .into_iter()
        .map(|i| (i, outbox::Outcome::Sent(serde_json::json!({}))))
        .collect();
    outbox::finish_all(pool, &ended, now).await.expect("finish");
    out
}

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

async fn scenario(store: Store) {
    let cfg: CollectorConfig = toml::from_str(CONFIG).expect("config");
    let path = std::path::Path::new("test.toml");
    cfg.validate(path).expect("valid");
    let notifier: Arc<Notifier> = Arc::new(cfg.notifier(path).expect("notify").expect("routed"));
    let clock = TestClock::at(t0().timestamp_millis());
    let store = store
        .with_notifier(notifier.clone())
        .with_deadlines(cfg.deadlines(path).expect("deadlines"))
        .with_clock(clock.clock());
    let at = |ms: i64| DateTime::from_timestamp_millis(ms).expect("time");
    let set = |ms: i64| clock.set(ms);
    let t = t0().timestamp_millis();

    let opened = store
        .record(&[
            alert("e.0", "exfiltration", "high"),
            alert("e.1", "ransomware", "high"),
            alert("e.2", "port-scan", "low"),
        ])
        .await
        .expect("record")
        .opened;
    let (ignored, acked, quiet) = (opened[0], opened[1], opened[2]);
    let inc = store.get_brief(ignored).await.expect("get");
    assert_eq!(inc.acknowledge_by, Some(at(t + 15 * MIN)));
    assert_eq!(inc.resolve_by, Some(at(t + 240 * MIN)));
    assert_eq!((inc.level, inc.breached.len()), (1, 0));
    let low = store.get_brief(quiet).await.expect("get");
    assert_eq!((low.acknowledge_by, low.resolve_by), (None, None));
    // Level 1 (Ann) is called for both danger incidents; the desk is e-mailed the quiet one.
    assert_eq!(
        due(&store, t).await,
        pairs(&[
            ("voice", "+32470000011"),
            ("voice", "+32470000011"),
            ("email", "desk@example.org")
        ])
    );
    assert_eq!(
        due(&store, t).await,
        pairs(&[("email", "ann@example.org"), ("email", "ann@example.org")])
    );

    // Ann acknowledges one of them by pressing the key (the callback acts as she does).
    set(t + 3 * MIN);
    store
        .act(acked, &Action::Ack, "phone:+32470000011")
        .await
        .expect("ack");

    // One minute before the deadline nothing moves.
    let e = store.enforce(at(t + 15 * MIN - 1)).await.expect("enforce");
    assert!(
        e.escalated.is_empty() && e.resolve_breached.is_empty(),
        "{e:?}"
    );
    // At the deadline the ignored one goes to level 2 (Cy): call, then e-mail.
    set(t + 15 * MIN);
    let e = store.enforce(at(t + 15 * MIN)).await.expect("enforce");
    assert_eq!(e.escalated, [(ignored, 2)]);
    assert_eq!(
        due(&store, t + 15 * MIN).await,
        pairs(&[("voice", "+32470000013")])
    );
    assert_eq!(
        due(&store, t + 15 * MIN).await,
        pairs(&[("email", "cy@example.org")])
    );
    let inc = store.get(ignored).await.expect("get");
    assert_eq!(inc.level, 2);
    assert_eq!(inc.breached, ["acknowledge"]);
    assert_eq!(inc.acknowledge_by, Some(at(t + 30 * MIN)));
    let step = inc
        .timeline
        .iter()
        .find(|s| s.action == "deadline_breached")
        .expect("on the timeline");
    assert_eq!(step.detail["level"], 2);
    // Cy does not answer either: no level 3, so the breach stays and nobody new is called.
    set(t + 30 * MIN);
    let e = store.enforce(at(t + 30 * MIN)).await.expect("enforce");
    assert_eq!(e.escalated, [(ignored, 2)]);
    assert!(due(&store, t + 30 * MIN).await.is_empty());
    let inc = store.get_brief(ignored).await.expect("get");
    assert_eq!((inc.level, inc.acknowledge_by), (2, None));
    assert!(
        store
            .enforce(at(t + 200 * MIN))
            .await
            .expect("enforce")
            .escalated
            .is_empty()
    );
    let acked_now = store.get_brief(acked).await.expect("get");
    assert_eq!(
        (acked_now.level, acked_now.breached.len()),
        (1, 0),
        "an acknowledged incident does not escalate"
    );

    // Resolve-by passes for both active danger incidents, once.
    let e = store.enforce(at(t + 240 * MIN)).await.expect("enforce");
    let mut breached = e.resolve_breached.clone();
    breached.sort();
    assert_eq!(breached, [ignored, acked]);
    assert!(
        store
            .enforce(at(t + 241 * MIN))
            .await
            .expect("enforce")
            .resolve_breached
            .is_empty()
    );
    let late = store
        .list(&Filter {
            breached: Some(true),
            ..Filter::default()
        })
        .await
        .expect("list");
    let mut ids: Vec<i64> = late.iter().map(|i| i.id).collect();
    ids.sort();
    assert_eq!(ids, [ignored, acked]);
    assert_eq!(
        store.get_brief(acked).await.expect("get").breached,
        ["resolve"]
    );

    // Bob takes level 1 for the evening: the next danger incident calls him, not Ann.
    set(t + 300 * MIN);
    let over = notifier
        .oncall
        .create_override(
            store.pool(),
            &NewOverride {
                rota: "soc".into(),
                level: 1,
                person: "bob".into(),
                starts_at: None,
                ends_at: None,
                duration: Some("6h".into()),
                created_by: "ann".into(),
                comment: "swap".into(),
            },
            at(t + 300 * MIN),
        )
        .await
        .expect("db")
        .expect("valid");
    assert_eq!(over.person, "bob");
    store
        .record(&[alert("e.3", "beaconing", "critical")])
        .await
        .expect("record");
    assert_eq!(
        due(&store, t + 300 * MIN).await,
        pairs(&[("voice", "+32470000012")])
    );
    store.close().await;
}

const DESK: &str = r#"
[[customers]]
id = "ulb"
name = "ULB"
[[customers.contacts]]
role = "noc"
name = "Noc One"
phone = "+3226501111"
email = "noc@ulb.example"

[[oncall.people]]
id = "ann"
name = "Ann"
email = "ann@example.org"
[[oncall.people]]
id = "cy"
name = "Cy"
email = "cy@example.org"
[[oncall.rotas]]
name = "soc"
start = "2026-11-30"
levels = [["ann"], ["cy"]]

[notify.smtp]
host = "127.0.0.1"
from = "vigil@example.org"
[[notify.receivers]]
name = "ulb-noc"
roles = ["noc"]
calls_by = "desk"
call_within = "10m"
[[notify.receivers]]
name = "soc"
oncall = "soc"
[notify.route]
receiver = "soc"
[[notify.route.routes]]
matchers = ["danger=true"]
receiver = "ulb-noc"
continue = true
[[notify.route.routes]]
matchers = ["danger=true"]
receiver = "soc"
"#;

/// A route whose calls the desk makes: the dispatcher puts an operator call task on the desk
/// (number, whose it is, a script, a deadline); calls are recorded; a task not made in time
/// escalates its incident to the next on-call level, once.
async fn call_tasks(store: Store) {
    use vigil_collector::notify::task::{self, Attempt, TaskError};
    let cfg: CollectorConfig = toml::from_str(DESK).expect("config");
    let path = std::path::Path::new("test.toml");
    cfg.validate(path).expect("valid");
    let notifier: Arc<Notifier> = Arc::new(cfg.notifier(path).expect("notify").expect("routed"));
    let t = t0().timestamp_millis();
    let clock = TestClock::at(t);
    let clock_fn = clock.clock();
    let store = store
        .with_notifier(notifier.clone())
        .with_deadlines(cfg.deadlines(path).expect("deadlines"))
        .with_clock(clock_fn.clone());
    let at = |ms: i64| DateTime::from_timestamp_millis(ms).expect("time");
    let dispatcher = vigil_collector::notify::dispatch::Dispatcher::new(
        store.clone(),
        notifier,
        clock_fn,
        store.wake(),
        Arc::new(vigil_collector::metrics::Metrics::new()),
    )
    .expect("dispatcher");

    let opened = store
        .record(&[
            alert("d.0", "intrusion", "high"),
            alert("d.1", "defacement", "critical"),
        ])
        .await
        .expect("record")
        .opened;
    let (missed, made) = (opened[0], opened[1]);
    // The calls are due first (the e-mails wait for them): each becomes a task on the desk.
    assert_eq!(dispatcher.round().await.expect("round"), 2);
    let tasks = task::list(store.pool(), None).await.expect("tasks");
    assert_eq!(tasks.len(), 2, "{tasks:?}");
    // The two are made at once: which gets the lower id is not fixed.
    let first = tasks
        .iter()
        .find(|t| t.incident_id == missed)
        .expect("a task for the first incident");
    assert_eq!(
        (
            first.incident_id,
            first.number.as_str(),
            first.state.as_str()
        ),
        (missed, "+3226501111", "open")
    );
    assert_eq!(first.contact.as_deref(), Some("Noc One (noc, ULB)"));
    assert_eq!(first.due_at, at(t + 10 * MIN));
    assert!(
        first.script.contains("Noc One")
            && first.script.contains(&format!("incident number {missed}")),
        "{}",
        first.script
    );
    // A second round does not make them again.
    dispatcher.round().await.expect("round");
    assert_eq!(
        task::list(store.pool(), None).await.expect("tasks").len(),
        2
    );

    let attempt = |outcome: &str, who: Option<&str>| Attempt {
        outcome: outcome.into(),
        answered_by: who.map(str::to_owned),
        note: None,
    };
    let rec = |id, a: Attempt| {
        let pool = store.pool().clone();
        async move {
            task::record(&pool, id, &a, "operator-1", at(t + MIN))
                .await
                .expect("db")
        }
    };
    let no_answer = rec(first.id, attempt("no_answer", None))
        .await
        .expect("recorded");
    assert_eq!((no_answer.state.as_str(), no_answer.attempts), ("open", 1));
    assert!(matches!(
        rec(first.id, attempt("shouted", None)).await,
        Err(TaskError::Invalid(_))
    ));
    assert!(matches!(
        rec(first.id, attempt("reached", None)).await,
        Err(TaskError::Invalid(_))
    ));
    assert!(matches!(
        rec(999_999, attempt("busy", None)).await,
        Err(TaskError::NotFound(_))
    ));
    let other = tasks
        .iter()
        .find(|t| t.incident_id == made)
        .expect("a task for the second incident")
        .id;
    let done = rec(other, attempt("reached", Some("Noc One")))
        .await
        .expect("recorded");
    assert_eq!(
        (done.state.as_str(), done.answered_by.as_deref()),
        ("done", Some("Noc One"))
    );
    assert!(matches!(
        rec(other, attempt("busy", None)).await,
        Err(TaskError::Done(_))
    ));

    // At the deadline, the unmade call escalates its incident to level 2 (Cy, by e-mail);
    // the made one does not.
    let e = store.enforce(at(t + 10 * MIN - 1)).await.expect("enforce");
    assert!(e.tasks_overdue.is_empty(), "{e:?}");
    clock.set(t + 10 * MIN);
    let e = store.enforce(at(t + 10 * MIN)).await.expect("enforce");
    assert_eq!(e.tasks_overdue, [(first.id, missed, 2)]);
    assert!(
        store
            .enforce(at(t + 20 * MIN))
            .await
            .expect("enforce")
            .tasks_overdue
            .is_empty()
    );
    assert_eq!(store.get_brief(missed).await.expect("get").level, 2);
    assert_eq!(store.get_brief(made).await.expect("get").level, 1);
    let overdue = task::list(store.pool(), Some("overdue"))
        .await
        .expect("tasks");
    assert_eq!(overdue.iter().map(|t| t.id).collect::<Vec<_>>(), [first.id]);
    let cy: Vec<i64> =
        sqlx::query_scalar("SELECT incident_id FROM outbox WHERE target = 'cy@example.org'")
            .fetch_all(store.pool())
            .await
            .expect("outbox");
    assert_eq!(cy, [missed]);
    let steps: Vec<String> = store
        .get(missed)
        .await
        .expect("get")
        .timeline
        .into_iter()
        .map(|s| s.action)
        .collect();
    for want in ["call_task", "call_made", "deadline_breached"] {
        assert!(steps.iter().any(|s| s == want), "{want} in {steps:?}");
    }
    store.close().await;
}

#[tokio::test]
async fn call_tasks_on_sqlite() {
    on_sqlite(call_tasks).await;
}

#[tokio::test]
async fn call_tasks_on_postgres() {
    on_postgres(call_tasks).await;
}

#[tokio::test]
async fn escalation_on_sqlite() {
    on_sqlite(scenario).await;
}

#[tokio::test]
async fn escalation_on_postgres() {
    on_postgres(scenario).await;
}

/// The gauges read from the database: incidents open by severity and customer (a resolved
/// one leaves them; a customer with nothing open any more has no series), and the age of the
/// oldest notification waiting.
async fn gauges(store: Store) {
    let cfg: CollectorConfig = toml::from_str(CONFIG).expect("config");
    let path = std::path::Path::new("test.toml");
    cfg.validate(path).expect("valid");
    let notifier: Arc<Notifier> = Arc::new(cfg.notifier(path).expect("notify").expect("routed"));
    let t = t0().timestamp_millis();
    let clock = TestClock::at(t);
    let store = store.with_notifier(notifier).with_clock(clock.clock());
    let metrics = vigil_collector::metrics::Metrics::new();
    let kul = |a: Alert| Alert {
        customer: Some("kul".into()),
        ..a
    };
    let opened = store
        .record(&[
            alert("g.1", "r1", "high"),
            alert("g.2", "r2", "high"),
            alert("g.3", "r3", "medium"),
            kul(alert("g.4", "r4", "low")),
        ])
        .await
        .expect("record")
        .opened;
    let read = |now: i64| {
        let (store, metrics) = (&store, &metrics);
        async move {
            vigil_collector::incidents::deadlines::gauges(store, metrics, now)
                .await
                .expect("gauges");
            metrics
                .render()
                .lines()
                .filter(|l| {
                    l.starts_with("vigil_incidents_open{")
                        || l.starts_with("vigil_notify_outbox_oldest_seconds ")
                })
                .map(str::to_owned)
                .collect::<Vec<_>>()
        }
    };
    let mut got = read(t + 90_000).await;
    got.sort();
    assert_eq!(
        got,
        [
            r#"vigil_incidents_open{severity="high",customer="ulb"} 2"#,
            r#"vigil_incidents_open{severity="low",customer="kul"} 1"#,
            r#"vigil_incidents_open{severity="medium",customer="ulb"} 1"#,
            // Nothing sent yet: the oldest delivery waits since the incidents opened.
            "vigil_notify_outbox_oldest_seconds 90",
        ]
    );
    let last = *opened.last().expect("kul's");
    store
        .act(last, &Action::Resolve { resolution: None }, "alice")
        .await
        .expect("resolve");
    let got = read(t + 90_000).await;
    assert!(!got.iter().any(|l| l.contains("kul")), "{got:?}");
}

#[tokio::test]
async fn gauges_on_sqlite() {
    on_sqlite(gauges).await;
}

#[tokio::test]
async fn gauges_on_postgres() {
    on_postgres(gauges).await;
}
