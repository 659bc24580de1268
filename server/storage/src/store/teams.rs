//! Teams and their memberships: creating and listing teams, adding, changing and removing
//! members, and the teams of a user.

use chrono::{DateTime, Utc};
use hookgate_core::signin::{NewTeam as NewTeamPlan, Source};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    sea_query::OnConflict,
};

use super::{json_list, now};
use crate::entity::{team, team_member};
use crate::types::NewTeam;

/// The teams with these ids that exist, in the order asked.
pub(crate) async fn existing_teams<C: ConnectionTrait>(
    conn: &C,
    team_ids: &[String],
) -> Result<Vec<String>, DbErr> {
    if team_ids.is_empty() {
        return Ok(Vec::new());
    }
    let found: Vec<String> = team::Entity::find()
        .filter(team::Column::TeamId.is_in(team_ids.iter().cloned()))
        .all(conn)
        .await?
        .into_iter()
        .map(|team| team.team_id)
        .collect();
    Ok(team_ids.iter().filter(|id| found.contains(id)).cloned().collect())
}

/// The team with this id.
pub(crate) async fn team_by_id<C: ConnectionTrait>(
    conn: &C,
    team_id: &str,
) -> Result<Option<team::Model>, DbErr> {
    team::Entity::find_by_id(team_id.to_owned()).one(conn).await
}

/// An administrator's membership (every membership this module writes is one).
fn member_row(team_id: &str, user_id: &str, role: &str) -> team_member::ActiveModel {
    team_member::ActiveModel {
        team_id: Set(team_id.to_owned()),
        user_id: Set(user_id.to_owned()),
        role: Set(role.to_owned()),
        created_at: Set(now()),
        source: Set(Source::Admin.as_str().to_owned()),
    }
}

/// Adds a member, or sets the role of an existing one; either way the membership is the
/// administrator's from then on (a sync with the identity provider no longer removes it).
pub(crate) async fn upsert_member<C: ConnectionTrait>(
    conn: &C,
    team_id: &str,
    user_id: &str,
    role: &str,
) -> Result<(), DbErr> {
    team_member::Entity::insert(member_row(team_id, user_id, role))
        .on_conflict(
            OnConflict::columns([team_member::Column::TeamId, team_member::Column::UserId])
                .update_columns([team_member::Column::Role, team_member::Column::Source])
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await
        .map(|_| ())
}

/// Adds a member unless already there (keeping the existing role).
pub(crate) async fn add_member_if_absent<C: ConnectionTrait>(
    conn: &C,
    team_id: &str,
    user_id: &str,
    role: &str,
) -> Result<(), DbErr> {
    team_member::Entity::insert(member_row(team_id, user_id, role))
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .try_insert()
        .exec_without_returning(conn)
        .await
        .map(|_| ())
}

/// Removes a member; returns whether there was one.
pub(crate) async fn delete_member<C: ConnectionTrait>(
    conn: &C,
    team_id: &str,
    user_id: &str,
) -> Result<bool, DbErr> {
    let result = team_member::Entity::delete_many()
        .filter(team_member::Column::TeamId.eq(team_id))
        .filter(team_member::Column::UserId.eq(user_id))
        .exec(conn)
        .await?;
    Ok(result.rows_affected > 0)
}

/// The ids of the teams a user is in, in joining order.
pub(crate) async fn teams_of_user<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
) -> Result<Vec<String>, DbErr> {
    Ok(team_member::Entity::find()
        .filter(team_member::Column::UserId.eq(user_id))
        .order_by_asc(team_member::Column::CreatedAt)
        .order_by_asc(team_member::Column::TeamId)
        .all(conn)
        .await?
        .into_iter()
        .map(|member| member.team_id)
        .collect())
}

/// The teams a user is in, in joining order, read in one statement.
pub(crate) async fn teams_of_user_with_info<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
) -> Result<Vec<team::Model>, DbErr> {
    Ok(teams_of_user_query(user_id)
        .all(conn)
        .await?
        .into_iter()
        .filter_map(|(_, team)| team)
        .collect())
}

/// [`teams_of_user_with_info`]'s statement (membership columns prefixed `A_`, team `B_`).
pub(crate) fn teams_of_user_query(
    user_id: &str,
) -> sea_orm::SelectTwo<team_member::Entity, team::Entity> {
    team_member::Entity::find()
        .filter(team_member::Column::UserId.eq(user_id))
        .order_by_asc(team_member::Column::CreatedAt)
        .order_by_asc(team_member::Column::TeamId)
        .find_also_related(team::Entity)
}

/// A team's members, in joining order.
pub(crate) async fn members_of_team<C: ConnectionTrait>(
    conn: &C,
    team_id: &str,
) -> Result<Vec<team_member::Model>, DbErr> {
    team_member::Entity::find()
        .filter(team_member::Column::TeamId.eq(team_id))
        .order_by_asc(team_member::Column::CreatedAt)
        .order_by_asc(team_member::Column::UserId)
        .all(conn)
        .await
}

/// Every team, by id.
pub(crate) async fn list_teams<C: ConnectionTrait>(conn: &C) -> Result<Vec<team::Model>, DbErr> {
    team::Entity::find().order_by_asc(team::Column::TeamId).all(conn).await
}

/// The row of a team a sign-in creates (`create_teams_from_groups`, or a hook's
/// `create_team`). The teams table holds the models and the budget; the period and the
/// limits, which LiteLLM enforces, are kept in its metadata with who made it.
pub(crate) fn sign_in_team_row(new: &NewTeamPlan, now: DateTime<Utc>) -> team::ActiveModel {
    let params = &new.params;
    let mut metadata = serde_json::json!({
        "created_by": match new.source {
            Source::Hook => "custom_sso",
            _ => "sso_group",
        },
    });
    if let Some(duration) = params.budget_duration {
        metadata["budget_duration"] = serde_json::json!(duration.to_string());
    }
    if let Some(limit) = params.tpm_limit {
        metadata["tpm_limit"] = serde_json::json!(limit);
    }
    if let Some(limit) = params.rpm_limit {
        metadata["rpm_limit"] = serde_json::json!(limit);
    }
    team::ActiveModel {
        team_id: Set(new.team_id.clone()),
        team_alias: Set(new.team_alias.clone()),
        models: Set(json_list(&params.models)),
        max_budget: Set(params.max_budget),
        metadata: Set(metadata),
        created_at: Set(now),
        updated_at: Set(now),
        scim: Set(None),
    }
}

/// Creates a team.
pub(crate) async fn insert_team<C: ConnectionTrait>(
    conn: &C,
    new: NewTeam,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    team::Entity::insert(team::ActiveModel {
        team_id: Set(new.team_id),
        team_alias: Set(new.team_alias),
        models: Set(json_list(&new.models)),
        max_budget: Set(new.max_budget),
        metadata: Set(new.metadata.unwrap_or_else(|| serde_json::json!({}))),
        created_at: Set(now),
        updated_at: Set(now),
        scim: Set(None),
    })
    .exec_without_returning(conn)
    .await
    .map(|_| ())
}
