//! Settings: parsed from a LiteLLM `config.yaml` and the environment, validated, then passed to
//! whoever needs them. Nothing else in the server reads the config file or the environment.
//!
//! Here: the validated [`Config`] and its parts, and [`Config::load`]. The YAML side is in
//! `raw` (serde types) and `yaml` (parsing, `os.environ/` references), the checks that turn it
//! into a `Config` in `validate`, the config file's permission checks in `permissions`, and the
//! secret wrapper in `secret`.

mod error;
mod hosts;
mod oidc;
mod permissions;
mod policy;
mod raw;
mod secret;
mod validate;
mod yaml;

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use self::permissions::{config_file_problems, warn_if_others_can_read};
pub(crate) use self::validate::parse_span;
pub use self::{
    error::ConfigError,
    hosts::AllowedHosts,
    oidc::{ClaimPaths, Endpoints, GraphSettings, OidcSettings, ProviderKind},
    raw::{Cidr, UiAccessModeSetting},
    secret::Secret,
};
use crate::plugins::HookRef;
use hookgate_core::budget::BudgetDuration;
use plugin_api::{TeamRole, UserRole};

/// The hook timeout when `general_settings.hook_timeout` is not set.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `/metrics` reuses its count of live sessions.
pub const METRICS_LIVE_SESSIONS_TTL: Duration = Duration::from_secs(15);

/// Where a setting's value came from, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The config file.
    File,
    /// An environment variable.
    Environment,
}

/// `litellm_settings.default_internal_user_params`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DefaultUserParams {
    /// Role for new users when neither the identity provider nor a hook gives one.
    pub user_role: Option<UserRole>,
    /// Models for new users.
    pub models: Option<Vec<String>>,
    /// Budget for new users.
    pub max_budget: Option<f64>,
    /// Budget period for new users.
    pub budget_duration: Option<BudgetDuration>,
    /// Teams new users join.
    pub teams: Vec<(String, TeamRole)>,
}

/// The validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The config file, absolute.
    pub file: PathBuf,
    /// Its folder: relative paths in the file are relative to it.
    pub dir: PathBuf,
    /// `general_settings.custom_ui_sso_sign_in_handler`.
    pub custom_ui_sso_sign_in_handler: Option<HookRef>,
    /// `general_settings.custom_sso`.
    pub custom_sso: Option<HookRef>,
    /// Where `module.attribute` references are looked up, in order: `general_settings.plugin_dirs`,
    /// the config file's folder, then `HOOKGATE_PLUGIN_PATH`.
    pub plugin_dirs: Vec<PathBuf>,
    /// `general_settings.master_key` or `LITELLM_MASTER_KEY`.
    pub master_key: Option<(Secret, Source)>,
    /// `DATABASE_URL` or `general_settings.database_url`.
    pub database_url: Option<Secret>,
    /// `general_settings.trusted_proxy_ranges`.
    pub trusted_proxy_ranges: Vec<ipnet::IpNet>,
    /// `general_settings.hook_timeout`.
    pub hook_timeout: Duration,
    /// `general_settings.hook_concurrency`: how many hook calls may run at once.
    pub hook_concurrency: usize,
    /// `general_settings.ui_access_mode`.
    pub ui_access_mode: UiAccessModeSetting,
    /// `general_settings.session_cookie_http_only` (default true).
    pub session_cookie_http_only: bool,
    /// `litellm_settings.max_internal_user_budget`.
    pub max_internal_user_budget: Option<f64>,
    /// `litellm_settings.internal_user_budget_duration`.
    pub internal_user_budget_duration: Option<BudgetDuration>,
    /// `litellm_settings.default_internal_user_params`.
    pub default_internal_user_params: DefaultUserParams,
    /// `litellm_settings.max_ui_session_budget`.
    pub max_ui_session_budget: Option<f64>,
    /// `PROXY_BASE_URL`: the public base URL, without a trailing slash.
    pub proxy_base_url: Option<String>,
    /// `SERVER_ROOT_PATH`: a path prefix such as `/litellm`, or empty.
    pub server_root_path: String,
    /// `ALLOWED_EMAIL_DOMAINS`, lower-case.
    pub allowed_email_domains: Vec<String>,
    /// `PROXY_ADMIN_ID`.
    pub proxy_admin_id: Option<String>,
    /// `LITELLM_UI_SESSION_DURATION` (default 24h).
    pub session_duration: Duration,
    /// The OpenID Connect provider the environment configures.
    pub oidc: Option<OidcSettings>,
    /// How long a started OIDC sign-in may take (`general_settings.oidc_flow_timeout`, 10 min).
    pub oidc_flow_timeout: Duration,
    /// `UI_USERNAME` (default `admin`).
    pub ui_username: String,
    /// `UI_PASSWORD` (default: the master key).
    pub ui_password: Option<Secret>,
    /// `general_settings.disable_password_login_when_sso_enabled`.
    pub disable_password_login_when_sso_enabled: bool,
    /// `allow_insecure_plugin_permissions`: load plugins from files or folders that others may
    /// write, or that resolve outside the plugin folders (off: such plugins are refused).
    pub allow_insecure_plugin_permissions: bool,
    /// `link_sso_accounts_by_email`: an SSO identity with a verified email may take an existing
    /// account that is bound to no identity (default on).
    pub link_sso_accounts_by_email: bool,
    /// `litellm_jwtauth.sync_user_role_and_teams`: the identity provider is authoritative for
    /// teams (a sign-in removes the memberships a sync made that it no longer names).
    pub sync_user_role_and_teams: bool,
    /// Roles from groups: `role_mappings` (or `GENERIC_ROLE_MAPPINGS_ROLES` and
    /// `GENERIC_ROLE_MAPPINGS_DEFAULT_ROLE`), with `jwt_litellm_role_map` when
    /// `sync_user_role_and_teams` is on.
    pub role_map: Option<hookgate_core::policy::RoleMap>,
    /// `general_settings.create_teams_from_groups` with `litellm_settings.default_team_params`:
    /// which groups that are no team yet become one, with what (`None`: none do).
    pub team_creation: Option<hookgate_core::policy::TeamCreation>,
    /// `sign_in_event_retention`: sign-in events older than this are pruned (default 90 days).
    pub sign_in_event_retention: Duration,
    /// HTTP limits: header-read, idle keep-alive and body timeouts, and the connection caps.
    pub http: HttpLimits,
    /// The `Host` headers answered: `general_settings.allowed_hosts`, PROXY_BASE_URL's host, IP
    /// literals and `localhost`; any other gets 421.
    pub allowed_hosts: AllowedHosts,
    /// `general_settings.litellm_proxy_url` or `LITELLM_PROXY_URL`: the LiteLLM proxy hookgate
    /// is the front door of (its base URL as hookgate reaches it, no trailing slash).
    pub litellm_proxy_url: Option<String>,
    /// `general_settings.scim_token`: the bearer token of SCIM clients; without it there is no
    /// `/scim/v2` (read at startup: a reload does not add or remove the routes).
    pub scim_token: Option<Secret>,
    /// `GET /metrics` is served: `litellm_settings.callbacks` (or `success_callback`,
    /// `failure_callback`) names `prometheus`.
    pub prometheus: bool,
    /// `general_settings.require_auth_for_metrics_endpoint`: `/metrics` needs the master key.
    pub require_auth_for_metrics_endpoint: bool,
    /// How long `/metrics` reuses its count of live sessions: 15 s. The tests shorten it with
    /// `HOOKGATE_TEST_METRICS_LIVE_SESSIONS_TTL_MS` (undocumented: not a setting).
    pub metrics_live_sessions_ttl: Duration,
    /// Keys in the file that hookgate does not implement.
    pub ignored_keys: Vec<String>,
    /// Keys of LiteLLM's SSO settings (`general_settings.litellm_jwtauth`,
    /// `general_settings.ui_access_mode`) that hookgate reads but does not implement: named in
    /// a warning of their own at startup and by `hookgate check`.
    pub not_implemented: Vec<String>,
    /// Settings given under two names (LiteLLM's and hookgate's alias) with different values:
    /// one warning each, saying which is used.
    pub setting_conflicts: Vec<String>,
}

/// Limits on HTTP connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// A client must send a request's whole head within this (`http_header_read_timeout`).
    pub header_read_timeout: Duration,
    /// A new connection must deliver its first whole request head within this
    /// (`http_first_request_timeout`; at most `header_read_timeout`).
    pub first_request_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this
    /// (`http_idle_timeout`).
    pub idle_timeout: Duration,
    /// A request body must arrive within this (`http_body_timeout`).
    pub body_timeout: Duration,
    /// At most this many connections are served at once; more wait to be accepted
    /// (`max_connections`).
    pub max_connections: usize,
    /// At most this many of them from one client address (IPv6 by /64); more are closed at
    /// once. Trusted proxies (`trusted_proxy_ranges`) are not held to it
    /// (`max_connections_per_client`).
    pub max_connections_per_client: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            first_request_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            max_connections: 1024,
            max_connections_per_client: 32,
        }
    }
}

impl Config {
    /// Whether `ip` (canonical) is one of the OAuth proxy's addresses (`trusted_proxy_ranges`).
    pub fn is_trusted_proxy(&self, ip: &std::net::IpAddr) -> bool {
        self.trusted_proxy_ranges.iter().any(|range| range.contains(ip))
    }

    /// Whether any single sign-on is configured (an OIDC provider or the header hook).
    pub fn sso_configured(&self) -> bool {
        self.oidc.is_some() || self.custom_ui_sso_sign_in_handler.is_some()
    }
}

impl Config {
    /// Checks that only root or the server's user can change `file` (the loader's
    /// `StrictModes`, [`crate::plugins::strict_mode_problems`]), then reads, parses and
    /// validates it together with the process environment. Warns when the file writes the
    /// master key itself and others can read it.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let absolute = std::path::absolute(file).unwrap_or_else(|_| file.to_owned());
        let problems = config_file_problems(&absolute);
        if !problems.is_empty() {
            return Err(ConfigError::Insecure { file: absolute, problems });
        }
        let text = std::fs::read_to_string(file)
            .map_err(|source| ConfigError::Read { file: file.to_owned(), source })?;
        let config = Self::from_text(&absolute, &text, &|name| std::env::var(name).ok())?;
        if yaml::has_literal_master_key(&text) {
            warn_if_others_can_read(&absolute);
        }
        Ok(config)
    }

    /// Parses and validates config text; `env` looks environment variables up.
    pub fn from_text(
        file: &Path,
        text: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let (raw, ignored_keys) = yaml::parse(file, text)?;
        Self::validate(file, raw, ignored_keys, env)
    }
}

#[cfg(test)]
mod claims_tests;
#[cfg(test)]
mod tests;
