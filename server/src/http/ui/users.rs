//! The Admin UI's user pages: the list, the edit page, "sign out everywhere".

use askama::Template;
use axum::{
    Form,
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
};
use plugin_api::UserRole;
use serde::Deserialize;

use super::{Page, UiUser, check_same_origin, render, require_admin, views::UserView};
use crate::http::management::{binding_holder, id_problem};
use crate::{
    db,
    http::{ApiError, AppState},
};
use hookgate_core::{budget::BudgetDuration, identity::Binding};

const PAGE_SIZE: u64 = 25;

#[derive(Template)]
#[template(path = "users.html")]
struct UsersPage<'a> {
    root: &'a str,
    section: &'static str,
    page: u64,
    pages: u64,
    admin: bool,
    me: String,
    query: String,
    total: u64,
    rows: Vec<UserView>,
}

#[derive(Deserialize)]
pub(super) struct ListQuery {
    q: Option<String>,
    page: Option<u64>,
}

pub(super) async fn users(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Page {
    let me = require_admin(&state, &headers).await?;
    let Query(query) = query.map_err(|r| ApiError::bad_request(r.body_text()))?;
    let search = query.q.unwrap_or_default().trim().to_owned();
    let filter = db::UserFilter {
        email_contains: (!search.is_empty()).then(|| search.clone()),
        ..Default::default()
    };
    let number = crate::http::management::check_page(query.page)?;
    let (rows, total) = state.db().list_users(&filter, number, PAGE_SIZE).await?;
    Ok(render(UsersPage {
        root: &state.config().server_root_path,
        section: "users",
        page: number,
        pages: total.div_ceil(PAGE_SIZE).max(1),
        admin: true,
        me: me.user.user_id,
        query: search,
        total,
        rows: rows.iter().map(UserView::from).collect(),
    }))
}

#[derive(Template)]
#[template(path = "user_edit.html")]
struct UserEditPage<'a> {
    root: &'a str,
    section: &'static str,
    admin: bool,
    me: String,
    row: UserView,
    models: String,
    teams: Vec<String>,
    roles: Vec<&'static str>,
    error: Option<String>,
    saved: bool,
    revoked: Option<u64>,
}

/// What happened on the edit page just now.
#[derive(Default)]
struct Done {
    error: Option<String>,
    saved: bool,
    revoked: Option<u64>,
}

async fn edit_page(state: &AppState, me: &UiUser, user_id: &str, done: Done) -> Page {
    let Done { error, saved, revoked } = done;
    let db = state.db();
    let row = db
        .user_by_id(user_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user {user_id:?}")))?;
    let teams = db.team_ids_of_user(user_id).await?;
    let mut response = render(UserEditPage {
        root: &state.config().server_root_path,
        section: "users",
        admin: true,
        me: me.user.user_id.clone(),
        models: db::list_of(&row.models).join(", "),
        row: UserView::from(&row),
        teams,
        roles: UserRole::ALL.iter().map(|role| role.as_str()).collect(),
        saved,
        revoked,
        error: error.clone(),
    });
    if error.is_some() {
        *response.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(response)
}

#[derive(Deserialize)]
pub(super) struct UserQuery {
    id: String,
}

pub(super) async fn user_edit(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<UserQuery>, axum::extract::rejection::QueryRejection>,
) -> Page {
    let me = require_admin(&state, &headers).await?;
    let Query(query) = query.map_err(|r| ApiError::bad_request(r.body_text()))?;
    edit_page(&state, &me, &query.id, Done::default()).await
}

#[derive(Deserialize)]
pub(super) struct UserIdForm {
    user_id: String,
}

/// "Sign out everywhere": revokes every live session of the user.
pub(super) async fn user_revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<UserIdForm>, axum::extract::rejection::FormRejection>,
) -> Page {
    check_same_origin(&state, &headers)?;
    let me = require_admin(&state, &headers).await?;
    let Ok(Form(form)) = form else {
        return Err(ApiError::bad_request("the form names no user"));
    };
    let revoked = state.signin().access().revoke_sessions(&form.user_id).await?;
    tracing::info!(admin = %me.user.user_id, user_id = %form.user_id, revoked, "sessions revoked from the UI");
    let done = Done { revoked: Some(revoked), ..Done::default() };
    edit_page(&state, &me, &form.user_id, done).await
}

#[derive(Deserialize)]
pub(super) struct UserForm {
    user_id: String,
    user_role: String,
    models: String,
    max_budget: String,
    budget_duration: String,
    /// The binding; absent (an older form): unchanged.
    sso_issuer: Option<String>,
    sso_user_id: Option<String>,
}

pub(super) async fn user_save(
    State(state): State<AppState>,
    headers: HeaderMap,
    form: Result<Form<UserForm>, axum::extract::rejection::FormRejection>,
) -> Page {
    check_same_origin(&state, &headers)?;
    let me = require_admin(&state, &headers).await?;
    let Ok(Form(form)) = form else {
        return Err(ApiError::bad_request("the form is incomplete"));
    };
    let user_id = form.user_id.clone();
    let parsed = (|| -> Result<_, String> {
        let role: UserRole =
            form.user_role.parse().map_err(|e: plugin_api::UnknownRole| e.to_string())?;
        let models: Vec<String> =
            form.models.split(',').map(|m| m.trim().to_owned()).filter(|m| !m.is_empty()).collect();
        let budget = match form.max_budget.trim() {
            "" => None,
            text => {
                let value: f64 =
                    text.parse().map_err(|_| format!("budget {text:?} is not a number"))?;
                if !hookgate_core::budget::is_valid_budget(value) {
                    return Err(format!("budget {text} must be 0 or more"));
                }
                Some(value)
            }
        };
        let duration = match form.budget_duration.trim() {
            "" => None,
            text => Some(text.parse::<BudgetDuration>().map_err(|e| e.to_string())?),
        };
        let binding = match (form.sso_issuer.as_deref(), form.sso_user_id.as_deref()) {
            (None, None) => None,
            (issuer, subject) => match (issuer.map(str::trim), subject.map(str::trim)) {
                (Some(""), Some("")) => Some(None),
                (Some(issuer), Some(subject)) if !issuer.is_empty() && !subject.is_empty() => {
                    if let Some(problem) = id_problem("the issuer", issuer)
                        .or_else(|| id_problem("the subject", subject))
                    {
                        return Err(problem);
                    }
                    Some(Some(Binding { issuer: issuer.to_owned(), subject: subject.to_owned() }))
                }
                _ => return Err("give both the issuer and the subject, or neither".into()),
            },
        };
        Ok((role, models, budget, duration, binding))
    })();
    let (role, models, budget, duration, binding) = match parsed {
        Ok(values) => values,
        Err(message) => {
            let done = Done { error: Some(message), ..Done::default() };
            return edit_page(&state, &me, &user_id, done).await;
        }
    };
    if let Some(Some(Binding { issuer, subject })) = &binding
        && let Some(other) = binding_holder(state.db(), &user_id, issuer, subject).await?
    {
        let message = format!("That identity is already linked to the user {other:?}.");
        let done = Done { error: Some(message), ..Done::default() };
        return edit_page(&state, &me, &user_id, done).await;
    }
    let edit = db::UserEdit {
        user_role: Some(role),
        models: Some(models),
        max_budget: Some(budget),
        budget_duration: Some(duration),
        binding,
        ..db::UserEdit::default()
    };
    // In front of LiteLLM the change reaches LiteLLM's user first (a refusal changes nothing).
    state.signin().access().edit_user(&user_id, edit).await?;
    tracing::info!(admin = %me.user.user_id, %user_id, "user updated from the UI");
    edit_page(&state, &me, &user_id, Done { saved: true, ..Done::default() }).await
}
