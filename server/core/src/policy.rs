//! The settings the rules read, borrowed from the server's configuration for one decision.

use plugin_api::{TeamRole, UserRole};

use crate::budget::BudgetDuration;

/// Who may use the Admin UI (`general_settings.ui_access_mode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UiAccess<'a> {
    /// Anyone who signs in (LiteLLM's default).
    #[default]
    All,
    /// Only `proxy_admin` and `proxy_admin_viewer`.
    AdminOnly,
    /// Only members of this identity-provider group.
    RestrictedSsoGroup(&'a str),
}

/// What a new user gets when neither the identity provider nor a hook says
/// (`litellm_settings.default_internal_user_params`, `max_internal_user_budget`,
/// `internal_user_budget_duration`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct NewUsers<'a> {
    /// Their role.
    pub user_role: Option<UserRole>,
    /// Their models, without a `custom_sso` hook.
    pub models: &'a [String],
    /// Their budget.
    pub max_budget: Option<f64>,
    /// Their budget period.
    pub budget_duration: Option<BudgetDuration>,
    /// The teams they join, with their role there (only teams that exist).
    pub teams: &'a [(String, TeamRole)],
    /// The budget of an `internal_user` that has none by then.
    pub max_internal_user_budget: Option<f64>,
    /// The period of an `internal_user` that has none by then.
    pub internal_user_budget_duration: Option<BudgetDuration>,
}

/// The settings [`crate::signin::decide`] applies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy<'a> {
    /// `link_sso_accounts_by_email`: an identity with a verified email may take an unbound
    /// account with that email.
    pub link_by_email: bool,
    /// `PROXY_ADMIN_ID`: this user is always `proxy_admin`, and its account is reserved.
    pub proxy_admin_id: Option<&'a str>,
    /// Who may sign in to the UI.
    pub ui_access: UiAccess<'a>,
    /// What new users get.
    pub new_users: NewUsers<'a>,
}

impl Default for Policy<'_> {
    /// The settings of an empty `config.yaml`.
    fn default() -> Self {
        Policy {
            link_by_email: true,
            proxy_admin_id: None,
            ui_access: UiAccess::All,
            new_users: NewUsers::default(),
        }
    }
}
