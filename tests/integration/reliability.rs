//! Faults and bad input: misbehaving hooks under concurrent load, saturation, malformed and
//! hostile requests, and no secret in any log line.

use std::time::{Duration, Instant};

use hookgate::db::entity::{session, user};
use hookgate_tests::server::{Backend, Reply, ServerOptions, TestServer};
use sea_orm::{EntityTrait, PaginatorTrait};

const SLOW: &str = r#"general_settings:
  custom_ui_sso_sign_in_handler: fixture_misbehaving.slow_sign_in
  CUSTOM_SSO
  plugin_dirs: ["{plugins}"]
  trusted_proxy_ranges: ["127.0.0.1/32"]
  hook_timeout: 1s
  hook_concurrency: 2
"#;

#[test]
fn hung_hooks_cannot_exhaust_the_server() {
    let config = SLOW.replace("  CUSTOM_SSO\n", "");
    let server = TestServer::start_with(
        &Backend::Sqlite,
        ServerOptions { config: &config, ..ServerOptions::default() },
    );
    let started = Instant::now();
    let statuses: Vec<u16> = std::thread::scope(|scope| {
        let hung: Vec<_> = (0..6)
            .map(|n| {
                let server = &server;
                scope.spawn(move || {
                    let user = format!("hung-{n}");
                    server
                        .get(
                            "/sso/key/generate",
                            &[("x-forwarded-user", &user), ("x-sleep-ms", "3000")],
                        )
                        .status
                })
            })
            .collect();
        // While every hook slot is stuck, the rest of the server answers (generous bound for a loaded CI machine: the hooks hold their slots for 3 s).
        std::thread::sleep(Duration::from_millis(300));
        let probe = Instant::now();
        assert_eq!(server.get("/health/liveliness", &[]).status, 200);
        assert!(
            probe.elapsed() < Duration::from_millis(1500),
            "liveliness took {:?}",
            probe.elapsed()
        );
        hung.into_iter().map(|handle| handle.join().unwrap()).collect()
    });
    let timeouts = statuses.iter().filter(|s| **s == 504).count();
    let busy = statuses.iter().filter(|s| **s == 503).count();
    assert_eq!(
        (timeouts, busy),
        (2, 4),
        "two hooks run and time out, the others find no slot: {statuses:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(2900),
        "every request answered at its deadline, before the hooks returned (3 s)"
    );
    // The stuck hooks still hold their slots until they return (at 3 s); then all is well again.
    std::thread::sleep(Duration::from_millis(3200).saturating_sub(started.elapsed()));
    let reply =
        server.get("/sso/key/generate", &[("x-forwarded-user", "after"), ("x-sleep-ms", "0")]);
    assert_eq!(reply.status, 303, "{}", reply.body);
    let users = server.db(async |conn| user::Entity::find().all(conn).await.unwrap());
    assert_eq!(users.iter().map(|u| u.user_id.as_str()).collect::<Vec<_>>(), ["after"]);
}

#[test]
fn failing_hooks_under_concurrent_load_fail_alone() {
    for backend in hookgate_tests::server::backends() {
        let config = SLOW
            .replace("CUSTOM_SSO", "custom_sso: fixture_misbehaving.invalid_values_custom_sso")
            .replace("hook_concurrency: 2", "hook_concurrency: 64")
            .replace("hook_timeout: 1s", "hook_timeout: 10s");
        let server = TestServer::start_with(
            &backend,
            ServerOptions { config: &config, ..ServerOptions::default() },
        );
        let expected: Vec<(String, u16)> = (0..60)
            .map(|n| match n % 4 {
                0 => ("negative-budget".to_owned(), 500),
                1 => ("empty-id".to_owned(), 500),
                _ => (format!("user-{n}"), 303),
            })
            .collect();
        let statuses: Vec<u16> = std::thread::scope(|scope| {
            let handles: Vec<_> = expected
                .iter()
                .map(|(user, _)| {
                    let server = &server;
                    scope.spawn(move || {
                        server
                            .get(
                                "/sso/key/generate",
                                &[("x-forwarded-user", user), ("x-sleep-ms", "5")],
                            )
                            .status
                    })
                })
                .collect();
            handles.into_iter().map(|handle| handle.join().unwrap()).collect()
        });
        for ((user, want), got) in expected.iter().zip(&statuses) {
            assert_eq!(want, got, "{}: {user}", backend.name());
        }
        let good = expected.iter().filter(|(_, status)| *status == 303).count() as u64;
        assert_eq!(server.db(async |conn| user::Entity::find().count(conn).await.unwrap()), good);
        assert_eq!(
            server.db(async |conn| session::Entity::find().count(conn).await.unwrap()),
            good
        );
        assert_eq!(server.get("/health/readiness", &[]).status, 200);
    }
}

#[test]
fn hostile_requests_get_a_clear_4xx_and_change_nothing() {
    let server = TestServer::start(&Backend::Sqlite);
    let users = || server.db(async |conn| user::Entity::find().count(conn).await.unwrap());

    let huge = format!("/sso/key/generate?pad={}", "a".repeat(10_000));
    let reply = server.get(&huge, &[("x-forwarded-user", "alice")]);
    assert_eq!(reply.status, 414, "{}", reply.body);
    assert!(reply.json()["error"]["message"].as_str().unwrap().contains("at most 8192"));

    let reply = server
        .get("/sso/key/generate", &[("x-forwarded-user", "alice"), ("x-forwarded-user", "root")]);
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("more than one x-forwarded-user header")
    );

    let reply = server.get(
        "/sso/key/generate",
        &[("x_forwarded_user", "root"), ("X_Forwarded_Email", "root@example.test")],
    );
    assert_eq!(reply.status, 403, "look-alike names are not identity: {}", reply.body);

    let bare_cr = server.raw(b"GET /sso/key/generate HTTP/1.1\r\nHost: localhost\r\nx-forwarded-user: al\rice\r\nConnection: close\r\n\r\n");
    assert!(bare_cr.starts_with("HTTP/1.1 400"), "{bare_cr}");
    let long = "a".repeat(20_000);
    let reply = server.get("/sso/key/generate", &[("x-forwarded-user", &long)]);
    assert_eq!(reply.status, 431, "{}", &reply.body[..reply.body.len().min(300)]);
    assert!(reply.body.len() < 1000, "the message does not echo the value back");
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("request header `x-forwarded-user` is 20000 bytes long")
    );
    let huge = format!(
        "GET /sso/key/generate HTTP/1.1\r\nHost: localhost\r\nx-forwarded-user: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(600_000)
    );
    let reply = server.raw(huge.as_bytes());
    assert!(
        reply.starts_with("HTTP/1.1 431") || reply.is_empty(),
        "hyper refuses what does not fit its buffer: {}",
        &reply[..reply.len().min(200)]
    );
    assert_eq!(users(), 0, "nothing was written");

    // Tampered, expired and forged session tokens.
    let token = server.sign_in("alice", "alice@example.test", &[]).token_cookie().unwrap();
    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let expired = {
        let mut claims: serde_json::Value =
            serde_json::from_slice(&decode_segment(token.split('.').nth(1).unwrap())).unwrap();
        claims["exp"] = serde_json::json!(chrono::Utc::now().timestamp() - 10);
        let key = jsonwebtoken::EncodingKey::from_secret(server.master_key.as_bytes());
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
    };
    let forged = {
        let claims: serde_json::Value =
            serde_json::from_slice(&decode_segment(token.split('.').nth(1).unwrap())).unwrap();
        let key = jsonwebtoken::EncodingKey::from_secret(b"not-the-master-key-at-all");
        jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).unwrap()
    };
    // alg: none, with the same claims (the JWT library's own error names the algorithms it
    // knows: "unknown variant `none`, expected one of `HS256`, …").
    let unsigned =
        format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", token.split('.').nth(1).unwrap());
    for (name, bad) in [
        ("tampered", tampered),
        ("expired", expired),
        ("wrong key", forged),
        ("alg none", unsigned),
        ("garbage", "x.y.z".to_owned()),
    ] {
        let reply: Reply = server.get("/user/info", &[("cookie", &format!("token={bad}"))]);
        assert_eq!(reply.status, 401, "{name}: {}", reply.body);
        // One answer for every bad token: the library's words stay in the debug log.
        assert_eq!(
            reply.json()["error"]["message"],
            "invalid session token: sign in again",
            "{name}"
        );
    }
}

fn decode_segment(segment: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(segment).unwrap()
}

#[test]
fn no_secret_reaches_the_log() {
    let server = TestServer::start_with(
        &Backend::Sqlite,
        ServerOptions {
            env: &[("HOOKGATE_LOG", "debug"), ("UI_PASSWORD", "ui-password-do-not-log")],
            ..ServerOptions::default()
        },
    );
    let admin = server.master_auth();
    let signed_in = server.sign_in("alice", "alice@example.test", &["admins"]);
    let token = signed_in.token_cookie().unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&decode_segment(token.split('.').nth(1).unwrap())).unwrap();
    let key = claims["key"].as_str().unwrap().to_owned();
    assert_eq!(
        server.get("/user/info", &[("authorization", &format!("Bearer {key}"))]).status,
        200
    );
    assert_eq!(server.get("/user/list", &[("authorization", &admin)]).status, 200);
    // A token with `alg: none`: the client gets a plain 401, the debug log the library's words.
    let unsigned =
        format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{}.", token.split('.').nth(1).unwrap());
    assert_eq!(server.get("/user/info", &[("cookie", &format!("token={unsigned}"))]).status, 401);
    assert_eq!(
        server.post_form("/login", "username=admin&password=wrong-password-do-not-log", &[]).status,
        401
    );
    let login = server.post_form("/login", "username=admin&password=ui-password-do-not-log", &[]);
    assert_eq!(login.status, 303);
    let ui_token = login.token_cookie().unwrap();
    assert_eq!(
        server
            .post_json(
                "/session/logout",
                &serde_json::json!({}),
                &[("authorization", &format!("Bearer {key}"))]
            )
            .status,
        200
    );
    let logs = server.logs();
    assert!(
        logs.contains("token cookie refused: ") && logs.contains("unknown variant `none`"),
        "the JWT library's detail is in the debug log:\n{logs}"
    );
    assert!(
        logs.contains("signed in") && logs.lines().count() > 20,
        "a real log was captured:\n{logs}"
    );
    for (name, secret) in [
        ("master key", server.master_key.as_str()),
        ("session key", key.as_str()),
        ("session token", token.as_str()),
        ("UI session token", ui_token.as_str()),
        ("UI password", "ui-password-do-not-log"),
        ("wrong password", "wrong-password-do-not-log"),
        ("JWT signature", token.rsplit('.').next().unwrap()),
    ] {
        assert!(!logs.contains(secret), "the {name} is in the log");
    }
}

/// A failure of the database while a `custom_sso` hook's host call reads it is the database's
/// (503, "failed" with the database's reason), not the hook's (403/500): the hook waits at a
/// gate after the sign-in's snapshot read, the test takes the `users` table away, then lets the
/// hook ask the host about a user the snapshot does not hold.
#[test]
fn a_database_failure_during_a_hooks_host_call_answers_503() {
    hookgate_tests::server::for_each_backend(|backend| {
        let scratch = hookgate_tests::Scratch::new();
        let calls = scratch.path().join("calls");
        let gate = scratch.path().join("gate");
        let (calls_text, gate_text) = (calls.display().to_string(), gate.display().to_string());
        let config = "general_settings:\n  custom_ui_sso_sign_in_handler: \
                      custom_sso_handler.custom_ui_sso_sign_in_handler\n  custom_sso: \
                      fixture_misbehaving.gated_custom_sso\n  plugin_dirs: [\"{plugins}\"]\n  \
                      trusted_proxy_ranges: [\"127.0.0.1/32\"]\n  hook_timeout: 60s\n";
        let env = [
            ("HOOKGATE_FIXTURE_CALLS", calls_text.as_str()),
            ("HOOKGATE_FIXTURE_GATE", gate_text.as_str()),
        ];
        let server = TestServer::start_with(
            backend,
            ServerOptions { config, env: &env, ..ServerOptions::default() },
        );
        let rename = |from: &str, to: &str| {
            let statement = format!("ALTER TABLE {from} RENAME TO {to}");
            server.db(async move |conn| {
                use sea_orm::ConnectionTrait;
                conn.execute_unprepared(&statement).await.unwrap();
            });
        };
        let reply = std::thread::scope(|scope| {
            let signing_in = scope.spawn(|| server.sign_in("gus", "gus@example.test", &[]));
            // The hook is running: the sign-in's snapshot was read.
            let started = Instant::now();
            while !calls.exists() {
                assert!(!signing_in.is_finished(), "the sign-in ended before its hook ran");
                assert!(started.elapsed() < Duration::from_secs(60), "the hook never ran");
                std::thread::sleep(Duration::from_millis(10));
            }
            rename("users", "users_away");
            std::fs::write(&gate, b"open").unwrap();
            signing_in.join().unwrap()
        });
        rename("users_away", "users");
        assert_eq!(reply.status, 503, "{}\n{}", reply.body, server.logs());
        let message = reply.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains("database is unavailable"), "{message}");
        assert!(server.logged("host call user_info failed"), "{}", server.logs());
        assert!(server.users().is_empty());
        let events = server.events();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].outcome, "failed");
        assert!(events[0].reason.as_deref().unwrap().starts_with("database: "), "{events:?}");

        // The database back, the same sign-in goes through (the gate stays open).
        let reply = server.sign_in("gus", "gus@example.test", &[]);
        assert_eq!(reply.status, 303, "{}\n{}", reply.body, server.logs());
        assert_eq!(server.users().len(), 1);
    });
}

/// A server stopped with SIGTERM closes its SQLite file before it exits: the last connection's
/// checkpoint leaves the rows in the file and no WAL or WAL index beside it (a WAL left without
/// its index is a database `hookgate try` and `hookgate sync` refuse to read).
#[test]
fn a_stopped_server_leaves_its_sqlite_file_closed() {
    let mut server = TestServer::start(&Backend::Sqlite);
    for user in ["ada", "bo", "cy"] {
        assert_eq!(server.sign_in(user, &format!("{user}@example.test"), &[]).status, 303);
    }
    let status = server.stop();
    assert!(status.success(), "{status:?}\n{}", server.logs());
    assert!(server.logged("database closed; bye"), "{}", server.logs());
    let mut beside: Vec<String> = std::fs::read_dir(server.dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("hookgate.db"))
        .collect();
    beside.sort();
    assert_eq!(beside, ["hookgate.db"], "{}", server.logs());
    let users = server.users().len();
    assert_eq!(users, 3, "the rows are in the file");
}
