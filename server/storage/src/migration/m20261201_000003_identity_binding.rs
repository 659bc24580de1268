//! `users.sso_issuer`, so that an account is bound to (issuer, subject); and the indexes that
//! retention pruning uses.

use sea_orm_migration::{prelude::*, schema::*};

use super::{Sessions, SignInEvents, Users};

/// Binds accounts to a sign-in identity: `users.sso_issuer` beside `sso_user_id`; and the
/// indexes that retention pruning uses.
pub(super) struct IdentityBinding;

impl MigrationName for IdentityBinding {
    fn name(&self) -> &str {
        "m20261201_000003_identity_binding"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for IdentityBinding {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(string_null(Users::SsoIssuer))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sign_in_events_at")
                    .table(SignInEvents::Table)
                    .col(SignInEvents::At)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("sessions_expires_at")
                    .table(Sessions::Table)
                    .col(Sessions::ExpiresAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(Users::Table).drop_column(Users::SsoIssuer).to_owned(),
            )
            .await
    }
}
