//! A fresh PostgreSQL database for an end-to-end test, on the server
//! `VIGIL_TEST_POSTGRES_URL` names (a skip without it), dropped when the test ends.

/// A database of its own; dropped on drop.
pub struct Postgres {
    pub url: String,
    name: String,
    base: String,
}

fn block<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

async fn admin(base: &str, sql: String) -> Result<(), sqlx::Error> {
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(base).await?;
    sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(sql)).await?;
    Ok(())
}

impl Postgres {
    /// `None` (after saying why) without `VIGIL_TEST_POSTGRES_URL`.
    pub fn fresh() -> Option<Postgres> {
        let Ok(base) = std::env::var("VIGIL_TEST_POSTGRES_URL") else {
            crate::skip("VIGIL_TEST_POSTGRES_URL is not set");
            return None;
        };
        let name = format!("vigil_e2e_{}", uuid::Uuid::now_v7().simple());
        block(admin(&base, format!("CREATE DATABASE {name}")))
            .expect("create a database on VIGIL_TEST_POSTGRES_URL");
        let (prefix, _) = base.rsplit_once('/').expect("a database in the URL");
        Some(Postgres {
            url: format!("{prefix}/{name}"),
            name,
            base,
        })
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = block(admin(
            &self.base,
            format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        ));
    }
}
