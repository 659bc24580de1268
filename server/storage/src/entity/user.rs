//! `users`: LiteLLM's `LiteLLM_UserTable`, the columns that matter here.

use sea_orm::entity::prelude::*;

/// A user row.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    /// The user's id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    /// Lower-case email; not unique (LiteLLM's is not either).
    pub user_email: Option<String>,
    /// Display name.
    pub user_alias: Option<String>,
    /// LiteLLM role string.
    pub user_role: Option<String>,
    /// The user's subject at the identity provider in `sso_issuer` (OIDC `sub`, or the
    /// OAuth proxy's user id). A binding is unique as a pair, (`sso_issuer`, `sso_user_id`):
    /// the same subject from two issuers is two identities.
    pub sso_user_id: Option<String>,
    /// Who vouches for `sso_user_id`: the OIDC issuer, or `oauth-proxy`. Null: not bound (rows
    /// from before bindings, or users created through the API).
    pub sso_issuer: Option<String>,
    /// JSON array of model names.
    pub models: Json,
    /// Budget in USD; null is unlimited.
    pub max_budget: Option<f64>,
    /// Spend in the current budget period.
    pub spend: f64,
    /// Budget period, e.g. `30d`.
    pub budget_duration: Option<String>,
    /// When the spend next resets.
    pub budget_reset_at: Option<DateTimeUtc>,
    /// JSON object (LiteLLM's `metadata`).
    pub metadata: Json,
    /// Created.
    pub created_at: DateTimeUtc,
    /// Last changed.
    pub updated_at: DateTimeUtc,
    /// False once deprovisioned (SCIM `active: false`): the user cannot sign in and its
    /// sessions stop working.
    pub active: bool,
    /// The SCIM attributes kept that LiteLLM's table has no column for (`userName`,
    /// `externalId`, `name`); null for users SCIM never wrote.
    pub scim: Option<Json>,
    /// The SCIM `externalId`, apart from `scim` so that a sign-in can be linked by it (indexed):
    /// Entra sends the user's object id, which a Microsoft sign-in proves as `oid`.
    pub scim_external_id: Option<String>,
}

/// Relations are kept in queries, not declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
