//! What a `custom_sso` hook can ask of the server: users, teams and the log.

use std::fmt;

use abi_stable::{
    StableAbi,
    std_types::{RStr, RString},
};

use crate::{
    TeamRole, UserRole,
    abi::{HostRef2, NewTeamFfi, NewUserFfi},
};

/// A user as the server stores it (a subset of LiteLLM's `LiteLLM_UserTable`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserRecord {
    /// The user's id.
    pub user_id: String,
    /// The user's email, lower-case.
    pub user_email: Option<String>,
    /// The user's display name.
    pub user_alias: Option<String>,
    /// The user's stored role.
    pub user_role: Option<UserRole>,
    /// The id the identity provider knows the user by.
    pub sso_user_id: Option<String>,
    /// Models the user may use.
    pub models: Vec<String>,
    /// Budget in USD; `None` is unlimited.
    pub max_budget: Option<f64>,
    /// Spend so far in the current budget period, in USD.
    pub spend: f64,
    /// How often the budget resets.
    pub budget_duration: Option<String>,
    /// Ids of the teams the user belongs to.
    pub teams: Vec<String>,
}

/// A user for [`Host::new_user`] to create (the fields of LiteLLM's `/user/new` that matter here).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewUser {
    /// The new user's id; the server makes one up when it is `None`.
    pub user_id: Option<String>,
    /// Email; the server lower-cases it.
    pub user_email: Option<String>,
    /// Display name.
    pub user_alias: Option<String>,
    /// Role; `internal_user_viewer` when `None`.
    pub user_role: Option<UserRole>,
    /// Models the user may use.
    pub models: Vec<String>,
    /// Budget in USD; `None` is unlimited.
    pub max_budget: Option<f64>,
    /// How often the budget resets.
    pub budget_duration: Option<String>,
}

/// A team as the server stores it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TeamRecord {
    /// The team's id.
    pub team_id: String,
    /// The team's display name.
    pub team_alias: Option<String>,
    /// Models the team may use.
    pub models: Vec<String>,
}

/// A team for [`Host::create_team`] to create (the fields of LiteLLM's `/team/new` that
/// `default_team_params` has).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NewTeam {
    /// The team's id.
    pub team_id: String,
    /// Its display name.
    pub team_alias: Option<String>,
    /// Models the team may use (empty: all).
    pub models: Vec<String>,
    /// Budget in USD; `None` is unlimited.
    pub max_budget: Option<f64>,
    /// How often the budget resets (`30d`, `1mo`…).
    pub budget_duration: Option<String>,
    /// Tokens per minute.
    pub tpm_limit: Option<u64>,
    /// Requests per minute.
    pub rpm_limit: Option<u64>,
}

/// How important a log line is.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Fine detail.
    Trace = 0,
    /// Detail for debugging.
    Debug = 1,
    /// Normal operation.
    Info = 2,
    /// Something unexpected that the hook handled.
    Warn = 3,
    /// Something failed.
    Error = 4,
}

/// Why a host call failed.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct HostError {
    message: RString,
}

impl HostError {
    /// A host error with a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: RString::from(message.into()) }
    }

    /// What went wrong.
    pub fn message(&self) -> &str {
        self.message.as_str()
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message.as_str())
    }
}

impl std::error::Error for HostError {}

/// The server, as a `custom_sso` hook sees it: the calls LiteLLM's Python hooks make
/// (`user_info`, `new_user`, `add_new_member`) plus a log that reaches the server's own.
///
/// Every call is synchronous and runs against the server's database; the hook runs on a blocking
/// thread, so waiting is fine.
#[derive(Clone, Copy)]
pub struct Host<'a> {
    raw: HostRef2<'a>,
}

impl fmt::Debug for Host<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Host")
    }
}

impl<'a> From<HostRef2<'a>> for Host<'a> {
    /// The author-facing handle to a host; servers and tests use this to call a hook function
    /// directly, without a library boundary.
    fn from(raw: HostRef2<'a>) -> Self {
        Self { raw }
    }
}

impl<'a> Host<'a> {
    /// The user with this id, or `None` when there is none.
    pub fn user_info(&self, user_id: &str) -> Result<Option<UserRecord>, HostError> {
        let vtable = self.raw.vtable();
        (vtable.user_info)(self.raw.ctx(), RStr::from_str(user_id))
            .into_result()
            .map(|user| user.into_option().map(|user| user.to_native()))
    }

    /// Creates a user (LiteLLM's `/user/new`) and returns it as stored.
    ///
    /// # Errors
    /// Fails when a user with that id already exists, or the values are invalid.
    pub fn new_user(&self, user: &NewUser) -> Result<UserRecord, HostError> {
        let vtable = self.raw.vtable();
        (vtable.new_user)(self.raw.ctx(), &NewUserFfi::from_native(user))
            .into_result()
            .map(|user| user.to_native())
    }

    /// The team with this id, or `None` when there is none.
    pub fn team_info(&self, team_id: &str) -> Result<Option<TeamRecord>, HostError> {
        let vtable = self.raw.vtable();
        (vtable.team_info)(self.raw.ctx(), RStr::from_str(team_id))
            .into_result()
            .map(|team| team.into_option().map(|team| team.to_native()))
    }

    /// Adds the user to the team with this role (LiteLLM's `/team/member_add`), when the sign-in
    /// commits. Adding a member who is already in the team changes nothing and succeeds: the
    /// role an admin gave them stays. A user who does not exist yet is created as an
    /// `internal_user`, as LiteLLM does.
    ///
    /// # Errors
    /// Fails when the team does not exist.
    pub fn add_team_member(
        &self,
        team_id: &str,
        user_id: &str,
        role: TeamRole,
    ) -> Result<(), HostError> {
        let vtable = self.raw.vtable();
        (vtable.add_team_member)(self.raw.ctx(), team_id.into(), user_id.into(), role).into_result()
    }

    /// Takes the user out of the team (LiteLLM's `/team/member_delete`), when the sign-in
    /// commits, with the memberships the sign-in itself adds: so a hook can implement its own
    /// sync. Only memberships a sign-in made are removed — from the identity's groups, a
    /// hook's `add_team_member`, or `default_internal_user_params.teams`; one an administrator
    /// made (the API or the UI), or one made before hookgate recorded who made memberships,
    /// stays, and removing it, or a membership that does not exist, changes nothing and
    /// succeeds. A user who loses a membership also loses the sessions they had (issued with
    /// it); in front of LiteLLM they leave the LiteLLM team too, and those sessions' keys are
    /// deleted there, before hookgate writes (LiteLLM refusing fails the sign-in).
    /// Since plugin-api 0.1.1.
    ///
    /// # Errors
    /// Fails when an id is empty.
    pub fn remove_team_member(&self, team_id: &str, user_id: &str) -> Result<(), HostError> {
        let vtable = self.raw.vtable();
        (vtable.remove_team_member)(self.raw.ctx(), team_id.into(), user_id.into()).into_result()
    }

    /// Creates a team (LiteLLM's `/team/new`), when the sign-in commits; `add_team_member`
    /// and `team_info` see it at once. Creating a team that exists changes nothing and
    /// succeeds (its settings stay as they are), so two sign-ins may create the same team. In
    /// front of LiteLLM the team is created there first (one LiteLLM has counts as created;
    /// LiteLLM refusing fails the sign-in). Since plugin-api 0.1.1.
    ///
    /// # Errors
    /// Fails when the id is empty, longer than 255 bytes, has control characters or is
    /// LiteLLM's `litellm-dashboard`, or a value is invalid (a negative budget, a period that
    /// is not LiteLLM's).
    pub fn create_team(&self, team: &NewTeam) -> Result<(), HostError> {
        let vtable = self.raw.vtable();
        (vtable.create_team)(self.raw.ctx(), &NewTeamFfi::from_native(team)).into_result()
    }

    /// Writes a line to the server's log, tagged with the hook's name.
    pub fn log(&self, level: LogLevel, message: impl AsRef<str>) {
        let vtable = self.raw.vtable();
        (vtable.log)(self.raw.ctx(), level, message.as_ref().into());
    }
}
