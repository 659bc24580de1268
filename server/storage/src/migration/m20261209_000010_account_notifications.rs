//! PostgreSQL's change notifications for the replicas' remembered sign-in snapshots
//! (`super::super::accounts`): triggers that `NOTIFY hookgate_accounts`.

use sea_orm_migration::prelude::*;

/// PostgreSQL: every statement that inserts, updates or deletes users, teams or memberships
/// (or truncates their tables), whoever runs it (a replica, an operator's `psql`), sends
/// `NOTIFY hookgate_accounts` with the table's name, delivered when its transaction commits, so
/// that every replica stops using the sign-in snapshots it remembered. Statement-level triggers:
/// one notification per statement however many rows it touched (one that touched none notifies
/// too, which costs a read, never a missed change). SQLite: nothing (every write there is seen
/// through the write connection's `PRAGMA data_version`).
pub(super) struct AccountNotifications;

impl MigrationName for AccountNotifications {
    fn name(&self) -> &str {
        "m20261209_000010_account_notifications"
    }
}

/// [`AccountNotifications`]' function and triggers.
const ACCOUNT_NOTIFICATIONS: [&str; 4] = [
    r#"CREATE OR REPLACE FUNCTION "hookgate_accounts_notify"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hookgate_accounts', TG_TABLE_NAME);
    RETURN NULL;
END
$$"#,
    r#"CREATE TRIGGER "hookgate_users_accounts" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
ON "users" FOR EACH STATEMENT EXECUTE FUNCTION "hookgate_accounts_notify"()"#,
    r#"CREATE TRIGGER "hookgate_teams_accounts" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
ON "teams" FOR EACH STATEMENT EXECUTE FUNCTION "hookgate_accounts_notify"()"#,
    r#"CREATE TRIGGER "hookgate_team_members_accounts" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE
ON "team_members" FOR EACH STATEMENT EXECUTE FUNCTION "hookgate_accounts_notify"()"#,
];

#[async_trait::async_trait]
impl MigrationTrait for AccountNotifications {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        super::on_postgres_only(manager, &ACCOUNT_NOTIFICATIONS).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Dropping the function drops the triggers that call it.
        super::on_postgres_only(manager, &[r#"DROP FUNCTION "hookgate_accounts_notify"() CASCADE"#])
            .await
    }
}
