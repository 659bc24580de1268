//! The initial schema: users, teams, team members, sessions and sign-in events.

use sea_orm_migration::{prelude::*, schema::*};

use super::{Sessions, SignInEvents, TeamMembers, Teams, Users};

pub(super) struct Initial;

impl MigrationName for Initial {
    fn name(&self) -> &str {
        "m20261127_000001_initial"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Initial {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .if_not_exists()
                    .col(string(Users::UserId).primary_key())
                    .col(string_null(Users::UserEmail))
                    .col(string_null(Users::UserAlias))
                    .col(string_null(Users::UserRole))
                    .col(string_null(Users::SsoUserId).unique_key())
                    .col(json_binary(Users::Models))
                    .col(double_null(Users::MaxBudget))
                    .col(double(Users::Spend).default(0.0))
                    .col(string_null(Users::BudgetDuration))
                    .col(timestamp_with_time_zone_null(Users::BudgetResetAt))
                    .col(json_binary(Users::Metadata))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("users_user_email")
                    .table(Users::Table)
                    .col(Users::UserEmail)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Teams::Table)
                    .if_not_exists()
                    .col(string(Teams::TeamId).primary_key())
                    .col(string_null(Teams::TeamAlias))
                    .col(json_binary(Teams::Models))
                    .col(double_null(Teams::MaxBudget))
                    .col(json_binary(Teams::Metadata))
                    .col(timestamp_with_time_zone(Teams::CreatedAt))
                    .col(timestamp_with_time_zone(Teams::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(TeamMembers::Table)
                    .if_not_exists()
                    .col(string(TeamMembers::TeamId))
                    .col(string(TeamMembers::UserId))
                    .col(string(TeamMembers::Role))
                    .col(timestamp_with_time_zone(TeamMembers::CreatedAt))
                    .primary_key(Index::create().col(TeamMembers::TeamId).col(TeamMembers::UserId))
                    .foreign_key(
                        ForeignKey::create()
                            .name("team_members_team")
                            .from(TeamMembers::Table, TeamMembers::TeamId)
                            .to(Teams::Table, Teams::TeamId)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("team_members_user")
                            .from(TeamMembers::Table, TeamMembers::UserId)
                            .to(Users::Table, Users::UserId)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("team_members_user_id")
                    .table(TeamMembers::Table)
                    .col(TeamMembers::UserId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .if_not_exists()
                    .col(string(Sessions::TokenHash).primary_key())
                    .col(string(Sessions::UserId))
                    .col(string(Sessions::UserRole))
                    .col(string(Sessions::LoginMethod))
                    .col(json_binary(Sessions::Models))
                    .col(double_null(Sessions::MaxBudget))
                    .col(timestamp_with_time_zone(Sessions::CreatedAt))
                    .col(timestamp_with_time_zone(Sessions::ExpiresAt))
                    .col(timestamp_with_time_zone_null(Sessions::RevokedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("sessions_user")
                            .from(Sessions::Table, Sessions::UserId)
                            .to(Users::Table, Users::UserId)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sessions_user_id")
                    .table(Sessions::Table)
                    .col(Sessions::UserId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SignInEvents::Table)
                    .if_not_exists()
                    .col(big_pk_auto(SignInEvents::Id))
                    .col(timestamp_with_time_zone(SignInEvents::At))
                    .col(string_null(SignInEvents::UserId))
                    .col(string(SignInEvents::Method))
                    .col(string(SignInEvents::Outcome))
                    .col(text_null(SignInEvents::Reason))
                    .col(string(SignInEvents::PeerAddr))
                    .col(string(SignInEvents::RequestId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sign_in_events_user_id")
                    .table(SignInEvents::Table)
                    .col(SignInEvents::UserId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            SignInEvents::Table.into_iden(),
            Sessions::Table.into_iden(),
            TeamMembers::Table.into_iden(),
            Teams::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).if_exists().to_owned()).await?;
        }
        Ok(())
    }
}
