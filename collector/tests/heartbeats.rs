//! Heartbeats on real SQLite and PostgreSQL with a controlled clock: a heartbeat pinged on
//! time stays up; late beyond its grace it goes down and opens one incident; `/fail` and a
//! non-zero exit status open one at once; the next success resolves it with the outage's
//! length; a run's time from `/start` to its success is recorded; a cron schedule is read in
//! its time zone. Expected times are worked out by hand from the schedule, not by the code.

mod postgres;

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use postgres::{TestClock, on_postgres, on_sqlite};
use vigil_collector::incidents::{Filter, Incident, Status, Store};
use vigil_collector::reference::directory::Shared;
use vigil_collector::uptime::heartbeat::{Heartbeats, NewHeartbeat, Passes, RULE, Urls};
use vigil_collector::uptime::ping::{Kind, Outcome, Ping, Pinger, Target};

fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, h, m, s)
        .single()
        .expect("a time")
}

struct Rig {
    clock: TestClock,
    store: Store,
    hb: Heartbeats,
    pinger: Pinger,
    passes: Passes,
}

impl Rig {
    fn new(store: Store) -> Rig {
        let clock = TestClock::at(t(0, 0, 0).timestamp_millis());
        let store = store.with_clock(clock.clock());
        let hb = Heartbeats::new(
            store.clone(),
            clock.clock(),
            Urls {
                base: "https://vigil.example.org/".into(),
                ping_key: Some("k3y-of-sixteen-chars".into()),
            },
            Shared::default(),
            Arc::new(vigil_collector::metrics::Metrics::new()),
        );
        let pinger = Pinger::start(hb.clone());
        Rig {
            clock,
            store,
            hb,
            pinger,
            passes: Passes::default(),
        }
    }

    fn at(&self, at: DateTime<Utc>) {
        self.clock.set(at.timestamp_millis());
    }

    async fn ping(&self, uuid: &str, kind: Kind, rid: Option<&str>, body: &str) -> Outcome {
        self.pinger
            .ping(Ping {
                target: Target::Uuid(uuid.into()),
                kind,
                rid: rid.map(str::to_owned),
                user_agent: Some("curl/7.88".into()),
                body: body.into(),
            })
            .await
            .expect("ping recorded")
    }

    async fn sweep(&mut self, at: DateTime<Utc>) -> Vec<String> {
        self.at(at);
        self.hb
            .sweep(at, &mut self.passes)
            .await
            .expect("sweep")
            .late
    }

    async fn incidents(&self) -> Vec<Incident> {
        let mut all = self.store.list(&Filter::default()).await.expect("list");
        all.sort_by_key(|i| i.id);
        all
    }

    async fn status(&self, slug: &str) -> String {
        self.hb.get(slug).await.expect("heartbeat").status
    }
}

async fn period_scenario(store: Store) {
    let mut rig = Rig::new(store);
    let new = NewHeartbeat {
        slug: "nightly-backup".into(),
        period: Some("1h".into()),
        grace: Some("10m".into()),
        danger: true,
        ..NewHeartbeat::default()
    };
    let hb = rig.hb.create(&new, "ann").await.expect("created");
    assert_eq!(
        hb.ping_url,
        format!("https://vigil.example.org/ping/{}", hb.uuid)
    );
    assert_eq!(
        hb.slug_url.as_deref(),
        Some("https://vigil.example.org/ping/k3y-of-sixteen-chars/nightly-backup")
    );
    assert_eq!(
        (hb.status.as_str(), hb.period_seconds, hb.grace_seconds),
        ("new", Some(3600), 600)
    );
    let uuid = hb.uuid.clone();

    // Never pinged: nothing is expected, a day later still nothing.
    assert!(rig.sweep(t(23, 0, 0)).await.is_empty());
    assert_eq!(rig.status("nightly-backup").await, "new");

    // Pinged: up, the next due an hour later.
    rig.at(t(0, 0, 0));
    assert_eq!(
        rig.ping(&uuid, Kind::Success, None, "").await,
        Outcome::Recorded
    );
    let now = rig.hb.get(&uuid).await.expect("the database answers");
    assert_eq!(
        (now.status.as_str(), now.next_due),
        ("up", Some(t(1, 0, 0)))
    );

    // Due but within grace: late, not down.
    assert!(rig.sweep(t(1, 5, 0)).await.is_empty());
    assert_eq!(rig.status(&uuid).await, "late");
    assert!(rig.incidents().await.is_empty());
    // A ping in the grace time: up, due an hour after it.
    assert_eq!(
        rig.ping(&uuid, Kind::Success, None, "").await,
        Outcome::Recorded
    );
    assert_eq!(
        rig.hb
            .get(&uuid)
            .await
            .expect("the database answers")
            .next_due,
        Some(t(2, 5, 0))
    );

    // At its deadline (02:05 + 10m) still up; a millisecond later down, with one incident.
    assert!(rig.sweep(t(2, 15, 0)).await.is_empty());
    let late = t(2, 15, 0) + chrono::Duration::milliseconds(1);
    assert_eq!(rig.sweep(late).await, vec!["nightly-backup".to_owned()]);
    let down = rig.hb.get(&uuid).await.expect("the database answers");
    assert_eq!(
        (
            down.status.as_str(),
            down.down_since,
            down.down_reason.as_deref()
        ),
        ("down", Some(t(2, 15, 0)), Some("late"))
    );
    assert!(rig.sweep(t(2, 16, 0)).await.is_empty(), "down once");
    let inc = rig.incidents().await;
    assert_eq!(inc.len(), 1, "{inc:?}");
    assert_eq!(inc[0].rule_id, RULE);
    assert_eq!(inc[0].group_key, "heartbeat=nightly-backup");
    assert!(inc[0].danger, "the heartbeat's danger is the incident's");
    assert!(inc[0].title.contains("no ping in time"), "{}", inc[0].title);

    // The next success resolves it: down from 02:15:00 to 02:20:00, 300 s.
    rig.at(t(2, 20, 0));
    rig.ping(&uuid, Kind::Success, None, "").await;
    let resolved = rig
        .store
        .get(inc[0].id)
        .await
        .expect("the database answers");
    assert_eq!(resolved.status, Status::Resolved);
    let ended = resolved
        .timeline
        .iter()
        .find(|e| e.action == "outage_ended")
        .expect("the outage on the timeline");
    assert_eq!(ended.detail["duration_seconds"], 300);
    assert_eq!(rig.status(&uuid).await, "up");

    // /fail opens an incident at once (no sweep), with what the job said.
    rig.at(t(2, 30, 0));
    rig.ping(&uuid, Kind::Fail, None, "disk full\n").await;
    let inc = rig.incidents().await;
    assert_eq!(inc.len(), 2);
    assert_eq!(inc[1].status, Status::Open);
    assert!(inc[1].title.contains("failure"), "{}", inc[1].title);
    let opened = rig
        .store
        .get(inc[1].id)
        .await
        .expect("the database answers");
    assert_eq!(opened.timeline[0].detail["message"], "disk full\n");
    // A second failure is the same outage.
    rig.ping(&uuid, Kind::Exit(2), None, "").await;
    assert_eq!(rig.incidents().await.len(), 2);
    // Exit status 0 is a success: resolved.
    rig.at(t(2, 31, 0));
    rig.ping(&uuid, Kind::Exit(0), None, "").await;
    assert_eq!(
        rig.store
            .get(inc[1].id)
            .await
            .expect("the database answers")
            .status,
        Status::Resolved
    );

    // Exit status 1 opens one at once; a failure and a success in one breath open and
    // resolve one.
    rig.ping(&uuid, Kind::Exit(1), None, "").await;
    let p1 = rig.pinger.clone();
    let p2 = rig.pinger.clone();
    let u1 = uuid.clone();
    let (a, b) = tokio::join!(
        p1.ping(Ping {
            target: Target::Uuid(u1),
            kind: Kind::Success,
            rid: None,
            user_agent: None,
            body: String::new(),
        }),
        async {
            tokio::task::yield_now().await;
            p2.ping(Ping {
                target: Target::Uuid(uuid.clone()),
                kind: Kind::Fail,
                rid: None,
                user_agent: None,
                body: String::new(),
            })
            .await
        }
    );
    assert_eq!((a, b), (Ok(Outcome::Recorded), Ok(Outcome::Recorded)));
    rig.ping(&uuid, Kind::Success, None, "").await;
    let inc = rig.incidents().await;
    assert_eq!(
        inc.len(),
        4,
        "exit 1, then the failure between two successes: {inc:?}"
    );
    assert!(inc.iter().all(|i| i.status == Status::Resolved), "{inc:?}");

    // A run: /start, then its success 42 s later with the same run id.
    rig.at(t(3, 0, 0));
    rig.ping(&uuid, Kind::Start, Some("r1"), "").await;
    assert!(
        rig.hb
            .get(&uuid)
            .await
            .expect("the database answers")
            .running
    );
    rig.at(t(3, 0, 42));
    rig.ping(&uuid, Kind::Success, Some("r1"), "done").await;
    let done = rig.hb.get(&uuid).await.expect("the database answers");
    assert_eq!(
        (done.running, done.last_duration_seconds),
        (false, Some(42.0))
    );
    assert_eq!(done.recent[0].body, "done");
    assert_eq!(done.recent[0].user_agent.as_deref(), Some("curl/7.88"));

    // A run started and not finished within grace goes down at its start + grace.
    rig.at(t(3, 10, 0));
    rig.ping(&uuid, Kind::Start, None, "").await;
    assert!(rig.sweep(t(3, 20, 0)).await.is_empty());
    let stuck = t(3, 20, 0) + chrono::Duration::milliseconds(1);
    assert_eq!(rig.sweep(stuck).await.len(), 1);
    assert_eq!(
        rig.hb
            .get(&uuid)
            .await
            .expect("the database answers")
            .down_since,
        Some(t(3, 20, 0))
    );
    assert_eq!(rig.incidents().await.len(), 5);

    // /log changes nothing; an unknown uuid is not found.
    rig.ping(&uuid, Kind::Log, None, "progress 50%").await;
    assert_eq!(rig.status(&uuid).await, "down");
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_eq!(
        rig.ping(&unknown, Kind::Success, None, "").await,
        Outcome::NotFound
    );
}

async fn cron_and_slug_scenario(store: Store) {
    let mut rig = Rig::new(store);
    // 03:00 in Brussels is 02:00 UTC in December.
    let new = NewHeartbeat {
        slug: "db-dump".into(),
        schedule: Some("0 3 * * *".into()),
        tz: Some("Europe/Brussels".into()),
        grace: Some("1h".into()),
        ..NewHeartbeat::default()
    };
    let hb = rig.hb.create(&new, "ann").await.expect("created");
    rig.at(t(2, 0, 5));
    rig.ping(&hb.uuid, Kind::Success, None, "").await;
    let next = Utc
        .with_ymd_and_hms(2026, 12, 2, 2, 0, 0)
        .single()
        .expect("a time");
    assert_eq!(
        rig.hb
            .get("db-dump")
            .await
            .expect("the database answers")
            .next_due,
        Some(next)
    );
    assert!(
        rig.sweep(next + chrono::Duration::hours(1))
            .await
            .is_empty()
    );
    let late = next + chrono::Duration::hours(1) + chrono::Duration::milliseconds(1);
    assert_eq!(rig.sweep(late).await, vec!["db-dump".to_owned()]);

    // The same slug again is refused; bad fields are named.
    let again = rig.hb.create(&new, "ann").await.expect_err("refused");
    assert!(again.to_string().contains("exists"), "{again}");
    for (bad, field) in [
        (
            NewHeartbeat {
                slug: "a b".into(),
                ..NewHeartbeat::default()
            },
            "slug",
        ),
        (
            NewHeartbeat {
                slug: "x".into(),
                period: Some("soon".into()),
                ..NewHeartbeat::default()
            },
            "period",
        ),
        (
            NewHeartbeat {
                slug: "x".into(),
                period: Some("500ms".into()),
                ..NewHeartbeat::default()
            },
            "period",
        ),
        (
            NewHeartbeat {
                slug: "x".into(),
                schedule: Some("0 3 * *".into()),
                ..NewHeartbeat::default()
            },
            "schedule",
        ),
        (
            NewHeartbeat {
                slug: "x".into(),
                schedule: Some("0 3 * * *".into()),
                tz: Some("Mars/Olympus".into()),
                ..NewHeartbeat::default()
            },
            "tz",
        ),
        (
            NewHeartbeat {
                slug: "x".into(),
                grace: Some("1y".into()),
                ..NewHeartbeat::default()
            },
            "grace",
        ),
        (
            NewHeartbeat {
                slug: "x".into(),
                customer: Some("nobody".into()),
                ..NewHeartbeat::default()
            },
            "customer",
        ),
        (
            NewHeartbeat {
                slug: "x".into(),
                severity: Some("dire".into()),
                ..NewHeartbeat::default()
            },
            "severity",
        ),
    ] {
        let e = rig
            .hb
            .create(&bad, "ann")
            .await
            .expect_err("refused")
            .to_string();
        assert!(e.starts_with(&format!("{field}:")), "{field}: {e}");
    }

    // A slug ping with ?create=1 creates the heartbeat (a day's period, an hour's grace).
    let slug = |slug: &str, create| Ping {
        target: Target::Slug {
            slug: slug.into(),
            create,
        },
        kind: Kind::Success,
        rid: None,
        user_agent: None,
        body: String::new(),
    };
    assert_eq!(
        rig.pinger.ping(slug("new-job", false)).await,
        Ok(Outcome::NotFound)
    );
    assert_eq!(
        rig.pinger.ping(slug("new-job", true)).await,
        Ok(Outcome::Created)
    );
    assert_eq!(
        rig.pinger.ping(slug("new-job", true)).await,
        Ok(Outcome::Recorded)
    );
    let made = rig.hb.get("new-job").await.expect("the database answers");
    assert_eq!(
        (
            made.status.as_str(),
            made.period_seconds,
            made.grace_seconds,
            made.pings
        ),
        ("up", Some(86_400), 3600, 2)
    );
    assert_eq!(
        rig.pinger.ping(slug("not a slug", true)).await,
        Ok(Outcome::NotFound)
    );

    // Deleted: its pings go, and its uuid is not found.
    rig.hb
        .delete("new-job")
        .await
        .expect("the database answers");
    let gone = Ping {
        target: Target::Uuid(made.uuid),
        ..slug("x", false)
    };
    assert_eq!(rig.pinger.ping(gone).await, Ok(Outcome::NotFound));
}

#[tokio::test]
async fn heartbeats_on_sqlite() {
    on_sqlite(period_scenario).await;
    on_sqlite(cron_and_slug_scenario).await;
}

#[tokio::test]
async fn heartbeats_on_postgres() {
    on_postgres(period_scenario).await;
    on_postgres(cron_and_slug_scenario).await;
}

/// A collector stopped between a heartbeat's change and its incident's: the sweep's
/// reconciliation opens the incident of a down heartbeat that has none, and resolves the
/// open incident of a heartbeat that is up.
async fn reconcile_scenario(store: Store) {
    let mut rig = Rig::new(store);
    let new = NewHeartbeat {
        slug: "sync".into(),
        ..NewHeartbeat::default()
    };
    let hb = rig.hb.create(&new, "ann").await.expect("created");
    rig.ping(&hb.uuid, Kind::Success, None, "").await;
    let pool = rig.store.pool().clone();
    sqlx::query(
        "UPDATE heartbeats SET status = 'down', down_since = $1, down_reason = 'late',
             outages = outages + 1 WHERE uuid = $2",
    )
    .bind(t(5, 0, 0).timestamp_millis())
    .bind(&hb.uuid)
    .execute(&pool)
    .await
    .expect("present");
    rig.at(t(5, 0, 1));
    let s = rig
        .hb
        .sweep(t(5, 0, 1), &mut rig.passes)
        .await
        .expect("the database answers");
    assert_eq!(s.reconciled, 1);
    let inc = rig.incidents().await;
    assert_eq!((inc.len(), inc[0].status), (1, Status::Open));
    // Within 30 s the state is not looked at again; after, the incident is there: nothing.
    let s = rig
        .hb
        .sweep(t(5, 0, 40), &mut rig.passes)
        .await
        .expect("the database answers");
    assert_eq!(s.reconciled, 0);
    sqlx::query("UPDATE heartbeats SET status = 'up', down_since = NULL WHERE uuid = $1")
        .bind(&hb.uuid)
        .execute(&pool)
        .await
        .expect("present");
    rig.at(t(5, 1, 20));
    let s = rig
        .hb
        .sweep(t(5, 1, 20), &mut rig.passes)
        .await
        .expect("the database answers");
    assert_eq!(s.reconciled, 1);
    assert_eq!(rig.incidents().await[0].status, Status::Resolved);
}

#[tokio::test]
async fn reconciliation_on_both_databases() {
    on_sqlite(reconcile_scenario).await;
    on_postgres(reconcile_scenario).await;
}
