//! The Admin UI at `/ui/`: server-rendered pages (askama), no JavaScript, no external assets.
//! A profile for everyone signed in; users, teams and the sign-in log for proxy admins; the
//! `UI_USERNAME`/`UI_PASSWORD` fallback login at `POST /login`.

mod teams;
mod users;
mod views;

use self::views::{EventView, UserView, views};

use askama::Template;
use axum::{
    Form, Router,
    extract::{Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use plugin_api::UserRole;
use serde::Deserialize;

use super::{
    ApiError, AppState, Ctx,
    auth::{current_role, token_cookie},
    client::client_address,
    login_limiter::Username,
    sso,
};
use crate::{
    db::{self, entity::user},
    session::{clear_cookie, hash_key, secrets_equal},
    signin::{Attempt, LoginMethod},
};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/ui", get(home))
        .route("/ui/", get(home))
        .route("/ui/login", get(login_page))
        .route("/ui/logout", post(logout))
        .route("/ui/users", get(users::users))
        // Ids travel in query strings and form fields, never in paths: an id with `/` or `..`
        // cannot turn one link into another.
        .route("/ui/user", get(users::user_edit).post(users::user_save))
        .route("/ui/user/revoke", post(users::user_revoke))
        .route("/ui/teams", get(teams::teams).post(teams::team_create))
        .route("/ui/teams/members/add", post(teams::member_add))
        .route("/ui/teams/members/remove", post(teams::member_remove))
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
    let Some((session, user)) = read? else {
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

/// A page's outcome: the page or a redirect, or an error, which the edge answers with an HTML
/// page headed "Request failed" and the request id (`super::finish_errors`).
type Page = Result<Response, ApiError>;

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
async fn require_user(state: &AppState, headers: &HeaderMap) -> Result<UiUser, ApiError> {
    signed_in(state, headers)
        .await?
        .ok_or_else(|| ApiError::redirect(format!("{}/ui/login", state.config().server_root_path)))
}

/// The signed-in proxy admin, or an error page.
async fn require_admin(state: &AppState, headers: &HeaderMap) -> Result<UiUser, ApiError> {
    let user = require_user(state, headers).await?;
    if user.is_admin() {
        Ok(user)
    } else {
        Err(ApiError::forbidden("this page is for proxy admins"))
    }
}

/// Refuses state-changing requests from other sites ([`sso::same_origin`]).
fn check_same_origin(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if !sso::same_origin(state.config(), headers) {
        return Err(ApiError::forbidden("cross-site form submissions are refused"));
    }
    Ok(())
}

/// A redirect to one of the UI's pages (`/ui/…`).
fn to_page(state: &AppState, path: &str) -> Response {
    Redirect::to(&format!("{}/ui/{path}", state.config().server_root_path)).into_response()
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
    user: UserView,
    role: String,
    models: Vec<String>,
    teams: Vec<String>,
    events: Vec<EventView>,
    expires: String,
}

async fn home(State(state): State<AppState>, headers: HeaderMap) -> Page {
    let Some(me) = signed_in(&state, &headers).await? else {
        return Ok(render(login(&state, None)));
    };
    let db = state.db();
    let teams = db.team_ids_of_user(&me.user.user_id).await?;
    let events = views(db.recent_events(Some(&me.user.user_id), 10).await?);
    Ok(render(ProfilePage {
        root: &state.config().server_root_path,
        section: "profile",
        admin: me.is_admin(),
        me: me.user.user_id.clone(),
        models: db::list_of(&me.user.models),
        role: me.role.to_string(),
        teams,
        events,
        expires: me.expires_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        user: UserView::from(&me.user),
    }))
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Page {
    check_same_origin(&state, &headers)?;
    if let Some(me) = signed_in(&state, &headers).await? {
        super::sso::end_session(&state, &me.token_hash).await?;
        tracing::info!(user_id = %me.user.user_id, "logged out");
    }
    let mut response = to_page(&state, "login");
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
    check_same_origin(&state, &headers)?;
    let refuse = |status: StatusCode, message: &str| {
        let mut response = render(login(&state, Some(message.to_owned())));
        *response.status_mut() = status;
        response
    };
    if !password_login_enabled(&state) {
        return Ok(refuse(
            StatusCode::FORBIDDEN,
            "Password sign-in is disabled; use single sign-on.",
        ));
    }
    let ip = client_address(state.config(), ctx.peer.ip(), &headers);
    let Ok(Form(form)) = form else {
        return Ok(refuse(StatusCode::BAD_REQUEST, "Enter a username and a password."));
    };
    let config = state.config();
    // Both comparisons always run, in constant time.
    let user_ok = secrets_equal(&form.username, &config.ui_username);
    let username = if user_ok { Username::Known } else { Username::Unknown };
    if let Err(wait) = state.login_limiter().check(ip, username) {
        let mut response =
            refuse(StatusCode::TOO_MANY_REQUESTS, "Too many failed attempts; wait and try again.");
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait));
        return Ok(response);
    }
    let expected_password = config.ui_password.as_ref().unwrap_or(state.master_key());
    let password_ok = secrets_equal(&form.password, expected_password.expose());
    let attempt = Attempt::new(LoginMethod::Password, ip, ctx.request_id.clone());
    if !(user_ok && password_ok) {
        state.login_limiter().failed(ip, username);
        let error =
            crate::signin::SignInError::Unauthenticated("invalid username or password".into());
        state.signin().record_refusal(&attempt, &error).await;
        return Ok(refuse(StatusCode::UNAUTHORIZED, "Invalid username or password."));
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
        Err(error) => Err(error.into()),
    }
}

// ---------------------------------------------------------------------------------------------
// The sign-in log

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
    events: Vec<EventView>,
}

#[derive(Deserialize)]
struct PageQuery {
    page: Option<u64>,
}

async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: Result<Query<PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Page {
    let me = require_admin(&state, &headers).await?;
    let Query(query) = query.map_err(|r| ApiError::bad_request(r.body_text()))?;
    let number = super::management::check_page(query.page)?;
    let (events, total) = state.db().events_page(number, 50).await?;
    Ok(render(EventsPage {
        root: &state.config().server_root_path,
        section: "events",
        page: number,
        pages: total.div_ceil(50).max(1),
        admin: true,
        me: me.user.user_id,
        total,
        events: views(events),
    }))
}
