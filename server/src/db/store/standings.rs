//! What `hookgate sync --dry-run` reads: every user with their role, the memberships a sync
//! made (source `idp`), and the groups their latest sign-in recorded.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use hookgate_core::signin::Source;
use plugin_api::UserRole;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, Func, Query},
};

use super::list_of;
use crate::db::entity::{sign_in_event, team_member, user};

/// One user as the sync preview reads them.
#[derive(Debug, Clone, PartialEq)]
pub struct UserStanding {
    /// The user's id.
    pub user_id: String,
    /// Their stored role (`None` when unset or not a role).
    pub user_role: Option<UserRole>,
    /// The memberships a sync made: (team, user) pairs, sorted by team.
    pub synced: Vec<(String, String)>,
    /// The groups their latest allowed sign-in recorded, and when; `None` when none did.
    pub groups: Option<(Vec<String>, DateTime<Utc>)>,
}

/// Every user, by id, with the memberships a sync made and their latest recorded groups.
pub async fn user_standings<C: ConnectionTrait>(conn: &C) -> Result<Vec<UserStanding>, DbErr> {
    let users = user::Entity::find().order_by_asc(user::Column::UserId).all(conn).await?;
    let mut synced: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for membership in team_member::Entity::find()
        .filter(team_member::Column::Source.eq(Source::Idp.as_str()))
        .order_by_asc(team_member::Column::TeamId)
        .all(conn)
        .await?
    {
        let pair = (membership.team_id, membership.user_id.clone());
        synced.entry(membership.user_id).or_default().push(pair);
    }
    // Each user's latest event with groups: the highest id (events are numbered in order).
    let latest = Query::select()
        .expr(Func::max(Expr::col(sign_in_event::Column::Id)))
        .from(sign_in_event::Entity)
        .and_where(sign_in_event::Column::UserId.is_not_null())
        .and_where(sign_in_event::Column::Groups.is_not_null())
        .and_where(sign_in_event::Column::Outcome.eq("allowed"))
        .group_by_col(sign_in_event::Column::UserId)
        .to_owned();
    let events = sign_in_event::Entity::find()
        .filter(sign_in_event::Column::Id.in_subquery(latest))
        .select_only()
        .columns([sign_in_event::Column::UserId, sign_in_event::Column::At])
        .column(sign_in_event::Column::Groups)
        .into_tuple::<(Option<String>, DateTime<Utc>, Option<serde_json::Value>)>()
        .all(conn)
        .await?;
    let mut groups: HashMap<String, (Vec<String>, DateTime<Utc>)> = events
        .into_iter()
        .filter_map(|(user_id, at, groups)| Some((user_id?, (list_of(&groups?), at))))
        .collect();
    Ok(users
        .into_iter()
        .map(|row| UserStanding {
            synced: synced.remove(&row.user_id).unwrap_or_default(),
            groups: groups.remove(&row.user_id),
            user_role: row.user_role.as_deref().and_then(|role| role.parse().ok()),
            user_id: row.user_id,
        })
        .collect())
}
