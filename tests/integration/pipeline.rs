//! Behaviours of the sign-in pipeline that only a failing-if-removed test keeps: the trusted-peer
//! check before any hook, the hook's host-API writes (applied with the sign-in, absent after a
//! later refusal), `restricted_sso_group`, the budget period reset, the 64 KiB header total, and
//! the library cache.

use chrono::{Datelike, TimeZone, Timelike, Utc};
use hookgate::db::entity::{team_member, user};
use hookgate_tests::server::{Backend, ServerOptions, TestServer, for_each_backend};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, IntoActiveModel};
use serde_json::json;

fn config(handler: &str, custom_sso: &str, extra: &str) -> String {
    format!(
        "general_settings:\n  custom_ui_sso_sign_in_handler: {handler}\n  custom_sso: {custom_sso}\n  \
         plugin_dirs: [\"{{plugins}}\"]\n  trusted_proxy_ranges: [\"127.0.0.1/32\"]\n{extra}"
    )
}

fn members(server: &TestServer) -> Vec<(String, String, String)> {
    let mut rows: Vec<_> = server
        .db(async |conn| team_member::Entity::find().all(conn).await.unwrap())
        .into_iter()
        .map(|m| (m.team_id, m.user_id, m.role))
        .collect();
    rows.sort();
    rows
}

#[test]
fn the_header_hook_never_runs_for_an_untrusted_peer() {
    let scratch = hookgate_tests::Scratch::new();
    let calls = scratch.path().join("calls.log");
    let calls_text = calls.display().to_string();
    let trusted =
        config("fixture_misbehaving.recording_sign_in", "custom_sso.custom_sso_handler", "");
    let untrusted = trusted.replace("127.0.0.1/32", "10.9.9.9/32");
    let env = [("HOOKGATE_FIXTURE_CALLS", calls_text.as_str())];
    let server = TestServer::start_with(
        &Backend::Sqlite,
        ServerOptions { config: &untrusted, env: &env, ..ServerOptions::default() },
    );
    for _ in 0..3 {
        let reply = server.get(
            "/sso/key/generate",
            &[("x-forwarded-user", "mallory"), ("x-forwarded-for", "10.9.9.9")],
        );
        assert_eq!(reply.status, 403, "{}", reply.body);
    }
    assert!(!calls.exists(), "the hook ran for an untrusted peer");
    drop(server);

    // The same hook from a trusted peer runs (the recording works).
    let server = TestServer::start_with(
        &Backend::Sqlite,
        ServerOptions { config: &trusted, env: &env, ..ServerOptions::default() },
    );
    assert_eq!(server.get("/sso/key/generate", &[("x-forwarded-user", "amy")]).status, 303);
    let text = std::fs::read_to_string(&calls).unwrap();
    assert_eq!(text.lines().count(), 1, "{text}");
}

#[test]
fn the_hooks_writes_commit_with_the_sign_in_and_vanish_with_a_refusal() {
    for_each_backend(|backend| {
        let plain = config(
            "fixture_misbehaving.recording_sign_in",
            "fixture_misbehaving.staging_custom_sso",
            "",
        );
        let server = TestServer::start_with(
            backend,
            ServerOptions { config: &plain, ..ServerOptions::default() },
        );
        server.create_team("ops");
        let reply = server.get("/sso/key/generate", &[("x-forwarded-user", "ben")]);
        assert_eq!(reply.status, 303, "{}\n{}", reply.body, server.logs());
        let ids: Vec<String> = server.users().into_iter().map(|u| u.user_id).collect();
        assert!(
            ids.contains(&"helper-ben".to_owned()) && ids.contains(&"ben".to_owned()),
            "{ids:?}"
        );
        assert_eq!(
            members(&server),
            [
                ("ops".to_owned(), "ben".to_owned(), "user".to_owned()),
                ("ops".to_owned(), "helper-ben".to_owned(), "admin".to_owned()),
            ]
        );
        drop(server);

        // admin_only refuses the user after the hook ran: none of its writes remain.
        let admin_only = config(
            "fixture_misbehaving.recording_sign_in",
            "fixture_misbehaving.staging_custom_sso",
            "  ui_access_mode: admin_only\n",
        );
        let server = TestServer::start_with(
            backend,
            ServerOptions { config: &admin_only, ..ServerOptions::default() },
        );
        server.create_team("ops");
        let reply = server.get("/sso/key/generate", &[("x-forwarded-user", "cleo")]);
        assert_eq!(reply.status, 403, "{}", reply.body);
        assert!(server.users().is_empty(), "{:?}", server.users());
        assert!(members(&server).is_empty());
    });
}

#[test]
fn restricted_sso_group_admits_only_its_members() {
    let yaml = hookgate_tests::SEED_CONFIG.replace(
        "  trusted_proxy_ranges: [\"127.0.0.1/32\"]\n",
        "  trusted_proxy_ranges: [\"127.0.0.1/32\"]\n  ui_access_mode: {type: restricted_sso_group, restricted_sso_group: ops}\n",
    );
    let server = TestServer::start_with(
        &Backend::Sqlite,
        ServerOptions { config: &yaml, ..ServerOptions::default() },
    );
    let outsider = server.sign_in("dina", "dina@example.test", &["staff"]);
    assert_eq!(outsider.status, 403, "{}", outsider.body);
    let message = outsider.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("restricted SSO group \"ops\""), "{message}");
    assert!(server.users().is_empty());
    assert_eq!(server.sign_in("dina", "dina@example.test", &["staff", "ops"]).status, 303);
}

#[test]
fn a_new_budget_period_follows_the_new_duration() {
    for_each_backend(|backend| {
        let server = TestServer::start(backend);
        // eve had a 30d period that ended yesterday, with spend on it.
        let reply = server.post_json(
            "/user/new",
            &json!({"user_id": "eve", "user_email": "eve@example.test", "user_role": "internal_user",
                    "max_budget": 0.01, "budget_duration": "30d"}),
            &[("authorization", &server.master_auth())],
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        server.db(async |conn| {
            let row = user::Entity::find_by_id("eve".to_owned()).one(conn).await.unwrap().unwrap();
            let mut row = row.into_active_model();
            row.spend = Set(5.0);
            row.budget_reset_at = Set(Some(Utc::now() - chrono::Duration::days(1)));
            row.update(conn).await.unwrap();
        });
        // The example hook gives internal users 0.01 USD a day: the new period is 1d's.
        assert_eq!(server.sign_in("eve", "eve@example.test", &[]).status, 303);
        let eve = server.users().into_iter().find(|u| u.user_id == "eve").unwrap();
        assert_eq!(eve.budget_duration.as_deref(), Some("1d"));
        assert_eq!(eve.spend, 0.0);
        let reset = eve.budget_reset_at.unwrap();
        let today = Utc::now().date_naive();
        let tomorrow =
            Utc.from_utc_datetime(&today.succ_opt().unwrap().and_hms_opt(0, 0, 0).unwrap());
        assert_eq!(reset, tomorrow, "the next reset is the next midnight, not a month away");
        assert_eq!((reset.hour(), reset.day()), (0, tomorrow.day()));
    });
}

#[test]
fn the_header_total_is_bounded() {
    let server = TestServer::start(&Backend::Sqlite);
    // Ten headers of 7 KiB: each under the 8 KiB value limit, 70 KiB in all.
    let value = "v".repeat(7 * 1024);
    let names: Vec<String> = (0..10).map(|n| format!("x-filler-{n}")).collect();
    let mut headers: Vec<(&str, &str)> =
        names.iter().map(|n| (n.as_str(), value.as_str())).collect();
    headers.push(("x-forwarded-user", "fay"));
    let reply = server.get("/sso/key/generate", &headers);
    assert_eq!(reply.status, 431, "{}", reply.body);
    assert!(reply.body.contains("in all are accepted"), "{}", reply.body);
    assert!(server.users().is_empty());
}

#[test]
fn an_identity_whose_id_does_not_fit_is_refused_and_nothing_is_written() {
    let server = TestServer::start(&Backend::Sqlite);
    let long = "u".repeat(300);
    let reply = server.get("/sso/key/generate", &[("x-forwarded-user", long.as_str())]);
    assert_eq!(reply.status, 500, "{}", reply.body);
    let message = reply.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(message.contains("longer than 255 characters or has control characters"), "{message}");
    assert!(!message.contains(&long), "the id is not echoed in full: {message}");
    assert!(server.users().is_empty());
}
