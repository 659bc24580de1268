//! Header sign-in through the built server, on SQLite and PostgreSQL: the whole pipeline, the
//! cookie and its JWT, the session key, the rows written, and every way it can fail.

use std::time::{Duration, Instant};

use hookgate::db::entity::{session, team_member};
use hookgate_tests::server::{Backend, Reply, ServerOptions, TestServer, for_each_backend};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;
use sha2::{Digest, Sha256};

#[test]
fn a_new_user_signs_in_with_the_values_the_plugin_chose() {
    for_each_backend(|backend| {
        let server = TestServer::start(backend);
        server.create_team("staff");

        let reply = server.sign_in("alice", "Alice@Example.TEST", &["admins", "staff"]);
        assert_eq!(reply.status, 303, "{}\n{}", reply.body, server.logs());
        // Relative without PROXY_BASE_URL: the Host header never picks the destination.
        assert_eq!(reply.header("location"), Some("/ui/?login=success"));
        let cookie = reply.header("set-cookie").unwrap();
        assert!(
            cookie.contains("; Path=/")
                && cookie.contains("SameSite=Lax")
                && cookie.contains("HttpOnly"),
            "{cookie}"
        );
        assert!(!cookie.contains("Secure"), "plain http: {cookie}");

        let token = reply.token_cookie().unwrap();
        let claims = server.claims(&token);
        assert_eq!(claims["user_id"], "alice");
        assert_eq!(claims["user_email"], "alice@example.test", "emails are lower-cased");
        assert_eq!(claims["user_role"], "proxy_admin", "custom_sso maps the admins group");
        assert_eq!(claims["login_method"], "sso");
        assert_eq!(claims["server_root_path"], "");
        let lifetime = claims["exp"].as_i64().unwrap() - chrono::Utc::now().timestamp();
        assert!((86_300..=86_400).contains(&lifetime), "24 h session: {lifetime}");
        let key = claims["key"].as_str().unwrap().to_owned();
        assert!(key.starts_with("sk-"), "{key}");

        // The session key from the cookie works as a bearer key.
        let info = server.get("/user/info", &[("authorization", &format!("Bearer {key}"))]);
        assert_eq!(info.status, 200, "{}", info.body);
        let info = info.json();
        assert_eq!(info["user_info"]["user_role"], "proxy_admin");
        assert_eq!(info["user_info"]["teams"], json!(["staff"]));
        assert_eq!(info["teams"][0]["team_id"], "staff");

        // The rows.
        let rows = server.users();
        assert_eq!(rows.len(), 1);
        let alice = &rows[0];
        assert_eq!(
            (alice.user_id.as_str(), alice.sso_user_id.as_deref()),
            ("alice", Some("alice"))
        );
        assert_eq!(alice.user_email.as_deref(), Some("alice@example.test"));
        assert_eq!(alice.user_role.as_deref(), Some("proxy_admin"));
        assert_eq!(alice.max_budget, None);
        assert_eq!(alice.metadata, json!({"auth_provider": "oauth-proxy"}));
        // `sk-`, the time it was made (12 hex digits), 48 random hex digits; stored as that
        // time, then the key's SHA-256.
        assert_eq!(key.len(), 63, "{key}");
        let hash = format!("{}{}", &key[3..15], hex(&Sha256::digest(key.as_bytes())));
        let sessions = server.db(async |conn| session::Entity::find().all(conn).await.unwrap());
        assert_eq!(sessions.len(), 1);
        assert_eq!(sessions[0].token_hash, hash, "only the hash is stored");
        assert!(!format!("{sessions:?}").contains(&key), "the key itself is not stored");
        let members = server.db(async |conn| team_member::Entity::find().all(conn).await.unwrap());
        assert_eq!(
            members.iter().map(|m| (m.team_id.as_str(), m.user_id.as_str())).collect::<Vec<_>>(),
            [("staff", "alice")]
        );
        let events = server.events();
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].outcome.as_str(), events[0].method.as_str(), events[0].user_id.as_deref()),
            ("allowed", "header", Some("alice"))
        );
        assert_eq!(events[0].peer_addr, "127.0.0.1");
        assert_eq!(Some(events[0].request_id.as_str()), reply.header("x-request-id"));
    });
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[test]
fn an_ordinary_user_gets_the_plugins_budget_at_every_sign_in() {
    for_each_backend(|backend| {
        let server = TestServer::start(backend);
        assert_eq!(server.sign_in("bob", "bob@example.test", &["staff"]).status, 303);
        let bob = &server.users()[0];
        assert_eq!(bob.user_role.as_deref(), Some("internal_user"));
        assert_eq!((bob.max_budget, bob.budget_duration.as_deref()), (Some(0.01), Some("1d")));
        let midnight = (chrono::Utc::now() + chrono::Duration::days(1))
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .unwrap()
            .and_utc();
        assert_eq!(bob.budget_reset_at, Some(midnight), "1d resets at the next midnight");

        // An admin raises bob's budget; the hook's value applies again at the next sign-in.
        let reply = server.post_json(
            "/user/update",
            &json!({"user_id": "bob", "max_budget": 50.0, "budget_duration": "30d"}),
            &[("authorization", &server.master_auth())],
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(server.users()[0].max_budget, Some(50.0));
        assert_eq!(server.sign_in("bob", "bob@example.test", &["staff"]).status, 303);
        let bob = &server.users()[0];
        assert_eq!((bob.max_budget, bob.budget_duration.as_deref()), (Some(0.01), Some("1d")));
        assert_eq!(bob.budget_reset_at, Some(midnight));
        assert_eq!(server.db(async |conn| session::Entity::find().count(conn).await.unwrap()), 2);
    });
}

#[test]
fn a_peer_outside_the_trusted_ranges_is_refused_before_any_hook_runs() {
    for_each_backend(|backend| {
        let config = hookgate_tests::SEED_CONFIG.replace("127.0.0.1/32", "10.9.9.9/32");
        let server = TestServer::start_with(
            backend,
            ServerOptions { config: &config, ..ServerOptions::default() },
        );
        let reply = server.get(
            "/sso/key/generate",
            &[
                ("x-forwarded-user", "mallory"),
                ("x-forwarded-email", "mallory@example.test"),
                ("x-forwarded-for", "10.9.9.9"),
                ("x-real-ip", "10.9.9.9"),
            ],
        );
        assert_eq!(reply.status, 403, "{}", reply.body);
        let message = reply.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(
            message.contains("127.0.0.1 is not in general_settings.trusted_proxy_ranges"),
            "{message}"
        );
        assert!(reply.token_cookie().is_none());
        assert!(server.users().is_empty(), "no user row");
        assert!(!server.logs().contains("custom_sso: user"), "the hooks never ran");
        let events = server.events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].outcome, "refused");
        assert!(events[0].reason.as_deref().unwrap().contains("trusted_proxy_ranges"));
        assert_eq!(events[0].peer_addr, "127.0.0.1", "a forged X-Forwarded-For names no one");
    });
}

#[test]
fn a_header_sign_in_records_the_client_the_trusted_proxy_forwarded() {
    let server = TestServer::start(&Backend::Sqlite);
    let reply = server.get(
        "/sso/key/generate",
        &[
            ("x-forwarded-user", "nora"),
            ("x-forwarded-email", "nora@example.test"),
            // A client's own claim, then what the proxy (127.0.0.1, trusted) appended.
            ("x-forwarded-for", "198.51.100.7, 203.0.113.10"),
        ],
    );
    assert_eq!(reply.status, 303, "{}", reply.body);
    let events = server.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].peer_addr, "203.0.113.10", "the nearest untrusted hop, not the proxy");
}

#[test]
fn a_hook_that_refuses_gives_403_with_its_message_in_json_or_html() {
    for_each_backend(|backend| {
        let server = TestServer::start(backend);
        // A look-alike of an identity header is refused by name, not read.
        let reply = server.get("/sso/key/generate", &[("x_forwarded_email", "evil@example.test")]);
        assert_eq!(reply.status, 403, "{}", reply.body);
        assert!(reply.body.contains("look-alike"), "{}", reply.body);
        let reply = server.get("/sso/key/generate", &[("x-forwarded-preferred-username", "evil")]);
        assert_eq!(reply.status, 403, "{}", reply.body);
        let body = reply.json();
        assert!(
            body["error"]["message"].as_str().unwrap().contains("the OAuth proxy sent no identity"),
            "{body}"
        );
        assert_eq!(body["request_id"].as_str(), reply.header("x-request-id"));

        let reply =
            server.get("/sso/key/generate", &[("accept", "text/html,application/xhtml+xml")]);
        assert_eq!(reply.status, 403);
        assert!(reply.header("content-type").unwrap().starts_with("text/html"));
        assert!(reply.body.contains("the OAuth proxy sent no identity"), "{}", reply.body);
        assert!(reply.body.contains(reply.header("x-request-id").unwrap()));
        assert!(reply.body.contains("<h1>Sign-in failed</h1>"), "{}", reply.body);
        assert!(server.users().is_empty());
        assert_eq!(server.events().iter().filter(|e| e.outcome == "refused").count(), 3);
    });
}

const MISBEHAVING: &str = r#"general_settings:
  custom_ui_sso_sign_in_handler: fixture_misbehaving.HANDLER
  CUSTOM_SSO
  plugin_dirs: ["{plugins}"]
  trusted_proxy_ranges: ["127.0.0.1/32"]
  hook_timeout: 500ms
"#;

fn misbehaving(handler: &str, custom_sso: Option<&str>) -> String {
    MISBEHAVING.replace("HANDLER", handler).replace(
        "CUSTOM_SSO",
        &custom_sso.map(|hook| format!("custom_sso: {hook}")).unwrap_or_default(),
    )
}

#[test]
fn a_panicking_hook_gives_500_and_the_server_keeps_serving() {
    for_each_backend(|backend| {
        let config = misbehaving("panicking_sign_in", None);
        let server = TestServer::start_with(
            backend,
            ServerOptions { config: &config, ..ServerOptions::default() },
        );
        for _ in 0..3 {
            let reply = server.get("/sso/key/generate", &[("x-forwarded-user", "alice")]);
            assert_eq!(reply.status, 500, "{}", reply.body);
            let body = reply.json();
            assert_eq!(body["error"]["message"], "sign-in hook failed");
            assert_eq!(body["request_id"].as_str(), reply.header("x-request-id"));
        }
        assert_eq!(server.get("/health/liveliness", &[]).status, 200);
        let logs = server.logs();
        assert!(logs.contains("index out of bounds"), "the panic is logged:\n{logs}");
        let events = server.events();
        assert_eq!(events.len(), 3);
        assert!(events.iter().all(|e| e.outcome == "failed" && e.reason.as_deref().unwrap().contains("panicked")));
    });
}

#[test]
fn a_slow_hook_times_out_with_504() {
    for_each_backend(|backend| {
        let config = misbehaving("slow_sign_in", None);
        let server = TestServer::start_with(
            backend,
            ServerOptions { config: &config, ..ServerOptions::default() },
        );
        let started = Instant::now();
        let reply = server
            .get("/sso/key/generate", &[("x-forwarded-user", "alice"), ("x-sleep-ms", "3000")]);
        assert_eq!(reply.status, 504, "{}", reply.body);
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "answered at the timeout, not when the hook returned"
        );
        assert!(
            reply.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("did not answer within 500ms")
        );
        // A quick one still works.
        let reply =
            server.get("/sso/key/generate", &[("x-forwarded-user", "bob"), ("x-sleep-ms", "1")]);
        assert_eq!(reply.status, 303, "{}", reply.body);
        assert_eq!(server.users().iter().map(|u| u.user_id.as_str()).collect::<Vec<_>>(), ["bob"]);
    });
}

/// With both hooks, the header hook and `custom_sso` share one blocking task; each is still held
/// to `hook_timeout` (500 ms here): one that returns late is answered 504, whatever it did is
/// dropped, and nothing after it runs.
#[test]
fn both_hooks_in_one_task_each_keep_their_timeout() {
    each_hook_keeps_its_timeout("slow_sign_in", "fixture_misbehaving.slow_custom_sso");
}

/// The same with both hooks declared non-blocking, so that they run on the worker serving the
/// request: nothing interrupts them there, and a hook that returns late is answered 504 all the
/// same, with nothing it staged applied.
#[test]
fn hooks_declared_non_blocking_each_keep_their_timeout() {
    each_hook_keeps_its_timeout(
        "slow_sign_in_non_blocking",
        "fixture_misbehaving.slow_custom_sso_non_blocking",
    );
}

fn each_hook_keeps_its_timeout(handler: &str, custom_sso: &str) {
    for_each_backend(|backend| {
        let config = misbehaving(handler, Some(custom_sso));
        let server = TestServer::start_with(
            backend,
            ServerOptions { config: &config, ..ServerOptions::default() },
        );
        let timed_out = |reply: &Reply| {
            assert_eq!(reply.status, 504, "{}", reply.body);
            let message = reply.json()["error"]["message"].as_str().unwrap().to_owned();
            assert!(message.contains("did not answer within 500ms"), "{message}");
        };

        // custom_sso returns after 900 ms: its staged user is not created, nor the user.
        timed_out(
            &server
                .get("/sso/key/generate", &[("x-forwarded-user", "late-900"), ("x-sleep-ms", "1")]),
        );
        // The header hook returns after 800 ms: custom_sso never runs (no helper user).
        timed_out(&server.get(
            "/sso/key/generate",
            &[("x-forwarded-user", "slowheader"), ("x-sleep-ms", "800")],
        ));
        assert!(server.users().is_empty(), "{:?}", server.users());

        // In time, both run and both write.
        let reply = server
            .get("/sso/key/generate", &[("x-forwarded-user", "quick-1"), ("x-sleep-ms", "1")]);
        assert_eq!(reply.status, 303, "{}", reply.body);
        let mut users: Vec<String> = server.users().into_iter().map(|u| u.user_id).collect();
        users.sort();
        assert_eq!(users, ["helper-quick-1", "quick-1"]);
        let events = server.events();
        let outcomes: Vec<(&str, Option<&str>)> =
            events.iter().map(|e| (e.outcome.as_str(), e.user_id.as_deref())).collect();
        assert_eq!(
            outcomes,
            [("failed", Some("late-900")), ("failed", None), ("allowed", Some("quick-1"))],
            "each attempt recorded once, the late custom_sso's for its user"
        );
    });
}

#[test]
fn invalid_custom_sso_values_are_refused_and_nothing_is_written() {
    for_each_backend(|backend| {
        let config =
            misbehaving("slow_sign_in", Some("fixture_misbehaving.invalid_values_custom_sso"));
        let server = TestServer::start_with(
            backend,
            ServerOptions { config: &config, ..ServerOptions::default() },
        );
        for (user, expected) in [
            ("empty-id", "user_id is empty"),
            ("negative-budget", "max_budget -1 must be a number of USD, 0 or more"),
            ("nan-budget", "max_budget NaN must be"),
            ("bad-duration", "budget_duration: invalid budget duration \"1y\""),
        ] {
            let reply =
                server.get("/sso/key/generate", &[("x-forwarded-user", user), ("x-sleep-ms", "0")]);
            assert_eq!(reply.status, 500, "{user}: {}", reply.body);
            let message = reply.json()["error"]["message"].as_str().unwrap().to_owned();
            assert!(
                message.contains("the custom_sso hook returned invalid values")
                    && message.contains(expected),
                "{user}: {message}"
            );
        }
        assert!(server.users().is_empty(), "nothing written");
        assert_eq!(server.db(async |conn| session::Entity::find().count(conn).await.unwrap()), 0);
        assert_eq!(server.events().len(), 4, "every attempt is recorded");

        let reply =
            server.get("/sso/key/generate", &[("x-forwarded-user", "valid"), ("x-sleep-ms", "0")]);
        assert_eq!(reply.status, 303, "{}", reply.body);
    });
}

#[test]
fn a_panicking_custom_sso_hook_gives_500() {
    for_each_backend(|backend| {
        let config = misbehaving("slow_sign_in", Some("fixture_misbehaving.panicking_custom_sso"));
        let server = TestServer::start_with(
            backend,
            ServerOptions { config: &config, ..ServerOptions::default() },
        );
        let reply =
            server.get("/sso/key/generate", &[("x-forwarded-user", "alice"), ("x-sleep-ms", "0")]);
        assert_eq!(reply.status, 500, "{}", reply.body);
        assert_eq!(reply.json()["error"]["message"], "sign-in hook failed");
        assert!(server.logged("custom_sso exploded"), "{}", server.logs());
        assert!(server.users().is_empty());
    });
}

#[test]
fn logout_revokes_the_session_key() {
    for_each_backend(|backend| {
        let server = TestServer::start(backend);
        let token = server.sign_in("carol", "carol@example.test", &[]).token_cookie().unwrap();
        let key = server.claims(&token)["key"].as_str().unwrap().to_owned();
        let bearer = format!("Bearer {key}");
        assert_eq!(server.get("/user/info", &[("authorization", &bearer)]).status, 200);

        let reply = server.post_json("/session/logout", &json!({}), &[("authorization", &bearer)]);
        assert_eq!(reply.status, 200, "{}", reply.body);
        let cookie = reply.header("set-cookie").unwrap();
        assert!(cookie.starts_with("token=;") && cookie.contains("Max-Age=0"), "{cookie}");
        let after = server.get("/user/info", &[("authorization", &bearer)]);
        assert_eq!(after.status, 401);
        assert_eq!(after.header("www-authenticate"), Some("Bearer"));
        assert!(after.json()["error"]["message"].as_str().unwrap().contains("revoked"));

        // Logging out with the cookie works too, and the cookie's JWT is dead afterwards.
        let token = server.sign_in("carol", "carol@example.test", &[]).token_cookie().unwrap();
        let cookie = format!("token={token}");
        assert_eq!(server.get("/user/info", &[("cookie", &cookie)]).status, 200);
        assert_eq!(
            server.post_json("/session/logout", &json!({}), &[("cookie", &cookie)]).status,
            200
        );
        assert_eq!(server.get("/user/info", &[("cookie", &cookie)]).status, 401);
        let revoked = server.db(async |conn| {
            session::Entity::find()
                .filter(session::Column::RevokedAt.is_not_null())
                .count(conn)
                .await
                .unwrap()
        });
        assert_eq!(revoked, 2);
    });
}

#[test]
fn fifty_concurrent_first_sign_ins_make_one_user() {
    for_each_backend(|backend| {
        let server = TestServer::start(backend);
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..50)
                .map(|_| {
                    scope.spawn(|| server.sign_in("dana", "dana@example.test", &["staff"]).status)
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().unwrap()).collect()
        });
        assert!(statuses.iter().all(|status| *status == 303), "{statuses:?}\n{}", server.logs());
        assert_eq!(server.users().len(), 1);
        assert_eq!(server.db(async |conn| session::Entity::find().count(conn).await.unwrap()), 50);
    });
}

#[test]
fn an_email_match_never_takes_over_an_account_bound_to_another_identity() {
    for_each_backend(|backend| {
        // No custom_sso: LiteLLM's default values.
        let config = hookgate_tests::SEED_CONFIG
            .replace("  custom_sso: custom_sso.custom_sso_handler\n", "");
        let server = TestServer::start_with(
            backend,
            ServerOptions { config: &config, ..ServerOptions::default() },
        );
        assert_eq!(server.sign_in("idp-admin", "boss@example.test", &[]).status, 303);
        let reply = server.post_json(
            "/user/update",
            &json!({"user_id": "idp-admin", "user_role": "proxy_admin"}),
            &[("authorization", &server.master_auth())],
        );
        assert_eq!(reply.status, 200);

        // Someone else at the identity provider with the same email.
        let token =
            server.sign_in("idp-intruder", "BOSS@example.test", &[]).token_cookie().unwrap();
        assert_eq!(server.claims(&token)["user_id"], "idp-intruder");
        assert_eq!(server.claims(&token)["user_role"], "internal_user_viewer");
        let rows = server.users();
        assert_eq!(rows.len(), 2);
        let admin = rows.iter().find(|u| u.user_id == "idp-admin").unwrap();
        assert_eq!(
            (admin.sso_user_id.as_deref(), admin.user_role.as_deref()),
            (Some("idp-admin"), Some("proxy_admin"))
        );

        // An account created by an admin with that email and no binding is claimed by email.
        let reply = server.post_json("/user/new", &json!({"user_id": "pre-made", "user_email": "new@example.test", "user_role": "internal_user"}), &[("authorization", &server.master_auth())]);
        assert_eq!(reply.status, 200, "{}", reply.body);
        let token = server.sign_in("idp-new", "new@example.test", &[]).token_cookie().unwrap();
        assert_eq!(server.claims(&token)["user_id"], "pre-made");
        let pre_made = server.users().into_iter().find(|u| u.user_id == "pre-made").unwrap();
        assert_eq!(pre_made.sso_user_id.as_deref(), Some("idp-new"), "now bound");
    });
}

#[test]
fn admin_only_mode_and_proxy_admin_id() {
    let backend = Backend::Sqlite;
    let config = hookgate_tests::SEED_CONFIG
        .replace("  trusted_proxy_ranges", "  ui_access_mode: admin_only\n  trusted_proxy_ranges");
    let server = TestServer::start_with(
        &backend,
        ServerOptions {
            config: &config,
            env: &[("PROXY_ADMIN_ID", "root")],
            ..ServerOptions::default()
        },
    );
    let reply = server.sign_in("bob", "bob@example.test", &["staff"]);
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(reply.json()["error"]["message"].as_str().unwrap().contains("admin_only"));
    assert!(server.users().is_empty(), "a refused sign-in writes no user");
    assert_eq!(server.sign_in("alice", "alice@example.test", &["admins"]).status, 303);
    let token = server.sign_in("root", "root@example.test", &[]).token_cookie().unwrap();
    assert_eq!(server.claims(&token)["user_role"], "proxy_admin");
    let root = server.users().into_iter().find(|u| u.user_id == "root").unwrap();
    assert_eq!(root.user_role.as_deref(), Some("proxy_admin"), "written to the row");
}

#[test]
fn allowed_email_domains_and_the_public_url() {
    let backend = Backend::Sqlite;
    let server = TestServer::start_with(
        &backend,
        ServerOptions {
            env: &[
                ("ALLOWED_EMAIL_DOMAINS", "example.test"),
                ("PROXY_BASE_URL", "https://sso.example.test/"),
                ("SERVER_ROOT_PATH", "/litellm"),
            ],
            ..ServerOptions::default()
        },
    );
    let reply = server.get(
        "/litellm/sso/key/generate",
        &[("x-forwarded-user", "eve"), ("x-forwarded-email", "eve@evil.test")],
    );
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(
        reply.json()["error"]["message"].as_str().unwrap().contains("evil.test is not allowed")
    );
    let reply = server.get(
        "/litellm/sso/key/generate",
        &[("x-forwarded-user", "fay"), ("x-forwarded-email", "fay@example.test")],
    );
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert_eq!(
        reply.header("location"),
        Some("https://sso.example.test/litellm/ui/?login=success")
    );
    assert!(reply.header("set-cookie").unwrap().contains("; Secure"));
    assert_eq!(server.claims(&reply.token_cookie().unwrap())["server_root_path"], "/litellm");
    assert_eq!(
        server.get("/sso/key/generate", &[]).status,
        404,
        "everything lives under the root path"
    );
}

#[test]
fn non_utf8_identity_headers_are_refused_with_400() {
    let server = TestServer::start(&Backend::Sqlite);
    // ureq sends header bytes as given; build the request by hand to include a raw 0xff byte.
    use std::io::{Read, Write};
    let address = server.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.write_all(b"GET /sso/key/generate HTTP/1.1\r\nHost: localhost\r\nx-forwarded-user: \xffalice\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
    assert!(
        response.contains("x-forwarded-user") && response.contains("not valid UTF-8"),
        "{response}"
    );
    assert!(server.users().is_empty());
}

#[test]
fn sigterm_finishes_cleanly() {
    let mut server = TestServer::start(&Backend::Sqlite);
    assert_eq!(server.sign_in("gus", "gus@example.test", &[]).status, 303);
    let status = server.stop();
    assert!(status.success(), "{status}\n{}", server.logs());
    assert!(server.logged("database closed"), "{}", server.logs());
}
