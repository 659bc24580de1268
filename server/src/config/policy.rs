//! The settings the core's rules read, borrowed from the configuration for one decision.

use hookgate_core::policy::{NewUsers, Policy, UiAccess};

use super::{Config, raw::UiAccessModeSetting};

impl Config {
    /// What [`hookgate_core::signin::decide`] applies: borrowed, so making one per sign-in
    /// copies nothing.
    pub fn policy(&self) -> Policy<'_> {
        let defaults = &self.default_internal_user_params;
        Policy {
            link_by_email: self.link_sso_accounts_by_email,
            proxy_admin_id: self.proxy_admin_id.as_deref(),
            ui_access: match &self.ui_access_mode {
                UiAccessModeSetting::All => UiAccess::All,
                UiAccessModeSetting::AdminOnly => UiAccess::AdminOnly,
                UiAccessModeSetting::RestrictedSsoGroup { group } => {
                    UiAccess::RestrictedSsoGroup(group)
                }
            },
            new_users: NewUsers {
                user_role: defaults.user_role,
                models: defaults.models.as_deref().unwrap_or_default(),
                max_budget: defaults.max_budget,
                budget_duration: defaults.budget_duration,
                teams: &defaults.teams,
                max_internal_user_budget: self.max_internal_user_budget,
                internal_user_budget_duration: self.internal_user_budget_duration,
            },
            sync_teams: self.sync_user_role_and_teams,
            roles: self.role_map.as_ref(),
            team_creation: self.team_creation.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use hookgate_core::policy::{Policy, UiAccess};
    use plugin_api::{TeamRole, UserRole};

    use crate::config::Config;

    fn config(yaml: &str, env: &[(&str, &str)]) -> Config {
        let env: Vec<(String, String)> =
            env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        Config::from_text(std::path::Path::new("/etc/hookgate/config.yaml"), yaml, &move |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
        .expect("a valid config")
    }

    #[test]
    fn an_empty_config_gives_the_cores_default_policy() {
        assert_eq!(config("", &[]).policy(), Policy::default());
    }

    #[test]
    fn each_setting_reaches_the_policy() {
        let yaml = "general_settings:\n  link_sso_accounts_by_email: false\n  ui_access_mode: \
                    {type: restricted_sso_group, restricted_sso_group: ops}\nlitellm_settings:\n  \
                    max_internal_user_budget: 10\n  internal_user_budget_duration: 1mo\n  \
                    default_internal_user_params:\n    user_role: internal_user\n    models: \
                    [gpt-4o]\n    max_budget: 3\n    budget_duration: 1d\n    teams: [core, \
                    {team_id: ops, user_role: admin}]\n";
        let config = config(yaml, &[("PROXY_ADMIN_ID", "root")]);
        let policy = config.policy();
        assert!(!policy.link_by_email);
        assert_eq!(policy.proxy_admin_id, Some("root"));
        assert_eq!(policy.ui_access, UiAccess::RestrictedSsoGroup("ops"));
        let new = policy.new_users;
        assert_eq!(new.user_role, Some(UserRole::InternalUser));
        assert_eq!(new.models, ["gpt-4o"]);
        assert_eq!((new.max_budget, new.max_internal_user_budget), (Some(3.0), Some(10.0)));
        assert_eq!(new.budget_duration, Some("1d".parse().unwrap()));
        assert_eq!(new.internal_user_budget_duration, Some("1mo".parse().unwrap()));
        assert_eq!(
            new.teams,
            [("core".to_owned(), TeamRole::User), ("ops".to_owned(), TeamRole::Admin)]
        );
        let admin_only = "general_settings:\n  ui_access_mode: admin_only\n";
        assert_eq!(
            super::super::Config::policy(&self::config(admin_only, &[])).ui_access,
            UiAccess::AdminOnly
        );
    }
}
