//! Config parsing and validation, driven by text.

use std::{collections::HashMap, path::Path};

use super::*;

const SEED: &str = r#"
model_list:
  - model_name: "openai-model"
    litellm_params:
      model: "gpt-3.5-turbo"

general_settings:
  custom_sso: custom_sso.custom_sso_handler
  custom_ui_sso_sign_in_handler: custom_sso_handler.custom_ui_sso_sign_in_handler
  trusted_proxy_ranges: ["127.0.0.1/32", "10.0.0.7", "fd00::/8"]

litellm_settings:
  drop_params: True
  set_verbose: True
"#;

pub(super) fn load(text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
    let env: HashMap<String, String> =
        env.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect();
    Config::from_text(Path::new("/etc/hookgate/config.yaml"), text, &|name| env.get(name).cloned())
}

fn error(text: &str) -> String {
    load(text, &[]).unwrap_err().to_string()
}

#[test]
fn the_seed_config_loads_and_lists_what_it_ignores() {
    let config = load(SEED, &[]).unwrap();
    assert_eq!(config.custom_sso.as_ref().unwrap().as_str(), "custom_sso.custom_sso_handler");
    assert_eq!(
        config.custom_ui_sso_sign_in_handler.as_ref().unwrap().attribute(),
        "custom_ui_sso_sign_in_handler"
    );
    assert_eq!(
        config.ignored_keys,
        ["model_list", "litellm_settings.drop_params", "litellm_settings.set_verbose"]
    );
    assert_eq!(config.trusted_proxy_ranges.len(), 3);
    assert_eq!(config.trusted_proxy_ranges[1].to_string(), "10.0.0.7/32");
    assert_eq!(config.plugin_dirs, [Path::new("/etc/hookgate")]);
    assert_eq!(config.hook_timeout, DEFAULT_HOOK_TIMEOUT);
    assert_eq!(config.session_duration, Duration::from_secs(86_400));
    assert!(config.session_cookie_http_only);
}

#[test]
fn an_empty_file_is_an_empty_config() {
    let config = load("", &[]).unwrap();
    assert!(config.custom_sso.is_none() && config.custom_ui_sso_sign_in_handler.is_none());
}

#[test]
fn plugin_dirs_come_first_then_the_config_folder_then_the_environment() {
    // The platform's PATH separator: `/a:/b` on Unix, `/a;/b` on Windows.
    let path_list = std::env::join_paths(["/a", "/b"]).unwrap().into_string().unwrap();
    let config = load(
        "general_settings:\n  plugin_dirs: [plugins, /opt/hooks]\n",
        &[("HOOKGATE_PLUGIN_PATH", &path_list)],
    )
    .unwrap();
    let dirs: Vec<&Path> = config.plugin_dirs.iter().map(PathBuf::as_path).collect();
    assert_eq!(
        dirs,
        [
            Path::new("/etc/hookgate/plugins"),
            Path::new("/opt/hooks"),
            Path::new("/etc/hookgate"),
            Path::new("/a"),
            Path::new("/b")
        ]
    );
}

#[test]
fn os_environ_values_are_resolved() {
    // SAFETY: no other test reads or writes these variables.
    unsafe {
        std::env::set_var("HOOKGATE_TEST_MASTER_KEY", "sk-abcdef");
        std::env::set_var("HOOKGATE_TEST_TIMEOUT", "250ms");
        std::env::set_var("HOOKGATE_TEST_BUDGET", "12.5");
    }
    let config = load(
        "general_settings:\n  master_key: os.environ/HOOKGATE_TEST_MASTER_KEY\n  hook_timeout: os.environ/HOOKGATE_TEST_TIMEOUT\nlitellm_settings:\n  max_internal_user_budget: os.environ/HOOKGATE_TEST_BUDGET\n",
        &[],
    )
    .unwrap();
    let (key, source) = config.master_key.unwrap();
    assert_eq!((key.expose(), source), ("sk-abcdef", Source::File));
    assert_eq!(format!("{key:?}"), "Secret(***)");
    assert_eq!(config.hook_timeout, Duration::from_millis(250));
    assert_eq!(config.max_internal_user_budget, Some(12.5));

    let err = error("general_settings:\n  custom_sso: os.environ/HOOKGATE_TEST_UNSET_VARIABLE\n");
    assert!(
        err.contains("general_settings.custom_sso: environment variable HOOKGATE_TEST_UNSET_VARIABLE (named by `os.environ/HOOKGATE_TEST_UNSET_VARIABLE`) is not set at line 2"),
        "{err}"
    );
}

#[test]
fn the_environment_supplies_the_master_key_when_the_file_does_not() {
    let config = load("", &[("LITELLM_MASTER_KEY", "sk-from-env")]).unwrap();
    assert_eq!(
        config.master_key.map(|(key, source)| (key.expose().to_owned(), source)),
        Some(("sk-from-env".to_owned(), Source::Environment))
    );
}

#[test]
fn the_scim_token_is_a_secret_and_a_short_one_is_refused() {
    // `os.environ/` for it is exercised through the built server (tests/integration/scim.rs).
    let token = "0123456789abcdef0123456789abcdef";
    let config = load(&format!("general_settings:\n  scim_token: {token}\n"), &[]).unwrap();
    assert_eq!(config.scim_token.as_ref().map(Secret::expose), Some(token));
    assert!(format!("{config:?}").contains("scim_token: Some(Secret(***))"));
    assert!(load("", &[]).unwrap().scim_token.is_none(), "no token, no SCIM");
    assert!(load("general_settings:\n  scim_token: ''\n", &[]).unwrap().scim_token.is_none());
    let short = error("general_settings:\n  scim_token: short\n");
    assert!(
        short.contains("general_settings.scim_token must be at least 24 characters (it is 5)"),
        "{short}"
    );
}

#[test]
fn wrong_types_name_the_file_the_key_and_the_line() {
    for (text, expected) in [
        (
            "general_settings:\n  custom_sso: 5\n",
            "/etc/hookgate/config.yaml: general_settings.custom_sso: invalid type: integer `5`, expected a hook reference such as custom_sso.custom_sso_handler at line 2 column 15",
        ),
        (
            "general_settings:\n  custom_sso: custom_sso\n",
            "general_settings.custom_sso: invalid hook reference \"custom_sso\": expected module.attribute",
        ),
        ("general_settings:\n  custom_sso: ../evil.hook\n", "no `..`"),
        (
            "general_settings:\n  trusted_proxy_ranges: [\"127.0.0.1/33\"]\n",
            "general_settings.trusted_proxy_ranges[0]: invalid CIDR range \"127.0.0.1/33\": expected e.g. 127.0.0.1/32 or ::1/128 at line 2 column 26",
        ),
        (
            "general_settings:\n  trusted_proxy_ranges: 127.0.0.1/32\n",
            "general_settings.trusted_proxy_ranges: invalid type: string \"127.0.0.1/32\", expected a sequence at line 2",
        ),
        (
            "general_settings:\n  hook_timeout: soon\n",
            "general_settings.hook_timeout: invalid duration \"soon\"",
        ),
        ("general_settings:\n  hook_timeout: -1\n", "must be above 0"),
        (
            "general_settings:\n  hook_concurrency: 0\n",
            "general_settings.hook_concurrency: must be at least 1",
        ),
        (
            "general_settings:\n  ui_access_mode: everyone\n",
            "general_settings.ui_access_mode: unknown ui_access_mode \"everyone\"",
        ),
        (
            "general_settings: [1, 2]\n",
            "general_settings: invalid type: sequence, expected struct RawGeneralSettings at line 1",
        ),
        (
            "litellm_settings:\n  max_internal_user_budget: -5\n",
            "litellm_settings.max_internal_user_budget: invalid budget -5",
        ),
        (
            "litellm_settings:\n  internal_user_budget_duration: 1y\n",
            "litellm_settings.internal_user_budget_duration: invalid budget duration \"1y\"",
        ),
        (
            "litellm_settings:\n  default_internal_user_params:\n    user_role: internal_user_view_only\n",
            "litellm_settings.default_internal_user_params.user_role: unknown role \"internal_user_view_only\"",
        ),
        ("general_settings:\n  custom_sso: [a\n", "/etc/hookgate/config.yaml:"),
    ] {
        let err = error(text);
        assert!(err.contains(expected), "for\n{text}\nexpected {expected:?}\n     got {err:?}");
    }
}

#[test]
fn the_header_hook_requires_trusted_proxy_ranges() {
    let err = error(
        "general_settings:\n  custom_ui_sso_sign_in_handler: custom_sso_handler.custom_ui_sso_sign_in_handler\n",
    );
    assert!(err.contains("general_settings.trusted_proxy_ranges is required"), "{err}");
}

#[test]
fn litellm_environment_variables_are_validated() {
    let config = load(
        "",
        &[
            ("PROXY_BASE_URL", "https://sso.example.com/"),
            ("SERVER_ROOT_PATH", "/litellm/"),
            ("ALLOWED_EMAIL_DOMAINS", "Example.com, @corp.example"),
            ("LITELLM_UI_SESSION_DURATION", "30m"),
            ("PROXY_ADMIN_ID", "root"),
        ],
    )
    .unwrap();
    assert_eq!(config.proxy_base_url.as_deref(), Some("https://sso.example.com"));
    assert_eq!(config.server_root_path, "/litellm");
    assert_eq!(config.allowed_email_domains, ["example.com", "corp.example"]);
    assert_eq!(config.session_duration, Duration::from_secs(1800));
    assert_eq!(config.proxy_admin_id.as_deref(), Some("root"));

    for (name, value, expected) in [
        (
            "PROXY_BASE_URL",
            "sso.example.com",
            "PROXY_BASE_URL=\"sso.example.com\": must start with http",
        ),
        ("SERVER_ROOT_PATH", "litellm", "SERVER_ROOT_PATH=\"litellm\": must be a path"),
        ("LITELLM_UI_SESSION_DURATION", "forever", "LITELLM_UI_SESSION_DURATION=\"forever\""),
    ] {
        let err = load("", &[(name, value)]).unwrap_err().to_string();
        assert!(err.contains(expected), "{name}: {err}");
    }
}

#[test]
fn default_internal_user_params_are_typed() {
    let config = load(
        "litellm_settings:\n  max_internal_user_budget: 10\n  internal_user_budget_duration: 1mo\n  default_internal_user_params:\n    user_role: internal_user\n    models: [gpt-4o]\n    max_budget: 2.5\n    budget_duration: weekly\n    teams: [core, {team_id: ops, user_role: admin}]\n",
        &[],
    )
    .unwrap();
    assert_eq!(config.max_internal_user_budget, Some(10.0));
    assert_eq!(config.internal_user_budget_duration.map(|d| d.to_string()).as_deref(), Some("1mo"));
    let defaults = &config.default_internal_user_params;
    assert_eq!(defaults.user_role, Some(UserRole::InternalUser));
    assert_eq!(defaults.models.as_deref(), Some(&["gpt-4o".to_owned()][..]));
    assert_eq!(defaults.max_budget, Some(2.5));
    assert_eq!(
        defaults.teams,
        [("core".to_owned(), TeamRole::User), ("ops".to_owned(), TeamRole::Admin)]
    );
}

#[test]
fn prometheus_among_the_callbacks_turns_metrics_on_and_the_others_are_reported() {
    let config = load("", &[]).unwrap();
    assert!(!config.prometheus && !config.require_auth_for_metrics_endpoint);

    let config = load(
        "litellm_settings:\n  callbacks: [langfuse, prometheus]\n  success_callback: langfuse\n\
         general_settings:\n  require_auth_for_metrics_endpoint: true\n",
        &[],
    )
    .unwrap();
    assert!(config.prometheus && config.require_auth_for_metrics_endpoint);
    assert_eq!(
        config.ignored_keys,
        [
            "litellm_settings.callbacks[0] (langfuse)",
            "litellm_settings.success_callback[0] (langfuse)"
        ]
    );

    // LiteLLM's older spelling.
    let config = load("litellm_settings:\n  success_callback: [\"prometheus\"]\n", &[]).unwrap();
    assert!(config.prometheus && config.ignored_keys.is_empty());
    let config = load("litellm_settings:\n  callbacks: [langfuse]\n", &[]).unwrap();
    assert!(!config.prometheus);
}

mod fuzz {
    //! Property tests: no input makes the loader panic, and every rejected value is reported
    //! under its own key.

    use proptest::prelude::*;

    use super::*;

    const KEYS: &[&str] = &[
        "custom_sso",
        "custom_ui_sso_sign_in_handler",
        "plugin_dirs",
        "master_key",
        "database_url",
        "trusted_proxy_ranges",
        "hook_timeout",
        "hook_concurrency",
        "ui_access_mode",
        "session_cookie_http_only",
        "oidc_issuer",
        "oidc_flow_timeout",
        "disable_password_login_when_sso_enabled",
        "allow_insecure_plugin_permissions",
        "link_sso_accounts_by_email",
        "sign_in_event_retention",
        "http_header_read_timeout",
        "http_idle_timeout",
        "http_body_timeout",
        "max_connections",
        "max_connections_per_client",
        "http_first_request_timeout",
        "allowed_hosts",
    ];

    /// YAML values of every shape: scalars, quoted strings, lists, maps, env references.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|n| format!("{n:?}")),
            any::<bool>().prop_map(|b| b.to_string()),
            "[a-zA-Z0-9_./:@ -]{0,24}",
            any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
            proptest::collection::vec("[a-z0-9./]{0,8}", 0..4)
                .prop_map(|items| format!("{items:?}")),
            "[a-z]{1,6}".prop_map(|key| format!("{{{key}: 1}}")),
            "[A-Z_]{1,8}".prop_map(|name| format!("os.environ/HOOKGATE_FUZZ_UNSET_{name}")),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_text_never_panics(text in any::<String>()) {
            let _ = load(&text, &[]);
        }

        #[test]
        fn arbitrary_yaml_shapes_never_panic(
            lines in proptest::collection::vec(("[a-z_]{1,12}", value()), 0..6),
        ) {
            let mut text = String::from("general_settings:\n");
            for (key, value) in &lines {
                text.push_str(&format!("  {key}: {value}\n"));
            }
            text.push_str("litellm_settings:\n");
            for (key, value) in &lines {
                text.push_str(&format!("  {key}: {value}\n"));
            }
            let _ = load(&text, &[]);
        }

        #[test]
        fn a_rejected_value_is_reported_under_its_key(key in prop::sample::select(KEYS), value in value()) {
            let text = format!("general_settings:\n  trusted_proxy_ranges: [127.0.0.1/32]\n  {key}: {value}\n");
            if let Err(error) = load(&text, &[]) {
                let message = error.to_string();
                prop_assert!(message.starts_with("/etc/hookgate/config.yaml: "), "{}", message);
                let names_key = message.contains(&format!("general_settings.{key}"))
                    // A duplicate key, or YAML that does not parse, is reported by position.
                    || message.contains("duplicate entry")
                    || message.contains("at line");
                prop_assert!(names_key, "{} does not name general_settings.{}", message, key);
            }
        }
    }
}

#[test]
fn only_a_master_key_written_out_is_a_secret_in_the_file() {
    for (text, literal) in [
        ("general_settings:\n  master_key: sk-written-in-the-file\n", true),
        ("general_settings:\n  master_key: os.environ/LITELLM_MASTER_KEY\n", false),
        ("general_settings:\n  master_key: \"\"\n", false),
        ("general_settings:\n  custom_sso: a.b\n", false),
        ("not: [valid\n", false),
    ] {
        assert_eq!(yaml::has_literal_master_key(text), literal, "{text}");
    }
}
