//! The management API (LiteLLM's paths and fields), its authorisation, health, and the startup
//! rules for the master key.

use hookgate_tests::{
    Scratch, output_text, run_hookgate,
    server::{Backend, ServerOptions, TestServer, for_each_backend},
};
use serde_json::json;

#[test]
fn users_and_teams_through_the_api() {
    for_each_backend(|backend| {
        let server = TestServer::start(backend);
        let admin = server.master_auth();
        let auth = [("authorization", admin.as_str())];

        let team = server.post_json(
            "/team/new",
            &json!({"team_id": "core", "team_alias": "Core", "models": ["gpt-4o"]}),
            &auth,
        );
        assert_eq!(team.status, 200, "{}", team.body);
        assert_eq!(team.json()["team_alias"], "Core");
        assert_eq!(server.post_json("/team/new", &json!({"team_id": "core"}), &auth).status, 409);

        let user = server.post_json(
            "/user/new",
            &json!({"user_id": "u1", "user_email": "U1@Example.test", "user_role": "internal_user", "max_budget": 5, "budget_duration": "1mo", "teams": ["core"]}),
            &auth,
        );
        assert_eq!(user.status, 200, "{}", user.body);
        let body = user.json();
        assert_eq!(
            (body["user_email"].as_str(), body["user_role"].as_str(), body["max_budget"].as_f64()),
            (Some("u1@example.test"), Some("internal_user"), Some(5.0))
        );
        assert_eq!(body["teams"], json!(["core"]));
        assert!(
            body["budget_reset_at"].as_str().unwrap().ends_with("-01T00:00:00Z"),
            "1mo resets on the 1st: {body}"
        );
        assert_eq!(server.post_json("/user/new", &json!({"user_id": "u1"}), &auth).status, 409);
        for bad in [
            json!({"user_role": "internal_user_view_only"}),
            json!({"max_budget": -1}),
            json!({"budget_duration": "soon"}),
            json!({"teams": ["nope"]}),
            json!({"user_id": ""}),
        ] {
            let reply = server.post_json("/user/new", &bad, &auth);
            assert_eq!(reply.status, 400, "{bad}: {}", reply.body);
        }

        let updated = server.post_json("/user/update", &json!({"user_id": "u1", "user_alias": "Una", "max_budget": null, "models": ["a", "b"]}), &auth);
        assert_eq!(updated.status, 200, "{}", updated.body);
        let body = updated.json();
        assert_eq!(
            (body["user_alias"].as_str(), body["max_budget"].is_null(), body["models"].clone()),
            (Some("Una"), true, json!(["a", "b"]))
        );
        assert_eq!(
            server.post_json("/user/update", &json!({"user_id": "ghost"}), &auth).status,
            404
        );

        let added = server.post_json(
            "/team/member_add",
            &json!({"team_id": "core", "member": [{"user_id": "u2", "role": "admin"}]}),
            &auth,
        );
        assert_eq!(added.status, 200, "{}", added.body);
        assert_eq!(
            added.json()["members_with_roles"],
            json!([{"user_id": "u1", "role": "user"}, {"user_id": "u2", "role": "admin"}])
        );
        let info = server.get("/team/info?team_id=core", &auth).json();
        assert_eq!(info["team_info"]["members_with_roles"].as_array().unwrap().len(), 2);
        let removed = server.post_json(
            "/team/member_delete",
            &json!({"team_id": "core", "user_id": "u2"}),
            &auth,
        );
        assert_eq!(removed.status, 200);
        assert_eq!(
            server
                .post_json(
                    "/team/member_delete",
                    &json!({"team_id": "core", "user_id": "u2"}),
                    &auth
                )
                .status,
            404
        );
        assert_eq!(server.get("/team/list", &auth).json().as_array().unwrap().len(), 1);

        for n in 3..8 {
            assert_eq!(
                server.post_json("/user/new", &json!({"user_id": format!("u{n}")}), &auth).status,
                200
            );
        }
        let page = server.get("/user/list?page=2&page_size=3", &auth).json();
        assert_eq!(
            (page["total"].as_u64(), page["total_pages"].as_u64(), page["page"].as_u64()),
            (Some(7), Some(3), Some(2))
        );
        assert_eq!(page["users"].as_array().unwrap().len(), 3);
        let filtered = server.get("/user/list?role=internal_user", &auth).json();
        assert_eq!(filtered["total"].as_u64(), Some(2), "u1 and u2 (created by member_add)");

        let deleted =
            server.post_json("/user/delete", &json!({"user_ids": ["u1", "ghost"]}), &auth);
        assert_eq!(deleted.json()["deleted_user_ids"], json!(["u1"]));
        assert_eq!(server.get("/user/info?user_id=u1", &auth).status, 404);
        assert_eq!(
            server.get("/team/info?team_id=core", &auth).json()["team_info"]["members_with_roles"],
            json!([])
        );
    });
}

#[test]
fn api_errors_are_json_with_the_request_id_even_to_a_browser() {
    let server = TestServer::start(&Backend::Sqlite);
    let admin = server.master_auth();
    let reply = server.get(
        "/user/info?user_id=nobody",
        &[("authorization", admin.as_str()), ("accept", "text/html,*/*")],
    );
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert!(reply.header("content-type").unwrap_or("").starts_with("application/json"));
    let id = reply.header("x-request-id").expect("a request id");
    assert_eq!(
        reply.json(),
        json!({
            "error": {
                "message": "no user \"nobody\"",
                "type": "not_found_error",
                "param": null,
                "code": "404",
            },
            "request_id": id,
        })
    );
    // A refusal before the handler runs (the caller extractor) is finished the same way.
    let reply = server.get("/user/list", &[("accept", "text/html")]);
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    assert_eq!(reply.json()["request_id"].as_str(), reply.header("x-request-id"));
    // So is an unknown route.
    let reply = server.get("/no/such/route", &[("accept", "text/html")]);
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert_eq!(reply.json()["request_id"].as_str(), reply.header("x-request-id"));
}

#[test]
fn sessions_see_only_their_own_user_unless_proxy_admin() {
    let server = TestServer::start(&Backend::Sqlite);
    let bob = format!("Bearer {}", server.session_key("bob", &["staff"]));
    let alice = format!("Bearer {}", server.session_key("alice", &["admins"]));
    let as_bob = [("authorization", bob.as_str())];
    assert_eq!(server.get("/user/info", &as_bob).json()["user_id"], "bob");
    assert_eq!(server.get("/user/info?user_id=bob", &as_bob).status, 200);
    assert_eq!(server.get("/user/info?user_id=alice", &as_bob).status, 403);
    assert_eq!(server.get("/user/list", &as_bob).status, 403);
    assert_eq!(server.post_json("/user/new", &json!({"user_id": "x"}), &as_bob).status, 403);
    assert_eq!(server.post_json("/team/new", &json!({"team_id": "x"}), &as_bob).status, 403);

    let as_alice = [("authorization", alice.as_str())];
    assert_eq!(
        server.get("/user/info?user_id=bob", &as_alice).status,
        200,
        "a proxy_admin session reads anyone"
    );
    assert_eq!(server.get("/user/list", &as_alice).json()["total"], 2);

    for auth in ["Bearer sk-not-a-key", "Bearer ", "Basic abc", "Bearer eyJhbGciOiJub25lIn0.e30."] {
        let reply = server.get("/user/info?user_id=bob", &[("authorization", auth)]);
        assert_eq!(reply.status, 401, "{auth}: {}", reply.body);
    }
    assert_eq!(server.get("/user/info?user_id=bob", &[]).status, 401);
    assert_eq!(server.get("/user/info?user_id=bob", &[("cookie", "token=not.a.jwt")]).status, 401);
}

#[test]
fn bodies_of_the_wrong_type_get_a_clear_4xx() {
    let server = TestServer::start(&Backend::Sqlite);
    let admin = server.master_auth();
    let auth = [("authorization", admin.as_str())];
    let reply = server.post_raw("/user/new", "text/plain", "user_id=x", &auth);
    assert_eq!(reply.status, 415, "{}", reply.body);
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Content-Type: application/json")
    );
    let reply = server.post_raw("/user/new", "application/json", "{not json", &auth);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.json()["error"]["message"].as_str().unwrap().starts_with("invalid JSON body"));
    let reply = server.post_json("/user/new", &json!({"user_id": 5}), &auth);
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert!(reply.json()["error"]["message"].as_str().unwrap().contains("user_id"));
    let reply = server.get("/user/list?page=minus-one", &auth);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(server.get("/no/such/route", &[]).status, 404);
}

#[test]
fn health_endpoints() {
    for_each_backend(|backend| {
        let server = TestServer::start(backend);
        let live = server.get("/health/liveliness", &[]);
        assert_eq!((live.status, live.body.as_str()), (200, "\"I'm alive!\""));
        let ready = server.get("/health/readiness", &[]);
        assert_eq!(ready.status, 200);
        let body = ready.json();
        assert_eq!(
            (body["status"].as_str(), body["db"].as_str()),
            (Some("healthy"), Some("connected"))
        );
        // Probes get a status, not a map of the deployment's hooks.
        assert!(body.get("hooks").is_none(), "{body}");
    });
}

#[test]
fn without_a_master_key_one_is_generated_and_kept_private() {
    let server = TestServer::start_with(
        &Backend::Sqlite,
        ServerOptions { master_key: false, ..ServerOptions::default() },
    );
    let key_file = server.dir().join("hookgate.master_key");
    let key = std::fs::read_to_string(&key_file).unwrap().trim().to_owned();
    assert!(key.starts_with("sk-") && key.len() > 40, "{key}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777, 0o600);
    let logs = server.logs();
    assert!(logs.contains(&key_file.display().to_string()), "the log says where: {logs}");
    assert!(!logs.contains(&key), "the key itself is never logged");
    let reply = server.get("/user/list", &[("authorization", &format!("Bearer {key}"))]);
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn weak_or_missing_master_keys_stop_the_server() {
    let scratch = Scratch::new();
    let config = scratch.write("config.yaml", "general_settings:\n  master_key: sk-1234\n");
    let output = run_hookgate(&["--config", &config.display().to_string(), "--port", "0"], &[]);
    let (_, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("general_settings.master_key is a publicly known or too short key"),
        "{stderr}"
    );

    let output = run_hookgate(
        &["--config", &config.display().to_string(), "--port", "0"],
        &[("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")],
    );
    let (_, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("publicly known"), "the key is checked first: {stderr}");

    let config = scratch.write("config2.yaml", "");
    let output = run_hookgate(
        &["--config", &config.display().to_string(), "--port", "0"],
        &[("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")],
    );
    let (_, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("a master key is required with PostgreSQL"), "{stderr}");

    let output = run_hookgate(
        &["--config", &config.display().to_string(), "--port", "0"],
        &[("DATABASE_URL", "mysql://h/db"), ("LITELLM_MASTER_KEY", "sk-a-long-enough-random-key")],
    );
    let (_, stderr) = output_text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr.contains("unsupported database URL scheme \"mysql\""), "{stderr}");
}

#[test]
fn replicas_starting_together_on_one_postgres_database_all_come_up() {
    // Fails without PostgreSQL unless the run opted out (HOOKGATE_TEST_SKIP_POSTGRES=1).
    let Some(admin) = hookgate_tests::server::postgres_url() else { return };
    let name = format!("hookgate_replicas_{}", hookgate_tests::server::random_suffix());
    let create = format!("CREATE DATABASE {name}");
    hookgate_tests::server::block_on(async {
        use sea_orm::ConnectionTrait;
        let conn = sea_orm::Database::connect(admin.as_str()).await.unwrap();
        conn.execute_unprepared(&create).await.unwrap();
        conn.close().await.ok();
    });
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    let key = format!("sk-replicas-{}", hookgate_tests::server::random_suffix());
    let servers: Vec<TestServer> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let (url, key) = (url.as_str(), key.as_str());
                scope.spawn(move || {
                    TestServer::start_with(
                        &Backend::Sqlite,
                        ServerOptions { shared: Some((url, key)), ..ServerOptions::default() },
                    )
                })
            })
            .collect();
        handles.into_iter().map(|handle| handle.join().unwrap()).collect()
    });
    // A session from one replica is good on the others.
    let token = servers[0].sign_in("rita", "rita@example.test", &[]).token_cookie().unwrap();
    for server in &servers {
        assert_eq!(server.get("/health/readiness", &[]).status, 200);
        assert_eq!(server.get("/user/info", &[("cookie", &format!("token={token}"))]).status, 200);
    }
    drop(servers);
    hookgate_tests::server::block_on(async {
        use sea_orm::ConnectionTrait;
        let conn = sea_orm::Database::connect(admin.as_str()).await.unwrap();
        conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.ok();
        conn.close().await.ok();
    });
}
