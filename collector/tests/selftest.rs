//! Scheduled test notifications on real SQLite and PostgreSQL with a controlled clock: one
//! round a period through each channel of the chosen receiver (a call through the voice
//! gateway, a webhook, a CAP endpoint, e-mail), each saying it is a test (the webhook's
//! alert `resolved`, the CAP message valid against the OASIS schema with status `Test`); an
//! e-mail channel that cannot deliver the test raises its channel's incident, announced by
//! the other channels and never by e-mail.

mod postgres;

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};

use chrono::{TimeZone, Utc};
use postgres::{TestClock, on_postgres, on_sqlite};
use sqlx::Row;
use vigil_collector::config::CollectorConfig;
use vigil_collector::incidents::{Filter, Store};
use vigil_collector::notify::Notifier;
use vigil_collector::notify::dispatch::Dispatcher;

type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// An HTTP server that answers 200 to everything and keeps (path, body) of each request.
fn sink() -> (u16, Seen) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    let seen: Seen = Arc::default();
    let keep = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut r = BufReader::new(c.try_clone().expect("clone"));
            let mut line = String::new();
            if r.read_line(&mut line).is_err() {
                continue;
            }
            let path = line.split_whitespace().nth(1).unwrap_or("").to_owned();
            let mut len = 0;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = h.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; len];
            let _ = r.read_exact(&mut body);
            keep.lock()
                .expect("lock")
                .push((path, String::from_utf8_lossy(&body).into_owned()));
            let _ = c.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}",
            );
        }
    });
    (port, seen)
}

async fn selftest_rows(store: &Store) -> Vec<(String, String)> {
    sqlx::query("SELECT channel, state FROM outbox WHERE kind = 'selftest' ORDER BY id")
        .fetch_all(store.pool())
        .await
        .expect("outbox")
        .iter()
        .map(|r| {
            (
                r.try_get("channel").expect("c"),
                r.try_get("state").expect("s"),
            )
        })
        .collect()
}

async fn scenario(store: Store) {
    let (port, seen) = sink();
    let config = format!(
        r#"
[notify]
attempts = 2
retry_backoff = "1s"
timeout = "2s"
breaker_failures = 10
[notify.smtp]
host = "127.0.0.1"
port = 1
security = "none"
from = "vigil@example.org"
[notify.voice]
url = "http://127.0.0.1:{port}/call"
[notify.selftest]
receiver = "watchers"
every = "1d"
[[notify.receivers]]
name = "watchers"
email = ["noc@example.org"]
voice = ["+32470000009"]
webhook = ["http://127.0.0.1:{port}/hook"]
cap = ["http://127.0.0.1:{port}/cap"]
[[notify.receivers]]
name = "desk"
email = ["desk@example.org"]
voice = ["+32470000001"]
webhook = ["http://127.0.0.1:{port}/desk"]
[notify.route]
receiver = "desk"
"#
    );
    let cfg: CollectorConfig = toml::from_str(&config).expect("config");
    let path = std::path::Path::new("test.toml");
    cfg.validate(path).expect("valid");
    let n: Arc<Notifier> = Arc::new(cfg.notifier(path).expect("notify").expect("routed"));
    let t0 = Utc
        .with_ymd_and_hms(2026, 12, 2, 10, 0, 0)
        .single()
        .expect("t")
        .timestamp_millis();
    let clock = TestClock::at(t0);
    let store = store.with_notifier(n.clone()).with_clock(clock.clock());
    let metrics = Arc::new(vigil_collector::metrics::Metrics::new());
    let d = Dispatcher::new(store.clone(), n, clock.clock(), store.wake(), metrics)
        .expect("dispatcher");
    let round_at = |ms: i64| {
        clock.set(ms);
        d.round()
    };

    // The first round: the call, the webhook and the CAP message go; the e-mail waits for
    // the call's end (or a minute).
    round_at(t0).await.expect("round");
    let paths = |seen: &Seen| -> Vec<String> {
        let mut p: Vec<String> = seen
            .lock()
            .expect("lock")
            .iter()
            .map(|(p, _)| p.clone())
            .collect();
        p.sort();
        p
    };
    assert_eq!(paths(&seen), ["/call", "/cap", "/hook"]);
    let body = |p: &str| {
        seen.lock()
            .expect("lock")
            .iter()
            .find(|(q, _)| q == p)
            .map(|(_, b)| b.clone())
            .unwrap_or_default()
    };
    let hook: serde_json::Value = serde_json::from_str(&body("/hook")).expect("json");
    assert_eq!(hook["status"], "resolved", "a test pages nobody: {hook}");
    assert_eq!(hook["alerts"][0]["labels"]["alertname"], "VigilSelfTest");
    assert_eq!(hook["receiver"], "watchers");
    let cap = body("/cap");
    assert!(cap.contains("<status>Test</status>"), "{cap}");
    let xsd = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/corpus/cap/schema/CAP-v1.2.xsd");
    if xsd.exists()
        && std::process::Command::new("xmllint")
            .arg("--version")
            .output()
            .is_ok()
    {
        let f = std::env::temp_dir().join(format!("vigil-selftest-{}.xml", uuid::Uuid::now_v7()));
        std::fs::write(&f, &cap).expect("write");
        let ok = std::process::Command::new("xmllint")
            .args(["--noout", "--schema"])
            .arg(&xsd)
            .arg(&f)
            .output()
            .expect("xmllint");
        let _ = std::fs::remove_file(&f);
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
    } else {
        postgres::skip(
            "xmllint or the CAP schema is missing: the test CAP message is not validated",
        );
    }
    // Another round the same day adds nothing.
    round_at(t0 + 1_000).await.expect("round");
    assert_eq!(selftest_rows(&store).await.len(), 4);

    // The e-mail goes after a minute, fails (nothing listens on port 1), is retried, is
    // given up: the e-mail channel's incident, announced by call and webhook, not by e-mail.
    let mut t = t0 + 61_000;
    for _ in 0..6 {
        round_at(t).await.expect("round");
        t += 5_000;
    }
    let rows = selftest_rows(&store).await;
    assert!(
        rows.contains(&("email".to_owned(), "failed".to_owned())),
        "{rows:?}"
    );
    let incidents = store.list(&Filter::default()).await.expect("list");
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    assert_eq!(incidents[0].rule_id, "vigil-notify-email");
    let told: Vec<(String, String)> =
        sqlx::query("SELECT channel, target FROM outbox WHERE incident_id = $1 ORDER BY id")
            .bind(incidents[0].id)
            .fetch_all(store.pool())
            .await
            .expect("outbox")
            .iter()
            .map(|r| {
                (
                    r.try_get("channel").expect("c"),
                    r.try_get("target").expect("t"),
                )
            })
            .collect();
    assert!(told.iter().all(|(c, _)| c != "email"), "{told:?}");
    assert!(
        told.contains(&("voice".to_owned(), "+32470000001".to_owned())),
        "{told:?}"
    );

    // The next day, the next round.
    round_at(t0 + 86_400_000).await.expect("round");
    assert_eq!(selftest_rows(&store).await.len(), 8);
}

#[tokio::test]
async fn selftest_on_sqlite() {
    on_sqlite(scenario).await;
}

#[tokio::test]
async fn selftest_on_postgres() {
    on_postgres(scenario).await;
}
