//! Loading hooks from real libraries: the example plugins answer; every broken fixture is refused
//! with its own error; panics stay inside the plugin.

use std::{collections::HashMap, path::Path, sync::Mutex};

use hookgate::{
    config::Config,
    plugins::{LoadError, PermissionPolicy, PluginLoader, Plugins},
};
use hookgate_tests::{
    Scratch, build_dir, library_file, older_layout_plugin, panic_abort_plugin, plugin,
};
use plugin_api::{
    HeaderPair, HookErrorKind, HostError, LogLevel, NewUser, OpenId, SignInRequest, TeamRecord,
    TeamRole, UserRecord, UserRole, abi::HostApi,
};

/// Loads the hooks `settings` names (YAML lines under `general_settings`), looking in
/// `plugin_dirs` and then the scratch folder that holds the config.
fn load_in(scratch: &Scratch, plugin_dirs: &[&Path], settings: &str) -> Result<Plugins, LoadError> {
    let dirs: Vec<String> =
        plugin_dirs.iter().map(|dir| format!("{:?}", dir.display().to_string())).collect();
    let text = format!(
        "general_settings:\n  plugin_dirs: [{}]\n  trusted_proxy_ranges: [127.0.0.1/32]\n{settings}",
        dirs.join(", ")
    );
    let config = Config::from_text(&scratch.path().join("config.yaml"), &text, &|_| None)
        .expect("valid config");
    Plugins::load(&config, &PluginLoader::new())
}

fn load(settings: &str) -> Result<Plugins, LoadError> {
    load_in(&Scratch::new(), &[&build_dir()], settings)
}

fn load_err(settings: &str) -> String {
    load(settings).expect_err("the hook must be refused").to_string()
}

fn sign_in_request<'a>(headers: &'a [HeaderPair<'a>]) -> SignInRequest<'a> {
    SignInRequest::new("GET", "/sso/key/generate", "", "127.0.0.1", 50000, headers)
}

/// A host that keeps users and teams in memory, as the server's database would.
#[derive(Default)]
struct MemoryHost {
    users: Mutex<HashMap<String, UserRecord>>,
    teams: Mutex<HashMap<String, TeamRecord>>,
    members: Mutex<Vec<(String, String, TeamRole)>>,
    logs: Mutex<Vec<(LogLevel, String)>>,
    panic_in_user_info: bool,
}

impl MemoryHost {
    fn with_teams(teams: &[&str]) -> Self {
        let host = MemoryHost::default();
        for team in teams {
            host.teams.lock().unwrap().insert(
                (*team).to_owned(),
                TeamRecord { team_id: (*team).to_owned(), ..TeamRecord::default() },
            );
        }
        host
    }
}

impl HostApi for MemoryHost {
    fn user_info(&self, user_id: &str) -> Result<Option<UserRecord>, HostError> {
        assert!(!self.panic_in_user_info, "the database driver blew up");
        Ok(self.users.lock().unwrap().get(user_id).cloned())
    }

    fn new_user(&self, user: NewUser) -> Result<UserRecord, HostError> {
        let user_id = user.user_id.ok_or_else(|| HostError::new("user_id required"))?;
        let record = UserRecord {
            user_id: user_id.clone(),
            user_email: user.user_email,
            ..UserRecord::default()
        };
        self.users.lock().unwrap().insert(user_id, record.clone());
        Ok(record)
    }

    fn team_info(&self, team_id: &str) -> Result<Option<TeamRecord>, HostError> {
        Ok(self.teams.lock().unwrap().get(team_id).cloned())
    }

    fn add_team_member(
        &self,
        team_id: &str,
        user_id: &str,
        role: TeamRole,
    ) -> Result<(), HostError> {
        if !self.teams.lock().unwrap().contains_key(team_id) {
            return Err(HostError::new(format!("no team {team_id}")));
        }
        self.members.lock().unwrap().push((team_id.to_owned(), user_id.to_owned(), role));
        Ok(())
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.logs.lock().unwrap().push((level, message.to_owned()));
    }
}

const SEED_HOOKS: &str = "  custom_ui_sso_sign_in_handler: custom_sso_handler.custom_ui_sso_sign_in_handler\n  custom_sso: custom_sso.custom_sso_handler\n";

#[test]
fn the_example_plugins_load_and_answer() {
    let plugins = load(SEED_HOOKS).unwrap();
    let handler = plugins.sign_in_handler.as_ref().unwrap();
    let custom_sso = plugins.custom_sso.as_ref().unwrap();
    assert_eq!(handler.info().file, plugin("custom_sso_handler").canonicalize().unwrap());
    assert_eq!(handler.info().api_version, plugin_api::PLUGIN_API_VERSION);

    let headers = [
        HeaderPair::new("x-forwarded-user", "alice"),
        HeaderPair::new("x-forwarded-email", "alice@example.test"),
        HeaderPair::new("x-forwarded-groups", "admins,staff"),
        HeaderPair::new("x-forwarded-groups", "ghosts"),
    ];
    let openid = handler.call(&sign_in_request(&headers)).unwrap();
    assert_eq!(openid.id.as_deref(), Some("alice"));
    assert_eq!(openid.email.as_deref(), Some("alice@example.test"));
    assert_eq!(openid.team_ids, ["admins", "staff", "ghosts"]);

    let host = MemoryHost::with_teams(&["staff"]);
    let values = custom_sso.call(&host, &openid).unwrap();
    assert_eq!(values.user_id, "alice");
    assert_eq!(values.user_role, Some(UserRole::ProxyAdmin), "alice is in admins");
    assert_eq!(values.max_budget, None);
    assert_eq!(
        *host.members.lock().unwrap(),
        [("staff".to_owned(), "alice".to_owned(), TeamRole::User)]
    );
    {
        let logs = host.logs.lock().unwrap();
        assert!(
            logs.iter()
                .any(|(level, line)| *level == LogLevel::Info
                    && line == "custom_sso: user alice is new"),
            "{logs:?}"
        );
    }

    let bob = OpenId {
        id: Some("bob".into()),
        email: Some("bob@example.test".into()),
        team_ids: vec!["staff".into()],
        ..OpenId::default()
    };
    let values = custom_sso.call(&host, &bob).unwrap();
    assert_eq!(
        (values.user_role, values.max_budget, values.budget_duration.as_deref()),
        (Some(UserRole::InternalUser), Some(0.01), Some("1d"))
    );
}

#[test]
fn a_hook_error_reaches_the_server_as_an_error() {
    let plugins = load(SEED_HOOKS).unwrap();
    let error = plugins
        .sign_in_handler
        .unwrap()
        .call(&sign_in_request(&[HeaderPair::new("x-forwarded-preferred-username", "evil")]))
        .unwrap_err();
    assert_eq!(error.kind(), HookErrorKind::Rejected);
    assert!(error.message().contains("the OAuth proxy sent no identity"), "{error}");

    let error =
        plugins.custom_sso.unwrap().call(&MemoryHost::default(), &OpenId::default()).unwrap_err();
    assert_eq!(error.kind(), HookErrorKind::Rejected);
    assert!(error.message().contains("no id found for the user"), "{error}");
}

#[test]
fn a_panicking_hook_returns_an_error_and_the_process_lives_on() {
    let plugins = load("  custom_ui_sso_sign_in_handler: fixture_misbehaving.panicking_sign_in\n  custom_sso: fixture_misbehaving.panicking_custom_sso\n").unwrap();
    let handler = plugins.sign_in_handler.unwrap();
    for _ in 0..3 {
        let error = handler.call(&sign_in_request(&[])).unwrap_err();
        assert_eq!(error.kind(), HookErrorKind::Panicked);
        assert!(error.message().contains("index out of bounds"), "{error}");
        assert!(
            error.message().contains("misbehaving/src/lib.rs"),
            "the location is reported: {error}"
        );
    }
    let error = plugins
        .custom_sso
        .unwrap()
        .call(&MemoryHost::default(), &OpenId { id: Some("x".into()), ..OpenId::default() })
        .unwrap_err();
    assert_eq!(error.kind(), HookErrorKind::Panicked);
    assert!(error.message().contains("custom_sso exploded for Some(\"x\")"), "{error}");

    // The process is fine: the example hook still answers.
    let plugins = load(SEED_HOOKS).unwrap();
    let headers = [HeaderPair::new("x-forwarded-user", "carol")];
    assert_eq!(
        plugins.sign_in_handler.unwrap().call(&sign_in_request(&headers)).unwrap().id.as_deref(),
        Some("carol")
    );
}

#[test]
fn a_panic_in_a_host_callback_never_crosses_into_the_plugin() {
    let plugins = load(SEED_HOOKS).unwrap();
    let host = MemoryHost { panic_in_user_info: true, ..MemoryHost::default() };
    let openid = OpenId { id: Some("dave".into()), ..OpenId::default() };
    let error = plugins.custom_sso.unwrap().call(&host, &openid).unwrap_err();
    assert_eq!(error.kind(), HookErrorKind::Failed);
    assert!(
        error
            .message()
            .contains("the server failed while handling user_info: the database driver blew up"),
        "{error}"
    );
}

#[test]
fn a_plugin_built_with_panic_abort_is_refused() {
    let scratch = Scratch::new();
    let abort_dir = panic_abort_plugin().parent().unwrap().to_owned();
    let err = load_in(
        &scratch,
        &[&abort_dir],
        "  custom_ui_sso_sign_in_handler: fixture_panic_abort.aborting_sign_in\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("general_settings.custom_ui_sso_sign_in_handler: cannot load hook `fixture_panic_abort.aborting_sign_in`"), "{err}");
    assert!(err.contains("the plugin was built with panic = \"abort\""), "{err}");
}

#[test]
fn a_hook_of_the_other_kind_is_refused() {
    let err = load_err("  custom_sso: custom_sso_handler.custom_ui_sso_sign_in_handler\n");
    assert!(err.contains("general_settings.custom_sso: cannot load hook"), "{err}");
    assert!(
        err.contains(
            "the hook is a `custom_ui_sso_sign_in_handler` hook (exported with \
             export_ui_sso_sign_in_handler!), but this setting needs a `custom_sso` hook"
        ),
        "{err}"
    );

    let err = load_err("  custom_ui_sso_sign_in_handler: custom_sso.custom_sso_handler\n");
    assert!(
        err.contains(
            "the hook is a `custom_sso` hook (exported with export_custom_sso!), but this \
             setting needs a `custom_ui_sso_sign_in_handler` hook"
        ),
        "{err}"
    );
}

#[test]
fn a_plugin_with_a_changed_layout_is_refused_in_a_few_lines() {
    let scratch = Scratch::new();
    let older_dir = older_layout_plugin().parent().unwrap().to_owned();
    let err = load_in(
        &scratch,
        &[&older_dir],
        "  custom_ui_sso_sign_in_handler: fixture_incompatible.older_layout\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("incompatible plugin-api"), "{err}");
    assert!(err.contains("rebuild the plugin against this server's plugin-api"), "{err}");
    assert!(err.contains("OpenIdFfi"), "{err}");
    assert!(err.contains("different number of fields (expected 10, found 9)"), "{err}");
    assert!(err.lines().count() <= 9, "a summary, not abi_stable's report:\n{err}");
}

#[test]
fn a_plugin_built_against_another_major_version_is_refused() {
    let err = load_err("  custom_ui_sso_sign_in_handler: fixture_incompatible.future_api\n");
    assert!(
        err.contains("incompatible plugin-api: the plugin was built with plugin-api 1.0.0"),
        "{err}"
    );
}

#[test]
fn a_library_that_is_not_a_plugin_is_refused() {
    let err = load_err("  custom_sso: fixture_not_a_plugin.answer\n");
    assert!(err.contains("the symbol is not a hookgate hook"), "{err}");

    let err = load_err("  custom_sso: fixture_not_a_plugin.custom_sso_handler\n");
    assert!(
        err.contains(&format!(
            "{} has no symbol `custom_sso_handler`",
            plugin("fixture_not_a_plugin").canonicalize().unwrap().display()
        )),
        "{err}"
    );
}

#[test]
fn a_system_library_is_refused() {
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/usr/lib/x86_64-linux-gnu/libm.so.6",
        "/lib64/libm.so.6",
        "/usr/lib/libm.so.6",
    ]
    .iter()
    .map(Path::new)
    .find(|path| path.exists())
    .expect("libm is on every Linux machine");
    let scratch = Scratch::new();
    scratch.copy(libm, &library_file("m"));
    let err =
        load_in(&scratch, &[], "  custom_sso: m.custom_sso_handler\n").unwrap_err().to_string();
    assert!(err.contains("has no symbol `custom_sso_handler`"), "{err}");
    let err = load_in(&scratch, &[], "  custom_sso: m.sin\n").unwrap_err().to_string();
    assert!(err.contains("the symbol is not a hookgate hook"), "{err}");
}

#[test]
fn a_file_that_is_not_a_library_is_refused() {
    let scratch = Scratch::new();
    let bogus = scratch.write(&library_file("bogus"), "this is not a library\n");
    let err =
        load_in(&scratch, &[], "  custom_sso: bogus.custom_sso_handler\n").unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "{} is not a loadable library",
            bogus.canonicalize().unwrap().display()
        )),
        "{err}"
    );
    assert!(err.contains("file too short") || err.contains("invalid ELF header"), "{err}");
}

#[test]
fn an_attribute_that_names_a_libc_symbol_is_refused() {
    // dlsym on a library handle also searches its dependencies: `malloc` resolves to libc's.
    let err = load_err("  custom_sso: custom_sso.malloc\n");
    assert!(err.contains("the symbol is not a hookgate hook"), "{err}");
}

#[test]
fn a_missing_library_lists_every_path_tried_in_order() {
    let scratch = Scratch::new();
    let first = scratch.path().join("first");
    let err = load_in(&scratch, &[&first], "  custom_sso: hooks.nowhere.custom_sso_handler\n")
        .unwrap_err()
        .to_string();
    let file = library_file("nowhere");
    let expected_first = format!("{}/hooks/{file} (not found)", first.display());
    let expected_second = format!("{}/hooks/{file} (not found)", scratch.path().display());
    assert!(err.contains("general_settings.custom_sso: cannot load hook `hooks.nowhere.custom_sso_handler`: library not found; tried:"), "{err}");
    let first_at = err.find(&expected_first).unwrap_or_else(|| panic!("{expected_first} in {err}"));
    let second_at =
        err.find(&expected_second).unwrap_or_else(|| panic!("{expected_second} in {err}"));
    assert!(first_at < second_at, "plugin_dirs before the config folder: {err}");
}

#[test]
fn the_first_plugin_dir_that_has_the_library_wins_and_libraries_are_cached() {
    let scratch = Scratch::new();
    let copy =
        scratch.copy(&plugin("custom_sso"), &format!("early/{}", library_file("custom_sso")));
    let plugins =
        load_in(&scratch, &[&scratch.path().join("early"), &build_dir()], SEED_HOOKS).unwrap();
    assert_eq!(plugins.custom_sso.unwrap().info().file, copy.canonicalize().unwrap());
    assert_eq!(
        plugins.sign_in_handler.unwrap().info().file,
        plugin("custom_sso_handler").canonicalize().unwrap()
    );

    let loader = PluginLoader::new();
    let reference = "fixture_misbehaving.panicking_sign_in".parse().unwrap();
    let first = loader
        .resolve::<plugin_api::abi::SignInHook>(
            "k",
            &reference,
            &[build_dir()],
            PermissionPolicy::Strict,
        )
        .unwrap();
    let second = loader
        .resolve::<plugin_api::abi::SignInHook>(
            "k",
            &reference,
            &[build_dir()],
            PermissionPolicy::Strict,
        )
        .unwrap();
    assert!(std::ptr::eq(first.hook, second.hook));
    // Another hook of the same file: still one library opened (and leaked), not one per hook.
    let other = "fixture_misbehaving.failing_sign_in".parse().unwrap();
    loader
        .resolve::<plugin_api::abi::SignInHook>(
            "k",
            &other,
            &[build_dir()],
            PermissionPolicy::Strict,
        )
        .unwrap();
    assert_eq!(loader.libraries_opened(), 1);
}

/// `custom_sso` copied into `plugins/` of `scratch` with folder mode `dir_mode` and file mode
/// `file_mode`; returns the folder and the file.
#[cfg(unix)]
fn plugin_copy(
    scratch: &Scratch,
    dir_mode: u32,
    file_mode: u32,
) -> (std::path::PathBuf, std::path::PathBuf) {
    use std::{fs, os::unix::fs::PermissionsExt};
    let file =
        scratch.copy(&plugin("custom_sso"), &format!("plugins/{}", library_file("custom_sso")));
    fs::set_permissions(&file, fs::Permissions::from_mode(file_mode)).unwrap();
    let dir = file.parent().unwrap().to_owned();
    fs::set_permissions(&dir, fs::Permissions::from_mode(dir_mode)).unwrap();
    (dir, file)
}

#[cfg(unix)]
const CUSTOM_SSO: &str = "  custom_sso: custom_sso.custom_sso_handler\n";
#[cfg(unix)]
const ALLOW_INSECURE: &str =
    "  custom_sso: custom_sso.custom_sso_handler\n  allow_insecure_plugin_permissions: true\n";

#[cfg(unix)]
#[test]
fn a_plugin_in_a_folder_only_its_owner_may_write_loads() {
    let scratch = Scratch::new();
    let (dir, file) = plugin_copy(&scratch, 0o755, 0o644);
    let plugins = load_in(&scratch, &[&dir], CUSTOM_SSO).unwrap();
    let info = plugins.custom_sso.as_ref().unwrap().info();
    assert_eq!(info.file, file.canonicalize().unwrap());
    assert_eq!(info.location(), info.file.display().to_string());

    // A symlink that stays inside the plugin folder is fine, and reported.
    let release = scratch.copy(&file, &format!("plugins/v2/{}", library_file("custom_sso")));
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink(format!("v2/{}", library_file("custom_sso")), &file).unwrap();
    let plugins = load_in(&scratch, &[&dir], CUSTOM_SSO).unwrap();
    let info = plugins.custom_sso.as_ref().unwrap().info();
    assert_eq!(info.file, release.canonicalize().unwrap());
    assert_eq!(info.found, file);
    assert_eq!(info.location(), format!("{} -> {}", file.display(), info.file.display()));
}

#[cfg(unix)]
#[test]
fn a_plugin_file_others_may_write_is_refused_unless_allowed() {
    let scratch = Scratch::new();
    let (dir, file) = plugin_copy(&scratch, 0o755, 0o666);
    let file = file.canonicalize().unwrap();
    let err = load_in(&scratch, &[&dir], CUSTOM_SSO).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "general_settings.custom_sso: cannot load hook `custom_sso.custom_sso_handler`: \
             refusing to load {}:\n    file {} is writable by its group and by others \
             (mode 0666)\n",
            file.display(),
            file.display()
        )),
        "{err}"
    );
    assert!(
        err.ends_with(
            "set general_settings.allow_insecure_plugin_permissions: true to load it anyway"
        ),
        "{err}"
    );

    let plugins = load_in(&scratch, &[&dir], ALLOW_INSECURE).unwrap();
    assert_eq!(plugins.custom_sso.unwrap().info().file, file);
}

#[cfg(unix)]
#[test]
fn a_plugin_folder_others_may_write_is_refused_unless_allowed() {
    let scratch = Scratch::new();
    let (dir, file) = plugin_copy(&scratch, 0o777, 0o644);
    let dir = dir.canonicalize().unwrap();
    let err = load_in(&scratch, &[&dir], CUSTOM_SSO).unwrap_err().to_string();
    assert!(
        err.contains(&format!("refusing to load {}:", file.canonicalize().unwrap().display())),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "\n    folder {} is writable by its group and by others (mode 0777)\n",
            dir.display()
        )),
        "{err}"
    );
    assert!(err.contains("general_settings.allow_insecure_plugin_permissions"), "{err}");

    // With the sticky bit (as /tmp), others cannot replace the library: it loads.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777)).unwrap();
    load_in(&scratch, &[&dir], CUSTOM_SSO).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();

    let plugins = load_in(&scratch, &[&dir], ALLOW_INSECURE).unwrap();
    assert_eq!(plugins.custom_sso.unwrap().info().file, file.canonicalize().unwrap());
}

#[cfg(unix)]
#[test]
fn a_symlink_out_of_the_plugin_folder_is_refused_unless_allowed() {
    let scratch = Scratch::new();
    let elsewhere =
        scratch.copy(&plugin("custom_sso"), &format!("elsewhere/{}", library_file("custom_sso")));
    let dir = scratch.path().join("plugins");
    std::fs::create_dir(&dir).unwrap();
    let link = dir.join(library_file("custom_sso"));
    std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
    let target = elsewhere.canonicalize().unwrap();

    let err = load_in(&scratch, &[&dir], CUSTOM_SSO).unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "refusing to load {} (found as {}):\n    {} resolves through a symlink to {}, \
             outside the plugin folder {}\n",
            target.display(),
            link.display(),
            link.display(),
            target.display(),
            dir.canonicalize().unwrap().display()
        )),
        "{err}"
    );
    assert!(err.contains("general_settings.allow_insecure_plugin_permissions"), "{err}");

    let plugins = load_in(&scratch, &[&dir], ALLOW_INSECURE).unwrap();
    let info = plugins.custom_sso.as_ref().unwrap().info();
    assert_eq!(info.file, target);
    assert_eq!(info.found, link);
    assert_eq!(info.location(), format!("{} -> {}", link.display(), target.display()));
}
