//! `completed_oidc_flows`: OIDC flows already used (completed, or refused by the identity
//! provider), kept until their cookie would expire.

use sea_orm::entity::prelude::*;

/// A completed flow.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "completed_oidc_flows")]
pub struct Model {
    /// The flow's id from its cookie.
    #[sea_orm(primary_key, auto_increment = false)]
    pub flow_id: String,
    /// When the flow's cookie expires; the row can go after that.
    pub expires_at: DateTimeUtc,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
