//! The plain values the port takes and gives besides the rows (`entity`): what a write is
//! asked to store, and what a read computes. Defined once, outside `store`, so that both
//! backends' queries (`store` as written, and its SQLite twin, `lite`) take the same types.

use chrono::{DateTime, Utc};
use hookgate_core::{budget::BudgetDuration, identity::Binding};
use plugin_api::UserRole;

pub use hookgate_core::admin::UserEdit;

/// What SCIM sets on a user.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimUser {
    /// Lower-case email.
    pub user_email: Option<String>,
    /// `displayName` (or the name's parts).
    pub user_alias: Option<String>,
    /// `active`.
    pub active: bool,
    /// `userName`, `externalId`, `name`, as kept in `users.scim`.
    pub scim: serde_json::Value,
}

/// One user as the sync preview reads them.
#[derive(Debug, Clone, PartialEq)]
pub struct UserStanding {
    /// The user's id.
    pub user_id: String,
    /// Their stored role (`None` when unset or not a role).
    pub user_role: Option<UserRole>,
    /// The memberships a sync made: (team, user) pairs, sorted by team.
    pub synced: Vec<(String, String)>,
    /// What their latest allowed sign-in that recorded groups recorded; `None` when none did.
    pub recorded: Option<Recorded>,
}

/// The groups a sign-in event recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The groups the identity named.
    pub groups: Vec<String>,
    /// The groups the role mapping read, when a claim of their own gave them.
    pub role_groups: Option<Vec<String>>,
    /// When.
    pub at: DateTime<Utc>,
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

/// Filters for [`crate::Db::list_users`].
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Only these ids.
    pub user_ids: Option<Vec<String>>,
    /// Only this role.
    pub role: Option<String>,
    /// Email containing this (case-insensitive).
    pub email_contains: Option<String>,
}

/// A user an administrator creates (`/user/new`).
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Its id.
    pub user_id: String,
    /// Its email (stored lower-case).
    pub user_email: Option<String>,
    /// Its display name.
    pub user_alias: Option<String>,
    /// Its role.
    pub role: plugin_api::UserRole,
    /// Its models.
    pub models: Vec<String>,
    /// Its budget in USD.
    pub max_budget: Option<f64>,
    /// Its budget period.
    pub budget_duration: Option<BudgetDuration>,
    /// The identity it is bound to before anyone signs in with it.
    pub binding: Option<Binding>,
    /// Its metadata object.
    pub metadata: serde_json::Value,
}
