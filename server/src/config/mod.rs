//! Settings: parsed from a LiteLLM `config.yaml` and the environment, validated, then passed to
//! whoever needs them. Nothing else in the server reads the config file or the environment.

mod hosts;
mod oidc;
mod policy;
mod raw;
mod yaml;

use std::{
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use self::raw::{RawConfig, TeamEntry};
pub use self::{
    hosts::AllowedHosts,
    oidc::{ClaimPaths, Endpoints, OidcSettings, ProviderKind},
    raw::{Cidr, UiAccessModeSetting},
};
use crate::plugins::HookRef;
use hookgate_core::budget::BudgetDuration;
use plugin_api::{TeamRole, UserRole};

/// The hook timeout when `general_settings.hook_timeout` is not set.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(5);

/// How long `/metrics` reuses its count of live sessions.
pub const METRICS_LIVE_SESSIONS_TTL: Duration = Duration::from_secs(15);

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", file.display())]
    Read {
        /// The config file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid, or a value is wrong.
    #[error("{}: {message}", file.display())]
    Invalid {
        /// The config file.
        file: PathBuf,
        /// What is wrong, with the key path and, where known, the line.
        message: String,
    },
    /// Someone other than root or the server's user could change the file (or a folder above
    /// it): it is refused, whatever it says, before it is read.
    #[error("{}", insecure_message(file, problems))]
    Insecure {
        /// The config file, as given (absolute).
        file: PathBuf,
        /// Everything wrong: the file, then folders upwards.
        problems: Vec<crate::plugins::Insecurity>,
    },
}

fn insecure_message(file: &Path, problems: &[crate::plugins::Insecurity]) -> String {
    let mut text = format!(
        "refusing the config file {}: it chooses the plugin libraries the server runs (and can \
         turn their permission checks off), so no one but root or the server's user may be able \
         to change it:",
        file.display()
    );
    for problem in problems {
        text.push_str(&format!("\n    {problem}"));
    }
    text.push_str(
        "\n  the file and every folder above it must be owned by root or the server's user and \
         writable by no one else (chown, chmod go-w); allow_insecure_plugin_permissions does \
         not apply to the config file itself",
    );
    text
}

/// A secret that never shows in logs or debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

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

    fn validate(
        file: &Path,
        raw: RawConfig,
        mut ignored_keys: Vec<String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { file: file.to_owned(), message };
        let env_nonempty = |name: &str| env(name).filter(|value| !value.trim().is_empty());
        let general = raw.general_settings.unwrap_or_default();
        let litellm = raw.litellm_settings.unwrap_or_default();
        let dir = file.parent().map(Path::to_owned).unwrap_or_else(|| PathBuf::from("."));

        let mut plugin_dirs: Vec<PathBuf> =
            general.plugin_dirs.unwrap_or_default().iter().map(|entry| dir.join(entry)).collect();
        plugin_dirs.push(dir.clone());
        if let Some(path) = env_nonempty("HOOKGATE_PLUGIN_PATH") {
            plugin_dirs.extend(std::env::split_paths(&path).filter(|p| !p.as_os_str().is_empty()));
        }

        let master_key = match general.master_key {
            Some(key) if !key.is_empty() => Some((Secret::new(key), Source::File)),
            _ => env_nonempty("LITELLM_MASTER_KEY")
                .map(|key| (Secret::new(key), Source::Environment)),
        };
        let database_url =
            env_nonempty("DATABASE_URL").or(general.database_url).filter(|url| !url.is_empty());

        let trusted_proxy_ranges: Vec<ipnet::IpNet> = general
            .trusted_proxy_ranges
            .unwrap_or_default()
            .into_iter()
            .map(|cidr| cidr.0)
            .collect();
        if general.custom_ui_sso_sign_in_handler.is_some() && trusted_proxy_ranges.is_empty() {
            return Err(invalid(
                "general_settings.trusted_proxy_ranges is required with \
                 general_settings.custom_ui_sso_sign_in_handler: list the CIDR ranges of the \
                 OAuth proxy that sets the identity headers (e.g. [\"127.0.0.1/32\"]), so that \
                 nobody else can sign in by sending those headers"
                    .to_owned(),
            ));
        }

        let hook_concurrency = general.hook_concurrency.unwrap_or(64);
        if hook_concurrency == 0 {
            return Err(invalid(
                "general_settings.hook_concurrency: must be at least 1".to_owned(),
            ));
        }

        let proxy_base_url = match env_nonempty("PROXY_BASE_URL") {
            Some(url) => {
                let url = url.trim().trim_end_matches('/').to_owned();
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(invalid(format!(
                        "environment variable PROXY_BASE_URL={url:?}: must start with http:// or https://"
                    )));
                }
                Some(url)
            }
            None => None,
        };
        let server_root_path = match env_nonempty("SERVER_ROOT_PATH") {
            Some(path) => {
                let path = path.trim().trim_end_matches('/');
                if path.is_empty() {
                    String::new()
                } else if path.starts_with('/') && !path.contains(['?', '#', '\\']) {
                    path.to_owned()
                } else {
                    return Err(invalid(format!(
                        "environment variable SERVER_ROOT_PATH={path:?}: must be a path starting with /"
                    )));
                }
            }
            None => String::new(),
        };
        let allowed_email_domains = env_nonempty("ALLOWED_EMAIL_DOMAINS")
            .map(|list| {
                list.split(',')
                    .map(|domain| domain.trim().trim_start_matches('@').to_ascii_lowercase())
                    .filter(|domain| !domain.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let session_duration = match env_nonempty("LITELLM_UI_SESSION_DURATION") {
            Some(text) => parse_session_duration(&text).ok_or_else(|| {
                invalid(format!(
                    "environment variable LITELLM_UI_SESSION_DURATION={text:?}: expected a \
                     duration such as 24h, 30m or 7d"
                ))
            })?,
            None => Duration::from_secs(24 * 3600),
        };

        let defaults = litellm.default_internal_user_params.unwrap_or_default();
        let mut default_teams = Vec::new();
        for entry in defaults.teams.unwrap_or_default() {
            default_teams.push(match entry {
                TeamEntry::Id(team_id) => (team_id, TeamRole::User),
                TeamEntry::Detailed { team_id, user_role } => {
                    let role = match user_role.as_deref() {
                        None => TeamRole::User,
                        Some(role) => role.parse().map_err(|error: String| {
                            invalid(format!(
                                "litellm_settings.default_internal_user_params.teams: {error}"
                            ))
                        })?,
                    };
                    (team_id, role)
                }
            });
        }

        let oidc = oidc::from_env(env, general.oidc_issuer.clone()).map_err(invalid)?;
        if oidc.is_some() && proxy_base_url.is_none() {
            return Err(invalid(
                "environment variable PROXY_BASE_URL is required with an OpenID Connect provider: \
                 the redirect URI sent to the provider must be the public URL you registered \
                 with it (e.g. PROXY_BASE_URL=https://sso.example.com), never one taken from a \
                 client's Host header"
                    .to_owned(),
            ));
        }

        let litellm_proxy_url = match env_nonempty("LITELLM_PROXY_URL")
            .map(|url| (url, "environment variable LITELLM_PROXY_URL"))
            .or_else(|| {
                general
                    .litellm_proxy_url
                    .clone()
                    .filter(|url| !url.trim().is_empty())
                    .map(|url| (url, "general_settings.litellm_proxy_url"))
            }) {
            None => None,
            Some((url, from)) => {
                let url = url.trim().trim_end_matches('/').to_owned();
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(invalid(format!(
                        "{from}={url:?}: must start with http:// or https:// (LiteLLM's base URL \
                         as hookgate reaches it, e.g. http://127.0.0.1:4000)"
                    )));
                }
                if master_key.is_none() {
                    return Err(invalid(format!(
                        "{from} is set, so hookgate is LiteLLM's front door: set \
                         general_settings.master_key (or LITELLM_MASTER_KEY) to LiteLLM's master \
                         key, which hookgate uses to manage LiteLLM's users and keys and to sign \
                         the token cookie LiteLLM's UI reads"
                    )));
                }
                Some(url)
            }
        };

        let max_connections =
            general.max_connections.unwrap_or(HttpLimits::default().max_connections);
        if max_connections == 0 {
            return Err(invalid("general_settings.max_connections: must be at least 1".to_owned()));
        }
        let defaults_http = HttpLimits::default();
        let max_connections_per_client = general
            .max_connections_per_client
            .unwrap_or(defaults_http.max_connections_per_client)
            .min(max_connections);
        if max_connections_per_client == 0 {
            return Err(invalid(
                "general_settings.max_connections_per_client: must be at least 1".to_owned(),
            ));
        }
        let header_read_timeout = general
            .http_header_read_timeout
            .map_or(defaults_http.header_read_timeout, |timeout| timeout.0);
        let first_request_timeout = match general.http_first_request_timeout {
            Some(timeout) if timeout.0 > header_read_timeout => {
                return Err(invalid(format!(
                    "general_settings.http_first_request_timeout ({:?}) is longer than \
                     general_settings.http_header_read_timeout ({header_read_timeout:?}), which \
                     bounds every request head, the first included: make it at most that",
                    timeout.0
                )));
            }
            Some(timeout) => timeout.0,
            None => defaults_http.first_request_timeout.min(header_read_timeout),
        };
        let http = HttpLimits {
            header_read_timeout,
            first_request_timeout,
            idle_timeout: general.http_idle_timeout.map_or(defaults_http.idle_timeout, |t| t.0),
            body_timeout: general.http_body_timeout.map_or(defaults_http.body_timeout, |t| t.0),
            max_connections,
            max_connections_per_client,
        };
        let allowed_hosts =
            AllowedHosts::new(general.allowed_hosts, proxy_base_url.as_deref()).map_err(invalid)?;

        // LiteLLM's callbacks: hookgate implements `prometheus`; the others are reported.
        let mut prometheus = false;
        for (list, callbacks) in [
            ("callbacks", &litellm.callbacks),
            ("success_callback", &litellm.success_callback),
            ("failure_callback", &litellm.failure_callback),
        ] {
            for (index, name) in callbacks.iter().flat_map(|c| c.0.iter()).enumerate() {
                if name.trim() == "prometheus" {
                    prometheus = true;
                } else {
                    ignored_keys.push(format!("litellm_settings.{list}[{index}] ({name})"));
                }
            }
        }

        let metrics_live_sessions_ttl = env_nonempty("HOOKGATE_TEST_METRICS_LIVE_SESSIONS_TTL_MS")
            .and_then(|ms| ms.trim().parse().ok())
            .map_or(METRICS_LIVE_SESSIONS_TTL, Duration::from_millis);

        Ok(Config {
            file: file.to_owned(),
            dir,
            custom_ui_sso_sign_in_handler: general.custom_ui_sso_sign_in_handler,
            custom_sso: general.custom_sso,
            plugin_dirs,
            master_key,
            database_url: database_url.map(Secret::new),
            trusted_proxy_ranges,
            hook_timeout: general.hook_timeout.map_or(DEFAULT_HOOK_TIMEOUT, |timeout| timeout.0),
            hook_concurrency,
            ui_access_mode: general.ui_access_mode.unwrap_or(UiAccessModeSetting::All),
            session_cookie_http_only: general.session_cookie_http_only.unwrap_or(true),
            max_internal_user_budget: litellm.max_internal_user_budget.map(|budget| budget.0),
            internal_user_budget_duration: litellm.internal_user_budget_duration,
            default_internal_user_params: DefaultUserParams {
                user_role: defaults.user_role.map(|role| role.0),
                models: defaults.models,
                max_budget: defaults.max_budget.map(|budget| budget.0),
                budget_duration: defaults.budget_duration,
                teams: default_teams,
            },
            max_ui_session_budget: litellm.max_ui_session_budget.map(|budget| budget.0),
            proxy_base_url,
            server_root_path,
            allowed_email_domains,
            proxy_admin_id: env_nonempty("PROXY_ADMIN_ID"),
            session_duration,
            oidc,
            oidc_flow_timeout: general
                .oidc_flow_timeout
                .map_or(Duration::from_secs(600), |timeout| timeout.0),
            ui_username: env_nonempty("UI_USERNAME").unwrap_or_else(|| "admin".to_owned()),
            ui_password: env_nonempty("UI_PASSWORD").map(Secret::new),
            disable_password_login_when_sso_enabled: general
                .disable_password_login_when_sso_enabled
                .unwrap_or(false),
            allow_insecure_plugin_permissions: general
                .allow_insecure_plugin_permissions
                .unwrap_or(false),
            link_sso_accounts_by_email: general.link_sso_accounts_by_email.unwrap_or(true),
            sign_in_event_retention: general
                .sign_in_event_retention
                .map_or(Duration::from_secs(90 * 86_400), |span| span.0),
            http,
            allowed_hosts,
            litellm_proxy_url,
            prometheus,
            require_auth_for_metrics_endpoint: general
                .require_auth_for_metrics_endpoint
                .unwrap_or(false),
            metrics_live_sessions_ttl,
            ignored_keys,
        })
    }
}

/// What would let someone other than root or the server's user change the config file at
/// `file` (absolute): the file it resolves to and every folder above that, and, when it is
/// reached through a symlink, the folders above the link (whoever can replace the link chooses
/// the file). Nothing when the file cannot be resolved: reading it then says why.
fn config_file_problems(file: &Path) -> Vec<crate::plugins::Insecurity> {
    let Ok(canonical) = file.canonicalize() else { return Vec::new() };
    let mut problems = crate::plugins::strict_mode_problems(&canonical);
    if canonical != file
        && let Some(folder) = file.parent()
    {
        for problem in crate::plugins::strict_mode_problems(folder) {
            if !problems.contains(&problem) {
                problems.push(problem);
            }
        }
    }
    problems
}

/// Warns when the group or others can read `file`, which writes the master key itself: whoever
/// reads it can sign session tokens and use the management API as an admin.
fn warn_if_others_can_read(file: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(mode) = std::fs::metadata(file).map(|metadata| metadata.mode()) else { return };
        let who = match (mode & 0o040 != 0, mode & 0o004 != 0) {
            (true, true) => "its group and others",
            (true, false) => "its group",
            (false, true) => "others",
            (false, false) => return,
        };
        tracing::warn!(
            "{}: general_settings.master_key is written in this file, which {who} can read \
             (mode {:04o}): whoever reads it can act as an admin; chmod 600 the file, or write \
             master_key: os.environ/LITELLM_MASTER_KEY",
            file.display(),
            mode & 0o7777
        );
    }
    #[cfg(not(unix))]
    let _ = file;
}

/// `24h`, `30m`, `7d`, `3600s` or a number of seconds.
fn parse_session_duration(text: &str) -> Option<Duration> {
    parse_span(text)
}

/// `24h`, `30m`, `7d`, `2w`, `3600s` or a number of seconds.
pub(crate) fn parse_span(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let count: u64 = digits.parse().ok().filter(|count| *count > 0)?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return None,
    };
    Some(Duration::from_secs(count.checked_mul(scale)?))
}

#[cfg(test)]
mod tests;
