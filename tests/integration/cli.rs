//! `hookgate check` as a user runs it.

use hookgate_tests::{Scratch, build_dir, output_text, repo_root, run_hookgate};

fn seed_config(scratch: &Scratch, hooks: &str) -> String {
    let text = format!(
        "model_list:\n  - model_name: \"openai-model\"\n    litellm_params:\n      model: \"gpt-3.5-turbo\"\n\ngeneral_settings:\n{hooks}  plugin_dirs: [{:?}]\n  trusted_proxy_ranges: [\"127.0.0.1/32\"]\n\nlitellm_settings:\n  drop_params: True\n  set_verbose: True\n",
        build_dir().display().to_string()
    );
    scratch.write("config.yaml", text).display().to_string()
}

#[test]
fn check_lists_both_seed_hooks() {
    let scratch = Scratch::new();
    let config = seed_config(
        &scratch,
        "  custom_sso: custom_sso.custom_sso_handler\n  custom_ui_sso_sign_in_handler: custom_sso_handler.custom_ui_sso_sign_in_handler\n",
    );
    let output = run_hookgate(&["check", "--config", &config], &[]);
    let (stdout, stderr) = output_text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("general_settings.custom_ui_sso_sign_in_handler: custom_sso_handler.custom_ui_sso_sign_in_handler -> "), "{stdout}");
    assert!(
        lines[0].ends_with(&format!(
            "(kind custom_ui_sso_sign_in_handler, plugin-api {})",
            plugin_api::PLUGIN_API_VERSION
        )),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("general_settings.custom_sso: custom_sso.custom_sso_handler -> "),
        "{stdout}"
    );
    assert!(lines[1].contains("libcustom_sso.so"), "{stdout}");
}

#[test]
fn check_warns_once_about_litellm_keys_it_ignores() {
    let scratch = Scratch::new();
    let config = seed_config(&scratch, "");
    let output = run_hookgate(&["check", "--config", &config], &[]);
    let (_, stderr) = output_text(&output);
    assert!(output.status.success(), "{stderr}");
    let warnings: Vec<&str> =
        stderr.lines().filter(|line| line.contains("ignoring settings")).collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].ends_with("ignoring settings hookgate does not implement: model_list, litellm_settings.drop_params, litellm_settings.set_verbose"), "{stderr}");
}

#[test]
fn check_fails_with_the_loader_error() {
    let scratch = Scratch::new();
    let config = seed_config(&scratch, "  custom_sso: custom_sso.malloc\n");
    let output = run_hookgate(&["check", "--config", &config], &[]);
    let (stdout, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("error: general_settings.custom_sso: cannot load hook `custom_sso.malloc`"),
        "{stderr}"
    );
    assert!(stdout.is_empty(), "{stdout}");
}

#[test]
fn check_fails_on_a_bad_config_naming_file_key_and_line() {
    let scratch = Scratch::new();
    let config = scratch
        .write("config.yaml", "general_settings:\n  trusted_proxy_ranges: [\"localhost\"]\n");
    let output = run_hookgate(&["check", "--config", &config.display().to_string()], &[]);
    let (_, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains(&format!(
            "error: {}: general_settings.trusted_proxy_ranges[0]: invalid CIDR range \"localhost\"",
            config.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("at line 2"), "{stderr}");

    let output = run_hookgate(&["check", "--config", "/nonexistent/config.yaml"], &[]);
    let (_, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("cannot read config file /nonexistent/config.yaml"), "{stderr}");
}

#[test]
fn the_repository_config_checks_with_the_built_plugins() {
    let config = repo_root().join("config.yaml");
    let output = run_hookgate(&["check", "--config", &config.display().to_string()], &[]);
    let (stdout, stderr) = output_text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert_eq!(stdout.lines().count(), 2, "{stdout}");
    assert!(
        stdout.contains("general_settings.custom_sso: custom_sso.custom_sso_handler"),
        "{stdout}"
    );
    assert!(stdout.contains("general_settings.custom_ui_sso_sign_in_handler: custom_sso_handler.custom_ui_sso_sign_in_handler"), "{stdout}");
}
