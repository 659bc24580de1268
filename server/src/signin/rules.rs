//! The sign-in's rules as one pure function, [`decide`]: from what the identity says, what the
//! `custom_sso` hook decided, what the database held when the sign-in read it (a [`Snapshot`]),
//! the settings and the clock, to a [`Plan`] of writes — no I/O, no HTTP, no storage types.
//!
//! The pipeline around it (`signin::mod`) reads the snapshot, runs the hooks, calls [`decide`],
//! and applies the plan in one transaction. A plan made from a snapshot another sign-in has
//! since changed is refused by the write (it checks what it read) and made again.

use chrono::{DateTime, Utc};
use plugin_api::{NewUser, OpenId, TeamRole, UserRole};

use super::{Binding, Proof, RESERVED_USER_IDS, SignInError, Values, host::Staged};
use crate::{
    budget::{BudgetDuration, period_end},
    config::{Config, UiAccessModeSetting},
};

/// A stored user, as the rules see it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Account {
    /// The user's id.
    pub(crate) user_id: String,
    /// Lower-case email.
    pub(crate) user_email: Option<String>,
    /// Display name.
    pub(crate) user_alias: Option<String>,
    /// The stored role (`None` when unset or not a role).
    pub(crate) user_role: Option<UserRole>,
    /// The sign-in identity the account is bound to.
    pub(crate) binding: Option<Binding>,
    /// Models.
    pub(crate) models: Vec<String>,
    /// Budget in USD; `None` is unlimited.
    pub(crate) max_budget: Option<f64>,
    /// Spend in the current period.
    pub(crate) spend: f64,
    /// Budget period (`None` when unset or unreadable).
    pub(crate) budget_duration: Option<BudgetDuration>,
    /// When the spend next resets.
    pub(crate) budget_reset_at: Option<DateTime<Utc>>,
    /// Created (email matches take the oldest account).
    pub(crate) created_at: DateTime<Utc>,
    /// Last changed: a plan's update applies only if the row is still as it was read.
    pub(crate) updated_at: DateTime<Utc>,
}

/// A membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Membership {
    /// The team.
    pub(crate) team_id: String,
    /// The member.
    pub(crate) user_id: String,
    /// Their role in the team.
    pub(crate) role: TeamRole,
}

/// A team, as the rules and the hook see it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Team {
    /// Its id.
    pub(crate) team_id: String,
    /// Its display name.
    pub(crate) team_alias: Option<String>,
    /// Its models.
    pub(crate) models: Vec<String>,
}

impl From<&str> for Team {
    fn from(team_id: &str) -> Self {
        Team { team_id: team_id.to_owned(), team_alias: None, models: Vec::new() }
    }
}

/// What the database held for one sign-in: every account its lookup keys (ids, binding, email)
/// found, those accounts' memberships, and which of the teams it names exist.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Snapshot {
    /// Accounts found by id, binding or email.
    pub(crate) accounts: Vec<Account>,
    /// Memberships of those accounts and of the users the hook adds to teams: (team, user).
    pub(crate) memberships: Vec<(String, String)>,
    /// The teams named (identity groups, default teams, the hook's) that exist.
    pub(crate) teams: Vec<Team>,
}

impl Keys {
    /// Whether a snapshot read with these keys holds everything `other` asks for.
    pub(crate) fn covers(&self, other: &Keys) -> bool {
        let within = |small: &[String], big: &[String]| small.iter().all(|item| big.contains(item));
        within(&other.user_ids, &self.user_ids)
            && other.binding == self.binding
            && (other.email.is_none() || other.email == self.email)
            && within(&other.teams, &self.teams)
            && within(&other.members, &self.members)
    }
}

/// What a [`Snapshot`] must cover for one sign-in.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Keys {
    /// User ids to look up.
    pub(crate) user_ids: Vec<String>,
    /// The identity's binding.
    pub(crate) binding: Option<Binding>,
    /// The email to look up (only when it may link an account).
    pub(crate) email: Option<String>,
    /// Teams whose existence matters.
    pub(crate) teams: Vec<String>,
    /// Users whose memberships matter beyond the accounts found.
    pub(crate) members: Vec<String>,
}

/// A user to create.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NewAccount {
    /// The row.
    pub(crate) account: Account,
    /// Who made it (`metadata.created_by`) or where from (`metadata.auth_provider`).
    pub(crate) metadata: serde_json::Value,
}

/// Changes to an existing user; `None` leaves a column as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Changes {
    pub(crate) user_email: Option<String>,
    pub(crate) user_alias: Option<String>,
    pub(crate) binding: Option<Binding>,
    pub(crate) user_role: Option<UserRole>,
    pub(crate) max_budget: Option<Option<f64>>,
    pub(crate) budget_duration: Option<Option<BudgetDuration>>,
    pub(crate) budget_reset_at: Option<Option<DateTime<Utc>>>,
    pub(crate) spend: Option<f64>,
}

impl Changes {
    /// Whether anything changes.
    pub(crate) fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

/// What happens to the signing-in user's row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum UserWrite {
    /// Created.
    Insert(NewAccount),
    /// Changed, if still as read (`updated_at`).
    Update {
        /// The row's `updated_at` when read.
        read_at: DateTime<Utc>,
        /// What changes.
        changes: Changes,
    },
    /// Left as it is.
    Unchanged,
}

/// The writes of one sign-in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Plan {
    /// Users the `custom_sso` hook created (`new_user`), created unless they exist by then.
    pub(crate) hook_users: Vec<NewAccount>,
    /// Users the hook added to a team who do not exist: created as `internal_user`s, as
    /// LiteLLM's `/team/member_add` does.
    pub(crate) member_users: Vec<String>,
    /// The signing-in user's row.
    pub(crate) user: UserWrite,
    /// Memberships to add; an existing membership is never changed.
    pub(crate) memberships: Vec<Membership>,
    /// The account as it is after the plan.
    pub(crate) account: Account,
    /// Whether the account is created by this sign-in.
    pub(crate) is_new: bool,
    /// The session's role.
    pub(crate) role: UserRole,
    /// The session's models.
    pub(crate) models: Vec<String>,
}

/// Everything [`decide`] takes besides the snapshot and the settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Input<'a> {
    /// The identity (email already normalised).
    pub(crate) openid: &'a OpenId,
    /// What the front door proved.
    pub(crate) proof: &'a Proof,
    /// The identity's own id, when the user id was chosen otherwise.
    pub(crate) idp_id: Option<&'a str>,
    /// The values the sign-in applies (the hook's, or LiteLLM's defaults).
    pub(crate) values: &'a Values,
    /// The hook's host-API writes.
    pub(crate) staged: &'a [Staged],
}

/// The keys a snapshot read before the `custom_sso` hook runs: what the identity alone names,
/// so that the hook's `user_info` and `team_info` for the signing-in user and their groups are
/// answered from it, and the decision after the hook usually needs no second read.
pub(crate) fn identity_keys(openid: &OpenId, proof: &Proof, config: &Config) -> Keys {
    let mut teams = named_teams(openid, config);
    teams.sort();
    teams.dedup();
    let user_ids: Vec<String> = openid.id.iter().map(|id| id.trim().to_owned()).collect();
    let email = (config.link_sso_accounts_by_email && proof.email_verified)
        .then(|| openid.email.clone())
        .flatten();
    Keys { members: user_ids.clone(), user_ids, binding: proof.binding.clone(), email, teams }
}

/// The keys a sign-in's snapshot must cover.
pub(crate) fn keys(input: &Input<'_>, config: &Config) -> Keys {
    let user_ids: Vec<String> = candidate_ids(input).into_iter().map(str::to_owned).collect();
    let mut teams = named_teams(input.openid, config);
    let mut members = Vec::new();
    for write in input.staged {
        if let Staged::Member { team_id, user_id, .. } = write {
            teams.push(team_id.clone());
            members.push(user_id.clone());
        }
    }
    teams.sort();
    teams.dedup();
    members.extend(user_ids.iter().cloned());
    members.sort();
    members.dedup();
    Keys {
        user_ids,
        binding: input.proof.binding.clone(),
        email: link_by_email(input, config).then(|| input.values.user_email.clone()).flatten(),
        teams,
        members,
    }
}

/// The teams an identity names: its groups, then the default teams.
fn named_teams(openid: &OpenId, config: &Config) -> Vec<String> {
    let mut teams = openid.team_ids.clone();
    teams.extend(config.default_internal_user_params.teams.iter().map(|(id, _)| id.clone()));
    teams
}

/// The user ids an account may be found by: the chosen one, then the identity's own when it
/// differs.
fn candidate_ids<'a>(input: &Input<'a>) -> Vec<&'a str> {
    let mut ids = vec![input.values.user_id.as_str()];
    if let Some(idp_id) = input.idp_id
        && idp_id != input.values.user_id
    {
        ids.push(idp_id);
    }
    ids
}

/// Whether this sign-in may take an unbound account by its email: the setting is on, the
/// provider verified the email, and the values keep the identity's email.
fn link_by_email(input: &Input<'_>, config: &Config) -> bool {
    config.link_sso_accounts_by_email
        && input.proof.email_verified
        && input.values.user_email.is_some()
        && input.values.user_email == input.openid.email
}

fn forbidden(message: impl Into<String>) -> SignInError {
    SignInError::Forbidden(message.into())
}

fn same_binding(account: &Account, binding: Option<&Binding>) -> bool {
    binding.is_some() && account.binding.as_ref() == binding
}

/// Decides a sign-in.
///
/// # Errors
/// The refusals: a reserved or foreign-bound account, `restricted_sso_group`, `admin_only`.
pub(crate) fn decide(
    input: &Input<'_>,
    snapshot: &Snapshot,
    config: &Config,
    now: DateTime<Utc>,
) -> Result<Plan, SignInError> {
    let Input { openid, proof, values, staged, .. } = *input;
    let binding = proof.binding.as_ref();

    if RESERVED_USER_IDS.contains(&values.user_id.as_str()) {
        return Err(forbidden(format!(
            "the user id {:?} is reserved for the password login and cannot be reached through \
             single sign-on",
            values.user_id
        )));
    }
    if let UiAccessModeSetting::RestrictedSsoGroup { group } = &config.ui_access_mode
        && !openid.team_ids.contains(group)
    {
        return Err(forbidden(format!("the user is not in the restricted SSO group {group:?}")));
    }

    // The hook's new users: rows to create, and accounts the signing-in user may be.
    let hook_users: Vec<NewAccount> = staged
        .iter()
        .filter_map(|write| match write {
            Staged::NewUser(new) => Some(hook_user(new, now)),
            _ => None,
        })
        .filter(|new| !snapshot.accounts.iter().any(|a| a.user_id == new.account.user_id))
        .collect();

    let found = find_account(input, snapshot, &hook_users, config)?;
    let (mut account, mut write, is_new) = match found {
        Found::Stored(account) => (account.clone(), None, false),
        Found::HookUser(index) => {
            let new = hook_users[index].clone();
            (new.account.clone(), Some(new), true)
        }
        Found::Nothing => {
            let new = new_account(input, config, now);
            (new.account.clone(), Some(new), true)
        }
    };
    let hook_users: Vec<NewAccount> =
        hook_users.into_iter().filter(|new| new.account.user_id != account.user_id).collect();

    // Role: the hook's or identity provider's, else the stored one, else the default;
    // PROXY_ADMIN_ID always wins; then admin_only.
    let stored_role = account.user_role;
    let mut role = values.user_role.or(stored_role).unwrap_or(UserRole::InternalUserViewer);
    if config.proxy_admin_id.as_deref() == Some(account.user_id.as_str()) {
        role = UserRole::ProxyAdmin;
    }
    if config.ui_access_mode == UiAccessModeSetting::AdminOnly && !role.is_admin() {
        return Err(forbidden(format!(
            "only proxy admins may sign in (ui_access_mode: admin_only); this user's role is {role}"
        )));
    }

    let mut changes = Changes::default();
    if let Some(email) = &values.user_email
        && account.user_email.as_ref() != Some(email)
    {
        changes.user_email = Some(email.clone());
    }
    if account.user_alias.as_deref().is_none_or(str::is_empty)
        && let Some(alias) = super::alias_of(openid)
    {
        changes.user_alias = Some(alias);
    }
    if account.binding.is_none()
        && let Some(binding) = binding
    {
        changes.binding = Some(binding.clone());
    }
    if stored_role != Some(role) && (values.user_role.is_some() || role == UserRole::ProxyAdmin) {
        changes.user_role = Some(role);
    }
    // A custom_sso hook's budget applies at every sign-in; a changed period starts now.
    let mut duration = account.budget_duration;
    if values.from_hook && !is_new {
        if account.max_budget != values.max_budget {
            changes.max_budget = Some(values.max_budget);
        }
        if account.budget_duration != values.budget_duration {
            duration = values.budget_duration;
            changes.budget_duration = Some(duration);
            changes.budget_reset_at = Some(period_end(duration, now));
        }
    }
    // A period that has ended resets the spend (LiteLLM does this in a background job); the
    // next period is the current duration's, not the one the row had.
    if account.budget_reset_at.is_some_and(|reset_at| reset_at <= now) {
        changes.spend = Some(0.0);
        if changes.budget_reset_at.is_none() {
            changes.budget_reset_at = Some(period_end(duration, now));
        }
    }
    apply_changes(&mut account, &changes);
    let user = match write.take() {
        Some(mut new) => {
            new.account = account.clone();
            UserWrite::Insert(new)
        }
        None if changes.is_empty() => UserWrite::Unchanged,
        None => UserWrite::Update { read_at: account.updated_at, changes },
    };

    // Teams: the hook's memberships (an existing one keeps its role), the defaults for a new
    // user, and the identity provider's groups that name existing teams (additive, as LiteLLM).
    let exists = |team: &str| snapshot.teams.iter().any(|t| t.team_id == team);
    let mut memberships: Vec<Membership> = Vec::new();
    let mut member_users: Vec<String> = Vec::new();
    let known_user = |user_id: &str| {
        user_id == account.user_id
            || snapshot.accounts.iter().any(|a| a.user_id == user_id)
            || hook_users.iter().any(|new| new.account.user_id == user_id)
    };
    let add = |team_id: &str, user_id: &str, role: TeamRole, memberships: &mut Vec<Membership>| {
        let member = snapshot.memberships.iter().any(|(t, u)| t == team_id && u == user_id)
            || memberships.iter().any(|m| m.team_id == team_id && m.user_id == user_id);
        if !member {
            memberships.push(Membership {
                team_id: team_id.to_owned(),
                user_id: user_id.to_owned(),
                role,
            });
        }
    };
    for write in staged {
        if let Staged::Member { team_id, user_id, role } = write {
            if !known_user(user_id) && !member_users.contains(user_id) {
                member_users.push(user_id.clone());
            }
            add(team_id, user_id, *role, &mut memberships);
        }
    }
    if is_new {
        for (team_id, role) in &config.default_internal_user_params.teams {
            if exists(team_id) {
                add(team_id, &account.user_id, *role, &mut memberships);
            }
        }
    }
    for team_id in &openid.team_ids {
        if exists(team_id) {
            add(team_id, &account.user_id, TeamRole::User, &mut memberships);
        }
    }

    let models =
        if account.models.is_empty() { values.models.clone() } else { account.models.clone() };
    Ok(Plan { hook_users, member_users, user, memberships, account, is_new, role, models })
}

/// Which account a sign-in is.
enum Found<'s> {
    Stored(&'s Account),
    HookUser(usize),
    Nothing,
}

/// Finds the signing-in user's account:
/// 1. the account bound to this identity (issuer, subject);
/// 2. else the account with the chosen user id (or the identity's own id): taken only if it is
///    bound to nothing, is not reserved (`default_user_id`, `PROXY_ADMIN_ID`), and the identity
///    proves it by a verified email equal to the account's; an account bound to another identity,
///    or an unbound one the identity cannot prove, refuses the sign-in (an administrator links it
///    by setting its `sso_issuer` and `sso_user_id`, which step 1 then finds);
/// 3. else, when allowed, the oldest unbound, unreserved account with the identity's verified
///    email (never an account bound to another identity: LiteLLM #36942, CVE-2023-3128).
fn find_account<'s>(
    input: &Input<'_>,
    snapshot: &'s Snapshot,
    hook_users: &[NewAccount],
    config: &Config,
) -> Result<Found<'s>, SignInError> {
    let binding = input.proof.binding.as_ref();
    let reserved = |user_id: &str| {
        RESERVED_USER_IDS.contains(&user_id) || config.proxy_admin_id.as_deref() == Some(user_id)
    };
    if let Some(account) = snapshot.accounts.iter().find(|a| same_binding(a, binding)) {
        return Ok(Found::Stored(account));
    }
    for id in candidate_ids(input) {
        if let Some(account) = snapshot.accounts.iter().find(|a| a.user_id == id) {
            if account.binding.is_some() {
                tracing::warn!(user_id = %account.user_id, "sign-in refused: the account is bound to another identity");
                return Err(forbidden(format!(
                    "the account {:?} belongs to another sign-in identity; an administrator can \
                     delete or rename it if this is a mistake",
                    account.user_id
                )));
            }
            if reserved(&account.user_id) {
                return Err(forbidden(format!(
                    "the account {:?} is the administrator account (PROXY_ADMIN_ID or the \
                     password login's) and is not bound to this identity; it can be reached \
                     through single sign-on only by the identity that created it",
                    account.user_id
                )));
            }
            if !proves_by_email(input, account) {
                tracing::warn!(user_id = %account.user_id, "sign-in refused: the account is not linked to this identity and its verified email does not match");
                return Err(not_linked(&account.user_id));
            }
            return Ok(Found::Stored(account));
        }
        if let Some(index) = hook_users.iter().position(|new| new.account.user_id == id) {
            return Ok(Found::HookUser(index));
        }
    }
    if link_by_email(input, config)
        && let Some(email) = &input.values.user_email
    {
        let mut by_email: Vec<&Account> =
            snapshot.accounts.iter().filter(|a| a.user_email.as_ref() == Some(email)).collect();
        by_email.sort_by(|a, b| (a.created_at, &a.user_id).cmp(&(b.created_at, &b.user_id)));
        for account in by_email {
            if account.binding.is_some() || reserved(&account.user_id) {
                tracing::warn!(
                    user_id = %account.user_id,
                    "an account with this email is bound to another identity or reserved; not taking it over"
                );
                continue;
            }
            return Ok(Found::Stored(account));
        }
    }
    Ok(Found::Nothing)
}

/// Whether the identity proves an unbound account it reached by id: the provider verified the
/// identity's email (the identity's own, not a value a hook chose) and it is the account's.
fn proves_by_email(input: &Input<'_>, account: &Account) -> bool {
    match (&input.openid.email, &account.user_email) {
        (Some(email), Some(stored)) => {
            input.proof.email_verified && email.eq_ignore_ascii_case(stored)
        }
        _ => false,
    }
}

/// The refusal for an account that exists but that this sign-in cannot prove is its own.
pub(crate) fn not_linked(user_id: &str) -> SignInError {
    forbidden(format!(
        "the account {user_id:?} exists but is not linked to your sign-in; ask an administrator \
         to link it to your identity"
    ))
}

/// The account a new user gets: the values, then LiteLLM's defaults for what they leave open.
fn new_account(input: &Input<'_>, config: &Config, now: DateTime<Utc>) -> NewAccount {
    let values = input.values;
    let defaults = &config.default_internal_user_params;
    let role = values.user_role.or(defaults.user_role).unwrap_or(UserRole::InternalUserViewer);
    let mut max_budget = values.max_budget.or(defaults.max_budget);
    let mut duration = values.budget_duration.or(defaults.budget_duration);
    if role == UserRole::InternalUser {
        max_budget = max_budget.or(config.max_internal_user_budget);
        duration = duration.or(config.internal_user_budget_duration);
    }
    NewAccount {
        account: Account {
            user_id: values.user_id.clone(),
            user_email: values.user_email.clone(),
            user_alias: super::alias_of(input.openid),
            user_role: Some(role),
            binding: input.proof.binding.clone(),
            models: values.models.clone(),
            max_budget,
            spend: 0.0,
            budget_duration: duration,
            budget_reset_at: period_end(duration, now),
            created_at: now,
            updated_at: now,
        },
        metadata: serde_json::json!({
            "auth_provider": input.openid.provider.as_deref().map(|p| super::shorten(p, 64))
        }),
    }
}

/// A user the hook created with `new_user` (checked by the host when staged).
fn hook_user(new: &NewUser, now: DateTime<Utc>) -> NewAccount {
    let duration = new.budget_duration.as_deref().and_then(|d| d.parse::<BudgetDuration>().ok());
    NewAccount {
        account: Account {
            user_id: new.user_id.clone().unwrap_or_default(),
            user_email: new.user_email.clone(),
            user_alias: new.user_alias.clone(),
            user_role: Some(new.user_role.unwrap_or(UserRole::InternalUserViewer)),
            binding: None,
            models: new.models.clone(),
            max_budget: new.max_budget,
            spend: 0.0,
            budget_duration: duration,
            budget_reset_at: period_end(duration, now),
            created_at: now,
            updated_at: now,
        },
        metadata: serde_json::json!({"created_by": "custom_sso"}),
    }
}

fn apply_changes(account: &mut Account, changes: &Changes) {
    if let Some(email) = &changes.user_email {
        account.user_email = Some(email.clone());
    }
    if let Some(alias) = &changes.user_alias {
        account.user_alias = Some(alias.clone());
    }
    if let Some(binding) = &changes.binding {
        account.binding = Some(binding.clone());
    }
    if let Some(role) = changes.user_role {
        account.user_role = Some(role);
    }
    if let Some(budget) = changes.max_budget {
        account.max_budget = budget;
    }
    if let Some(duration) = changes.budget_duration {
        account.budget_duration = duration;
    }
    if let Some(reset_at) = changes.budget_reset_at {
        account.budget_reset_at = reset_at;
    }
    if let Some(spend) = changes.spend {
        account.spend = spend;
    }
}

#[cfg(test)]
mod tests;
