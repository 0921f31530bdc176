//! The incident database's migrations on real SQLite and PostgreSQL: both dialects give the
//! same tables and columns, and a database made by the release before migrations were
//! versioned is adopted with its incidents.

mod postgres;

use postgres::{drop_postgres, fresh_postgres};
use sqlx::{AnyPool, AssertSqlSafe, Row};
use vigil_collector::incidents::migrations::STEPS;
use vigil_collector::incidents::{Filter, Store};

/// The tables as the release before versioned migrations made them at every start (its
/// `CREATE ... IF NOT EXISTS` statements, `{key}` being each dialect's key column).
const RELEASE_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS incidents (id {key}, dedup_key TEXT NOT NULL, rule_id TEXT NOT NULL,
        title TEXT NOT NULL, status TEXT NOT NULL, severity TEXT NOT NULL, danger BIGINT NOT NULL,
        customer TEXT, group_key TEXT NOT NULL, assignee TEXT, count BIGINT NOT NULL,
        first_seen BIGINT NOT NULL, last_seen BIGINT NOT NULL, updated_at BIGINT NOT NULL)",
    "CREATE UNIQUE INDEX IF NOT EXISTS incidents_active_key ON incidents (dedup_key)
        WHERE status IN ('open', 'acknowledged')",
    "CREATE INDEX IF NOT EXISTS incidents_last_seen ON incidents (last_seen)",
    "CREATE TABLE IF NOT EXISTS incident_alerts (alert_id TEXT PRIMARY KEY,
        incident_id BIGINT NOT NULL, at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS incident_timeline (id {key}, incident_id BIGINT NOT NULL,
        at BIGINT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS incident_timeline_incident ON incident_timeline (incident_id, id)",
];

/// (table, column, nullable) of every table, sorted, as the database itself describes them.
async fn columns(pool: &AnyPool, postgres: bool) -> Vec<(String, String, bool)> {
    let mut out = Vec::new();
    if postgres {
        let rows = sqlx::query(
            "SELECT table_name::TEXT AS t, column_name::TEXT AS c, is_nullable::TEXT AS n
             FROM information_schema.columns WHERE table_schema = current_schema()",
        )
        .fetch_all(pool)
        .await
        .expect("columns");
        for r in rows {
            let n: String = r.get("n");
            out.push((r.get("t"), r.get("c"), n == "YES"));
        }
    } else {
        let tables = sqlx::query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        )
        .fetch_all(pool)
        .await
        .expect("tables");
        for t in tables {
            let table: String = t.get("name");
            let cols = sqlx::query(AssertSqlSafe(format!(
                "SELECT name, \"notnull\" AS nn, pk FROM pragma_table_info('{table}')"
            )))
            .fetch_all(pool)
            .await
            .expect("table info");
            for c in cols {
                // SQLite lets a primary key that is not INTEGER be NULL; PostgreSQL does not,
                // and Vigil never writes one: both say "not null" for keys.
                let not_null = c.get::<i64, _>("nn") != 0 || c.get::<i64, _>("pk") != 0;
                out.push((table.clone(), c.get("name"), !not_null));
            }
        }
    }
    out.sort();
    out
}

async fn applied(pool: &AnyPool) -> Vec<i64> {
    sqlx::query("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(pool)
        .await
        .expect("migrations table")
        .iter()
        .map(|r| r.get("version"))
        .collect()
}

async fn pool(url: &str) -> AnyPool {
    sqlx::any::install_default_drivers();
    AnyPool::connect(url).await.expect("connect")
}

/// A database as the release before migrations left it: its tables, one incident with its
/// alert and the first step of its timeline.
async fn make_release_database(url: &str, postgres: bool) {
    let key = if postgres {
        "BIGSERIAL PRIMARY KEY"
    } else {
        "INTEGER PRIMARY KEY"
    };
    let p = pool(url).await;
    for stmt in RELEASE_SCHEMA {
        sqlx::query(AssertSqlSafe(stmt.replace("{key}", key)))
            .execute(&p)
            .await
            .expect("release schema");
    }
    for stmt in [
        "INSERT INTO incidents (dedup_key, rule_id, title, status, severity, danger, customer,
            group_key, assignee, count, first_seen, last_seen, updated_at)
         VALUES ('r1|ulb|h', 'r1', 'From the release', 'open', 'high', 1, 'ulb', 'h', NULL, 3,
            1790000000000, 1790000060000, 1790000060000)",
        "INSERT INTO incident_alerts (alert_id, incident_id, at) VALUES ('b.0', 1, 1790000000000)",
        "INSERT INTO incident_timeline (incident_id, at, actor, action, detail)
         VALUES (1, 1790000000000, 'vigil', 'opened', '{}')",
    ] {
        sqlx::query(stmt).execute(&p).await.expect("release rows");
    }
    p.close().await;
}

/// Opens the release's database with this build and checks it was adopted, not remade.
async fn adopted(url: &str, postgres: bool) -> Vec<(String, String, bool)> {
    make_release_database(url, postgres).await;
    let store = Store::open(url)
        .await
        .expect("this build opens the release's database");
    let queue = store.list(&Filter::default()).await.expect("list");
    assert_eq!(queue.len(), 1);
    assert_eq!(
        (queue[0].title.as_str(), queue[0].count),
        ("From the release", 3)
    );
    let one = store.get(queue[0].id).await.expect("get");
    assert_eq!(one.timeline.len(), 1);
    store.close().await;
    let p = pool(url).await;
    let want: Vec<i64> = STEPS.iter().map(|s| s.version).collect();
    assert_eq!(applied(&p).await, want);
    let cols = columns(&p, postgres).await;
    p.close().await;
    cols
}

#[tokio::test]
async fn sqlite_and_postgresql_have_the_same_tables_and_columns_and_adopt_the_release() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fresh = format!("sqlite://{}", dir.path().join("fresh.db").display());
    let store = Store::open(&fresh).await.expect("open");
    store.close().await;
    let p = pool(&fresh).await;
    let want: Vec<i64> = STEPS.iter().map(|s| s.version).collect();
    assert_eq!(applied(&p).await, want, "every migration applied once");
    let sqlite = columns(&p, false).await;
    p.close().await;
    let tables: std::collections::BTreeSet<&str> = sqlite.iter().map(|c| c.0.as_str()).collect();
    assert!(
        [
            "incidents",
            "incident_alerts",
            "incident_timeline",
            "_sqlx_migrations"
        ]
        .iter()
        .all(|t| tables.contains(t)),
        "{tables:?}"
    );
    // Opening again applies nothing and changes nothing.
    Store::open(&fresh).await.expect("reopen").close().await;
    let p = pool(&fresh).await;
    assert_eq!(applied(&p).await, want);
    assert_eq!(columns(&p, false).await, sqlite);
    p.close().await;

    let release = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("release.db").display()
    );
    assert_eq!(
        adopted(&release, false).await,
        sqlite,
        "adopted as a fresh one is made"
    );

    let Some((url, name)) = fresh_postgres().await else {
        return;
    };
    Store::open(&url)
        .await
        .expect("open postgres")
        .close()
        .await;
    let p = pool(&url).await;
    assert_eq!(applied(&p).await, want);
    let postgres = columns(&p, true).await;
    p.close().await;
    drop_postgres(&name).await;
    assert_eq!(postgres, sqlite, "the two dialects' tables and columns");

    let Some((url, name)) = fresh_postgres().await else {
        return;
    };
    let cols = adopted(&url, true).await;
    drop_postgres(&name).await;
    assert_eq!(cols, sqlite);
}
