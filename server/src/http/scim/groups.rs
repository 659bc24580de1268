//! `/scim/v2/Groups`: SCIM groups are hookgate's teams.
//!
//! - `id` is the team id; a group SCIM creates gets a new UUID (as LiteLLM's `/team/new`
//!   does), its `displayName` becomes the team's alias (unique among teams, any case).
//! - `members` lists every member of the team, whoever added them; SCIM adds memberships with
//!   the source `scim` (role `user`), and removes only those: a membership an administrator,
//!   a sign-in or a hook made stays whatever the group says. A user already in the team keeps
//!   the membership it has.
//! - In front of LiteLLM, a member added or removed by SCIM is added to or removed from the
//!   LiteLLM team too (when LiteLLM has that team and that user), before hookgate's rows.
//! - DELETE deletes a team SCIM created; for any other team it removes SCIM's memberships and
//!   forgets the SCIM attributes, and the team stays.

use std::collections::{BTreeSet, HashMap};

use axum::{
    body::Body,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use hookgate_core::signin::Source;
use serde_json::{Value, json};

use super::{
    ListQuery, ScimError, base,
    filter::get_ci,
    meta, patch, read_object,
    schemas::{GROUP_ATTRS, GROUP_SCHEMA},
    scim_json,
    users::{created, text_of},
};
use crate::{
    db::{self, entity::team},
    http::AppState,
};

/// The longest `displayName` or `externalId`.
const MAX_TEXT: usize = 1024;

/// A group as SCIM shows it.
fn resource(team: &team::Model, members: &[String], base: &str) -> Value {
    let mut out = json!({
        "schemas": [GROUP_SCHEMA],
        "id": team.team_id,
        "displayName": team.team_alias.clone().unwrap_or_else(|| team.team_id.clone()),
        "members": members.iter().map(|user_id| json!({
            "value": user_id,
            "type": "User",
            "$ref": format!("{base}/Users/{user_id}"),
        })).collect::<Vec<_>>(),
        "meta": meta("Group", format!("{base}/Groups/{}", team.team_id), team.created_at, team.updated_at),
    });
    if let Some(external) =
        team.scim.as_ref().and_then(|s| s.get("externalId")).and_then(Value::as_str)
    {
        out["externalId"] = json!(external);
    }
    out
}

/// What a Group body sets: the alias, the SCIM attributes kept, the members' user ids.
struct Fields {
    display_name: String,
    scim: Value,
    members: Vec<String>,
}

fn fields_of(body: &Value) -> Result<Fields, ScimError> {
    let display_name = text_of(body, "displayName", MAX_TEXT)?
        .filter(|name| !name.trim().is_empty())
        .ok_or_else(|| ScimError::bad("invalidValue", "displayName is required"))?;
    let mut scim = json!({});
    if let Some(external) = text_of(body, "externalId", MAX_TEXT)? {
        scim["externalId"] = json!(external);
    }
    let mut members = Vec::new();
    match get_ci(body, "members") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for item in items {
                let Some(user_id) = text_of(item, "value", hookgate_core::ids::MAX_ID)? else {
                    return Err(ScimError::bad(
                        "invalidValue",
                        "each of members needs a value (a user id)",
                    ));
                };
                if !members.contains(&user_id) {
                    members.push(user_id);
                }
            }
        }
        Some(_) => return Err(ScimError::bad("invalidValue", "members must be a list")),
    }
    Ok(Fields { display_name, scim, members })
}

/// Refuses a `displayName` another team has as its alias or id (any case).
fn check_unique(
    teams: &[(team::Model, Vec<String>)],
    name: &str,
    own_id: Option<&str>,
) -> Result<(), ScimError> {
    let taken =
        teams.iter().filter(|(team, _)| Some(team.team_id.as_str()) != own_id).any(|(team, _)| {
            team.team_alias.as_deref().unwrap_or(&team.team_id).eq_ignore_ascii_case(name)
        });
    if taken {
        return Err(ScimError::new(
            StatusCode::CONFLICT,
            Some("uniqueness"),
            format!("a group named {} exists", hookgate_core::ids::shown(name)),
        ));
    }
    Ok(())
}

/// Refuses members that are not users (nothing is written then).
async fn check_members(state: &AppState, members: &[String]) -> Result<(), ScimError> {
    for user_id in members {
        if state.db().user_by_id(user_id).await?.is_none() {
            return Err(ScimError::bad(
                "invalidValue",
                format!("members: there is no user {}", hookgate_core::ids::shown(user_id)),
            ));
        }
    }
    Ok(())
}

pub(super) async fn list(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ScimError> {
    answer(&state, ListQuery::of(&query)?).await
}

/// `POST /Groups/.search`.
pub(super) async fn search(
    State(state): State<AppState>,
    body: Body,
) -> Result<Response, ScimError> {
    answer(&state, ListQuery::of_search(body).await?).await
}

async fn answer(state: &AppState, list: ListQuery) -> Result<Response, ScimError> {
    let filter = list.parsed(GROUP_ATTRS)?;
    let base = base(state.config());
    let teams = state.db().all_teams_with_members().await?;
    let resources = teams.iter().map(|(team, members)| resource(team, members, &base)).collect();
    Ok(list.answer(filter.as_ref(), resources))
}

/// A team and its memberships (user id, source), or 404.
async fn found(
    state: &AppState,
    id: &str,
) -> Result<(team::Model, Vec<(String, Source)>), ScimError> {
    let db = state.db();
    let team = db.team_by_id(id).await?.ok_or_else(|| ScimError::not_found("group", id))?;
    let members = db
        .members_of_team(id)
        .await?
        .into_iter()
        .map(|m| (m.user_id, Source::of(&m.source)))
        .collect();
    Ok((team, members))
}

fn ids(members: &[(String, Source)]) -> Vec<String> {
    members.iter().map(|(id, _)| id.clone()).collect()
}

pub(super) async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ScimError> {
    let projection = ListQuery::projection(&query)?;
    let (team, members) = found(&state, &id).await?;
    let resource = resource(&team, &ids(&members), &base(state.config()));
    Ok(scim_json(StatusCode::OK, &projection.project(resource)))
}

pub(super) async fn create(
    State(state): State<AppState>,
    body: Body,
) -> Result<Response, ScimError> {
    let body = read_object(body).await?;
    let fields = fields_of(&body)?;
    check_members(&state, &fields.members).await?;
    let team_id = uuid::Uuid::new_v4().to_string();
    let count = fields.members.len();
    let id = team_id.clone();
    state
        .db()
        .write(move |tx| {
            check_unique(&tx.all_teams_with_members()?, &fields.display_name, None)?;
            let now = db::now();
            tx.insert_scim_team(&id, &fields.display_name, fields.scim, now)?;
            tx.add_scim_members(&id, &fields.members, now)?;
            Ok::<_, ScimError>(())
        })
        .await?;
    tracing::info!(%team_id, members = count, "scim: group created");
    let (team, members) = found(&state, &team_id).await?;
    Ok(created(resource(&team, &ids(&members), &base(state.config()))))
}

pub(super) async fn replace(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ScimError> {
    let body = read_object(body).await?;
    let (team, members) = found(&state, &id).await?;
    save(&state, team, &members, &body).await
}

pub(super) async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ScimError> {
    let body = read_object(body).await?;
    let (team, members) = found(&state, &id).await?;
    let mut current = resource(&team, &ids(&members), &base(state.config()));
    patch::apply(&mut current, &body, GROUP_ATTRS)?;
    save(&state, team, &members, &current).await
}

/// Saves a Group body over `team`: renamed, SCIM's memberships made to match the members
/// listed (others kept), in LiteLLM first.
async fn save(
    state: &AppState,
    team: team::Model,
    members: &[(String, Source)],
    body: &Value,
) -> Result<Response, ScimError> {
    let fields = fields_of(body)?;
    check_unique(
        &state.db().all_teams_with_members().await?,
        &fields.display_name,
        Some(&team.team_id),
    )?;
    let wanted: BTreeSet<&String> = fields.members.iter().collect();
    let present: BTreeSet<&String> = members.iter().map(|(id, _)| id).collect();
    let added: Vec<String> =
        fields.members.iter().filter(|id| !present.contains(id)).cloned().collect();
    let removed: Vec<String> = members
        .iter()
        .filter(|(id, source)| *source == Source::Scim && !wanted.contains(id))
        .map(|(id, _)| id.clone())
        .collect();
    check_members(state, &added).await?;
    let access = state.signin().access();
    let db = state.db();
    for (user_ids, adding) in [(&added, true), (&removed, false)] {
        for user_id in user_ids {
            let Some(row) = db.user_by_id(user_id).await? else { continue };
            if adding {
                access.add_member_in_litellm(&team.team_id, &row).await?;
            } else {
                access.remove_member_in_litellm(&team.team_id, &row).await?;
            }
        }
    }
    let team_id = team.team_id.clone();
    let (added_count, removed_count) = (added.len(), removed.len());
    state
        .db()
        .write(move |tx| {
            let team_id = team.team_id.clone();
            check_unique(&tx.all_teams_with_members()?, &fields.display_name, Some(&team_id))?;
            let now = db::now();
            tx.update_scim_team(team, &fields.display_name, Some(fields.scim), now)?;
            tx.add_scim_members(&team_id, &added, now)?;
            tx.remove_scim_members(&team_id, &removed)?;
            Ok::<_, ScimError>(())
        })
        .await?;
    let (added, removed) = (added_count, removed_count);
    if added != 0 || removed != 0 {
        tracing::info!(%team_id, added, removed, "scim: group members changed");
    }
    let (team, members) = found(state, &team_id).await?;
    Ok(scim_json(StatusCode::OK, &resource(&team, &ids(&members), &base(state.config()))))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    let (team, members) = found(&state, &id).await?;
    let made_by_scim = team.metadata.get("created_by").and_then(Value::as_str) == Some("scim");
    let scim_members: Vec<String> = members
        .iter()
        .filter(|(_, source)| *source == Source::Scim)
        .map(|(id, _)| id.clone())
        .collect();
    let access = state.signin().access();
    for user_id in &scim_members {
        if let Some(row) = state.db().user_by_id(user_id).await? {
            access.remove_member_in_litellm(&team.team_id, &row).await?;
        }
    }
    let kept = team.clone();
    state
        .db()
        .write(move |tx| {
            if made_by_scim {
                tx.delete_team(&kept.team_id)
            } else {
                tx.remove_scim_members(&kept.team_id, &scim_members)?;
                let alias = kept.team_alias.clone().unwrap_or_else(|| kept.team_id.clone());
                tx.update_scim_team(kept, &alias, None, db::now())
            }
        })
        .await?;
    tracing::info!(team_id = %team.team_id, deleted = made_by_scim, "scim: group deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
