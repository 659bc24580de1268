//! What [`decide`](super::decide) takes ([`Input`]) and gives: a [`Plan`] of writes, or a
//! [`Refusal`].

use chrono::{DateTime, Utc};
use plugin_api::{OpenId, UserRole};

use super::{Account, Membership, NewTeam, Staged};
use crate::{
    budget::BudgetDuration,
    identity::{Binding, Proof},
    values::Values,
};

/// Why [`decide`](super::decide) refuses a sign-in. Each says what the user sees.
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

impl Plan {
    /// Whether the plan leaves every account, team and membership as it is: all it writes is
    /// the session and the event (a returning user with nothing new), so what any sign-in's
    /// [`Snapshot`](super::Snapshot) holds is the same after it.
    pub fn keeps_accounts(&self) -> bool {
        matches!(self.user, UserWrite::Unchanged)
            && self.hook_users.is_empty()
            && self.member_users.is_empty()
            && self.new_teams.is_empty()
            && self.memberships.is_empty()
            && self.removed.is_empty()
            && self.hook_removed.is_empty()
    }
}

/// Everything [`decide`](super::decide) takes besides the snapshot and the settings.
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
