//! OIDC sign-in against the in-process provider: the whole flow, then each attack and failure.

use hookgate::db::entity::{sign_in_event, user};
use hookgate_tests::{
    fake_idp::{Behavior, FakeIdp, encode, query_pairs},
    server::{Backend, Reply, ServerOptions, TestServer, for_each_backend},
};
use sea_orm::EntityTrait;

const FLOW_COOKIE: &str = "hookgate_oidc_flow";

/// The seed config without the header hook (which would win over OIDC), with the custom_sso
/// plugin, plus `extra` general settings.
pub(crate) fn config(extra: &str) -> String {
    hookgate_tests::SEED_CONFIG
        .replace(
            "  custom_ui_sso_sign_in_handler: custom_sso_handler.custom_ui_sso_sign_in_handler\n",
            "",
        )
        .replace("  trusted_proxy_ranges: [\"127.0.0.1/32\"]\n", extra)
}

pub(crate) fn start(
    backend: &Backend,
    idp: &FakeIdp,
    extra: &str,
    more_env: &[(&str, &str)],
) -> TestServer {
    let env = idp.env();
    let mut pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    pairs.extend_from_slice(more_env);
    let config = config(extra);
    TestServer::start_with(
        backend,
        ServerOptions { config: &config, env: &pairs, ..ServerOptions::default() },
    )
}

/// The three legs of a browser sign-in: to the provider (with the flow cookie), back (the
/// callback URL), and the callback itself.
struct Legs {
    callback_url: String,
    flow_cookie: String,
}

fn begin(server: &TestServer) -> (Reply, String) {
    let start = server.get("/sso/key/generate", &[("accept", "text/html")]);
    assert_eq!(start.status, 303, "{}\n{}", start.body, server.logs());
    let flow = start.cookie(FLOW_COOKIE).expect("a flow cookie");
    (start, flow)
}

fn to_provider_and_back(server: &TestServer) -> Legs {
    let (start, flow_cookie) = begin(server);
    let authorize = start.header("location").unwrap().to_owned();
    let back = server.get_url(&authorize, &[]);
    assert_eq!(back.status, 303, "the provider redirects back: {}", back.body);
    Legs { callback_url: back.header("location").unwrap().to_owned(), flow_cookie }
}

fn finish(server: &TestServer, legs: &Legs) -> Reply {
    server.get_url(
        &legs.callback_url,
        &[("cookie", &format!("{FLOW_COOKIE}={}", legs.flow_cookie)), ("accept", "text/html")],
    )
}

pub(crate) fn sign_in(server: &TestServer) -> Reply {
    finish(server, &to_provider_and_back(server))
}

fn message_of(reply: &Reply) -> String {
    reply.body.clone()
}

#[test]
fn a_user_signs_in_through_the_provider_and_the_plugin_shapes_the_profile() {
    for_each_backend(|backend| {
        let idp = FakeIdp::start();
        let server = start(backend, &idp, "", &[]);
        let (start, _) = begin(&server);
        let authorize = start.header("location").unwrap();
        assert!(authorize.starts_with(&format!("{}/authorize?", idp.issuer())), "{authorize}");
        let params = query_pairs(authorize);
        assert_eq!(params["response_type"], "code");
        assert_eq!(params["client_id"], "hookgate-test");
        assert_eq!(params["redirect_uri"], format!("{}/sso/callback", server.base));
        assert_eq!(params["code_challenge_method"], "S256");
        assert!(params["scope"].split(' ').any(|s| s == "groups"), "{}", params["scope"]);
        assert!(!params["state"].is_empty() && !params["nonce"].is_empty());
        let flow_line = start.set_cookie_line(FLOW_COOKIE).unwrap();
        assert!(
            flow_line.contains("HttpOnly")
                && flow_line.contains("SameSite=Lax")
                && flow_line.contains("Max-Age=600"),
            "{flow_line}"
        );
        assert!(!flow_line.contains(&params["state"]), "the flow cookie is encrypted");

        let done = sign_in(&server);
        assert_eq!(done.status, 303, "{}\n{}", done.body, server.logs());
        assert_eq!(
            done.header("location"),
            Some(format!("{}/ui/?login=success", server.base).as_str())
        );
        let token = done.token_cookie().expect("the session cookie");
        assert!(
            done.set_cookie_line(FLOW_COOKIE).unwrap().contains("Max-Age=0"),
            "the flow cookie is cleared"
        );
        let requests = idp.token_requests();
        let verifier = requests.last().unwrap().get("code_verifier").expect("PKCE verifier sent");
        assert!(verifier.len() >= 43);

        // The profile page shows what the custom_sso plugin decided from the IdP's groups.
        let profile = server.get("/ui/", &[("cookie", &format!("token={token}"))]);
        assert_eq!(profile.status, 200);
        assert!(profile.body.contains("<dd id=\"user-id\">alice</dd>"), "{}", profile.body);
        assert!(profile.body.contains("<dd id=\"user-email\">alice@example.test</dd>"));
        assert!(profile.body.contains("proxy_admin"), "admins → proxy_admin");
        assert!(profile.body.contains("Users</a>"), "admins see the admin pages");
        let rows = server.db(async |conn| user::Entity::find().all(conn).await.unwrap());
        assert_eq!(rows.len(), 1);
        // The account is bound to (issuer, sub), not to the changeable preferred_username.
        assert_eq!(
            (
                rows[0].user_id.as_str(),
                rows[0].sso_user_id.as_deref(),
                rows[0].sso_issuer.as_deref()
            ),
            ("alice", Some("alice-sub"), Some(idp.issuer()))
        );
        assert_eq!(rows[0].user_alias.as_deref(), Some("Alice Liddell"));
        assert_eq!(rows[0].metadata["auth_provider"], "generic");
        let events = server.db(async |conn| sign_in_event::Entity::find().all(conn).await.unwrap());
        assert_eq!((events[0].method.as_str(), events[0].outcome.as_str()), ("oidc", "allowed"));
    });
}

#[test]
fn the_provider_refusing_gives_a_clear_401_page() {
    let idp = FakeIdp::start();
    idp.set(Behavior {
        deny: Some(("access_denied".into(), "End-User aborted interaction".into())),
        ..Behavior::default()
    });
    let server = start(&Backend::Sqlite, &idp, "", &[]);
    let reply = sign_in(&server);
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(reply.header("content-type").unwrap().starts_with("text/html"));
    assert!(message_of(&reply).contains("the identity provider refused the sign-in: access_denied (End-User aborted interaction)"), "{}", reply.body);
    assert!(reply.body.contains("/ui/login"), "a way back");
    let events = server.db(async |conn| sign_in_event::Entity::find().all(conn).await.unwrap());
    assert_eq!(events.last().unwrap().outcome, "refused");
}

#[test]
fn a_tampered_state_or_a_missing_flow_cookie_is_refused() {
    let idp = FakeIdp::start();
    let server = start(&Backend::Sqlite, &idp, "", &[]);
    let legs = to_provider_and_back(&server);
    let params = query_pairs(&legs.callback_url);
    let tampered = Legs {
        callback_url: legs.callback_url.replace(&params["state"], "forged-state"),
        flow_cookie: legs.flow_cookie.clone(),
    };
    let reply = finish(&server, &tampered);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("state does not match"), "{}", reply.body);

    let legs = to_provider_and_back(&server);
    let reply = server.get_url(&legs.callback_url, &[("accept", "text/html")]);
    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("no sign-in is in progress in this browser"), "{}", reply.body);

    // Another browser's flow cookie does not fit this callback either.
    let mine = to_provider_and_back(&server);
    let theirs = to_provider_and_back(&server);
    let reply =
        finish(&server, &Legs { callback_url: mine.callback_url, flow_cookie: theirs.flow_cookie });
    assert_eq!(reply.status, 400);

    // A flow cookie that is not ours (or was altered) reads as no cookie.
    let reply = finish(
        &server,
        &Legs {
            callback_url: theirs.callback_url,
            flow_cookie: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
        },
    );
    assert_eq!(reply.status, 400);
}

#[test]
fn a_replayed_callback_is_refused() {
    for_each_backend(|backend| {
        let idp = FakeIdp::start();
        let server = start(backend, &idp, "", &[]);
        let legs = to_provider_and_back(&server);
        assert_eq!(finish(&server, &legs).status, 303);
        let replay = finish(&server, &legs);
        assert_eq!(replay.status, 400, "{}", replay.body);
        assert!(replay.body.contains("already completed"), "{}", replay.body);
    });
}

#[test]
fn an_expired_flow_is_refused() {
    let idp = FakeIdp::start();
    let server = start(&Backend::Sqlite, &idp, "  oidc_flow_timeout: 1s\n", &[]);
    let legs = to_provider_and_back(&server);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let reply = finish(&server, &legs);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("has expired"), "{}", reply.body);
}

#[test]
fn id_tokens_that_fail_verification_are_refused() {
    let idp = FakeIdp::start();
    let server = start(&Backend::Sqlite, &idp, "", &[]);
    let cases: Vec<(&str, Behavior, &str)> = vec![
        (
            "wrong nonce",
            Behavior { nonce: Some("not-the-nonce".into()), ..Behavior::default() },
            "nonce",
        ),
        (
            "wrong audience",
            Behavior { audience: Some("someone-else".into()), ..Behavior::default() },
            "audience",
        ),
        ("expired", Behavior { expired: true, ..Behavior::default() }, "expired"),
        ("bad signature", Behavior { wrong_key: true, ..Behavior::default() }, "signature"),
        (
            "alg none",
            Behavior { alg_none: true, ..Behavior::default() },
            "signature verification failed",
        ),
        (
            "wrong issuer",
            Behavior { token_issuer: Some("http://evil.example".into()), ..Behavior::default() },
            "issuer",
        ),
    ];
    for (name, behavior, expected) in cases {
        idp.set(behavior);
        let reply = sign_in(&server);
        assert_eq!(reply.status, 401, "{name}: {}", reply.body);
        assert!(reply.body.contains("invalid ID token"), "{name}: {}", reply.body);
        assert!(
            reply.body.to_lowercase().contains(expected),
            "{name}: expected {expected:?} in {}",
            reply.body
        );
        assert!(reply.token_cookie().is_none(), "{name}");
    }
    assert!(server.db(async |conn| user::Entity::find().all(conn).await.unwrap()).is_empty());
}

#[test]
fn a_callback_naming_another_issuer_is_refused() {
    let idp = FakeIdp::start();
    idp.set(Behavior {
        callback_issuer: Some("http://mix-up.example".into()),
        ..Behavior::default()
    });
    let server = start(&Backend::Sqlite, &idp, "", &[]);
    let reply = sign_in(&server);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("RFC 9207"), "{}", reply.body);
}

#[test]
fn a_code_exchange_without_pkce_is_refused_by_the_provider() {
    let idp = FakeIdp::start();
    let server = start(&Backend::Sqlite, &idp, "", &[("GENERIC_CLIENT_USE_PKCE", "false")]);
    let reply = sign_in(&server);
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(
        reply.body.contains(
            "refused the code exchange: invalid_grant (PKCE is required for this client)"
        ),
        "{}",
        reply.body
    );
}

#[test]
fn userinfo_failing_is_a_502() {
    let idp = FakeIdp::start();
    idp.set(Behavior { userinfo_status: Some(500), ..Behavior::default() });
    let server = start(&Backend::Sqlite, &idp, "", &[]);
    let reply = sign_in(&server);
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert!(reply.body.contains("userinfo answered HTTP 500"), "{}", reply.body);
}

/// The provider's client follows no redirect (SECURITY.md: no SSRF through it): a userinfo
/// endpoint that answers 307 to another server is the provider failing, and the other server is
/// never called (with the access token or without).
#[test]
fn a_redirect_from_the_provider_is_never_followed() {
    let idp = FakeIdp::start();
    let elsewhere = hookgate_tests::fake_litellm::FakeLitellm::start();
    let target = format!("{}/userinfo", elsewhere.url());
    idp.set(Behavior { userinfo_redirect: Some(target), ..Behavior::default() });
    let server = start(&Backend::Sqlite, &idp, "", &[]);
    let reply = sign_in(&server);
    assert_eq!(reply.status, 502, "{}\n{}", reply.body, server.logs());
    assert!(reply.token_cookie().is_none());
    assert!(elsewhere.requests().is_empty(), "followed: {:?}", elsewhere.requests());
}

#[test]
fn userinfo_about_another_subject_is_refused() {
    let idp = FakeIdp::start();
    idp.set(Behavior { userinfo_sub: Some("someone-else".into()), ..Behavior::default() });
    let server = start(&Backend::Sqlite, &idp, "", &[]);
    let reply = sign_in(&server);
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(reply.body.contains("userinfo is about another subject"), "{}", reply.body);
    let rows = server.db(async |conn| user::Entity::find().all(conn).await.unwrap());
    assert!(rows.is_empty());
}

#[test]
fn an_unreachable_provider_is_a_502_not_a_crash() {
    let config = config("");
    let server = TestServer::start_with(
        &Backend::Sqlite,
        ServerOptions {
            config: &config,
            env: &[
                ("GENERIC_CLIENT_ID", "x"),
                ("GENERIC_CLIENT_SECRET", "y"),
                ("GENERIC_ISSUER", "http://127.0.0.1:9"),
                ("PROXY_BASE_URL", "{base}"),
            ],
            ..ServerOptions::default()
        },
    );
    let reply = server.get("/sso/key/generate", &[("accept", "text/html")]);
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert!(reply.body.contains("OpenID discovery at http://127.0.0.1:9 failed"), "{}", reply.body);

    // Anyone can ask while the provider is down: the log line is sampled, 10 a minute at most.
    for _ in 0..39 {
        assert_eq!(server.get("/sso/key/generate", &[]).status, 502);
    }
    let lines = server.logs().matches("cannot start the OIDC sign-in").count();
    assert!((1..=10).contains(&lines), "{lines} lines for 40 requests:\n{}", server.logs());
}

#[test]
fn generic_settings_are_checked_at_startup() {
    let scratch = hookgate_tests::Scratch::new();
    let config = scratch.write("config.yaml", "");
    let output = hookgate_tests::run_hookgate(
        &["check", "--config", &config.display().to_string()],
        &[("GENERIC_CLIENT_ID", "x"), ("GENERIC_CLIENT_SECRET", "y")],
    );
    let (_, stderr) = hookgate_tests::output_text(&output);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr.contains("environment variable GENERIC_AUTHORIZATION_ENDPOINT is required"),
        "{stderr}"
    );
    let output = hookgate_tests::run_hookgate(
        &["check", "--config", &config.display().to_string()],
        &[("GOOGLE_CLIENT_ID", "x")],
    );
    let (_, stderr) = hookgate_tests::output_text(&output);
    assert!(stderr.contains("GOOGLE_CLIENT_SECRET is required"), "{stderr}");
}

pub(crate) fn as_user(idp: &FakeIdp, sub: &str, username: &str, email: &str, verified: bool) {
    idp.set(Behavior {
        claims: serde_json::json!({
            "sub": sub,
            "preferred_username": username,
            "email": email,
            "email_verified": verified,
            "groups": [],
        }),
        ..Behavior::default()
    });
}

pub(crate) fn user_row(server: &TestServer, user_id: &str) -> Option<user::Model> {
    let id = user_id.to_owned();
    server.db(async move |conn| user::Entity::find_by_id(id).one(conn).await.unwrap())
}

#[test]
fn accounts_are_bound_to_issuer_and_subject_not_to_changeable_claims() {
    for_each_backend(|backend| {
        let idp = FakeIdp::start();
        let server = start(backend, &idp, "", &[]);
        as_user(&idp, "alice-sub", "alice", "alice@example.test", true);
        assert_eq!(sign_in(&server).status, 303);

        // Another account at the provider takes the same preferred_username: refused, not let
        // into alice's account.
        as_user(&idp, "mallory-sub", "alice", "mallory@example.test", true);
        let reply = sign_in(&server);
        assert_eq!(reply.status, 403, "{}", reply.body);
        assert!(
            message_of(&reply).contains("belongs to another sign-in identity"),
            "{}",
            reply.body
        );

        // alice renamed at the provider keeps her account: the binding is (issuer, sub).
        as_user(&idp, "alice-sub", "alice.l", "alice@example.test", true);
        let reply = sign_in(&server);
        assert_eq!(reply.status, 303, "{}", reply.body);
        let rows = server.db(async |conn| user::Entity::find().all(conn).await.unwrap());
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].user_id, "alice");
    });
}

#[test]
fn only_a_verified_email_links_an_unbound_account_and_never_an_admin_one() {
    let idp = FakeIdp::start();
    let server = start(&Backend::Sqlite, &idp, "", &[("PROXY_ADMIN_ID", "root")]);
    let master = server.master_auth();
    let provision = |body: serde_json::Value| {
        let reply = server.post_json("/user/new", &body, &[("authorization", &master)]);
        assert_eq!(reply.status, 200, "{}", reply.body);
    };
    provision(
        serde_json::json!({"user_id": "boss", "user_email": "boss@example.test", "user_role": "proxy_admin"}),
    );
    provision(serde_json::json!({"user_id": "carol", "user_email": "carol@example.test"}));

    // An unverified email does not take the pre-provisioned admin: a new account is made.
    as_user(&idp, "eve-sub", "eve", "boss@example.test", false);
    assert_eq!(sign_in(&server).status, 303);
    let boss = user_row(&server, "boss").unwrap();
    assert_eq!((boss.sso_issuer, boss.sso_user_id), (None, None), "boss is not bound to eve");
    assert!(user_row(&server, "eve").is_some());

    // A verified email links an unbound account (and binds it).
    as_user(&idp, "carol-sub", "c.smith", "carol@example.test", true);
    assert_eq!(sign_in(&server).status, 303);
    let carol = user_row(&server, "carol").unwrap();
    assert_eq!(carol.sso_user_id.as_deref(), Some("carol-sub"));
    assert!(user_row(&server, "c.smith").is_none());

    // The password login's account and PROXY_ADMIN_ID are never reached by name.
    as_user(&idp, "x-sub", "default_user_id", "x@example.test", true);
    let reply = sign_in(&server);
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(message_of(&reply).contains("reserved"), "{}", reply.body);
    provision(serde_json::json!({"user_id": "root", "user_role": "proxy_admin"}));
    as_user(&idp, "y-sub", "root", "y@example.test", true);
    let reply = sign_in(&server);
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(user_row(&server, "root").unwrap().sso_issuer.is_none());
}

#[test]
fn email_linking_can_be_turned_off_and_domains_need_a_verified_address() {
    let idp = FakeIdp::start();
    let server = start(&Backend::Sqlite, &idp, "  link_sso_accounts_by_email: false\n", &[]);
    let reply = server.post_json(
        "/user/new",
        &serde_json::json!({"user_id": "dana", "user_email": "dana@example.test"}),
        &[("authorization", &server.master_auth())],
    );
    assert_eq!(reply.status, 200);
    as_user(&idp, "dana-sub", "d.jones", "dana@example.test", true);
    assert_eq!(sign_in(&server).status, 303);
    assert!(user_row(&server, "dana").unwrap().sso_issuer.is_none(), "not linked");
    assert!(user_row(&server, "d.jones").is_some());

    let server = start(&Backend::Sqlite, &idp, "", &[("ALLOWED_EMAIL_DOMAINS", "example.test")]);
    as_user(&idp, "f-sub", "frank", "frank@example.test", false);
    let reply = sign_in(&server);
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(message_of(&reply).contains("not verified"), "{}", reply.body);
    as_user(&idp, "f-sub", "frank", "frank@evil.test@example.test", true);
    assert_ne!(sign_in(&server).status, 303, "two @ never pass the domain check");
    as_user(&idp, "f-sub", "frank", "frank@example.test", true);
    assert_eq!(sign_in(&server).status, 303);
}

/// What the security review sent (M1): an error callback whose description forges a log line,
/// padded to fill the request target.
fn forged_error_callback(state: &str) -> String {
    const FORGED: &str = "2026-12-04T18:00:00.000000Z  INFO hookgate::signin: signed in \
                          user_id=admin role=proxy_admin method=password";
    let description: String =
        format!("x\n{FORGED}\n{}", "A".repeat(7800)).chars().take(7800).collect();
    format!(
        "/sso/callback?state={}&error=access_denied&error_description={}",
        encode(state),
        encode(&description)
    )
}

#[test]
fn error_callbacks_cannot_flood_or_forge_the_log_and_use_their_flow_up() {
    let idp = FakeIdp::start();
    let mut server = start(&Backend::Sqlite, &idp, "", &[]);
    let (start, flow) = begin(&server);
    let state = query_pairs(start.header("location").unwrap())["state"].clone();
    let callback = forged_error_callback(&state);
    let cookie = format!("{FLOW_COOKIE}={flow}");
    let headers = [("cookie", cookie.as_str()), ("accept", "text/html")];
    let log_before = server.logs().len();

    // The first use: the provider's refusal, shown escaped and cut short.
    let first = server.get(&callback, &headers);
    assert_eq!(first.status, 401, "{}", first.body);
    assert!(
        first.body.contains(
            "the identity provider refused the sign-in: access_denied (x\\n2026-12-04T18:00:00"
        ),
        "{}",
        first.body
    );
    assert!(first.body.contains("… (7800 characters))"), "{}", first.body);
    assert!(first.body.len() < 2000, "the page is {} bytes", first.body.len());

    // The same flow again: used up by its error callback.
    let second = server.get(&callback, &headers);
    assert_eq!(second.status, 400, "{}", second.body);
    assert!(second.body.contains("already completed or refused"), "{}", second.body);
    for _ in 0..998 {
        assert_eq!(server.get(&callback, &headers).status, 400);
    }
    // And callbacks with no flow cookie at all.
    for _ in 0..200 {
        assert_eq!(server.get("/sso/callback?code=x&state=y", &[]).status, 400);
    }

    let logs = server.logs();
    let grown = logs.len() - log_before;
    // Unbounded, 1,000 such callbacks wrote 8 MB of log; sampled, about ten lines per kind.
    assert!(grown < 16_000, "the log grew {grown} bytes:\n{}", &logs[log_before..]);
    assert!(
        logs.lines().all(|line| !line.starts_with("2026-12-04T18:00:00.000000Z")),
        "a forged line reached the log:\n{logs}"
    );
    let lines = logs[log_before..].lines().filter(|l| l.contains("OIDC callback refused")).count();
    assert!((1..=10).contains(&lines), "{lines} lines of refused callbacks");

    // The first refusal is an event with the escaped text; the flood is counted, not dropped.
    server.stop();
    let events = server.db(async |conn| sign_in_event::Entity::find().all(conn).await.unwrap());
    let refused = events
        .iter()
        .filter_map(|event| event.reason.as_deref())
        .find(|reason| reason.contains("access_denied ("))
        .expect("the provider's refusal is an event");
    assert!(refused.contains("access_denied (x\\n2026-12-04T18:00:00"), "{refused}");
    assert!(events.iter().all(|event| event.reason.as_deref().is_some_and(|r| !r.contains('\n'))));
    let counted: u64 = events
        .iter()
        .filter(|event| event.request_id == "-")
        .filter_map(|event| event.reason.as_deref()?.split_once(" refused attempt"))
        .filter_map(|(count, _)| count.parse::<u64>().ok())
        .sum();
    let one_by_one = events.iter().filter(|event| event.request_id != "-").count() as u64;
    assert_eq!(one_by_one + counted, 1200, "every refused callback is accounted for");
}

#[test]
fn an_identity_with_too_many_groups_gets_a_clear_400_not_a_database_error() {
    let idp = FakeIdp::start();
    let server = start(&Backend::Sqlite, &idp, "", &[]);
    // 40,000 names (the review's I3) of `distinct` groups.
    let groups = |distinct: usize| (0..40_000).map(|n| format!("g{}", n % distinct)).collect();
    let claims = |groups: Vec<String>| {
        serde_json::json!({"sub": "s-many", "preferred_username": "many", "email": "many@example.test",
            "email_verified": true, "groups": groups})
    };
    idp.set(Behavior { claims: claims(groups(10_001)), ..Behavior::default() });
    let reply = sign_in(&server);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert!(reply.body.contains("names 10001 groups"), "{}", reply.body);
    assert!(user_row(&server, "many").is_none());
    // Repeated names count once.
    idp.set(Behavior { claims: claims(groups(10_000)), ..Behavior::default() });
    let reply = sign_in(&server);
    assert_eq!(reply.status, 303, "{}\n{}", reply.body, server.logs());
}
