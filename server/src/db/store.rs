//! Queries, each a function over any connection or transaction.

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, sea_query::OnConflict,
};

use super::entity::{completed_oidc_flow, session, sign_in_event, team, team_member, user};

/// Now, at the precision every backend stores (microseconds).
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A JSON array of strings.
pub fn json_list(items: &[String]) -> serde_json::Value {
    serde_json::Value::Array(items.iter().cloned().map(serde_json::Value::String).collect())
}

/// The strings of a JSON array (anything else reads as empty).
pub fn list_of(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(|item| item.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// A new user row (spend 0, the budget's first reset computed, timestamps `now`); every user the
/// server creates, at sign-in or through the API, is built here.
#[allow(clippy::too_many_arguments)]
pub fn new_user_row(
    user_id: String,
    user_email: Option<String>,
    user_alias: Option<String>,
    role: plugin_api::UserRole,
    models: &[String],
    max_budget: Option<f64>,
    budget_duration: Option<crate::budget::BudgetDuration>,
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
        budget_reset_at: Set(crate::budget::period_end(budget_duration, now)),
        metadata: Set(metadata),
        created_at: Set(now),
        updated_at: Set(now),
    }
}

/// The user with this id.
pub async fn user_by_id<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
) -> Result<Option<user::Model>, DbErr> {
    user::Entity::find_by_id(user_id.to_owned()).one(conn).await
}

/// The user bound to this identity, (issuer, subject), if any: a binding is unique as the pair
/// (the same subject from another issuer is another identity).
pub async fn user_by_binding<C: ConnectionTrait>(
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
pub async fn ensure_member_user<C: ConnectionTrait>(
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

/// Inserts a user unless any unique key (id or identity-provider id) is taken; returns whether
/// it inserted.
pub async fn insert_user_if_absent<C: ConnectionTrait>(
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

/// The teams with these ids that exist, in the order asked.
pub async fn existing_teams<C: ConnectionTrait>(
    conn: &C,
    team_ids: &[String],
) -> Result<Vec<String>, DbErr> {
    if team_ids.is_empty() {
        return Ok(Vec::new());
    }
    let found: Vec<String> = team::Entity::find()
        .filter(team::Column::TeamId.is_in(team_ids.iter().cloned()))
        .all(conn)
        .await?
        .into_iter()
        .map(|team| team.team_id)
        .collect();
    Ok(team_ids.iter().filter(|id| found.contains(id)).cloned().collect())
}

/// The team with this id.
pub async fn team_by_id<C: ConnectionTrait>(
    conn: &C,
    team_id: &str,
) -> Result<Option<team::Model>, DbErr> {
    team::Entity::find_by_id(team_id.to_owned()).one(conn).await
}

fn member_row(team_id: &str, user_id: &str, role: &str) -> team_member::ActiveModel {
    team_member::ActiveModel {
        team_id: Set(team_id.to_owned()),
        user_id: Set(user_id.to_owned()),
        role: Set(role.to_owned()),
        created_at: Set(now()),
    }
}

/// Adds a member, or sets the role of an existing one.
pub async fn upsert_member<C: ConnectionTrait>(
    conn: &C,
    team_id: &str,
    user_id: &str,
    role: &str,
) -> Result<(), DbErr> {
    team_member::Entity::insert(member_row(team_id, user_id, role))
        .on_conflict(
            OnConflict::columns([team_member::Column::TeamId, team_member::Column::UserId])
                .update_column(team_member::Column::Role)
                .to_owned(),
        )
        .exec_without_returning(conn)
        .await
        .map(|_| ())
}

/// Adds a member unless already there (keeping the existing role).
pub async fn add_member_if_absent<C: ConnectionTrait>(
    conn: &C,
    team_id: &str,
    user_id: &str,
    role: &str,
) -> Result<(), DbErr> {
    team_member::Entity::insert(member_row(team_id, user_id, role))
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .try_insert()
        .exec_without_returning(conn)
        .await
        .map(|_| ())
}

/// Removes a member; returns whether there was one.
pub async fn delete_member<C: ConnectionTrait>(
    conn: &C,
    team_id: &str,
    user_id: &str,
) -> Result<bool, DbErr> {
    let result = team_member::Entity::delete_many()
        .filter(team_member::Column::TeamId.eq(team_id))
        .filter(team_member::Column::UserId.eq(user_id))
        .exec(conn)
        .await?;
    Ok(result.rows_affected > 0)
}

/// The ids of the teams a user is in, in joining order.
pub async fn teams_of_user<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
) -> Result<Vec<String>, DbErr> {
    Ok(team_member::Entity::find()
        .filter(team_member::Column::UserId.eq(user_id))
        .order_by_asc(team_member::Column::CreatedAt)
        .order_by_asc(team_member::Column::TeamId)
        .all(conn)
        .await?
        .into_iter()
        .map(|member| member.team_id)
        .collect())
}

/// The teams a user is in, in joining order, read in one statement.
pub async fn teams_of_user_with_info<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
) -> Result<Vec<team::Model>, DbErr> {
    Ok(teams_of_user_query(user_id)
        .all(conn)
        .await?
        .into_iter()
        .filter_map(|(_, team)| team)
        .collect())
}

/// [`teams_of_user_with_info`]'s statement (membership columns prefixed `A_`, team `B_`).
pub(super) fn teams_of_user_query(
    user_id: &str,
) -> sea_orm::SelectTwo<team_member::Entity, team::Entity> {
    team_member::Entity::find()
        .filter(team_member::Column::UserId.eq(user_id))
        .order_by_asc(team_member::Column::CreatedAt)
        .order_by_asc(team_member::Column::TeamId)
        .find_also_related(team::Entity)
}

/// A team's members, in joining order.
pub async fn members_of_team<C: ConnectionTrait>(
    conn: &C,
    team_id: &str,
) -> Result<Vec<team_member::Model>, DbErr> {
    team_member::Entity::find()
        .filter(team_member::Column::TeamId.eq(team_id))
        .order_by_asc(team_member::Column::CreatedAt)
        .order_by_asc(team_member::Column::UserId)
        .all(conn)
        .await
}

/// Records a session.
pub async fn insert_session<C: ConnectionTrait>(
    conn: &C,
    row: session::ActiveModel,
) -> Result<(), DbErr> {
    session::Entity::insert(row).exec_without_returning(conn).await.map(|_| ())
}

/// The live session with this key hash and its user as stored now: authorisation reads the
/// user's current role, never the one the session was issued with.
pub async fn live_session_user<C: ConnectionTrait>(
    conn: &C,
    token_hash: &str,
) -> Result<Option<(session::Model, user::Model)>, DbErr> {
    let found = live_session_user_query(token_hash).one(conn).await?;
    Ok(found.and_then(|(session, user)| user.map(|user| (session, user))))
}

/// [`live_session_user`]'s statement (its columns are the session's prefixed `A_` and the
/// user's `B_`).
pub(super) fn live_session_user_query(
    token_hash: &str,
) -> sea_orm::SelectTwo<session::Entity, user::Entity> {
    session::Entity::find_by_id(token_hash.to_owned())
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now()))
        .find_also_related(user::Entity)
}

/// The hashes of a user's live sessions.
pub async fn live_session_hashes<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
) -> Result<Vec<String>, DbErr> {
    use sea_orm::QuerySelect;
    session::Entity::find()
        .select_only()
        .column(session::Column::TokenHash)
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now()))
        .into_tuple()
        .all(conn)
        .await
}

/// How many sessions are live (neither expired nor revoked), over all users.
pub async fn count_live_sessions<C: ConnectionTrait>(conn: &C) -> Result<u64, DbErr> {
    use sea_orm::PaginatorTrait;
    session::Entity::find()
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now()))
        .count(conn)
        .await
}

/// Revokes every live session of a user; returns how many there were.
pub async fn revoke_user_sessions<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
) -> Result<u64, DbErr> {
    let result = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, sea_orm::sea_query::Expr::value(now()))
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::RevokedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now()))
        .exec(conn)
        .await?;
    Ok(result.rows_affected)
}

/// Deletes sessions that expired or were revoked before `before`, and sign-in events and
/// completed OIDC flows older than `events_before`; returns (sessions, events) deleted.
pub async fn prune<C: ConnectionTrait>(
    conn: &C,
    before: DateTime<Utc>,
    events_before: DateTime<Utc>,
) -> Result<(u64, u64), DbErr> {
    use sea_orm::Condition;
    let sessions = session::Entity::delete_many()
        .filter(
            Condition::any()
                .add(session::Column::ExpiresAt.lt(before))
                .add(session::Column::RevokedAt.lt(before)),
        )
        .exec(conn)
        .await?
        .rows_affected;
    let events = sign_in_event::Entity::delete_many()
        .filter(sign_in_event::Column::At.lt(events_before))
        .exec(conn)
        .await?
        .rows_affected;
    completed_oidc_flow::Entity::delete_many()
        .filter(completed_oidc_flow::Column::ExpiresAt.lt(now()))
        .exec(conn)
        .await?;
    Ok((sessions, events))
}

/// Revokes a session; returns whether it was live. The server revokes through
/// [`super::Db::revoke_session`], which also forgets the remembered check at once.
pub async fn revoke_session<C: ConnectionTrait>(conn: &C, token_hash: &str) -> Result<bool, DbErr> {
    let result = session::Entity::update_many()
        .col_expr(session::Column::RevokedAt, sea_orm::sea_query::Expr::value(now()))
        .filter(session::Column::TokenHash.eq(token_hash))
        .filter(session::Column::RevokedAt.is_null())
        .exec(conn)
        .await?;
    Ok(result.rows_affected > 0)
}

/// Records a sign-in attempt.
pub async fn insert_event<C: ConnectionTrait>(
    conn: &C,
    row: sign_in_event::ActiveModel,
) -> Result<(), DbErr> {
    sign_in_event::Entity::insert(row).exec_without_returning(conn).await.map(|_| ())
}

/// The latest sign-in events, newest first, optionally of one user.
pub async fn recent_events<C: ConnectionTrait>(
    conn: &C,
    user_id: Option<&str>,
    limit: u64,
) -> Result<Vec<sign_in_event::Model>, DbErr> {
    let mut query = sign_in_event::Entity::find();
    if let Some(user_id) = user_id {
        query = query.filter(sign_in_event::Column::UserId.eq(user_id));
    }
    query.order_by_desc(sign_in_event::Column::Id).limit(limit).all(conn).await
}

/// Filters for [`list_users`].
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Only these ids.
    pub user_ids: Option<Vec<String>>,
    /// Only this role.
    pub role: Option<String>,
    /// Email containing this (case-insensitive).
    pub email_contains: Option<String>,
}

/// A page of users (1-based page) and the total count.
pub async fn list_users<C: ConnectionTrait>(
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

/// Every team, by id.
pub async fn list_teams<C: ConnectionTrait>(conn: &C) -> Result<Vec<team::Model>, DbErr> {
    team::Entity::find().order_by_asc(team::Column::TeamId).all(conn).await
}

/// Deletes users (their memberships and sessions go with them); returns the ids deleted.
pub async fn delete_users<C: ConnectionTrait>(
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

/// An administrator's edit of a user (the API's `/user/update`, the UI's user page); `None`
/// leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserEdit {
    /// New email (empty clears it).
    pub user_email: Option<String>,
    /// New display name.
    pub user_alias: Option<String>,
    /// New role.
    pub user_role: Option<plugin_api::UserRole>,
    /// New models.
    pub models: Option<Vec<String>>,
    /// New budget (`Some(None)`: unlimited).
    pub max_budget: Option<Option<f64>>,
    /// New period (`Some(None)`: none). A changed period starts now.
    pub budget_duration: Option<Option<crate::budget::BudgetDuration>>,
    /// New spend.
    pub spend: Option<f64>,
    /// New metadata object.
    pub metadata: Option<serde_json::Value>,
    /// New binding, (issuer, subject) (`Some(None)`: unlinked): an administrator links an
    /// account to the identity that may sign into it.
    pub binding: Option<Option<(String, String)>>,
}

/// Applies an administrator's edit; returns the user as saved, or `None` when there is none.
pub async fn edit_user<C: ConnectionTrait>(
    conn: &C,
    user_id: &str,
    edit: UserEdit,
    now: DateTime<Utc>,
) -> Result<Option<user::Model>, DbErr> {
    use sea_orm::IntoActiveModel;
    let Some(row) = user_by_id(conn, user_id).await? else { return Ok(None) };
    let duration_changed = edit
        .budget_duration
        .is_some_and(|duration| row.budget_duration != duration.map(|d| d.to_string()));
    let mut changes = row.into_active_model();
    if let Some(email) = edit.user_email {
        changes.user_email = Set(Some(email.trim().to_lowercase()).filter(|e| !e.is_empty()));
    }
    if let Some(alias) = edit.user_alias {
        changes.user_alias = Set(Some(alias));
    }
    if let Some(role) = edit.user_role {
        changes.user_role = Set(Some(role.as_str().to_owned()));
    }
    if let Some(models) = edit.models {
        changes.models = Set(json_list(&models));
    }
    if let Some(budget) = edit.max_budget {
        changes.max_budget = Set(budget);
    }
    if let Some(duration) = edit.budget_duration
        && duration_changed
    {
        changes.budget_duration = Set(duration.map(|d| d.to_string()));
        changes.budget_reset_at = Set(crate::budget::period_end(duration, now));
    }
    if let Some(spend) = edit.spend {
        changes.spend = Set(spend);
    }
    if let Some(metadata) = edit.metadata {
        changes.metadata = Set(metadata);
    }
    if let Some(binding) = edit.binding {
        let (issuer, subject) = binding.unzip();
        changes.sso_issuer = Set(issuer);
        changes.sso_user_id = Set(subject);
    }
    changes.updated_at = Set(now);
    update_user(conn, changes).await.map(Some)
}

/// A team to create.
#[derive(Debug, Clone, Default)]
pub struct NewTeam {
    /// Its id.
    pub team_id: String,
    /// Its display name.
    pub team_alias: Option<String>,
    /// Its models.
    pub models: Vec<String>,
    /// Its budget in USD.
    pub max_budget: Option<f64>,
    /// Its metadata object.
    pub metadata: Option<serde_json::Value>,
}

/// Creates a team.
pub async fn insert_team<C: ConnectionTrait>(
    conn: &C,
    new: NewTeam,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    team::Entity::insert(team::ActiveModel {
        team_id: Set(new.team_id),
        team_alias: Set(new.team_alias),
        models: Set(json_list(&new.models)),
        max_budget: Set(new.max_budget),
        metadata: Set(new.metadata.unwrap_or_else(|| serde_json::json!({}))),
        created_at: Set(now),
        updated_at: Set(now),
    })
    .exec_without_returning(conn)
    .await
    .map(|_| ())
}

/// Saves changes to a user.
pub async fn update_user<C: ConnectionTrait>(
    conn: &C,
    row: user::ActiveModel,
) -> Result<user::Model, DbErr> {
    row.update(conn).await
}

/// Marks an OIDC flow used (its callback came: a code, or the provider's error); returns false
/// when it already was (a replayed callback).
/// Entries past their expiry are pruned on the way.
pub async fn complete_flow<C: ConnectionTrait>(
    conn: &C,
    flow_id: &str,
    expires_at: DateTime<Utc>,
) -> Result<bool, DbErr> {
    completed_oidc_flow::Entity::delete_many()
        .filter(completed_oidc_flow::Column::ExpiresAt.lt(now()))
        .exec(conn)
        .await?;
    let row = completed_oidc_flow::ActiveModel {
        flow_id: Set(flow_id.to_owned()),
        expires_at: Set(expires_at),
    };
    let result = completed_oidc_flow::Entity::insert(row)
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .try_insert()
        .exec_without_returning(conn)
        .await?;
    Ok(matches!(result, sea_orm::TryInsertResult::Inserted(n) if n > 0))
}

/// Sign-in events, newest first, a page at a time (1-based), and the total.
pub async fn events_page<C: ConnectionTrait>(
    conn: &C,
    page: u64,
    page_size: u64,
) -> Result<(Vec<sign_in_event::Model>, u64), DbErr> {
    let total = sign_in_event::Entity::find().count(conn).await?;
    let events = sign_in_event::Entity::find()
        .order_by_desc(sign_in_event::Column::Id)
        .offset(page.saturating_sub(1) * page_size)
        .limit(page_size)
        .all(conn)
        .await?;
    Ok((events, total))
}

// ---------------------------------------------------------------------------------------------
// The sign-in's read and write

use crate::signin::{
    Binding,
    rules::{Account, Changes, Keys, NewAccount, Snapshot, Team},
};

pub(super) fn account_of(row: user::Model) -> Account {
    let binding = match (row.sso_issuer, row.sso_user_id) {
        (Some(issuer), Some(subject)) => Some(Binding { issuer, subject }),
        _ => None,
    };
    Account {
        models: list_of(&row.models),
        user_id: row.user_id,
        user_email: row.user_email,
        user_alias: row.user_alias,
        user_role: row.user_role.as_deref().and_then(|role| role.parse().ok()),
        binding,
        max_budget: row.max_budget,
        spend: row.spend,
        budget_duration: row.budget_duration.as_deref().and_then(|d| d.parse().ok()),
        budget_reset_at: row.budget_reset_at,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

pub(crate) fn row_of(new: &NewAccount) -> user::ActiveModel {
    let account = &new.account;
    let (sso_issuer, sso_user_id) = account.binding.clone().map(|b| (b.issuer, b.subject)).unzip();
    user::ActiveModel {
        user_id: Set(account.user_id.clone()),
        user_email: Set(account.user_email.clone()),
        user_alias: Set(account.user_alias.clone()),
        user_role: Set(account.user_role.map(|role| role.as_str().to_owned())),
        sso_user_id: Set(sso_user_id),
        sso_issuer: Set(sso_issuer),
        models: Set(json_list(&account.models)),
        max_budget: Set(account.max_budget),
        spend: Set(account.spend),
        budget_duration: Set(account.budget_duration.map(|d| d.to_string())),
        budget_reset_at: Set(account.budget_reset_at),
        metadata: Set(new.metadata.clone()),
        created_at: Set(account.created_at),
        updated_at: Set(account.updated_at),
    }
}

/// What one sign-in's decision needs, in at most three statements: the accounts its keys name
/// (by id, binding or email), their memberships, and which of the named teams exist.
pub(crate) async fn snapshot<C: ConnectionTrait>(conn: &C, keys: &Keys) -> Result<Snapshot, DbErr> {
    let accounts: Vec<Account> =
        accounts_query(keys).all(conn).await?.into_iter().map(account_of).collect();
    let memberships = memberships_query(keys, &accounts)
        .all(conn)
        .await?
        .into_iter()
        .map(|m| (m.team_id, m.user_id))
        .collect();
    let teams = match teams_query(keys) {
        None => Vec::new(),
        Some(query) => query.all(conn).await?.into_iter().map(team_of).collect(),
    };
    Ok(Snapshot { accounts, memberships, teams })
}

/// The snapshot's first read: the accounts found by id, binding or email.
pub(super) fn accounts_query(keys: &Keys) -> sea_orm::Select<user::Entity> {
    use sea_orm::Condition;
    let mut condition =
        Condition::any().add(user::Column::UserId.is_in(keys.user_ids.iter().cloned()));
    if let Some(binding) = &keys.binding {
        condition = condition.add(
            Condition::all()
                .add(user::Column::SsoIssuer.eq(binding.issuer.as_str()))
                .add(user::Column::SsoUserId.eq(binding.subject.as_str())),
        );
    }
    if let Some(email) = &keys.email {
        condition = condition.add(user::Column::UserEmail.eq(email.to_lowercase()));
    }
    user::Entity::find().filter(condition)
}

/// The snapshot's second read: the memberships of the accounts found and of the users the hook
/// adds to teams.
pub(super) fn memberships_query(
    keys: &Keys,
    accounts: &[Account],
) -> sea_orm::Select<team_member::Entity> {
    let mut members: Vec<String> = accounts.iter().map(|a| a.user_id.clone()).collect();
    members.extend(keys.members.iter().cloned());
    members.sort();
    members.dedup();
    team_member::Entity::find().filter(team_member::Column::UserId.is_in(members))
}

/// The snapshot's third read, when the sign-in names teams: which of them exist.
pub(super) fn teams_query(keys: &Keys) -> Option<sea_orm::Select<team::Entity>> {
    (!keys.teams.is_empty()).then(|| {
        team::Entity::find().filter(team::Column::TeamId.is_in(keys.teams.iter().cloned()))
    })
}

pub(super) fn team_of(row: team::Model) -> Team {
    Team { models: list_of(&row.models), team_id: row.team_id, team_alias: row.team_alias }
}

/// `UPDATE users SET changes WHERE user_id = ? AND updated_at = read_at`: it changes one row if
/// the user is still as read, none if someone changed it since.
pub(crate) fn update_if_unchanged(
    user_id: &str,
    read_at: DateTime<Utc>,
    changes: &Changes,
    now: DateTime<Utc>,
) -> sea_orm::UpdateMany<user::Entity> {
    use sea_orm::sea_query::Expr;
    let mut update = user::Entity::update_many()
        .col_expr(user::Column::UpdatedAt, Expr::value(now))
        .filter(user::Column::UserId.eq(user_id))
        .filter(user::Column::UpdatedAt.eq(read_at));
    if let Some(email) = &changes.user_email {
        update = update.col_expr(user::Column::UserEmail, Expr::value(email.clone()));
    }
    if let Some(alias) = &changes.user_alias {
        update = update.col_expr(user::Column::UserAlias, Expr::value(alias.clone()));
    }
    if let Some(binding) = &changes.binding {
        update = update
            .col_expr(user::Column::SsoIssuer, Expr::value(binding.issuer.clone()))
            .col_expr(user::Column::SsoUserId, Expr::value(binding.subject.clone()));
    }
    if let Some(role) = changes.user_role {
        update = update.col_expr(user::Column::UserRole, Expr::value(role.as_str()));
    }
    if let Some(budget) = changes.max_budget {
        update = update.col_expr(user::Column::MaxBudget, Expr::value(budget));
    }
    if let Some(duration) = changes.budget_duration {
        update = update
            .col_expr(user::Column::BudgetDuration, Expr::value(duration.map(|d| d.to_string())));
    }
    if let Some(reset_at) = changes.budget_reset_at {
        update = update.col_expr(user::Column::BudgetResetAt, Expr::value(reset_at));
    }
    if let Some(spend) = changes.spend {
        update = update.col_expr(user::Column::Spend, Expr::value(spend));
    }
    update
}
