//! One identity rule for hookgate's accounts and LiteLLM's (security review 3, H1 and H3), and
//! every access change written through to LiteLLM before hookgate answers (H2): the review's
//! attacks as it ran them, then varied.

use hookgate::db::entity::{session, team_member};
use hookgate_tests::{
    fake_idp::FakeIdp,
    fake_litellm::FakeLitellm,
    server::{Backend, Reply, ServerOptions, TestServer, for_each_backend},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::oidc::{as_user, sign_in as oidc_sign_in, start as oidc_start, user_row};

/// An OIDC server (the example `custom_sso` hook, no header hook) in front of `fake`.
fn oidc_front_door(backend: &Backend, idp: &FakeIdp, fake: &FakeLitellm) -> TestServer {
    let extra = format!("  litellm_proxy_url: \"{}\"\n", fake.url());
    let server = oidc_start(backend, idp, &extra, &[]);
    fake.set_master_key(&server.master_key);
    server
}

fn master(server: &TestServer) -> [(&'static str, String); 1] {
    [("authorization", server.master_auth())]
}

fn post(server: &TestServer, path: &str, body: Value) -> Reply {
    let auth = master(server);
    server.post_json(path, &body, &[(auth[0].0, auth[0].1.as_str())])
}

/// The `key` claim of a sign-in's cookie.
fn key_of(server: &TestServer, reply: &Reply) -> String {
    let token = reply.token_cookie().unwrap_or_else(|| panic!("a token cookie: {reply:?}"));
    server.claims(&token)["key"].as_str().expect("a key").to_owned()
}

fn keys_for(fake: &FakeLitellm, user_id: &str) -> usize {
    fake.keys().iter().filter(|key| key.user_id == user_id).count()
}

#[test]
fn litellm_users_are_reached_only_through_their_binding_or_a_verified_email() {
    for_each_backend(|backend| {
        let idp = FakeIdp::start();
        let fake = FakeLitellm::start();
        let server = oidc_front_door(backend, &idp, &fake);
        // LiteLLM's own users: an invited admin bound to no one, an admin bound to LiteLLM's
        // own SSO, and an invited user.
        fake.add_user(json!({"user_id": "u-cfo-1234", "user_email": "CFO@corp.test", "user_role": "proxy_admin", "sso_user_id": null, "max_budget": 100.0}));
        fake.add_user(json!({"user_id": "admin", "user_email": "it-admin@corp.test", "user_role": "proxy_admin", "sso_user_id": "litellm-own-sso-xyz"}));
        fake.add_user(json!({"user_id": "dana", "user_email": "dana@corp.test", "user_role": "internal_user"}));
        let before = fake.users();
        let unchanged = |id: &str| {
            let then = before.iter().find(|row| row["user_id"] == id).cloned();
            assert_eq!(fake.user(id), then, "LiteLLM's {id} is as it was");
            assert_eq!(keys_for(&fake, id), 0, "no key was minted for {id}");
        };

        // 1. The review's first attack: an identity whose UNVERIFIED email is the CFO's gets
        //    an account of its own; the CFO's is not looked up by that email, let alone taken.
        as_user(&idp, "s-mal2", "mal2", "cfo@corp.test", false);
        let reply = oidc_sign_in(&server);
        assert_eq!(reply.status, 303, "{}\n{}", reply.body, server.logs());
        assert_eq!(server.claims(&reply.token_cookie().unwrap())["user_id"], "mal2");
        unchanged("u-cfo-1234");
        assert!(
            fake.requests().iter().all(|r| !r.path_and_query.contains("user_email=cfo")),
            "an unverified email is never a lookup key"
        );
        let created = fake.user("mal2").expect("mal2 in LiteLLM");
        assert_eq!(created["user_email"], Value::Null, "an unverified email is never written");

        // 2. The second: preferred_username equal to a LiteLLM id bound to LiteLLM's own SSO.
        as_user(&idp, "s-mal3", "admin", "mal3@evil.test", true);
        let reply = oidc_sign_in(&server);
        assert_eq!(reply.status, 403, "{}\n{}", reply.body, server.logs());
        assert!(reply.body.contains("not linked to your sign-in"), "{}", reply.body);
        assert!(reply.token_cookie().is_none());
        unchanged("admin");
        assert!(user_row(&server, "admin").is_none(), "nothing written in hookgate either");

        // 3. Varied: an unbound LiteLLM user reached by id, with another (verified) email, or
        //    with its own email unverified.
        for (sub, email, verified) in
            [("s-eve", "eve@evil.test", true), ("s-eve2", "dana@corp.test", false)]
        {
            as_user(&idp, sub, "dana", email, verified);
            let reply = oidc_sign_in(&server);
            assert_eq!(reply.status, 403, "{email} {verified}: {}", reply.body);
            unchanged("dana");
        }

        // 4. The owner: id and verified email match; linked, and marked with the binding.
        as_user(&idp, "s-dana", "dana", "Dana@corp.test", true);
        let reply = oidc_sign_in(&server);
        assert_eq!(reply.status, 303, "{}\n{}", reply.body, server.logs());
        let dana = fake.user("dana").unwrap();
        let binding = format!("hookgate:{}#s-dana", idp.issuer());
        assert_eq!(dana["metadata"]["hookgate_binding"], binding.as_str());
        assert_eq!(keys_for(&fake, "dana"), 1);

        // 5. Then another identity with dana's verified email reaches her by email only: bound
        //    to another identity now, so refused.
        as_user(&idp, "s-dana-2", "dana.two", "dana@corp.test", true);
        let reply = oidc_sign_in(&server);
        assert_eq!(reply.status, 403, "{}\n{}", reply.body, server.logs());
        assert_eq!(keys_for(&fake, "dana"), 1);
        assert!(fake.user("dana.two").is_none());

        // Every refusal is an event with the detail, for the administrator.
        let refused: Vec<_> =
            server.events().into_iter().filter(|e| e.outcome == "refused").collect();
        assert_eq!(refused.len(), 4, "{refused:?}");
        assert!(
            refused.iter().all(|e| e.reason.as_deref().unwrap_or("").contains("LiteLLM's user"))
        );
    });
}

#[test]
fn pre_provisioned_accounts_need_a_verified_email_or_an_administrators_binding() {
    for_each_backend(|backend| {
        let idp = FakeIdp::start();
        let server = oidc_start(backend, &idp, "", &[]);
        let reply = post(
            &server,
            "/user/new",
            json!({"user_id": "boss", "user_email": "boss@corp.test", "user_role": "proxy_admin"}),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);

        // The review's H3: preferred_username "boss", another unverified email.
        for (sub, email, verified) in [
            ("s-eve", "eve@evil.test", false),
            ("s-eve", "eve@evil.test", true),
            ("s-eve", "boss@corp.test", false),
        ] {
            as_user(&idp, sub, "boss", email, verified);
            let reply = oidc_sign_in(&server);
            assert_eq!(reply.status, 403, "{email} {verified}: {}", reply.body);
            assert!(reply.body.contains("not linked to your sign-in"), "{}", reply.body);
            let boss = user_row(&server, "boss").unwrap();
            assert_eq!((boss.sso_issuer, boss.sso_user_id), (None, None), "not bound");
            assert_eq!(boss.user_email.as_deref(), Some("boss@corp.test"));
            assert_eq!(boss.user_role.as_deref(), Some("proxy_admin"));
        }
        let sessions = server.db(async |conn| session::Entity::find().all(conn).await.unwrap());
        assert!(sessions.is_empty(), "{sessions:?}");

        // The owner proves it with the verified email.
        as_user(&idp, "s-boss", "boss", "boss@corp.test", true);
        assert_eq!(oidc_sign_in(&server).status, 303);
        assert_eq!(user_row(&server, "boss").unwrap().sso_user_id.as_deref(), Some("s-boss"));

        // An administrator pre-binds an account: its identity signs in whatever its name.
        let issuer = idp.issuer().to_owned();
        let reply = post(
            &server,
            "/user/new",
            json!({"user_id": "ops-admin", "user_role": "proxy_admin", "sso_issuer": issuer, "sso_user_id": "s-ops"}),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.json()["sso_user_id"], "s-ops");
        as_user(&idp, "s-ops", "another-name", "ops@corp.test", false);
        let reply = oidc_sign_in(&server);
        assert_eq!(reply.status, 303, "{}", reply.body);
        assert_eq!(server.claims(&reply.token_cookie().unwrap())["user_id"], "ops-admin");
        as_user(&idp, "s-someone", "ops-admin", "ops@corp.test", true);
        assert_eq!(oidc_sign_in(&server).status, 403, "bound to s-ops");

        // Bad bindings: half of one, a subject another user has.
        let half = post(&server, "/user/new", json!({"user_id": "x", "sso_user_id": "s-x"}));
        assert_eq!(half.status, 400, "{}", half.body);
        assert!(half.body.contains("give both"), "{}", half.body);
        let taken = post(
            &server,
            "/user/new",
            json!({"user_id": "y", "sso_issuer": issuer, "sso_user_id": "s-ops"}),
        );
        assert_eq!(taken.status, 409, "{}", taken.body);
        assert!(taken.body.contains("ops-admin"), "{}", taken.body);
        assert!(user_row(&server, "x").is_none() && user_row(&server, "y").is_none());

        // /user/update links an account made without an email.
        assert_eq!(post(&server, "/user/new", json!({"user_id": "carl"})).status, 200);
        as_user(&idp, "s-carl", "carl", "carl@corp.test", true);
        assert_eq!(oidc_sign_in(&server).status, 403, "no stored email to prove");
        let link = json!({"user_id": "carl", "sso_issuer": issuer, "sso_user_id": "s-carl"});
        assert_eq!(post(&server, "/user/update", link).status, 200);
        assert_eq!(oidc_sign_in(&server).status, 303);
        let unlink = json!({"user_id": "carl", "sso_issuer": null, "sso_user_id": null});
        let reply = post(&server, "/user/update", unlink);
        assert_eq!(reply.json()["sso_user_id"], Value::Null, "{}", reply.body);
    });
}

#[test]
fn header_sign_ins_follow_the_same_rule() {
    let server = TestServer::start(&Backend::Sqlite);
    assert_eq!(post(&server, "/user/new", json!({"user_id": "hal"})).status, 200);
    let reply = server.sign_in("hal", "hal@corp.test", &[]);
    assert_eq!(reply.status, 403, "no email to prove it: {}", reply.body);
    let with_email = json!({"user_id": "ida", "user_email": "ida@corp.test"});
    assert_eq!(post(&server, "/user/new", with_email).status, 200);
    assert_eq!(server.sign_in("ida", "ida@corp.test", &[]).status, 303, "the proxy vouches");
    let link = json!({"user_id": "hal", "sso_issuer": "oauth-proxy", "sso_user_id": "hal"});
    assert_eq!(post(&server, "/user/update", link).status, 200);
    assert_eq!(server.sign_in("hal", "hal@corp.test", &[]).status, 303);
}

/// Issue 19's schema trap: `sso_user_id` was unique on its own while a binding is (issuer,
/// subject), so the same subject vouched for by a second issuer got 409 at every sign-in (the
/// new account's insert hit the other issuer's row, read as "changed meanwhile", forever) and
/// could not be pre-bound either.
#[test]
fn the_same_subject_from_two_issuers_is_two_accounts() {
    for_each_backend(|backend| {
        let server = TestServer::start_with(
            backend,
            ServerOptions { env: &[("UI_PASSWORD", "ui-secret-123456")], ..Default::default() },
        );
        let idp = "https://idp.corp.test";
        // An administrator binds an account to the OIDC identity `kim`.
        let oidc_kim = json!({"user_id": "kim-oidc", "sso_issuer": idp, "sso_user_id": "kim"});
        let reply = post(&server, "/user/new", oidc_kim);
        assert_eq!(reply.status, 200, "{}", reply.body);

        // The OAuth proxy vouches for a `kim` too: another identity, a new account of its own.
        let reply = server.sign_in("kim", "kim@corp.test", &[]);
        assert_eq!(reply.status, 303, "{}\n{}", reply.body, server.logs());
        assert_eq!(server.claims(&reply.token_cookie().unwrap())["user_id"], "kim");
        let bindings = |user_id: &str| {
            let row = user_row(&server, user_id).unwrap_or_else(|| panic!("no user {user_id}"));
            (row.sso_issuer, row.sso_user_id)
        };
        assert_eq!(bindings("kim"), (Some("oauth-proxy".to_owned()), Some("kim".to_owned())));
        assert_eq!(bindings("kim-oidc"), (Some(idp.to_owned()), Some("kim".to_owned())));
        // Each identity signs into its own account again.
        let again = server.sign_in("kim", "kim@corp.test", &[]);
        assert_eq!(server.claims(&again.token_cookie().unwrap())["user_id"], "kim");
        assert_eq!(server.users().len(), 2);
        let allowed: Vec<Option<String>> = server
            .events()
            .into_iter()
            .filter(|event| event.outcome == "allowed")
            .map(|event| event.user_id)
            .collect();
        assert_eq!(allowed, [Some("kim".to_owned()), Some("kim".to_owned())]);

        // Pre-binding: a third issuer's `kim` is a third account; a pair that is taken is 409,
        // naming its account, through /user/new, /user/update and the UI alike.
        let third =
            json!({"user_id": "kim-3", "sso_issuer": "https://other.test", "sso_user_id": "kim"});
        assert_eq!(post(&server, "/user/new", third).status, 200);
        let taken = json!({"user_id": "kim-4", "sso_issuer": "oauth-proxy", "sso_user_id": "kim"});
        let reply = post(&server, "/user/new", taken);
        assert_eq!(reply.status, 409, "{}", reply.body);
        assert!(reply.body.contains(r#"already linked to the user \"kim\""#), "{}", reply.body);
        assert!(user_row(&server, "kim-4").is_none());
        let relink = json!({"user_id": "kim-3", "sso_issuer": idp, "sso_user_id": "kim"});
        let reply = post(&server, "/user/update", relink);
        assert_eq!(reply.status, 409, "{}", reply.body);
        assert!(reply.body.contains("kim-oidc"), "{}", reply.body);
        let cookie = server.password_cookie("ui-secret-123456");
        let headers = [("cookie", cookie.as_str()), ("origin", &server.origin())];
        let form = |issuer: &str| {
            format!(
                "user_id=kim-3&user_role=internal_user&models=&max_budget=&budget_duration=\
                 &sso_issuer={}&sso_user_id=kim",
                hookgate_tests::fake_idp::encode(issuer)
            )
        };
        let reply = server.post_form("/ui/user", &form(idp), &headers);
        assert!(
            reply.body.contains("That identity is already linked to the user"),
            "{}",
            reply.body
        );
        assert!(reply.body.contains("kim-oidc"), "{}", reply.body);
        assert_eq!(
            bindings("kim-3"),
            (Some("https://other.test".to_owned()), Some("kim".to_owned()))
        );
        let reply = server.post_form("/ui/user", &form("https://fourth.test"), &headers);
        assert!(reply.status < 400, "{} {}", reply.status, reply.body);
        assert_eq!(
            bindings("kim-3"),
            (Some("https://fourth.test".to_owned()), Some("kim".to_owned()))
        );
        assert_eq!(bindings("kim-oidc"), (Some(idp.to_owned()), Some("kim".to_owned())));
    });
}

#[test]
fn access_changes_reach_litellm_before_hookgate_answers() {
    for_each_backend(|backend| {
        let fake = FakeLitellm::start();
        let server = crate::front_door::front_door(backend, &fake, &[]);
        let first = server.sign_in("dave", "dave@corp.test", &["admins"]);
        let key = key_of(&server, &first);
        assert_eq!(fake.user("dave").unwrap()["user_role"], "proxy_admin");
        fake.clear_requests();

        // The review's H2: a demotion shows in LiteLLM before the call returns.
        let reply = post(
            &server,
            "/user/update",
            json!({"user_id": "dave", "user_role": "internal_user_viewer"}),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(fake.user("dave").unwrap()["user_role"], "internal_user_viewer");
        let updates = fake.requests_to("/user/update");
        assert_eq!(updates.len(), 1);
        assert_eq!(
            updates[0].body,
            json!({"user_id": "dave", "user_role": "internal_user_viewer"})
        );

        // LiteLLM refusing: nothing changes in hookgate, and the answer says LiteLLM failed.
        fake.fail("/user/update", 500, "db locked");
        let reply = post(&server, "/user/update", json!({"user_id": "dave", "max_budget": 5.0}));
        assert_eq!(reply.status, 502, "{}", reply.body);
        assert!(reply.body.contains("nothing was changed"), "{}", reply.body);
        assert_eq!(user_row_of(&server, "dave")["max_budget"], json!(null));
        fake.succeed("/user/update");

        // A change of models reaches LiteLLM and signs the user out there and here (the
        // session key carries the models it was minted with).
        let reply = post(&server, "/user/update", json!({"user_id": "dave", "models": ["gpt-4o"]}));
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(fake.user("dave").unwrap()["models"], json!(["gpt-4o"]));
        assert!(!fake.is_live(&key));
        let bearer = format!("Bearer {key}");
        assert_eq!(server.get("/user/info", &[("authorization", &bearer)]).status, 401);

        // Team membership, both ways; a refusal keeps hookgate's membership.
        let key = key_of(&server, &server.sign_in("dave", "dave@corp.test", &[]));
        server.create_team("research");
        fake.add_team("research");
        let add = json!({"team_id": "research", "member": {"user_id": "dave"}});
        assert_eq!(post(&server, "/team/member_add", add).status, 200);
        assert_eq!(fake.members("research"), ["dave"]);
        fake.fail("/team/member_delete", 500, "try later");
        let remove = json!({"team_id": "research", "user_id": "dave"});
        assert_eq!(post(&server, "/team/member_delete", remove.clone()).status, 502);
        assert_eq!(memberships(&server, "dave"), ["research"]);
        fake.succeed("/team/member_delete");
        assert_eq!(post(&server, "/team/member_delete", remove).status, 200);
        assert!(fake.members("research").is_empty());
        assert!(memberships(&server, "dave").is_empty());

        // Deletion: LiteLLM refusing deletes nothing; then the keys go first, the user after.
        fake.fail("/key/delete", 500, "try later");
        let delete = json!({"user_ids": ["dave"]});
        assert_eq!(post(&server, "/user/delete", delete.clone()).status, 502);
        assert!(user_row(&server, "dave").is_some());
        assert!(fake.is_live(&key));
        fake.succeed("/key/delete");
        let reply = post(&server, "/user/delete", delete);
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(!fake.is_live(&key), "LiteLLM refuses the deleted user's session key");
        assert!(user_row(&server, "dave").is_none());
        // Sign out everywhere still answers for an id with no row.
        let reply = post(&server, "/session/revoke", json!({"user_id": "dave"}));
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.json()["revoked_sessions"], 0);

        // A user who never signed in has no LiteLLM user: nothing is sent; and a LiteLLM user
        // of the same id that is not hookgate's is never touched.
        fake.add_user(
            json!({"user_id": "nat", "user_role": "proxy_admin", "sso_user_id": "litellm-own"}),
        );
        assert_eq!(post(&server, "/user/new", json!({"user_id": "nat"})).status, 200);
        fake.clear_requests();
        let reply =
            post(&server, "/user/update", json!({"user_id": "nat", "user_role": "internal_user"}));
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(fake.requests_to("/user/update").is_empty());
        assert_eq!(fake.user("nat").unwrap()["user_role"], "proxy_admin");
    });
}

#[test]
fn the_admin_uis_edit_reaches_litellm_too() {
    let fake = FakeLitellm::start();
    let server = crate::front_door::front_door(
        &Backend::Sqlite,
        &fake,
        &[("UI_PASSWORD", "ui-secret-123456")],
    );
    assert_eq!(server.sign_in("erin", "erin@corp.test", &[]).status, 303);
    let cookie = server.password_cookie("ui-secret-123456");
    let form =
        "user_id=erin&user_role=proxy_admin_viewer&models=&max_budget=2.5&budget_duration=7d";
    let reply =
        server.post_form("/ui/user", form, &[("cookie", &cookie), ("origin", &server.origin())]);
    assert!(reply.status < 400, "{} {}", reply.status, reply.body);
    let erin = fake.user("erin").unwrap();
    assert_eq!(erin["user_role"], "proxy_admin_viewer");
    assert_eq!(
        (erin["max_budget"].clone(), erin["budget_duration"].clone()),
        (json!(2.5), json!("7d"))
    );

    fake.fail("/user/update", 503, "maintenance");
    let form = "user_id=erin&user_role=internal_user&models=&max_budget=2.5&budget_duration=7d";
    let reply =
        server.post_form("/ui/user", form, &[("cookie", &cookie), ("origin", &server.origin())]);
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert_eq!(user_row_of(&server, "erin")["user_role"], "proxy_admin_viewer");
}

/// When LiteLLM took a change and hookgate's own write then fails, the change is undone in
/// LiteLLM: a second `/user/update` puts the old values back, and the answer says the database
/// failed. (A trigger refuses every update of `users` here; reads still work.)
#[test]
fn a_litellm_change_is_undone_when_hookgates_write_fails() {
    let fake = FakeLitellm::start();
    let server = crate::front_door::front_door(&Backend::Sqlite, &fake, &[]);
    let reply = server.sign_in("uma", "uma@corp.test", &[]);
    assert_eq!(reply.status, 303, "{}\n{}", reply.body, server.logs());
    let before = fake.user("uma").unwrap()["user_role"].clone();
    assert_ne!(before, json!("proxy_admin"));
    fake.clear_requests();
    server.db(async |conn| {
        use sea_orm::ConnectionTrait;
        conn.execute_unprepared(
            "CREATE TRIGGER refuse_updates BEFORE UPDATE ON users \
             BEGIN SELECT RAISE(ABORT, 'updates refused by the test'); END",
        )
        .await
        .unwrap();
    });

    let reply =
        post(&server, "/user/update", json!({"user_id": "uma", "user_role": "proxy_admin"}));
    assert_eq!(reply.status, 503, "{}\n{}", reply.body, server.logs());
    let updates: Vec<Value> =
        fake.requests_to("/user/update").into_iter().map(|request| request.body).collect();
    assert_eq!(
        updates,
        [
            json!({"user_id": "uma", "user_role": "proxy_admin"}),
            json!({"user_id": "uma", "user_role": before}),
        ],
        "the change, then its undoing"
    );
    assert_eq!(fake.user("uma").unwrap()["user_role"], before);
    assert_eq!(user_row_of(&server, "uma")["user_role"], before);
}

fn user_row_of(server: &TestServer, user_id: &str) -> Value {
    let auth = master(server);
    let reply =
        server.get(&format!("/user/info?user_id={user_id}"), &[(auth[0].0, auth[0].1.as_str())]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["user_info"].clone()
}

fn memberships(server: &TestServer, user_id: &str) -> Vec<String> {
    let user_id = user_id.to_owned();
    server.db(async move |conn| {
        team_member::Entity::find()
            .filter(team_member::Column::UserId.eq(user_id))
            .all(conn)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.team_id)
            .collect()
    })
}
