//! SQLite keeps timestamps as text, and compares and orders them as text. Until this release its
//! rows were written by two drivers: sqlx writes `2026-12-08T09:30:00.5+00:00`, rusqlite
//! `2026-12-08 09:30:00.5+00:00`. Now that every SQLite statement goes through rusqlite, the
//! rows written before are rewritten in its text (the `T` between date and time becomes a
//! space), so that a comparison with a bound time (`expires_at > ?`), an order, or the writer's
//! "still as read" check (`updated_at = ?`) means the same for every row. PostgreSQL stores
//! `timestamptz`: nothing to do.

use sea_orm_migration::prelude::*;

/// Rewrites SQLite's timestamps in rusqlite's text.
pub(super) struct SqliteTimestampText;

impl MigrationName for SqliteTimestampText {
    fn name(&self) -> &str {
        "m20261208_000009_sqlite_timestamp_text"
    }
}

/// Every timestamp column, by table.
const COLUMNS: [(&str, &[&str]); 6] = [
    ("users", &["budget_reset_at", "created_at", "updated_at"]),
    ("teams", &["created_at", "updated_at"]),
    ("team_members", &["created_at"]),
    ("sessions", &["created_at", "expires_at", "revoked_at"]),
    ("sign_in_events", &["at"]),
    ("completed_oidc_flows", &["expires_at"]),
];

#[async_trait::async_trait]
impl MigrationTrait for SqliteTimestampText {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != sea_orm::DbBackend::Sqlite {
            return Ok(());
        }
        let db = manager.get_connection();
        for (table, columns) in COLUMNS {
            for column in columns {
                db.execute_unprepared(&format!(
                    "UPDATE {table} SET {column} = substr({column}, 1, 10) || ' ' || \
                     substr({column}, 12) WHERE substr({column}, 11, 1) = 'T'"
                ))
                .await?;
            }
        }
        Ok(())
    }

    /// Nothing to undo: both drivers read either text.
    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};

    /// Rows written by sqlx before this release (`T`) read the same after it, in rusqlite's
    /// text; rows already in it, and `NULL`s, are left alone.
    #[tokio::test]
    async fn sqlite_timestamps_are_rewritten_in_one_text() {
        let dir = crate::tests_support::Scratch::dir("migration");
        let url = format!("{}?mode=rwc", dir.sqlite_url());
        let conn = Database::connect(url.as_str()).await.unwrap();
        use sea_orm_migration::{MigrationName, MigratorTrait};
        // Every migration before this one.
        let before = super::super::Migrator::migrations()
            .iter()
            .position(|migration| migration.name() == super::SqliteTimestampText.name())
            .unwrap();
        super::super::Migrator::up(&conn, Some(u32::try_from(before).unwrap())).await.unwrap();
        conn.execute_unprepared(
            "INSERT INTO users (user_id, models, spend, metadata, created_at, updated_at, \
             budget_reset_at) VALUES ('old', '[]', 0, '{}', '2026-12-01T10:00:00.25+00:00', \
             '2026-12-01T10:00:00+00:00', NULL), ('new', '[]', 0, '{}', \
             '2026-12-02 10:00:00+00:00', '2026-12-02 10:00:00+00:00', \
             '2027-01-01T00:00:00+00:00')",
        )
        .await
        .unwrap();
        super::super::Migrator::up(&conn, None).await.unwrap();
        let rows = conn
            .query_all_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT created_at, updated_at, budget_reset_at FROM users ORDER BY user_id",
            ))
            .await
            .unwrap();
        let text = |row: &sea_orm::QueryResult, column: &str| -> Option<String> {
            row.try_get("", column).unwrap()
        };
        assert_eq!(text(&rows[0], "created_at").as_deref(), Some("2026-12-02 10:00:00+00:00"));
        assert_eq!(text(&rows[0], "budget_reset_at").as_deref(), Some("2027-01-01 00:00:00+00:00"));
        assert_eq!(text(&rows[1], "created_at").as_deref(), Some("2026-12-01 10:00:00.25+00:00"));
        assert_eq!(text(&rows[1], "updated_at").as_deref(), Some("2026-12-01 10:00:00+00:00"));
        assert_eq!(text(&rows[1], "budget_reset_at"), None);
        conn.close().await.unwrap();
    }
}
