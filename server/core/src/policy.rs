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
    /// `litellm_jwtauth.sync_user_role_and_teams`: the identity provider is authoritative for
    /// teams — a sign-in also takes the user out of the teams a sync put them in that the
    /// identity no longer names.
    pub sync_teams: bool,
    /// Roles from groups (`role_mappings`, `GENERIC_ROLE_MAPPINGS_*`, `jwt_litellm_role_map`).
    pub roles: Option<&'a RoleMap>,
    /// `general_settings.create_teams_from_groups`: which of the identity's groups that are no
    /// team yet become one, and with what (`None`, the default: groups only join existing
    /// teams, as in LiteLLM).
    pub team_creation: Option<&'a TeamCreation>,
}

/// LiteLLM's `litellm_settings.default_team_params`: what a team made from a group gets (the
/// fields of LiteLLM's `DefaultTeamSSOParams`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TeamParams {
    /// Models the team may use (empty: all).
    pub models: Vec<String>,
    /// Budget in USD (`None`: unlimited).
    pub max_budget: Option<f64>,
    /// How often the budget resets.
    pub budget_duration: Option<BudgetDuration>,
    /// Tokens per minute.
    pub tpm_limit: Option<u64>,
    /// Requests per minute.
    pub rpm_limit: Option<u64>,
}

/// Which groups become teams when a sign-in names them and no such team exists
/// (`general_settings.create_teams_from_groups`): a group listed in `groups`, or one that
/// starts with one of `prefixes`; never every group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TeamCreation {
    /// Groups, exactly as the identity provider names them.
    pub groups: Vec<String>,
    /// Group name prefixes (none empty).
    pub prefixes: Vec<String>,
    /// What the teams get (`default_team_params`).
    pub params: TeamParams,
}

impl TeamCreation {
    /// Whether `group` may become a team.
    pub fn allows(&self, group: &str) -> bool {
        self.groups.iter().any(|allowed| allowed == group)
            || self.prefixes.iter().any(|prefix| !prefix.is_empty() && group.starts_with(prefix))
    }
}

/// Group → role mappings: the highest role whose groups the identity is in, else the default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleMap {
    /// Each role and the groups that give it.
    pub roles: Vec<(UserRole, Vec<String>)>,
    /// The role of an identity in none of the groups (`None`: the identity's own, or none).
    pub default_role: Option<UserRole>,
}

/// LiteLLM's roles from the most to the least privileged (its role-mapping hierarchy).
const HIERARCHY: [UserRole; 4] = [
    UserRole::ProxyAdmin,
    UserRole::ProxyAdminViewer,
    UserRole::InternalUser,
    UserRole::InternalUserViewer,
];

impl RoleMap {
    /// The role `groups` map to: the most privileged role (in LiteLLM's order `proxy_admin`,
    /// `proxy_admin_viewer`, `internal_user`, `internal_user_viewer`) one of whose groups the
    /// identity is in, else the default role.
    pub fn role_of(&self, groups: &[String]) -> Option<UserRole> {
        let given = |role: UserRole| {
            self.roles.iter().any(|(mapped, mapped_groups)| {
                *mapped == role && mapped_groups.iter().any(|group| groups.contains(group))
            })
        };
        HIERARCHY.into_iter().find(|role| given(*role)).or(self.default_role)
    }
}

impl Default for Policy<'_> {
    /// The settings of an empty `config.yaml`.
    fn default() -> Self {
        Policy {
            link_by_email: true,
            proxy_admin_id: None,
            ui_access: UiAccess::All,
            new_users: NewUsers::default(),
            sync_teams: false,
            roles: None,
            team_creation: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_privileged_mapped_role_wins_else_the_default() {
        let map = RoleMap {
            roles: vec![
                (UserRole::InternalUser, vec!["eng".into(), "ops".into()]),
                (UserRole::ProxyAdmin, vec!["admins".into()]),
                (UserRole::ProxyAdminViewer, vec!["audit".into()]),
            ],
            default_role: Some(UserRole::InternalUserViewer),
        };
        let groups = |names: &[&str]| names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        for (names, role) in [
            (&["eng"][..], UserRole::InternalUser),
            (&["eng", "audit"][..], UserRole::ProxyAdminViewer),
            (&["ops", "admins", "audit"][..], UserRole::ProxyAdmin),
            (&["sales"][..], UserRole::InternalUserViewer),
            (&[][..], UserRole::InternalUserViewer),
        ] {
            assert_eq!(map.role_of(&groups(names)), Some(role), "{names:?}");
        }
        let no_default = RoleMap { default_role: None, ..map };
        assert_eq!(no_default.role_of(&groups(&["sales"])), None);
    }
}
