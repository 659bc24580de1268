//! The sign-in's rules as one pure function, [`decide`]: from what the identity says, what the
//! `custom_sso` hook decided, what the database held when the sign-in read it (a [`Snapshot`]),
//! the settings ([`Policy`]) and the clock, to a [`Plan`] of writes or a [`Refusal`] — no I/O, no
//! HTTP, no storage types.
//!
//! The server's pipeline reads the snapshot, runs the hooks, calls [`decide`], and applies the
//! plan in one transaction. A plan made from a snapshot another sign-in has since changed is
//! refused by the write (it checks what it read) and made again.

use chrono::{DateTime, Utc};
use plugin_api::{NewUser, OpenId, TeamRole, UserRole};

use crate::{
    budget::{BudgetDuration, period_end},
    identity::{Binding, Proof, alias_of},
    ids::shorten,
    policy::{Policy, UiAccess},
    values::Values,
};

pub use self::sync::{Preview, Standing, preview_first_sync, removed_by_sync, role_after};
mod teams;
pub use teams::{NewTeam, RESERVED_TEAM_IDS};

/// User ids single sign-on never reaches: LiteLLM's password login's user.
pub const RESERVED_USER_IDS: &[&str] = &["default_user_id"];

/// Why [`decide`] refuses a sign-in. Each says what the user sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The hook or identity chose a user id only the password login may use.
    #[error(
        "the user id {0:?} is reserved for the password login and cannot be reached through \
         single sign-on"
    )]
    ReservedId(String),
    /// `ui_access_mode: restricted_sso_group`, and the identity is not in the group.
    #[error("the user is not in the restricted SSO group {0:?}")]
    NotInGroup(String),
    /// `ui_access_mode: admin_only`, and the user's role is not an admin's.
    #[error("only proxy admins may sign in (ui_access_mode: admin_only); this user's role is {0}")]
    AdminOnly(UserRole),
    /// The account the identity maps to is bound to another identity.
    #[error(
        "the account {0:?} belongs to another sign-in identity; an administrator can delete or \
         rename it if this is a mistake"
    )]
    BoundElsewhere(String),
    /// The account is `PROXY_ADMIN_ID`'s or the password login's, and not bound to this identity.
    #[error(
        "the account {0:?} is the administrator account (PROXY_ADMIN_ID or the password \
         login's) and is not bound to this identity; it can be reached through single sign-on \
         only by the identity that created it"
    )]
    AdministratorAccount(String),
    /// An unbound account the identity cannot prove is its own (no matching verified email).
    #[error(
        "the account {0:?} exists but is not linked to your sign-in; ask an administrator to \
         link it to your identity"
    )]
    NotLinked(String),
    /// The account was deprovisioned (SCIM `active: false`).
    #[error(
        "the account {0:?} is deactivated: the identity provider deprovisioned it; ask an \
         administrator if this is a mistake"
    )]
    Deactivated(String),
}

/// A write a `custom_sso` hook asked for through the host API.
#[derive(Debug, Clone, PartialEq)]
pub enum Staged {
    /// `new_user`.
    NewUser(NewUser),
    /// `add_team_member`.
    Member {
        /// The team.
        team_id: String,
        /// The user.
        user_id: String,
        /// Their role in the team.
        role: TeamRole,
    },
    /// `remove_team_member` (plugin-api 0.1.1).
    Removal {
        /// The team.
        team_id: String,
        /// The user.
        user_id: String,
    },
    /// `create_team` (plugin-api 0.1.1), checked by the host; its source is [`Source::Hook`].
    Team(NewTeam),
}

/// A stored user, as the rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    /// The user's id.
    pub user_id: String,
    /// Lower-case email.
    pub user_email: Option<String>,
    /// Display name.
    pub user_alias: Option<String>,
    /// The stored role (`None` when unset or not a role).
    pub user_role: Option<UserRole>,
    /// The sign-in identity the account is bound to.
    pub binding: Option<Binding>,
    /// Models.
    pub models: Vec<String>,
    /// Budget in USD; `None` is unlimited.
    pub max_budget: Option<f64>,
    /// Spend in the current period.
    pub spend: f64,
    /// Budget period (`None` when unset or unreadable).
    pub budget_duration: Option<BudgetDuration>,
    /// When the spend next resets.
    pub budget_reset_at: Option<DateTime<Utc>>,
    /// Created (email matches take the oldest account).
    pub created_at: DateTime<Utc>,
    /// Last changed: a plan's update applies only if the row is still as it was read.
    pub updated_at: DateTime<Utc>,
    /// False once deprovisioned (SCIM `active: false`): found, it refuses the sign-in.
    pub active: bool,
}

/// Who made a membership, which decides who may take it away: a sync with the identity
/// provider removes only the memberships it made ([`Source::Idp`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// A sign-in, from the identity's groups.
    Idp,
    /// An administrator (the API or the UI).
    Admin,
    /// A `custom_sso` hook (`add_team_member`).
    Hook,
    /// `default_internal_user_params.teams`, when the user was created.
    Default,
    /// A SCIM client (the identity provider's group push); SCIM removes only these.
    Scim,
    /// Made before hookgate recorded sources: kept, as an administrator's would be.
    Unknown,
}

impl Source {
    /// Its stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Idp => "idp",
            Source::Admin => "admin",
            Source::Hook => "hook",
            Source::Default => "default",
            Source::Scim => "scim",
            Source::Unknown => "unknown",
        }
    }

    /// Whether a `custom_sso` hook's `remove_team_member` may take the membership away: one a
    /// sign-in made (from groups, a hook, or the defaults), never an administrator's or one of
    /// unknown origin.
    pub fn hook_may_remove(self) -> bool {
        matches!(self, Source::Idp | Source::Hook | Source::Default)
    }

    /// The source a stored name means (a name this build does not know is `Unknown`: kept).
    pub fn of(name: &str) -> Source {
        match name {
            "idp" => Source::Idp,
            "admin" => Source::Admin,
            "hook" => Source::Hook,
            "default" => Source::Default,
            "scim" => Source::Scim,
            _ => Source::Unknown,
        }
    }
}

/// A membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The team.
    pub team_id: String,
    /// The member.
    pub user_id: String,
    /// Their role in the team.
    pub role: TeamRole,
    /// Who made it.
    pub source: Source,
}

/// A team, as the rules and the hook see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Team {
    /// Its id.
    pub team_id: String,
    /// Its display name.
    pub team_alias: Option<String>,
    /// Its models.
    pub models: Vec<String>,
}

impl From<&str> for Team {
    fn from(team_id: &str) -> Self {
        Team { team_id: team_id.to_owned(), team_alias: None, models: Vec::new() }
    }
}

/// What the database held for one sign-in: every account its lookup keys (ids, binding, email)
/// found, those accounts' memberships, and which of the teams it names exist.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Accounts found by id, binding or email.
    pub accounts: Vec<Account>,
    /// Memberships of those accounts and of the users the hook adds to teams: (team, user).
    pub memberships: Vec<(String, String)>,
    /// Of those, the ones a sync with the identity provider made ([`Source::Idp`]): (team,
    /// user). Only these may an authoritative sync remove.
    pub synced: Vec<(String, String)>,
    /// Of those, the ones a sign-in made (from groups, a hook or the defaults): (team, user).
    /// Only these may a hook's `remove_team_member` remove.
    pub removable: Vec<(String, String)>,
    /// The teams named (identity groups, default teams, the hook's) that exist.
    pub teams: Vec<Team>,
}

impl Keys {
    /// Whether a snapshot read with these keys holds everything `other` asks for.
    pub fn covers(&self, other: &Keys) -> bool {
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
pub struct Keys {
    /// User ids to look up.
    pub user_ids: Vec<String>,
    /// The identity's binding.
    pub binding: Option<Binding>,
    /// The email to look up (only when it may link an account).
    pub email: Option<String>,
    /// Teams whose existence matters.
    pub teams: Vec<String>,
    /// Users whose memberships matter beyond the accounts found.
    pub members: Vec<String>,
}

/// A user to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAccount {
    /// The row.
    pub account: Account,
    /// Who made it (`metadata.created_by`) or where from (`metadata.auth_provider`).
    pub metadata: serde_json::Value,
}

/// Changes to an existing user; `None` leaves a column as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    pub user_email: Option<String>,
    pub user_alias: Option<String>,
    pub binding: Option<Binding>,
    pub user_role: Option<UserRole>,
    pub max_budget: Option<Option<f64>>,
    pub budget_duration: Option<Option<BudgetDuration>>,
    pub budget_reset_at: Option<Option<DateTime<Utc>>>,
    pub spend: Option<f64>,
}

impl Changes {
    /// Whether anything changes.
    pub fn is_empty(&self) -> bool {
        *self == Changes::default()
    }
}

/// What happens to the signing-in user's row.
#[derive(Debug, Clone, PartialEq)]
pub enum UserWrite {
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
pub struct Plan {
    /// Users the `custom_sso` hook created (`new_user`), created unless they exist by then.
    pub hook_users: Vec<NewAccount>,
    /// Users the hook added to a team who do not exist: created as `internal_user`s, as
    /// LiteLLM's `/team/member_add` does.
    pub member_users: Vec<String>,
    /// The signing-in user's row.
    pub user: UserWrite,
    /// Teams to create before the memberships (an existing one is left as it is): the
    /// identity's groups that `create_teams_from_groups` lets become teams.
    pub new_teams: Vec<NewTeam>,
    /// Memberships to add; an existing membership is never changed.
    pub memberships: Vec<Membership>,
    /// Teams the signing-in user leaves: with an authoritative sync
    /// (`sync_user_role_and_teams`), the ones a sync made that the identity no longer names.
    pub removed: Vec<String>,
    /// Memberships the hook removes (`remove_team_member`): (team, user), only ones a sign-in
    /// made, and not already in `removed`.
    pub hook_removed: Vec<(String, String)>,
    /// The account as it is after the plan.
    pub account: Account,
    /// Whether the account is created by this sign-in.
    pub is_new: bool,
    /// The session's role.
    pub role: UserRole,
    /// The session's models.
    pub models: Vec<String>,
    /// Accounts with the identity's verified email that linking by email did not take, because
    /// they are bound to another identity or reserved (for the log).
    pub passed_over: Vec<String>,
}

/// Everything [`decide`] takes besides the snapshot and the settings.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The identity (email already normalised).
    pub openid: &'a OpenId,
    /// What the front door proved.
    pub proof: &'a Proof,
    /// The identity's own id, when the user id was chosen otherwise.
    pub idp_id: Option<&'a str>,
    /// The values the sign-in applies (the hook's, or LiteLLM's defaults).
    pub values: &'a Values,
    /// The hook's host-API writes.
    pub staged: &'a [Staged],
}

/// The keys a snapshot read before the `custom_sso` hook runs: what the identity alone names,
/// so that the hook's `user_info` and `team_info` for the signing-in user and their groups are
/// answered from it, and the decision after the hook usually needs no second read.
pub fn identity_keys(openid: &OpenId, proof: &Proof, policy: &Policy<'_>) -> Keys {
    let mut teams = named_teams(openid, policy);
    teams.sort();
    teams.dedup();
    let user_ids: Vec<String> = openid.id.iter().map(|id| id.trim().to_owned()).collect();
    let email =
        (policy.link_by_email && proof.email_verified).then(|| openid.email.clone()).flatten();
    Keys { members: user_ids.clone(), user_ids, binding: proof.binding.clone(), email, teams }
}

/// The keys a sign-in's snapshot must cover.
pub fn keys(input: &Input<'_>, policy: &Policy<'_>) -> Keys {
    let user_ids: Vec<String> = candidate_ids(input).into_iter().map(str::to_owned).collect();
    let mut teams = named_teams(input.openid, policy);
    let mut members = Vec::new();
    for write in input.staged {
        match write {
            Staged::Member { team_id, user_id, .. } | Staged::Removal { team_id, user_id } => {
                teams.push(team_id.clone());
                members.push(user_id.clone());
            }
            Staged::Team(team) => teams.push(team.team_id.clone()),
            Staged::NewUser(_) => {}
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
        email: link_by_email(input, policy).then(|| input.values.user_email.clone()).flatten(),
        teams,
        members,
    }
}

/// The teams an identity names: its groups, then the default teams.
fn named_teams(openid: &OpenId, policy: &Policy<'_>) -> Vec<String> {
    let mut teams = openid.team_ids.clone();
    teams.extend(policy.new_users.teams.iter().map(|(id, _)| id.clone()));
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
fn link_by_email(input: &Input<'_>, policy: &Policy<'_>) -> bool {
    policy.link_by_email
        && input.proof.email_verified
        && input.values.user_email.is_some()
        && input.values.user_email == input.openid.email
}

fn same_binding(account: &Account, binding: Option<&Binding>) -> bool {
    binding.is_some() && account.binding.as_ref() == binding
}

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

mod sync;
#[cfg(test)]
mod tests;

#[cfg(test)]
mod team_tests;
