//! A fresh PostgreSQL database per test, on the server `VIGIL_TEST_POSTGRES_URL` names (a
//! skip without it, which `VIGIL_TEST_REQUIRE_ALL=1` turns into a failure).

#[path = "../../../tests/support/skip.rs"]
mod skip_support;

/// Reports a test that cannot run (a failure under `VIGIL_TEST_REQUIRE_ALL=1`).
#[allow(unused_imports)] // not every test file skips for a reason of its own
pub use skip_support::skip;

/// A fresh database on the test server, so parallel runs do not meet.
pub async fn fresh_postgres() -> Option<(String, String)> {
    let Ok(base) = std::env::var("VIGIL_TEST_POSTGRES_URL") else {
        skip("VIGIL_TEST_POSTGRES_URL is not set");
        return None;
    };
    let name = format!("vigil_test_{}", uuid::Uuid::now_v7().simple());
    sqlx::any::install_default_drivers();
    let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&base)
        .await
        .expect("connect to VIGIL_TEST_POSTGRES_URL");
    sqlx::Executor::execute(
        &mut admin,
        sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
    )
    .await
    .expect("create database");
    let (prefix, _) = base.rsplit_once('/').expect("database in the URL");
    Some((format!("{prefix}/{name}"), name))
}

pub async fn drop_postgres(name: &str) {
    let base = std::env::var("VIGIL_TEST_POSTGRES_URL").expect("url");
    let mut admin = <sqlx::AnyConnection as sqlx::Connection>::connect(&base)
        .await
        .expect("connect");
    let _ = sqlx::Executor::execute(
        &mut admin,
        sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")),
    )
    .await;
}

/// Runs `scenario` on an incident store in a fresh SQLite file.
#[allow(dead_code)] // not every test file runs scenarios on both databases
pub async fn on_sqlite<F: std::future::Future<Output = ()>>(
    scenario: impl FnOnce(vigil_collector::incidents::Store) -> F,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("incidents.db").display());
    let store = vigil_collector::incidents::Store::open(&url)
        .await
        .expect("open");
    scenario(store).await;
}

/// Runs `scenario` on an incident store in a fresh PostgreSQL database (a skip without one).
#[allow(dead_code)]
pub async fn on_postgres<F: std::future::Future<Output = ()>>(
    scenario: impl FnOnce(vigil_collector::incidents::Store) -> F,
) {
    let Some((url, name)) = fresh_postgres().await else {
        return;
    };
    let store = vigil_collector::incidents::Store::open(&url)
        .await
        .expect("open");
    scenario(store).await;
    drop_postgres(&name).await;
}

/// A clock the test sets, for the store's changes and the dispatcher's rounds.
#[derive(Clone)]
#[allow(dead_code)] // not every test file runs on a controlled clock
pub struct TestClock(std::sync::Arc<std::sync::atomic::AtomicI64>);

#[allow(dead_code)]
impl TestClock {
    /// Starting at `ms` since the epoch.
    pub fn at(ms: i64) -> TestClock {
        TestClock(std::sync::Arc::new(std::sync::atomic::AtomicI64::new(ms)))
    }

    pub fn set(&self, ms: i64) {
        self.0.store(ms, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn clock(&self) -> vigil_collector::index::writer::Clock {
        let c = self.0.clone();
        std::sync::Arc::new(move || {
            chrono::DateTime::from_timestamp_millis(c.load(std::sync::atomic::Ordering::SeqCst))
                .expect("a time")
        })
    }
}
