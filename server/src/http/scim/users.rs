//! `/scim/v2/Users`: SCIM users are hookgate's users.
//!
//! - `id` is the user id, fixed when the user is made; `userName` is kept as sent, and a user
//!   SCIM never wrote has its user id as its `userName`.
//! - A new user's id is its `userName`, exactly as sent (it must be a storable id, not a
//!   reserved one, and not taken).
//! - `emails`: the primary one (else the `work` one, else the first) is the user's email; the
//!   list is kept as sent. `displayName` (else `name.formatted`, else given and family names)
//!   is the user's alias. `externalId` and `name` are kept.
//! - The password login's account (`default_user_id`) is not shown to SCIM and cannot be made
//!   through it.
//! - `active: false` (a PUT or a PATCH) and DELETE deprovision: in front of LiteLLM the user's
//!   keys and team memberships there go first; then, in one transaction, the row is marked (or
//!   deleted) and every session revoked, before the answer.

use std::collections::HashMap;

use axum::{
    body::Body,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value, json};

use super::{
    ListQuery, ScimError, base,
    filter::get_ci,
    meta, patch, read_object,
    schemas::{USER_ATTRS, USER_SCHEMA},
    scim_json,
};
use crate::{
    db::{self, entity::user},
    http::AppState,
};

/// The longest text kept in a SCIM attribute other than `userName` (an id's limit).
const MAX_TEXT: usize = 1024;

/// A user as SCIM shows it.
pub(super) fn resource(row: &user::Model, base: &str) -> Value {
    let scim = row.scim.clone().unwrap_or(Value::Null);
    let text = |key: &str| scim.get(key).and_then(Value::as_str).map(str::to_owned);
    let mut out = json!({
        "schemas": [USER_SCHEMA],
        "id": row.user_id,
        "userName": text("userName").unwrap_or_else(|| row.user_id.clone()),
        "active": row.active,
        "meta": meta("User", format!("{base}/Users/{}", row.user_id), row.created_at, row.updated_at),
    });
    if let Some(external) = text("externalId") {
        out["externalId"] = json!(external);
    }
    if let Some(name) = scim.get("name").filter(|name| name.is_object()) {
        out["name"] = name.clone();
    }
    if let Some(alias) = &row.user_alias {
        out["displayName"] = json!(alias);
    }
    // The list as sent while its primary email is still the user's; else the user's email.
    let kept = scim
        .get("emails")
        .and_then(Value::as_array)
        .filter(|emails| primary_email(emails).map(|email| email.to_lowercase()) == row.user_email);
    match (kept, &row.user_email) {
        (Some(emails), _) if !emails.is_empty() => out["emails"] = Value::Array(emails.clone()),
        (_, Some(email)) => {
            out["emails"] = json!([{"value": email, "type": "work", "primary": true}])
        }
        _ => {}
    }
    out
}

/// The email that becomes the user's: the primary one, else the `work` one, else the first.
fn primary_email(emails: &[Value]) -> Option<&str> {
    emails
        .iter()
        .find(|email| get_ci(email, "primary").is_some_and(|p| truth(p) == Some(true)))
        .or_else(|| {
            emails
                .iter()
                .find(|email| get_ci(email, "type").and_then(Value::as_str) == Some("work"))
        })
        .or_else(|| emails.first())
        .and_then(|email| get_ci(email, "value"))
        .and_then(Value::as_str)
}

/// A boolean, or Entra's `"True"`/`"False"`.
pub(super) fn truth(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(text) if text.eq_ignore_ascii_case("true") => Some(true),
        Value::String(text) if text.eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// A string attribute, at most `max` characters (`None` when absent or null).
pub(super) fn text_of(body: &Value, name: &str, max: usize) -> Result<Option<String>, ScimError> {
    match get_ci(body, name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text))
            if text.chars().count() <= max && !text.chars().any(char::is_control) =>
        {
            Ok(Some(text.clone()))
        }
        Some(Value::String(_)) => Err(ScimError::bad(
            "invalidValue",
            format!("{name} must be at most {max} characters without control characters"),
        )),
        Some(_) => Err(ScimError::bad("invalidValue", format!("{name} must be a string"))),
    }
}

/// What a User body sets: its `userName` and the user's fields.
fn fields_of(body: &Value) -> Result<(String, db::ScimUser), ScimError> {
    let user_name = text_of(body, "userName", hookgate_core::ids::MAX_ID)?
        .filter(|name| !name.trim().is_empty())
        .ok_or_else(|| ScimError::bad("invalidValue", "userName is required"))?;
    let external_id = text_of(body, "externalId", MAX_TEXT)?;
    let display_name = text_of(body, "displayName", MAX_TEXT)?;
    let name = match get_ci(body, "name") {
        None | Some(Value::Null) => None,
        Some(Value::Object(given)) => {
            let mut kept = Map::new();
            for (key, value) in given {
                let attr = super::schemas::find(USER_ATTRS, "name").expect("name is an attribute");
                let Some(sub) = super::schemas::find_sub(&attr, key) else { continue };
                if let Some(text) = text_of(&json!({ sub: value }), sub, MAX_TEXT)? {
                    kept.insert(sub.to_owned(), json!(text));
                }
            }
            Some(Value::Object(kept))
        }
        Some(_) => return Err(ScimError::bad("invalidValue", "name must be an object")),
    };
    let emails = match get_ci(body, "emails") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut kept = Vec::new();
            for item in items {
                let Some(value) = text_of(item, "value", MAX_TEXT)? else {
                    return Err(ScimError::bad("invalidValue", "each of emails needs a value"));
                };
                if !hookgate_core::ids::is_plausible_email(&value) {
                    return Err(ScimError::bad(
                        "invalidValue",
                        format!(
                            "emails: {} is not an email address",
                            hookgate_core::ids::shown(&value)
                        ),
                    ));
                }
                let mut email = json!({"value": value});
                if let Some(kind) = text_of(item, "type", 64)? {
                    email["type"] = json!(kind);
                }
                if let Some(primary) = get_ci(item, "primary").and_then(truth) {
                    email["primary"] = json!(primary);
                }
                if let Some(display) = text_of(item, "display", MAX_TEXT)? {
                    email["display"] = json!(display);
                }
                kept.push(email);
            }
            kept
        }
        Some(_) => return Err(ScimError::bad("invalidValue", "emails must be a list")),
    };
    let active = match get_ci(body, "active") {
        None | Some(Value::Null) => true,
        Some(value) => truth(value)
            .ok_or_else(|| ScimError::bad("invalidValue", "active must be true or false"))?,
    };
    let from_name = |name: &Value| {
        let part =
            |key: &str| name.get(key).and_then(Value::as_str).filter(|s| !s.trim().is_empty());
        part("formatted").map(str::to_owned).or_else(|| {
            let joined = [part("givenName"), part("familyName")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            (!joined.is_empty()).then_some(joined)
        })
    };
    let user_alias =
        display_name.filter(|d| !d.trim().is_empty()).or_else(|| name.as_ref().and_then(from_name));
    let user_email = primary_email(&emails).and_then(hookgate_core::ids::normalise_email);
    let mut scim = json!({"userName": user_name});
    if let Some(external_id) = external_id {
        scim["externalId"] = json!(external_id);
    }
    if let Some(name) = name {
        scim["name"] = name;
    }
    if !emails.is_empty() {
        scim["emails"] = Value::Array(emails);
    }
    Ok((user_name, db::ScimUser { user_email, user_alias, active, scim }))
}

/// Refuses a `userName` another user has (any case), or that is another user's id.
fn check_unique(
    users: &[user::Model],
    user_name: &str,
    own_id: Option<&str>,
    base: &str,
) -> Result<(), ScimError> {
    let taken = users.iter().filter(|row| Some(row.user_id.as_str()) != own_id).any(|row| {
        row.user_id.eq_ignore_ascii_case(user_name)
            || resource(row, base)["userName"]
                .as_str()
                .is_some_and(|name| name.eq_ignore_ascii_case(user_name))
    });
    if taken {
        return Err(ScimError::new(
            StatusCode::CONFLICT,
            Some("uniqueness"),
            format!("userName {} is taken", hookgate_core::ids::shown(user_name)),
        ));
    }
    Ok(())
}

pub(super) async fn list(
    State(state): State<AppState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ScimError> {
    answer(&state, ListQuery::of(&query)?).await
}

/// `POST /Users/.search`.
pub(super) async fn search(
    State(state): State<AppState>,
    body: Body,
) -> Result<Response, ScimError> {
    answer(&state, ListQuery::of_search(body).await?).await
}

async fn answer(state: &AppState, list: ListQuery) -> Result<Response, ScimError> {
    let filter = list.parsed(USER_ATTRS)?;
    let base = base(state.config());
    let rows = state.db().all_users().await?;
    let shown = rows.iter().filter(|row| !is_reserved(&row.user_id));
    Ok(list.answer(filter.as_ref(), shown.map(|row| resource(row, &base)).collect()))
}

pub(super) async fn get_one(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ScimError> {
    let projection = ListQuery::projection(&query)?;
    let row = found(&state, &id).await?;
    Ok(scim_json(StatusCode::OK, &projection.project(resource(&row, &base(state.config())))))
}

/// The user with this id; the password login's own account (`default_user_id`) is no
/// identity provider's and is never shown to SCIM.
async fn found(state: &AppState, id: &str) -> Result<user::Model, ScimError> {
    state
        .db()
        .user_by_id(id)
        .await?
        .filter(|row| !is_reserved(&row.user_id))
        .ok_or_else(|| ScimError::not_found("user", id))
}

fn is_reserved(user_id: &str) -> bool {
    hookgate_core::signin::RESERVED_USER_IDS.contains(&user_id)
}

pub(super) async fn create(
    State(state): State<AppState>,
    body: Body,
) -> Result<Response, ScimError> {
    let body = read_object(body).await?;
    let (user_name, fields) = fields_of(&body)?;
    if let Some(problem) = hookgate_core::ids::id_problem("userName", &user_name) {
        return Err(ScimError::bad("invalidValue", problem));
    }
    if is_reserved(&user_name) {
        return Err(ScimError::bad("invalidValue", format!("userName {user_name:?} is reserved")));
    }
    let base = base(state.config());
    let checked_base = base.clone();
    let saved = state
        .db()
        .write(move |tx| {
            check_unique(&tx.all_users()?, &user_name, None, &checked_base)?;
            Ok::<_, ScimError>(tx.insert_scim_user(&user_name, fields, db::now())?)
        })
        .await?;
    tracing::info!(user_id = %saved.user_id, "scim: user created");
    Ok(created(resource(&saved, &base)))
}

/// A 201 with the resource and its `Location`.
pub(super) fn created(resource: Value) -> Response {
    let location = resource["meta"]["location"].as_str().unwrap_or_default().to_owned();
    let mut response = scim_json(StatusCode::CREATED, &resource);
    if let Ok(value) = axum::http::HeaderValue::from_str(&location) {
        response.headers_mut().insert(axum::http::header::LOCATION, value);
    }
    response
}

pub(super) async fn replace(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ScimError> {
    let body = read_object(body).await?;
    let row = found(&state, &id).await?;
    save(&state, row, &body).await
}

pub(super) async fn patch(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ScimError> {
    let body = read_object(body).await?;
    let row = found(&state, &id).await?;
    let mut current = resource(&row, &base(state.config()));
    patch::apply(&mut current, &body, USER_ATTRS)?;
    save(&state, row, &current).await
}

/// Saves a User body over `row`; deprovisions first when it is inactive.
async fn save(state: &AppState, row: user::Model, body: &Value) -> Result<Response, ScimError> {
    let (user_name, fields) = fields_of(body)?;
    let base = base(state.config());
    // Checked before LiteLLM is touched, and again in the transaction.
    check_unique(&state.db().all_users().await?, &user_name, Some(&row.user_id), &base)?;
    if !fields.active {
        state.signin().access().deprovision(&row).await?;
    }
    let was_active = row.active;
    let checked_base = base.clone();
    let saved = state
        .db()
        .write(move |tx| {
            check_unique(&tx.all_users()?, &user_name, Some(&row.user_id), &checked_base)?;
            let saved = tx.update_scim_user(row, fields, db::now())?;
            if !saved.active {
                tx.revoke_user_sessions(&saved.user_id)?;
            }
            Ok::<_, ScimError>(saved)
        })
        .await?;
    if was_active != saved.active {
        tracing::info!(user_id = %saved.user_id, active = saved.active, "scim: user (de)activated");
    }
    Ok(scim_json(StatusCode::OK, &resource(&saved, &base)))
}

pub(super) async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    let row = found(&state, &id).await?;
    state.signin().access().deprovision(&row).await?;
    let user_ids = vec![row.user_id.clone()];
    state.db().write(move |tx| tx.delete_users(&user_ids)).await?;
    tracing::info!(user_id = %row.user_id, "scim: user deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}
