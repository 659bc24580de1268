//! Users: creating (every row the server creates is built by [`new_user_row`]), reading by id or
//! binding, listing, administrators' edits, and deleting with their memberships and sessions.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, sea_query::OnConflict,
};

use super::{json_list, now, sign_in::account_of};
use crate::entity::{session, team_member, user};
use crate::types::{NewUser, UserEdit, UserFilter};

/// A new user row (spend 0, the budget's first reset computed, timestamps `now`); every user the
/// server creates, at sign-in or through the API, is built here.
#[allow(clippy::too_many_arguments)]
pub(crate) fn new_user_row(
    user_id: String,
    user_email: Option<String>,
    user_alias: Option<String>,
    role: plugin_api::UserRole,
    models: &[String],
    max_budget: Option<f64>,
    budget_duration: Option<hookgate_core::budget::BudgetDuration>,
    binding: Option<(String, String)>,
    metadata: serde_json::Value,
    now: DateTime<Utc>,
) -> user::ActiveModel {
    let (sso_issuer, sso_user_id) = binding.unzip();
    user::ActiveModel {
        user_id: Set(user_id),
        user_email: Set(user_email.map(|email| email.to_lowercase())),
        user_alias: Set(user_alias),
        user_role: Set(Some(role.as_str().to_owned())),
        sso_user_id: Set(sso_user_id),
        sso_issuer: Set(sso_issuer),
        models: Set(json_list(models)),
        max_budget: Set(max_budget),
        spend: Set(0.0),
        budget_duration: Set(budget_duration.map(|d| d.to_string())),
        budget_reset_at: Set(hookgate_core::budget::period_end(budget_duration, now)),
        metadata: Set(metadata),
        created_at: Set(now),
        updated_at: Set(now),
        active: Set(true),
        scim: Set(None),
        scim_external_id: Set(None),
    }
}

/// The user with this id.
pub(crate) async fn user_by_id<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
) -> Result<Option<user::Model>, DbErr> {
    user::Entity::find_by_id(user_id.to_owned()).one(conn).await
}

/// The user bound to this identity, (issuer, subject), if any: a binding is unique as the pair
/// (the same subject from another issuer is another identity).
pub(crate) async fn user_by_binding<C: ConnectionTrait>(
    conn: &C,
    issuer: &str,
    subject: &str,
) -> Result<Option<user::Model>, DbErr> {
    user::Entity::find()
        .filter(user::Column::SsoIssuer.eq(issuer))
        .filter(user::Column::SsoUserId.eq(subject))
        .one(conn)
        .await
}

/// Creates `user_id` as an `internal_user` with no email, budget or models, unless a user with
/// that id exists: what LiteLLM's `add_new_member` does for a team member who is not a user yet.
/// `created_by` goes into the row's metadata.
pub(crate) async fn ensure_member_user<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
    created_by: &str,
) -> Result<(), DbErr> {
    insert_user_if_absent(conn, member_user_row(user_id, created_by, now())).await.map(|_| ())
}

/// The row of a team member who is not a user yet: an `internal_user` with no email, budget or
/// models, `created_by` in its metadata.
pub(crate) fn member_user_row(
    user_id: &str,
    created_by: &str,
    now: DateTime<Utc>,
) -> user::ActiveModel {
    new_user_row(
        user_id.to_owned(),
        None,
        None,
        plugin_api::UserRole::InternalUser,
        &[],
        None,
        None,
        None,
        serde_json::json!({"created_by": created_by}),
        now,
    )
}

/// Creates the user an administrator asked for unless its id or binding is taken; returns
/// whether it did.
pub(crate) async fn insert_new_user<C: ConnectionTrait>(
    conn: &C,
    new: NewUser,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let row = new_user_row(
        new.user_id,
        new.user_email,
        new.user_alias,
        new.role,
        &new.models,
        new.max_budget,
        new.budget_duration,
        new.binding.map(|binding| (binding.issuer, binding.subject)),
        new.metadata,
        now,
    );
    insert_user_if_absent(conn, row).await
}

/// Inserts a user unless any unique key (id or identity-provider id) is taken; returns whether
/// it inserted.
pub(crate) async fn insert_user_if_absent<C: ConnectionTrait>(
    conn: &C,
    row: user::ActiveModel,
) -> Result<bool, DbErr> {
    let result = user::Entity::insert(row)
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .try_insert()
        .exec_without_returning(conn)
        .await?;
    Ok(matches!(result, sea_orm::TryInsertResult::Inserted(n) if n > 0))
}

/// A page of users (1-based page) and the total count.
pub(crate) async fn list_users<C: ConnectionTrait>(
    conn: &C,
    filter: &UserFilter,
    page: u64,
    page_size: u64,
) -> Result<(Vec<user::Model>, u64), DbErr> {
    let mut query = user::Entity::find();
    if let Some(ids) = &filter.user_ids {
        query = query.filter(user::Column::UserId.is_in(ids.iter().cloned()));
    }
    if let Some(role) = &filter.role {
        query = query.filter(user::Column::UserRole.eq(role.as_str()));
    }
    if let Some(email) = &filter.email_contains {
        query = query.filter(user::Column::UserEmail.contains(email.to_lowercase()));
    }
    let total = query.clone().count(conn).await?;
    let users = query
        .order_by_asc(user::Column::CreatedAt)
        .order_by_asc(user::Column::UserId)
        .offset((page.saturating_sub(1)) * page_size)
        .limit(page_size)
        .all(conn)
        .await?;
    Ok((users, total))
}

/// Deletes users (their memberships and sessions go with them); returns the ids deleted.
pub(crate) async fn delete_users<C: ConnectionTrait>(
    conn: &C,
    user_ids: &[String],
) -> Result<Vec<String>, DbErr> {
    let existing: Vec<String> = user::Entity::find()
        .filter(user::Column::UserId.is_in(user_ids.iter().cloned()))
        .all(conn)
        .await?
        .into_iter()
        .map(|user| user.user_id)
        .collect();
    if existing.is_empty() {
        return Ok(existing);
    }
    // Explicit deletes: SQLite enforces the cascades only with foreign_keys on, which a
    // connection made elsewhere (a test, an operator's shell) may not have.
    team_member::Entity::delete_many()
        .filter(team_member::Column::UserId.is_in(existing.iter().cloned()))
        .exec(conn)
        .await?;
    session::Entity::delete_many()
        .filter(session::Column::UserId.is_in(existing.iter().cloned()))
        .exec(conn)
        .await?;
    user::Entity::delete_many()
        .filter(user::Column::UserId.is_in(existing.iter().cloned()))
        .exec(conn)
        .await?;
    Ok(existing)
}

/// Applies an administrator's edit ([`hookgate_core::admin::edited`] decides the values);
/// returns the user as saved, or `None` when there is none. Only the columns the edit changes
/// are written (a stored value the rules cannot read is left as it is unless replaced).
pub(crate) async fn edit_user<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
    edit: UserEdit,
    now: DateTime<Utc>,
) -> Result<Option<user::Model>, DbErr> {
    use sea_orm::IntoActiveModel;
    let Some(row) = user_by_id(conn, user_id).await? else { return Ok(None) };
    let before = account_of(row.clone());
    let after = hookgate_core::admin::edited(&before, &edit, now);
    let mut changes = row.into_active_model();
    if after.user_email != before.user_email {
        changes.user_email = Set(after.user_email);
    }
    if after.user_alias != before.user_alias {
        changes.user_alias = Set(after.user_alias);
    }
    if after.user_role != before.user_role {
        changes.user_role = Set(after.user_role.map(|role| role.as_str().to_owned()));
    }
    if after.models != before.models {
        changes.models = Set(json_list(&after.models));
    }
    if after.max_budget != before.max_budget {
        changes.max_budget = Set(after.max_budget);
    }
    if after.budget_duration != before.budget_duration {
        changes.budget_duration = Set(after.budget_duration.map(|d| d.to_string()));
    }
    if after.budget_reset_at != before.budget_reset_at {
        changes.budget_reset_at = Set(after.budget_reset_at);
    }
    if after.spend != before.spend {
        changes.spend = Set(after.spend);
    }
    if after.binding != before.binding {
        let (issuer, subject) = after.binding.map(|b| (b.issuer, b.subject)).unzip();
        changes.sso_issuer = Set(issuer);
        changes.sso_user_id = Set(subject);
    }
    if let Some(metadata) = edit.metadata {
        changes.metadata = Set(metadata);
    }
    changes.updated_at = Set(after.updated_at);
    update_user(conn, changes).await.map(Some)
}

/// Saves changes to a user.
pub(crate) async fn update_user<C: ConnectionTrait>(
    conn: &C,
    row: user::ActiveModel,
) -> Result<user::Model, DbErr> {
    row.update(conn).await
}
