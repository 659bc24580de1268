//! From the parsed file and the environment to a [`Config`]: defaults, the environment's
//! precedence, and the checks between settings (each error names the key or variable).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use plugin_api::TeamRole;

use super::{
    AllowedHosts, Config, ConfigError, DEFAULT_HOOK_TIMEOUT, DefaultUserParams, HttpLimits,
    METRICS_LIVE_SESSIONS_TTL, Secret, Source, UiAccessModeSetting, oidc,
    raw::{RawConfig, RawTeamCreation, RawTeamParams, TeamEntry},
};

/// The shortest `general_settings.scim_token` accepted.
const MIN_SCIM_TOKEN: usize = 24;

impl Config {
    pub(super) fn validate(
        file: &Path,
        raw: RawConfig,
        ignored_keys: Vec<String>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid { file: file.to_owned(), message };
        // Keys of LiteLLM's SSO sections that hookgate reads but does not implement: named apart
        // from the other ignored keys, so that nobody mistakes them for working.
        let (mut not_implemented, ignored_keys): (Vec<String>, Vec<String>) =
            ignored_keys.into_iter().partition(|key| {
                key.starts_with("general_settings.litellm_jwtauth.")
                    || key.starts_with("general_settings.ui_access_mode.")
            });
        let mut ignored_keys = ignored_keys;
        let env_nonempty = |name: &str| env(name).filter(|value| !value.trim().is_empty());
        let mut general = raw.general_settings.unwrap_or_default();
        let litellm = raw.litellm_settings.unwrap_or_default();
        let dir = file.parent().map(Path::to_owned).unwrap_or_else(|| PathBuf::from("."));

        let mut jwtauth = general.litellm_jwtauth.take().unwrap_or_default();
        let sync_user_role_and_teams = jwtauth.sync_user_role_and_teams.unwrap_or(false);
        // As in LiteLLM, `jwt_litellm_role_map` applies only with `sync_user_role_and_teams`:
        // said at startup, never ignored without a word.
        let mut setting_conflicts = Vec::new();
        if !sync_user_role_and_teams && jwtauth.jwt_litellm_role_map.is_some() {
            setting_conflicts.push(
                "general_settings.litellm_jwtauth.jwt_litellm_role_map is ignored: it applies \
                 only with general_settings.litellm_jwtauth.sync_user_role_and_teams: true (as \
                 in LiteLLM); use general_settings.role_mappings for roles from groups without \
                 an authoritative sync"
                    .to_owned(),
            );
        }
        let role_group_claim =
            general.role_mappings.as_mut().and_then(|mappings| mappings.group_claim.take());
        let role_map = role_map(
            general.role_mappings.take(),
            env_nonempty("GENERIC_ROLE_MAPPINGS_ROLES"),
            env_nonempty("GENERIC_ROLE_MAPPINGS_DEFAULT_ROLE"),
            sync_user_role_and_teams.then(|| jwtauth.jwt_litellm_role_map.take()).flatten(),
        )
        .map_err(invalid)?;

        let mut plugin_dirs: Vec<PathBuf> =
            general.plugin_dirs.unwrap_or_default().iter().map(|entry| dir.join(entry)).collect();
        plugin_dirs.push(dir.clone());
        if let Some(path) = env_nonempty("HOOKGATE_PLUGIN_PATH") {
            plugin_dirs.extend(std::env::split_paths(&path).filter(|p| !p.as_os_str().is_empty()));
        }

        // The SCIM token deactivates and deletes users: a short one is refused, as the master
        // key is.
        let scim_token = general.scim_token.take().filter(|token| !token.is_empty());
        if let Some(token) = &scim_token
            && token.chars().count() < MIN_SCIM_TOKEN
        {
            return Err(invalid(format!(
                "general_settings.scim_token must be at least {MIN_SCIM_TOKEN} characters (it \
                 is {}); generate one, e.g. `openssl rand -hex 32`",
                token.chars().count()
            )));
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

        let team_creation =
            team_creation(general.create_teams_from_groups.take(), litellm.default_team_params)
                .map_err(invalid)?;

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

        // LiteLLM's names for the claims (they win over hookgate's environment aliases), and the
        // keys of `litellm_jwtauth` and `ui_access_mode` that hookgate does not implement.
        let (ui_access_mode, sso_group_jwt_field) = match general.ui_access_mode {
            Some(raw) => {
                // The parser may have seen them already.
                for key in raw.not_implemented {
                    if !not_implemented.contains(&key) {
                        not_implemented.push(key);
                    }
                }
                (raw.mode, raw.sso_group_jwt_field)
            }
            None => (UiAccessModeSetting::All, None),
        };
        let file_claims = oidc::FileClaims {
            issuer: general.oidc_issuer.clone(),
            sso_group_jwt_field,
            team_ids_jwt_field: jwtauth.team_ids_jwt_field,
            user_id_jwt_field: jwtauth.user_id_jwt_field,
            user_email_jwt_field: jwtauth.user_email_jwt_field,
            role_group_claim,
        };
        let oidc = oidc::from_env(env, file_claims, &mut setting_conflicts).map_err(invalid)?;
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
            ui_access_mode,
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
            sync_user_role_and_teams,
            role_map,
            team_creation,
            sign_in_event_retention: general
                .sign_in_event_retention
                .map_or(Duration::from_secs(90 * 86_400), |span| span.0),
            http,
            allowed_hosts,
            litellm_proxy_url,
            scim_token: scim_token.map(Secret::new),
            prometheus,
            require_auth_for_metrics_endpoint: general
                .require_auth_for_metrics_endpoint
                .unwrap_or(false),
            metrics_live_sessions_ttl,
            ignored_keys,
            not_implemented,
            setting_conflicts,
        })
    }
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

/// Roles from groups, from `role_mappings` (the file's, else `GENERIC_ROLE_MAPPINGS_ROLES` and
/// `GENERIC_ROLE_MAPPINGS_DEFAULT_ROLE`, LiteLLM's environment variables) and, when
/// `sync_user_role_and_teams` is on, `jwt_litellm_role_map` (each `jwt_role` a group): one map,
/// in which the most privileged role wins. `None` when nothing maps.
fn role_map(
    file: Option<super::raw::RawRoleMappings>,
    env_roles: Option<String>,
    env_default: Option<String>,
    jwt_map: Option<Vec<super::raw::RawJwtRole>>,
) -> Result<Option<hookgate_core::policy::RoleMap>, String> {
    use hookgate_core::policy::RoleMap;
    use plugin_api::UserRole;
    let role = |name: &str, whence: &str| {
        name.parse::<UserRole>().map_err(|_| {
            format!(
                "{whence}: {name:?} is not a LiteLLM role (proxy_admin, proxy_admin_viewer, \
                 internal_user, internal_user_viewer)"
            )
        })
    };
    let (roles, default_role) = match file {
        Some(mappings) => (mappings.roles, mappings.default_role.map(|role| role.0)),
        None => {
            let roles = match env_roles {
                None => Default::default(),
                Some(text) => super::yaml::role_groups(&text)
                    .map_err(|error| format!("GENERIC_ROLE_MAPPINGS_ROLES: {error}"))?,
            };
            let default_role = env_default
                .map(|name| role(name.trim(), "GENERIC_ROLE_MAPPINGS_DEFAULT_ROLE"))
                .transpose()?;
            (roles, default_role)
        }
    };
    let mut map = RoleMap { roles: Vec::new(), default_role };
    for (name, groups) in roles {
        map.roles.push((role(&name, "general_settings.role_mappings.roles")?, groups));
    }
    for entry in jwt_map.unwrap_or_default() {
        map.roles.push((entry.litellm_role.0, vec![entry.jwt_role]));
    }
    Ok((!map.roles.is_empty() || map.default_role.is_some()).then_some(map))
}

/// `general_settings.create_teams_from_groups` with `litellm_settings.default_team_params`:
/// `None` when the first is absent (no group becomes a team); an error naming the key when it
/// lists nothing (hookgate never makes every group a team) or a blank or unstorable entry.
fn team_creation(
    raw: Option<RawTeamCreation>,
    params: Option<RawTeamParams>,
) -> Result<Option<hookgate_core::policy::TeamCreation>, String> {
    const KEY: &str = "general_settings.create_teams_from_groups";
    let Some(raw) = raw else { return Ok(None) };
    let groups = raw.allowed_groups.unwrap_or_default();
    let prefixes = raw.allowed_group_prefixes.unwrap_or_default();
    for (list, entries) in [("allowed_groups", &groups), ("allowed_group_prefixes", &prefixes)] {
        for (index, entry) in entries.iter().enumerate() {
            if let Some(problem) = hookgate_core::ids::id_problem("each entry", entry) {
                return Err(format!("{KEY}.{list}[{index}] ({entry:?}): {problem}"));
            }
        }
    }
    if groups.is_empty() && prefixes.is_empty() {
        return Err(format!(
            "{KEY}: name the groups that may become teams in allowed_groups or \
             allowed_group_prefixes (hookgate never makes every group a team)"
        ));
    }
    let params = params.unwrap_or_default();
    Ok(Some(hookgate_core::policy::TeamCreation {
        groups,
        prefixes,
        params: hookgate_core::policy::TeamParams {
            models: params.models.unwrap_or_default(),
            max_budget: params.max_budget.map(|budget| budget.0),
            budget_duration: params.budget_duration,
            tpm_limit: params.tpm_limit.map(|limit| limit.0),
            rpm_limit: params.rpm_limit.map(|limit| limit.0),
        },
    }))
}
