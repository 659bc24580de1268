//! The sign-in's read and write: the [`Snapshot`] one decision needs (at most three
//! statements), the conversions between user rows and the rules' accounts, and the update that
//! changes a user only if it is still as read.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

use super::{json_list, list_of};
use crate::entity::{team, team_member, user};

use hookgate_core::{
    identity::Binding,
    signin::{Account, Changes, Keys, NewAccount, Snapshot, Source, Team},
};

pub(crate) fn account_of(row: user::Model) -> Account {
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
        active: row.active,
        directory_id: row.scim_external_id,
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
        active: Set(account.active),
        scim: Set(None),
        scim_external_id: Set(None),
    }
}

/// What one sign-in's decision needs, in at most three statements: the accounts its keys name
/// (by id, binding or email), their memberships (when there is anyone to ask about), and which
/// of the named teams exist (when it names any).
pub(crate) async fn snapshot<C: ConnectionTrait>(conn: &C, keys: &Keys) -> Result<Snapshot, DbErr> {
    let accounts: Vec<Account> =
        accounts_query(keys).all(conn).await?.into_iter().map(account_of).collect();
    let rows = match memberships_query(keys, &accounts) {
        None => Vec::new(),
        Some(query) => query.all(conn).await?,
    };
    let (memberships, synced, removable) = memberships_of(rows);
    let teams = match teams_query(keys) {
        None => Vec::new(),
        Some(query) => query.all(conn).await?.into_iter().map(team_of).collect(),
    };
    Ok(Snapshot { accounts, memberships, synced, removable, teams })
}

/// (team, user) pairs.
type Pairs = Vec<(String, String)>;

/// A snapshot's memberships, (team, user), those of them a sync with the identity provider
/// made, and those a hook may remove (a sign-in made them).
pub(crate) fn memberships_of(rows: Vec<team_member::Model>) -> (Pairs, Pairs, Pairs) {
    let pairs = |keep: fn(Source) -> bool| {
        rows.iter()
            .filter(|m| keep(Source::of(&m.source)))
            .map(|m| (m.team_id.clone(), m.user_id.clone()))
            .collect::<Pairs>()
    };
    let synced = pairs(|source| source == Source::Idp);
    let removable = pairs(Source::hook_may_remove);
    (rows.into_iter().map(|m| (m.team_id, m.user_id)).collect(), synced, removable)
}

/// The snapshot's first read: the accounts found by id, binding or email.
pub(crate) fn accounts_query(keys: &Keys) -> sea_orm::Select<user::Entity> {
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
    if let Some(directory_id) = &keys.directory_id {
        condition = condition.add(user::Column::ScimExternalId.eq(directory_id.as_str()));
    }
    user::Entity::find().filter(condition)
}

/// The snapshot's second read: the memberships of the accounts found and of the users the hook
/// adds to teams (none to read for a new user the hook adds to no team).
pub(crate) fn memberships_query(
    keys: &Keys,
    accounts: &[Account],
) -> Option<sea_orm::Select<team_member::Entity>> {
    let mut members: Vec<String> = accounts.iter().map(|a| a.user_id.clone()).collect();
    members.extend(keys.members.iter().cloned());
    members.sort();
    members.dedup();
    (!members.is_empty())
        .then(|| team_member::Entity::find().filter(team_member::Column::UserId.is_in(members)))
}

/// The snapshot's third read, when the sign-in names teams: which of them exist.
pub(crate) fn teams_query(keys: &Keys) -> Option<sea_orm::Select<team::Entity>> {
    (!keys.teams.is_empty()).then(|| {
        team::Entity::find().filter(team::Column::TeamId.is_in(keys.teams.iter().cloned()))
    })
}

pub(crate) fn team_of(row: team::Model) -> Team {
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
