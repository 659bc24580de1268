//! What `hookgate sync --dry-run` reads: every user with their role, the memberships a sync
//! made (source `idp`), and the groups their latest sign-in recorded.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use hookgate_core::signin::Source;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, Func, Query},
};

use super::list_of;

type Json = serde_json::Value;
use crate::entity::{sign_in_event, team_member, user};
use crate::types::{Recorded, UserStanding};

/// Every user, by id, with the memberships a sync made and their latest recorded groups.
pub(crate) async fn user_standings<C: ConnectionTrait>(
    conn: &C,
) -> Result<Vec<UserStanding>, DbErr> {
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
        .columns([sign_in_event::Column::Groups, sign_in_event::Column::RoleGroups])
        .into_tuple::<(Option<String>, DateTime<Utc>, Option<Json>, Option<Json>)>()
        .all(conn)
        .await?;
    let mut recorded: HashMap<String, Recorded> = events
        .into_iter()
        .filter_map(|(user_id, at, groups, role_groups)| {
            let recorded = Recorded {
                groups: list_of(&groups?),
                role_groups: role_groups.map(|g| list_of(&g)),
                at,
            };
            Some((user_id?, recorded))
        })
        .collect();
    Ok(users
        .into_iter()
        .map(|row| UserStanding {
            synced: synced.remove(&row.user_id).unwrap_or_default(),
            recorded: recorded.remove(&row.user_id),
            user_role: row.user_role.as_deref().and_then(|role| role.parse().ok()),
            user_id: row.user_id,
        })
        .collect())
}
