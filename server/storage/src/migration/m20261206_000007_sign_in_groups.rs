//! `sign_in_events.groups`: the groups the identity named at an allowed single sign-on (a JSON
//! list of team ids), so that `hookgate sync --dry-run` can say, for every user, what their
//! first authoritative sign-in would remove. Events from before, and every other event, are
//! `NULL`: not recorded (which the preview reports as unknown, never as "no groups").
//! `sign_in_events.role_groups`: the groups the role mapping read when a claim of their own
//! gave them (`role_mappings.group_claim`); `NULL`: it read `groups`.

use sea_orm_migration::prelude::*;

use super::SignInEvents;

/// Adds `sign_in_events.groups` and `sign_in_events.role_groups`.
pub(super) struct SignInGroups;

impl MigrationName for SignInGroups {
    fn name(&self) -> &str {
        "m20261206_000007_sign_in_groups"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for SignInGroups {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(SignInEvents::Table)
                    .add_column(ColumnDef::new(SignInEvents::Groups).json_binary().null())
                    .to_owned(),
            )
            .await?;
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(SignInEvents::Table)
                    .add_column(ColumnDef::new(SignInEvents::RoleGroups).json_binary().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(SignInEvents::Table)
                    .drop_column(SignInEvents::RoleGroups)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(SignInEvents::Table)
                    .drop_column(SignInEvents::Groups)
                    .to_owned(),
            )
            .await
    }
}
