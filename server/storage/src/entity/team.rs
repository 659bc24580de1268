//! `teams`: LiteLLM's `LiteLLM_TeamTable`, the columns that matter here.

use sea_orm::entity::prelude::*;

/// A team row.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "teams")]
pub struct Model {
    /// The team's id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub team_id: String,
    /// Display name.
    pub team_alias: Option<String>,
    /// JSON array of model names.
    pub models: Json,
    /// Budget in USD; null is unlimited.
    pub max_budget: Option<f64>,
    /// JSON object.
    pub metadata: Json,
    /// Created.
    pub created_at: DateTimeUtc,
    /// Last changed.
    pub updated_at: DateTimeUtc,
    /// The SCIM attributes kept (`externalId`); null for teams SCIM never wrote.
    pub scim: Option<Json>,
}

/// Relations are kept in queries, not declared.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
