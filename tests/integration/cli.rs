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
            "(kind custom_ui_sso_sign_in_handler, plugin-api {}, non-blocking)",
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

/// Without `--config`, the file `HOOKGATE_CONFIG` names is the one read.
#[test]
fn check_reads_the_config_hookgate_config_names() {
    let scratch = Scratch::new();
    let config = seed_config(&scratch, "  custom_sso: custom_sso.custom_sso_handler\n");
    let output = run_hookgate(&["check"], &[("HOOKGATE_CONFIG", &config)]);
    let (stdout, stderr) = output_text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "only the hook that config names:\n{stdout}");
    assert!(
        lines[0].starts_with("general_settings.custom_sso: custom_sso.custom_sso_handler -> "),
        "{stdout}"
    );
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
    // What was logged before the error (written from the log's own thread) is written, and
    // before the error.
    let warning = stderr.find("ignoring settings hookgate does not implement");
    let error = stderr.find("error: general_settings.custom_sso");
    assert!(warning.is_some() && warning < error, "{stderr}");
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

/// A config naming `custom_sso` in `plugin_dir`, with `extra` lines under `general_settings`.
#[cfg(unix)]
fn custom_sso_config(scratch: &Scratch, plugin_dir: &std::path::Path, extra: &str) -> String {
    let text = format!(
        "general_settings:\n  custom_sso: custom_sso.custom_sso_handler\n  plugin_dirs: [{:?}]\n{extra}",
        plugin_dir.display().to_string()
    );
    scratch.write("config.yaml", text).display().to_string()
}

#[cfg(unix)]
#[test]
fn check_refuses_a_plugin_others_may_write_and_names_the_setting() {
    use std::os::unix::fs::PermissionsExt;
    let scratch = Scratch::new();
    let file = scratch.copy(
        &hookgate_tests::plugin("custom_sso"),
        &format!("plugins/{}", hookgate_tests::library_file("custom_sso")),
    );
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o646)).unwrap();
    let file = file.canonicalize().unwrap();
    let dir = file.parent().unwrap();

    let config = custom_sso_config(&scratch, dir, "");
    let output = run_hookgate(&["check", "--config", &config], &[]);
    let (stdout, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "error: general_settings.custom_sso: cannot load hook `custom_sso.custom_sso_handler`: \
             refusing to load {}:\n    file {} is writable by others (mode 0646)\n",
            file.display(),
            file.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("general_settings.allow_insecure_plugin_permissions: true"),
        "{stderr}"
    );
    assert!(stdout.is_empty(), "{stdout}");

    let config = custom_sso_config(&scratch, dir, "  allow_insecure_plugin_permissions: true\n");
    let output = run_hookgate(&["check", "--config", &config], &[]);
    let (stdout, stderr) = output_text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with(&format!(
            "general_settings.custom_sso: custom_sso.custom_sso_handler -> {} (kind custom_sso,",
            file.display()
        )),
        "{stdout}"
    );
    let warnings: Vec<&str> = stderr.lines().filter(|line| line.contains("WARN")).collect();
    assert!(
        warnings.iter().any(|line| line.contains("loading an insecure plugin")
            && line.contains(&format!("file {} is writable by others", file.display()))),
        "{stderr}"
    );
}

#[cfg(unix)]
#[test]
fn check_reports_where_a_symlinked_plugin_resolves() {
    let scratch = Scratch::new();
    let library = hookgate_tests::library_file("custom_sso");
    let target = scratch
        .copy(&hookgate_tests::plugin("custom_sso"), &format!("elsewhere/{library}"))
        .canonicalize()
        .unwrap();
    let dir = scratch.path().join("plugins");
    std::fs::create_dir(&dir).unwrap();
    let link = dir.join(&library);
    std::os::unix::fs::symlink(&target, &link).unwrap();

    let config = custom_sso_config(&scratch, &dir, "");
    let output = run_hookgate(&["check", "--config", &config], &[]);
    let (stdout, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} resolves through a symlink to {}, outside the plugin folder {}",
            link.display(),
            target.display(),
            dir.canonicalize().unwrap().display()
        )),
        "{stderr}"
    );

    let config = custom_sso_config(&scratch, &dir, "  allow_insecure_plugin_permissions: true\n");
    let output = run_hookgate(&["check", "--config", &config], &[]);
    let (stdout, stderr) = output_text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.starts_with(&format!(
            "general_settings.custom_sso: custom_sso.custom_sso_handler -> {} -> {} (kind",
            link.display(),
            target.display()
        )),
        "{stdout}"
    );
    assert!(stderr.contains("resolves through a symlink to"), "the insecurity is logged: {stderr}");
}

#[cfg(unix)]
fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Runs the server on `config` and returns its output once it exits (refused), or fails if it
/// is still serving after 30 s.
#[cfg(unix)]
fn serve_refused(config: &str) -> std::process::Output {
    let mut command = std::process::Command::new(hookgate_tests::hookgate_bin());
    command
        .args(["--config", config, "--host", "127.0.0.1", "--port", "0"])
        .env("HOOKGATE_LOG", "warn")
        .env("LITELLM_MASTER_KEY", "sk-test-a-long-enough-master-key")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for name in hookgate_tests::LITELLM_VARIABLES {
        if *name != "LITELLM_MASTER_KEY" {
            command.env_remove(name);
        }
    }
    let mut child = command.spawn().expect("start hookgate");
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > std::time::Duration::from_secs(30) {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!("the server started on an insecure config:\n{}", output_text(&output).1);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

#[cfg(unix)]
#[test]
fn a_config_others_may_change_is_refused_by_check_and_at_startup() {
    let scratch = Scratch::new();
    // Even a config that asks for insecure plugins, which is what a writer would add.
    let config = seed_config(
        &scratch,
        "  custom_sso: custom_sso.custom_sso_handler\n  allow_insecure_plugin_permissions: true\n",
    );
    let file = std::path::Path::new(&config).canonicalize().unwrap();
    let output = run_hookgate(&["check", "--config", &config], &[]);
    assert!(output.status.success(), "{:?}", output_text(&output));

    set_mode(&file, 0o666);
    let refusal = format!(
        "error: refusing the config file {}: it chooses the plugin libraries the server runs (and \
         can turn their permission checks off), so no one but root or the server's user may be \
         able to change it:\n    file {} is writable by its group and by others (mode 0666)\n  \
         the file and every folder above it must be owned by root or the server's user and \
         writable by no one else (chown, chmod go-w); allow_insecure_plugin_permissions does not \
         apply to the config file itself",
        file.display(),
        file.display()
    );
    let output = run_hookgate(&["check", "--config", &config], &[]);
    let (stdout, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains(&refusal), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let output = serve_refused(&config);
    let (_, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&refusal), "{stderr}");
    assert!(!stderr.contains("listening"), "{stderr}");
    let output =
        run_hookgate(&["try", "--config", &config, "--header", "x-forwarded-user: x"], &[]);
    assert!(output_text(&output).1.contains(&refusal), "{:?}", output_text(&output));

    // Group-writable only, and a folder others may write (no sticky bit): refused too.
    set_mode(&file, 0o664);
    let output = run_hookgate(&["check", "--config", &config], &[]);
    let (_, stderr) = output_text(&output);
    assert!(stderr.contains("is writable by its group (mode 0664)"), "{stderr}");
    set_mode(&file, 0o644);
    let folder = file.parent().unwrap();
    set_mode(folder, 0o777);
    let output = run_hookgate(&["check", "--config", &config], &[]);
    let (_, stderr) = output_text(&output);
    set_mode(folder, 0o700);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "\n    folder {} is writable by its group and by others (mode 0777)\n",
            folder.display()
        )),
        "{stderr}"
    );
    // With the sticky bit (as /tmp), others cannot replace the file: it is accepted.
    set_mode(folder, 0o1777);
    let output = run_hookgate(&["check", "--config", &config], &[]);
    set_mode(folder, 0o700);
    assert!(output.status.success(), "{:?}", output_text(&output));

    // Owned by another user (only root can give a file away; others skip this part).
    if std::os::unix::fs::chown(&file, Some(65534), None).is_ok() {
        let output = run_hookgate(&["check", "--config", &config], &[]);
        let (_, stderr) = output_text(&output);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "file {} is owned by uid 65534, neither root nor the server's user",
                file.display()
            )),
            "{stderr}"
        );
    }
}

#[cfg(unix)]
#[test]
fn a_literal_master_key_others_may_read_is_warned_about() {
    let scratch = Scratch::new();
    let file = scratch.write(
        "config.yaml",
        "general_settings:\n  master_key: sk-a-literal-key-in-the-config-file\n",
    );
    let config = file.display().to_string();
    set_mode(&file, 0o644);
    let output = run_hookgate(&["check", "--config", &config], &[]);
    let (stdout, stderr) = output_text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: general_settings.master_key is written in this file, which its group and others \
             can read (mode 0644)",
            std::path::absolute(&file).unwrap().display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("sk-a-literal"), "{stderr}");

    set_mode(&file, 0o600);
    let output = run_hookgate(&["check", "--config", &config], &[]);
    assert!(!output_text(&output).1.contains("master_key"), "{:?}", output_text(&output));
    // A key taken from the environment is not in the file: no warning whatever its mode.
    std::fs::write(&file, "general_settings:\n  master_key: os.environ/HG_TEST_KEY\n").unwrap();
    set_mode(&file, 0o644);
    let output =
        run_hookgate(&["check", "--config", &config], &[("HG_TEST_KEY", "sk-from-the-env-1234")]);
    assert!(output.status.success(), "{:?}", output_text(&output));
    assert!(!output_text(&output).1.contains("master_key"), "{:?}", output_text(&output));
}
