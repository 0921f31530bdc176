//! The incident database's schema as versioned migrations, applied at start by sqlx's
//! migrator (which records them in `_sqlx_migrations`): one folder per dialect under
//! `collector/migrations/`, the same versions in both, embedded in the binary.
//!
//! # Invariants
//! - A released migration never changes: the migrator compares checksums at every start and
//!   refuses a database whose applied migrations differ. A change of schema is a new
//!   migration, in both folders, with the same version.
//! - Both dialects give the same tables and columns (`collector/tests/migrations.rs`).
//! - The migrator holds a lock while it works (an advisory lock on PostgreSQL), so
//!   collectors starting together apply each migration once.

use sqlx::AnyPool;
use sqlx::SqlSafeStr;
use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};

/// One version of the schema, in each dialect.
pub struct Step {
    pub version: i64,
    /// The file name after the version: `0001_incidents.sql` is version 1, `incidents`.
    pub name: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

/// Every migration, oldest first.
pub const STEPS: &[Step] = &[
    Step {
        version: 1,
        name: "incidents",
        sqlite: include_str!("../../migrations/sqlite/0001_incidents.sql"),
        postgres: include_str!("../../migrations/postgres/0001_incidents.sql"),
    },
    Step {
        version: 2,
        name: "outbox",
        sqlite: include_str!("../../migrations/sqlite/0002_outbox.sql"),
        postgres: include_str!("../../migrations/postgres/0002_outbox.sql"),
    },
    Step {
        version: 3,
        name: "silences",
        sqlite: include_str!("../../migrations/sqlite/0003_silences.sql"),
        postgres: include_str!("../../migrations/postgres/0003_silences.sql"),
    },
    Step {
        version: 4,
        name: "cap",
        sqlite: include_str!("../../migrations/sqlite/0004_cap.sql"),
        postgres: include_str!("../../migrations/postgres/0004_cap.sql"),
    },
    Step {
        version: 5,
        name: "escalation",
        sqlite: include_str!("../../migrations/sqlite/0005_escalation.sql"),
        postgres: include_str!("../../migrations/postgres/0005_escalation.sql"),
    },
    Step {
        version: 6,
        name: "call_tasks",
        sqlite: include_str!("../../migrations/sqlite/0006_call_tasks.sql"),
        postgres: include_str!("../../migrations/postgres/0006_call_tasks.sql"),
    },
    Step {
        version: 7,
        name: "reference",
        sqlite: include_str!("../../migrations/sqlite/0007_reference.sql"),
        postgres: include_str!("../../migrations/postgres/0007_reference.sql"),
    },
    Step {
        version: 8,
        name: "flood",
        sqlite: include_str!("../../migrations/sqlite/0008_flood.sql"),
        postgres: include_str!("../../migrations/postgres/0008_flood.sql"),
    },
    Step {
        version: 9,
        name: "maintenance",
        sqlite: include_str!("../../migrations/sqlite/0009_maintenance.sql"),
        postgres: include_str!("../../migrations/postgres/0009_maintenance.sql"),
    },
    Step {
        version: 10,
        name: "uptime",
        sqlite: include_str!("../../migrations/sqlite/0010_uptime.sql"),
        postgres: include_str!("../../migrations/postgres/0010_uptime.sql"),
    },
    Step {
        version: 11,
        name: "watched_cap_and_state_events",
        sqlite: include_str!("../../migrations/sqlite/0011_watched_cap_and_state_events.sql"),
        postgres: include_str!("../../migrations/postgres/0011_watched_cap_and_state_events.sql"),
    },
    Step {
        version: 12,
        name: "incident_assets_and_grouping",
        sqlite: include_str!("../../migrations/sqlite/0012_incident_assets_and_grouping.sql"),
        postgres: include_str!("../../migrations/postgres/0012_incident_assets_and_grouping.sql"),
    },
    Step {
        version: 13,
        name: "desk",
        sqlite: include_str!("../../migrations/sqlite/0013_desk.sql"),
        postgres: include_str!("../../migrations/postgres/0013_desk.sql"),
    },
];

/// The migrator of one dialect.
pub fn migrator(postgres: bool) -> Migrator {
    Migrator::with_migrations(
        STEPS
            .iter()
            .map(|s| {
                let sql = if postgres { s.postgres } else { s.sqlite };
                Migration::new(
                    s.version,
                    s.name.into(),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

/// Applies the migrations `pool`'s database lacks.
pub async fn apply(pool: &AnyPool, postgres: bool) -> Result<(), MigrateError> {
    migrator(postgres).run(pool).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of each folder is a step, and every step has its file in both: a migration
    /// added to one dialect only, or left out of [`STEPS`], fails here.
    #[test]
    fn the_steps_are_the_files_of_both_folders() {
        let want: Vec<String> = STEPS
            .iter()
            .map(|s| format!("{:04}_{}.sql", s.version, s.name))
            .collect();
        for dialect in ["sqlite", "postgres"] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(dialect);
            let mut files: Vec<String> = std::fs::read_dir(&dir)
                .expect("migrations folder")
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            files.sort();
            assert_eq!(files, want, "{}", dir.display());
        }
        let mut versions: Vec<i64> = STEPS.iter().map(|s| s.version).collect();
        versions.dedup();
        assert!(
            versions.windows(2).all(|w| w[0] < w[1]),
            "in order, once each"
        );
    }
}
