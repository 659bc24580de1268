//! Teams made by sign-ins: an identity's groups that are no team yet become teams when
//! `general_settings.create_teams_from_groups` allows them, with LiteLLM's
//! `litellm_settings.default_team_params`; in front of LiteLLM, created there first.

use hookgate::db::entity::{team, user};
use hookgate_tests::{
    Scratch,
    fake_litellm::FakeLitellm,
    output_text, pairs, run_hookgate,
    server::{ServerOptions, TestServer, for_each_backend},
};
use sea_orm::{EntityTrait, QueryOrder};
use serde_json::json;

/// The header hook alone, with `extra` general settings and `litellm` settings.
fn config(extra: &str, litellm: &str) -> String {
    format!(
        "general_settings:\n  custom_ui_sso_sign_in_handler: \
         custom_sso_handler.custom_ui_sso_sign_in_handler\n  plugin_dirs: [\"{{plugins}}\"]\n  \
         trusted_proxy_ranges: [\"127.0.0.1/32\"]\n{extra}litellm_settings:\n{litellm}"
    )
}

const CREATION: &str = "  create_teams_from_groups:\n    allowed_groups: [research]\n    \
                        allowed_group_prefixes: [llm-]\n";
const PARAMS: &str = "  default_team_params:\n    models: [gpt-4o]\n    max_budget: 25\n    \
                      budget_duration: 30d\n    tpm_limit: 1000\n    rpm_limit: 10\n";

fn teams(server: &TestServer) -> Vec<team::Model> {
    server.db(async |conn| {
        team::Entity::find().order_by_asc(team::Column::TeamId).all(conn).await.unwrap()
    })
}

fn team_ids(server: &TestServer) -> Vec<String> {
    teams(server).into_iter().map(|team| team.team_id).collect()
}

#[test]
fn allowed_groups_become_teams_with_default_team_params_and_others_do_not() {
    for_each_backend(|backend| {
        let config = config(CREATION, PARAMS);
        let server = TestServer::start_with(
            backend,
            ServerOptions { config: &config, ..ServerOptions::default() },
        );
        server.create_team("core");
        server.session_key("carol", &["llm-eng", "research", "sales", "core", "eng-llm"]);
        assert_eq!(team_ids(&server), ["core", "llm-eng", "research"]);
        let research = teams(&server).into_iter().find(|t| t.team_id == "research").unwrap();
        assert_eq!(research.team_alias.as_deref(), Some("research"));
        assert_eq!(research.models, json!(["gpt-4o"]));
        assert_eq!(research.max_budget, Some(25.0));
        assert_eq!(
            research.metadata,
            json!({"created_by": "sso_group", "budget_duration": "30d", "tpm_limit": 1000, "rpm_limit": 10})
        );
        assert_eq!(
            server.memberships("carol"),
            pairs(&[("core", "idp"), ("llm-eng", "idp"), ("research", "idp")])
        );

        // Another user naming a team a sign-in made joins it; it is not made again.
        let created_at = research.created_at;
        server.session_key("dave", &["research"]);
        let research = teams(&server).into_iter().find(|t| t.team_id == "research").unwrap();
        assert_eq!(research.created_at, created_at);
        assert_eq!(server.memberships("dave"), pairs(&[("research", "idp")]));
    });
}

#[test]
fn without_the_setting_no_group_becomes_a_team() {
    for_each_backend(|backend| {
        let config = config("", PARAMS);
        let server = TestServer::start_with(
            backend,
            ServerOptions { config: &config, ..ServerOptions::default() },
        );
        server.session_key("erin", &["llm-eng", "research"]);
        assert!(team_ids(&server).is_empty());
        assert!(server.memberships("erin").is_empty());
    });
}

#[test]
fn concurrent_sign_ins_creating_the_same_team_all_succeed() {
    for_each_backend(|backend| {
        let config = config(CREATION, "");
        let server = TestServer::start_with(
            backend,
            ServerOptions { config: &config, ..ServerOptions::default() },
        );
        let users: Vec<String> = (0..8).map(|n| format!("user{n}")).collect();
        std::thread::scope(|scope| {
            for user in &users {
                let server = &server;
                scope.spawn(move || {
                    let reply =
                        server.sign_in(user, &format!("{user}@example.test"), &["llm-shared"]);
                    assert_eq!(reply.status, 303, "{user}: {}", reply.body);
                });
            }
        });
        assert_eq!(team_ids(&server), ["llm-shared"]);
        for user in &users {
            assert_eq!(server.memberships(user), pairs(&[("llm-shared", "idp")]), "{user}");
        }
    });
}

#[test]
fn bad_team_settings_stop_startup_naming_the_key() {
    let scratch = Scratch::new();
    for (settings, expected) in [
        (
            "general_settings:\n  create_teams_from_groups: {}\n",
            "general_settings.create_teams_from_groups: name the groups that may become teams",
        ),
        (
            "general_settings:\n  create_teams_from_groups:\n    allowed_group_prefixes: [\"\"]\n",
            "general_settings.create_teams_from_groups.allowed_group_prefixes[0] (\"\")",
        ),
        (
            "litellm_settings:\n  default_team_params:\n    max_budget: -1\n",
            "litellm_settings.default_team_params.max_budget: invalid budget -1",
        ),
        (
            "litellm_settings:\n  default_team_params:\n    tpm_limit: 1.5\n",
            "litellm_settings.default_team_params.tpm_limit: invalid limit 1.5",
        ),
        (
            "litellm_settings:\n  default_team_params:\n    budget_duration: fortnight\n",
            "litellm_settings.default_team_params.budget_duration",
        ),
    ] {
        let file = scratch.write("config.yaml", settings);
        let output = run_hookgate(&["check", "--config", &file.display().to_string()], &[]);
        let (_, stderr) = output_text(&output);
        assert_eq!(output.status.code(), Some(1), "{settings}: {stderr}");
        assert!(stderr.contains(expected), "{settings}: {stderr}");
    }
}

/// In front of LiteLLM the team is created there (`/team/new` with the same id and params)
/// before hookgate writes; LiteLLM refusing fails the sign-in with nothing written here.
#[test]
fn in_front_of_litellm_the_team_is_created_there_first() {
    for_each_backend(|backend| {
        let fake = FakeLitellm::start();
        let extra = format!("  litellm_proxy_url: \"{}\"\n{CREATION}", fake.url());
        let config = config(&extra, PARAMS);
        let server = TestServer::start_with(
            backend,
            ServerOptions { config: &config, ..ServerOptions::default() },
        );
        fake.set_master_key(&server.master_key);
        // LiteLLM already has llm-ops (an administrator made it there): counted as created.
        fake.add_team("llm-ops");
        server.session_key("gus", &["llm-eng", "llm-ops"]);
        let created: Vec<serde_json::Value> =
            fake.requests_to("/team/new").into_iter().map(|r| r.body).collect();
        assert_eq!(created.len(), 2, "{created:#?}");
        assert_eq!(
            created[0],
            json!({"team_id": "llm-eng", "team_alias": "llm-eng", "models": ["gpt-4o"],
                   "max_budget": 25.0, "budget_duration": "30d", "tpm_limit": 1000,
                   "rpm_limit": 10, "metadata": {"created_by": "hookgate"}})
        );
        assert_eq!(fake.members("llm-eng"), ["gus"]);
        assert_eq!(fake.members("llm-ops"), ["gus"]);
        assert_eq!(team_ids(&server), ["llm-eng", "llm-ops"]);
        assert_eq!(server.memberships("gus"), pairs(&[("llm-eng", "idp"), ("llm-ops", "idp")]));

        fake.fail("/team/new", 500, "database is down");
        let refused = server.sign_in("hal", "hal@example.test", &["llm-new"]);
        assert_eq!(refused.status, 502, "{}", refused.body);
        assert_eq!(team_ids(&server), ["llm-eng", "llm-ops"], "no team written");
        let users: Vec<String> = server.db(async |conn| {
            user::Entity::find().all(conn).await.unwrap().into_iter().map(|u| u.user_id).collect()
        });
        assert!(!users.contains(&"hal".to_owned()), "no user written: {users:?}");
        assert!(
            fake.user("hal").is_none()
                || fake.keys().iter().all(|k| k.user_id != "hal" || k.deleted)
        );
    });
}

/// `hookgate try` shows the teams a sign-in would create, and creates none.
#[test]
fn try_shows_the_teams_a_sign_in_would_create() {
    for_each_backend(|backend| {
        let config = config(CREATION, PARAMS);
        let server = TestServer::start_with(
            backend,
            ServerOptions { config: &config, ..ServerOptions::default() },
        );
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
                "x-forwarded-groups: research",
                "--header",
                "x-forwarded-groups: sales",
                "--json",
            ],
            &[("DATABASE_URL", &server.database_url), ("LITELLM_MASTER_KEY", &server.master_key)],
        );
        let (stdout, stderr) = output_text(&output);
        assert!(output.status.success(), "{stdout}\n{stderr}");
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        let plan = &report["plan"];
        assert_eq!(
            plan["new_teams"],
            json!([{"team_id": "research", "team_alias": "research", "source": "idp",
                    "models": ["gpt-4o"], "max_budget": 25.0, "budget_duration": "30d",
                    "tpm_limit": 1000, "rpm_limit": 10}]),
            "{plan:#}"
        );
        assert_eq!(
            plan["memberships"],
            json!([{"team_id": "research", "user_id": "ivy", "role": "user", "source": "idp"}])
        );
        assert!(team_ids(&server).is_empty(), "nothing written");

        let output = run_hookgate(
            &[
                "try",
                "--config",
                &path,
                "--header",
                "x-forwarded-user: ivy",
                "--header",
                "x-forwarded-groups: research",
            ],
            &[("DATABASE_URL", &server.database_url), ("LITELLM_MASTER_KEY", &server.master_key)],
        );
        let (stdout, stderr) = output_text(&output);
        assert!(
            stdout.contains("create team research (a group in create_teams_from_groups)"),
            "{stdout}\n{stderr}"
        );
    });
}

/// Two sign-ins that both read "no team llm-shared" before either writes (their hooks wait at a
/// gate after the read) both create it: the second finds it made and joins it.
#[test]
fn two_sign_ins_that_both_decide_to_create_a_team_both_succeed() {
    use std::time::{Duration, Instant};
    for_each_backend(|backend| {
        let scratch = Scratch::new();
        let calls = scratch.path().join("calls");
        let gate = scratch.path().join("gate");
        let (calls_text, gate_text) = (calls.display().to_string(), gate.display().to_string());
        let config = config(
            &format!(
                "  custom_sso: fixture_misbehaving.gated_custom_sso\n  hook_timeout: 60s\n{CREATION}"
            ),
            "",
        );
        let env = [
            ("HOOKGATE_FIXTURE_CALLS", calls_text.as_str()),
            ("HOOKGATE_FIXTURE_GATE", gate_text.as_str()),
        ];
        let server = TestServer::start_with(
            backend,
            ServerOptions { config: &config, env: &env, ..ServerOptions::default() },
        );
        let replies = std::thread::scope(|scope| {
            let signing_in: Vec<_> = ["amy", "ben"]
                .into_iter()
                .map(|user| {
                    let server = &server;
                    scope.spawn(move || {
                        server.sign_in(user, &format!("{user}@example.test"), &["llm-shared"])
                    })
                })
                .collect();
            // Both hooks are running: both sign-ins read the database without the team.
            let started = Instant::now();
            while std::fs::read_to_string(&calls).unwrap_or_default().lines().count() < 2 {
                assert!(started.elapsed() < Duration::from_secs(60), "the hooks never ran");
                std::thread::sleep(Duration::from_millis(10));
            }
            std::fs::write(&gate, b"open").unwrap();
            signing_in.into_iter().map(|thread| thread.join().unwrap()).collect::<Vec<_>>()
        });
        for reply in &replies {
            assert_eq!(reply.status, 303, "{}\n{}", reply.body, server.logs());
        }
        assert_eq!(team_ids(&server), ["llm-shared"]);
        assert_eq!(server.memberships("amy"), pairs(&[("llm-shared", "idp")]));
        assert_eq!(server.memberships("ben"), pairs(&[("llm-shared", "idp")]));
    });
}
