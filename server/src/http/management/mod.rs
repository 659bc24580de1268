//! LiteLLM's user and team management API, for the master key and proxy_admin sessions (a
//! session may read its own user).

use axum::{
    Json, Router,
    extract::{FromRequest, Query, Request, State, rejection::JsonRejection},
    routing::{get, post},
};
use plugin_api::{TeamRole, UserRole};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::{Value, json};

use super::{ApiError, AppState, auth::Caller};
use crate::db::{self, Db, entity::user};
use hookgate_core::{budget::BudgetDuration, identity::Binding};

mod teams;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/user/info", get(user_info))
        .route("/user/new", post(user_new))
        .route("/user/update", post(user_update))
        .route("/user/list", get(user_list))
        .route("/user/delete", post(user_delete))
        .route("/team/new", post(teams::team_new))
        .route("/team/info", get(teams::team_info))
        .route("/team/list", get(teams::team_list))
        .route("/team/member_add", post(teams::team_member_add))
        .route("/team/member_delete", post(teams::team_member_delete))
        .route("/session/revoke", post(session_revoke))
}

/// The most ids one request may name; more is a 400, not a statement the database refuses.
pub(super) const MAX_IDS_PER_REQUEST: usize = 1000;
/// The highest page number accepted; beyond it no database holds rows anyway.
pub(super) const MAX_PAGE: u64 = 1_000_000;

/// Checks a list of ids against [`MAX_IDS_PER_REQUEST`].
pub(super) fn check_id_count(field: &str, count: usize) -> Result<(), ApiError> {
    if count > MAX_IDS_PER_REQUEST {
        return Err(ApiError::bad_request(format!(
            "{field} names {count} ids; at most {MAX_IDS_PER_REQUEST} are accepted per request"
        )));
    }
    Ok(())
}

/// A 1-based page number, checked against [`MAX_PAGE`].
pub(super) fn check_page(page: Option<u64>) -> Result<u64, ApiError> {
    match page.unwrap_or(1) {
        0 => Ok(1),
        page if page > MAX_PAGE => {
            Err(ApiError::bad_request(format!("page {page} is out of range: at most {MAX_PAGE}")))
        }
        page => Ok(page),
    }
}

/// A JSON body whose errors are JSON too, and say what was wrong.
pub(super) struct Body<T>(T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(rejection) => {
                let message = match &rejection {
                    JsonRejection::MissingJsonContentType(_) => {
                        "expected a JSON body with Content-Type: application/json".to_owned()
                    }
                    other => format!("invalid JSON body: {}", other.body_text()),
                };
                Err(ApiError::new(rejection.status(), message))
            }
        }
    }
}

pub(super) type Reply = Result<Json<Value>, ApiError>;

/// A row this request wrote or checked was deleted by another request before it was read back.
pub(super) fn gone_meanwhile(what: &str) -> ApiError {
    ApiError::not_found(format!("the {what} was deleted meanwhile"))
}

fn user_json(row: &user::Model, teams: &[String]) -> Value {
    json!({
        "user_id": row.user_id,
        "user_email": row.user_email,
        "user_alias": row.user_alias,
        "user_role": row.user_role,
        "sso_user_id": row.sso_user_id,
        "sso_issuer": row.sso_issuer,
        "models": row.models,
        "max_budget": row.max_budget,
        "spend": row.spend,
        "budget_duration": row.budget_duration,
        "budget_reset_at": row.budget_reset_at,
        "metadata": row.metadata,
        "teams": teams,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    })
}

fn parse_role(role: &str) -> Result<UserRole, ApiError> {
    role.parse().map_err(|error: plugin_api::UnknownRole| {
        ApiError::bad_request(format!("user_role: {error}"))
    })
}

pub(super) fn check_budget(field: &str, budget: Option<f64>) -> Result<(), ApiError> {
    match budget {
        Some(value) if !hookgate_core::budget::is_valid_budget(value) => Err(
            ApiError::bad_request(format!("{field}: {value} must be a number of USD, 0 or more")),
        ),
        _ => Ok(()),
    }
}

fn parse_duration(text: Option<&str>) -> Result<Option<BudgetDuration>, ApiError> {
    text.map(|text| {
        text.parse().map_err(|error| ApiError::bad_request(format!("budget_duration: {error}")))
    })
    .transpose()
}

pub(super) fn check_id(field: &str, id: &str) -> Result<(), ApiError> {
    id_problem(field, id).map_or(Ok(()), |problem| Err(ApiError::bad_request(problem)))
}

pub(super) use hookgate_core::ids::id_problem;

#[derive(Debug, Deserialize)]
struct UserInfoQuery {
    user_id: Option<String>,
}

async fn user_info(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<UserInfoQuery>,
) -> Reply {
    let user_id = match (query.user_id, &caller) {
        (Some(id), _) => id,
        (None, Caller::Session { user_id, .. }) => user_id.clone(),
        (None, Caller::Master) => {
            return Err(ApiError::bad_request("user_id is required with the master key"));
        }
    };
    caller.require_self_or_admin(&user_id)?;
    let db = state.db();
    // A session reading itself: its user row came with the session check.
    let row = match caller.own_user(&user_id) {
        Some(row) => row.clone(),
        None => db
            .user_by_id(&user_id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no user {user_id:?}")))?,
    };
    let rows = state.db().teams_of_user(&user_id).await?;
    let team_ids: Vec<String> = rows.iter().map(|team| team.team_id.clone()).collect();
    let teams: Vec<Value> = rows
        .into_iter()
        .map(|team| json!({"team_id": team.team_id, "team_alias": team.team_alias, "models": team.models}))
        .collect();
    Ok(Json(json!({
        "user_id": user_id,
        "user_info": user_json(&row, &team_ids),
        "keys": [],
        "teams": teams,
    })))
}

#[derive(Debug, Deserialize)]
struct NewUserRequest {
    user_id: Option<String>,
    user_email: Option<String>,
    user_alias: Option<String>,
    user_role: Option<String>,
    models: Option<Vec<String>>,
    max_budget: Option<f64>,
    budget_duration: Option<String>,
    teams: Option<Vec<String>>,
    metadata: Option<Value>,
    /// With `sso_user_id`: the identity that may sign into the account (pre-binding).
    sso_issuer: Option<String>,
    sso_user_id: Option<String>,
}

/// The binding an administrator gives an account: `sso_issuer` and `sso_user_id` together
/// (the issuer is the OIDC issuer, the provider's authorization endpoint without discovery,
/// or `oauth-proxy` for header sign-ins), or neither.
fn requested_binding(
    issuer: Option<String>,
    subject: Option<String>,
) -> Result<Option<(String, String)>, ApiError> {
    match (issuer, subject) {
        (None, None) => Ok(None),
        (Some(issuer), Some(subject)) => {
            check_id("sso_issuer", &issuer)?;
            check_id("sso_user_id", &subject)?;
            Ok(Some((issuer, subject)))
        }
        _ => Err(ApiError::bad_request(
            "sso_issuer and sso_user_id link an account to a sign-in identity together: give \
             both or neither",
        )),
    }
}

/// Refuses a binding another user already has.
async fn check_binding_free(
    db: &Db,
    user_id: &str,
    binding: Option<&(String, String)>,
) -> Result<(), ApiError> {
    let Some((issuer, subject)) = binding else { return Ok(()) };
    let holder = binding_holder(db, user_id, issuer, subject).await?;
    binding_free(holder, issuer, subject)
}

/// Refuses a binding held by `holder`.
fn binding_free(holder: Option<String>, issuer: &str, subject: &str) -> Result<(), ApiError> {
    match holder {
        Some(other) => Err(ApiError::conflict(format!(
            "sso_user_id {subject:?} of sso_issuer {issuer:?} is already linked to the user \
             {other:?}"
        ))),
        None => Ok(()),
    }
}

/// The user other than `user_id` that is bound to (`issuer`, `subject`), if any.
pub(super) async fn binding_holder(
    db: &Db,
    user_id: &str,
    issuer: &str,
    subject: &str,
) -> Result<Option<String>, crate::db::Error> {
    let holder = db.user_by_binding(issuer, subject).await?;
    Ok(holder.map(|other| other.user_id).filter(|other| other != user_id))
}

async fn user_new(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Body<NewUserRequest>, ApiError>,
) -> Reply {
    caller.require_admin()?;
    let Body(request) = body?;
    let user_id = request.user_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    check_id("user_id", &user_id)?;
    let role = match request.user_role.as_deref() {
        Some(role) => parse_role(role)?,
        None => UserRole::InternalUserViewer,
    };
    check_budget("max_budget", request.max_budget)?;
    let duration = parse_duration(request.budget_duration.as_deref())?;
    let metadata = match request.metadata {
        None => json!({}),
        Some(Value::Object(map)) => Value::Object(map),
        Some(_) => {
            return Err(ApiError::bad_request("metadata must be a JSON object"));
        }
    };
    let teams = request.teams.unwrap_or_default();
    check_id_count("teams", teams.len())?;
    let binding = requested_binding(request.sso_issuer, request.sso_user_id)?;
    let email = request.user_email.map(|email| email.trim().to_owned()).filter(|e| !e.is_empty());
    let new = db::NewUser {
        user_id: user_id.clone(),
        user_email: email,
        user_alias: request.user_alias,
        role,
        models: request.models.unwrap_or_default(),
        max_budget: request.max_budget,
        budget_duration: duration,
        binding: binding.map(|(issuer, subject)| Binding { issuer, subject }),
        metadata,
    };
    let memberships = teams.clone();
    let row = state
        .db()
        .write(move |tx| {
            if let Some(Binding { issuer, subject }) = &new.binding {
                let holder = tx.user_by_binding(issuer, subject)?.map(|other| other.user_id);
                binding_free(holder.filter(|other| *other != new.user_id), issuer, subject)?;
            }
            let existing = tx.existing_teams(&memberships)?;
            if let Some(missing) = memberships.iter().find(|team| !existing.contains(team)) {
                return Err(ApiError::bad_request(format!("teams: there is no team {missing:?}")));
            }
            let user_id = new.user_id.clone();
            if !tx.insert_user_if_absent(new, db::now())? {
                return Err(ApiError::conflict(format!(
                    "a user with id {user_id:?} already exists"
                )));
            }
            for team_id in &memberships {
                tx.add_member_if_absent(team_id, &user_id, TeamRole::User.as_str())?;
            }
            tx.user_by_id(&user_id)?.ok_or_else(|| gone_meanwhile("user"))
        })
        .await?;
    Ok(Json(user_json(&row, &teams)))
}

#[derive(Debug, Deserialize)]
struct UpdateUserRequest {
    user_id: String,
    user_email: Option<String>,
    user_alias: Option<String>,
    user_role: Option<String>,
    models: Option<Vec<String>>,
    #[serde(default, deserialize_with = "explicit_null")]
    max_budget: Option<Option<f64>>,
    #[serde(default, deserialize_with = "explicit_null")]
    budget_duration: Option<Option<String>>,
    spend: Option<f64>,
    metadata: Option<Value>,
    #[serde(default, deserialize_with = "explicit_null")]
    sso_issuer: Option<Option<String>>,
    #[serde(default, deserialize_with = "explicit_null")]
    sso_user_id: Option<Option<String>>,
}

/// Tells a missing field (`None`) from an explicit `null` (`Some(None)`).
fn explicit_null<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

async fn user_update(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Body<UpdateUserRequest>, ApiError>,
) -> Reply {
    caller.require_admin()?;
    let Body(request) = body?;
    let role = request.user_role.as_deref().map(parse_role).transpose()?;
    if let Some(budget) = request.max_budget {
        check_budget("max_budget", budget)?;
    }
    check_budget("spend", request.spend)?;
    let duration = match &request.budget_duration {
        Some(text) => Some(parse_duration(text.as_deref())?),
        None => None,
    };
    if request.metadata.as_ref().is_some_and(|m| !m.is_object()) {
        return Err(ApiError::bad_request("metadata must be a JSON object"));
    }
    // Both given: link (null and null: unlink); neither: as it is.
    let binding = match (request.sso_issuer, request.sso_user_id) {
        (None, None) => None,
        (Some(None), Some(None)) => Some(None),
        (issuer, subject) => {
            Some(requested_binding(issuer.flatten(), subject.flatten()).and_then(|binding| {
                binding.map(Some).ok_or_else(|| {
                    ApiError::bad_request(
                        "sso_issuer and sso_user_id: give both to link, both null to unlink",
                    )
                })
            })?)
        }
    };
    if let Some(binding) = &binding {
        check_binding_free(state.db(), &request.user_id, binding.as_ref()).await?;
    }
    let edit = db::UserEdit {
        user_email: request.user_email,
        user_alias: request.user_alias,
        user_role: role,
        models: request.models,
        max_budget: request.max_budget,
        budget_duration: duration,
        spend: request.spend,
        metadata: request.metadata,
        binding: binding
            .map(|binding| binding.map(|(issuer, subject)| Binding { issuer, subject })),
    };
    // In front of LiteLLM the change reaches LiteLLM's user first (a refusal changes nothing).
    let row = state.signin().access().edit_user(&request.user_id, edit).await?;
    let teams = state.db().team_ids_of_user(&row.user_id).await?;
    tracing::info!(user_id = %row.user_id, "user updated through the API");
    Ok(Json(user_json(&row, &teams)))
}

#[derive(Debug, Deserialize)]
struct UserListQuery {
    page: Option<u64>,
    page_size: Option<u64>,
    role: Option<String>,
    user_ids: Option<String>,
    user_email: Option<String>,
}

async fn user_list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<UserListQuery>, axum::extract::rejection::QueryRejection>,
) -> Reply {
    caller.require_admin()?;
    let Query(query) = query.map_err(|rejection| ApiError::bad_request(rejection.body_text()))?;
    let page = check_page(query.page)?;
    let page_size = query.page_size.unwrap_or(25).clamp(1, 100);
    if let Some(role) = &query.role {
        parse_role(role)?;
    }
    let user_ids: Option<Vec<String>> = query.user_ids.map(|ids| {
        ids.split(',').map(|id| id.trim().to_owned()).filter(|id| !id.is_empty()).collect()
    });
    if let Some(ids) = &user_ids {
        check_id_count("user_ids", ids.len())?;
    }
    let filter = db::UserFilter {
        user_ids,
        role: query.role,
        email_contains: query.user_email.filter(|email| !email.is_empty()),
    };
    let db = state.db();
    let (rows, total) = db.list_users(&filter, page, page_size).await?;
    let mut users = Vec::with_capacity(rows.len());
    for row in &rows {
        let teams = db.team_ids_of_user(&row.user_id).await?;
        users.push(user_json(row, &teams));
    }
    Ok(Json(json!({
        "users": users,
        "total": total,
        "page": page,
        "page_size": page_size,
        "total_pages": total.div_ceil(page_size),
    })))
}

#[derive(Debug, Deserialize)]
struct DeleteUsersRequest {
    user_ids: Vec<String>,
}

async fn user_delete(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Body<DeleteUsersRequest>, ApiError>,
) -> Reply {
    caller.require_admin()?;
    let Body(request) = body?;
    if request.user_ids.is_empty() {
        return Err(ApiError::bad_request("user_ids must list at least one user"));
    }
    check_id_count("user_ids", request.user_ids.len())?;
    // In front of LiteLLM their session keys are deleted there first.
    let deleted = state.signin().access().delete_users(&request.user_ids).await?;
    tracing::info!(?deleted, "users deleted through the API");
    Ok(Json(json!({"deleted_user_ids": deleted})))
}

#[derive(Debug, Deserialize)]
struct RevokeRequest {
    user_id: String,
}

/// `POST /session/revoke {"user_id": …}`: signs a user out everywhere (every live session key
/// of theirs stops working at once, in LiteLLM too in front of it), also for an id whose user
/// row is gone. For the master key and proxy admins.
async fn session_revoke(
    State(state): State<AppState>,
    caller: Caller,
    body: Result<Body<RevokeRequest>, ApiError>,
) -> Reply {
    caller.require_admin()?;
    let Body(request) = body?;
    check_id("user_id", &request.user_id)?;
    let revoked = state.signin().access().revoke_sessions(&request.user_id).await?;
    tracing::info!(user_id = %request.user_id, revoked, "sessions revoked by an admin");
    Ok(Json(json!({"user_id": request.user_id, "revoked_sessions": revoked})))
}
