//! The data the rules read: stored accounts, teams and memberships as the rules see them, who
//! made a membership ([`Source`]), the hook's [`Staged`] writes, and what the database held for
//! one sign-in ([`Snapshot`]) with the [`Keys`] it was read by.

use chrono::{DateTime, Utc};
use plugin_api::{NewUser, TeamRole, UserRole};

use super::NewTeam;
use crate::{budget::BudgetDuration, identity::Binding};

/// User ids single sign-on never reaches: LiteLLM's password login's user.
pub const RESERVED_USER_IDS: &[&str] = &["default_user_id"];

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
    /// The user's id in the directory that provisions it over SCIM (its `externalId`; Entra
    /// sends the object id): an unbound account is reached by an identity the directory proves
    /// with the same id ([`Proof::directory_id`](crate::identity::Proof::directory_id)).
    pub directory_id: Option<String>,
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

    /// The memberships a `custom_sso` hook's `remove_team_member` may take away: those a sign-in
    /// made (from groups, a hook, or the defaults), never an administrator's, SCIM's or one of
    /// unknown origin.
    pub const HOOK_REMOVABLE: [Source; 3] = [Source::Idp, Source::Hook, Source::Default];

    /// Whether the membership is one of [`Self::HOOK_REMOVABLE`].
    pub fn hook_may_remove(self) -> bool {
        Self::HOOK_REMOVABLE.contains(&self)
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
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
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
    /// The identity's directory id (an account provisioned with it as its `externalId`).
    pub directory_id: Option<String>,
}
