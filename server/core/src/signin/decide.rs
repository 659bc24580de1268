//! [`decide`] and its helpers: finding the account, creating one, applying the changes.

use chrono::{DateTime, Utc};
use plugin_api::{NewUser, TeamRole, UserRole};

use super::{
    Account, Changes, Input, Membership, NewAccount, Plan, RESERVED_USER_IDS, Refusal, Snapshot,
    Source, Staged, UserWrite,
    lookup::{candidate_ids, link_by_email, same_binding},
    removed_by_sync, role_after, teams,
};
use crate::{
    budget::{BudgetDuration, period_end},
    identity::alias_of,
    ids::shorten,
    policy::{Policy, UiAccess},
};

/// Decides a sign-in.
///
/// # Errors
/// The refusals: a reserved or foreign-bound account, `restricted_sso_group`, `admin_only`.
pub fn decide(
    input: &Input<'_>,
    snapshot: &Snapshot,
    policy: &Policy<'_>,
    now: DateTime<Utc>,
) -> Result<Plan, Refusal> {
    let Input { openid, proof, values, staged, .. } = *input;
    let binding = proof.binding.as_ref();

    if RESERVED_USER_IDS.contains(&values.user_id.as_str()) {
        return Err(Refusal::ReservedId(values.user_id.clone()));
    }
    if let UiAccess::RestrictedSsoGroup(group) = policy.ui_access
        && !openid.team_ids.iter().any(|team| team == group)
    {
        return Err(Refusal::NotInGroup(group.to_owned()));
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

    let mut passed_over = Vec::new();
    let found = find_account(input, snapshot, &hook_users, policy, &mut passed_over)?;
    let (mut account, mut write, is_new) = match found {
        Found::Stored(account) if !account.active => {
            return Err(Refusal::Deactivated(account.user_id.clone()));
        }
        Found::Stored(account) => (account.clone(), None, false),
        Found::HookUser(index) => {
            let new = hook_users[index].clone();
            (new.account.clone(), Some(new), true)
        }
        Found::Nothing => {
            let new = new_account(input, policy, now);
            (new.account.clone(), Some(new), true)
        }
    };
    let hook_users: Vec<NewAccount> =
        hook_users.into_iter().filter(|new| new.account.user_id != account.user_id).collect();

    // Role: the hook's or identity provider's, else the stored one, else the default;
    // PROXY_ADMIN_ID always wins; then admin_only.
    let (role, role_written) =
        role_after(values.user_role, account.user_role, &account.user_id, policy);
    if policy.ui_access == UiAccess::AdminOnly && !role.is_admin() {
        return Err(Refusal::AdminOnly(role));
    }

    let mut changes = Changes::default();
    if let Some(email) = &values.user_email
        && account.user_email.as_ref() != Some(email)
    {
        changes.user_email = Some(email.clone());
    }
    if account.user_alias.as_deref().is_none_or(str::is_empty)
        && let Some(alias) = alias_of(openid)
    {
        changes.user_alias = Some(alias);
    }
    if account.binding.is_none()
        && let Some(binding) = binding
    {
        changes.binding = Some(binding.clone());
    }
    changes.user_role = role_written;
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
    // user, and the identity provider's groups that name existing teams (additive, as LiteLLM)
    // or teams this sign-in creates from them.
    let mut new_teams = teams::from_groups(&openid.team_ids, snapshot, policy);
    for write in staged {
        if let Staged::Team(team) = write
            && !snapshot.teams.iter().any(|t| t.team_id == team.team_id)
            && !new_teams.iter().any(|t| t.team_id == team.team_id)
        {
            new_teams.push(team.clone());
        }
    }
    let exists = |team: &str| {
        snapshot.teams.iter().any(|t| t.team_id == team)
            || new_teams.iter().any(|t| t.team_id == team)
    };
    let mut memberships: Vec<Membership> = Vec::new();
    let mut member_users: Vec<String> = Vec::new();
    let known_user = |user_id: &str| {
        user_id == account.user_id
            || snapshot.accounts.iter().any(|a| a.user_id == user_id)
            || hook_users.iter().any(|new| new.account.user_id == user_id)
    };
    let add = |team_id: &str,
               user_id: &str,
               role: TeamRole,
               source: Source,
               memberships: &mut Vec<Membership>| {
        let member = snapshot.memberships.iter().any(|(t, u)| t == team_id && u == user_id)
            || memberships.iter().any(|m| m.team_id == team_id && m.user_id == user_id);
        if !member {
            memberships.push(Membership {
                team_id: team_id.to_owned(),
                user_id: user_id.to_owned(),
                role,
                source,
            });
        }
    };
    for write in staged {
        if let Staged::Member { team_id, user_id, role } = write {
            if !known_user(user_id) && !member_users.contains(user_id) {
                member_users.push(user_id.clone());
            }
            // The signing-in user joining a team their groups name is the groups' doing, even
            // when the hook makes the call (LiteLLM's documented hook joins the groups' teams):
            // an authoritative sync takes it away with the group. The hook keeps the role it
            // chose.
            let source = if *user_id == account.user_id && openid.team_ids.contains(team_id) {
                Source::Idp
            } else {
                Source::Hook
            };
            add(team_id, user_id, *role, source, &mut memberships);
        }
    }
    if is_new {
        for (team_id, role) in policy.new_users.teams {
            if exists(team_id) {
                add(team_id, &account.user_id, *role, Source::Default, &mut memberships);
            }
        }
    }
    for team_id in &openid.team_ids {
        if exists(team_id) {
            add(team_id, &account.user_id, TeamRole::User, Source::Idp, &mut memberships);
        }
    }
    // An authoritative sync takes away what it gave and the identity no longer names; never a
    // membership an administrator, a hook or the defaults made.
    let removed: Vec<String> = if policy.sync_teams {
        removed_by_sync(&account.user_id, &snapshot.synced, &openid.team_ids)
    } else {
        Vec::new()
    };

    // The hook's removals have the last word over this sign-in's additions; of what is
    // stored, they take only memberships a sign-in made.
    let mut hook_removed: Vec<(String, String)> = Vec::new();
    for write in staged {
        if let Staged::Removal { team_id, user_id } = write {
            memberships.retain(|m| !(&m.team_id == team_id && &m.user_id == user_id));
            let pair = (team_id.clone(), user_id.clone());
            let by_sync = *user_id == account.user_id && removed.contains(team_id);
            if snapshot.removable.contains(&pair) && !by_sync && !hook_removed.contains(&pair) {
                hook_removed.push(pair);
            }
        }
    }

    let models =
        if account.models.is_empty() { values.models.clone() } else { account.models.clone() };
    Ok(Plan {
        hook_users,
        member_users,
        user,
        new_teams,
        memberships,
        removed,
        hook_removed,
        account,
        is_new,
        role,
        models,
        passed_over,
    })
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
    policy: &Policy<'_>,
    passed_over: &mut Vec<String>,
) -> Result<Found<'s>, Refusal> {
    let binding = input.proof.binding.as_ref();
    let reserved = |user_id: &str| {
        RESERVED_USER_IDS.contains(&user_id) || policy.proxy_admin_id == Some(user_id)
    };
    if let Some(account) = snapshot.accounts.iter().find(|a| same_binding(a, binding)) {
        return Ok(Found::Stored(account));
    }
    // An account the directory provisioned for this very identity (SCIM `externalId` = the
    // directory id the provider proves), bound to no one yet: exactly one, or none is taken.
    if let Some(directory_id) = &input.proof.directory_id {
        let provisioned: Vec<&Account> = snapshot
            .accounts
            .iter()
            .filter(|a| a.directory_id.as_ref() == Some(directory_id) && a.binding.is_none())
            .collect();
        if let [account] = provisioned[..]
            && !reserved(&account.user_id)
        {
            return Ok(Found::Stored(account));
        }
    }
    for id in candidate_ids(input) {
        if let Some(account) = snapshot.accounts.iter().find(|a| a.user_id == id) {
            if account.binding.is_some() {
                return Err(Refusal::BoundElsewhere(account.user_id.clone()));
            }
            if reserved(&account.user_id) {
                return Err(Refusal::AdministratorAccount(account.user_id.clone()));
            }
            if !proves_by_email(input, account) {
                return Err(Refusal::NotLinked(account.user_id.clone()));
            }
            return Ok(Found::Stored(account));
        }
        if let Some(index) = hook_users.iter().position(|new| new.account.user_id == id) {
            return Ok(Found::HookUser(index));
        }
    }
    if link_by_email(input, policy)
        && let Some(email) = &input.values.user_email
    {
        let mut by_email: Vec<&Account> =
            snapshot.accounts.iter().filter(|a| a.user_email.as_ref() == Some(email)).collect();
        by_email.sort_by(|a, b| (a.created_at, &a.user_id).cmp(&(b.created_at, &b.user_id)));
        for account in by_email {
            if account.binding.is_some() || reserved(&account.user_id) {
                passed_over.push(account.user_id.clone());
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

/// The account a new user gets: the values, then LiteLLM's defaults for what they leave open.
fn new_account(input: &Input<'_>, policy: &Policy<'_>, now: DateTime<Utc>) -> NewAccount {
    let values = input.values;
    let defaults = &policy.new_users;
    let role = values.user_role.or(defaults.user_role).unwrap_or(UserRole::InternalUserViewer);
    let mut max_budget = values.max_budget.or(defaults.max_budget);
    let mut duration = values.budget_duration.or(defaults.budget_duration);
    if role == UserRole::InternalUser {
        max_budget = max_budget.or(defaults.max_internal_user_budget);
        duration = duration.or(defaults.internal_user_budget_duration);
    }
    NewAccount {
        account: Account {
            user_id: values.user_id.clone(),
            user_email: values.user_email.clone(),
            user_alias: alias_of(input.openid),
            user_role: Some(role),
            binding: input.proof.binding.clone(),
            models: values.models.clone(),
            max_budget,
            spend: 0.0,
            budget_duration: duration,
            budget_reset_at: period_end(duration, now),
            created_at: now,
            updated_at: now,
            active: true,
            directory_id: None,
        },
        metadata: serde_json::json!({
            "auth_provider": input.openid.provider.as_deref().map(|p| shorten(p, 64))
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
            active: true,
            directory_id: None,
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
