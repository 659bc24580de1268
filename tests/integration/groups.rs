//! Groups decide teams and roles: the identity provider authoritative for teams
//! (`litellm_jwtauth.sync_user_role_and_teams`), removing only the memberships a sync made, and
//! roles from groups (`role_mappings`, `GENERIC_ROLE_MAPPINGS_*`, `jwt_litellm_role_map`).

use hookgate_tests::{
    Scratch, pairs, run_hookgate,
    server::{ServerOptions, TestServer, for_each_backend},
};
use serde_json::json;

/// The header hook alone (no custom_sso: memberships from groups are the sync's own).
fn config(extra: &str) -> String {
    format!(
        "general_settings:\n  custom_ui_sso_sign_in_handler: \
         custom_sso_handler.custom_ui_sso_sign_in_handler\n  plugin_dirs: [\"{{plugins}}\"]\n  \
         trusted_proxy_ranges: [\"127.0.0.1/32\"]\n{extra}"
    )
}

#[test]
fn an_authoritative_sync_removes_only_its_own_memberships_and_ends_older_sessions() {
    for_each_backend(|backend| {
        let config = config("  litellm_jwtauth:\n    sync_user_role_and_teams: true\n");
        let server = TestServer::start_with(
            backend,
            ServerOptions { config: &config, ..ServerOptions::default() },
        );
        for team in ["eng", "ops", "sales"] {
            server.create_team(team);
        }
        let first = server.session_key("carol", &["eng", "ops"]);
        let reply = server.post_json(
            "/team/member_add",
            &json!({"team_id": "sales", "member": {"user_id": "carol", "role": "user"}}),
            &[("authorization", &server.master_auth())],
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(
            server.memberships("carol"),
            pairs(&[("eng", "idp"), ("ops", "idp"), ("sales", "admin")])
        );
        let bearer = |key: &str| format!("Bearer {key}");
        assert_eq!(server.get("/user/info", &[("authorization", &bearer(&first))]).status, 200);

        // The provider drops ops (and never named sales): ops goes, the admin's sales stays.
        let second = server.session_key("carol", &["eng"]);
        assert_eq!(server.memberships("carol"), pairs(&[("eng", "idp"), ("sales", "admin")]));
        assert_eq!(
            server.get("/user/info", &[("authorization", &bearer(&first))]).status,
            401,
            "a session issued with the team it lost ends"
        );
        let info = server.get("/user/info", &[("authorization", &bearer(&second))]);
        assert_eq!(info.status, 200, "{}", info.body);

        // Same groups again: nothing removed, the session stays.
        let third = server.session_key("carol", &["eng"]);
        assert_eq!(server.get("/user/info", &[("authorization", &bearer(&second))]).status, 200);
        assert_eq!(server.get("/user/info", &[("authorization", &bearer(&third))]).status, 200);
    });
}

#[test]
fn without_the_setting_a_sync_only_adds() {
    for_each_backend(|backend| {
        let config = config("");
        let server = TestServer::start_with(
            backend,
            ServerOptions { config: &config, ..ServerOptions::default() },
        );
        server.create_team("eng");
        server.create_team("ops");
        let first = server.session_key("dan", &["eng", "ops"]);
        server.session_key("dan", &["eng"]);
        assert_eq!(server.memberships("dan"), pairs(&[("eng", "idp"), ("ops", "idp")]));
        let bearer = format!("Bearer {first}");
        assert_eq!(server.get("/user/info", &[("authorization", &bearer)]).status, 200);
    });
}

#[test]
fn groups_map_to_roles_the_most_privileged_wins() {
    let mappings = "  role_mappings:\n    default_role: internal_user_viewer\n    roles:\n      \
                    proxy_admin: [admins]\n      internal_user: [eng, ops]\n";
    for_each_backend(|backend| {
        let config = config(mappings);
        let server = TestServer::start_with(
            backend,
            ServerOptions { config: &config, ..ServerOptions::default() },
        );
        let role_after = |groups: &[&str]| {
            let reply = server.sign_in("erin", "erin@example.test", groups);
            assert_eq!(reply.status, 303, "{}", reply.body);
            let claims = server.claims(&reply.token_cookie().unwrap());
            let stored = server.users().into_iter().find(|u| u.user_id == "erin").unwrap();
            assert_eq!(stored.user_role.as_deref(), claims["user_role"].as_str(), "{groups:?}");
            claims["user_role"].as_str().unwrap().to_owned()
        };
        assert_eq!(role_after(&["eng"]), "internal_user");
        assert_eq!(role_after(&["eng", "admins"]), "proxy_admin");
        assert_eq!(role_after(&["sales"]), "internal_user_viewer", "no mapped group: the default");
    });
}

#[test]
fn litellms_role_mapping_names_work_as_they_do_there() {
    // GENERIC_ROLE_MAPPINGS_ROLES is a Python-literal dict in LiteLLM's docs.
    let env = [
        ("GENERIC_ROLE_MAPPINGS_ROLES", "{'proxy_admin_viewer': ['audit']}"),
        ("GENERIC_ROLE_MAPPINGS_DEFAULT_ROLE", "internal_user"),
    ];
    let plain = config("");
    let server = TestServer::start_with(
        &hookgate_tests::server::Backend::Sqlite,
        ServerOptions { config: &plain, env: &env, ..ServerOptions::default() },
    );
    let role = |user: &str, groups: &[&str]| {
        let reply = server.sign_in(user, &format!("{user}@example.test"), groups);
        server.claims(&reply.token_cookie().unwrap())["user_role"].as_str().unwrap().to_owned()
    };
    assert_eq!(role("fay", &["audit"]), "proxy_admin_viewer");
    assert_eq!(role("gil", &[]), "internal_user");

    // jwt_litellm_role_map applies with sync_user_role_and_teams, as in LiteLLM.
    let config = config(
        "  litellm_jwtauth:\n    sync_user_role_and_teams: true\n    jwt_litellm_role_map:\n      \
         - {jwt_role: platform, litellm_role: proxy_admin}\n",
    );
    let server = TestServer::start_with(
        &hookgate_tests::server::Backend::Sqlite,
        ServerOptions { config: &config, ..ServerOptions::default() },
    );
    let reply = server.sign_in("hal", "hal@example.test", &["platform"]);
    assert_eq!(server.claims(&reply.token_cookie().unwrap())["user_role"], "proxy_admin");
}

#[test]
fn a_role_mapping_that_names_no_role_stops_the_server_with_the_key() {
    let scratch = Scratch::new();
    let config = scratch.write(
        "config.yaml",
        "general_settings:\n  role_mappings:\n    roles:\n      superuser: [admins]\n",
    );
    let output = run_hookgate(&["check", "--config", &config.display().to_string()], &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr
            .contains("general_settings.role_mappings.roles: \"superuser\" is not a LiteLLM role"),
        "{stderr}"
    );
}

/// `hookgate try` previews an authoritative sign-in: the memberships it would add and remove,
/// the role, and the sessions it would end, and writes none of it.
#[test]
fn try_previews_what_an_authoritative_sign_in_would_remove() {
    for_each_backend(|backend| {
        let extra = "  litellm_jwtauth:\n    sync_user_role_and_teams: true\n  role_mappings:\n    \
                     roles:\n      internal_user: [eng]\n";
        let config = config(extra);
        let server = TestServer::start_with(
            backend,
            ServerOptions { config: &config, ..ServerOptions::default() },
        );
        for team in ["eng", "ops", "lab"] {
            server.create_team(team);
        }
        server.session_key("ivy", &["eng", "ops"]);
        let path = server.dir().join("config.yaml").display().to_string();
        let output = run_hookgate(
            &[
                "try",
                "--config",
                &path,
                "--header",
                "x-forwarded-user: ivy",
                "--header",
                "x-forwarded-email: ivy@example.test",
                "--header",
                "x-forwarded-groups: eng",
                "--header",
                "x-forwarded-groups: lab",
                "--json",
            ],
            &[("DATABASE_URL", &server.database_url), ("LITELLM_MASTER_KEY", &server.master_key)],
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let plan = &report["plan"];
        assert_eq!(
            plan["memberships"],
            json!([{"team_id": "lab", "user_id": "ivy", "role": "user", "source": "idp"}]),
            "{plan:#}"
        );
        assert_eq!(plan["removed_memberships"], json!([{"team_id": "ops", "user_id": "ivy"}]));
        assert_eq!(plan["revokes_earlier_sessions"], true);
        assert_eq!(plan["session"]["user_role"], "internal_user");
        // Nothing written: ivy is still in ops.
        assert_eq!(server.memberships("ivy"), pairs(&[("eng", "idp"), ("ops", "idp")]));
    });
}

/// In front of LiteLLM, an authoritative sync's removals reach LiteLLM too: the user leaves the
/// LiteLLM team, and the keys of the sessions the sign-in ends stop working there.
#[test]
fn in_front_of_litellm_the_user_leaves_the_litellm_team_and_loses_the_old_key() {
    use hookgate_tests::fake_litellm::FakeLitellm;
    for_each_backend(|backend| {
        let fake = FakeLitellm::start();
        let extra = format!(
            "  litellm_proxy_url: \"{}\"\n  litellm_jwtauth:\n    sync_user_role_and_teams: true\n",
            fake.url()
        );
        let config = config(&extra);
        let server = TestServer::start_with(
            backend,
            ServerOptions { config: &config, ..ServerOptions::default() },
        );
        fake.set_master_key(&server.master_key);
        for team in ["eng", "ops"] {
            server.create_team(team);
            fake.add_team(team);
        }
        let key = |reply: &hookgate_tests::server::Reply| {
            server.claims(&reply.token_cookie().unwrap())["key"].as_str().unwrap().to_owned()
        };
        let first = server.sign_in("kim", "kim@example.test", &["eng", "ops"]);
        assert_eq!(first.status, 303, "{}", first.body);
        let first = key(&first);
        assert_eq!(fake.members("ops"), ["kim"]);
        assert!(fake.is_live(&first));

        let second = server.sign_in("kim", "kim@example.test", &["eng"]);
        assert_eq!(second.status, 303, "{}", second.body);
        assert!(fake.members("ops").is_empty(), "kim left the LiteLLM team");
        assert_eq!(fake.members("eng"), ["kim"]);
        assert!(!fake.is_live(&first), "the key of the session that ended is deleted");
        assert!(fake.is_live(&key(&second)));
        assert_eq!(server.memberships("kim"), pairs(&[("eng", "idp")]));

        // LiteLLM refusing the removal fails the sign-in and changes nothing here.
        server.sign_in("kim", "kim@example.test", &["eng", "ops"]);
        fake.fail("/team/member_delete", 500, "database is down");
        let refused = server.sign_in("kim", "kim@example.test", &["eng"]);
        assert_eq!(refused.status, 502, "{}", refused.body);
        assert_eq!(server.memberships("kim"), pairs(&[("eng", "idp"), ("ops", "idp")]));
    });
}
