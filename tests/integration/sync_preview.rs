//! `hookgate sync --dry-run --from events`: before authoritative team sync is turned on, every
//! user's first authoritative sign-in previewed from the groups their latest sign-in recorded —
//! and then those sign-ins made, to check the preview was what they did.

use std::collections::BTreeMap;

use hookgate::db::entity::{sign_in_event, team_member};
use hookgate_tests::{
    Scratch, build_dir, output_text, run_hookgate,
    server::{Backend, ServerOptions, TestServer, for_each_backend},
};
use sea_orm::{ConnectionTrait, EntityTrait, PaginatorTrait, QueryOrder};
use serde_json::{Value, json};

use super::rehearsal::{changed, files_in, migrations};

/// The header hook alone: memberships from groups are a sync's own (source `idp`).
fn config(extra: &str) -> String {
    format!(
        "general_settings:\n  custom_ui_sso_sign_in_handler: \
         custom_sso_handler.custom_ui_sso_sign_in_handler\n  plugin_dirs: [\"{{plugins}}\"]\n  \
         trusted_proxy_ranges: [\"127.0.0.1/32\"]\n{extra}"
    )
}

/// The config the operator means to turn on: the sync, and a role map that applies with it.
const AUTHORITATIVE: &str = "  litellm_jwtauth:\n    sync_user_role_and_teams: true\n    \
                             jwt_litellm_role_map:\n      - {jwt_role: platform, litellm_role: \
                             proxy_admin}\n";

/// Every membership: user → [(team, source)].
fn memberships(server: &TestServer) -> BTreeMap<String, Vec<(String, String)>> {
    let rows = server.db(async |conn| {
        team_member::Entity::find()
            .order_by_asc(team_member::Column::UserId)
            .order_by_asc(team_member::Column::TeamId)
            .all(conn)
            .await
            .unwrap()
    });
    let mut by_user: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for row in rows {
        by_user.entry(row.user_id).or_default().push((row.team_id, row.source));
    }
    by_user
}

/// Each user's stored role.
fn roles(server: &TestServer) -> BTreeMap<String, Option<String>> {
    server.users().into_iter().map(|user| (user.user_id, user.user_role)).collect()
}

/// `hookgate sync` with `args` on `config_path` over the server's database.
fn sync(server: &TestServer, config_path: &str, args: &[&str]) -> std::process::Output {
    let mut all = vec!["sync", "--config", config_path];
    all.extend_from_slice(args);
    run_hookgate(
        &all,
        &[("DATABASE_URL", &server.database_url), ("LITELLM_MASTER_KEY", &server.master_key)],
    )
}

/// The `--json` preview, by user.
fn preview(server: &TestServer, config_path: &str) -> BTreeMap<String, Value> {
    let output = sync(server, config_path, &["--dry-run", "--from", "events", "--json"]);
    let (stdout, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(report["committed"], false);
    report["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| (user["user_id"].as_str().unwrap().to_owned(), user.clone()))
        .collect()
}

/// The teams a preview line says the user would leave.
fn removed(line: &Value) -> Vec<String> {
    line["removed_memberships"]
        .as_array()
        .unwrap_or_else(|| panic!("the preview knows no removals: {line}"))
        .iter()
        .map(|m| m["team_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_preview_is_what_the_first_authoritative_sign_ins_then_do() {
    for_each_backend(|backend| {
        // Today: additive sync, no role map.
        let additive = config("");
        let mut server = TestServer::start_with(
            backend,
            ServerOptions { config: &additive, ..ServerOptions::default() },
        );
        for team in ["eng", "ops", "lab", "sales"] {
            server.create_team(team);
        }
        // ann: ops dropped at the provider (additive: still a member), and sales by an admin.
        server.session_key("ann", &["eng", "ops"]);
        server.session_key("ann", &["eng"]);
        let reply = server.post_json(
            "/team/member_add",
            &json!({"team_id": "sales", "member": {"user_id": "ann", "role": "user"}}),
            &[("authorization", &server.master_auth())],
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        // bob: in the group the new role map makes proxy_admin.
        server.session_key("bob", &["platform", "eng"]);
        // carol: signed in before groups were recorded (her events' groups cleared).
        server.session_key("carol", &["eng", "ops"]);
        server.db(async |conn| {
            conn.execute_unprepared(
                "UPDATE sign_in_events SET groups = NULL WHERE user_id = 'carol'",
            )
            .await
            .unwrap();
        });
        // dan: his latest identity named no groups at all (recorded as none, not unknown).
        server.session_key("dan", &["lab"]);
        server.session_key("dan", &[]);
        // erin: nothing changes.
        server.session_key("erin", &["eng"]);
        // fred: made by an administrator, never signed in.
        let reply = server.post_json(
            "/user/new",
            &json!({"user_id": "fred", "teams": ["eng"]}),
            &[("authorization", &server.master_auth())],
        );
        assert_eq!(reply.status, 200, "{}", reply.body);

        let scratch = Scratch::new();
        let new_config =
            config(AUTHORITATIVE).replace("{plugins}", &build_dir().display().to_string());
        let new_path = scratch.write("config.yaml", &new_config).display().to_string();
        let (members_before, roles_before) = (memberships(&server), roles(&server));
        let events_before =
            server.db(async |conn| sign_in_event::Entity::find().count(conn).await.unwrap());
        let migrations_before = migrations(&server);
        let files_before = (*backend == Backend::Sqlite).then(|| {
            server.stop();
            files_in(&server.dir())
        });

        let lines = preview(&server, &new_path);
        assert_eq!(
            lines.keys().map(String::as_str).collect::<Vec<_>>(),
            ["ann", "bob", "carol", "dan", "erin", "fred"],
            "every user"
        );
        let status = |user: &str| lines[user]["status"].as_str().unwrap().to_owned();
        assert_eq!(removed(&lines["ann"]), ["ops"], "the sync's ops, not the admin's sales");
        assert_eq!(lines["ann"]["new_user_role"], Value::Null);
        assert_eq!(lines["ann"]["revokes_earlier_sessions"], true);
        assert_eq!(lines["ann"]["synced_memberships"], json!(["eng", "ops"]));
        assert_eq!(removed(&lines["bob"]), Vec::<String>::new());
        assert_eq!(lines["bob"]["user_role"], "internal_user_viewer");
        assert_eq!(lines["bob"]["new_user_role"], "proxy_admin");
        assert_eq!(removed(&lines["dan"]), ["lab"], "no groups recorded is not unknown");
        assert_eq!(status("erin"), "unchanged");
        for user in ["carol", "fred"] {
            assert_eq!(status(user), "unknown", "{user}");
            assert_eq!(lines[user]["reason"], "no sign-in since groups were recorded");
            assert_eq!(lines[user]["removed_memberships"], Value::Null, "{user}");
            assert_eq!(lines[user]["groups_recorded_at"], Value::Null, "{user}");
        }
        assert_eq!(lines["carol"]["synced_memberships"], json!(["eng", "ops"]));
        assert_eq!(lines["fred"]["synced_memberships"], json!([]), "fred's eng is an admin's");
        assert!(lines["ann"]["groups_recorded_at"].is_string());

        // The table for people says the same.
        let output = sync(&server, &new_path, &["--dry-run"]);
        let (text, stderr) = output_text(&output);
        assert_eq!(output.status.code(), Some(0), "{text}\n{stderr}");
        let row = |user: &str| {
            text.lines().find(|line| line.starts_with(&format!("{user} "))).unwrap_or_default()
        };
        assert!(text.contains("sync_user_role_and_teams is on"), "{text}");
        assert!(row("ann").ends_with(" ops"), "{text}");
        assert!(row("bob").contains("internal_user_viewer -> proxy_admin"), "{text}");
        assert!(
            row("carol").ends_with(
                "unknown: no sign-in since groups were recorded (synced memberships: eng, ops)"
            ),
            "{text}"
        );
        assert!(row("dan").ends_with(" lab"), "{text}");
        assert!(
            text.contains(
                "6 users: 2 would lose memberships (2 in all, and their earlier sessions), 1 \
                 would change role, 2 unknown; nothing was written"
            ),
            "{text}"
        );

        // Nothing was written: not a row, not a migration, and on SQLite not a byte.
        if let Some(files_before) = &files_before {
            assert_eq!(changed(files_before, &files_in(&server.dir())), Vec::<String>::new());
        }
        assert_eq!(memberships(&server), members_before);
        assert_eq!(roles(&server), roles_before);
        assert_eq!(
            server.db(async |conn| sign_in_event::Entity::find().count(conn).await.unwrap()),
            events_before
        );
        assert_eq!(migrations(&server), migrations_before);

        // The operator turns the sync on; everyone signs in with the groups last recorded.
        if files_before.is_none() {
            server.stop();
        }
        let on = TestServer::start_with(
            backend,
            ServerOptions {
                config: &config(AUTHORITATIVE),
                shared: Some((&server.database_url, &server.master_key)),
                ..ServerOptions::default()
            },
        );
        for (user, groups) in [
            ("ann", &["eng"][..]),
            ("bob", &["platform", "eng"]),
            ("carol", &["eng"]),
            ("dan", &[]),
            ("erin", &["eng"]),
        ] {
            on.session_key(user, groups);
        }
        let (members_after, roles_after) = (memberships(&on), roles(&on));
        for (user, line) in &lines {
            if line["status"] == "unknown" {
                continue;
            }
            let teams = |by_user: &BTreeMap<String, Vec<(String, String)>>| -> Vec<String> {
                by_user.get(user).into_iter().flatten().map(|(team, _)| team.clone()).collect()
            };
            let lost: Vec<String> = teams(&members_before)
                .into_iter()
                .filter(|team| !teams(&members_after).contains(team))
                .collect();
            assert_eq!(lost, removed(line), "{user}: the sign-in removed what was previewed");
            let expected_role = line["new_user_role"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| roles_before[user].clone());
            assert_eq!(roles_after[user], expected_role, "{user}: the previewed role");
        }
        assert_eq!(
            members_after["ann"],
            [("eng".to_owned(), "idp".to_owned()), ("sales".to_owned(), "admin".to_owned())]
        );

        // The sign-ins recorded their groups: carol is known now, and nothing is left to do.
        let again = preview(&on, &new_path);
        for (user, line) in &again {
            let expected = if user == "fred" { "unknown" } else { "unchanged" };
            assert_eq!(line["status"], expected, "{user}: {line}");
        }
        drop(on);
    });
}

#[test]
fn an_outdated_schema_is_refused_and_left_as_it_is() {
    for_each_backend(|backend| {
        let mut server = TestServer::start(backend);
        assert_eq!(server.sign_in("jo", "jo@example.com", &["eng"]).status, 303);
        server.stop();
        let latest = "m20261206_000007_sign_in_groups";
        let applied = migrations(&server);
        assert_eq!(applied.last().map(String::as_str), Some(latest));
        let previous = applied[applied.len() - 2].clone();
        server.db(async |conn| {
            let mut undo = Vec::new();
            if conn.get_database_backend() == sea_orm::DbBackend::Sqlite {
                undo.push("PRAGMA journal_mode=DELETE".to_owned());
            }
            undo.push("ALTER TABLE sign_in_events DROP COLUMN groups".to_owned());
            undo.push("ALTER TABLE sign_in_events DROP COLUMN role_groups".to_owned());
            undo.push(format!("DELETE FROM seaql_migrations WHERE version = '{latest}'"));
            for statement in undo {
                conn.execute_unprepared(&statement).await.unwrap();
            }
        });
        let before = files_in(&server.dir());
        let config = server.dir().join("config.yaml").display().to_string();
        let output = sync(&server, &config, &["--dry-run"]);
        let (stdout, stderr) = output_text(&output);
        assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
        assert!(stderr.contains("error: cannot preview on the database "), "{stderr}");
        let refusal = format!(
            ": the database is at migration {previous}, this build needs {latest} (not applied: \
             {latest}); hookgate sync never migrates or writes the database"
        );
        assert!(stderr.contains(&refusal), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(stdout, "", "no preview from a schema it cannot read");
        assert_eq!(migrations(&server).last(), Some(&previous), "hookgate sync migrated");
        assert_eq!(changed(&before, &files_in(&server.dir())), Vec::<String>::new());
    });
}

#[test]
fn sync_only_previews_and_creates_no_database() {
    let scratch = Scratch::new();
    let config = scratch.write("config.yaml", "general_settings: {}\n").display().to_string();
    let output = run_hookgate(&["sync", "--config", &config], &[]);
    let (stdout, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains(
            "error: hookgate sync only previews (--dry-run): the sync itself runs at each \
             sign-in once general_settings.litellm_jwtauth.sync_user_role_and_teams is true"
        ),
        "{stderr}"
    );

    let output = run_hookgate(&["sync", "--dry-run", "--config", &config], &[]);
    let (stdout, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("hookgate.db does not exist: no user has signed in yet"), "{stderr}");
    let names: Vec<String> = files_in(scratch.path()).into_iter().map(|(name, _)| name).collect();
    assert_eq!(names, ["config.yaml"], "nothing created");

    let output = run_hookgate(&["sync", "--dry-run", "--from", "scim", "--config", &config], &[]);
    let (_, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid value 'scim' for '--from <FROM>'"), "{stderr}");
}

#[test]
fn an_allowed_single_sign_on_records_its_groups_and_nothing_else_does() {
    for_each_backend(|backend| {
        let server = TestServer::start(backend);
        let long = "g".repeat(256);
        let reply = server.sign_in("gus", "gus@example.test", &["eng", "ops", "eng", &long]);
        assert_eq!(reply.status, 303, "{}", reply.body);
        server.password_cookie(&server.master_key);
        let events = server.events();
        let groups = |method: &str| -> Vec<(Option<Value>, Option<Value>)> {
            events
                .iter()
                .filter(|e| e.method == method)
                .map(|e| (e.groups.clone(), e.role_groups.clone()))
                .collect()
        };
        // Each once, and not the group too long to be a team id; the role mapping read them.
        assert_eq!(groups("header"), [(Some(json!(["eng", "ops"])), None)]);
        assert_eq!(groups("password"), [(None, None)], "the password login has no groups");
    });
}

/// With `role_mappings.group_claim`, roles come from a claim of their own: the event records
/// what the role mapping read, and the preview maps that (the teams still from the groups).
#[test]
fn the_role_preview_reads_the_role_mappings_own_claim() {
    use hookgate_tests::fake_idp::{Behavior, FakeIdp};
    for_each_backend(|backend| {
        let idp = FakeIdp::start();
        let env = idp.env();
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let oidc_config = |roles: &str| {
            let extra = format!(
                "  role_mappings:\n    group_claim: realm_access.roles\n    default_role: \
                 internal_user_viewer\n    roles:\n      proxy_admin_viewer: [{roles}]\n"
            );
            crate::oidc::config(&extra).replace("  custom_sso: custom_sso.custom_sso_handler\n", "")
        };
        let today = oidc_config("auditors");
        let mut server = TestServer::start_with(
            backend,
            ServerOptions { config: &today, env: &pairs, ..ServerOptions::default() },
        );
        idp.set(Behavior {
            claims: json!({
                "sub": "dee-sub", "preferred_username": "dee", "email": "dee@example.test",
                "email_verified": true, "groups": ["eng", "staff-x"],
                "realm_access": {"roles": ["staff", "staff"]},
            }),
            ..Behavior::default()
        });
        let reply = crate::oidc::sign_in(&server);
        assert_eq!(reply.status, 303, "{}", server.logs());
        let event = server.events().into_iter().find(|e| e.outcome == "allowed").unwrap();
        assert_eq!(event.groups, Some(json!(["eng", "staff-x"])));
        assert_eq!(event.role_groups, Some(json!(["staff"])), "what the role mapping read");

        // The operator maps `staff` (a role claim value, not a group) to proxy_admin_viewer.
        let scratch = Scratch::new();
        let planned = oidc_config("staff").replace("{plugins}", &build_dir().display().to_string());
        let planned_path = scratch.write("config.yaml", &planned).display().to_string();
        let lines = preview(&server, &planned_path);
        assert_eq!(lines["dee"]["user_role"], "internal_user_viewer");
        assert_eq!(lines["dee"]["new_user_role"], "proxy_admin_viewer", "{}", lines["dee"]);

        server.stop();
        let on = TestServer::start_with(
            backend,
            ServerOptions {
                config: &oidc_config("staff"),
                env: &pairs,
                shared: Some((&server.database_url, &server.master_key)),
                ..ServerOptions::default()
            },
        );
        assert_eq!(crate::oidc::sign_in(&on).status, 303, "{}", on.logs());
        let dee = on.users().into_iter().find(|u| u.user_id == "dee").unwrap();
        assert_eq!(dee.user_role.as_deref(), Some("proxy_admin_viewer"), "as previewed");
    });
}
