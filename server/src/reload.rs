//! Reloading on `SIGHUP`: `config.yaml` is read again and the hooks it names are loaded again,
//! exactly as at startup (the plugin folders searched, the permission checks, the descriptor and
//! layout checks), then swapped in whole for the sign-ins that start from then on. Sign-ins
//! already running finish on the hooks they started with. A library rebuilt in place is really
//! loaded again (the loader opens a private copy of each new build); old libraries are never
//! unloaded.
//!
//! A reload applies the hook settings: `custom_sso`, `custom_ui_sso_sign_in_handler` (another
//! reference; adding or removing it changes which sign-ins exist, and needs a restart),
//! `plugin_dirs` (and `HOOKGATE_PLUGIN_PATH`, which a running process cannot change),
//! `allow_insecure_plugin_permissions` and `hook_timeout`. Any other change is reported in one
//! warning line and not applied: the running value stays until a restart. A reload that fails
//! (the file unreadable, invalid, or one that others could change, a hook that does not load
//! or check) changes nothing and says why in one error line.

use std::sync::Arc;

use crate::{
    config::Config,
    plugins::{PluginLoader, Plugins},
    signin::SignInService,
};

/// Reloads the hooks of a running server; one reload at a time.
pub struct Reloader {
    loader: Arc<PluginLoader>,
    signin: SignInService,
    /// The configuration in effect: the startup one, with the reloaded hook settings.
    running: tokio::sync::Mutex<Config>,
}

/// What one reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The hooks were swapped; the settings that changed but need a restart.
    Reloaded {
        /// Keys that changed but were not applied.
        not_applied: Vec<&'static str>,
    },
    /// Nothing changed; why.
    Failed(String),
}

impl Reloader {
    /// A reloader for the server started with `config`, whose hooks `loader` loaded and
    /// `signin` serves.
    pub fn new(config: Config, loader: PluginLoader, signin: SignInService) -> Self {
        Self { loader: Arc::new(loader), signin, running: tokio::sync::Mutex::new(config) }
    }

    /// Reloads now, logging the outcome in one line (and, when some change needs a restart,
    /// one warning line more).
    pub async fn reload(&self) -> Outcome {
        let mut running = self.running.lock().await;
        let current = running.clone();
        let loader = self.loader.clone();
        let prepared = tokio::task::spawn_blocking(move || prepare(&current, &loader))
            .await
            .unwrap_or_else(|error| Err(format!("the reload panicked: {error}")));
        let file = running.file.display().to_string();
        match prepared {
            Ok((config, plugins, not_applied)) => {
                let loaded = describe(&plugins);
                self.signin.replace_hooks(plugins, config.hook_timeout);
                *running = config;
                tracing::info!("reloaded {file}: {loaded}");
                if !not_applied.is_empty() {
                    tracing::warn!(
                        "reload of {file}: not applied, restart to apply (the running values \
                         stay): {}",
                        not_applied.join(", ")
                    );
                }
                Outcome::Reloaded { not_applied }
            }
            Err(reason) => {
                let reason = one_line(&reason);
                tracing::error!(
                    "reload of {file} failed, keeping the running configuration and hooks: \
                     {reason}"
                );
                Outcome::Failed(reason)
            }
        }
    }

    /// Reloads at every `SIGHUP` from now on (the handler is installed before this returns),
    /// until the task is aborted.
    #[cfg(unix)]
    pub fn on_sighup(self) -> std::io::Result<tokio::task::JoinHandle<()>> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = signal(SignalKind::hangup())?;
        Ok(tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                self.reload().await;
            }
        }))
    }
}

/// The configuration a reload would run (`running` with the new file's hook settings), its
/// hooks loaded and checked, and the changed keys it does not apply.
fn prepare(
    running: &Config,
    loader: &PluginLoader,
) -> Result<(Config, Plugins, Vec<&'static str>), String> {
    let new = Config::load(&running.file).map_err(|error| error.to_string())?;
    let not_applied = restart_only_changes(running, &new);
    let mut next = running.clone();
    next.custom_sso = new.custom_sso;
    if running.custom_ui_sso_sign_in_handler.is_some()
        == new.custom_ui_sso_sign_in_handler.is_some()
    {
        next.custom_ui_sso_sign_in_handler = new.custom_ui_sso_sign_in_handler;
    }
    next.plugin_dirs = new.plugin_dirs;
    next.allow_insecure_plugin_permissions = new.allow_insecure_plugin_permissions;
    next.hook_timeout = new.hook_timeout;
    next.ignored_keys = new.ignored_keys;
    next.not_implemented = new.not_implemented;
    next.setting_conflicts = new.setting_conflicts;
    let plugins = Plugins::load(&next, loader).map_err(|error| error.to_string())?;
    Ok((next, plugins, not_applied))
}

/// The settings that differ between `running` and `new` and that a reload does not apply.
/// (Every field is named, so a new setting must be sorted here before the server builds.)
pub fn restart_only_changes(running: &Config, new: &Config) -> Vec<&'static str> {
    let Config {
        file: _,
        dir: _,
        custom_ui_sso_sign_in_handler,
        custom_sso: _,
        plugin_dirs: _,
        master_key,
        database_url,
        trusted_proxy_ranges,
        hook_timeout: _,
        hook_concurrency,
        ui_access_mode,
        session_cookie_http_only,
        max_internal_user_budget,
        internal_user_budget_duration,
        default_internal_user_params,
        max_ui_session_budget,
        proxy_base_url,
        server_root_path,
        allowed_email_domains,
        proxy_admin_id,
        session_duration,
        oidc,
        oidc_flow_timeout,
        ui_username,
        ui_password,
        disable_password_login_when_sso_enabled,
        allow_insecure_plugin_permissions: _,
        link_sso_accounts_by_email,
        sync_user_role_and_teams,
        role_map,
        team_creation,
        sign_in_event_retention,
        http,
        allowed_hosts,
        litellm_proxy_url,
        scim_token,
        prometheus,
        require_auth_for_metrics_endpoint,
        // From the environment, which a running process cannot re-read.
        metrics_live_sessions_ttl: _,
        ignored_keys: _,
        not_implemented: _,
        setting_conflicts: _,
    } = new;
    let mut changed = Vec::new();
    let mut check = |differs: bool, key: &'static str| {
        if differs {
            changed.push(key);
        }
    };
    check(
        custom_ui_sso_sign_in_handler.is_some() != running.custom_ui_sso_sign_in_handler.is_some(),
        "general_settings.custom_ui_sso_sign_in_handler (added or removed)",
    );
    check(*master_key != running.master_key, "general_settings.master_key");
    check(*database_url != running.database_url, "general_settings.database_url");
    check(
        *trusted_proxy_ranges != running.trusted_proxy_ranges,
        "general_settings.trusted_proxy_ranges",
    );
    check(*hook_concurrency != running.hook_concurrency, "general_settings.hook_concurrency");
    check(*ui_access_mode != running.ui_access_mode, "general_settings.ui_access_mode");
    check(
        *session_cookie_http_only != running.session_cookie_http_only,
        "general_settings.session_cookie_http_only",
    );
    check(
        *max_internal_user_budget != running.max_internal_user_budget,
        "litellm_settings.max_internal_user_budget",
    );
    check(
        *internal_user_budget_duration != running.internal_user_budget_duration,
        "litellm_settings.internal_user_budget_duration",
    );
    check(
        *default_internal_user_params != running.default_internal_user_params,
        "litellm_settings.default_internal_user_params",
    );
    check(
        *max_ui_session_budget != running.max_ui_session_budget,
        "litellm_settings.max_ui_session_budget",
    );
    check(*prometheus != running.prometheus, "litellm_settings.callbacks (prometheus)");
    check(
        *require_auth_for_metrics_endpoint != running.require_auth_for_metrics_endpoint,
        "general_settings.require_auth_for_metrics_endpoint",
    );
    check(*proxy_base_url != running.proxy_base_url, "PROXY_BASE_URL");
    check(*server_root_path != running.server_root_path, "SERVER_ROOT_PATH");
    check(*allowed_email_domains != running.allowed_email_domains, "ALLOWED_EMAIL_DOMAINS");
    check(*proxy_admin_id != running.proxy_admin_id, "PROXY_ADMIN_ID");
    check(*session_duration != running.session_duration, "LITELLM_UI_SESSION_DURATION");
    check(*oidc != running.oidc, "general_settings.oidc_issuer");
    check(*oidc_flow_timeout != running.oidc_flow_timeout, "general_settings.oidc_flow_timeout");
    check(*ui_username != running.ui_username, "UI_USERNAME");
    check(*ui_password != running.ui_password, "UI_PASSWORD");
    check(
        *disable_password_login_when_sso_enabled != running.disable_password_login_when_sso_enabled,
        "general_settings.disable_password_login_when_sso_enabled",
    );
    check(
        *link_sso_accounts_by_email != running.link_sso_accounts_by_email,
        "general_settings.link_sso_accounts_by_email",
    );
    check(
        *sync_user_role_and_teams != running.sync_user_role_and_teams,
        "general_settings.litellm_jwtauth.sync_user_role_and_teams",
    );
    check(
        *role_map != running.role_map,
        "general_settings.role_mappings (or GENERIC_ROLE_MAPPINGS_*, jwt_litellm_role_map)",
    );
    check(
        *team_creation != running.team_creation,
        "general_settings.create_teams_from_groups or litellm_settings.default_team_params",
    );
    check(
        *sign_in_event_retention != running.sign_in_event_retention,
        "general_settings.sign_in_event_retention",
    );
    check(
        *http != running.http,
        "general_settings.http_header_read_timeout/http_first_request_timeout/\
         http_idle_timeout/http_body_timeout/max_connections/max_connections_per_client",
    );
    check(*allowed_hosts != running.allowed_hosts, "general_settings.allowed_hosts");
    check(*litellm_proxy_url != running.litellm_proxy_url, "general_settings.litellm_proxy_url");
    check(*scim_token != running.scim_token, "general_settings.scim_token");
    changed
}

/// `custom_sso -> /path/libx.so (plugin-api 0.1.0), …`, or `no hooks`.
fn describe(plugins: &Plugins) -> String {
    let hooks: Vec<String> = plugins
        .infos()
        .into_iter()
        .map(|info| {
            format!(
                "{} -> {} (plugin-api {})",
                info.setting.trim_start_matches("general_settings."),
                info.location(),
                info.api_version
            )
        })
        .collect();
    if hooks.is_empty() { "no hooks".to_owned() } else { hooks.join(", ") }
}

/// `text` on one line: its lines, trimmed, joined with `; `.
fn one_line(text: &str) -> String {
    text.lines().map(str::trim).filter(|line| !line.is_empty()).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(text: &str) -> Config {
        Config::from_text(Path::new("/srv/hookgate/config.yaml"), text, &|_| None).unwrap()
    }

    #[test]
    fn hook_settings_reload_and_the_rest_needs_a_restart() {
        let running = config(
            "general_settings:\n  custom_sso: a.hook\n  hook_timeout: 5\n  \
             master_key: sk-one\n  hook_concurrency: 8\n",
        );
        let hooks_only = config(
            "general_settings:\n  custom_sso: b.other\n  hook_timeout: 9\n  \
             master_key: sk-one\n  hook_concurrency: 8\n  plugin_dirs: [x]\n  \
             allow_insecure_plugin_permissions: true\n",
        );
        assert_eq!(restart_only_changes(&running, &hooks_only), Vec::<&str>::new());

        let more = config(
            "general_settings:\n  custom_sso: a.hook\n  master_key: sk-two\n  \
             hook_concurrency: 9\n  custom_ui_sso_sign_in_handler: h.h\n  \
             trusted_proxy_ranges: [127.0.0.1/32]\n  \
             scim_token: a-new-scim-token-0123456789abcdef\n",
        );
        // A changed SCIM token keeps the old one working until a restart: said, not applied.
        assert_eq!(
            restart_only_changes(&running, &more),
            [
                "general_settings.custom_ui_sso_sign_in_handler (added or removed)",
                "general_settings.master_key",
                "general_settings.trusted_proxy_ranges",
                "general_settings.hook_concurrency",
                "general_settings.scim_token",
            ]
        );
    }

    #[test]
    fn reasons_fit_on_one_line() {
        assert_eq!(
            one_line("a: not found; tried:\n    /x (not found)\n  build it\n"),
            "a: not found; tried:; /x (not found); build it"
        );
    }
}
