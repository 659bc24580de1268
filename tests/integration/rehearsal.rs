//! `hookgate try`: the built binary rehearses a sign-in over a real server's database, reports
//! what the hooks returned and what the sign-in would write, and writes nothing.

use hookgate::db::entity::{session, sign_in_event, team_member, user};
use hookgate_tests::{
    output_text, run_hookgate,
    server::{Backend, ServerOptions, TestServer, for_each_backend},
};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{Value, json};

fn config(handler: &str, custom_sso: &str) -> String {
    format!(
        "general_settings:\n  custom_ui_sso_sign_in_handler: {handler}\n  custom_sso: {custom_sso}\n  \
         plugin_dirs: [\"{{plugins}}\"]\n  trusted_proxy_ranges: [\"127.0.0.1/32\"]\n"
    )
}

/// Rows per table: users, memberships, sessions, events.
fn counts(server: &TestServer) -> [u64; 4] {
    server.db(async |conn| {
        [
            user::Entity::find().count(conn).await.unwrap(),
            team_member::Entity::find().count(conn).await.unwrap(),
            session::Entity::find().count(conn).await.unwrap(),
            sign_in_event::Entity::find().count(conn).await.unwrap(),
        ]
    })
}

/// `hookgate try` on the server's config and database.
fn try_on(server: &TestServer, args: &[&str]) -> std::process::Output {
    let config = server.dir().join("config.yaml").display().to_string();
    let mut all = vec!["try", "--config", config.as_str()];
    all.extend_from_slice(args);
    run_hookgate(
        &all,
        &[("DATABASE_URL", &server.database_url), ("LITELLM_MASTER_KEY", &server.master_key)],
    )
}

#[test]
fn try_reports_the_hooks_and_the_plan_and_writes_nothing() {
    for_each_backend(|backend| {
        let text = config(
            "fixture_misbehaving.recording_sign_in",
            "fixture_misbehaving.staging_custom_sso",
        );
        let server = TestServer::start_with(
            backend,
            ServerOptions { config: &text, ..ServerOptions::default() },
        );
        server.create_team("ops");
        let before = counts(&server);

        let output = try_on(
            &server,
            &[
                "--header",
                "x-forwarded-user: dave",
                "--header",
                "x-forwarded-email: Dave@Example.com",
                "--json",
            ],
        );
        let (stdout, stderr) = output_text(&output);
        assert!(output.status.success(), "{stdout}\n{stderr}");
        let report: Value = serde_json::from_str(&stdout).expect("JSON on stdout");

        let hooks = report["hooks"].as_array().unwrap();
        let settings: Vec<&str> = hooks.iter().map(|h| h["setting"].as_str().unwrap()).collect();
        assert_eq!(settings, ["custom_ui_sso_sign_in_handler", "custom_sso"], "{report:#}");
        assert_eq!(hooks[1]["hook"], "fixture_misbehaving.staging_custom_sso");
        assert!(hooks.iter().all(|h| h["seconds"].as_f64().unwrap() > 0.0), "{report:#}");
        assert_eq!(report["identity"]["id"], "dave");
        assert_eq!(report["identity"]["email"], "dave@example.com", "normalised as at a sign-in");
        assert_eq!(report["values"]["user_role"], "internal_user");
        assert_eq!(
            report["staged"],
            json!([
                {"new_user": {"user_id": "helper-dave", "user_email": null, "user_alias": null,
                              "user_role": "internal_user_viewer", "models": [], "max_budget": null,
                              "budget_duration": null}},
                {"add_team_member": {"team_id": "ops", "user_id": "helper-dave", "role": "admin"}},
                {"add_team_member": {"team_id": "ops", "user_id": "dave", "role": "user"}},
            ]),
            "{report:#}"
        );
        let plan = &report["plan"];
        assert_eq!(plan["user"]["create"]["user_id"], "dave", "{plan:#}");
        assert_eq!(plan["user"]["create"]["user_email"], "dave@example.com");
        assert_eq!(plan["hook_users"][0]["user_id"], "helper-dave", "{plan:#}");
        let mut memberships: Vec<(String, String, String)> = plan["memberships"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let field = |name: &str| m[name].as_str().unwrap().to_owned();
                (field("team_id"), field("user_id"), field("role"))
            })
            .collect();
        memberships.sort();
        assert_eq!(
            memberships,
            [
                ("ops".to_owned(), "dave".to_owned(), "user".to_owned()),
                ("ops".to_owned(), "helper-dave".to_owned(), "admin".to_owned()),
            ]
        );
        assert_eq!(plan["session"]["user_role"], "internal_user");
        assert_eq!(report["error"], Value::Null);
        assert_eq!(report["committed"], false);

        // Nothing was written: no user, membership, session or event.
        assert_eq!(counts(&server), before, "hookgate try wrote to the database");

        // The rehearsal was faithful: the real sign-in makes what it said.
        let reply = server.get(
            "/sso/key/generate",
            &[("x-forwarded-user", "dave"), ("x-forwarded-email", "Dave@Example.com")],
        );
        assert_eq!(reply.status, 303, "{}", server.logs());
        let after = counts(&server);
        assert_eq!(after[0], before[0] + 2, "dave and helper-dave");
        assert_eq!(after[1], before[1] + 2, "the two memberships");
    });
}

#[test]
fn try_shows_what_changes_for_a_returning_user_in_words() {
    let server = TestServer::start(&Backend::Sqlite);
    assert_eq!(server.sign_in("erin", "erin@example.com", &[]).status, 303);
    let before = counts(&server);
    // The seed header hook reads the groups header: `admins` makes a proxy admin.
    let output = try_on(
        &server,
        &[
            "--header",
            "x-forwarded-user: erin",
            "--header",
            "x-forwarded-email: erin@example.com",
            "--header",
            "x-forwarded-groups: admins",
        ],
    );
    let (stdout, stderr) = output_text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with(
            "custom_ui_sso_sign_in_handler: custom_sso_handler.custom_ui_sso_sign_in_handler ran in "
        ) && lines[0].ends_with(" ms"),
        "{stdout}"
    );
    assert!(lines.contains(&"the sign-in would:"), "{stdout}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("  update user erin: ")
                && l.contains(r#""user_role":"proxy_admin""#)),
        "{stdout}"
    );
    assert!(
        lines.contains(&"  issue a session for erin as proxy_admin with models []"),
        "{stdout}"
    );
    assert_eq!(lines.last(), Some(&"nothing was written (hookgate try commits nothing)"));
    assert_eq!(counts(&server), before);
    let erin = server.users().into_iter().find(|u| u.user_id == "erin").unwrap();
    assert_eq!(erin.user_role.as_deref(), Some("internal_user"), "the role did not change");
}

#[test]
fn a_refusing_or_panicking_hook_exits_non_zero_with_its_message() {
    for (handler, message) in [
        ("fixture_misbehaving.failing_sign_in", "the directory service is unreachable"),
        ("fixture_misbehaving.panicking_sign_in", "panicked"),
    ] {
        let text = config(handler, "custom_sso.custom_sso_handler");
        let server = TestServer::start_with(
            &Backend::Sqlite,
            ServerOptions { config: &text, ..ServerOptions::default() },
        );
        let before = counts(&server);
        let output = try_on(&server, &["--header", "x-forwarded-user: fay"]);
        let (stdout, stderr) = output_text(&output);
        assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
        let last = stdout.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("the sign-in would be ") && last.contains(message),
            "{handler}: {stdout}"
        );
        assert!(stderr.contains("error: the sign-in would not complete"), "{stderr}");
        assert_eq!(counts(&server), before, "no event is recorded for a rehearsal");

        let output = try_on(&server, &["--header", "x-forwarded-user: fay", "--json"]);
        let (stdout, _) = output_text(&output);
        assert_eq!(output.status.code(), Some(1));
        let report: Value = serde_json::from_str(&stdout).expect("JSON on stdout");
        assert!(report["error"]["message"].as_str().unwrap().contains(message), "{report:#}");
        assert_eq!(report["plan"], Value::Null);
    }
}

#[test]
fn try_maps_claims_as_the_configured_provider_does() {
    let server = TestServer::start(&Backend::Sqlite);
    let claims = server.scratch.write(
        "claims.json",
        r#"{"iss": "https://idp.example.test", "sub": "s-42", "email": "Gus@Example.com",
            "email_verified": true, "given_name": "Gus", "family_name": "Grey"}"#,
    );
    let claims = claims.display().to_string();
    let config = server.dir().join("config.yaml").display().to_string();
    let env = [
        ("DATABASE_URL", server.database_url.as_str()),
        ("LITELLM_MASTER_KEY", server.master_key.as_str()),
        ("PROXY_BASE_URL", "http://127.0.0.1:9"),
        ("GENERIC_CLIENT_ID", "x"),
        ("GENERIC_CLIENT_SECRET", "y"),
        ("GENERIC_AUTHORIZATION_ENDPOINT", "http://127.0.0.1:9/authorize"),
        ("GENERIC_TOKEN_ENDPOINT", "http://127.0.0.1:9/token"),
        ("GENERIC_USERINFO_ENDPOINT", "http://127.0.0.1:9/userinfo"),
    ];
    let output = run_hookgate(&["try", "--config", &config, "--claims", &claims, "--json"], &env);
    let (stdout, stderr) = output_text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["identity"]["email"], "gus@example.com", "{report:#}");
    assert_eq!(report["identity"]["provider"], "generic");
    let settings: Vec<&str> = report["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["setting"].as_str().unwrap())
        .collect();
    assert_eq!(settings, ["custom_sso"], "no header hook runs for claims");
    assert!(report["plan"]["user"]["create"].is_object(), "{report:#}");

    // Without a provider, claims are refused with the reason.
    let output = run_hookgate(&["try", "--config", &config, "--claims", &claims], &env[..2]);
    let (_, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("configures no OIDC provider"), "{stderr}");
}

#[test]
fn try_refuses_bad_arguments_saying_which() {
    let server = TestServer::start(&Backend::Sqlite);
    for (args, expected) in [
        (vec![], "hookgate try needs --header 'name: value'"),
        (vec!["--header", "no colon"], "--header \"no colon\": expected `name: value`"),
        (vec!["--header", "bad name: x"], "\"bad name\" is not a header name"),
        (vec!["--claims", "/nonexistent/claims.json"], "--claims"),
    ] {
        let output = try_on(&server, &args);
        let (_, stderr) = output_text(&output);
        assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }

    // Claims the configured provider's callback would refuse are refused the same way.
    let config = server.dir().join("config.yaml").display().to_string();
    let env = [
        ("DATABASE_URL", server.database_url.as_str()),
        ("LITELLM_MASTER_KEY", server.master_key.as_str()),
        ("PROXY_BASE_URL", "http://127.0.0.1:9"),
        ("GENERIC_CLIENT_ID", "x"),
        ("GENERIC_CLIENT_SECRET", "y"),
        ("GENERIC_AUTHORIZATION_ENDPOINT", "http://127.0.0.1:9/authorize"),
        ("GENERIC_TOKEN_ENDPOINT", "http://127.0.0.1:9/token"),
        ("GENERIC_USERINFO_ENDPOINT", "http://127.0.0.1:9/userinfo"),
    ];
    for (claims, expected) in [
        ("not json", "is not JSON"),
        ("[1, 2]", "the claims must be a JSON object"),
        (r#"{"email": "x@example.com"}"#, "the identity provider named no subject (`sub` claim)"),
    ] {
        let file = server.scratch.write("bad-claims.json", claims).display().to_string();
        let output = run_hookgate(&["try", "--config", &config, "--claims", &file], &env);
        let (_, stderr) = output_text(&output);
        assert_eq!(output.status.code(), Some(1), "{claims}: {stderr}");
        assert!(stderr.contains(expected), "{claims}: {stderr}");
    }
}

#[test]
fn headers_are_refused_without_a_header_hook() {
    let text = "general_settings:\n  custom_sso: custom_sso.custom_sso_handler\n  plugin_dirs: \
                [\"{plugins}\"]\n";
    let server = TestServer::start_with(
        &Backend::Sqlite,
        ServerOptions { config: text, ..ServerOptions::default() },
    );
    let output = try_on(&server, &["--header", "x-forwarded-user: hal"]);
    let (stdout, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("general_settings.custom_ui_sso_sign_in_handler is not set"),
        "{stdout}"
    );
}

#[test]
fn a_database_that_does_not_exist_is_not_created() {
    let scratch = hookgate_tests::Scratch::new();
    let config = scratch.write(
        "config.yaml",
        hookgate_tests::SEED_CONFIG
            .replace("{plugins}", &hookgate_tests::build_dir().display().to_string()),
    );
    let missing = scratch.path().join("never.db");
    let url = format!("sqlite://{}", missing.display());
    let output = run_hookgate(
        &[
            "try",
            "--config",
            &config.display().to_string(),
            "--header",
            "x-forwarded-user: ivy",
            "--json",
        ],
        &[("DATABASE_URL", &url)],
    );
    let (stdout, stderr) = output_text(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("JSON on stdout");
    assert_eq!(report["plan"]["user"]["create"]["user_id"], "ivy", "{report:#}");
    assert!(stderr.contains("does not exist yet: rehearsing over an empty one"), "{stderr}");
    assert!(!missing.exists(), "hookgate try created {}", missing.display());
    let left: Vec<_> = std::fs::read_dir(scratch.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["config.yaml"], "nothing beside the config (no master key file either)");
}

/// Every file in `dir` with its bytes, by name; a SQLite `-shm` file without them: it is the
/// shared memory of the connections (an index of the `-wal` file that any reader may rebuild),
/// not part of the database.
pub(super) fn files_in(dir: &std::path::Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            let bytes = if name.ends_with("-shm") {
                Vec::new()
            } else {
                std::fs::read(entry.path()).unwrap()
            };
            (name, bytes)
        })
        .collect();
    files.sort();
    files
}

/// The migrations recorded in the server's database.
pub(super) fn migrations(server: &TestServer) -> Vec<String> {
    server.db(async |conn| {
        use sea_orm::{ConnectionTrait, Statement};
        let rows = conn
            .query_all_raw(Statement::from_string(
                conn.get_database_backend(),
                "SELECT version FROM seaql_migrations ORDER BY version",
            ))
            .await
            .unwrap();
        rows.iter().map(|row| row.try_get::<String>("", "version").unwrap()).collect()
    })
}

/// The names of the files that differ between two [`files_in`] listings.
pub(super) fn changed(before: &[(String, Vec<u8>)], after: &[(String, Vec<u8>)]) -> Vec<String> {
    let mut names: Vec<String> = after
        .iter()
        .filter(|file| !before.contains(file))
        .chain(before.iter().filter(|file| !after.contains(file)))
        .map(|(name, _)| name.clone())
        .collect();
    names.dedup();
    names
}

#[test]
fn try_opens_the_database_read_only_and_never_migrates_it() {
    for_each_backend(|backend| {
        let mut server = TestServer::start(backend);
        assert_eq!(server.sign_in("jo", "jo@example.com", &[]).status, 303);
        server.stop();
        let sqlite = *backend == Backend::Sqlite;
        let dir = server.dir();
        let args =
            ["--header", "x-forwarded-user: jo", "--header", "x-forwarded-email: jo@example.com"];
        let rehearses_and_changes_nothing = |state: &str| {
            let before = files_in(&dir);
            let output = try_on(&server, &args);
            let (stdout, stderr) = output_text(&output);
            assert!(output.status.success(), "{state}: {stdout}\n{stderr}");
            assert!(stdout.contains("  issue a session for jo as "), "{state}: {stdout}");
            assert_eq!(changed(&before, &files_in(&dir)), Vec::<String>::new(), "{state}");
        };

        // The schema is this build's: the rehearsal runs and leaves every file as it was (no
        // journal mode written): as the stopped server left them, and then closed cleanly (a
        // WAL database without -wal or -shm, which a read-only open would otherwise create).
        rehearses_and_changes_nothing("as the server left it");
        if sqlite {
            server.db(async |conn| {
                use sea_orm::ConnectionTrait;
                conn.execute_unprepared("PRAGMA wal_checkpoint(TRUNCATE)").await.unwrap();
            });
            let names: Vec<String> = files_in(&dir).into_iter().map(|(name, _)| name).collect();
            assert_eq!(names, ["config.yaml", "hookgate.db"], "closed cleanly");
            rehearses_and_changes_nothing("closed cleanly");
        }

        // The review's reproduction: a database one migration behind (the latest undone), in
        // rollback-journal mode.
        let latest = LATEST_MIGRATION;
        let applied = migrations(&server);
        assert_eq!(applied.last().map(String::as_str), Some(latest));
        let previous = applied[applied.len() - 2].clone();
        assert_eq!(previous, "m20261208_000009_sqlite_timestamp_text");
        undo_latest_migration(&server);
        let before = files_in(&dir);
        let output = try_on(&server, &args);
        let (stdout, stderr) = output_text(&output);
        assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
        // The URL is named with its password masked, then the refusal.
        assert!(stderr.contains("error: cannot rehearse on the database "), "{stderr}");
        let refusal = format!(
            ": the database is at migration {previous}, this build needs {latest} (not applied: \
             {latest}); hookgate try never migrates or writes the database: rehearse on a copy"
        );
        assert!(stderr.contains(&refusal), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(
            migrations(&server).last(),
            Some(&previous),
            "hookgate try migrated the database"
        );
        assert_eq!(changed(&before, &files_in(&dir)), Vec::<String>::new());
    });
}

#[test]
fn a_try_interrupted_during_a_hook_leaves_nothing_behind() {
    // The database does not exist: the rehearsal runs over an empty one, which it used to make
    // in `$TMPDIR/hookgate-try-<pid>-<hex>/` and leave there when killed.
    let scratch = hookgate_tests::Scratch::new();
    let text = config("fixture_misbehaving.slow_sign_in", "custom_sso.custom_sso_handler")
        .replace("{plugins}", &hookgate_tests::build_dir().display().to_string());
    let config = scratch.write("config.yaml", text).display().to_string();
    let tmp = scratch.path().join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let calls = scratch.path().join("calls");
    let url = format!("sqlite://{}", scratch.path().join("never.db").display());
    let mut command = std::process::Command::new(hookgate_tests::hookgate_bin());
    command
        .args(["try", "--config", &config, "--header", "x-forwarded-user: kit"])
        .args(["--header", "x-sleep-ms: 120000"])
        .env("HOOKGATE_LOG", "warn")
        .env("DATABASE_URL", &url)
        .env("TMPDIR", &tmp)
        .env("HOOKGATE_FIXTURE_CALLS", &calls)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    for name in hookgate_tests::LITELLM_VARIABLES {
        command.env_remove(name);
    }
    let mut child = command.spawn().expect("start hookgate try");
    // Wait until the hook runs (it writes a line first), or the rehearsal ends.
    let started = std::time::Instant::now();
    while !calls.exists() && child.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < std::time::Duration::from_secs(60), "the hook never ran");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let during: Vec<String> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let _ = std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed: {status}");
    assert_eq!(during, Vec::<String>::new(), "files in TMPDIR while the hook ran");
    let after: Vec<String> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(after, Vec::<String>::new(), "files left in TMPDIR");
    assert!(!scratch.path().join("never.db").exists());
}

/// The latest migration: the tests that need a database one migration behind undo it.
pub(super) const LATEST_MIGRATION: &str = "m20261209_000010_account_notifications";

/// Takes the database of `server` (stopped) one migration back: [`LATEST_MIGRATION`]'s record
/// deleted and, on PostgreSQL, what it made (a function and its triggers; nothing on SQLite), in rollback-journal mode on SQLite (the review's reproduction). Adding a
/// migration means changing this and [`LATEST_MIGRATION`].
pub(super) fn undo_latest_migration(server: &TestServer) {
    server.db(async |conn| {
        use sea_orm::ConnectionTrait;
        let mut undo = Vec::new();
        if conn.get_database_backend() == sea_orm::DbBackend::Sqlite {
            undo.push("PRAGMA journal_mode=DELETE".to_owned());
        } else {
            undo.push(r#"DROP FUNCTION "hookgate_accounts_notify"() CASCADE"#.to_owned());
        }
        undo.push(format!("DELETE FROM seaql_migrations WHERE version = '{LATEST_MIGRATION}'"));
        for statement in undo {
            conn.execute_unprepared(&statement).await.unwrap();
        }
    });
}
