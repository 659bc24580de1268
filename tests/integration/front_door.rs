//! hookgate as the front door of a LiteLLM proxy (`litellm_proxy_url`), against an in-process
//! fake LiteLLM: every sign-in creates or updates the user in LiteLLM, adds its memberships and
//! mints the session key there; logout and revocation delete it there; a LiteLLM that fails
//! leaves no session anywhere.

use hookgate::db::entity::session;
use hookgate_tests::{
    LITELLM_VARIABLES, SEED_CONFIG, Scratch,
    fake_idp::FakeIdp,
    fake_litellm::{FakeLitellm, sha256_hex},
    hookgate_bin, output_text,
    server::{Backend, Reply, ServerOptions, TestServer, for_each_backend},
};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::json;

const OIDC_FLOW_COOKIE: &str = "hookgate_oidc_flow";

/// The seed config with `litellm_proxy_url: url`.
fn config_for(url: &str) -> String {
    let config = SEED_CONFIG.replacen(
        "general_settings:\n",
        &format!("general_settings:\n  litellm_proxy_url: \"{url}\"\n"),
        1,
    );
    assert_ne!(config, SEED_CONFIG);
    config
}

/// A server in front of `fake`, which is told the server's master key.
pub(crate) fn front_door(
    backend: &Backend,
    fake: &FakeLitellm,
    env: &[(&str, &str)],
) -> TestServer {
    let config = config_for(fake.url());
    let server = TestServer::start_with(
        backend,
        ServerOptions { config: &config, env, ..ServerOptions::default() },
    );
    fake.set_master_key(&server.master_key);
    server
}

fn sessions(server: &TestServer) -> u64 {
    server.db(async |conn| session::Entity::find().count(conn).await.unwrap())
}

/// `POST /chat/completions` on the fake with `key`: LiteLLM's view of whether the key works.
fn litellm_accepts(fake: &FakeLitellm, key: &str) -> u16 {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).build().into();
    agent
        .post(format!("{}/chat/completions", fake.url()))
        .header("authorization", &format!("Bearer {key}"))
        .send_json(json!({"model": "openai-model", "messages": []}))
        .expect("the fake answers")
        .status()
        .as_u16()
}

fn paths(fake: &FakeLitellm) -> Vec<String> {
    fake.requests().into_iter().map(|r| format!("{} {}", r.method, r.path)).collect()
}

/// The key in a sign-in's `token` cookie.
fn cookie_key(server: &TestServer, reply: &Reply) -> String {
    let token = reply.token_cookie().unwrap_or_else(|| panic!("a token cookie: {reply:?}"));
    server.claims(&token)["key"].as_str().expect("a key claim").to_owned()
}

#[test]
fn a_header_sign_in_creates_the_user_in_litellm_and_uses_litellms_key() {
    for_each_backend(|backend| {
        let fake = FakeLitellm::start();
        let server = front_door(backend, &fake, &[]);

        let reply = server.sign_in("alice", "Alice@Example.TEST", &["staff"]);
        assert_eq!(reply.status, 303, "{}\n{}", reply.body, server.logs());
        assert_eq!(reply.header("location"), Some("/ui/?login=success"));
        let line = reply.set_cookie_line("token").unwrap();
        assert!(line.contains("; Path=/;") || line.ends_with("; Path=/"), "{line}");
        assert!(!line.contains("HttpOnly"), "LiteLLM's UI reads the cookie: {line}");
        let token = reply.token_cookie().unwrap();
        let claims = server.claims(&token); // HS256 with the master key, or it panics
        let key = claims["key"].as_str().unwrap().to_owned();
        assert_eq!(claims["user_id"], "alice");

        // The key is the one LiteLLM minted, for alice, as a UI session key.
        let keys = fake.keys();
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert_eq!(keys[0].key, key, "the cookie carries LiteLLM's key");
        assert_eq!(keys[0].user_id, "alice");
        assert_eq!(keys[0].request["team_id"], "litellm-dashboard");
        assert_eq!(keys[0].request["models"], json!([]));
        let duration = keys[0].request["duration"].as_str().unwrap();
        assert_eq!(duration, "86400s", "the session's 24 h");
        assert_eq!(keys[0].request["max_budget"], json!(1.0));

        // The user, as the hook decided it.
        let created = fake.requests_to("/user/new");
        assert_eq!(created.len(), 1, "{:?}", paths(&fake));
        let body = &created[0].body;
        assert_eq!(body["user_id"], "alice");
        assert_eq!(body["sso_user_id"], "hookgate:oauth-proxy#alice", "the identity's binding");
        assert_eq!(body["user_email"], "alice@example.test", "lower-cased");
        assert_eq!(body["user_role"], "internal_user");
        assert_eq!(body["models"], json!([]));
        assert_eq!(body["max_budget"], json!(0.01));
        assert_eq!(body["budget_duration"], "1d");
        assert_eq!(body["auto_create_key"], false);
        assert_eq!(
            body["metadata"],
            json!({"auth_provider": "hookgate", "hookgate_binding": "hookgate:oauth-proxy#alice"})
        );
        assert!(fake.requests_to("/user/update").is_empty());
        assert!(fake.requests().iter().all(|r| r.authorized), "every call carries the master key");
        // The lookup: the binding, then the id, then the (verified) email; create; the key.
        let order: Vec<String> = fake.requests().iter().map(|r| r.path_and_query.clone()).collect();
        assert_eq!(
            order,
            [
                "/user/list?sso_user_ids=hookgate%3Aoauth-proxy%23alice",
                "/user/info?user_id=alice",
                "/user/list?user_email=alice%40example.test",
                "/user/new",
                "/key/generate",
            ],
        );

        // One session, accepted by both.
        let info = server.get("/user/info", &[("authorization", &format!("Bearer {key}"))]);
        assert_eq!(info.status, 200, "{}", info.body);
        assert_eq!(info.json()["user_info"]["user_id"], "alice");
        assert_eq!(litellm_accepts(&fake, &key), 200);
        assert_eq!(litellm_accepts(&fake, "sk-not-a-key"), 401);
        let stored = server.db(async |conn| session::Entity::find().all(conn).await.unwrap());
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].token_hash, sha256_hex(&key));
        assert_eq!(stored[0].token_hash, keys[0].token, "hookgate's hash is LiteLLM's token");
    });
}

#[test]
fn behind_a_root_path_the_redirect_is_absolute_and_the_cookie_path_is_still_slash() {
    let fake = FakeLitellm::start();
    let server = front_door(
        &Backend::Sqlite,
        &fake,
        &[("PROXY_BASE_URL", "{base}"), ("SERVER_ROOT_PATH", "/litellm")],
    );
    let reply = server.get(
        "/litellm/sso/key/generate",
        &[("x-forwarded-user", "hank"), ("x-forwarded-email", "hank@example.test")],
    );
    assert_eq!(reply.status, 303, "{}\n{}", reply.body, server.logs());
    assert_eq!(
        reply.header("location"),
        Some(format!("{}/litellm/ui/?login=success", server.base).as_str())
    );
    let line = reply.set_cookie_line("token").unwrap();
    assert!(line.contains("; Path=/;") || line.ends_with("; Path=/"), "{line}");
    assert!(!line.contains("Path=/litellm"), "LiteLLM sets its cookie on /: {line}");
    assert!(!line.contains("HttpOnly"), "{line}");
    let key = cookie_key(&server, &reply);
    assert!(fake.is_live(&key));
}

#[test]
fn a_second_sign_in_updates_the_user_and_adds_only_missing_memberships() {
    for_each_backend(|backend| {
        let fake = FakeLitellm::start();
        let server = front_door(backend, &fake, &[]);
        server.create_team("staff");
        server.create_team("ops"); // not in LiteLLM: skipped
        fake.add_team("staff");

        let first = server.sign_in("bob", "bob@example.test", &["staff", "ops"]);
        assert_eq!(first.status, 303, "{}\n{}", first.body, server.logs());
        let adds = fake.requests_to("/team/member_add");
        let staff_adds = |adds: &[hookgate_tests::fake_litellm::Recorded]| {
            adds.iter().filter(|r| r.body["team_id"] == "staff").count()
        };
        assert_eq!(staff_adds(&adds), 1, "{adds:?}");
        let staff = adds.iter().find(|r| r.body["team_id"] == "staff").unwrap();
        assert_eq!(staff.body["member"], json!([{"role": "user", "user_id": "bob"}]));
        assert_eq!(fake.members("staff"), ["bob"]);
        assert_eq!(fake.user("bob").unwrap()["teams"], json!(["staff"]));
        assert!(fake.members("ops").is_empty());
        let first_key = cookie_key(&server, &first);

        fake.clear_requests();
        let second = server.sign_in("bob", "bob@example.test", &["staff", "ops"]);
        assert_eq!(second.status, 303, "{}\n{}", second.body, server.logs());
        assert!(fake.requests_to("/user/new").is_empty(), "{:?}", paths(&fake));
        let updates = fake.requests_to("/user/update");
        assert_eq!(updates.len(), 1, "{:?}", paths(&fake));
        assert_eq!(
            updates[0].body,
            json!({
                "user_id": "bob",
                "user_email": "bob@example.test",
                "user_role": "internal_user",
                "models": [],
                "max_budget": 0.01,
                "budget_duration": "1d",
            })
        );
        assert_eq!(
            staff_adds(&fake.requests_to("/team/member_add")),
            0,
            "LiteLLM already lists bob in staff: {:?}",
            fake.requests_to("/team/member_add")
        );
        assert_eq!(fake.members("staff"), ["bob"]);
        // A new key per sign-in; both sessions live in both places.
        let second_key = cookie_key(&server, &second);
        assert_ne!(first_key, second_key);
        assert!(fake.is_live(&first_key) && fake.is_live(&second_key));
        assert_eq!(sessions(&server), 2);

        // A membership LiteLLM has but its user row does not list: "already in team" is fine.
        fake.add_team("research");
        server.create_team("research");
        let (status, body) = add_member_directly(&fake, &server.master_key, "research", "bob");
        assert_eq!(status, 200, "{body}");
        let mut row = fake.user("bob").unwrap();
        row["teams"] = json!(["staff"]);
        fake.add_user(row); // LiteLLM's user row without research
        fake.clear_requests();
        let third = server.sign_in("bob", "bob@example.test", &["staff", "research"]);
        assert_eq!(third.status, 303, "{}\n{}", third.body, server.logs());
        let adds = fake.requests_to("/team/member_add");
        let research: Vec<_> = adds.iter().filter(|r| r.body["team_id"] == "research").collect();
        assert_eq!(research.len(), 1, "{adds:?}");
        assert_eq!(staff_adds(&adds), 0, "{adds:?}");
        assert_eq!(fake.members("research"), ["bob"], "not added twice");
        assert_eq!(fake.keys().iter().filter(|k| !k.deleted).count(), 3);
    });
}

fn add_member_directly(fake: &FakeLitellm, master: &str, team: &str, user: &str) -> (u16, String) {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut reply = agent
        .post(format!("{}/team/member_add", fake.url()))
        .header("authorization", &format!("Bearer {master}"))
        .send_json(json!({"team_id": team, "member": [{"role": "user", "user_id": user}]}))
        .expect("the fake answers");
    (reply.status().as_u16(), reply.body_mut().read_to_string().unwrap_or_default())
}

#[test]
fn logout_deletes_the_key_in_litellm_then_the_session() {
    for_each_backend(|backend| {
        let fake = FakeLitellm::start();
        let server = front_door(backend, &fake, &[]);
        let reply = server.sign_in("carol", "carol@example.test", &[]);
        assert_eq!(reply.status, 303, "{}\n{}", reply.body, server.logs());
        let key = cookie_key(&server, &reply);
        let bearer = format!("Bearer {key}");
        assert!(fake.is_live(&key));

        // LiteLLM refuses: nothing changes, and the logout can be retried.
        fake.fail("/key/delete", 500, "the database is down");
        let refused =
            server.post_json("/session/logout", &json!({}), &[("authorization", &bearer)]);
        assert_eq!(refused.status, 502, "{}", refused.body);
        assert!(refused.body.contains("LiteLLM proxy could not"), "{}", refused.body);
        assert!(!refused.body.contains("the database is down"), "LiteLLM's words stay in the log");
        assert!(server.logged("the database is down"), "{}", server.logs());
        assert!(fake.is_live(&key));
        assert_eq!(server.get("/user/info", &[("authorization", &bearer)]).status, 200);

        fake.succeed("/key/delete");
        fake.clear_requests();
        let out = server.post_json("/session/logout", &json!({}), &[("authorization", &bearer)]);
        assert!(out.status < 400, "{} {}", out.status, out.body);
        let deletes = fake.requests_to("/key/delete");
        assert_eq!(deletes.len(), 1, "{:?}", paths(&fake));
        assert_eq!(deletes[0].body, json!({"keys": [sha256_hex(&key)]}));
        assert!(!fake.is_live(&key), "LiteLLM no longer takes the key");
        assert_eq!(litellm_accepts(&fake, &key), 401);
        assert_eq!(server.get("/user/info", &[("authorization", &bearer)]).status, 401);
    });
}

#[test]
fn revoking_a_users_sessions_deletes_all_their_keys_in_one_call() {
    for_each_backend(|backend| {
        let fake = FakeLitellm::start();
        let server = front_door(backend, &fake, &[]);
        let first = cookie_key(&server, &server.sign_in("dave", "dave@example.test", &[]));
        let second = cookie_key(&server, &server.sign_in("dave", "dave@example.test", &[]));
        let other = cookie_key(&server, &server.sign_in("erin", "erin@example.test", &[]));
        fake.clear_requests();

        let revoke = server.post_json(
            "/session/revoke",
            &json!({"user_id": "dave"}),
            &[("authorization", &server.master_auth())],
        );
        assert_eq!(revoke.status, 200, "{}", revoke.body);
        assert_eq!(revoke.json()["revoked_sessions"], 2);
        let deletes = fake.requests_to("/key/delete");
        assert_eq!(deletes.len(), 1, "{:?}", paths(&fake));
        let mut sent: Vec<String> = deletes[0].body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_owned())
            .collect();
        sent.sort();
        let mut expected = vec![sha256_hex(&first), sha256_hex(&second)];
        expected.sort();
        assert_eq!(sent, expected);
        assert!(!fake.is_live(&first) && !fake.is_live(&second));
        assert!(fake.is_live(&other), "erin is untouched");
        for key in [&first, &second] {
            let reply = server.get("/user/info", &[("authorization", &format!("Bearer {key}"))]);
            assert_eq!(reply.status, 401);
        }
        let reply = server.get("/user/info", &[("authorization", &format!("Bearer {other}"))]);
        assert_eq!(reply.status, 200);
    });
}

#[test]
fn an_unreachable_litellm_fails_the_sign_in_and_leaves_no_session() {
    for_each_backend(|backend| {
        let url = FakeLitellm::unreachable_url();
        let env = [("LITELLM_PROXY_URL", url.as_str())];
        let server = TestServer::start_with(
            backend,
            ServerOptions { env: &env, ..ServerOptions::default() },
        );
        let reply = server.sign_in("frank", "frank@example.test", &[]);
        assert_eq!(reply.status, 502, "{}\n{}", reply.body, server.logs());
        assert!(reply.body.contains("LiteLLM proxy could not"), "{}", reply.body);
        // LiteLLM's internal URL and the transport error are for the log only.
        assert!(!reply.body.contains(&url), "{}", reply.body);
        assert!(!reply.body.to_lowercase().contains("connect"), "{}", reply.body);
        let request_id = reply.header("x-request-id").expect("a request id").to_owned();
        assert!(reply.body.contains(&request_id), "the page quotes the request id: {}", reply.body);
        assert!(server.logged(&format!("{url}/user/list")), "{}", server.logs());
        assert!(server.logged("did not answer looking the user up"), "{}", server.logs());
        assert!(reply.token_cookie().is_none());
        assert!(reply.header("set-cookie").is_none_or(|c| !c.starts_with("token=")));
        assert_eq!(sessions(&server), 0);
        assert!(server.users().is_empty(), "nothing is written unless LiteLLM opened the session");
        let events = server.events();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].outcome, "failed");
        let reason = events[0].reason.clone().unwrap_or_default();
        assert!(reason.starts_with("litellm: "), "{reason}");
        assert!(reason.contains(&url), "{reason}");
    });
}

#[test]
fn a_litellm_that_stops_answering_fails_the_next_sign_in() {
    let fake = FakeLitellm::start();
    let server = front_door(&Backend::Sqlite, &fake, &[]);
    let first = server.sign_in("gina", "gina@example.test", &[]);
    assert_eq!(first.status, 303);
    let bearer = format!("Bearer {}", cookie_key(&server, &first));
    fake.stop();
    // Whether the key still lives in LiteLLM cannot be known: refused, not assumed; the master
    // key still works.
    let info = server.get("/user/info", &[("authorization", &bearer)]);
    assert_eq!(info.status, 502, "{}", info.body);
    let master = server.master_auth();
    assert_eq!(server.get("/user/info?user_id=gina", &[("authorization", &master)]).status, 200);
    let reply = server.sign_in("gina", "gina@example.test", &[]);
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert!(reply.body.contains("LiteLLM proxy could not"), "{}", reply.body);
    assert!(server.logged("LiteLLM at"), "{}", server.logs());
    assert!(reply.token_cookie().is_none());
    assert_eq!(sessions(&server), 1, "only the first sign-in's");
}

#[test]
fn a_refused_key_fails_the_sign_in_with_litellms_message_and_a_retry_succeeds() {
    for_each_backend(|backend| {
        let fake = FakeLitellm::start();
        let server = front_door(backend, &fake, &[]);
        fake.fail("/key/generate", 500, "budget table is locked");

        let reply = server.sign_in("hana", "hana@example.test", &[]);
        assert_eq!(reply.status, 502, "{}\n{}", reply.body, server.logs());
        assert!(!reply.body.contains("budget table"), "{}", reply.body);
        assert!(
            server.logged(
                "LiteLLM refused minting the session key: HTTP 500: budget table is locked"
            ),
            "{}",
            server.logs()
        );
        assert!(reply.token_cookie().is_none());
        assert_eq!(sessions(&server), 0);
        assert!(fake.keys().is_empty());
        let events = server.events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].outcome, "failed");
        let reason = events[0].reason.clone().unwrap_or_default();
        assert!(reason.starts_with("litellm: ") && reason.contains("budget table"), "{reason}");

        fake.succeed("/key/generate");
        fake.clear_requests();
        let retry = server.sign_in("hana", "hana@example.test", &[]);
        assert_eq!(retry.status, 303, "{}\n{}", retry.body, server.logs());
        let key = cookie_key(&server, &retry);
        assert!(fake.is_live(&key));
        // The first attempt created the user in LiteLLM: the retry updates it.
        assert!(fake.requests_to("/user/new").is_empty(), "{:?}", paths(&fake));
        assert_eq!(fake.requests_to("/user/update").len(), 1);
        assert_eq!(sessions(&server), 1);
        let events = server.events();
        assert_eq!(events.iter().filter(|e| e.outcome == "allowed").count(), 1);
    });
}

#[test]
fn a_litellm_user_with_the_email_bound_to_another_identity_is_not_taken_over() {
    for_each_backend(|backend| {
        let fake = FakeLitellm::start();
        let server = front_door(backend, &fake, &[]);
        fake.add_user(json!({
            "user_id": "legacy-ivan",
            "user_email": "ivan@example.test",
            "sso_user_id": "someone-else",
            "user_role": "internal_user",
        }));
        let before = fake.users();

        let reply = server.sign_in("ivan", "Ivan@Example.test", &[]);
        assert_eq!(reply.status, 403, "{}\n{}", reply.body, server.logs());
        assert!(reply.body.contains("not linked to your sign-in"), "{}", reply.body);
        // Who holds the email is not told to whoever asks (enumeration).
        assert!(!reply.body.contains("legacy-ivan"), "{}", reply.body);
        assert!(server.logged("legacy-ivan"), "{}", server.logs());
        assert!(reply.token_cookie().is_none());
        assert_eq!(fake.users(), before, "nothing changed in LiteLLM");
        for path in ["/user/new", "/user/update", "/team/member_add", "/key/generate"] {
            assert!(fake.requests_to(path).is_empty(), "{path}: {:?}", paths(&fake));
        }
        assert_eq!(sessions(&server), 0);
        let events = server.events();
        assert_eq!(events.last().map(|e| e.outcome.as_str()), Some("refused"));
    });
}

#[test]
fn a_litellm_user_found_by_binding_verified_email_or_an_earlier_hookgate_is_updated() {
    let fake = FakeLitellm::start();
    let server = front_door(&Backend::Sqlite, &fake, &[]);
    // Same email (other case), bound to nobody: linked by the proxy's verified email, and
    // marked with the binding (LiteLLM's /user/update cannot set sso_user_id).
    fake.add_user(json!({"user_id": "old-judy", "user_email": "Judy@Example.test", "metadata": {"team": "x"}}));
    // Bound to this identity under another id.
    fake.add_user(json!({"user_id": "old-kim", "user_email": "x@y.test", "sso_user_id": "hookgate:oauth-proxy#kim"}));
    // Made by an earlier hookgate for its user of that id (sso_user_id was the user id).
    fake.add_user(
        json!({"user_id": "leo", "sso_user_id": "leo", "metadata": {"auth_provider": "hookgate"}}),
    );
    // A substring match only: not the same email.
    fake.add_user(json!({"user_id": "liam2", "user_email": "liam@example.test.org"}));

    for (user, litellm_id) in [("judy", "old-judy"), ("kim", "old-kim"), ("leo", "leo")] {
        fake.clear_requests();
        let reply = server.sign_in(user, &format!("{user}@example.test"), &[]);
        assert_eq!(reply.status, 303, "{}\n{}", reply.body, server.logs());
        assert!(fake.requests_to("/user/new").is_empty(), "{:?}", paths(&fake));
        let updates = fake.requests_to("/user/update");
        assert_eq!(updates.len(), 1, "{:?}", paths(&fake));
        assert_eq!(updates[0].body["user_id"], litellm_id);
        let key = cookie_key(&server, &reply);
        let record = fake.keys().into_iter().find(|k| k.key == key).unwrap();
        assert_eq!(record.user_id, litellm_id, "the key belongs to LiteLLM's existing user");
    }
    let judy = fake.user("old-judy").unwrap();
    assert_eq!(
        judy["metadata"],
        json!({"team": "x", "hookgate_binding": "hookgate:oauth-proxy#judy"}),
        "marked, its own metadata kept"
    );
    // Marked: the next sign-in finds it without the email.
    fake.clear_requests();
    assert_eq!(server.sign_in("judy", "judy@example.test", &[]).status, 303);
    assert!(fake.requests_to("/user/update")[0].body.get("metadata").is_none(), "marked once");
    fake.clear_requests();
    let reply = server.sign_in("liam", "liam@example.test", &[]);
    assert_eq!(reply.status, 303, "{}\n{}", reply.body, server.logs());
    let created = fake.requests_to("/user/new");
    assert_eq!(created.len(), 1, "a substring is not the same email: {:?}", paths(&fake));
    assert_eq!(created[0].body["user_id"], "liam");
}

#[test]
fn a_password_login_opens_a_litellm_session_for_the_admin() {
    for_each_backend(|backend| {
        let fake = FakeLitellm::start();
        let server = front_door(backend, &fake, &[("UI_PASSWORD", "ui-secret-123")]);
        let cookie = server.password_cookie("ui-secret-123");
        let token = cookie.strip_prefix("token=").unwrap();
        let claims = server.claims(token);
        let key = claims["key"].as_str().unwrap().to_owned();
        assert_eq!(claims["user_id"], "default_user_id");

        let created = fake.requests_to("/user/new");
        assert_eq!(created.len(), 1, "{:?}", paths(&fake));
        assert_eq!(created[0].body["user_id"], "default_user_id");
        assert_eq!(created[0].body["user_role"], "proxy_admin");
        let keys = fake.keys();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].key, key);
        assert_eq!(keys[0].user_id, "default_user_id");
        assert_eq!(keys[0].request["team_id"], "litellm-dashboard");
        assert!(fake.is_live(&key));
        let info = server.get("/user/info", &[("authorization", &format!("Bearer {key}"))]);
        assert_eq!(info.status, 200, "{}", info.body);

        // Again: updated, not created twice.
        fake.clear_requests();
        let again = server.password_cookie("ui-secret-123");
        assert_ne!(again, cookie);
        assert!(fake.requests_to("/user/new").is_empty(), "{:?}", paths(&fake));
        let updates = fake.requests_to("/user/update");
        assert_eq!(updates.len(), 1);
        assert_eq!(updates[0].body["user_role"], "proxy_admin");

        // LiteLLM down: the password login fails and writes no session.
        fake.fail("/key/generate", 503, "maintenance");
        let reply = server.post_form(
            "/login",
            "username=admin&password=ui-secret-123",
            &[("origin", &server.origin())],
        );
        assert!(reply.token_cookie().is_none(), "{reply:?}");
        assert!(reply.body.contains("LiteLLM proxy could not"), "{}", reply.body);
        assert!(server.logged("maintenance"), "{}", server.logs());
        assert_eq!(sessions(&server), 2);
    });
}

#[test]
fn the_front_door_needs_a_master_key_and_an_http_url() {
    let scratch = Scratch::new();
    let database = format!("sqlite://{}", scratch.path().join("h.db").display());
    let config = scratch
        .write("config.yaml", "general_settings:\n  litellm_proxy_url: http://127.0.0.1:4000\n");
    let output = refused_start(
        &["--config", &config.display().to_string(), "--port", "0"],
        &[("DATABASE_URL", &database)],
    );
    let (_, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("general_settings.litellm_proxy_url is set")
            && stderr.contains("master_key"),
        "{stderr}"
    );

    let config =
        scratch.write("config2.yaml", "general_settings:\n  litellm_proxy_url: 127.0.0.1:4000\n");
    let output = refused_start(
        &["--config", &config.display().to_string(), "--port", "0"],
        &[("DATABASE_URL", &database), ("LITELLM_MASTER_KEY", "sk-a-long-enough-random-key")],
    );
    let (_, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("general_settings.litellm_proxy_url=\"127.0.0.1:4000\"")
            && stderr.contains("must start with http:// or https://"),
        "{stderr}"
    );

    // The environment variable wins, and is named.
    let output = refused_start(
        &["--config", &config.display().to_string(), "--port", "0"],
        &[
            ("DATABASE_URL", &database),
            ("LITELLM_MASTER_KEY", "sk-a-long-enough-random-key"),
            ("LITELLM_PROXY_URL", "ftp://litellm"),
        ],
    );
    let (_, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("environment variable LITELLM_PROXY_URL"), "{stderr}");
}

#[test]
fn an_oidc_sign_in_opens_the_litellm_session_with_the_providers_values() {
    for_each_backend(|backend| {
        let fake = FakeLitellm::start();
        let idp = FakeIdp::start();
        let idp_env = idp.env();
        let env: Vec<(&str, &str)> = idp_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let config = config_for(fake.url()).replace(
            "  custom_ui_sso_sign_in_handler: custom_sso_handler.custom_ui_sso_sign_in_handler\n",
            "",
        );
        let server = TestServer::start_with(
            backend,
            ServerOptions { config: &config, env: &env, ..ServerOptions::default() },
        );
        fake.set_master_key(&server.master_key);

        let start = server.get("/sso/key/generate", &[("accept", "text/html")]);
        assert_eq!(start.status, 303, "{}\n{}", start.body, server.logs());
        let flow = start.cookie(OIDC_FLOW_COOKIE).expect("a flow cookie");
        let back = server.get_url(start.header("location").unwrap(), &[]);
        assert_eq!(back.status, 303, "{}", back.body);
        let done = server.get_url(
            back.header("location").unwrap(),
            &[("cookie", &format!("{OIDC_FLOW_COOKIE}={flow}")), ("accept", "text/html")],
        );
        assert_eq!(done.status, 303, "{}\n{}", done.body, server.logs());
        let line = done.set_cookie_line("token").unwrap();
        assert!(!line.contains("HttpOnly"), "{line}");
        let key = cookie_key(&server, &done);
        assert!(fake.is_live(&key));

        let created = fake.requests_to("/user/new");
        assert_eq!(created.len(), 1, "{:?}", paths(&fake));
        let body = &created[0].body;
        let user_id = body["user_id"].as_str().unwrap();
        let row = server.users().into_iter().find(|u| u.user_id == user_id).unwrap();
        assert_eq!(row.sso_issuer.as_deref(), Some(idp.issuer()));
        let binding = format!("hookgate:{}#{}", idp.issuer(), row.sso_user_id.unwrap());
        assert_eq!(body["sso_user_id"], binding.as_str(), "issuer and subject");
        assert_eq!(body["user_email"], "alice@example.test");
        assert_eq!(body["user_role"], "proxy_admin", "the provider's admins group");
        assert_eq!(body["max_budget"], json!(null));
        assert_eq!(fake.keys()[0].user_id, user_id);
        assert_eq!(server.claims(&done.token_cookie().unwrap())["user_id"], user_id);
    });
}

#[test]
fn a_key_litellm_minted_for_a_sign_in_hookgate_could_not_record_is_deleted_again() {
    for_each_backend(|backend| {
        let fake = FakeLitellm::start();
        let server = front_door(backend, &fake, &[]);
        // hookgate's own write fails once LiteLLM has minted the key.
        server.db(async |conn| {
            use sea_orm::ConnectionTrait;
            conn.execute_unprepared("DROP TABLE sessions").await.unwrap();
        });
        let reply = server.sign_in("nina", "nina@example.test", &[]);
        assert!(reply.status >= 500, "{} {}\n{}", reply.status, reply.body, server.logs());
        assert!(reply.token_cookie().is_none());
        let keys = fake.keys();
        assert_eq!(keys.len(), 1, "{:?}", paths(&fake));
        let deletes = fake.requests_to("/key/delete");
        assert_eq!(deletes.len(), 1, "{:?}", paths(&fake));
        assert!(keys[0].deleted, "the orphan key no longer works in LiteLLM");
        assert_eq!(litellm_accepts(&fake, &keys[0].key), 401);
    });
}

#[test]
fn a_user_litellm_knows_under_another_id_gets_a_cookie_naming_that_id() {
    let fake = FakeLitellm::start();
    let server = front_door(&Backend::Sqlite, &fake, &[]);
    fake.add_user(json!({"user_id": "old-olga", "user_email": "olga@example.test"}));
    let reply = server.sign_in("olga", "olga@example.test", &[]);
    assert_eq!(reply.status, 303, "{}\n{}", reply.body, server.logs());
    let claims = server.claims(&reply.token_cookie().unwrap());
    let owner = fake.keys()[0].user_id.clone();
    assert_eq!(owner, "old-olga");
    assert_eq!(
        claims["user_id"], owner,
        "LiteLLM's UI reads user_id from the cookie and the key belongs to {owner}"
    );
}

/// hookgate follows no redirect LiteLLM answers (SECURITY.md: no SSRF through its client): a 307
/// to another server is LiteLLM failing, the sign-in answers 502 with no cookie, and the other
/// server is never called.
#[test]
fn a_redirect_from_litellm_is_never_followed() {
    let fake = FakeLitellm::start();
    let elsewhere = FakeLitellm::start();
    let server = front_door(&Backend::Sqlite, &fake, &[]);
    fake.redirect_to(elsewhere.url());
    let reply = server.sign_in("tom", "tom@example.test", &[]);
    assert_eq!(reply.status, 502, "{}\n{}", reply.body, server.logs());
    assert!(reply.token_cookie().is_none());
    assert!(!fake.requests().is_empty(), "LiteLLM was asked");
    assert!(elsewhere.requests().is_empty(), "followed: {:?}", elsewhere.requests());
}

/// `max_ui_session_budget` is the budget of the UI key LiteLLM mints (LiteLLM's default 1.0
/// otherwise, checked above), and `LITELLM_UI_SESSION_DURATION` its duration.
#[test]
fn the_ui_keys_budget_and_duration_are_the_configured_ones() {
    let fake = FakeLitellm::start();
    let config = config_for(fake.url()).replacen(
        "litellm_settings:\n",
        "litellm_settings:\n  max_ui_session_budget: 2.5\n",
        1,
    );
    assert!(config.contains("max_ui_session_budget: 2.5"), "{config}");
    let server = TestServer::start_with(
        &Backend::Sqlite,
        ServerOptions {
            config: &config,
            env: &[("LITELLM_UI_SESSION_DURATION", "2h")],
            ..ServerOptions::default()
        },
    );
    fake.set_master_key(&server.master_key);
    let reply = server.sign_in("rhea", "rhea@example.test", &[]);
    assert_eq!(reply.status, 303, "{}\n{}", reply.body, server.logs());
    let keys = fake.keys();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].request["max_budget"], json!(2.5));
    assert_eq!(keys[0].request["duration"], "7200s");
}

/// LiteLLM's "yes, this key is live" is trusted for a while (10 s): a session's requests in a
/// row ask `/key/info` once, not once each.
#[test]
fn litellms_word_that_a_key_is_live_is_trusted_for_a_while() {
    let fake = FakeLitellm::start();
    let server = front_door(&Backend::Sqlite, &fake, &[]);
    let key = cookie_key(&server, &server.sign_in("quin", "quin@example.test", &[]));
    let bearer = format!("Bearer {key}");
    for _ in 0..5 {
        let info = server.get("/user/info", &[("authorization", &bearer)]);
        assert_eq!(info.status, 200, "{}", info.body);
    }
    let asked = fake.requests_to("/key/info");
    assert_eq!(asked.len(), 1, "asked once, then trusted: {asked:?}");
    assert_eq!(asked[0].path_and_query, format!("/key/info?key={}", sha256_hex(&key)));
}

/// ... and only for a while: a key deleted in LiteLLM's own UI after hookgate trusted it is
/// refused once that word is 10 s old, and its session revoked here too.
#[test]
fn a_key_deleted_in_litellm_after_it_was_trusted_is_refused_within_seconds() {
    let fake = FakeLitellm::start();
    let server = front_door(&Backend::Sqlite, &fake, &[]);
    let key = cookie_key(&server, &server.sign_in("sol", "sol@example.test", &[]));
    let bearer = format!("Bearer {key}");
    let info = server.get("/user/info", &[("authorization", &bearer)]);
    assert_eq!(info.status, 200, "{}", info.body);
    let (status, body) = delete_directly(&fake, &server.master_key, &key);
    assert_eq!(status, 200, "{body}");
    let deleted = std::time::Instant::now();
    let refused = loop {
        let info = server.get("/user/info", &[("authorization", &bearer)]);
        if info.status != 200 {
            break info;
        }
        assert!(
            deleted.elapsed() < std::time::Duration::from_secs(15),
            "still trusted 15 s after LiteLLM deleted the key"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    };
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(refused.body.contains("signed out in the LiteLLM proxy"), "{}", refused.body);
    assert_eq!(fake.requests_to("/key/info").len(), 2, "asked again once the word was old");
}

#[test]
fn ui_logout_and_revocation_go_through_litellm_first() {
    let fake = FakeLitellm::start();
    let server = front_door(&Backend::Sqlite, &fake, &[]);

    // The Admin UI's logout form, with the cookie: the key goes in LiteLLM too.
    let reply = server.sign_in("pia", "pia@example.test", &[]);
    let key = cookie_key(&server, &reply);
    let cookie = format!("token={}", reply.token_cookie().unwrap());
    let out =
        server.post_form("/ui/logout", "", &[("cookie", &cookie), ("origin", &server.origin())]);
    assert_eq!(out.status, 303, "{}", out.body);
    let cleared = out.set_cookie_line("token").unwrap();
    assert!(cleared.contains("Path=/"), "{cleared}");
    assert_eq!(fake.requests_to("/key/delete")[0].body, json!({"keys": [sha256_hex(&key)]}));
    assert!(!fake.is_live(&key));
    assert_eq!(
        server.get("/user/info", &[("authorization", &format!("Bearer {key}"))]).status,
        401
    );

    // A key LiteLLM no longer has (a logout in LiteLLM's own UI deletes it there): the session
    // is over here too.
    let key = cookie_key(&server, &server.sign_in("pia", "pia@example.test", &[]));
    let bearer = format!("Bearer {key}");
    let (status, body) = delete_directly(&fake, &server.master_key, &key);
    assert_eq!(status, 200, "{body}");
    let info = server.get("/user/info", &[("authorization", &bearer)]);
    assert_eq!(info.status, 401, "{}", info.body);
    assert!(info.body.contains("signed out in the LiteLLM proxy"), "{}", info.body);
    let revoked = server.db(async |conn| {
        session::Entity::find_by_id(sha256_hex(&key)).one(conn).await.unwrap().unwrap().revoked_at
    });
    assert!(revoked.is_some(), "the session row is revoked, not only refused");
    let asked = fake.requests_to("/key/info");
    assert!(!asked.is_empty());
    assert!(
        asked.iter().any(|r| r.path_and_query == format!("/key/info?key={}", sha256_hex(&key)))
    );
    for request in asked {
        assert!(!request.path_and_query.contains("sk-"), "the key itself never goes in a URL");
    }
    // A logout through hookgate of a key LiteLLM no longer has: already over, and said so.
    let key = cookie_key(&server, &server.sign_in("pia", "pia@example.test", &[]));
    let (status, body) = delete_directly(&fake, &server.master_key, &key);
    assert_eq!(status, 200, "{body}");
    let bearer = format!("Bearer {key}");
    let out = server.post_json("/session/logout", &json!({}), &[("authorization", &bearer)]);
    assert_eq!(out.status, 401, "{}", out.body);
    assert!(out.body.contains("signed out in the LiteLLM proxy"), "{}", out.body);

    // LiteLLM refuses the revocation: nothing is revoked, in either place.
    let key = cookie_key(&server, &server.sign_in("pia", "pia@example.test", &[]));
    fake.fail("/key/delete", 500, "try later");
    let revoke = server.post_json(
        "/session/revoke",
        &json!({"user_id": "pia"}),
        &[("authorization", &server.master_auth())],
    );
    assert_eq!(revoke.status, 502, "{}", revoke.body);
    assert!(server.logged("try later"), "{}", server.logs());
    assert!(fake.is_live(&key));
    assert_eq!(
        server.get("/user/info", &[("authorization", &format!("Bearer {key}"))]).status,
        200
    );
}

fn delete_directly(fake: &FakeLitellm, master: &str, key: &str) -> (u16, String) {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut reply = agent
        .post(format!("{}/key/delete", fake.url()))
        .header("authorization", &format!("Bearer {master}"))
        .send_json(json!({"keys": [key]}))
        .expect("the fake answers");
    (reply.status().as_u16(), reply.body_mut().read_to_string().unwrap_or_default())
}

/// Runs the server with `args` and `env` (no inherited LiteLLM variables); a server that starts
/// instead of refusing is killed after 20 s, so the test fails rather than hangs.
fn refused_start(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    use std::process::{Command, Stdio};
    let mut command = Command::new(hookgate_bin());
    command.args(args).env("HOOKGATE_LOG", "warn").stdout(Stdio::piped()).stderr(Stdio::piped());
    for name in LITELLM_VARIABLES {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("run hookgate");
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output");
            panic!("hookgate started instead of refusing: {}", output_text(&output).1);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}
