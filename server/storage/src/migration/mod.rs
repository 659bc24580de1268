//! Schema migrations, run at startup. A migration is never edited once released; changes are
//! new migrations appended to [`Migrator::migrations`].
//!
//! One file per migration, named as sea-orm-migration names them (`mYYYYMMDD_NNNNNN_what`, the
//! name the migration records); here the [`Migrator`] that lists them and the table and column
//! names (`DeriveIden`) that several of them use.

mod m20261127_000001_initial;
mod m20261127_000002_completed_oidc_flows;
mod m20261201_000003_identity_binding;
mod m20261204_000004_binding_unique_per_issuer;
mod m20261204_000005_session_notifications;
mod m20261205_000006_membership_source;
mod m20261206_000007_sign_in_groups;
mod m20261207_000008_scim;
mod m20261208_000009_sqlite_timestamp_text;
mod m20261209_000010_account_notifications;

use sea_orm_migration::prelude::*;

use self::{
    m20261127_000001_initial::Initial, m20261127_000002_completed_oidc_flows::CompletedFlows,
    m20261201_000003_identity_binding::IdentityBinding,
    m20261204_000004_binding_unique_per_issuer::BindingPerIssuer,
    m20261204_000005_session_notifications::SessionNotifications,
    m20261205_000006_membership_source::MembershipSource,
    m20261206_000007_sign_in_groups::SignInGroups, m20261207_000008_scim::Scim,
    m20261208_000009_sqlite_timestamp_text::SqliteTimestampText,
    m20261209_000010_account_notifications::AccountNotifications,
};

/// Runs `statements` in order on PostgreSQL, and nothing on SQLite: for what only PostgreSQL
/// needs (its replicas' change notifications).
async fn on_postgres_only(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    use sea_orm::{ConnectionTrait, DbBackend};
    match manager.get_database_backend() {
        DbBackend::Postgres => {
            for statement in statements {
                manager.get_connection().execute_unprepared(statement).await?;
            }
            Ok(())
        }
        DbBackend::Sqlite => Ok(()),
        other => Err(m20261204_000004_binding_unique_per_issuer::unsupported(other)),
    }
}

/// Runs the migrations in order.
pub(crate) struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(Initial),
            Box::new(CompletedFlows),
            Box::new(IdentityBinding),
            Box::new(BindingPerIssuer),
            Box::new(SessionNotifications),
            Box::new(MembershipSource),
            Box::new(SignInGroups),
            Box::new(Scim),
            Box::new(SqliteTimestampText),
            Box::new(AccountNotifications),
        ]
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    UserId,
    UserEmail,
    UserAlias,
    UserRole,
    SsoUserId,
    SsoIssuer,
    Models,
    MaxBudget,
    Spend,
    BudgetDuration,
    BudgetResetAt,
    Metadata,
    CreatedAt,
    UpdatedAt,
    Active,
    Scim,
    ScimExternalId,
}

#[derive(DeriveIden)]
enum Teams {
    Table,
    TeamId,
    TeamAlias,
    Models,
    MaxBudget,
    Metadata,
    CreatedAt,
    UpdatedAt,
    Scim,
}

#[derive(DeriveIden)]
enum TeamMembers {
    Table,
    TeamId,
    UserId,
    Role,
    CreatedAt,
    Source,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    TokenHash,
    UserId,
    UserRole,
    LoginMethod,
    Models,
    MaxBudget,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum SignInEvents {
    Table,
    Id,
    At,
    UserId,
    Method,
    Outcome,
    Reason,
    PeerAddr,
    RequestId,
    Groups,
    RoleGroups,
}
