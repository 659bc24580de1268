//! The `completed_oidc_flows` table: completed OIDC flows, remembered so that a callback cannot
//! be replayed on any replica.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveIden)]
enum CompletedOidcFlows {
    Table,
    FlowId,
    ExpiresAt,
}

/// Remembers completed OIDC flows, so a callback cannot be replayed on any replica.
pub(super) struct CompletedFlows;

impl MigrationName for CompletedFlows {
    fn name(&self) -> &str {
        "m20261127_000002_completed_oidc_flows"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for CompletedFlows {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(CompletedOidcFlows::Table)
                    .if_not_exists()
                    .col(string(CompletedOidcFlows::FlowId).primary_key())
                    .col(timestamp_with_time_zone(CompletedOidcFlows::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("completed_oidc_flows_expires_at")
                    .table(CompletedOidcFlows::Table)
                    .col(CompletedOidcFlows::ExpiresAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CompletedOidcFlows::Table).if_exists().to_owned())
            .await
    }
}
