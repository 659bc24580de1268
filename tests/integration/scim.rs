//! SCIM 2.0 at `/scim/v2` (issue 21): the requests Okta and Entra ID send, the token, discovery,
//! and bad input refused with SCIM errors and nothing written. Deprovisioning and sign-in are in
//! `scim_access.rs`, which shares the helpers here.

use hookgate::db::entity::{team, team_member, user};
use hookgate_tests::server::{Backend, Reply, ServerOptions, TestServer, for_each_backend};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::oidc::user_row;

pub(crate) const TOKEN: &str = "scim-test-token-0123456789";
pub(crate) const USER: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
const GROUP: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub(crate) const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// The seed config with a SCIM token from the environment (`os.environ/`), plus `extra`.
pub(crate) fn config(extra: &str) -> String {
    hookgate_tests::SEED_CONFIG.replace(
        "  trusted_proxy_ranges: [\"127.0.0.1/32\"]\n",
        &format!("  trusted_proxy_ranges: [\"127.0.0.1/32\"]\n  scim_token: os.environ/HOOKGATE_TEST_SCIM_TOKEN\n{extra}"),
    )
}

pub(crate) fn start(backend: &Backend) -> TestServer {
    let config = config("");
    TestServer::start_with(
        backend,
        ServerOptions {
            config: &config,
            env: &[("HOOKGATE_TEST_SCIM_TOKEN", TOKEN)],
            ..ServerOptions::default()
        },
    )
}

pub(crate) struct Scim<'a> {
    server: &'a TestServer,
    auth: String,
}

impl<'a> Scim<'a> {
    pub(crate) fn new(server: &'a TestServer) -> Self {
        Scim { server, auth: format!("Bearer {TOKEN}") }
    }

    fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Reply {
        let text = body.map(Value::to_string);
        let body = text.as_deref().map(|text| ("application/scim+json", text));
        self.server.send(method, &format!("/scim/v2{path}"), body, &[("authorization", &self.auth)])
    }

    pub(crate) fn ok(&self, method: &str, path: &str, body: Option<&Value>, status: u16) -> Value {
        let reply = self.send(method, path, body);
        assert_eq!(reply.status, status, "{method} {path}: {}\n{}", reply.body, self.server.logs());
        if status != 204 {
            assert_eq!(
                reply.header("content-type"),
                Some("application/scim+json"),
                "{method} {path}"
            );
        }
        if reply.body.is_empty() { Value::Null } else { reply.json() }
    }

    pub(crate) fn get(&self, path: &str) -> Value {
        self.ok("GET", path, None, 200)
    }

    /// A SCIM error: its status, scimType and detail checked.
    pub(crate) fn refused(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        status: u16,
        scim_type: Option<&str>,
        detail: &str,
    ) {
        let reply = self.send(method, path, body);
        assert_eq!(reply.status, status, "{method} {path}: {}", reply.body);
        assert_eq!(reply.header("content-type"), Some("application/scim+json"));
        let error = reply.json();
        assert_eq!(error["schemas"], json!([ERROR]), "{error}");
        assert_eq!(error["status"], json!(status.to_string()), "{error}");
        assert_eq!(error["scimType"].as_str(), scim_type, "{error}");
        assert!(
            error["detail"].as_str().unwrap_or_default().contains(detail),
            "{method} {path}: {error}"
        );
    }
}

fn filter(text: &str) -> String {
    let mut encoded = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                encoded.push(byte as char)
            }
            other => encoded.push_str(&format!("%{other:02X}")),
        }
    }
    format!("/Users?filter={encoded}")
}

pub(crate) fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH], "Operations": ops})
}

fn users(server: &TestServer) -> Vec<user::Model> {
    server.db(async |conn| user::Entity::find().all(conn).await.unwrap())
}

fn memberships(server: &TestServer, team_id: &str) -> Vec<(String, String)> {
    let id = team_id.to_owned();
    server.db(async move |conn| {
        team_member::Entity::find()
            .filter(team_member::Column::TeamId.eq(id))
            .all(conn)
            .await
            .unwrap()
            .into_iter()
            .map(|m| (m.user_id, m.source))
            .collect()
    })
}

/// What Okta sends to create a user.
pub(crate) fn okta_user(user_name: &str, given: &str, family: &str, external: &str) -> Value {
    json!({
        "schemas": [USER],
        "userName": user_name,
        "name": {"givenName": given, "familyName": family},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": format!("{given} {family}"),
        "locale": "en-US",
        "externalId": external,
        "groups": [],
        "password": "never-stored",
        "active": true
    })
}

#[test]
fn okta_provisions_users_and_groups() {
    for_each_backend(|backend| {
        let server = start(backend);
        let scim = Scim::new(&server);

        let none = scim.get(&format!(
            "{}&startIndex=1&count=100",
            filter(r#"userName eq "Alice@Example.test""#)
        ));
        assert_eq!(
            (none["totalResults"].clone(), none["Resources"].clone()),
            (json!(0), json!([]))
        );

        let alice = scim.ok(
            "POST",
            "/Users",
            Some(&okta_user("Alice@Example.test", "Alice", "Liddell", "00u-a")),
            201,
        );
        assert_eq!(alice["id"], "Alice@Example.test", "the id is the userName as sent");
        assert_eq!(alice["active"], true);
        assert_eq!(alice["meta"]["resourceType"], "User");
        assert!(alice.get("password").is_none());
        let row = user_row(&server, "Alice@Example.test").expect("a user row");
        assert_eq!(
            (
                row.user_email.as_deref(),
                row.user_alias.as_deref(),
                row.user_role.as_deref(),
                row.active
            ),
            (Some("alice@example.test"), Some("Alice Liddell"), Some("internal_user"), true)
        );
        assert_eq!((row.sso_issuer, row.sso_user_id), (None, None), "provisioned, not bound");
        scim.ok(
            "POST",
            "/Users",
            Some(&okta_user("bob@example.test", "Bob", "Builder", "00u-b")),
            201,
        );

        scim.refused(
            "POST",
            "/Users",
            Some(&okta_user("ALICE@example.test", "A", "L", "x")),
            409,
            Some("uniqueness"),
            "userName \"ALICE@example.test\" is taken",
        );
        assert_eq!(users(&server).len(), 2, "nothing written");

        for (query, expected) in [
            (r#"userName eq "alice@example.test""#, 1),
            (r#"externalId eq "00u-a""#, 1),
            (r#"emails[type eq "work"].value eq "ALICE@example.test""#, 1),
            (r#"emails.value co "@example.test""#, 2),
            (r#"userName sw "bob" or displayName eq "Alice Liddell""#, 2),
            (r#"name.familyName eq "Builder" and active eq true"#, 1),
            (r#"externalId pr"#, 2),
        ] {
            let found = scim.get(&filter(query));
            assert_eq!(found["totalResults"], json!(expected), "{query}: {found}");
            assert_eq!(
                found["schemas"],
                json!(["urn:ietf:params:scim:api:messages:2.0:ListResponse"])
            );
        }
        let page = scim.get("/Users?startIndex=2&count=1");
        assert_eq!(
            (
                page["totalResults"].clone(),
                page["itemsPerPage"].clone(),
                page["startIndex"].clone()
            ),
            (json!(2), json!(1), json!(2))
        );
        assert_eq!(page["Resources"][0]["userName"], "bob@example.test");
        let searched = scim.ok(
            "POST",
            "/Users/.search",
            Some(&json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": "externalId eq \"00u-b\"",
                "attributes": ["userName"],
                "startIndex": 1,
                "count": 10
            })),
            200,
        );
        assert_eq!(searched["totalResults"], json!(1), "{searched}");
        assert_eq!(
            searched["Resources"][0],
            json!({"schemas": [USER], "id": "bob@example.test", "userName": "bob@example.test"}),
            "only the attributes asked for (and id, schemas)"
        );
        scim.refused("POST", "/.search", Some(&json!({})), 501, None, "use /Users/.search");

        let mut replaced = okta_user("Alice@Example.test", "Alice", "Hargreaves", "00u-a");
        replaced["displayName"] = json!("Alice Hargreaves");
        let put = scim.ok("PUT", "/Users/Alice@Example.test", Some(&replaced), 200);
        assert_eq!(put["name"]["familyName"], "Hargreaves");
        assert_eq!(
            user_row(&server, "Alice@Example.test").unwrap().user_alias.as_deref(),
            Some("Alice Hargreaves")
        );

        // Groups: created empty, then members pushed.
        let group = scim.ok(
            "POST",
            "/Groups",
            Some(&json!({"schemas": [GROUP], "displayName": "Engineering", "members": []})),
            201,
        );
        let gid = group["id"].as_str().unwrap().to_owned();
        let row = server.db(async |conn| team::Entity::find().all(conn).await.unwrap());
        assert_eq!(row.len(), 1);
        assert_eq!(
            (row[0].team_id.as_str(), row[0].team_alias.as_deref()),
            (gid.as_str(), Some("Engineering"))
        );
        scim.ok("PATCH", &format!("/Groups/{gid}"), Some(&patch(json!([{"op": "add", "path": "members", "value": [{"value": "Alice@Example.test", "display": "Alice"}]}]))), 200);
        assert_eq!(memberships(&server, &gid), vec![("Alice@Example.test".into(), "scim".into())]);

        // An administrator adds bob by hand: SCIM never removes that membership.
        let admin = server.master_auth();
        let added = server.post_json(
            "/team/member_add",
            &json!({"team_id": gid, "member": [{"user_id": "bob@example.test", "role": "user"}]}),
            &[("authorization", &admin)],
        );
        assert_eq!(added.status, 200, "{}", added.body);

        // Okta renames with a replace without a path; members stay.
        let renamed = scim.ok(
            "PATCH",
            &format!("/Groups/{gid}"),
            Some(&patch(json!([{"op": "replace", "value": {"id": gid, "displayName": "Eng"}}]))),
            200,
        );
        assert_eq!(renamed["displayName"], "Eng");
        assert_eq!(renamed["members"].as_array().unwrap().len(), 2, "{renamed}");
        let by_member = scim
            .get(&format!("/Groups?filter={}", "members.value%20eq%20%22bob%40example.test%22"));
        assert_eq!(by_member["totalResults"], json!(1));
        let by_name =
            scim.get("/Groups?filter=displayName%20eq%20%22eng%22&excludedAttributes=members");
        assert_eq!(by_name["totalResults"], json!(1));
        assert!(by_name["Resources"][0].get("members").is_none(), "{by_name}");

        for user in ["Alice@Example.test", "bob@example.test"] {
            let path = format!("members[value eq \"{user}\"]");
            scim.ok(
                "PATCH",
                &format!("/Groups/{gid}"),
                Some(&patch(json!([{"op": "remove", "path": path}]))),
                200,
            );
        }
        assert_eq!(
            memberships(&server, &gid),
            vec![("bob@example.test".into(), "admin".into())],
            "the administrator's stays"
        );

        // A group PUT makes SCIM's memberships match; the administrator's stays.
        let put = scim.ok("PUT", &format!("/Groups/{gid}"), Some(&json!({"schemas": [GROUP], "displayName": "Eng", "members": [{"value": "Alice@Example.test"}]})), 200);
        assert_eq!(put["members"].as_array().unwrap().len(), 2, "{put}");
        let mut rows = memberships(&server, &gid);
        rows.sort();
        assert_eq!(
            rows,
            vec![
                ("Alice@Example.test".into(), "scim".into()),
                ("bob@example.test".into(), "admin".into())
            ]
        );

        scim.ok("DELETE", &format!("/Groups/{gid}"), None, 204);
        scim.refused("GET", &format!("/Groups/{gid}"), None, 404, None, "no group");
        assert!(memberships(&server, &gid).is_empty());
    });
}

/// SCIM never sets a role, models or a budget: a provisioned user starts with none, and what
/// an administrator gave them survives every PUT and PATCH, whatever roles the body names.
#[test]
fn scim_never_sets_a_role_models_or_a_budget() {
    let server = start(&Backend::Sqlite);
    let scim = Scim::new(&server);
    let mut body = okta_user("ivy@example.test", "Ivy", "I", "00u-i");
    body["roles"] = json!([{"value": "proxy_admin", "primary": true}]);
    scim.ok("POST", "/Users", Some(&body), 201);
    let row = user_row(&server, "ivy@example.test").unwrap();
    assert_eq!(
        (row.user_role.as_deref(), row.models.clone(), row.max_budget, row.budget_duration.clone()),
        (Some("internal_user"), json!([]), None, None),
        "provisioned with nothing"
    );
    assert_eq!(row.metadata, json!({"created_by": "scim"}));

    let edit = json!({"user_id": "ivy@example.test", "user_role": "proxy_admin_viewer",
                      "models": ["gpt-4o"], "max_budget": 5.0, "budget_duration": "30d"});
    let edited =
        server.post_json("/user/update", &edit, &[("authorization", &server.master_auth())]);
    assert_eq!(edited.status, 200, "{}", edited.body);
    let given = |row: &user::Model| {
        (row.user_role.clone(), row.models.clone(), row.max_budget, row.budget_duration.clone())
    };
    let before = given(&user_row(&server, "ivy@example.test").unwrap());
    assert_eq!(before.0.as_deref(), Some("proxy_admin_viewer"));

    body["displayName"] = json!("Ivy Renamed");
    scim.ok("PUT", "/Users/ivy@example.test", Some(&body), 200);
    let rename = json!([{"op": "replace", "value": {"displayName": "Ivy Again"}}]);
    scim.ok("PATCH", "/Users/ivy@example.test", Some(&patch(rename)), 200);
    let after = user_row(&server, "ivy@example.test").unwrap();
    assert_eq!(given(&after), before, "the administrator's values stay");
    assert_eq!(after.user_alias.as_deref(), Some("Ivy Again"), "what SCIM does set, it sets");
}

/// A group's `displayName` is unique among teams, in any case: a second one is a 409, on
/// create and on rename, with nothing written.
#[test]
fn a_group_name_is_unique_in_any_case() {
    let server = start(&Backend::Sqlite);
    let scim = Scim::new(&server);
    let made = server.post_json(
        "/team/new",
        &json!({"team_id": "core", "team_alias": "Core"}),
        &[("authorization", &server.master_auth())],
    );
    assert_eq!(made.status, 200, "{}", made.body);
    let core = json!({"schemas": [GROUP], "displayName": "CORE", "members": []});
    scim.refused("POST", "/Groups", Some(&core), 409, Some("uniqueness"), "CORE");
    let count = || server.db(async |conn| team::Entity::find().all(conn).await.unwrap().len());
    assert_eq!(count(), 1, "nothing written");

    let eng = json!({"schemas": [GROUP], "displayName": "Eng", "members": []});
    let eng = scim.ok("POST", "/Groups", Some(&eng), 201);
    let path = format!("/Groups/{}", eng["id"].as_str().unwrap());
    let rename = patch(json!([{"op": "replace", "value": {"displayName": "core"}}]));
    scim.refused("PATCH", &path, Some(&rename), 409, Some("uniqueness"), "core");
    assert_eq!(scim.get(&path)["displayName"], "Eng");
}

/// A list page holds at most 1000 resources whatever `count` asks; the total counts them all.
#[test]
fn a_list_page_holds_at_most_a_thousand() {
    let server = start(&Backend::Sqlite);
    server.db(async |conn| {
        use sea_orm::ConnectionTrait;
        conn.execute_unprepared(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1001) \
             INSERT INTO users (user_id, user_role, models, spend, metadata, created_at, \
             updated_at) SELECT 'bulk-' || i, 'internal_user', '[]', 0, '{}', \
             '2026-12-01 00:00:00+00:00', '2026-12-01 00:00:00+00:00' FROM n",
        )
        .await
        .unwrap();
    });
    let scim = Scim::new(&server);
    let page = scim.get("/Users?count=5000");
    assert_eq!(page["totalResults"], json!(1001));
    assert_eq!(page["itemsPerPage"], json!(1000));
    assert_eq!(page["Resources"].as_array().unwrap().len(), 1000);
    let rest = scim.get("/Users?startIndex=1001&count=5000");
    assert_eq!(rest["Resources"].as_array().unwrap().len(), 1, "{rest}");
}

/// A group's DELETE on a team SCIM did not create (an administrator's, which the identity
/// provider linked) removes SCIM's memberships only: the team and the administrator's stay.
#[test]
fn deleting_a_linked_group_keeps_the_team_and_what_scim_did_not_add() {
    let server = start(&Backend::Sqlite);
    let scim = Scim::new(&server);
    let admin = server.master_auth();
    let team = server.post_json(
        "/team/new",
        &json!({"team_id": "core", "team_alias": "Core"}),
        &[("authorization", &admin)],
    );
    assert_eq!(team.status, 200, "{}", team.body);
    for (user, external) in [("alice@example.test", "00u-a"), ("bob@example.test", "00u-b")] {
        scim.ok("POST", "/Users", Some(&okta_user(user, "A", "B", external)), 201);
    }
    let added = server.post_json(
        "/team/member_add",
        &json!({"team_id": "core", "member": [{"user_id": "bob@example.test", "role": "user"}]}),
        &[("authorization", &admin)],
    );
    assert_eq!(added.status, 200, "{}", added.body);
    let push =
        json!([{"op": "add", "path": "members", "value": [{"value": "alice@example.test"}]}]);
    scim.ok("PATCH", "/Groups/core", Some(&patch(push)), 200);
    let mut rows = memberships(&server, "core");
    rows.sort();
    assert_eq!(
        rows,
        vec![
            ("alice@example.test".into(), "scim".into()),
            ("bob@example.test".into(), "admin".into())
        ]
    );

    scim.ok("DELETE", "/Groups/core", None, 204);
    let kept = scim.get("/Groups/core");
    assert_eq!(kept["displayName"], "Core", "{kept}");
    assert_eq!(memberships(&server, "core"), vec![("bob@example.test".into(), "admin".into())]);
    let teams = server.db(async |conn| team::Entity::find().all(conn).await.unwrap());
    assert_eq!(teams.len(), 1, "the team stays");
}

#[test]
fn entra_request_shapes() {
    for_each_backend(|backend| {
        let server = start(backend);
        let scim = Scim::new(&server);
        let created = scim.ok(
            "POST",
            "/Users",
            Some(&json!({
                "schemas": [USER, "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                "externalId": "8a1b-entra",
                "userName": "dee@corp.example",
                "active": true,
                "displayName": "Dee Dee",
                "emails": [{"primary": true, "type": "work", "value": "dee@corp.example"}],
                "meta": {"resourceType": "User"},
                "name": {"formatted": "Dee Dee", "familyName": "Dee", "givenName": "Dee"},
                "roles": [],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}
            })),
            201,
        );
        let id = created["id"].as_str().unwrap().to_owned();
        assert_eq!(id, "dee@corp.example");

        let changed = scim.ok("PATCH", &format!("/Users/{id}"), Some(&patch(json!([
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "dee.dee@corp.example"},
            {"op": "Replace", "path": "name.givenName", "value": "Deedee"},
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Ops"},
            {"op": "Replace", "path": "displayName", "value": "Deedee Dee"}
        ]))), 200);
        assert_eq!(changed["name"]["givenName"], "Deedee");
        let row = user_row(&server, &id).unwrap();
        assert_eq!(
            (row.user_email.as_deref(), row.user_alias.as_deref()),
            (Some("dee.dee@corp.example"), Some("Deedee Dee"))
        );

        let group = scim.ok("POST", "/Groups", Some(&json!({"schemas": [GROUP], "externalId": "g-obj-1", "displayName": "Sales", "members": []})), 201);
        let gid = group["id"].as_str().unwrap().to_owned();
        assert_eq!(group["externalId"], "g-obj-1");
        scim.ok(
            "PATCH",
            &format!("/Groups/{gid}"),
            Some(&patch(json!([{"op": "Add", "path": "members", "value": [{"value": id}]}]))),
            200,
        );
        assert_eq!(memberships(&server, &gid).len(), 1);
        scim.ok(
            "PATCH",
            &format!("/Groups/{gid}"),
            Some(&patch(json!([{"op": "Remove", "path": "members", "value": [{"value": id}]}]))),
            200,
        );
        assert!(memberships(&server, &gid).is_empty());
        let found = scim.get(&format!("/Groups?filter={}", "externalId%20eq%20%22g-obj-1%22"));
        assert_eq!(found["totalResults"], json!(1));
    });
}

#[test]
fn bad_input_gets_scim_errors_and_writes_nothing() {
    for_each_backend(|backend| {
        let server = start(backend);
        let scim = Scim::new(&server);
        scim.ok("POST", "/Users", Some(&okta_user("gil@example.test", "Gil", "G", "00u-g")), 201);
        let before = users(&server);

        scim.refused(
            "GET",
            &filter(r#"userName eq "a" and"#),
            None,
            400,
            Some("invalidFilter"),
            "expected an attribute, found the end",
        );
        scim.refused(
            "GET",
            &filter(r#"userName xx "a""#),
            None,
            400,
            Some("invalidFilter"),
            "\"xx\" is not an operator",
        );
        scim.refused(
            "GET",
            &filter(r#"nickName eq "a""#),
            None,
            400,
            Some("invalidFilter"),
            "unknown attribute \"nickName\"",
        );
        scim.refused(
            "GET",
            "/Users?count=many",
            None,
            400,
            Some("invalidValue"),
            "count must be an integer",
        );
        scim.refused(
            "POST",
            "/Users",
            Some(&json!({"schemas": [USER], "displayName": "No Name"})),
            400,
            Some("invalidValue"),
            "userName is required",
        );
        scim.refused("POST", "/Users", Some(&json!({"schemas": [USER], "userName": "hal", "emails": [{"value": "not-an-email"}]})), 400, Some("invalidValue"), "not an email address");
        scim.refused(
            "POST",
            "/Users",
            Some(&json!({"schemas": [USER], "userName": "hal", "active": "maybe"})),
            400,
            Some("invalidValue"),
            "active must be true or false",
        );
        scim.refused(
            "POST",
            "/Users",
            Some(&json!({"schemas": [USER], "userName": "default_user_id"})),
            400,
            Some("invalidValue"),
            "reserved",
        );
        scim.refused("POST", "/Groups", Some(&json!({"schemas": [GROUP], "displayName": "Ghosts", "members": [{"value": "nobody"}]})), 400, Some("invalidValue"), "there is no user \"nobody\"");
        scim.refused("PATCH", "/Users/gil@example.test", Some(&patch(json!([{"op": "replace", "path": "active", "value": false}, {"op": "jump", "path": "active"}]))), 400, Some("invalidSyntax"), "Operations[1]: op must be");
        scim.refused(
            "PATCH",
            "/Users/gil@example.test",
            Some(&patch(json!([{"op": "replace", "path": "id", "value": "other"}]))),
            400,
            Some("mutability"),
            "id is read-only",
        );
        scim.refused(
            "PATCH",
            "/Users/gil@example.test",
            Some(&patch(json!([{"op": "replace", "path": "emails[type eq", "value": "x"}]))),
            400,
            Some("invalidPath"),
            "invalid path",
        );
        let reply = server.send(
            "POST",
            "/scim/v2/Users",
            Some(("application/scim+json", "{not json")),
            &[("authorization", &format!("Bearer {TOKEN}"))],
        );
        assert_eq!(reply.status, 400, "{}", reply.body);
        assert_eq!(reply.json()["scimType"], "invalidSyntax");
        let huge = json!({"schemas": [USER], "userName": "big", "displayName": "x".repeat(2 * 1024 * 1024)});
        scim.refused("POST", "/Users", Some(&huge), 413, None, "larger than 1048576 bytes");
        scim.refused("GET", "/Nothing", None, 404, None, "no such SCIM endpoint");

        assert_eq!(users(&server), before, "nothing written");
        assert!(server.db(async |conn| team::Entity::find().all(conn).await.unwrap()).is_empty());
        assert!(
            user_row(&server, "gil@example.test").unwrap().active,
            "the valid first operation of a refused PATCH is not applied"
        );
    });
}

#[test]
fn the_token_guards_scim_and_without_one_there_is_no_scim() {
    for_each_backend(|backend| {
        let server = start(backend);
        let body = okta_user("ivy@example.test", "Ivy", "I", "00u-i");
        for auth in [None, Some("Bearer wrong-token"), Some("Basic c2NpbTpzY2lt"), Some(TOKEN)] {
            let headers: Vec<(&str, &str)> =
                auth.map(|a| ("authorization", a)).into_iter().collect();
            let reply = server.send(
                "POST",
                "/scim/v2/Users",
                Some(("application/scim+json", &body.to_string())),
                &headers,
            );
            assert_eq!(reply.status, 401, "{auth:?}: {}", reply.body);
            assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
            assert_eq!(reply.json()["schemas"], json!([ERROR]));
            let listed = server.send("GET", "/scim/v2/Users", None, &headers);
            assert_eq!(listed.status, 401);
            assert!(!listed.body.contains("ivy"));
        }
        assert!(users(&server).is_empty(), "nothing written");
        // The master key is not the SCIM token.
        let master = server.master_auth();
        assert_eq!(
            server.send("GET", "/scim/v2/Users", None, &[("authorization", &master)]).status,
            401
        );

        // Discovery.
        let scim = Scim::new(&server);
        let config = scim.get("/ServiceProviderConfig");
        assert_eq!(
            (
                config["patch"]["supported"].clone(),
                config["filter"]["supported"].clone(),
                config["bulk"]["supported"].clone()
            ),
            (json!(true), json!(true), json!(false))
        );
        let types = scim.get("/ResourceTypes");
        assert_eq!(types["totalResults"], json!(2));
        assert_eq!(scim.get("/ResourceTypes/User")["endpoint"], "/Users");
        let schemas = scim.get("/Schemas");
        let user_schema = scim.get(&format!("/Schemas/{USER}"));
        assert_eq!(schemas["totalResults"], json!(2));
        let names: Vec<&str> = user_schema["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|a| a["name"].as_str())
            .collect();
        assert_eq!(names, ["externalId", "userName", "name", "displayName", "emails", "active"]);
    });
    let plain = TestServer::start(&Backend::Sqlite);
    let reply =
        plain.send("GET", "/scim/v2/Users", None, &[("authorization", &format!("Bearer {TOKEN}"))]);
    assert_eq!(reply.status, 404, "no token configured, no SCIM: {}", reply.body);
    assert!(!reply.body.contains(ERROR));
}
