//! `team_members`: who is in which team, with which role (LiteLLM's `members_with_roles` and
//! `LiteLLM_TeamMembership` in one table).

use sea_orm::entity::prelude::*;

/// A membership row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "team_members")]
pub struct Model {
    /// The team.
    #[sea_orm(primary_key, auto_increment = false)]
    pub team_id: String,
    /// The user.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    /// `user` or `admin`.
    pub role: String,
    /// Joined.
    pub created_at: DateTimeUtc,
    /// Who made it: `idp`, `admin`, `hook`, `default` (`unknown`: before sources were kept).
    pub source: String,
}

/// A membership belongs to its team (a user's teams are read in one statement).
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The team.
    #[sea_orm(
        belongs_to = "super::team::Entity",
        from = "Column::TeamId",
        to = "super::team::Column::TeamId"
    )]
    Team,
}

impl Related<super::team::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Team.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
