//! The Admin UI's teams page: teams, their members, adding and removing.

use askama::Template;
use axum::{
    Form,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use plugin_api::TeamRole;
use serde::Deserialize;

use super::{
    Page, UiUser, check_same_origin, render, require_admin, to_page,
    views::{TeamView, views},
};
use crate::{
    db,
    http::{ApiError, AppState},
};

#[derive(Template)]
#[template(path = "teams.html")]
struct TeamsPage<'a> {
    root: &'a str,
    section: &'static str,
    admin: bool,
    me: String,
    teams: Vec<TeamView>,
    error: Option<String>,
}

async fn teams_page(state: &AppState, me: &UiUser, error: Option<String>) -> Page {
    let db = state.db();
    let mut shown = Vec::new();
    for row in db.list_teams().await? {
        let members = views(db.members_of_team(&row.team_id).await?);
        shown.push(TeamView { team_id: row.team_id, team_alias: row.team_alias, members });
    }
    let mut response = render(TeamsPage {
        root: &state.config().server_root_path,
        section: "teams",
        admin: true,
        me: me.user.user_id.clone(),
        teams: shown,
        error: error.clone(),
    });
    if error.is_some() {
        *response.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(response)
}

pub(super) async fn teams(State(state): State<AppState>, headers: HeaderMap) -> Page {
    let me = require_admin(&state, &headers).await?;
    teams_page(&state, &me, None).await
}

#[derive(Deserialize)]
pub(super) struct TeamForm {
    team_id: String,
    #[serde(default)]
    team_alias: String,
}

pub(super) async fn team_create(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<TeamForm>, axum::extract::rejection::FormRejection>,
) -> Page {
    check_same_origin(&state, &headers)?;
    let me = require_admin(&state, &headers).await?;
    let Ok(Form(form)) = form else {
        return teams_page(&state, &me, Some("The form is incomplete.".into())).await;
    };
    let team_id = form.team_id.trim().to_owned();
    if team_id.is_empty() || team_id.len() > 255 || team_id.chars().any(char::is_control) {
        return teams_page(
            &state,
            &me,
            Some("A team id must be 1 to 255 printable characters.".into()),
        )
        .await;
    }
    let alias = form.team_alias.trim();
    let team = db::NewTeam {
        team_id,
        team_alias: (!alias.is_empty()).then(|| alias.to_owned()),
        ..db::NewTeam::default()
    };
    let created = state
        .db()
        .write(move |tx| {
            if tx.team_by_id(&team.team_id)?.is_some() {
                return Ok::<_, crate::db::Error>(Err(team.team_id));
            }
            tx.insert_team(team, db::now())?;
            Ok(Ok(()))
        })
        .await?;
    if let Err(team_id) = created {
        return teams_page(&state, &me, Some(format!("A team {team_id:?} already exists."))).await;
    }
    Ok(to_page(&state, "teams"))
}

#[derive(Deserialize)]
pub(super) struct MemberForm {
    team_id: String,
    user_id: String,
    #[serde(default)]
    role: Option<String>,
}

pub(super) async fn member_add(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<MemberForm>, axum::extract::rejection::FormRejection>,
) -> Page {
    check_same_origin(&state, &headers)?;
    let me = require_admin(&state, &headers).await?;
    let Ok(Form(form)) = form else {
        return teams_page(&state, &me, Some("The form is incomplete.".into())).await;
    };
    let team_id = form.team_id.clone();
    let role = match form.role.as_deref().map(str::parse::<TeamRole>).transpose() {
        Ok(role) => role.unwrap_or_default(),
        Err(message) => return teams_page(&state, &me, Some(message)).await,
    };
    let user_id = form.user_id.trim().to_owned();
    let db = state.db();
    if db.team_by_id(&team_id).await?.is_none() {
        return Err(ApiError::not_found(format!("no team {team_id:?}")));
    }
    match state.signin().access().add_members(&team_id, &[(user_id.clone(), role)], false).await {
        Ok(()) => {}
        Err(crate::access::AccessError::NotFound(_)) => {
            let message = format!("There is no user {user_id:?}.");
            return teams_page(&state, &me, Some(message)).await;
        }
        Err(error) => return Err(ApiError::from(error)),
    }
    Ok(to_page(&state, "teams"))
}

#[derive(Deserialize)]
pub(super) struct MemberRemoveForm {
    team_id: String,
    user_id: String,
}

pub(super) async fn member_remove(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<MemberRemoveForm>, axum::extract::rejection::FormRejection>,
) -> Page {
    check_same_origin(&state, &headers)?;
    require_admin(&state, &headers).await?;
    let Ok(Form(MemberRemoveForm { team_id, user_id })) = form else {
        return Err(ApiError::bad_request("the form names no team and member"));
    };
    match state.signin().access().remove_member(&team_id, &user_id).await {
        // Already gone (a second click): the page shows the team as it is.
        Ok(()) | Err(crate::access::AccessError::NotFound(_)) => {}
        Err(error) => return Err(ApiError::from(error)),
    }
    Ok(to_page(&state, "teams"))
}
