//! LiteLLM's team API: teams, their members and their roles.

use axum::{
    Json,
    extract::{Query, State},
};
use plugin_api::TeamRole;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Body, Reply, check_budget, check_id, check_id_count, gone_meanwhile};
use crate::{
    db::{self, entity::team},
    http::{ApiError, AppState, auth::Caller},
};

async fn team_json(state: &AppState, row: &team::Model) -> Result<Value, crate::db::Error> {
    let members = state.db().members_of_team(&row.team_id).await?;
    let members: Vec<Value> =
        members.iter().map(|m| json!({"user_id": m.user_id, "role": m.role})).collect();
    Ok(json!({
        "team_id": row.team_id,
        "team_alias": row.team_alias,
        "models": row.models,
        "max_budget": row.max_budget,
        "metadata": row.metadata,
        "members_with_roles": members,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }))
}

#[derive(Debug, Deserialize)]
struct MemberSpec {
    user_id: String,
    #[serde(default)]
    role: Option<String>,
}

fn team_role(role: Option<&str>) -> Result<TeamRole, ApiError> {
    role.map_or(Ok(TeamRole::User), |role| {
        role.parse().map_err(|error: String| ApiError::bad_request(format!("role: {error}")))
    })
}

#[derive(Debug, Deserialize)]
pub(super) struct NewTeamRequest {
    team_id: Option<String>,
    team_alias: Option<String>,
    models: Option<Vec<String>>,
    max_budget: Option<f64>,
    members_with_roles: Option<Vec<MemberSpec>>,
    metadata: Option<Value>,
}

pub(super) async fn team_new(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Body<NewTeamRequest>, ApiError>,
) -> Reply {
    caller.require_admin()?;
    let Body(request) = body?;
    let team_id = request.team_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    check_id("team_id", &team_id)?;
    check_budget("max_budget", request.max_budget)?;
    if request.metadata.as_ref().is_some_and(|m| !m.is_object()) {
        return Err(ApiError::bad_request("metadata must be a JSON object"));
    }
    let members = request.members_with_roles.unwrap_or_default();
    check_id_count("members_with_roles", members.len())?;
    let roles =
        members.iter().map(|m| team_role(m.role.as_deref())).collect::<Result<Vec<_>, _>>()?;
    let team = db::NewTeam {
        team_id: team_id.clone(),
        team_alias: request.team_alias,
        models: request.models.unwrap_or_default(),
        max_budget: request.max_budget,
        metadata: request.metadata,
    };
    let members: Vec<(String, TeamRole)> =
        members.into_iter().map(|member| member.user_id).zip(roles).collect();
    state
        .db()
        .write(move |tx| {
            if tx.team_by_id(&team.team_id)?.is_some() {
                let team_id = &team.team_id;
                return Err(ApiError::conflict(format!(
                    "a team with id {team_id:?} already exists"
                )));
            }
            for (user_id, _) in &members {
                if tx.user_by_id(user_id)?.is_none() {
                    return Err(ApiError::bad_request(format!(
                        "members_with_roles: there is no user {user_id:?}"
                    )));
                }
            }
            let team_id = team.team_id.clone();
            tx.insert_team(team, db::now())?;
            for (user_id, role) in &members {
                tx.upsert_member(&team_id, user_id, role.as_str())?;
            }
            Ok(())
        })
        .await?;
    let row = state.db().team_by_id(&team_id).await?.ok_or_else(|| gone_meanwhile("team"))?;
    Ok(Json(team_json(&state, &row).await?))
}

#[derive(Debug, Deserialize)]
pub(super) struct TeamInfoQuery {
    team_id: String,
}

pub(super) async fn team_info(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<TeamInfoQuery>, axum::extract::rejection::QueryRejection>,
) -> Reply {
    let Query(query) = query.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let db = state.db();
    if let Caller::Session { user_id, .. } = &caller
        && !caller.is_admin()
    {
        let teams = db.team_ids_of_user(user_id).await?;
        if !teams.contains(&query.team_id) {
            return Err(ApiError::forbidden("a session key may only read teams it is a member of"));
        }
    }
    let row = db
        .team_by_id(&query.team_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no team {:?}", query.team_id)))?;
    Ok(Json(json!({"team_id": row.team_id, "team_info": team_json(&state, &row).await?})))
}

pub(super) async fn team_list(State(state): State<AppState>, caller: Caller) -> Reply {
    caller.require_admin()?;
    let rows = state.db().list_teams().await?;
    let mut teams = Vec::with_capacity(rows.len());
    for row in &rows {
        teams.push(team_json(&state, row).await?);
    }
    Ok(Json(Value::Array(teams)))
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(MemberSpec),
    Many(Vec<MemberSpec>),
}

#[derive(Debug, Deserialize)]
pub(super) struct MemberAddRequest {
    team_id: String,
    member: OneOrMany,
}

pub(super) async fn team_member_add(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Body<MemberAddRequest>, ApiError>,
) -> Reply {
    caller.require_admin()?;
    let Body(request) = body?;
    let members = match request.member {
        OneOrMany::One(member) => vec![member],
        OneOrMany::Many(members) => members,
    };
    check_id_count("member", members.len())?;
    let roles =
        members.iter().map(|m| team_role(m.role.as_deref())).collect::<Result<Vec<_>, _>>()?;
    for member in &members {
        check_id("member.user_id", &member.user_id)?;
    }
    let members: Vec<(String, TeamRole)> =
        members.into_iter().map(|member| member.user_id).zip(roles).collect();
    // As in LiteLLM, adding a user who does not exist yet creates them.
    state.signin().access().add_members(&request.team_id, &members, true).await?;
    let row =
        state.db().team_by_id(&request.team_id).await?.ok_or_else(|| gone_meanwhile("team"))?;
    Ok(Json(team_json(&state, &row).await?))
}

#[derive(Debug, Deserialize)]
pub(super) struct MemberDeleteRequest {
    team_id: String,
    user_id: String,
}

pub(super) async fn team_member_delete(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Body<MemberDeleteRequest>, ApiError>,
) -> Reply {
    caller.require_admin()?;
    let Body(request) = body?;
    // In front of LiteLLM the member leaves LiteLLM's team first.
    state.signin().access().remove_member(&request.team_id, &request.user_id).await?;
    let row = state
        .db()
        .team_by_id(&request.team_id)
        .await?
        .ok_or_else(|| ApiError::not_found("the team was deleted meanwhile"))?;
    Ok(Json(team_json(&state, &row).await?))
}
