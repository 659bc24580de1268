//! What the SCIM endpoint reads and writes: every user and team with their memberships (SCIM
//! filters are evaluated over them), a user's SCIM attributes and `active` flag, teams made
//! and renamed by SCIM, and memberships whose source is `scim` (the only ones SCIM removes).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hookgate_core::signin::Source;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, sea_query::OnConflict,
};

use super::json_list;
use crate::entity::{team, team_member, user};
use crate::types::ScimUser;

/// Every user, oldest first.
pub(crate) async fn all_users<C: ConnectionTrait>(conn: &C) -> Result<Vec<user::Model>, DbErr> {
    user::Entity::find()
        .order_by_asc(user::Column::CreatedAt)
        .order_by_asc(user::Column::UserId)
        .all(conn)
        .await
}

/// Every team, oldest first, with its members (user ids, in joining order).
pub(crate) async fn all_teams_with_members<C: ConnectionTrait>(
    conn: &C,
) -> Result<Vec<(team::Model, Vec<String>)>, DbErr> {
    let teams = team::Entity::find()
        .order_by_asc(team::Column::CreatedAt)
        .order_by_asc(team::Column::TeamId)
        .all(conn)
        .await?;
    let mut members: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in team_member::Entity::find()
        .order_by_asc(team_member::Column::CreatedAt)
        .order_by_asc(team_member::Column::UserId)
        .all(conn)
        .await?
    {
        members.entry(row.team_id).or_default().push(row.user_id);
    }
    Ok(teams
        .into_iter()
        .map(|team| {
            let ids = members.remove(&team.team_id).unwrap_or_default();
            (team, ids)
        })
        .collect())
}

/// Creates a user provisioned by SCIM: an `internal_user` with no models or budget, LiteLLM's
/// defaults for a member (`created_by: scim`).
pub(crate) async fn insert_scim_user<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
    fields: ScimUser,
    now: DateTime<Utc>,
) -> Result<user::Model, DbErr> {
    let mut row = super::new_user_row(
        user_id.to_owned(),
        fields.user_email,
        fields.user_alias,
        plugin_api::UserRole::InternalUser,
        &[],
        None,
        None,
        None,
        serde_json::json!({"created_by": "scim"}),
        now,
    );
    row.active = Set(fields.active);
    row.scim_external_id = Set(external_id(&fields.scim));
    row.scim = Set(Some(fields.scim));
    user::Entity::insert(row).exec_without_returning(conn).await?;
    super::user_by_id(conn, user_id)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("user {user_id:?} just inserted")))
}

/// Sets what SCIM manages of a user (email, alias, `active`, its SCIM attributes); returns the
/// row as saved.
pub(crate) async fn update_scim_user<C: ConnectionTrait>(
    conn: &C,
    row: user::Model,
    fields: ScimUser,
    now: DateTime<Utc>,
) -> Result<user::Model, DbErr> {
    let mut changes = row.into_active_model();
    changes.user_email = Set(fields.user_email);
    changes.user_alias = Set(fields.user_alias);
    changes.active = Set(fields.active);
    changes.scim_external_id = Set(external_id(&fields.scim));
    changes.scim = Set(Some(fields.scim));
    changes.updated_at = Set(now);
    changes.update(conn).await
}

/// Creates a team for a SCIM group (no models, no budget; `metadata.created_by: scim`).
pub(crate) async fn insert_scim_team<C: ConnectionTrait>(
    conn: &C,
    team_id: &str,
    alias: &str,
    scim: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    team::Entity::insert(team::ActiveModel {
        team_id: Set(team_id.to_owned()),
        team_alias: Set(Some(alias.to_owned())),
        models: Set(json_list(&[])),
        max_budget: Set(None),
        metadata: Set(serde_json::json!({"created_by": "scim"})),
        created_at: Set(now),
        updated_at: Set(now),
        scim: Set(Some(scim)),
    })
    .exec_without_returning(conn)
    .await
    .map(|_| ())
}

/// Renames a team and sets its SCIM attributes.
pub(crate) async fn update_scim_team<C: ConnectionTrait>(
    conn: &C,
    row: team::Model,
    alias: &str,
    scim: Option<serde_json::Value>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let mut changes = row.into_active_model();
    changes.team_alias = Set(Some(alias.to_owned()));
    changes.scim = Set(scim);
    changes.updated_at = Set(now);
    changes.update(conn).await.map(|_| ())
}

/// Adds SCIM memberships (`user`, source `scim`); a user already in the team keeps the
/// membership it has, whoever made it.
pub(crate) async fn add_scim_members<C: ConnectionTrait>(
    conn: &C,
    team_id: &str,
    user_ids: &[String],
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    if user_ids.is_empty() {
        return Ok(());
    }
    let rows = user_ids.iter().map(|user_id| team_member::ActiveModel {
        team_id: Set(team_id.to_owned()),
        user_id: Set(user_id.clone()),
        role: Set("user".to_owned()),
        created_at: Set(now),
        source: Set(Source::Scim.as_str().to_owned()),
    });
    team_member::Entity::insert_many(rows)
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .try_insert()
        .exec_without_returning(conn)
        .await
        .map(|_| ())
}

/// Removes SCIM's memberships of these users (never another source's); returns the user ids
/// whose membership went.
pub(crate) async fn remove_scim_members<C: ConnectionTrait>(
    conn: &C,
    team_id: &str,
    user_ids: &[String],
) -> Result<Vec<String>, DbErr> {
    if user_ids.is_empty() {
        return Ok(Vec::new());
    }
    let gone: Vec<String> = team_member::Entity::find()
        .filter(team_member::Column::TeamId.eq(team_id))
        .filter(team_member::Column::Source.eq(Source::Scim.as_str()))
        .filter(team_member::Column::UserId.is_in(user_ids.iter().cloned()))
        .all(conn)
        .await?
        .into_iter()
        .map(|row| row.user_id)
        .collect();
    team_member::Entity::delete_many()
        .filter(team_member::Column::TeamId.eq(team_id))
        .filter(team_member::Column::Source.eq(Source::Scim.as_str()))
        .filter(team_member::Column::UserId.is_in(gone.iter().cloned()))
        .exec(conn)
        .await?;
    Ok(gone)
}

/// Deletes a team SCIM made, with its memberships.
pub(crate) async fn delete_team<C: ConnectionTrait>(conn: &C, team_id: &str) -> Result<(), DbErr> {
    team_member::Entity::delete_many()
        .filter(team_member::Column::TeamId.eq(team_id))
        .exec(conn)
        .await?;
    team::Entity::delete_by_id(team_id.to_owned()).exec(conn).await.map(|_| ())
}

/// The `externalId` of the SCIM attributes kept (`users.scim_external_id`, which a Microsoft
/// sign-in's `oid` is linked by); blank is none.
fn external_id(scim: &serde_json::Value) -> Option<String> {
    scim.get("externalId")
        .and_then(serde_json::Value::as_str)
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}
