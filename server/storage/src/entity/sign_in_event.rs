//! `sign_in_events`: every sign-in attempt, allowed or refused.

use sea_orm::entity::prelude::*;

/// An event row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sign_in_events")]
pub struct Model {
    /// Sequence number.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// When.
    pub at: DateTimeUtc,
    /// The user, when known.
    pub user_id: Option<String>,
    /// `header`, `oidc` or `password`.
    pub method: String,
    /// `allowed`, `refused` or `failed`.
    pub outcome: String,
    /// Why, for refusals and failures.
    pub reason: Option<String>,
    /// The TCP peer address.
    pub peer_addr: String,
    /// The request id, to find the log lines.
    pub request_id: String,
    /// For an allowed single sign-on, the groups the identity named (a JSON list of team ids);
    /// `NULL` for other events and for sign-ins before hookgate recorded groups.
    pub groups: Option<Json>,
    /// For an allowed single sign-on whose role mapping read a claim of its own
    /// (`role_mappings.group_claim`), the groups it read there; `NULL`: it read `groups`.
    pub role_groups: Option<Json>,
}

/// Relations are kept in queries, not declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
