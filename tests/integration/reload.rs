//! `SIGHUP` through the built binary: the config and the hook libraries are loaded again, a
//! library rebuilt in place is really reloaded, a broken replacement leaves the old hooks
//! serving, and reloads under sign-in load lose no request.
//!
//! The hooks are `reload.reload_sign_in` and `reload.reload_custom_sso`, a file `libreload.so` in
//! a plugin folder of the test's own; build A (`fixture_reload_a`) signs `alice` in as `a-alice`
//! with a budget of 1, build B as `b-alice` with a budget of 2. A "rebuild" copies the other
//! build over the same file, in place.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use hookgate_tests::{
    Scratch, build_dir, library_file, plugin,
    server::{Backend, ServerOptions, TestServer, for_each_backend},
};

/// Marks a reload's outcome line (success or failure); one per `SIGHUP`.
const RELOADED: &str = "reloaded ";
const FAILED: &str = "failed, keeping the running configuration and hooks";

/// The config: the header hook `hook` and `reload.reload_custom_sso`, from `plugins` (then the
/// build folder), and whatever `extra` adds to general_settings.
fn config(plugins: &Path, hook: &str, extra: &str) -> String {
    format!(
        "general_settings:\n  custom_ui_sso_sign_in_handler: {hook}\n  \
         custom_sso: reload.reload_custom_sso\n  plugin_dirs: [\"{}\", \"{}\"]\n  \
         trusted_proxy_ranges: [\"127.0.0.1/32\"]\n{extra}",
        plugins.display(),
        build_dir().display()
    )
}

/// A server whose hook file is a copy of build A.
struct Reloading {
    /// The hook file, `<plugins>/libreload.so`.
    hook: PathBuf,
    plugins: Scratch,
    server: TestServer,
}

impl Reloading {
    fn start(backend: &Backend) -> Self {
        let plugins = Scratch::new();
        let hook = plugins.copy(&plugin("fixture_reload_a"), &library_file("reload"));
        let text = config(plugins.path(), "reload.reload_sign_in", "");
        let server =
            TestServer::start_with(backend, ServerOptions { config: &text, ..Default::default() });
        Self { hook, plugins, server }
    }

    /// Copies `build` (`a` or `b`) over the hook file, in place, as a rebuild does.
    fn rebuild(&self, build: &str) {
        std::fs::copy(plugin(&format!("fixture_reload_{build}")), &self.hook).expect("copy");
    }

    fn write_config(&self, text: &str) {
        std::fs::write(self.server.dir().join("config.yaml"), text).expect("write config");
    }

    /// Sends SIGHUP and returns the reload's outcome line.
    fn reload(&self) -> String {
        reload(&self.server)
    }

    /// Signs `user` in (must succeed) and returns the user id the hook gave.
    fn signed_in_as(&self, user: &str) -> String {
        signed_in_as(&self.server, user)
    }
}

fn signed_in_as(server: &TestServer, user: &str) -> String {
    let reply = server.sign_in(user, &format!("{user}@example.test"), &[]);
    assert_eq!(reply.status, 303, "{}\n{}", reply.body, server.logs());
    let token = reply.token_cookie().expect("a token cookie");
    server.claims(&token)["user_id"].as_str().expect("a user id").to_owned()
}

/// Sends `server` SIGHUP and returns the reload's outcome line.
fn reload(server: &TestServer) -> String {
    let before = outcome_lines(&server.logs()).len();
    server.hangup();
    let started = Instant::now();
    loop {
        let lines = outcome_lines(&server.logs());
        if lines.len() > before {
            assert_eq!(lines.len(), before + 1, "one line per reload:\n{lines:#?}");
            return lines[before].clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no reload line within 30 s of SIGHUP:\n{}",
            server.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn outcome_lines(logs: &str) -> Vec<String> {
    logs.lines()
        .filter(|line| line.contains(RELOADED) || line.contains(FAILED))
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_library_rebuilt_in_place_serves_the_next_sign_in_after_sighup() {
    let setup = Reloading::start(&Backend::Sqlite);
    assert_eq!(setup.signed_in_as("alice"), "a-alice");

    setup.rebuild("b");
    // Rewriting the file does not touch the running code (the server runs a private copy).
    assert_eq!(setup.signed_in_as("alice"), "a-alice");
    let line = setup.reload();
    let canonical = setup.hook.canonicalize().unwrap();
    for setting in ["custom_ui_sso_sign_in_handler", "custom_sso"] {
        assert!(
            line.contains(&format!(
                "{setting} -> {} (plugin-api {})",
                canonical.display(),
                plugin_api::PLUGIN_API_VERSION
            )),
            "{line}"
        );
    }
    assert_eq!(setup.signed_in_as("alice"), "b-alice");
    assert_eq!(setup.signed_in_as("bob"), "b-bob");

    // And back: build A again (already loaded once, still mapped) serves again.
    setup.rebuild("a");
    assert!(setup.reload().contains(RELOADED));
    assert_eq!(setup.signed_in_as("alice"), "a-alice");
    drop(setup.plugins);
}

#[test]
fn a_broken_replacement_leaves_the_old_hook_serving() {
    let setup = Reloading::start(&Backend::Sqlite);
    assert_eq!(setup.signed_in_as("alice"), "a-alice");
    let expect_failure = |why: &str| {
        let line = setup.reload();
        assert!(line.contains(FAILED) && line.contains(why), "expected {why:?} in:\n{line}");
        assert_eq!(setup.signed_in_as("alice"), "a-alice", "the old hook serves");
    };

    // Not a library at all.
    std::fs::write(&setup.hook, "not a library\n").unwrap();
    expect_failure("is not a loadable library");
    // A library without the hook's symbol.
    std::fs::copy(plugin("fixture_not_a_plugin"), &setup.hook).unwrap();
    expect_failure("has no symbol `reload_sign_in`");
    // No library: the reason (several lines at startup) fits on the reload's one line.
    std::fs::remove_file(&setup.hook).unwrap();
    expect_failure(&format!("{} (not found)", setup.hook.display()));

    // A config that does not parse.
    setup.rebuild("b");
    setup.write_config("general_settings:\n  custom_sso: [unclosed\n");
    expect_failure("config.yaml: ");
    // A hook built against another plugin-api.
    setup.write_config(&config(setup.plugins.path(), "fixture_incompatible.future_api", ""));
    expect_failure("incompatible plugin-api");
    // Loose permissions are refused on reload as at startup.
    setup.write_config(&config(setup.plugins.path(), "reload.reload_sign_in", ""));
    set_mode(&setup.hook, 0o666);
    expect_failure("writable by its group and by others");
    set_mode(&setup.hook, 0o755);

    // A valid reload that also changes a setting it cannot apply: the hook is swapped, the
    // setting is named in one warning and keeps its running value.
    setup.write_config(&config(
        setup.plugins.path(),
        "reload.reload_sign_in",
        "  hook_concurrency: 3\n  master_key: sk-another-key-that-needs-a-restart\n",
    ));
    assert!(setup.reload().contains(RELOADED));
    assert_eq!(setup.signed_in_as("alice"), "b-alice");
    let logs = setup.server.logs();
    let warning = logs.lines().find(|line| line.contains("not applied, restart to apply"));
    let warning = warning.unwrap_or_else(|| panic!("no warning:\n{logs}"));
    assert!(
        warning.contains("general_settings.master_key")
            && warning.contains("general_settings.hook_concurrency")
            && !warning.contains("sk-another"),
        "{warning}"
    );
    // The running master key still works.
    let reply = setup.server.get("/user/list", &[("authorization", &setup.server.master_auth())]);
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn a_sign_in_running_during_a_reload_finishes_on_the_hooks_it_started_with() {
    let setup = Reloading::start(&Backend::Sqlite);
    std::thread::scope(|scope| {
        // Its header hook (build A) sleeps 3 s; the reload to build B lands meanwhile.
        let slow = scope.spawn(|| {
            setup.server.get(
                "/sso/key/generate",
                &[
                    ("x-forwarded-user", "slow"),
                    ("x-forwarded-email", "slow@example.test"),
                    ("x-reload-sleep-ms", "3000"),
                ],
            )
        });
        std::thread::sleep(Duration::from_millis(300));
        setup.rebuild("b");
        assert!(setup.reload().contains(RELOADED));
        assert!(
            !slow.is_finished(),
            "the slow sign-in ended before the reload:\n{}",
            setup.server.logs()
        );
        assert_eq!(setup.signed_in_as("fast"), "b-fast");
        let reply = slow.join().unwrap();
        assert_eq!(reply.status, 303, "{}", reply.body);
    });
    let budget = |id: &str| {
        let users = setup.server.users();
        users.iter().find(|user| user.user_id == id).and_then(|user| user.max_budget)
    };
    // The slow sign-in's custom_sso ran after the reload, and still was build A's.
    assert_eq!(budget("a-slow"), Some(1.0));
    assert_eq!(budget("b-fast"), Some(2.0));
}

/// A reload applies `hook_timeout` to the sign-ins after it: a `custom_sso` that answers in
/// 900 ms is cut off under 500 ms, and served once the reloaded config gives it 3 s.
#[test]
fn a_reload_applies_a_new_hook_timeout() {
    let config = |timeout: &str| {
        format!(
            "general_settings:\n  custom_ui_sso_sign_in_handler: \
             fixture_misbehaving.slow_sign_in\n  custom_sso: fixture_misbehaving.slow_custom_sso\n  \
             plugin_dirs: [\"{}\"]\n  trusted_proxy_ranges: [\"127.0.0.1/32\"]\n  \
             hook_timeout: {timeout}\n",
            build_dir().display()
        )
    };
    let text = config("500ms");
    let server = TestServer::start_with(
        &Backend::Sqlite,
        ServerOptions { config: &text, ..Default::default() },
    );
    let late = |user: &str| {
        server.get("/sso/key/generate", &[("x-forwarded-user", user), ("x-sleep-ms", "1")])
    };
    let reply = late("late-900");
    assert_eq!(reply.status, 504, "{}", reply.body);

    std::fs::write(server.dir().join("config.yaml"), config("3s")).expect("write config");
    let line = reload(&server);
    assert!(line.contains(RELOADED), "{line}\n{}", server.logs());
    let reply = late("late-900");
    assert_eq!(reply.status, 303, "{}\n{}", reply.body, server.logs());
}

#[test]
fn a_config_others_may_write_is_not_reloaded() {
    let setup = Reloading::start(&Backend::Sqlite);
    assert_eq!(setup.signed_in_as("alice"), "a-alice");
    // The review's attack: another local user, who may write config.yaml, points the hooks at
    // a folder of theirs and turns the plugin checks off, then waits for the operator's SIGHUP.
    let evil = Scratch::new();
    evil.copy(&plugin("fixture_reload_b"), &library_file("reload"));
    set_mode(evil.path(), 0o777);
    let file = setup.server.dir().join("config.yaml");
    set_mode(&file, 0o666);
    setup.write_config(&config(
        evil.path(),
        "reload.reload_sign_in",
        "  allow_insecure_plugin_permissions: true\n",
    ));
    let line = setup.reload();
    let file = file.canonicalize().unwrap();
    assert!(
        line.contains(&format!(
            "reload of {} failed, keeping the running configuration and hooks: refusing the \
             config file {}: ",
            file.display(),
            file.display()
        )) && line.contains(&format!(
            "; file {} is writable by its group and by others (mode 0666); ",
            file.display()
        )),
        "{line}"
    );
    assert!(!setup.server.logs().contains("loading an insecure plugin"), "{}", setup.server.logs());
    assert_eq!(setup.signed_in_as("alice"), "a-alice", "the old hooks serve");

    // The same file, once only the server's user may write it, reloads.
    setup.write_config(&config(setup.plugins.path(), "reload.reload_sign_in", ""));
    setup.rebuild("b");
    set_mode(&file, 0o644);
    assert!(setup.reload().contains(RELOADED));
    assert_eq!(setup.signed_in_as("alice"), "b-alice");
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn twenty_reloads_under_sign_in_load_lose_no_request() {
    for_each_backend(|backend| {
        let setup = Reloading::start(backend);
        let stop = AtomicBool::new(false);
        let answered = AtomicUsize::new(0);
        let users = std::thread::scope(|scope| {
            let clients: Vec<_> = (0..4)
                .map(|client| {
                    let (server, stop, answered) = (&setup.server, &stop, &answered);
                    scope.spawn(move || {
                        let mut ids = Vec::new();
                        let mut n = 0;
                        while !stop.load(Ordering::Relaxed) {
                            let user = format!("load{client}-{n}");
                            let reply = server.sign_in(&user, &format!("{user}@example.test"), &[]);
                            assert_eq!(reply.status, 303, "{}\n{}", reply.body, server.logs());
                            answered.fetch_add(1, Ordering::Relaxed);
                            let token = reply.token_cookie().expect("a token cookie");
                            ids.push(server.claims(&token)["user_id"].as_str().unwrap().to_owned());
                            n += 1;
                        }
                        ids
                    })
                })
                .collect();
            for round in 0..20 {
                setup.rebuild(if round % 2 == 0 { "b" } else { "a" });
                let line = setup.reload();
                assert!(line.contains(RELOADED), "round {round}: {line}");
                // Let some sign-ins run on each build.
                let seen = answered.load(Ordering::Relaxed);
                let started = Instant::now();
                while answered.load(Ordering::Relaxed) < seen + 4
                    && started.elapsed() < Duration::from_secs(20)
                {
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
            stop.store(true, Ordering::Relaxed);
            clients
                .into_iter()
                .flat_map(|client| client.join().expect("client"))
                .collect::<Vec<_>>()
        });
        let total = answered.load(Ordering::Relaxed);
        assert_eq!(users.len(), total);
        assert!(total >= 80, "only {total} sign-ins");
        assert!(users.iter().any(|id| id.starts_with("a-load")), "build A served");
        assert!(users.iter().any(|id| id.starts_with("b-load")), "build B served");
        // Every answered sign-in committed: one "allowed" event and one user each.
        let allowed =
            setup.server.events().iter().filter(|event| event.outcome == "allowed").count();
        assert_eq!(allowed, total);
        assert_eq!(
            setup.server.users().iter().filter(|u| u.user_id.contains("-load")).count(),
            total
        );
        // The 20th reload loaded build A.
        assert_eq!(setup.signed_in_as("carol"), "a-carol");
    });
}
