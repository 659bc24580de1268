//! PostgreSQL's change notifications for the replicas' remembered session checks
//! (`super::super::sessions`): triggers that `NOTIFY hookgate_sessions`.

use sea_orm_migration::prelude::*;

/// PostgreSQL: every change to a user or a live session sends `NOTIFY hookgate_sessions` in
/// its own transaction, whoever makes it (a replica, an operator's `psql`), so that every replica
/// forgets the session checks it remembered (`db::sessions`). Payload `user:<id>` (the
/// user whose row, or one of whose live sessions, was updated or deleted), `*` for a `TRUNCATE`
/// or an id too long for a payload. Inserts notify nothing: nothing is remembered of a row not
/// read yet; a sign-in whose user is unchanged updates no row. (No `WHEN OLD IS DISTINCT FROM
/// NEW` on `users`: a `json` column, which has no equality, would make every update fail.)
/// SQLite: nothing (every write there is seen through `PRAGMA data_version`).
pub(super) struct SessionNotifications;

impl MigrationName for SessionNotifications {
    fn name(&self) -> &str {
        "m20261204_000005_session_notifications"
    }
}

/// [`SessionNotifications`]' function and triggers.
const SESSION_NOTIFICATIONS: [&str; 5] = [
    r#"CREATE OR REPLACE FUNCTION "hookgate_sessions_notify"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'STATEMENT' OR octet_length(OLD.user_id) > 7000 THEN
        PERFORM pg_notify('hookgate_sessions', '*');
    ELSE
        PERFORM pg_notify('hookgate_sessions', 'user:' || OLD.user_id);
    END IF;
    RETURN NULL;
END
$$"#,
    r#"CREATE TRIGGER "hookgate_users_changed" AFTER UPDATE OR DELETE ON "users" FOR EACH ROW
EXECUTE FUNCTION "hookgate_sessions_notify"()"#,
    r#"CREATE TRIGGER "hookgate_sessions_changed" AFTER UPDATE OR DELETE ON "sessions" FOR EACH ROW
WHEN (OLD.revoked_at IS NULL AND OLD.expires_at > now()) EXECUTE FUNCTION "hookgate_sessions_notify"()"#,
    r#"CREATE TRIGGER "hookgate_users_truncated" AFTER TRUNCATE ON "users" FOR EACH STATEMENT
EXECUTE FUNCTION "hookgate_sessions_notify"()"#,
    r#"CREATE TRIGGER "hookgate_sessions_truncated" AFTER TRUNCATE ON "sessions" FOR EACH STATEMENT
EXECUTE FUNCTION "hookgate_sessions_notify"()"#,
];

#[async_trait::async_trait]
impl MigrationTrait for SessionNotifications {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        super::on_postgres_only(manager, &SESSION_NOTIFICATIONS).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Dropping the function drops the triggers that call it.
        super::on_postgres_only(manager, &[r#"DROP FUNCTION "hookgate_sessions_notify"() CASCADE"#])
            .await
    }
}
