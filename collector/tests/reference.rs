//! Asset changes reach the receiving party (decree art. 3): each change is recorded with its
//! actor in the transaction that makes it, and exported to a webhook and a file; an export a
//! target refuses is tried again later and loses nothing. On SQLite and PostgreSQL.

mod postgres;

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use chrono::{TimeZone, Utc};
use postgres::{on_postgres, on_sqlite};
use vigil_collector::config::CollectorConfig;
use vigil_collector::incidents::Store;
use vigil_collector::reference::assets::{self, Asset, ExportConfig};

/// A webhook that refuses its first request and keeps the bodies of the others.
async fn receiver() -> (String, Arc<Mutex<Vec<serde_json::Value>>>) {
    let got: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let refused = Arc::new(Mutex::new(false));
    let (g, r) = (got.clone(), refused.clone());
    let app = axum::Router::new().route(
        "/assets",
        axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
            let (g, r) = (g.clone(), r.clone());
            async move {
                let mut first = r.lock().expect("lock");
                if !*first {
                    *first = true;
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                g.lock().expect("lock").push(body);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/assets"), got)
}

async fn scenario(store: Store) {
    let cfg: CollectorConfig =
        toml::from_str("[[customers]]\nid = \"ulb\"\n[assets]\nid_format = \"ULB-[0-9]{4}\"\n")
            .expect("config");
    let dir = cfg
        .directory(std::path::Path::new("test.toml"))
        .expect("directory");
    let pool = store.pool().clone();
    dir.reload(&pool).await.expect("reload");
    let t = Utc
        .with_ymd_and_hms(2026, 12, 2, 9, 0, 0)
        .single()
        .expect("t");
    let asset = |id: &str, kind: &str| Asset {
        id: id.into(),
        customer: "ulb".into(),
        kind: kind.into(),
        description: String::new(),
        watched_by: Default::default(),
    };
    dir.put_asset(&pool, &asset("ULB-0001", "router"), None, "alice", t)
        .await
        .expect("create");
    dir.put_asset(&pool, &asset("ULB-0002", "web"), None, "bob", t)
        .await
        .expect("create");
    dir.put_asset(
        &pool,
        &asset("ULB-0001", "firewall"),
        Some("ULB-0001"),
        "carol",
        t,
    )
    .await
    .expect("update");
    dir.delete_asset(&pool, "ULB-0002", "dave", t)
        .await
        .expect("delete");
    assert!(
        dir.assets()
            .get("ULB-0001")
            .is_some_and(|a| a.kind == "firewall")
    );
    assert!(dir.assets().get("ULB-0002").is_none());

    let files = tempfile::tempdir().expect("tempdir");
    let file = files.path().join("assets.ndjson");
    let (url, got) = receiver().await;
    let export = ExportConfig {
        webhook: Some(url),
        file: Some(file.clone()),
        daily_at: None,
    };
    let http = reqwest::Client::new();
    // The receiver refuses: nothing is marked sent, nothing written.
    let e = assets::export(&pool, &export, &http, t)
        .await
        .expect_err("refused");
    assert!(e.contains("500"), "{e}");
    assert!(!file.exists());
    // Then takes all four, in order, with their actors.
    assert_eq!(assets::export(&pool, &export, &http, t).await, Ok(4));
    assert_eq!(assets::export(&pool, &export, &http, t).await, Ok(0));
    let sent = got.lock().expect("lock").clone();
    assert_eq!(sent.len(), 1);
    let who: Vec<(String, String, String)> = sent[0]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            (s("asset"), s("action"), s("actor"))
        })
        .collect();
    let w = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        who,
        [
            w("ULB-0001", "created", "alice"),
            w("ULB-0002", "created", "bob"),
            w("ULB-0001", "updated", "carol"),
            w("ULB-0002", "deleted", "dave"),
        ]
    );
    assert_eq!(sent[0]["changes"][2]["asset_after"]["kind"], "firewall");
    assert!(sent[0]["changes"][3]["asset_after"].is_null());
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&file)
        .expect("file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(
        lines,
        sent[0]["changes"].as_array().cloned().unwrap_or_default()
    );
    // A later change goes alone.
    dir.put_asset(&pool, &asset("ULB-0003", "dns"), None, "erin", t)
        .await
        .expect("create");
    assert_eq!(assets::export(&pool, &export, &http, t).await, Ok(1));
    store.close().await;
}

#[tokio::test]
async fn asset_changes_are_exported_on_sqlite() {
    on_sqlite(scenario).await;
}

#[tokio::test]
async fn asset_changes_are_exported_on_postgres() {
    on_postgres(scenario).await;
}
