//! SCIM provisioning: `users.active` (a deactivated user cannot sign in, and its sessions stop
//! working), and `users.scim` / `teams.scim`, the SCIM attributes hookgate keeps but has no
//! column of LiteLLM's for (`userName`, `externalId`, `name`). Rows from before are active and
//! have no SCIM attributes. `users.scim_external_id` (indexed) is the SCIM `externalId` a sign-in
//! may be linked by: Entra sends the user's object id there, which Microsoft's tokens carry as
//! `oid`.

use sea_orm_migration::{prelude::*, schema::*};

use super::{Teams, Users};

/// Adds `users.active`, `users.scim`, `users.scim_external_id` and `teams.scim`.
pub(super) struct Scim;

impl MigrationName for Scim {
    fn name(&self) -> &str {
        "m20261207_000008_scim"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Scim {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(boolean(Users::Active).default(true))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(json_binary_null(Users::Scim))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(string_null(Users::ScimExternalId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("users_scim_external_id")
                    .table(Users::Table)
                    .col(Users::ScimExternalId)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Teams::Table)
                    .add_column(json_binary_null(Teams::Scim))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Teams::Table).drop_column(Teams::Scim).to_owned())
            .await?;
        manager
            .drop_index(Index::drop().name("users_scim_external_id").table(Users::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter().table(Users::Table).drop_column(Users::ScimExternalId).to_owned(),
            )
            .await?;
        manager
            .alter_table(Table::alter().table(Users::Table).drop_column(Users::Scim).to_owned())
            .await?;
        manager
            .alter_table(Table::alter().table(Users::Table).drop_column(Users::Active).to_owned())
            .await
    }
}
