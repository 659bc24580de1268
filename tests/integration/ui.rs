//! The Admin UI over HTTP: the login page, the password fallback and its rate limit, the
//! profile, and the admin pages (users, editing, teams, the sign-in log).

use hookgate::db::entity::{team_member, user};
use hookgate_tests::server::{Backend, ServerOptions, TestServer};
use sea_orm::EntityTrait;

fn start() -> TestServer {
    TestServer::start_with(
        &Backend::Sqlite,
        ServerOptions { env: &[("UI_PASSWORD", "ui-secret-123")], ..ServerOptions::default() },
    )
}

#[test]
fn the_login_page_offers_sso_and_the_password_form() {
    let server = start();
    let page = server.get("/ui/", &[]);
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Sign in with SSO") && page.body.contains("/sso/key/generate"),
        "{}",
        page.body
    );
    assert!(page.body.contains("name=\"password\""));
    assert!(
        !page.body.contains("<script") && !page.body.contains("https://"),
        "no scripts, no external assets"
    );
    assert_eq!(
        server.get("/ui/users", &[]).status,
        303,
        "admin pages send strangers to the login page"
    );
    assert_eq!(server.get("/ui/users", &[]).header("location"), Some("/ui/login"));
}

#[test]
fn the_password_fallback_signs_in_a_proxy_admin_and_is_rate_limited() {
    let server = start();
    let cookie = server.password_cookie("ui-secret-123");
    let profile = server.get("/ui/", &[("cookie", &cookie)]);
    assert!(profile.body.contains("<dd id=\"user-id\">default_user_id</dd>"), "{}", profile.body);
    assert!(profile.body.contains("proxy_admin"));

    for _ in 0..5 {
        let reply = server.post_form("/login", "username=admin&password=wrong", &[]);
        assert_eq!(reply.status, 401);
        assert!(reply.body.contains("Invalid username or password."));
    }
    let blocked = server.post_form("/login", "username=admin&password=ui-secret-123", &[]);
    assert_eq!(blocked.status, 429, "{}", blocked.body);
    assert!(blocked.header("retry-after").is_some());
    assert!(blocked.token_cookie().is_none());
}

#[test]
fn password_login_can_be_disabled_when_sso_is_on() {
    let config = hookgate_tests::SEED_CONFIG.replace(
        "  trusted_proxy_ranges",
        "  disable_password_login_when_sso_enabled: true\n  trusted_proxy_ranges",
    );
    let server = TestServer::start_with(
        &Backend::Sqlite,
        ServerOptions {
            config: &config,
            env: &[("UI_PASSWORD", "ui-secret-123")],
            ..ServerOptions::default()
        },
    );
    assert!(!server.get("/ui/login", &[]).body.contains("name=\"password\""));
    let reply = server.post_form("/login", "username=admin&password=ui-secret-123", &[]);
    assert_eq!(reply.status, 403);
    assert!(reply.token_cookie().is_none());
}

#[test]
fn cross_site_form_posts_are_refused() {
    let server = start();
    let reply = server.post_form(
        "/login",
        "username=admin&password=ui-secret-123",
        &[("origin", "https://evil.example")],
    );
    assert_eq!(reply.status, 403, "{}", reply.body);
    let cookie = server.password_cookie("ui-secret-123");
    let reply = server.post_form(
        "/ui/teams",
        "team_id=x",
        &[("cookie", &cookie), ("sec-fetch-site", "cross-site")],
    );
    assert_eq!(reply.status, 403);
}

#[test]
fn admins_see_edit_users_teams_and_the_sign_in_log() {
    let server = start();
    assert_eq!(server.sign_in("bob", "bob@example.test", &["staff"]).status, 303);
    let cookie = server.password_cookie("ui-secret-123");
    let origin = server.origin();
    let headers = [("cookie", cookie.as_str()), ("origin", origin.as_str())];

    let users = server.get("/ui/users", &headers);
    assert_eq!(users.status, 200);
    assert!(
        users.body.contains("bob@example.test") && users.body.contains("default_user_id"),
        "{}",
        users.body
    );
    let search = server.get("/ui/users?q=bob", &headers);
    assert!(
        search.body.contains("bob@example.test")
            && !search.body.contains("<td>default_user_id</td>"),
        "{}",
        search.body
    );

    let edit = server.get("/ui/user?id=bob", &headers);
    assert!(
        edit.body.contains("value=\"0.01\"") && edit.body.contains("value=\"1d\""),
        "{}",
        edit.body
    );
    let saved = server.post_form(
        "/ui/user",
        "user_id=bob&user_role=proxy_admin_viewer&models=gpt-4o%2C+claude&max_budget=25&budget_duration=1mo",
        &headers,
    );
    assert_eq!(saved.status, 200, "{}", saved.body);
    assert!(saved.body.contains("Saved."));
    let bob = server.db(async |conn| {
        user::Entity::find_by_id("bob".to_owned()).one(conn).await.unwrap().unwrap()
    });
    assert_eq!(
        (bob.user_role.as_deref(), bob.max_budget, bob.budget_duration.as_deref()),
        (Some("proxy_admin_viewer"), Some(25.0), Some("1mo"))
    );
    assert_eq!(bob.models, serde_json::json!(["gpt-4o", "claude"]));
    let bad = server.post_form(
        "/ui/user",
        "user_id=bob&user_role=overlord&models=&max_budget=&budget_duration=",
        &headers,
    );
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("unknown role"), "{}", bad.body);
    let bad = server.post_form(
        "/ui/user",
        "user_id=bob&user_role=internal_user&models=&max_budget=-3&budget_duration=",
        &headers,
    );
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("must be 0 or more"), "{}", bad.body);

    assert_eq!(server.post_form("/ui/teams", "team_id=core&team_alias=Core", &headers).status, 303);
    assert_eq!(
        server
            .post_form("/ui/teams/members/add", "team_id=core&user_id=bob&role=admin", &headers)
            .status,
        303
    );
    let teams = server.get("/ui/teams", &headers);
    assert!(
        teams.body.contains("core") && teams.body.contains("<td>bob</td><td>admin</td>"),
        "{}",
        teams.body
    );
    let missing =
        server.post_form("/ui/teams/members/add", "team_id=core&user_id=ghost&role=user", &headers);
    assert_eq!(missing.status, 400);
    assert!(missing.body.contains("There is no user"));
    assert_eq!(
        server.post_form("/ui/teams/members/remove", "team_id=core&user_id=bob", &headers).status,
        303
    );
    assert!(
        server.db(async |conn| team_member::Entity::find().all(conn).await.unwrap()).is_empty()
    );

    let events = server.get("/ui/events", &headers);
    assert_eq!(events.status, 200);
    assert!(
        events.body.contains("header")
            && events.body.contains("password")
            && events.body.contains("allowed"),
        "{}",
        events.body
    );
}

#[test]
fn ordinary_users_see_their_profile_and_nothing_else() {
    let server = start();
    let token = server.sign_in("bob", "bob@example.test", &["staff"]).token_cookie().unwrap();
    let cookie = format!("token={token}");
    let profile = server.get("/ui/?login=success", &[("cookie", &cookie)]);
    assert_eq!(profile.status, 200);
    assert!(
        profile.body.contains("<dd id=\"user-role\"><span class=\"tag\">internal_user</span></dd>"),
        "{}",
        profile.body
    );
    assert!(
        profile.body.contains("0.01 USD")
            && profile.body.contains("<dd id=\"user-budget-duration\">1d</dd>"),
        "{}",
        profile.body
    );
    assert!(profile.body.contains("00:00 UTC"), "next reset at midnight: {}", profile.body);
    assert!(!profile.body.contains("Users</a>"));
    assert_eq!(server.get("/ui/users", &[("cookie", &cookie)]).status, 403);
    assert_eq!(server.get("/ui/events", &[("cookie", &cookie)]).status, 403);

    let out = server.post_form("/ui/logout", "", &[("cookie", &cookie)]);
    assert_eq!(out.status, 303);
    assert_eq!(out.header("location"), Some("/ui/login"));
    assert!(
        server.get("/ui/", &[("cookie", &cookie)]).body.contains("Sign in with SSO"),
        "the session is gone"
    );
}

#[test]
fn error_pages_carry_the_request_id_and_a_title_that_fits() {
    let server = start();
    let cookie = server.password_cookie("ui-secret-123");
    // An admin page's error: HTML (even without Accept: text/html), headed "Request failed",
    // with the request id a user can quote.
    let missing = server.get("/ui/user?id=nobody", &[("cookie", &cookie)]);
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert!(missing.header("content-type").unwrap_or("").starts_with("text/html"));
    let id = missing.header("x-request-id").expect("a request id");
    assert!(
        missing.body.contains(&format!("Request id: <code>{id}</code>")),
        "the page shows the request id {id}: {}",
        missing.body
    );
    assert!(missing.body.contains("<h1>Request failed</h1>"), "{}", missing.body);
    assert!(missing.body.contains("no user &quot;nobody&quot;"), "{}", missing.body);
    assert!(missing.body.contains("<title>Not Found — hookgate</title>"), "{}", missing.body);

    // The password login form's error keeps the sign-in heading.
    let refused = server.post_form(
        "/login",
        "username=admin&password=ui-secret-123",
        &[("origin", "https://evil.example")],
    );
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("<h1>Sign-in failed</h1>"), "{}", refused.body);
    let id = refused.header("x-request-id").expect("a request id");
    assert!(refused.body.contains(&format!("<code>{id}</code>")), "{}", refused.body);
}
