//! The host calls of plugin-api 0.1.1 through HTTP sign-ins: a `custom_sso` hook that creates
//! teams (`create_team`) and takes members out (`remove_team_member`) to run a sync of its own,
//! and a hook built the way plugin-api 0.1.0 built it, which keeps loading.

use hookgate::db::entity::{team, user};
use hookgate_tests::{
    fake_litellm::FakeLitellm,
    pairs,
    server::{Reply, ServerOptions, TestServer, for_each_backend},
};
use sea_orm::EntityTrait;
use serde_json::json;

/// The header hook and the fixture's `custom_sso` hook `hook`, with `extra` general settings.
fn config(hook: &str, extra: &str) -> String {
    format!(
        "general_settings:\n  custom_ui_sso_sign_in_handler: \
         custom_sso_handler.custom_ui_sso_sign_in_handler\n  custom_sso: fixture_team_sync.{hook}\n  \
         plugin_dirs: [\"{{plugins}}\"]\n  trusted_proxy_ranges: [\"127.0.0.1/32\"]\n{extra}"
    )
}

fn start(backend: &hookgate_tests::server::Backend, config: &str) -> TestServer {
    TestServer::start_with(backend, ServerOptions { config, ..ServerOptions::default() })
}

fn team_row(server: &TestServer, team_id: &str) -> Option<team::Model> {
    let team_id = team_id.to_owned();
    server.db(async move |conn| team::Entity::find_by_id(team_id).one(conn).await.unwrap())
}

fn works(server: &TestServer, key: &str) -> bool {
    let reply = server.get("/user/info", &[("authorization", &format!("Bearer {key}"))]);
    reply.status == 200
}

fn admin_adds(server: &TestServer, team: &str, user: &str) {
    let reply = server.post_json(
        "/team/member_add",
        &json!({"team_id": team, "member": {"user_id": user, "role": "user"}}),
        &[("authorization", &server.master_auth())],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn a_hook_creates_teams_and_removes_what_sign_ins_made_never_an_administrators() {
    for_each_backend(|backend| {
        let server = start(backend, &config("syncing_custom_sso", ""));
        server.create_team("eng");
        server.create_team("sales");

        let first = server.session_key("carol", &["eng", "hook-ml"]);
        let ml = team_row(&server, "hook-ml").expect("the hook's team");
        assert_eq!(ml.team_alias.as_deref(), Some("ml (hook)"));
        assert_eq!(ml.models, json!(["gpt-4o-mini"]));
        assert_eq!(ml.max_budget, Some(7.0));
        assert_eq!(
            ml.metadata,
            json!({"created_by": "custom_sso", "budget_duration": "7d", "rpm_limit": 50})
        );
        // The hook joins carol to a team her own groups name: the groups' membership (`idp`).
        assert_eq!(server.memberships("carol"), pairs(&[("eng", "idp"), ("hook-ml", "idp")]));
        admin_adds(&server, "sales", "carol");
        assert!(works(&server, &first));

        // The groups drop hook-ml (and never named sales): the hook removes both; the
        // administrator's sales stays, hook-ml goes, and the session issued with it ends.
        let second = server.session_key("carol", &["eng"]);
        assert_eq!(server.memberships("carol"), pairs(&[("eng", "idp"), ("sales", "admin")]));
        assert!(team_row(&server, "hook-ml").is_some(), "the team itself stays");
        assert!(!works(&server, &first), "a session issued with the removed team ends");
        assert!(works(&server, &second));

        // A hook removes another user's membership: dave leaves hook-ml, his session ends.
        let dave = server.session_key("dave", &["hook-ml"]);
        assert_eq!(server.memberships("dave"), pairs(&[("hook-ml", "idp")]));
        server.session_key("carol", &["eng", "evict:dave:hook-ml"]);
        assert!(server.memberships("dave").is_empty());
        assert!(!works(&server, &dave));
    });
}

#[test]
fn a_hooks_invalid_team_fails_the_sign_in_with_nothing_written() {
    for_each_backend(|backend| {
        let server = start(backend, &config("bad_team_custom_sso", ""));
        let reply = server.sign_in("erin", "erin@example.test", &[]);
        assert_ne!(reply.status, 303, "{}", reply.body);
        assert!(
            reply.body.contains("create_team: max_budget -1 must be 0 or more"),
            "{}",
            reply.body
        );
        assert!(team_row(&server, "broke").is_none());
        let users: Vec<String> = server.db(async |conn| {
            user::Entity::find().all(conn).await.unwrap().into_iter().map(|u| u.user_id).collect()
        });
        assert!(users.is_empty(), "{users:?}");
    });
}

/// The host refuses what plugin-api's guide says it refuses, and a hook that passes the
/// refusal on fails its sign-in with the host's reason and nothing written: LiteLLM's own team
/// id, a budget period that is not LiteLLM's, a user id that exists, a team that does not.
#[test]
fn the_host_refuses_what_the_guide_says_and_nothing_is_written() {
    let server = start(&hookgate_tests::server::Backend::Sqlite, &config("asking_custom_sso", ""));
    let made = server.post_json(
        "/user/new",
        &json!({"user_id": "taken", "user_alias": "Kept As Is"}),
        &[("authorization", &server.master_auth())],
    );
    assert_eq!(made.status, 200, "{}", made.body);
    for (group, reason) in [
        (
            "create:litellm-dashboard",
            ["create_team: the team id ", "litellm-dashboard", " is LiteLLM"],
        ),
        ("create:t1:fortnight", ["create_team: invalid budget duration ", "fortnight", "30d"]),
        ("new_user:taken", ["new_user: a user with id ", "taken", " already exists"]),
        ("join:nope", ["add_team_member: there is no team ", "nope", "add_team_member"]),
    ] {
        let reply = server.sign_in("gil", "gil@example.test", &[group]);
        assert_ne!(reply.status, 303, "{group}: {}", reply.body);
        for part in reason {
            assert!(reply.body.contains(part), "{group}: {part:?} in {}", reply.body);
        }
    }
    assert!(team_row(&server, "litellm-dashboard").is_none());
    assert!(team_row(&server, "t1").is_none());
    let users: Vec<(String, Option<String>)> = server.db(async |conn| {
        let rows = user::Entity::find().all(conn).await.unwrap();
        rows.into_iter().map(|u| (u.user_id, u.user_alias)).collect()
    });
    assert_eq!(users, [("taken".to_owned(), Some("Kept As Is".to_owned()))]);

    // The same hook, asked for what the host allows: the sign-in goes through.
    let reply = server.sign_in("gil", "gil@example.test", &["create:t2:7d", "join:t2"]);
    assert_eq!(reply.status, 303, "{}\n{}", reply.body, server.logs());
    assert!(team_row(&server, "t2").is_some());
}

/// A hook exported as plugin-api 0.1.0 exported it (kind 2, 0.1.0's host table) loads and
/// runs, and its host calls work.
#[test]
fn a_plugin_built_with_plugin_api_0_1_0_keeps_loading() {
    for_each_backend(|backend| {
        let server = start(backend, &config("older_custom_sso", ""));
        server.create_team("legacy");
        let reply: Reply = server.sign_in("fay", "fay@example.test", &[]);
        assert_eq!(reply.status, 303, "{}\n{}", reply.body, server.logs());
        assert_eq!(server.memberships("fay"), pairs(&[("legacy", "hook")]));
        assert!(server.logs().contains("plugin_api=0.1.0"), "{}", server.logs());
    });
}

/// A `custom_sso` hook declared non-blocking (plugin-api 0.1.2's flag) loads with the flag, and
/// its host calls that the sign-in's snapshot does not answer (another user, read from the
/// database) work: the hook runs on the runtime's worker, which blocks in place for the read (a
/// plain `block_on` there panics).
#[test]
fn a_non_blocking_hooks_host_reads_work() {
    for_each_backend(|backend| {
        let server = start(backend, &config("looking_custom_sso", ""));
        assert_eq!(server.sign_in("carol", "carol@example.test", &[]).status, 303);
        let reply = server.sign_in("dave", "dave@example.test", &["lookup:carol", "lookup:nobody"]);
        assert_eq!(reply.status, 303, "{}\n{}", reply.body, server.logs());
        let dave = server.db(async |conn| {
            user::Entity::find_by_id("dave".to_owned()).one(conn).await.unwrap().unwrap()
        });
        assert_eq!(dave.models, serde_json::json!(["found:carol"]), "{dave:?}");
        let logs = server.logs();
        let loaded = |line: &&str| {
            line.contains("loaded hook")
                && line.contains("fixture_team_sync.looking_custom_sso")
                && line.contains("non_blocking=true")
        };
        assert!(logs.lines().any(|line| loaded(&line)), "{logs}");
        assert!(!logs.contains("panicked"), "{logs}");
    });
}

/// In front of LiteLLM a hook's creations and removals reach LiteLLM first.
#[test]
fn in_front_of_litellm_a_hooks_teams_and_removals_reach_litellm() {
    for_each_backend(|backend| {
        let fake = FakeLitellm::start();
        let extra = format!("  litellm_proxy_url: \"{}\"\n", fake.url());
        let server = start(backend, &config("syncing_custom_sso", &extra));
        fake.set_master_key(&server.master_key);
        let key = |reply: &Reply| {
            server.claims(&reply.token_cookie().unwrap())["key"].as_str().unwrap().to_owned()
        };
        let first = server.sign_in("gus", "gus@example.test", &["hook-ml"]);
        assert_eq!(first.status, 303, "{}", first.body);
        let created = fake.requests_to("/team/new");
        assert_eq!(created.len(), 1);
        assert_eq!(created[0].body["team_id"], "hook-ml");
        assert_eq!(created[0].body["max_budget"], 7.0);
        assert_eq!(created[0].body["rpm_limit"], 50);
        assert_eq!(fake.members("hook-ml"), ["gus"]);
        let first = key(&first);
        assert!(fake.is_live(&first));

        let second = server.sign_in("gus", "gus@example.test", &[]);
        assert_eq!(second.status, 303, "{}", second.body);
        assert!(fake.members("hook-ml").is_empty(), "gus left the LiteLLM team");
        assert!(!fake.is_live(&first), "the key of the session that ended is deleted");
        assert!(fake.is_live(&key(&second)));
        assert!(server.memberships("gus").is_empty());

        // LiteLLM refusing the removal fails the sign-in and changes nothing here.
        server.sign_in("gus", "gus@example.test", &["hook-ml"]);
        fake.fail("/team/member_delete", 500, "database is down");
        let refused = server.sign_in("gus", "gus@example.test", &[]);
        assert_eq!(refused.status, 502, "{}", refused.body);
        assert_eq!(server.memberships("gus"), pairs(&[("hook-ml", "idp")]));
    });
}

/// `hookgate try` shows the teams a hook would create and the memberships it would remove, and
/// writes neither.
#[test]
fn try_shows_a_hooks_teams_and_removals() {
    for_each_backend(|backend| {
        let server = start(backend, &config("syncing_custom_sso", ""));
        server.create_team("eng");
        server.session_key("carol", &["eng", "hook-ml"]);
        let path = server.dir().join("config.yaml").display().to_string();
        let rehearse = |groups: &[&str]| {
            let mut args = vec![
                "try",
                "--config",
                &path,
                "--header",
                "x-forwarded-user: carol",
                "--header",
                "x-forwarded-email: carol@example.test",
                "--json",
            ];
            let headers: Vec<String> =
                groups.iter().map(|group| format!("x-forwarded-groups: {group}")).collect();
            for header in &headers {
                args.extend(["--header", header.as_str()]);
            }
            let output = hookgate_tests::run_hookgate(
                &args,
                &[
                    ("DATABASE_URL", &server.database_url),
                    ("LITELLM_MASTER_KEY", &server.master_key),
                ],
            );
            let (stdout, stderr) = hookgate_tests::output_text(&output);
            assert!(output.status.success(), "{stdout}\n{stderr}");
            serde_json::from_str::<serde_json::Value>(&stdout).unwrap()["plan"].clone()
        };
        let plan = rehearse(&["eng"]);
        assert_eq!(
            plan["removed_memberships"],
            json!([{"team_id": "hook-ml", "user_id": "carol", "by": "custom_sso"}]),
            "{plan:#}"
        );
        assert_eq!(plan["revokes_earlier_sessions"], true);
        let plan = rehearse(&["eng", "hook-ml", "hook-new"]);
        assert_eq!(plan["new_teams"][0]["team_id"], "hook-new", "{plan:#}");
        assert_eq!(plan["new_teams"][0]["source"], "hook");
        assert_eq!(plan["new_teams"].as_array().unwrap().len(), 1);
        assert!(team_row(&server, "hook-new").is_none(), "nothing written");
        assert_eq!(server.memberships("carol"), pairs(&[("eng", "idp"), ("hook-ml", "idp")]));
    });
}
