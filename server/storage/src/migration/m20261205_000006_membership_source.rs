//! `team_members.source`: who made a membership (`idp`, `admin`, `hook`, `default`), so that a
//! sync with the identity provider removes only the memberships it made. Rows from before are
//! `unknown`, which a sync never removes.

use sea_orm_migration::prelude::*;

use super::TeamMembers;

/// Adds `team_members.source`.
pub(super) struct MembershipSource;

impl MigrationName for MembershipSource {
    fn name(&self) -> &str {
        "m20261205_000006_membership_source"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for MembershipSource {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(TeamMembers::Table)
                    .add_column(
                        ColumnDef::new(TeamMembers::Source).string().not_null().default("unknown"),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(TeamMembers::Table)
                    .drop_column(TeamMembers::Source)
                    .to_owned(),
            )
            .await
    }
}
