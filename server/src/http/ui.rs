//! The Admin UI at `/ui/`: server-rendered pages (askama), no JavaScript, no external assets.
//! A profile for everyone signed in; users, teams and the sign-in log for proxy admins; the
//! `UI_USERNAME`/`UI_PASSWORD` fallback login at `POST /login`.

#![allow(
    clippy::result_large_err,
    reason = "handlers return a finished page either way; Result<Response, Response> reads best"
)]

use askama::Template;
use axum::{
    Form, Router,
    extract::{Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use plugin_api::{TeamRole, UserRole};
use serde::Deserialize;

use super::{
    ApiError, AppState, Ctx,
    auth::{current_role, token_cookie},
    client::client_address,
    login_limiter::Username,
    sso,
};
use crate::{
    budget::BudgetDuration,
    db::{
        entity::{sign_in_event, team_member, user},
        store,
    },
    session::{clear_cookie, hash_key, secrets_equal},
    signin::{Attempt, LoginMethod},
};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(home))
        .route("/ui/", get(home))
        .route("/ui/login", get(login_page))
        .route("/ui/logout", post(logout))
        .route("/ui/users", get(users))
        // Ids travel in query strings and form fields, never in paths: an id with `/` or `..`
        // cannot turn one link into another.
        .route("/ui/user", get(user_edit).post(user_save))
        .route("/ui/user/revoke", post(user_revoke))
        .route("/ui/teams", get(teams).post(team_create))
        .route("/ui/teams/members/add", post(member_add))
        .route("/ui/teams/members/remove", post(member_remove))
        .route("/ui/events", get(events))
}

// ---------------------------------------------------------------------------------------------
// Who is signed in

/// A signed-in UI user.
struct UiUser {
    user: user::Model,
    role: UserRole,
    token_hash: String,
    expires_at: chrono::DateTime<chrono::Utc>,
}

impl UiUser {
    fn is_admin(&self) -> bool {
        self.role == UserRole::ProxyAdmin
    }
}

async fn signed_in(state: &AppState, headers: &HeaderMap) -> Result<Option<UiUser>, ApiError> {
    let Some(token) = token_cookie(headers) else { return Ok(None) };
    let Ok(claims) = state.signin().signer().verify(token) else { return Ok(None) };
    let token_hash = hash_key(&claims.key);
    let read = state.db().live_session_user(&token_hash).await;
    let Some((session, user)) = read.map_err(|e| ApiError::database(&e))? else {
        return Ok(None);
    };
    // In front of LiteLLM: a session signed out there is signed out here.
    if !state.signin().session_key_is_live(&token_hash).await? {
        return Ok(None);
    }
    // The role as stored now: a demotion takes effect on the next page.
    let role = current_role(&user);
    Ok(Some(UiUser { user, role, token_hash, expires_at: session.expires_at }))
}

/// A page's outcome: the page, a redirect, or an error page.
type Page = Result<Response, Response>;

fn page(ctx: &Ctx, error: ApiError) -> Response {
    error.with_request_id(&ctx.request_id).as_html(true).into_response()
}

fn render(template: impl Template) -> Response {
    match template.render() {
        Ok(html) => {
            let mut response = Html(html).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => {
            tracing::error!("template failed: {error}");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error rendering the page").into_response()
        }
    }
}

/// The signed-in user, or a redirect to the login page.
async fn require_user(
    state: &AppState,
    ctx: &Ctx,
    headers: &HeaderMap,
) -> Result<UiUser, Response> {
    match signed_in(state, headers).await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => {
            Err(Redirect::to(&format!("{}/ui/login", state.config().server_root_path))
                .into_response())
        }
        Err(error) => Err(page(ctx, error)),
    }
}

/// The signed-in proxy admin, or an error page.
async fn require_admin(
    state: &AppState,
    ctx: &Ctx,
    headers: &HeaderMap,
) -> Result<UiUser, Response> {
    let user = require_user(state, ctx, headers).await?;
    if user.is_admin() {
        Ok(user)
    } else {
        Err(page(ctx, ApiError::forbidden("this page is for proxy admins")))
    }
}

/// Refuses state-changing requests from other sites ([`sso::same_origin`]).
fn check_same_origin(state: &AppState, ctx: &Ctx, headers: &HeaderMap) -> Result<(), Response> {
    if !sso::same_origin(state.config(), headers) {
        return Err(page(ctx, ApiError::forbidden("cross-site form submissions are refused")));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Login, logout, profile

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    root: &'a str,
    sso: bool,
    password: bool,
    error: Option<String>,
}

fn password_login_enabled(state: &AppState) -> bool {
    let config = state.config();
    !(config.disable_password_login_when_sso_enabled && config.sso_configured())
}

fn login(state: &AppState, error: Option<String>) -> LoginPage<'_> {
    LoginPage {
        root: &state.config().server_root_path,
        sso: state.config().sso_configured(),
        password: password_login_enabled(state),
        error,
    }
}

async fn login_page(State(state): State<AppState>) -> Response {
    render(login(&state, None))
}

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage<'a> {
    root: &'a str,
    section: &'static str,
    admin: bool,
    me: String,
    user: user::Model,
    role: String,
    models: Vec<String>,
    teams: Vec<String>,
    events: Vec<sign_in_event::Model>,
    expires: String,
}

async fn home(State(state): State<AppState>, ctx: Ctx, headers: HeaderMap) -> Page {
    let Some(me) = signed_in(&state, &headers).await.map_err(|e| page(&ctx, e))? else {
        return Ok(render(login(&state, None)));
    };
    let conn = state.db().conn();
    let db = |e| page(&ctx, ApiError::database(&e));
    let teams = store::teams_of_user(conn, &me.user.user_id).await.map_err(db)?;
    let events = store::recent_events(conn, Some(&me.user.user_id), 10).await.map_err(db)?;
    Ok(render(ProfilePage {
        root: &state.config().server_root_path,
        section: "profile",
        admin: me.is_admin(),
        me: me.user.user_id.clone(),
        models: store::list_of(&me.user.models),
        role: me.role.to_string(),
        teams,
        events,
        expires: me.expires_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        user: me.user,
    }))
}

async fn logout(State(state): State<AppState>, ctx: Ctx, headers: HeaderMap) -> Page {
    check_same_origin(&state, &ctx, &headers)?;
    if let Some(me) = signed_in(&state, &headers).await.map_err(|e| page(&ctx, e))? {
        super::sso::end_session(&state, &me.token_hash).await.map_err(|e| page(&ctx, e))?;
        tracing::info!(user_id = %me.user.user_id, "logged out");
    }
    let mut response =
        Redirect::to(&format!("{}/ui/login", state.config().server_root_path)).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::try_from(clear_cookie(
            sso::cookie_path(state.config()),
            sso::is_https(state.config()),
        ))
        .expect("a valid cookie"),
    );
    Ok(response)
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    username: String,
    password: String,
}

/// `POST /login`: LiteLLM's username/password fallback (`UI_USERNAME`, `UI_PASSWORD` or the
/// master key) for a proxy_admin session.
pub(super) async fn password_login(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Page {
    check_same_origin(&state, &ctx, &headers)?;
    let refuse = |status: StatusCode, message: &str| {
        let mut response = render(login(&state, Some(message.to_owned())));
        *response.status_mut() = status;
        response
    };
    if !password_login_enabled(&state) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "Password sign-in is disabled; use single sign-on.",
        ));
    }
    let ip = client_address(state.config(), ctx.peer.ip(), &headers);
    let Ok(Form(form)) = form else {
        return Err(refuse(StatusCode::BAD_REQUEST, "Enter a username and a password."));
    };
    let config = state.config();
    // Both comparisons always run, in constant time.
    let user_ok = secrets_equal(&form.username, &config.ui_username);
    let username = if user_ok { Username::Known } else { Username::Unknown };
    if let Err(wait) = state.login_limiter().check(ip, username) {
        let mut response =
            refuse(StatusCode::TOO_MANY_REQUESTS, "Too many failed attempts; wait and try again.");
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return Err(response);
    }
    let expected_password = config.ui_password.as_ref().unwrap_or(state.master_key());
    let password_ok = secrets_equal(&form.password, expected_password.expose());
    let attempt = Attempt::new(LoginMethod::Password, ip, ctx.request_id.clone());
    if !(user_ok && password_ok) {
        state.login_limiter().failed(ip, username);
        let error =
            crate::signin::SignInError::Unauthenticated("invalid username or password".into());
        state.signin().record_refusal(&attempt, &error).await;
        return Err(refuse(StatusCode::UNAUTHORIZED, "Invalid username or password."));
    }
    state.login_limiter().succeeded(ip, username);
    match state.signin().password_sign_in(&attempt).await {
        Ok(signed_in) => {
            let location = format!(
                "{}{}/ui/?login=success",
                sso::public_base(config),
                config.server_root_path
            );
            Ok(sso::signed_in_response(config, &signed_in, &location))
        }
        Err(error) => Err(page(&ctx, error.into())),
    }
}

// ---------------------------------------------------------------------------------------------
// Admin pages

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
    rows: Vec<user::Model>,
}

#[derive(Deserialize)]
struct ListQuery {
    q: Option<String>,
    page: Option<u64>,
}

async fn users(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Page {
    let me = require_admin(&state, &ctx, &headers).await?;
    let Query(query) = query.map_err(|r| page(&ctx, ApiError::bad_request(r.body_text())))?;
    let search = query.q.unwrap_or_default().trim().to_owned();
    let filter = store::UserFilter {
        email_contains: (!search.is_empty()).then(|| search.clone()),
        ..Default::default()
    };
    let number = super::management::check_page(query.page).map_err(|e| page(&ctx, e))?;
    let (rows, total) = store::list_users(state.db().conn(), &filter, number, PAGE_SIZE)
        .await
        .map_err(|e| page(&ctx, ApiError::database(&e)))?;
    Ok(render(UsersPage {
        root: &state.config().server_root_path,
        section: "users",
        page: number,
        pages: total.div_ceil(PAGE_SIZE).max(1),
        admin: true,
        me: me.user.user_id,
        query: search,
        total,
        rows,
    }))
}

#[derive(Template)]
#[template(path = "user_edit.html")]
struct UserEditPage<'a> {
    root: &'a str,
    section: &'static str,
    admin: bool,
    me: String,
    row: user::Model,
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

async fn edit_page(state: &AppState, ctx: &Ctx, me: &UiUser, user_id: &str, done: Done) -> Page {
    let Done { error, saved, revoked } = done;
    let conn = state.db().conn();
    let row = store::user_by_id(conn, user_id)
        .await
        .map_err(|e| page(ctx, ApiError::database(&e)))?
        .ok_or_else(|| page(ctx, ApiError::not_found(format!("no user {user_id:?}"))))?;
    let teams =
        store::teams_of_user(conn, user_id).await.map_err(|e| page(ctx, ApiError::database(&e)))?;
    let mut response = render(UserEditPage {
        root: &state.config().server_root_path,
        section: "users",
        admin: true,
        me: me.user.user_id.clone(),
        models: store::list_of(&row.models).join(", "),
        row,
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
struct UserQuery {
    id: String,
}

async fn user_edit(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    query: Result<Query<UserQuery>, axum::extract::rejection::QueryRejection>,
) -> Page {
    let me = require_admin(&state, &ctx, &headers).await?;
    let Query(query) = query.map_err(|r| page(&ctx, ApiError::bad_request(r.body_text())))?;
    edit_page(&state, &ctx, &me, &query.id, Done::default()).await
}

#[derive(Deserialize)]
struct UserIdForm {
    user_id: String,
}

/// "Sign out everywhere": revokes every live session of the user.
async fn user_revoke(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    form: Result<Form<UserIdForm>, axum::extract::rejection::FormRejection>,
) -> Page {
    check_same_origin(&state, &ctx, &headers)?;
    let me = require_admin(&state, &ctx, &headers).await?;
    let Ok(Form(form)) = form else {
        return Err(page(&ctx, ApiError::bad_request("the form names no user")));
    };
    let revoked = state
        .signin()
        .access()
        .revoke_sessions(&form.user_id)
        .await
        .map_err(|e| page(&ctx, ApiError::from(e)))?;
    tracing::info!(admin = %me.user.user_id, user_id = %form.user_id, revoked, "sessions revoked from the UI");
    let done = Done { revoked: Some(revoked), ..Done::default() };
    edit_page(&state, &ctx, &me, &form.user_id, done).await
}

#[derive(Deserialize)]
struct UserForm {
    user_id: String,
    user_role: String,
    models: String,
    max_budget: String,
    budget_duration: String,
    /// The binding; absent (an older form): unchanged.
    sso_issuer: Option<String>,
    sso_user_id: Option<String>,
}

async fn user_save(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    form: Result<Form<UserForm>, axum::extract::rejection::FormRejection>,
) -> Page {
    check_same_origin(&state, &ctx, &headers)?;
    let me = require_admin(&state, &ctx, &headers).await?;
    let Ok(Form(form)) = form else {
        return Err(page(&ctx, ApiError::bad_request("the form is incomplete")));
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
                if !crate::budget::is_valid_budget(value) {
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
                    if [issuer, subject]
                        .iter()
                        .any(|v| v.len() > 255 || v.chars().any(char::is_control))
                    {
                        return Err("the issuer and the subject are at most 255 characters".into());
                    }
                    Some(Some((issuer.to_owned(), subject.to_owned())))
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
            return edit_page(&state, &ctx, &me, &user_id, done).await;
        }
    };
    if let Some(Some((issuer, subject))) = &binding {
        let other = store::user_by_binding(state.db().conn(), issuer, subject)
            .await
            .map_err(|e| page(&ctx, ApiError::database(&e)))?;
        if let Some(other) = other.filter(|other| other.user_id != user_id) {
            let message =
                format!("That identity is already linked to the user {:?}.", other.user_id);
            let done = Done { error: Some(message), ..Done::default() };
            return edit_page(&state, &ctx, &me, &user_id, done).await;
        }
    }
    let edit = store::UserEdit {
        user_role: Some(role),
        models: Some(models),
        max_budget: Some(budget),
        budget_duration: Some(duration),
        binding,
        ..store::UserEdit::default()
    };
    // In front of LiteLLM the change reaches LiteLLM's user first (a refusal changes nothing).
    state
        .signin()
        .access()
        .edit_user(&user_id, edit)
        .await
        .map_err(|e| page(&ctx, ApiError::from(e)))?;
    tracing::info!(admin = %me.user.user_id, %user_id, "user updated from the UI");
    edit_page(&state, &ctx, &me, &user_id, Done { saved: true, ..Done::default() }).await
}

struct TeamView {
    team_id: String,
    team_alias: Option<String>,
    members: Vec<team_member::Model>,
}

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

async fn teams_page(state: &AppState, ctx: &Ctx, me: &UiUser, error: Option<String>) -> Page {
    let conn = state.db().conn();
    let db = |e| page(ctx, ApiError::database(&e));
    let mut views = Vec::new();
    for row in store::list_teams(conn).await.map_err(db)? {
        let members = store::members_of_team(conn, &row.team_id).await.map_err(db)?;
        views.push(TeamView { team_id: row.team_id, team_alias: row.team_alias, members });
    }
    let mut response = render(TeamsPage {
        root: &state.config().server_root_path,
        section: "teams",
        admin: true,
        me: me.user.user_id.clone(),
        teams: views,
        error: error.clone(),
    });
    if error.is_some() {
        *response.status_mut() = StatusCode::BAD_REQUEST;
    }
    Ok(response)
}

async fn teams(State(state): State<AppState>, ctx: Ctx, headers: HeaderMap) -> Page {
    let me = require_admin(&state, &ctx, &headers).await?;
    teams_page(&state, &ctx, &me, None).await
}

#[derive(Deserialize)]
struct TeamForm {
    team_id: String,
    #[serde(default)]
    team_alias: String,
}

async fn team_create(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    form: Result<Form<TeamForm>, axum::extract::rejection::FormRejection>,
) -> Page {
    check_same_origin(&state, &ctx, &headers)?;
    let me = require_admin(&state, &ctx, &headers).await?;
    let Ok(Form(form)) = form else {
        return teams_page(&state, &ctx, &me, Some("The form is incomplete.".into())).await;
    };
    let team_id = form.team_id.trim().to_owned();
    if team_id.is_empty() || team_id.len() > 255 || team_id.chars().any(char::is_control) {
        return teams_page(
            &state,
            &ctx,
            &me,
            Some("A team id must be 1 to 255 printable characters.".into()),
        )
        .await;
    }
    let db = |e| page(&ctx, ApiError::database(&e));
    let txn = state.db().write().await.map_err(db)?;
    if store::team_by_id(txn.conn(), &team_id).await.map_err(db)?.is_some() {
        drop(txn);
        return teams_page(&state, &ctx, &me, Some(format!("A team {team_id:?} already exists.")))
            .await;
    }
    let alias = form.team_alias.trim();
    let team = store::NewTeam {
        team_id,
        team_alias: (!alias.is_empty()).then(|| alias.to_owned()),
        ..store::NewTeam::default()
    };
    store::insert_team(txn.conn(), team, store::now()).await.map_err(db)?;
    txn.commit().await.map_err(db)?;
    Ok(Redirect::to(&format!("{}/ui/teams", state.config().server_root_path)).into_response())
}

#[derive(Deserialize)]
struct MemberForm {
    team_id: String,
    user_id: String,
    #[serde(default)]
    role: Option<String>,
}

async fn member_add(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    form: Result<Form<MemberForm>, axum::extract::rejection::FormRejection>,
) -> Page {
    check_same_origin(&state, &ctx, &headers)?;
    let me = require_admin(&state, &ctx, &headers).await?;
    let Ok(Form(form)) = form else {
        return teams_page(&state, &ctx, &me, Some("The form is incomplete.".into())).await;
    };
    let team_id = form.team_id.clone();
    let role = match form.role.as_deref().map(str::parse::<TeamRole>).transpose() {
        Ok(role) => role.unwrap_or_default(),
        Err(message) => return teams_page(&state, &ctx, &me, Some(message)).await,
    };
    let user_id = form.user_id.trim().to_owned();
    let conn = state.db().conn();
    if store::team_by_id(conn, &team_id)
        .await
        .map_err(|e| page(&ctx, ApiError::database(&e)))?
        .is_none()
    {
        return Err(page(&ctx, ApiError::not_found(format!("no team {team_id:?}"))));
    }
    match state.signin().access().add_members(&team_id, &[(user_id.clone(), role)], false).await {
        Ok(()) => {}
        Err(crate::access::AccessError::NotFound(_)) => {
            let message = format!("There is no user {user_id:?}.");
            return teams_page(&state, &ctx, &me, Some(message)).await;
        }
        Err(error) => return Err(page(&ctx, ApiError::from(error))),
    }
    Ok(Redirect::to(&format!("{}/ui/teams", state.config().server_root_path)).into_response())
}

#[derive(Deserialize)]
struct MemberRemoveForm {
    team_id: String,
    user_id: String,
}

async fn member_remove(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    form: Result<Form<MemberRemoveForm>, axum::extract::rejection::FormRejection>,
) -> Page {
    check_same_origin(&state, &ctx, &headers)?;
    require_admin(&state, &ctx, &headers).await?;
    let Ok(Form(MemberRemoveForm { team_id, user_id })) = form else {
        return Err(page(&ctx, ApiError::bad_request("the form names no team and member")));
    };
    match state.signin().access().remove_member(&team_id, &user_id).await {
        // Already gone (a second click): the page shows the team as it is.
        Ok(()) | Err(crate::access::AccessError::NotFound(_)) => {}
        Err(error) => return Err(page(&ctx, ApiError::from(error))),
    }
    Ok(Redirect::to(&format!("{}/ui/teams", state.config().server_root_path)).into_response())
}

#[derive(Template)]
#[template(path = "events.html")]
struct EventsPage<'a> {
    root: &'a str,
    section: &'static str,
    page: u64,
    pages: u64,
    admin: bool,
    me: String,
    total: u64,
    events: Vec<sign_in_event::Model>,
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<u64>,
}

async fn events(
    State(state): State<AppState>,
    ctx: Ctx,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Page {
    let me = require_admin(&state, &ctx, &headers).await?;
    let Query(query) = query.map_err(|r| page(&ctx, ApiError::bad_request(r.body_text())))?;
    let number = super::management::check_page(query.page).map_err(|e| page(&ctx, e))?;
    let (events, total) = store::events_page(state.db().conn(), number, 50)
        .await
        .map_err(|e| page(&ctx, ApiError::database(&e)))?;
    Ok(render(EventsPage {
        root: &state.config().server_root_path,
        section: "events",
        page: number,
        pages: total.div_ceil(50).max(1),
        admin: true,
        me: me.user.user_id,
        total,
        events,
    }))
}
