//! SCIM and access (issue 21): deprovisioning ends sessions (and, in front of LiteLLM, keys and
//! memberships) before the answer and refuses sign-ins; provisioned users are reached only
//! through the binding rules.

use hookgate::db::entity::session;
use hookgate_tests::{
    fake_idp::FakeIdp,
    fake_litellm::FakeLitellm,
    server::{Backend, TestServer, for_each_backend},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use crate::{
    oidc::{as_user, sign_in as oidc_sign_in, start as oidc_start, user_row},
    scim::{Scim, TOKEN, okta_user, patch, start},
};

#[test]
fn deprovisioning_ends_sessions_before_the_answer_and_refuses_sign_in() {
    for_each_backend(|backend| {
        let server = start(backend);
        let scim = Scim::new(&server);
        let mut erin = okta_user("erin", "Erin", "E", "00u-e");
        erin["emails"] = json!([{"value": "erin@example.test", "type": "work", "primary": true}]);
        scim.ok("POST", "/Users", Some(&erin), 201);
        let key = server.session_key("erin", &[]);
        let bearer = format!("Bearer {key}");
        assert_eq!(server.get("/user/info", &[("authorization", &bearer)]).status, 200);

        // Entra deactivates with a string boolean.
        let off = scim.ok(
            "PATCH",
            "/Users/erin",
            Some(&patch(json!([{"op": "Replace", "path": "active", "value": "False"}]))),
            200,
        );
        assert_eq!(off["active"], false);
        assert_eq!(
            server.get("/user/info", &[("authorization", &bearer)]).status,
            401,
            "the very next request"
        );
        let row = user_row(&server, "erin").unwrap();
        assert!(!row.active);
        let live = server.db(async |conn| {
            session::Entity::find()
                .filter(session::Column::UserId.eq("erin"))
                .filter(session::Column::RevokedAt.is_null())
                .all(conn)
                .await
                .unwrap()
        });
        assert!(live.is_empty(), "{live:?}");
        let refused = server.sign_in("erin", "erin@example.test", &[]);
        assert_eq!(refused.status, 403, "{}", refused.body);
        assert!(refused.body.contains("deactivated"), "{}", refused.body);

        // Okta reactivates with a replace without a path.
        scim.ok(
            "PATCH",
            "/Users/erin",
            Some(&patch(json!([{"op": "replace", "value": {"active": true}}]))),
            200,
        );
        let key = server.session_key("erin", &[]);
        let bearer = format!("Bearer {key}");
        assert_eq!(server.get("/user/info", &[("authorization", &bearer)]).status, 200);

        scim.ok("DELETE", "/Users/erin", None, 204);
        assert_eq!(server.get("/user/info", &[("authorization", &bearer)]).status, 401);
        assert!(user_row(&server, "erin").is_none());
        scim.refused("GET", "/Users/erin", None, 404, None, "no user \"erin\"");
    });
}

#[test]
fn a_provisioned_user_is_reached_by_a_verified_email_only_when_linking_is_allowed() {
    let idp = FakeIdp::start();
    for (linking, extra) in [(true, ""), (false, "  link_sso_accounts_by_email: false\n")] {
        let server = oidc_start(
            &Backend::Sqlite,
            &idp,
            &format!("  scim_token: os.environ/HOOKGATE_TEST_SCIM_TOKEN\n{extra}"),
            &[("HOOKGATE_TEST_SCIM_TOKEN", TOKEN)],
        );
        let scim = Scim::new(&server);
        scim.ok(
            "POST",
            "/Users",
            Some(&okta_user("carol@example.test", "Carol", "C", "00u-c")),
            201,
        );

        // An unverified email never reaches it.
        as_user(&idp, "mallory-sub", "mallory", "carol@example.test", false);
        assert_eq!(oidc_sign_in(&server).status, 303);
        assert!(
            user_row(&server, "carol@example.test").unwrap().sso_issuer.is_none(),
            "linking {linking}"
        );
        assert!(user_row(&server, "mallory").is_some());

        as_user(&idp, "carol-sub", "c.smith", "carol@example.test", true);
        assert_eq!(oidc_sign_in(&server).status, 303);
        let carol = user_row(&server, "carol@example.test").unwrap();
        assert_eq!(carol.sso_user_id.is_some(), linking, "bound only when linking is allowed");
        assert_eq!(user_row(&server, "c.smith").is_none(), linking, "a new account otherwise");
    }
}

/// A server in front of a fake LiteLLM, with SCIM on, and a user SCIM provisioned who then
/// signed in through the provider.
struct FrontDoorUser {
    _idp: FakeIdp,
    fake: FakeLitellm,
    server: TestServer,
    /// The key of the user's session (LiteLLM's UI key).
    session_key: String,
    /// The user's id in LiteLLM.
    litellm_user: String,
}

/// `<name>@example.test`, provisioned over SCIM (`externalId` `00u-<name>`), then signed in
/// through the provider as subject `<name>-sub` with that email, verified.
fn signed_in_behind_litellm(name: &str) -> FrontDoorUser {
    let idp = FakeIdp::start();
    let fake = FakeLitellm::start();
    let server = oidc_start(
        &Backend::Sqlite,
        &idp,
        &format!(
            "  litellm_proxy_url: \"{}\"\n  scim_token: os.environ/HOOKGATE_TEST_SCIM_TOKEN\n",
            fake.url()
        ),
        &[("HOOKGATE_TEST_SCIM_TOKEN", TOKEN)],
    );
    fake.set_master_key(&server.master_key);
    let email = format!("{name}@example.test");
    let user = okta_user(&email, name, "Test", &format!("00u-{name}"));
    Scim::new(&server).ok("POST", "/Users", Some(&user), 201);
    as_user(&idp, &format!("{name}-sub"), name, &email, true);
    let signed_in = oidc_sign_in(&server);
    assert_eq!(signed_in.status, 303, "{}\n{}", signed_in.body, server.logs());
    let token = signed_in.token_cookie().expect("a token cookie");
    let session_key = server.claims(&token)["key"].as_str().unwrap().to_owned();
    let litellm_user = fake
        .keys()
        .iter()
        .find(|k| k.key == session_key)
        .expect("the session key in LiteLLM")
        .user_id
        .clone();
    FrontDoorUser { _idp: idp, fake, server, session_key, litellm_user }
}

#[test]
fn in_front_of_litellm_deprovisioning_deletes_keys_and_memberships_there_first() {
    let FrontDoorUser { fake, server, session_key, litellm_user, .. } =
        signed_in_behind_litellm("fay");
    let scim = Scim::new(&server);
    let api_key = fake.add_key(&litellm_user);
    fake.add_team("research");
    let added = fake_member_add(&fake, &server, "research", &litellm_user);
    assert!(added, "set up: a LiteLLM team membership");
    assert!(fake.is_live(&api_key) && fake.is_live(&session_key));

    // LiteLLM failing: nothing changes in hookgate, and the answer says so.
    fake.fail("/key/list", 500, "database down");
    scim.refused(
        "PATCH",
        "/Users/fay@example.test",
        Some(&patch(json!([{"op": "replace", "value": {"active": false}}]))),
        502,
        None,
        "nothing was changed in hookgate",
    );
    assert!(user_row(&server, "fay@example.test").unwrap().active);
    fake.succeed("/key/list");

    scim.ok(
        "PATCH",
        "/Users/fay@example.test",
        Some(&patch(json!([{"op": "replace", "value": {"active": false}}]))),
        200,
    );
    assert!(!fake.is_live(&api_key), "the user's own LiteLLM key is deleted");
    assert!(!fake.is_live(&session_key), "and its session key");
    assert!(!fake.members("research").contains(&litellm_user), "{:?}", fake.members("research"));
    let bearer = format!("Bearer {session_key}");
    assert_eq!(server.get("/user/info", &[("authorization", &bearer)]).status, 401);
}

/// A SCIM DELETE in front of LiteLLM: LiteLLM first (every key the user owns there, page after
/// page, and the session's), or 502 with nothing changed in hookgate; the row goes only after.
#[test]
fn in_front_of_litellm_a_scim_delete_deletes_every_key_there_first() {
    let FrontDoorUser { fake, server, session_key, litellm_user, .. } =
        signed_in_behind_litellm("gia");
    let scim = Scim::new(&server);
    // More keys than one page of LiteLLM's key list holds (100).
    let api_keys: Vec<String> = (0..150).map(|_| fake.add_key(&litellm_user)).collect();
    let bearer = format!("Bearer {session_key}");

    fake.fail("/key/list", 500, "database down");
    scim.refused(
        "DELETE",
        "/Users/gia@example.test",
        None,
        502,
        None,
        "nothing was changed in hookgate",
    );
    assert!(user_row(&server, "gia@example.test").is_some(), "the row stays");
    assert_eq!(server.get("/user/info", &[("authorization", &bearer)]).status, 200);
    assert!(api_keys.iter().all(|key| fake.is_live(key)));
    fake.succeed("/key/list");

    scim.ok("DELETE", "/Users/gia@example.test", None, 204);
    let live: Vec<&String> = api_keys.iter().filter(|key| fake.is_live(key)).collect();
    assert!(live.is_empty(), "{} of 150 keys left live in LiteLLM", live.len());
    assert!(!fake.is_live(&session_key), "and the session key");
    assert!(user_row(&server, "gia@example.test").is_none());
    assert_eq!(server.get("/user/info", &[("authorization", &bearer)]).status, 401);
}

/// In front of LiteLLM, the members a SCIM group push adds or removes are added to or removed
/// from LiteLLM's team first: LiteLLM refusing is a 502 and hookgate's membership stays as it
/// was.
#[test]
fn in_front_of_litellm_scim_group_members_follow_in_litellm_first() {
    let FrontDoorUser { fake, server, litellm_user, .. } = signed_in_behind_litellm("hal");
    let scim = Scim::new(&server);
    server.create_team("research");
    fake.add_team("research");
    let member = |op: &str| {
        patch(json!([{"op": op, "path": "members", "value": [{"value": "hal@example.test"}]}]))
    };
    let in_hookgate = || server.memberships("hal@example.test");
    let refused = "HTTP 500: team table locked; nothing was changed in hookgate";

    fake.fail("/team/member_add", 500, "team table locked");
    scim.refused("PATCH", "/Groups/research", Some(&member("add")), 502, None, refused);
    assert!(in_hookgate().is_empty(), "{:?}", in_hookgate());
    fake.succeed("/team/member_add");
    scim.ok("PATCH", "/Groups/research", Some(&member("add")), 200);
    assert!(fake.members("research").contains(&litellm_user), "{:?}", fake.members("research"));
    assert_eq!(in_hookgate(), [("research".to_owned(), "scim".to_owned())]);

    let remove = patch(json!([{"op": "remove", "path": "members[value eq \"hal@example.test\"]"}]));
    fake.fail("/team/member_delete", 500, "team table locked");
    scim.refused("PATCH", "/Groups/research", Some(&remove), 502, None, refused);
    assert_eq!(in_hookgate(), [("research".to_owned(), "scim".to_owned())], "still there");
    fake.succeed("/team/member_delete");
    scim.ok("PATCH", "/Groups/research", Some(&remove), 200);
    assert!(!fake.members("research").contains(&litellm_user), "{:?}", fake.members("research"));
    assert!(in_hookgate().is_empty(), "{:?}", in_hookgate());
}

/// Adds `user` to `team` in the fake LiteLLM as its admin would (through its API).
fn fake_member_add(fake: &FakeLitellm, server: &TestServer, team: &str, user: &str) -> bool {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let reply = agent
        .post(format!("{}/team/member_add", fake.url()))
        .header("authorization", &server.master_auth())
        .send_json(json!({"team_id": team, "member": [{"role": "user", "user_id": user}]}))
        .expect("the fake answers");
    reply.status().as_u16() == 200 && fake.members(team).contains(&user.to_owned())
}

#[test]
fn the_password_login_is_refused_for_a_deactivated_account_and_its_own_is_not_scims() {
    let password = "a-long-ui-password-for-tests";
    let config = crate::scim::config("");
    let server = TestServer::start_with(
        &Backend::Sqlite,
        hookgate_tests::server::ServerOptions {
            config: &config,
            env: &[
                ("HOOKGATE_TEST_SCIM_TOKEN", TOKEN),
                ("UI_PASSWORD", password),
                ("PROXY_ADMIN_ID", "root"),
            ],
            ..Default::default()
        },
    );
    let scim = Scim::new(&server);
    let mut root = okta_user("root", "Root", "Admin", "00u-r");
    root["emails"] = json!([{"value": "root@example.test", "primary": true}]);
    scim.ok("POST", "/Users", Some(&root), 201);
    server.password_cookie(password);
    scim.ok(
        "PATCH",
        "/Users/root",
        Some(&patch(json!([{"op": "replace", "value": {"active": false}}]))),
        200,
    );
    let refused = server.post_form(
        "/login",
        &format!("username=admin&password={password}"),
        &[("origin", &server.origin())],
    );
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("deactivated"), "{}", refused.body);
    assert!(refused.token_cookie().is_none());

    // LiteLLM's password-login user is never SCIM's: not listed, not reachable, not creatable.
    let plain = TestServer::start_with(
        &Backend::Sqlite,
        hookgate_tests::server::ServerOptions {
            config: &config,
            env: &[("HOOKGATE_TEST_SCIM_TOKEN", TOKEN), ("UI_PASSWORD", password)],
            ..Default::default()
        },
    );
    plain.password_cookie(password);
    assert!(user_row(&plain, "default_user_id").is_some());
    let scim = Scim::new(&plain);
    assert_eq!(scim.get("/Users")["totalResults"], json!(0));
    scim.refused("GET", "/Users/default_user_id", None, 404, None, "no user");
    let off = patch(json!([{"op": "replace", "value": {"active": false}}]));
    scim.refused("PATCH", "/Users/default_user_id", Some(&off), 404, None, "no user");
    assert!(user_row(&plain, "default_user_id").unwrap().active);
}

/// A Microsoft sign-in whose `oid` is the `externalId` SCIM gave the `PROXY_ADMIN_ID` account
/// never reaches that account (it is reached only through its own binding): whoever holds the
/// SCIM token cannot hand the admin account to a directory user that way.
#[test]
fn a_microsoft_oid_never_reaches_the_proxy_admin_account() {
    use hookgate_tests::{fake_idp::Behavior, server::ServerOptions};
    let idp = FakeIdp::start();
    let env = idp.microsoft_env();
    let mut pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    pairs.extend([("HOOKGATE_TEST_SCIM_TOKEN", TOKEN), ("PROXY_ADMIN_ID", "root")]);
    let config = crate::oidc::config("  scim_token: os.environ/HOOKGATE_TEST_SCIM_TOKEN\n");
    let server = TestServer::start_with(
        &Backend::Sqlite,
        ServerOptions { config: &config, env: &pairs, ..ServerOptions::default() },
    );
    let scim = Scim::new(&server);
    let mut root = okta_user("root", "Root", "Admin", "alice-oid");
    root["emails"] = json!([{"value": "alice@example.test", "primary": true}]);
    scim.ok("POST", "/Users", Some(&root), 201);

    crate::oidc_groups::as_microsoft_user(
        &idp,
        json!({"oid": "alice-oid", "groups": []}),
        Behavior::default(),
    );
    let reply = oidc_sign_in(&server);
    let root = user_row(&server, "root").unwrap();
    assert_eq!((root.sso_issuer, root.sso_user_id), (None, None), "still unbound");
    let sessions = server.db(async |conn| {
        session::Entity::find().filter(session::Column::UserId.eq("root")).all(conn).await.unwrap()
    });
    assert!(sessions.is_empty(), "no session for the admin account: {sessions:?}");
    if let Some(token) = reply.token_cookie() {
        assert_ne!(server.claims(&token)["user_id"], "root", "{}", server.logs());
    }
}

/// Only Microsoft's `oid` links a sign-in to the account SCIM provisioned with that
/// `externalId`: another provider's `oid` claim (in its ID token and its userinfo) is anyone's
/// to send, and reaches nothing.
#[test]
fn another_providers_oid_claim_never_reaches_a_provisioned_account() {
    use hookgate_tests::fake_idp::Behavior;
    let idp = FakeIdp::start();
    let scim_token = "  scim_token: os.environ/HOOKGATE_TEST_SCIM_TOKEN\n";
    let server =
        oidc_start(&Backend::Sqlite, &idp, scim_token, &[("HOOKGATE_TEST_SCIM_TOKEN", TOKEN)]);
    let scim = Scim::new(&server);
    scim.ok("POST", "/Users", Some(&okta_user("victim@example.test", "V", "Ictim", "obj-1")), 201);

    idp.set(Behavior {
        claims: json!({
            "sub": "mallory-sub",
            "preferred_username": "mallory",
            "email": "mallory@example.test",
            "email_verified": false,
            "oid": "obj-1",
            "groups": [],
        }),
        id_token_claims: json!({"oid": "obj-1"}),
        ..Behavior::default()
    });
    let reply = oidc_sign_in(&server);
    assert!(reply.status == 303 || reply.status == 403, "{}\n{}", reply.body, server.logs());
    let victim = user_row(&server, "victim@example.test").unwrap();
    assert_eq!((victim.sso_issuer, victim.sso_user_id), (None, None), "still unbound");
    let sessions = server.db(async |conn| {
        session::Entity::find()
            .filter(session::Column::UserId.eq("victim@example.test"))
            .all(conn)
            .await
            .unwrap()
    });
    assert!(sessions.is_empty(), "no session for the provisioned account: {sessions:?}");
}

#[test]
fn a_microsoft_sign_in_reaches_the_account_entra_provisioned_for_its_object_id() {
    use hookgate_tests::{fake_idp::Behavior, server::ServerOptions};
    let idp = FakeIdp::start();
    for_each_backend(|backend| {
        let env = idp.microsoft_env();
        let mut pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        pairs.push(("HOOKGATE_TEST_SCIM_TOKEN", TOKEN));
        let config = crate::oidc::config("  scim_token: os.environ/HOOKGATE_TEST_SCIM_TOKEN\n");
        let server = TestServer::start_with(
            backend,
            ServerOptions { config: &config, env: &pairs, ..ServerOptions::default() },
        );
        let scim = Scim::new(&server);
        // What Entra's default mapping sends: userName the UPN, externalId the object id.
        let mut alice = okta_user("alice@example.test", "Alice", "Liddell", "alice-oid");
        alice["emails"] = json!([{"value": "alice@example.test", "type": "work", "primary": true}]);
        scim.ok("POST", "/Users", Some(&alice), 201);

        // Microsoft's ID token proves the object id (`oid`); it carries no email_verified, and
        // the identity's own id (Graph's `id`) is not the UPN.
        crate::oidc_groups::as_microsoft_user(
            &idp,
            json!({"oid": "alice-oid", "groups": []}),
            Behavior::default(),
        );
        let reply = oidc_sign_in(&server);
        assert_eq!(reply.status, 303, "{}\n{}", reply.body, server.logs());
        let row = user_row(&server, "alice@example.test").unwrap();
        assert_eq!(row.sso_user_id.as_deref(), Some("alice-ms-sub"), "bound at the first sign-in");
        assert!(user_row(&server, "alice-oid").is_none(), "no second account");

        // Deactivated by Entra: the Microsoft sign-in reaches the account, and is refused.
        scim.ok(
            "PATCH",
            "/Users/alice@example.test",
            Some(&patch(json!([{"op": "Replace", "path": "active", "value": "False"}]))),
            200,
        );
        let refused = oidc_sign_in(&server);
        assert_eq!(refused.status, 403, "{}", refused.body);
        assert!(user_row(&server, "alice-oid").is_none(), "no way around the deactivation");
    });
}
