//! `sessions`: UI session keys (LiteLLM's `litellm-dashboard` virtual keys). Only a hash of each
//! key is stored.

use sea_orm::entity::prelude::*;

/// A session row.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    /// SHA-256 of the key, hex.
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: String,
    /// The user the session is for.
    pub user_id: String,
    /// The role the user signed in with.
    pub user_role: String,
    /// `sso` or `username_password`.
    pub login_method: String,
    /// JSON array of models the session may use.
    pub models: Json,
    /// The session key's budget in USD.
    pub max_budget: Option<f64>,
    /// Issued.
    pub created_at: DateTimeUtc,
    /// Expires.
    pub expires_at: DateTimeUtc,
    /// Revoked by logout, if it was.
    pub revoked_at: Option<DateTimeUtc>,
}

/// A session belongs to its user (the session check reads both in one statement).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The session's user.
    #[sea_orm(
        belongs_to = "super::user::Entity",
        from = "Column::UserId",
        to = "super::user::Column::UserId"
    )]
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
