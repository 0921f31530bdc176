//! The HTTP API in process: a real collector (index, write-ahead log, writer thread, SQLite
//! incident queue in a temporary directory) behind `api::app(state)`, driven with `oneshot`,
//! for every route's answers and error paths. No socket, no binary: these run in
//! milliseconds, and the end-to-end tests keep the paths through real processes.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::Utc;
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;
use vigil_collector::api::{self, AppState};
use vigil_collector::config::{AgentToken, CollectorConfig};
use vigil_collector::incidents::Alert;
use vigil_collector::server::Collector;
use vigil_schema::{Batch, Event, fields as f};

const TOKEN: &str = "agent-token-0123456789";
const API_TOKEN: &str = "reader-token-9876543210";

struct Api {
    _dir: tempfile::TempDir,
    state: AppState,
    app: Router,
}

async fn api_with(tune: impl FnOnce(&mut CollectorConfig)) -> Api {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cfg = CollectorConfig {
        data_dir: dir.path().to_owned(),
        ..CollectorConfig::default()
    };
    cfg.http.listen = "127.0.0.1:0".into();
    cfg.index.commit_interval = std::time::Duration::from_millis(50);
    cfg.ingest.agents.push(AgentToken::new("edge-1", TOKEN));
    tune(&mut cfg);
    let collector = Collector::open(&cfg).await.expect("collector opens");
    let state = collector.state();
    Api {
        app: api::app(state.clone()),
        state,
        _dir: dir,
    }
}

async fn api() -> Api {
    api_with(|_| {}).await
}

impl Api {
    async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.app.clone().oneshot(req).await.expect("answers");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, body)
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.send(Request::get(uri).body(Body::empty()).expect("request"))
            .await
    }

    async fn post(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.send(
            Request::post(uri)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .expect("request"),
        )
        .await
    }

    async fn ingest(&self, token: &str, frame: Vec<u8>) -> (StatusCode, Value) {
        self.send(
            Request::post("/api/v1/ingest")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::from(frame))
                .expect("request"),
        )
        .await
    }
}

/// The error code of an error answer, after checking its shape.
fn code(body: &Value) -> &str {
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "an error has a message: {body}"
    );
    body["error"]["code"].as_str().unwrap_or_default()
}

fn batch(agent: &str, messages: &[&str]) -> Batch {
    Batch {
        batch_id: Uuid::now_v7(),
        agent_id: agent.into(),
        seq: 0,
        events: messages
            .iter()
            .map(|m| {
                let mut e = Event::default();
                e.set_str(f::EVENT_KIND, "syslog");
                e.set_timestamp(Utc::now());
                e.set_str(f::MESSAGE, *m);
                e
            })
            .collect(),
    }
}

#[tokio::test]
async fn health_readiness_metrics_and_unknown_routes() {
    let a = api().await;
    assert_eq!(
        a.get("/healthz").await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
    let (status, body) = a.get("/readyz").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ready");
    assert_eq!(body["components"]["ingest"], "open");
    let resp = a
        .app
        .clone()
        .oneshot(
            Request::get("/metrics")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("answers");
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()[header::CONTENT_TYPE]
            .to_str()
            .is_ok_and(|t| t.starts_with("application/openmetrics-text"))
    );
    let (status, body) = a.get("/api/v1/nothing-here").await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    // A route without the method: 405, not a silent 200.
    let (status, _) = a.get("/api/v1/ingest").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);

    // Closed ingest (shutting down): readiness says so, agents are told to come back.
    a.state
        .0
        .ingest_open
        .store(false, std::sync::atomic::Ordering::SeqCst);
    let (status, body) = a.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["components"]["ingest"], "closed");
    let (status, body) = a.ingest(TOKEN, batch("edge-1", &["x"]).encode()).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    );
}

#[tokio::test]
async fn ingest_answers_each_kind_of_bad_batch_with_its_own_status() {
    let a = api_with(|c| c.ingest.max_batch_events = 3).await;
    let good = batch("edge-1", &["one", "two"]);

    let (status, body) = a
        .send(
            Request::post("/api/v1/ingest")
                .body(Body::from(good.encode()))
                .expect("request"),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (status, body) = a.ingest("not-a-token", good.encode()).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );

    let (status, body) = a.ingest(TOKEN, b"not a frame at all".to_vec()).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "bad_magic")
    );
    let mut corrupt = good.encode();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let (status, body) = a.ingest(TOKEN, corrupt).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        ["bad_checksum", "bad_compression"].contains(&code(&body)),
        "{body}"
    );

    let (status, body) = a.ingest(TOKEN, batch("edge-2", &["x"]).encode()).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, body) = a
        .ingest(TOKEN, batch("edge-1", &["1", "2", "3", "4"]).encode())
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );

    let (status, body) = a.ingest(TOKEN, good.encode()).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"status": "accepted", "events": 2}))
    );
    let (status, body) = a.ingest(TOKEN, good.encode()).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"status": "duplicate"}))
    );
}

#[tokio::test]
async fn an_ingest_body_over_the_limit_is_refused_by_its_declared_length() {
    let a = api_with(|c| c.ingest.max_body_bytes = 1024).await;
    let (status, body) = a
        .send(
            Request::post("/api/v1/ingest")
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .header(header::CONTENT_LENGTH, "4096")
                .body(Body::from(vec![0u8; 4096]))
                .expect("request"),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );
}

#[tokio::test]
async fn search_and_aggregate_refuse_bad_parameters_and_find_what_was_ingested() {
    let a = api().await;
    let b = batch("edge-1", &["hello api", "other words"]);
    assert_eq!(a.ingest(TOKEN, b.encode()).await.0, StatusCode::OK);

    // Searchable after the next commit (50 ms); polled with a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let hits = loop {
        let (status, body) = a.get("/api/v1/search?q=message:hello").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        if body["total"] == 1 {
            break body["hits"].clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not searchable: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert_eq!(hits[0]["message"], "hello api");
    assert_eq!(hits[0]["agent.id"], "edge-1");
    assert_eq!(hits[0]["event.id"], format!("{}.0", b.batch_id));
    let (status, body) = a
        .post(
            "/api/v1/search",
            json!({"q": "message:other", "from": "now-1h"}),
        )
        .await;
    assert_eq!(
        (status, &body["total"]),
        (StatusCode::OK, &json!(1)),
        "{body}"
    );

    for (uri, want) in [
        ("/api/v1/search?q=message:(unclosed", "bad_query"),
        ("/api/v1/search?q=x&colour=red", "bad_parameter"),
        ("/api/v1/search?limit=10001", "bad_parameter"),
        ("/api/v1/search?limit=many", "bad_parameter"),
        ("/api/v1/search?from=yesterday", "bad_parameter"),
        ("/api/v1/search?q=message:fail~2", "bad_query"),
        ("/api/v1/aggregate?histogram=soon", "bad_parameter"),
        (
            "/api/v1/aggregate?terms=host.name&colour=red",
            "bad_parameter",
        ),
        (
            "/api/v1/aggregate?q=message:(unclosed&terms=host.name",
            "bad_query",
        ),
        ("/api/v1/aggregate?q=x", "bad_parameter"),
    ] {
        let (status, body) = a.get(uri).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, want),
            "{uri}: {body}"
        );
    }
    let (status, body) = a.post("/api/v1/search", json!({"q": 7})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "bad_parameter")
    );
    let (status, body) = a
        .send(
            Request::post("/api/v1/search")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{not json"))
                .expect("request"),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "bad_parameter")
    );

    let (status, body) = a
        .get("/api/v1/aggregate?q=event.kind:syslog&terms=agent.id&size=5")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["total"], 2);
    assert_eq!(
        body["terms"]["buckets"],
        json!([{"key": "edge-1", "count": 2}])
    );
    let (status, body) = a
        .get("/api/v1/aggregate?q=message:hello&terms=message")
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "bad_parameter")
    );
    // Errors are counted by code.
    let (_, metrics) = a.get("/metrics").await;
    let text = metrics.as_str().unwrap_or_default();
    assert!(
        text.contains("vigil_search_errors_total{code=\"bad_query\"} 3"),
        "{text}"
    );
}

#[tokio::test]
async fn readers_need_the_api_token_when_one_is_set() {
    let a = api_with(|c| c.http.api_token = Some(API_TOKEN.into())).await;
    for uri in [
        "/api/v1/search?q=x",
        "/api/v1/aggregate?terms=host.name",
        "/api/v1/rules",
        "/api/v1/incidents",
        "/api/v1/incidents/1",
    ] {
        let (status, body) = a.get(uri).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNAUTHORIZED, "unauthorized"),
            "{uri}"
        );
        let (status, body) = a
            .send(
                Request::get(uri)
                    .header(header::AUTHORIZATION, "Bearer wrong")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}: {body}");
        let (status, body) = a
            .send(
                Request::get(uri)
                    .header(header::AUTHORIZATION, format!("Bearer {API_TOKEN}"))
                    .body(Body::empty())
                    .expect("request"),
            )
            .await;
        assert_ne!(status, StatusCode::UNAUTHORIZED, "{uri}: {body}");
    }
    let (status, _) = a.post("/api/v1/rules/reload", json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // An agent's token is not a reader's.
    let (status, _) = a
        .send(
            Request::get("/api/v1/search")
                .header(header::AUTHORIZATION, format!("Bearer {TOKEN}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Health and metrics stay open.
    assert_eq!(a.get("/healthz").await.0, StatusCode::OK);
    assert_eq!(a.get("/metrics").await.0, StatusCode::OK);
}

const HELLO_RULE: &str = "title: hello seen
id: 5f0c1c2e-1111-4a4a-8b8b-000000000001
logsource: { product: linux, service: syslog }
detection:
  selection:
    message|contains: hello
  condition: selection
level: high
";

#[tokio::test]
async fn rules_are_listed_tested_and_reloaded() {
    let a = api().await;
    let (status, body) = a.get("/api/v1/rules").await;
    assert_eq!(status, StatusCode::OK);
    let builtin = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../rules"))
        .expect("rules/")
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "yml"))
        .count();
    assert!(
        body["rules"].as_array().map(Vec::len) >= Some(builtin),
        "every builtin rule file loads: {body}"
    );
    assert_eq!(body["errors"], json!([]));

    let events = json!([
        {"event.kind": "syslog", "host.name": "h", "message": "hello there"},
        {"event.kind": "syslog", "host.name": "h", "message": "goodbye"},
    ]);
    let (status, body) = a
        .post(
            "/api/v1/rules/test",
            json!({"rule": HELLO_RULE, "events": events}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let alerts = body["alerts"].as_array().expect("alerts");
    assert_eq!(alerts.len(), 1, "{body}");
    assert_eq!(alerts[0]["rule.name"], "hello seen");

    let (status, body) = a
        .post(
            "/api/v1/rules/test",
            json!({"rule": "title: x\n", "events": []}),
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "bad_rule"));
    let (status, body) = a
        .post("/api/v1/rules/test", json!({"rule": HELLO_RULE}))
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "bad_request")
    );
    let (status, body) = a
        .post(
            "/api/v1/rules/test",
            json!({"rule": HELLO_RULE, "events": [], "extra": 1}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "bad_request")
    );

    let (status, body) = a.post("/api/v1/rules/reload", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["rules"].as_u64() >= Some(builtin as u64), "{body}");

    let off = api_with(|c| c.detect.enabled = false).await;
    let (status, body) = off.post("/api/v1/rules/reload", json!({})).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "detection_disabled")
    );
}

#[tokio::test]
async fn incident_actions_answer_bad_ids_bodies_and_transitions() {
    let a = api().await;
    let alert = Alert {
        id: "b1.a0".into(),
        rule_id: "rule-1".into(),
        title: "A test incident".into(),
        severity: "medium".into(),
        customer: Some("ulb".into()),
        group_key: "host.name=h".into(),
        at: Utc::now(),
        message: None,
        danger: false,
        affected: Vec::new(),
        tags: Vec::new(),
        seen: Default::default(),
    };
    let recorded = a.state.0.incidents.record(&[alert]).await.expect("record");
    let id = recorded.opened[0];

    let (status, body) = a.get("/api/v1/incidents?status=active").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["incidents"][0]["id"], id);
    assert_eq!(body["incidents"][0]["status"], "open");
    for (uri, want) in [
        ("/api/v1/incidents?status=sleeping", StatusCode::BAD_REQUEST),
        ("/api/v1/incidents?colour=red", StatusCode::BAD_REQUEST),
        ("/api/v1/incidents/abc", StatusCode::BAD_REQUEST),
        ("/api/v1/incidents/999999", StatusCode::NOT_FOUND),
    ] {
        let (status, body) = a.get(uri).await;
        assert_eq!(status, want, "{uri}: {body}");
        code(&body);
    }

    let act = |action: &str| format!("/api/v1/incidents/{id}/{action}");
    for (action, body, want) in [
        ("dance", json!({}), "bad_action"),
        ("assign", json!({}), "bad_action"),
        ("assign", json!({"assignee": ""}), "bad_action"),
        ("retract", json!({}), "bad_action"),
        ("escalate", json!({"severity": "apocalyptic"}), "bad_action"),
        ("ack", json!({"why": "no"}), "bad_action"),
    ] {
        let (status, answer) = a.post(&act(action), body).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::BAD_REQUEST, want),
            "{action}: {answer}"
        );
    }
    let (status, body) = a.post("/api/v1/incidents/999999/ack", json!({})).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));

    let (status, body) = a
        .send(
            Request::post(act("ack"))
                .header("x-vigil-actor", "a".repeat(129))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "bad_parameter")
    );
    let (status, body) = a
        .send(
            Request::post(act("ack"))
                .header("x-vigil-actor", "alice")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "acknowledged");
    let (status, body) = a.post(&act("ack"), json!({})).await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "conflict"));
    let (status, body) = a
        .post(&act("retract"), json!({"reason": "false positive"}))
        .await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::OK, &json!("retracted"))
    );
    let (status, body) = a.post(&act("resolve"), json!({})).await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "conflict"));

    let (_, body) = a.get(&format!("/api/v1/incidents/{id}")).await;
    let steps: Vec<(&str, &str)> = body["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default(),
                e["actor"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(steps[1..], [("ack", "alice"), ("retract", "api")], "{body}");
}

#[tokio::test]
async fn silences_are_made_listed_and_expired_and_bad_ones_name_the_field() {
    let a = api().await;
    let (status, made) = a
        .post(
            "/api/v1/silences",
            json!({"matchers": ["customer=ulb"], "duration": "2h",
                   "created_by": "alice", "comment": "maintenance of the core router"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    assert_eq!(made["state"], "active");
    let id = made["id"].as_i64().expect("id");
    let (_, listed) = a.get("/api/v1/silences").await;
    assert_eq!(listed["silences"][0]["id"], id);
    assert_eq!(listed["silences"][0]["matchers"], json!(["customer=ulb"]));

    for (body, field) in [
        (
            json!({"matchers": [], "duration": "1h", "created_by": "a", "comment": "c"}),
            "matchers",
        ),
        (
            json!({"matchers": ["severity=~("], "duration": "1h", "created_by": "a", "comment": "c"}),
            "matchers",
        ),
        (
            json!({"matchers": ["x=1"], "created_by": "a", "comment": "c"}),
            "ends_at or duration",
        ),
        (
            json!({"matchers": ["x=1"], "duration": "soon", "created_by": "a", "comment": "c"}),
            "duration",
        ),
        (
            json!({"matchers": ["x=1"], "duration": "1h", "created_by": " ", "comment": "c"}),
            "created_by",
        ),
        (
            json!({"matchers": ["x=1"], "ends_at": "2020-01-01T00:00:00Z", "created_by": "a", "comment": "c"}),
            "ends_at",
        ),
        (
            json!({"matchers": ["x=1"], "duration": "400d", "created_by": "a", "comment": "c"}),
            "ends_at",
        ),
    ] {
        let (status, answer) = a.post("/api/v1/silences", body.clone()).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::BAD_REQUEST, "bad_silence"),
            "{body}"
        );
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(field), "{field}: {message}");
    }
    let (status, answer) = a
        .post(
            "/api/v1/silences",
            json!({"matchers": ["x=1"], "duration": "1h"}),
        )
        .await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::BAD_REQUEST, "bad_request")
    );

    let del = |uri: String| Request::delete(uri).body(Body::empty()).expect("request");
    let (status, gone) = a.send(del(format!("/api/v1/silences/{id}"))).await;
    assert_eq!(
        (status, &gone["state"]),
        (StatusCode::OK, &json!("expired"))
    );
    let (status, body) = a.send(del("/api/v1/silences/999999".into())).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));

    // An exclusion has the same shape, lasts longer, and is not a silence.
    let (status, excl) = a
        .post(
            "/api/v1/exclusions",
            json!({"matchers": ["customer=kul"], "duration": "200d",
                   "created_by": "head of the desk", "comment": "handled by KUL itself"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{excl}");
    let (_, listed) = a.get("/api/v1/exclusions").await;
    assert_eq!(listed["exclusions"][0]["id"], excl["id"]);
    let (_, silences) = a.get("/api/v1/silences").await;
    assert!(
        silences["silences"]
            .as_array()
            .is_some_and(|l| l.iter().all(|s| s["id"] != excl["id"])),
        "{silences}"
    );
    let (status, body) = a
        .post(
            "/api/v1/exclusions",
            json!({"matchers": ["customer=kul"], "duration": "400d", "created_by": "a", "comment": "c"}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "bad_exclusion")
    );
    let (status, _) = a
        .send(del(format!("/api/v1/silences/{}", excl["id"])))
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "an exclusion is not ended as a silence"
    );
    let (status, ended) = a
        .send(del(format!("/api/v1/exclusions/{}", excl["id"])))
        .await;
    assert_eq!(
        (status, &ended["state"]),
        (StatusCode::OK, &json!("expired"))
    );
    let (status, body) = a.send(del("/api/v1/silences/abc".into())).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "bad_parameter")
    );
}

fn put(uri: &str, body: &Value) -> Request<Body> {
    Request::put(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .header("x-vigil-actor", "alice")
        .body(Body::from(body.to_string()))
        .expect("request")
}

fn del(uri: &str) -> Request<Body> {
    Request::delete(uri)
        .header("x-vigil-actor", "alice")
        .body(Body::empty())
        .expect("request")
}

#[tokio::test]
async fn customers_are_managed_through_the_api_and_csv_but_configured_ones_are_read_only() {
    let a = api_with(|c| {
        c.customers = toml::from_str::<toml::Table>(
            r#"
[[c]]
id = "ulb"
name = "ULB"
language = "fr"
[[c.contacts]]
role = "noc"
name = "NOC"
email = "noc@ulb.example"
"#,
        )
        .expect("toml")["c"]
            .clone()
            .try_into()
            .expect("customers");
    })
    .await;
    let (status, body) = a.get("/api/v1/customers").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["customers"][0]["id"], "ulb");
    assert_eq!(body["customers"][0]["source"], "config");
    assert_eq!(body["customers"][0]["contacts"][0]["role"], "noc");
    let (status, body) = a.get("/api/v1/customers/kul").await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));

    // A customer made through the API.
    let kul = json!({"id": "kul", "name": "KU Leuven", "language": "nl",
        "prefixes": ["10.2.0.0/16"],
        "contacts": [{"role": "noc", "name": "NOC KUL", "phone": "+3216000000"}]});
    let (status, body) = a.post("/api/v1/customers", kul.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = a.get("/api/v1/customers/kul").await;
    assert_eq!((status, &body["source"]), (StatusCode::OK, &json!("api")));
    assert_eq!(body["time_zone"], "Europe/Brussels");
    // Agents fetch whose prefixes are whose (only customers with prefixes or agents), with
    // their token.
    let spaces = |token: &str| {
        Request::get("/api/v1/agents/customers")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .expect("request")
    };
    let (status, body) = a.send(spaces(TOKEN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"customers": [{"id": "kul", "prefixes": ["10.2.0.0/16"], "agents": []}]})
    );
    let (status, _) = a.send(spaces("wrong-token-0123456789")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = a.post("/api/v1/customers", kul.clone()).await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "conflict"));
    // Bad fields are named.
    for (field, bad) in [
        (
            "contacts[0].phone",
            json!({"id": "kul", "contacts": [{"role": "noc", "name": "N", "phone": "016 00"}]}),
        ),
        ("language", json!({"id": "kul", "language": "es"})),
        (
            "prefixes[0]",
            json!({"id": "kul", "prefixes": ["10.0.0.0/40"]}),
        ),
        ("time_zone", json!({"id": "kul", "time_zone": "Mars/Base"})),
        (
            "acknowledge_within",
            json!({"id": "kul", "acknowledge_within": {"urgent": "5m"}}),
        ),
    ] {
        let (status, body) = a.send(put("/api/v1/customers/kul", &bad)).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "bad_customer"),
            "{bad}"
        );
        let m = body["error"]["message"].as_str().unwrap_or_default();
        assert!(m.starts_with(field), "{field}: {m}");
    }
    let (status, body) = a
        .send(put(
            "/api/v1/customers/kul",
            &json!({"id": "kul", "name": "KUL"}),
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = a
        .send(put("/api/v1/customers/nope", &json!({"id": "nope"})))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The configuration's customer is read-only, and the answer says where to change it.
    let (status, body) = a
        .send(put("/api/v1/customers/ulb", &json!({"id": "ulb"})))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "conflict"));
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("[[customers]]")),
        "says where: {body}"
    );
    let (status, _) = a.send(del("/api/v1/customers/ulb")).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // CSV: a bad row imports nothing and is named by line and column.
    let csv = "id,name,language,prefixes,role,contact_name,email,phone\n\
        umons,UMONS,fr,10.3.0.0/16,noc,NOC UMONS,noc@umons.example,+3265000000\n\
        uantwerpen,UAntwerpen,nl,10.4.0.0/16,noc,NOC UA,not-an-address,\n";
    let import = |text: String| {
        Request::post("/api/v1/customers/import")
            .header(header::CONTENT_TYPE, "text/csv")
            .body(Body::from(text))
            .expect("request")
    };
    let (status, body) = a.send(import(csv.to_owned())).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "bad_csv"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("line 3, column email")),
        "{body}"
    );
    let (_, listed) = a.get("/api/v1/customers").await;
    assert_eq!(
        listed["customers"].as_array().map(Vec::len),
        Some(2),
        "nothing imported"
    );
    let (status, body) = a
        .send(import(csv.replace("not-an-address", "noc@ua.example")))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!((&body["created"], &body["updated"]), (&json!(2), &json!(0)));
    let (status, body) = a.send(import("id,name\nulb,Mine now\n".to_owned())).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "conflict"),
        "{body}"
    );
    let (_, listed) = a.get("/api/v1/customers").await;
    assert_eq!(listed["customers"].as_array().map(Vec::len), Some(4));

    let (status, _) = a.send(del("/api/v1/customers/kul")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = a.get("/api/v1/customers/kul").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = a.send(del("/api/v1/customers/kul")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn assets_are_checked_recorded_with_their_actor_and_configured_ones_are_read_only() {
    let a = api_with(|c| {
        c.customers = toml::from_str::<toml::Table>("[[c]]\nid = \"ulb\"\n").expect("toml")["c"]
            .clone()
            .try_into()
            .expect("customers");
        c.assets = toml::from_str(
            r#"
id_format = "^[A-Z]{3}-[0-9]{4}$"
[[list]]
id = "ULB-0001"
customer = "ulb"
kind = "router"
"#,
        )
        .expect("assets");
    })
    .await;
    let (status, body) = a.get("/api/v1/assets").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["assets"][0]["source"], "config");
    let (status, body) = a.get("/api/v1/assets/ULB-9999").await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    for (field, bad) in [
        (
            "id",
            json!({"id": "ulb-1", "customer": "ulb", "kind": "web"}),
        ),
        (
            "customer",
            json!({"id": "KUL-0001", "customer": "kul", "kind": "web"}),
        ),
        (
            "kind",
            json!({"id": "ULB-0002", "customer": "ulb", "kind": ""}),
        ),
        (
            "watched_by.prefixes[0]",
            json!({"id": "ULB-0002", "customer": "ulb", "kind": "web",
            "watched_by": {"prefixes": ["nope"]}}),
        ),
    ] {
        let (status, body) = a.post("/api/v1/assets", bad.clone()).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "bad_asset"),
            "{bad}"
        );
        let m = body["error"]["message"].as_str().unwrap_or_default();
        assert!(m.starts_with(field), "{field}: {m}");
    }
    let web = json!({"id": "ULB-0002", "customer": "ulb", "kind": "web",
        "description": "www.ulb.example", "watched_by": {"agents": ["edge-1"]}});
    let made = a
        .send(
            Request::post("/api/v1/assets")
                .header(header::CONTENT_TYPE, "application/json")
                .header("x-vigil-actor", "bob")
                .body(Body::from(web.to_string()))
                .expect("request"),
        )
        .await;
    assert_eq!(made.0, StatusCode::CREATED, "{}", made.1);
    let mut changed = web.clone();
    changed["description"] = "www and api".into();
    let (status, _) = a.send(put("/api/v1/assets/ULB-0002", &changed)).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = a
        .send(put(
            "/api/v1/assets/ULB-0001",
            &json!({"id": "ULB-0001",
        "customer": "ulb", "kind": "switch"}),
        ))
        .await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "conflict"));
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("[[assets.list]]"))
    );
    let (status, _) = a.send(del("/api/v1/assets/ULB-0002")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, shown) = a.get("/api/v1/assets/changes").await;
    let log: Vec<(String, String, String)> = shown["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            (s("asset"), s("action"), s("actor"))
        })
        .collect();
    let want = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        log,
        [
            want("ULB-0002", "deleted", "alice"),
            want("ULB-0002", "updated", "alice"),
            want("ULB-0002", "created", "bob"),
        ]
    );
    assert_eq!(
        shown["changes"][1]["asset_after"]["description"],
        "www and api"
    );
}

#[tokio::test]
async fn who_is_on_call_follows_the_rota_and_overrides_and_bad_ones_name_the_field() {
    let a = api_with(|c| {
        c.oncall = toml::from_str(
            r#"
[[people]]
id = "ann"
name = "Ann"
phone = "+32470000011"
[[people]]
id = "bob"
name = "Bob"
[[people]]
id = "cy"
name = "Cy"
[[rotas]]
name = "soc"
start = "2026-11-30"
levels = [["ann", "bob"], ["cy"]]
"#,
        )
        .expect("oncall");
    })
    .await;
    // 2026-12-02 is the third day: Ann's (Monday 30 Nov Ann, Tuesday Bob, Wednesday Ann),
    // from 08:00 Brussels (07:00 UTC) to the next morning.
    let (status, now) = a.get("/api/v1/oncall?at=2026-12-02T12:00:00Z").await;
    assert_eq!(status, StatusCode::OK, "{now}");
    let levels = &now["rotas"][0]["levels"];
    assert_eq!(levels[0]["person"]["id"], "ann");
    assert_eq!(levels[0]["starts_at"], "2026-12-02T07:00:00Z");
    assert_eq!(levels[0]["ends_at"], "2026-12-03T07:00:00Z");
    assert_eq!(levels[1]["person"]["id"], "cy");
    assert_eq!(levels[1]["level"], 2);
    let (_, early) = a.get("/api/v1/oncall?at=2026-12-02T06:59:00Z").await;
    assert_eq!(early["rotas"][0]["levels"][0]["person"]["id"], "bob");

    // Bob takes level 1 from now for 12 hours.
    let (status, made) = a
        .post(
            "/api/v1/oncall/overrides",
            json!({"rota": "soc", "person": "bob", "duration": "12h",
                   "created_by": "ann", "comment": "swap"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let id = made["id"].as_i64().expect("id");
    let (_, now) = a.get("/api/v1/oncall").await;
    let level1 = &now["rotas"][0]["levels"][0];
    assert_eq!(level1["person"]["id"], "bob");
    assert_eq!(level1["override_id"], id);
    let (_, listed) = a.get("/api/v1/oncall/overrides").await;
    assert_eq!(listed["overrides"][0]["person"], "bob");

    for (body, field) in [
        (
            json!({"rota": "noc", "person": "bob", "duration": "1h", "created_by": "a"}),
            "rota",
        ),
        (
            json!({"rota": "soc", "level": 3, "person": "bob", "duration": "1h", "created_by": "a"}),
            "level",
        ),
        (
            json!({"rota": "soc", "person": "zed", "duration": "1h", "created_by": "a"}),
            "person",
        ),
        (
            json!({"rota": "soc", "person": "bob", "created_by": "a"}),
            "ends_at or duration",
        ),
        (
            json!({"rota": "soc", "person": "bob", "duration": "60d", "created_by": "a"}),
            "ends_at",
        ),
        (
            json!({"rota": "soc", "person": "bob", "duration": "1h", "created_by": ""}),
            "created_by",
        ),
    ] {
        let (status, answer) = a.post("/api/v1/oncall/overrides", body.clone()).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::BAD_REQUEST, "bad_override"),
            "{body}"
        );
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(field), "{field}: {message}");
    }
    let (status, answer) = a.get("/api/v1/oncall?at=yesterday").await;
    assert_eq!(
        (status, code(&answer)),
        (StatusCode::BAD_REQUEST, "bad_parameter")
    );

    let del = |uri: String| Request::delete(uri).body(Body::empty()).expect("request");
    let (status, ended) = a.send(del(format!("/api/v1/oncall/overrides/{id}"))).await;
    assert_eq!(status, StatusCode::OK, "{ended}");
    let (_, now) = a.get("/api/v1/oncall").await;
    assert!(
        now["rotas"][0]["levels"][0]["override_id"].is_null(),
        "{now}"
    );
    let (status, body) = a.send(del("/api/v1/oncall/overrides/999999".into())).await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
}

#[tokio::test]
async fn heartbeats_are_created_pinged_by_uuid_and_slug_and_bad_input_is_named() {
    let api = api_with(|c| {
        c.heartbeats.ping_key = Some("ping-key-0123456789".into());
        c.notify.external_url = "https://vigil.example.org/".into();
    })
    .await;
    for (body, field) in [
        (json!({"slug": "x", "period": "every day"}), "period"),
        (json!({"slug": "x", "schedule": "61 * * * *"}), "schedule"),
        (
            json!({"slug": "x", "schedule": "0 3 * * *", "tz": "Nowhere"}),
            "tz",
        ),
        (json!({"slug": "a/b"}), "slug"),
    ] {
        let (st, b) = api.post("/api/v1/heartbeats", body).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{b}");
        assert_eq!(code(&b), "bad_heartbeat");
        let msg = b["error"]["message"].as_str().expect("present");
        assert!(msg.starts_with(&format!("{field}:")), "{msg}");
    }
    let (st, b) = api
        .post("/api/v1/heartbeats", json!({"slug": "x", "every": "1m"}))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        b["error"]["message"]
            .as_str()
            .expect("present")
            .contains("every"),
        "{b}"
    );

    let (st, hb) = api
        .post(
            "/api/v1/heartbeats",
            json!({"slug": "backup", "period": "1m", "grace": "30s"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{hb}");
    let uuid = hb["uuid"].as_str().expect("present").to_owned();
    assert_eq!(
        hb["ping_url"],
        format!("https://vigil.example.org/ping/{uuid}")
    );
    assert_eq!(
        hb["slug_url"],
        "https://vigil.example.org/ping/ping-key-0123456789/backup"
    );
    assert_eq!(hb["status"], "new");
    let (st, _) = api
        .post("/api/v1/heartbeats", json!({"slug": "backup"}))
        .await;
    assert_eq!(st, StatusCode::CONFLICT);

    let ping = |method: &str, uri: String, body: &'static str| {
        Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::from(body))
            .expect("request")
    };
    // GET, HEAD and POST all ping; the answer is OK in plain text.
    for m in ["GET", "HEAD", "POST"] {
        let (st, b) = api.send(ping(m, format!("/ping/{uuid}"), "")).await;
        assert_eq!(st, StatusCode::OK, "{m}");
        if m != "HEAD" {
            assert_eq!(b, "OK");
        }
    }
    let (st, _) = api.send(ping("PUT", format!("/ping/{uuid}"), "")).await;
    assert_eq!(st, StatusCode::METHOD_NOT_ALLOWED);
    let (st, _) = api
        .send(ping("POST", format!("/ping/{uuid}/start?rid=run-1"), ""))
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = api
        .send(ping(
            "POST",
            format!("/ping/{uuid}/0?rid=run-1"),
            "42 files copied",
        ))
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, b) = api.send(ping("GET", format!("/ping/{uuid}/256"), "")).await;
    assert_eq!(
        (st, b),
        (StatusCode::BAD_REQUEST, json!("invalid url format"))
    );
    let (st, _) = api
        .send(ping("GET", format!("/ping/{uuid}/stop"), ""))
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    let (st, b) = api
        .send(ping("GET", format!("/ping/{}", Uuid::new_v4()), ""))
        .await;
    assert_eq!((st, b), (StatusCode::NOT_FOUND, json!("not found")));
    // A body over the limit is refused, not read whole.
    let big = Request::post(format!("/ping/{uuid}/log"))
        .body(Body::from(vec![b'x'; 200_000]))
        .expect("present");
    let (st, _) = api.send(big).await;
    assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);

    // The slug form: the right key only; ?create=1 makes the heartbeat.
    let (st, _) = api
        .send(ping(
            "GET",
            "/ping/ping-key-0123456789/backup/fail".into(),
            "",
        ))
        .await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = api
        .send(ping("GET", "/ping/wrong-key-0123456789/backup".into(), ""))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = api
        .send(ping("GET", "/ping/ping-key-0123456789/fresh".into(), ""))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, b) = api
        .send(ping(
            "GET",
            "/ping/ping-key-0123456789/fresh?create=1".into(),
            "",
        ))
        .await;
    assert_eq!((st, b), (StatusCode::CREATED, json!("Created")));

    let (st, one) = api.get("/api/v1/heartbeats/backup").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(one["status"], "down");
    assert_eq!(one["down_reason"], "failed");
    let kinds: Vec<&str> = one["recent"]
        .as_array()
        .expect("present")
        .iter()
        .map(|p| p["kind"].as_str().expect("present"))
        .collect();
    assert_eq!(
        kinds,
        ["fail", "success", "start", "success", "success", "success"]
    );
    assert_eq!(one["recent"][1]["body"], "42 files copied");
    assert_eq!(one["recent"][1]["exit_status"], 0);
    let (_, incidents) = api.get("/api/v1/incidents?status=open").await;
    let titles: Vec<&str> = incidents["incidents"]
        .as_array()
        .expect("present")
        .iter()
        .map(|i| i["title"].as_str().expect("present"))
        .collect();
    assert_eq!(titles, ["Heartbeat backup: the job reported a failure"]);

    let (_, all) = api.get("/api/v1/heartbeats").await;
    let slugs: Vec<&str> = all["heartbeats"]
        .as_array()
        .expect("present")
        .iter()
        .map(|h| h["slug"].as_str().expect("present"))
        .collect();
    assert_eq!(slugs, ["backup", "fresh"]);
    let (st, _) = api.send(del("/api/v1/heartbeats/fresh")).await;
    assert_eq!(st, StatusCode::OK);
    let (st, _) = api.get("/api/v1/heartbeats/fresh").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let metrics = api.get("/metrics").await.1;
    let metrics = metrics.as_str().expect("present");
    assert!(
        metrics.contains("vigil_heartbeat_pings_total{kind=\"success\"} 5"),
        "{metrics}"
    );
    assert!(
        metrics.contains("vigil_heartbeat_pings_total{kind=\"not_found\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn agents_report_with_their_own_token_and_are_listed() {
    let api = api().await;
    let report = |body: Value, token: &str| {
        Request::post("/api/v1/agents/report")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request")
    };
    let (_, list) = api.get("/api/v1/agents").await;
    assert_eq!(list["agents"][0]["id"], "edge-1");
    assert_eq!(list["agents"][0]["status"], "never_seen");
    assert_eq!(list["agents"][0]["silent_after_seconds"], 60);

    let good = json!({"agent": "edge-1", "version": "0.1.0", "host": "fw1",
        "interval_seconds": 15.0, "spool_batches": 3, "spool_bytes": 4096,
        "events_acked": 1000, "added_later": true});
    let (st, _) = api
        .send(report(good.clone(), "not-a-token-0123456789"))
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    let mut other = good.clone();
    other["agent"] = json!("edge-9");
    let (st, b) = api.send(report(other, TOKEN)).await;
    assert_eq!(st, StatusCode::FORBIDDEN, "{b}");
    let mut bad = good.clone();
    bad["version"] = json!("");
    let (st, b) = api.send(report(bad, TOKEN)).await;
    assert_eq!((st, code(&b)), (StatusCode::BAD_REQUEST, "bad_report"));
    assert!(
        b["error"]["message"]
            .as_str()
            .expect("present")
            .starts_with("version:"),
        "{b}"
    );
    let (st, b) = api.send(report(json!({"agent": "edge-1"}), TOKEN)).await;
    assert_eq!((st, code(&b)), (StatusCode::BAD_REQUEST, "bad_report"));

    let (st, _) = api.send(report(good, TOKEN)).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, list) = api.get("/api/v1/agents").await;
    let a = &list["agents"][0];
    assert_eq!(
        (
            &a["status"],
            &a["version"],
            &a["host"],
            &a["spool_batches"],
            &a["spool_bytes"],
            &a["events_acked"]
        ),
        (
            &json!("up"),
            &json!("0.1.0"),
            &json!("fw1"),
            &json!(3),
            &json!(4096),
            &json!(1000)
        )
    );
    // Its liveness is a heartbeat with the agent's limit as period and no grace.
    let (_, hb) = api.get("/api/v1/heartbeats/agent.edge-1").await;
    assert_eq!(
        (&hb["period_seconds"], &hb["grace_seconds"], &hb["status"]),
        (&json!(60), &json!(0), &json!("up"))
    );
}

#[tokio::test]
async fn checks_are_managed_through_the_api_configured_ones_are_read_only_and_agents_get_theirs() {
    let api = api_with(|c| {
        c.ingest
            .agents
            .push(AgentToken::new("edge-2", "agent-two-token-0123456789"));
        c.checks.push(
            serde_json::from_value(json!({"id": "dns-api", "name": "DNS API",
                "type": "tcp", "target": "127.0.0.1:53", "agents": ["edge-2"]}))
            .expect("a check"),
        );
    })
    .await;
    for (body, field) in [
        (
            json!({"name": "x", "type": "ftp", "target": "ftp://x"}),
            "type",
        ),
        (
            json!({"name": "x", "type": "http", "target": "not a url"}),
            "target",
        ),
        (
            json!({"name": "x", "type": "tcp", "target": "host-without-port"}),
            "target",
        ),
        (
            json!({"name": "x", "type": "http", "target": "http://x/", "interval": "0s"}),
            "interval",
        ),
        (
            json!({"name": "x", "type": "http", "target": "http://x/", "interval": "10s", "timeout": "1m"}),
            "timeout",
        ),
        (
            json!({"name": "x", "type": "http", "target": "http://x/", "quorum": 0}),
            "quorum",
        ),
        (
            json!({"name": "x", "type": "http", "target": "http://x/", "agents": ["nobody"]}),
            "agents",
        ),
        (
            json!({"name": "x", "type": "http", "target": "http://x/", "agents": ["edge-1"], "quorum": 2}),
            "quorum",
        ),
        (
            json!({"name": "x", "type": "http", "target": "http://x/", "regex": "("}),
            "regex",
        ),
        (
            json!({"name": "x", "type": "http", "target": "http://x/", "status": [999]}),
            "status",
        ),
        (
            json!({"name": "x", "type": "http", "target": "http://x/", "customer": "nobody"}),
            "customer",
        ),
        (
            json!({"name": "", "type": "http", "target": "http://x/"}),
            "name",
        ),
        (
            json!({"name": "x", "type": "dns", "target": "not a name"}),
            "target",
        ),
        (
            json!({"name": "x", "type": "dns", "target": "example.org", "record": "MX"}),
            "record",
        ),
        (
            json!({"name": "x", "type": "dns", "target": "example.org", "server": "dns.example"}),
            "server",
        ),
        (
            json!({"name": "x", "type": "dns", "target": "example.org", "expect": ["10.0.0.300"]}),
            "expect",
        ),
        (
            json!({"name": "x", "type": "http", "target": "http://x/", "server": "10.0.0.1"}),
            "server",
        ),
        (
            json!({"name": "x", "type": "icmp", "target": "10.0.0.1:80"}),
            "target",
        ),
        (
            json!({"name": "x", "type": "cap", "target": "feed.example/atom"}),
            "target",
        ),
        (
            json!({"name": "x", "type": "http", "target": "http://x/", "watch": true}),
            "watch",
        ),
    ] {
        let (st, b) = api.post("/api/v1/checks", body.clone()).await;
        assert_eq!(st, StatusCode::BAD_REQUEST, "{body} {b}");
        assert_eq!(code(&b), "bad_check");
        let msg = b["error"]["message"].as_str().expect("message");
        assert!(msg.starts_with(&format!("{field}:")), "{body}: {msg}");
    }
    let (st, b) = api
        .post(
            "/api/v1/checks",
            json!({"name": "x", "type": "http", "target": "http://x/", "expected": 200}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        b["error"]["message"]
            .as_str()
            .expect("message")
            .contains("expected"),
        "{b}"
    );

    let portal = json!({"name": "Public portal", "type": "http",
        "target": "https://portal.example/health", "interval": "30s", "timeout": "5s",
        "quorum": 1, "contains": "ok", "status": [200], "public": true});
    let (st, made) = api.post("/api/v1/checks", portal.clone()).await;
    assert_eq!(st, StatusCode::CREATED, "{made}");
    assert_eq!(
        (&made["id"], &made["source"], &made["state"]),
        (&json!("public-portal"), &json!("api"), &json!("unknown"))
    );
    assert_eq!(
        (&made["expected"], &made["reported"]),
        (&json!(2), &json!(0))
    );
    let (st, _) = api.post("/api/v1/checks", portal.clone()).await;
    assert_eq!(st, StatusCode::CONFLICT);
    let mut changed = portal.clone();
    changed["id"] = json!("public-portal");
    changed["interval"] = json!("1m");
    let (st, b) = api
        .send(put("/api/v1/checks/public-portal", &changed))
        .await;
    assert_eq!((st, &b["interval"]), (StatusCode::OK, &json!("1m")), "{b}");
    // Configured: read-only.
    let mut dns = changed.clone();
    dns["id"] = json!("dns-api");
    let (st, _) = api.send(put("/api/v1/checks/dns-api", &dns)).await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (st, _) = api.send(del("/api/v1/checks/dns-api")).await;
    assert_eq!(st, StatusCode::CONFLICT);
    let (_, all) = api.get("/api/v1/checks").await;
    let ids: Vec<(&str, &str)> = all["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().expect("id"),
                c["source"].as_str().expect("source"),
            )
        })
        .collect();
    assert_eq!(ids, [("dns-api", "config"), ("public-portal", "api")]);

    // Each agent gets the checks it runs.
    let theirs = |token: &str| {
        Request::get("/api/v1/agents/checks")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .expect("request")
    };
    let (st, one) = api.send(theirs(TOKEN)).await;
    assert_eq!(st, StatusCode::OK);
    let spec = &one["checks"][0];
    assert_eq!(one["checks"].as_array().expect("list").len(), 1, "{one}");
    assert_eq!(
        (
            &spec["id"],
            &spec["type"],
            &spec["interval_ms"],
            &spec["timeout_ms"],
            &spec["http"]["contains"],
            &spec["http"]["status"]
        ),
        (
            &json!("public-portal"),
            &json!("http"),
            &json!(60_000),
            &json!(5000),
            &json!("ok"),
            &json!([200])
        )
    );
    let (_, two) = api.send(theirs("agent-two-token-0123456789")).await;
    assert_eq!(two["checks"].as_array().expect("list").len(), 2, "{two}");
    let (st, _) = api.send(theirs("wrong-token-0123456789")).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);

    // A parent that does not exist, or a chain of parents that comes back.
    let (st, b) = api
        .post(
            "/api/v1/checks",
            json!({"name": "site", "type": "tcp", "target": "h:1", "depends_on": "nothing"}),
        )
        .await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        b["error"]["message"]
            .as_str()
            .expect("message")
            .starts_with("depends_on:"),
        "{b}"
    );
    let (st, _) = api
        .post(
            "/api/v1/checks",
            json!({"name": "site", "type": "tcp", "target": "h:1", "depends_on": "public-portal"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED);
    let mut cycle = changed.clone();
    cycle["depends_on"] = json!("site");
    let (st, b) = api.send(put("/api/v1/checks/public-portal", &cycle)).await;
    assert_eq!(st, StatusCode::BAD_REQUEST);
    assert!(
        b["error"]["message"]
            .as_str()
            .expect("message")
            .contains("come back"),
        "{b}"
    );
    let (st, _) = api.send(del("/api/v1/checks/public-portal")).await;
    assert_eq!(
        st,
        StatusCode::CONFLICT,
        "a parent with checks behind it stays"
    );
    let (st, _) = api.send(del("/api/v1/checks/site")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);

    let (st, _) = api.send(del("/api/v1/checks/public-portal")).await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (st, _) = api.get("/api/v1/checks/public-portal").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_status_page_shows_public_checks_only_with_state_and_availability() {
    let api = api_with(|c| {
        for (id, public) in [("portal", true), ("soc-siem", false)] {
            c.checks.push(
                serde_json::from_value(json!({"id": id, "name": id, "type": "tcp",
                    "target": "127.0.0.1:9", "interval": "10s", "timeout": "1s",
                    "public": public, "labels": {"group": "Alerting platform"}}))
                .expect("a check"),
            );
        }
    })
    .await;
    // Both up since 10 s ago, by one vantage point's results 20 s ago.
    let now = Utc::now();
    let q = &api.state.0.quorum;
    let seen = vigil_collector::uptime::quorum::Seen {
        status: vigil_schema::check::ProbeStatus::Up,
        at: now - chrono::Duration::seconds(20),
        error: None,
    };
    q.record(
        "edge-1",
        vec![("portal".into(), seen.clone()), ("soc-siem".into(), seen)],
    );
    q.evaluate(now - chrono::Duration::seconds(20))
        .await
        .expect("round");
    let changed = q
        .evaluate(now - chrono::Duration::seconds(10))
        .await
        .expect("round");
    assert_eq!(changed.len(), 2, "{changed:?}");

    let (st, page) = api.get("/api/v1/status").await;
    assert_eq!(st, StatusCode::OK);
    let checks = page["checks"].as_array().expect("checks");
    assert_eq!(checks.len(), 1, "{page}");
    assert_eq!(
        (&checks[0]["id"], &checks[0]["state"], &checks[0]["group"]),
        (&json!("portal"), &json!("up"), &json!("Alerting platform"))
    );
    assert_eq!(checks[0]["availability"]["24h"], 1.0);
    let days = checks[0]["days"].as_array().expect("days");
    assert_eq!(days.len(), 90);
    assert_eq!(days[89]["date"], now.format("%Y-%m-%d").to_string());
    assert_eq!(days[89]["availability"], 1.0);
    assert_eq!(days[0]["availability"], Value::Null);

    let resp = api
        .app
        .clone()
        .oneshot(
            Request::get("/status")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("answers");
    assert_eq!(resp.status(), StatusCode::OK);
    let html = String::from_utf8(
        axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body")
            .to_vec(),
    )
    .expect("utf-8");
    assert!(
        html.contains("data-check=\"portal\" data-state=\"up\""),
        "{html}"
    );
    assert!(!html.contains("soc-siem"), "{html}");
    assert!(html.contains("<h2>Alerting platform</h2>"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing fetched from elsewhere: {html}"
    );

    let resp = api
        .app
        .clone()
        .oneshot(
            Request::get("/status/badge/portal.svg")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("answers");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "image/svg+xml");
    let svg = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .expect("body");
    assert!(String::from_utf8_lossy(&svg).contains(">up</text>"));
    for hidden in [
        "/status/badge/soc-siem.svg",
        "/status/badge/nothing.svg",
        "/status/badge/portal",
    ] {
        let (st, _) = api.get(hidden).await;
        assert_eq!(st, StatusCode::NOT_FOUND, "{hidden}");
    }
}

/// An Atom feed whose entries embed each alert given as (identifier, status, msgType,
/// references).
fn cap_feed(alerts: &[(&str, &str, &str, &str)]) -> String {
    let mut xml = String::from(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:test:feed</id><title>Test feed</title>
<updated>2026-12-01T10:00:00+01:00</updated>"#,
    );
    for (id, status, msg_type, refs) in alerts {
        let refs = if refs.is_empty() {
            String::new()
        } else {
            format!("<references>{refs}</references>")
        };
        xml.push_str(&format!(
            r#"<entry><id>{id}</id><title>{id}</title><updated>2026-12-01T10:00:00+01:00</updated>
<content type="text/xml"><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
<identifier>{id}</identifier><sender>be-alert@example.test</sender>
<sent>2026-12-01T10:00:00+01:00</sent><status>{status}</status><msgType>{msg_type}</msgType>
<scope>Public</scope>{refs}<info><category>Safety</category><event>Gas leak</event>
<urgency>Immediate</urgency><severity>Severe</severity><certainty>Observed</certainty>
<headline>Gas leak in {id}</headline><area><areaDesc>Leuven</areaDesc></area></info>
</alert></content></entry>"#
        ));
    }
    xml.push_str("</feed>");
    xml
}

/// An HTTP server answering each request with the next body, on a thread.
fn serve_bodies(bodies: Vec<String>) -> u16 {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for (body, conn) in bodies.into_iter().zip(l.incoming()) {
            let Ok(mut c) = conn else { continue };
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\ncontent-type: application/atom+xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[tokio::test]
async fn watched_cap_feeds_become_events_once_drills_raise_nothing_and_a_cancel_amends() {
    use vigil_collector::uptime::capwatch;
    let rules = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        rules.path().join("gas.yml"),
        "title: Public gas leak alert\nid: 0d7c8e39-7d3b-4bd4-9a0e-2f4b8c1e5a11\n\
         logsource: { product: vigil, service: cap }\n\
         detection:\n  selection:\n    cap.event: Gas leak\n  condition: selection\nlevel: high\n",
    )
    .expect("rule");
    let rule_dir = rules.path().to_owned();
    let a = api_with(move |c| c.detect.rules.push(rule_dir)).await;
    let first = cap_feed(&[
        ("BE-1", "Actual", "Alert", ""),
        ("BE-T", "Test", "Alert", ""),
        ("BE-X", "Exercise", "Alert", ""),
    ]);
    let second = cap_feed(&[
        ("BE-1", "Actual", "Alert", ""),
        ("BE-T", "Test", "Alert", ""),
        ("BE-X", "Exercise", "Alert", ""),
        (
            "BE-2",
            "Actual",
            "Cancel",
            "be-alert@example.test,BE-1,2026-12-01T10:00:00+01:00",
        ),
    ]);
    let port = serve_bodies(vec![first.clone(), first, second]);
    let check: vigil_collector::uptime::check::Check = serde_json::from_value(json!({
        "id": "be-alert", "name": "be-alert feed", "type": "cap", "watch": true,
        "target": format!("http://127.0.0.1:{port}/feed.atom"),
    }))
    .expect("a check");
    let client = reqwest::Client::new();
    let pool = a.state.0.incidents.pool();
    let ingest = &a.state.0.ingest;
    let mut read = Vec::new();
    for _ in 0..3 {
        let alerts = capwatch::fetch(&client, &check)
            .await
            .expect("the feed reads");
        let now = Utc::now().timestamp_millis();
        read.push(
            capwatch::absorb(pool, ingest, &check, &alerts, now)
                .await
                .expect("absorbed"),
        );
    }
    // Three new, none again, then the cancel.
    assert_eq!(read, [3, 0, 1]);

    // Every message searchable; the drills too.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, body) = a.get("/api/v1/search?q=event.kind:cap&limit=10").await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let ids: std::collections::BTreeSet<&str> = body["hits"]
            .as_array()
            .map(|e| {
                e.iter()
                    .filter_map(|e| e["cap.identifier"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        if ids.len() == 4 {
            assert_eq!(ids, ["BE-1", "BE-2", "BE-T", "BE-X"].into());
            assert!(
                body["hits"]
                    .as_array()
                    .is_some_and(|h| h.iter().all(|e| e["monitor.id"] == "be-alert")),
                "{body}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (_, body) = a
        .get("/api/v1/search?q=cap.status:Test%20AND%20cap.area:Leuven")
        .await;
    assert_eq!(body["hits"][0]["cap.msg_type"], "Alert", "{body}");

    // The rule matches all four by their event; only the two real ones (the alert and its
    // cancel) were evaluated: one incident, the drills raised nothing.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, body) = a.get("/api/v1/incidents").await;
        let incidents = body["incidents"].as_array().cloned().unwrap_or_default();
        if let Some(i) = incidents.first().filter(|i| i["count"] == 2) {
            assert_eq!(incidents.len(), 1, "{body}");
            assert_eq!(i["title"], "Public gas leak alert");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no incident: {body}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let (_, body) = a.get("/api/v1/search?q=event.kind:alert").await;
    let evidence: Vec<String> = body["hits"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter_map(|e| e["alert.event_ids"].as_array())
                .flatten()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(evidence.len(), 2, "{body}");

    // The cancel amends the alert it references.
    let (status, body) = a.get("/api/v1/cap/watched").await;
    assert_eq!(status, StatusCode::OK);
    let by_id = |id: &str| {
        body["alerts"]
            .as_array()
            .and_then(|l| l.iter().find(|w| w["identifier"] == id))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(by_id("BE-1")["state"], "cancelled", "{body}");
    assert_eq!(
        by_id("BE-1")["amended_by"],
        "be-alert@example.test,BE-2,2026-12-01T10:00:00+01:00"
    );
    assert_eq!(by_id("BE-T")["state"], "active");
    assert_eq!(by_id("BE-2")["msg_type"], "Cancel");
}

#[tokio::test]
async fn a_check_shows_its_probe_latency_from_the_index() {
    let a = api().await;
    let (st, b) = a
        .post(
            "/api/v1/checks",
            json!({"name": "Portal", "type": "http", "target": "http://portal.example/"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    // 101 probes of 1 ms to 101 ms: the median is 51 ms, the 99th percentile 100 ms.
    let events = (1..=101u64)
        .map(|ms| {
            let mut e = Event::default();
            e.set_str(f::EVENT_KIND, "probe");
            e.set_timestamp(Utc::now() - chrono::Duration::seconds(ms as i64));
            e.set_str(f::MONITOR_ID, "portal");
            e.set_str(f::MONITOR_STATUS, "up");
            e.set_u64(f::EVENT_DURATION, ms * 1_000_000);
            e
        })
        .collect();
    let b = Batch {
        batch_id: Uuid::now_v7(),
        agent_id: "edge-1".into(),
        seq: 0,
        events,
    };
    let (st, body) = a.ingest(TOKEN, b.encode()).await;
    assert_eq!(st, StatusCode::OK, "{body}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let latency = loop {
        let (st, body) = a.get("/api/v1/checks/portal").await;
        assert_eq!(st, StatusCode::OK, "{body}");
        if body["latency_24h"]["probes"] == 101 {
            break body["latency_24h"].clone();
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let near = |k: &str, want: f64| {
        let got = latency[k].as_f64().unwrap_or(f64::NAN);
        assert!(
            (got - want).abs() <= want * 0.02,
            "{k}: {got} vs {want}: {latency}"
        );
    };
    near("p50_ms", 51.0);
    near("p99_ms", 100.0);
    near("max_ms", 101.0);
    // The list stays cheap: no latency there.
    let (_, body) = a.get("/api/v1/checks").await;
    assert!(body["checks"][0].get("latency_24h").is_none(), "{body}");
}

/// Each state transition of a check becomes an event in the index, once.
#[tokio::test]
async fn check_state_changes_are_events_in_the_index() {
    use vigil_collector::uptime::quorum::Seen;
    use vigil_schema::check::ProbeStatus;
    let a = api().await;
    let (st, b) = a
        .post(
            "/api/v1/checks",
            json!({"name": "Portal", "type": "http", "target": "http://portal.example/",
                   "interval": "10s"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let q = &a.state.0.quorum;
    // Whole milliseconds: transitions are kept to the millisecond.
    let t0 = chrono::DateTime::from_timestamp_millis(
        (Utc::now() - chrono::Duration::minutes(10)).timestamp_millis(),
    )
    .expect("a time");
    let at = |s: i64| t0 + chrono::Duration::seconds(s);
    let said = |status, s: i64| {
        q.record(
            "edge-1",
            vec![(
                "portal".into(),
                Seen {
                    status,
                    at: at(s),
                    error: None,
                },
            )],
        );
    };
    said(ProbeStatus::Up, 0);
    q.evaluate(at(0)).await.expect("round");
    assert_eq!(q.evaluate(at(10)).await.expect("round").len(), 1, "up");
    said(ProbeStatus::Down, 20);
    q.evaluate(at(20)).await.expect("round");
    assert_eq!(q.evaluate(at(30)).await.expect("round").len(), 1, "down");
    assert_eq!(
        q.index_transitions(&a.state.0.ingest)
            .await
            .expect("indexed"),
        2
    );
    assert_eq!(
        q.index_transitions(&a.state.0.ingest)
            .await
            .expect("none left"),
        0
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, body) = a
            .get("/api/v1/search?q=event.kind:state%20AND%20monitor.id:portal&limit=10")
            .await;
        let mut seen: Vec<(String, String)> = body["hits"]
            .as_array()
            .map(|h| {
                h.iter()
                    .map(|e| {
                        (
                            e["@timestamp"].as_str().unwrap_or("").to_owned(),
                            e["monitor.status"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        if seen.len() == 2 {
            seen.sort();
            let when = |s: i64| {
                at(s)
                    .with_timezone(&Utc)
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            };
            assert_eq!(
                seen,
                [(when(10), "up".to_owned()), (when(30), "down".to_owned())],
                "{body}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

impl Api {
    /// `uri`'s body as text (an HTML page), with its status.
    async fn page(&self, uri: &str) -> (StatusCode, String) {
        let resp = self
            .app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).expect("request"))
            .await
            .expect("answers");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Operators' notices on the pages (markup shown as text), and a customer's own page behind
/// its token, in its language, with its own checks; a wrong token is a plain 404.
#[tokio::test]
async fn notices_and_customer_status_pages_behind_a_token_in_the_customer_s_language() {
    let a = api_with(|c| {
        for (id, public, customer) in [("portal", true, None), ("ulb-web", false, Some("ulb"))] {
            c.checks.push(
                serde_json::from_value(json!({"id": id, "name": id, "type": "tcp",
                    "target": "127.0.0.1:9", "public": public, "customer": customer}))
                .expect("a check"),
            );
        }
        c.customers.push(
            serde_json::from_value(json!({"id": "ulb", "name": "ULB", "language": "fr"}))
                .expect("a customer"),
        );
        c.customers.push(
            serde_json::from_value(json!({"id": "kul", "name": "KUL", "language": "nl"}))
                .expect("a customer"),
        );
    })
    .await;
    let (st, b) = a
        .post(
            "/api/v1/notices",
            json!({"title": "Maintenance <script>alert(1)</script>", "body": "Tonight 22:00 & later"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    let everyone = b["id"].as_i64().expect("id");
    let (st, b) = a
        .post(
            "/api/v1/notices",
            json!({"title": "Votre lien de secours est coupé", "customer": "ulb"}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{b}");
    for (body, field) in [
        (json!({"title": ""}), "title"),
        (json!({"title": "x", "customer": "nobody"}), "customer"),
        (
            json!({"title": "x", "starts_at": "2026-12-02T10:00:00Z", "ends_at": "2026-12-02T09:00:00Z"}),
            "ends_at",
        ),
    ] {
        let (st, b) = a.post("/api/v1/notices", body).await;
        assert_eq!(
            (st, code(&b)),
            (StatusCode::BAD_REQUEST, "bad_notice"),
            "{b}"
        );
        assert!(
            b["error"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with(field)),
            "{b}"
        );
    }

    // The public page: the notice for everyone, as text; not the customer's.
    let (st, html) = a.page("/status").await;
    assert_eq!(st, StatusCode::OK);
    assert!(
        html.contains("Maintenance &lt;script&gt;alert(1)&lt;/script&gt;"),
        "{html}"
    );
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("Tonight 22:00 &amp; later"));
    assert!(
        !html.contains("secours") && !html.contains("ulb-web"),
        "{html}"
    );

    // A token for ULB opens its page: in French, its check and the public one, both notices.
    let (st, t) = a
        .post("/api/v1/customers/ulb/status-token", json!({}))
        .await;
    assert_eq!(st, StatusCode::CREATED, "{t}");
    let token = t["token"].as_str().expect("token").to_owned();
    assert!(
        t["url"]
            .as_str()
            .is_some_and(|u| u.ends_with(&format!("/status/c/{token}")))
    );
    let (st, html) = a.page(&format!("/status/c/{token}")).await;
    assert_eq!(st, StatusCode::OK, "{html}");
    assert!(html.contains("<html lang=\"fr\">"), "{html}");
    assert!(html.contains("<h1>État des services</h1>"), "{html}");
    assert!(html.contains("data-check=\"ulb-web\"") && html.contains("data-check=\"portal\""));
    assert!(html.contains(">Inconnu<"), "states in French: {html}");
    assert!(html.contains("Votre lien de secours est coupé") && html.contains("Maintenance"));
    let (_, page) = a.get(&format!("/api/v1/status/c/{token}")).await;
    assert_eq!(page["customer"], "ulb");
    assert_eq!(page["notices"].as_array().map(Vec::len), Some(2), "{page}");

    // KUL's page is in Dutch, without ULB's check or notice.
    let (_, t) = a
        .post("/api/v1/customers/kul/status-token", json!({}))
        .await;
    let (_, html) = a
        .page(&format!(
            "/status/c/{}",
            t["token"].as_str().expect("token")
        ))
        .await;
    assert!(
        html.contains("<html lang=\"nl\">") && html.contains(">Onbekend<"),
        "{html}"
    );
    assert!(
        !html.contains("ulb-web") && !html.contains("secours"),
        "{html}"
    );

    // A wrong token and a revoked one: the same plain 404, a page.
    let (st, html) = a.page("/status/c/not-a-token").await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    assert!(html.contains("No such status page"), "{html}");
    let (st, b) = a
        .send(
            Request::delete("/api/v1/customers/ulb/status-token")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!((st, &b["revoked"]), (StatusCode::OK, &json!(1)), "{b}");
    let (st, _) = a.page(&format!("/status/c/{token}")).await;
    assert_eq!(st, StatusCode::NOT_FOUND);
    let (st, _) = a
        .post("/api/v1/customers/nobody/status-token", json!({}))
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND);

    // Ended, a notice leaves the pages.
    let (st, _) = a
        .send(
            Request::delete(format!("/api/v1/notices/{everyone}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT);
    let (_, html) = a.page("/status").await;
    assert!(!html.contains("Maintenance"), "{html}");
    let (_, list) = a.get("/api/v1/notices").await;
    assert_eq!(list["notices"].as_array().map(Vec::len), Some(1), "{list}");
}

#[tokio::test]
async fn the_desk_api_takes_merges_splits_and_keeps_notes_and_names_bad_bodies() {
    let a = api_with(|c| {
        c.customers
            .push(serde_json::from_value(json!({"id": "ulb", "name": "ULB"})).expect("customer"));
    })
    .await;
    let alerts: Vec<Alert> = (0..3)
        .map(|i| Alert {
            id: format!("b1.a{i}"),
            rule_id: "rule-1".into(),
            title: "Detected".into(),
            severity: "medium".into(),
            customer: Some("ulb".into()),
            group_key: "host.name=h".into(),
            at: Utc::now(),
            message: None,
            danger: false,
            affected: Vec::new(),
            tags: Vec::new(),
            seen: Default::default(),
        })
        .collect();
    let detected = a
        .state
        .0
        .incidents
        .record(&alerts)
        .await
        .expect("record")
        .opened[0];

    // Taken by hand; an unknown customer or asset, a bad severity, an unknown key: 400.
    for (body, want) in [
        (json!({"title": "x", "customer": "nobody"}), "bad_incident"),
        (json!({"title": "x", "assets": ["rtr-9"]}), "bad_incident"),
        (
            json!({"title": "x", "severity": "apocalyptic"}),
            "bad_action",
        ),
        (json!({"title": ""}), "bad_action"),
        (json!({"title": "x", "colour": "red"}), "bad_body"),
        (json!([1, 2]), "bad_body"),
    ] {
        let (status, answer) = a.post("/api/v1/incidents", body.clone()).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::BAD_REQUEST, want),
            "{body}"
        );
    }
    let (status, m) = a
        .post(
            "/api/v1/incidents",
            json!({"title": "VPN down", "customer": "ulb", "category": "outage",
                   "severity": "high", "danger": true, "ticket": "ULB-4711"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    assert_eq!(
        (m["ticket"].as_str(), m["danger"].as_bool()),
        (Some("ULB-4711"), Some(true))
    );
    let mid = m["id"].as_i64().expect("id");

    // Merged; then split again.
    let (status, body) = a
        .post(
            &format!("/api/v1/incidents/{mid}/merge"),
            json!({"incidents": "7"}),
        )
        .await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "bad_body"));
    let (status, body) = a
        .post(
            &format!("/api/v1/incidents/{mid}/merge"),
            json!({"incidents": [mid]}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "bad_action")
    );
    let (status, merged) = a
        .post(
            &format!("/api/v1/incidents/{mid}/merge"),
            json!({"incidents": [detected]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{merged}");
    assert_eq!(merged["count"], 3);
    let (status, body) = a
        .post(
            &format!("/api/v1/incidents/{mid}/merge"),
            json!({"incidents": [detected]}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "conflict"),
        "{body}"
    );
    let (status, split) = a
        .post(
            &format!("/api/v1/incidents/{mid}/split"),
            json!({"alerts": ["b1.a2"], "title": "Another"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{split}");
    assert_eq!(
        (split["count"].as_i64(), split["title"].as_str()),
        (Some(1), Some("Another"))
    );
    let (status, body) = a
        .post(
            &format!("/api/v1/incidents/{mid}/split"),
            json!({"alerts": ["nope"]}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "bad_action")
    );

    // The shift log.
    let (status, note) = a
        .post("/api/v1/shiftlog", json!({"text": "watch rtr-1"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{note}");
    assert_eq!(note["author"], "api");
    let (status, body) = a.post("/api/v1/shiftlog", json!({"note": "x"})).await;
    assert_eq!((status, code(&body)), (StatusCode::BAD_REQUEST, "bad_body"));
    let (status, log) = a.get("/api/v1/shiftlog?limit=5").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(log["notes"][0]["text"], "watch rtr-1");
    let (status, _) = a.get("/api/v1/shiftlog?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

impl Api {
    /// A form POST with `cookie`: (status, Location, body).
    async fn form(&self, uri: &str, cookie: &str, body: &str) -> (StatusCode, String, String) {
        let resp = self
            .app
            .clone()
            .oneshot(
                Request::post(uri)
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(header::COOKIE, cookie)
                    .body(Body::from(body.to_owned()))
                    .expect("request"),
            )
            .await
            .expect("answers");
        Self::page_of(resp).await
    }

    async fn page_as(&self, uri: &str, cookie: &str) -> (StatusCode, String, String) {
        let resp = self
            .app
            .clone()
            .oneshot(
                Request::get(uri)
                    .header(header::COOKIE, cookie)
                    .body(Body::empty())
                    .expect("request"),
            )
            .await
            .expect("answers");
        Self::page_of(resp).await
    }

    async fn page_of(resp: axum::response::Response) -> (StatusCode, String, String) {
        let status = resp.status();
        let location = resp
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let cookie = resp
            .headers()
            .get(header::SET_COOKIE)
            .and_then(|l| l.to_str().ok())
            .map(|c| c.split(';').next().unwrap_or_default().to_owned());
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .expect("body");
        let body = String::from_utf8_lossy(&bytes).into_owned();
        (status, location, cookie.unwrap_or(body))
    }
}

#[tokio::test]
async fn the_console_needs_a_login_its_forms_carry_its_token_and_text_stays_text() {
    let a = api_with(|c| c.http.api_token = Some(API_TOKEN.into())).await;
    // No login: the login page, which brings the user back.
    let (status, location, _) = a.page_as("/incidents/7?x=1", "").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location, "/login?next=%2Fincidents%2F7%3Fx%3D1");
    let (status, location, _) = a.page_as("/desk", "vigil_session=forged").await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/login?next=%2Fdesk")
    );
    // An unknown page is a page; the API's unknown routes stay JSON.
    let (status, _, body) = a.page_as("/no/such/page", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.starts_with("<!doctype html>"), "{body}");
    // A wrong token, a name that cannot be an actor: refused on the login page.
    for form in [
        "name=alice&token=wrong&next=%2Fdesk".to_owned(),
        format!("name=&token={API_TOKEN}"),
        format!("name=al%0Aice&token={API_TOKEN}"),
    ] {
        let (status, _, body) = a.form("/login", "", &form).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{form}");
        assert!(
            body.contains("<form method=\"post\" action=\"/login\">"),
            "{body}"
        );
    }
    // A good login goes where it was going; an outside address, or one a header cannot
    // carry, is not followed.
    for next in ["%2F%0D%0ASet-Cookie%3A+x%3Dy", "%2Fdesk%C3%A9"] {
        let (status, location, _) = a
            .form(
                "/login",
                "",
                &format!("name=alice&token={API_TOKEN}&next={next}"),
            )
            .await;
        assert_eq!(
            (status, location.as_str()),
            (StatusCode::SEE_OTHER, "/desk"),
            "{next}"
        );
    }
    let (status, location, cookie) = a
        .form(
            "/login",
            "",
            &format!("name=alice&token={API_TOKEN}&next=%2F%2Fevil.example"),
        )
        .await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/desk")
    );
    assert!(cookie.starts_with("vigil_session="), "{cookie}");

    // An incident with markup in its title: the page shows it escaped.
    let alert = Alert {
        id: "b1.a0".into(),
        rule_id: "rule-1".into(),
        title: "<script>alert(1)</script>".into(),
        severity: "medium".into(),
        customer: None,
        group_key: "host.name=h".into(),
        at: Utc::now(),
        message: None,
        danger: false,
        affected: Vec::new(),
        tags: Vec::new(),
        seen: Default::default(),
    };
    let id = a
        .state
        .0
        .incidents
        .record(&[alert])
        .await
        .expect("record")
        .opened[0];
    let (status, _, desk) = a.page_as("/desk", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        desk.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;"),
        "{desk}"
    );
    assert!(!desk.contains("<script>alert(1)"));
    let csrf = desk
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the form token")
        .to_owned();

    // A form without the session's token changes nothing.
    let (status, _, _) = a
        .form(&format!("/incidents/{id}/act"), &cookie, "action=ack")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = a
        .form(
            &format!("/incidents/{id}/act"),
            &cookie,
            "action=ack&csrf=0000",
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        a.state
            .0
            .incidents
            .get(id)
            .await
            .expect("get")
            .status
            .as_str(),
        "open"
    );
    // With it, the action is the login's.
    let (status, location, _) = a
        .form(
            &format!("/incidents/{id}/act"),
            &cookie,
            &format!("action=ack&csrf={csrf}"),
        )
        .await;
    assert_eq!(
        (status, location),
        (StatusCode::SEE_OTHER, format!("/incidents/{id}"))
    );
    let inc = a.state.0.incidents.get(id).await.expect("get");
    assert_eq!(inc.status.as_str(), "acknowledged");
    assert_eq!(inc.timeline.last().map(|e| e.actor.as_str()), Some("alice"));
    // An action the state does not allow: the incident page with the reason, 409.
    let (status, _, body) = a
        .form(
            &format!("/incidents/{id}/act"),
            &cookie,
            &format!("action=ack&csrf={csrf}"),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body.contains("cannot ack an incident that is acknowledged"),
        "{body}"
    );
    // Bulk acknowledge reports what it could not do.
    let (status, location, _) = a
        .form(
            "/desk/ack",
            &cookie,
            &format!("id={id}&csrf={csrf}&back=status%3Dactive"),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        location.starts_with("/desk?status=active&notice=0+acknowledged."),
        "{location}"
    );
    // Whatever the form says the queue was, the way back is an address.
    let (status, location, _) = a
        .form(
            "/desk/ack",
            &cookie,
            &format!("csrf={csrf}&back=%0D%0Ax%3Dy%C3%A9%00"),
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        location.bytes().all(|b| b.is_ascii_graphic()),
        "{location:?}"
    );

    // What was sent about it, and how each delivery stands, on its page.
    sqlx::query(
        "INSERT INTO outbox (incident_id, cause, kind, receiver, channel, target, token, stage,
             state, attempts, not_before, created_at, updated_at, last_error)
         VALUES ($1, 1, 'opened', 'noc', 'email', 'noc@example.org', 'tok-1', 1, 'failed', 3,
             0, 0, 0, '550 <mailbox> unknown')",
    )
    .bind(id)
    .execute(a.state.0.incidents.pool())
    .await
    .expect("an outbox row");
    let (status, _, page) = a.page_as(&format!("/incidents/{id}"), &cookie).await;
    assert_eq!(status, StatusCode::OK);
    for shown in [
        "noc@example.org",
        "<td>failed</td>",
        "550 &lt;mailbox&gt; unknown",
    ] {
        assert!(page.contains(shown), "{shown} in {page}");
    }

    // A call to make: its script on the calls page (as text), the outcome recorded there.
    let task = vigil_collector::notify::task::create(
        a.state.0.incidents.pool(),
        &vigil_collector::notify::task::NewTask {
            incident_id: id,
            outbox_id: 1,
            receiver: "noc",
            number: "+3220000000",
            contact: Some("ULB NOC"),
            script: "Say: <b>router down</b>",
            due_at: Utc::now().timestamp_millis(),
        },
        Utc::now().timestamp_millis(),
    )
    .await
    .expect("task");
    let (status, _, calls) = a.page_as("/tasks", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        calls.contains("Say: &lt;b&gt;router down&lt;&#x2f;b&gt;"),
        "{calls}"
    );
    let (status, _, body) = a
        .form(
            &format!("/tasks/{task}"),
            &cookie,
            &format!("outcome=reached&csrf={csrf}"),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "who answered is required");
    assert!(body.contains("answered_by"), "{body}");
    let (status, location, _) = a
        .form(
            &format!("/tasks/{task}"),
            &cookie,
            &format!("outcome=reached&answered_by=Jan&csrf={csrf}"),
        )
        .await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/tasks")
    );
    let done = vigil_collector::notify::task::get(a.state.0.incidents.pool(), task)
        .await
        .expect("get")
        .expect("the task");
    assert_eq!(
        (
            done.state.as_str(),
            done.answered_by.as_deref(),
            done.updated_by.as_deref()
        ),
        ("done", Some("Jan"), Some("alice"))
    );

    // Logged out: the session is gone.
    let (status, _, _) = a.form("/logout", &cookie, "").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let (status, location, _) = a.page_as("/desk", &cookie).await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/login?next=%2Fdesk")
    );
}
