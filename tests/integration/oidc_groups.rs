//! Which claims give an OIDC sign-in's groups: LiteLLM's names (`litellm_jwtauth`,
//! `ui_access_mode.sso_group_jwt_field`) over hookgate's aliases, the startup warnings for what
//! hookgate reads but does not implement, and Microsoft Entra groups from the ID token or, past
//! its overage marker, from every page of (a fake) Microsoft Graph.

use hookgate::db::entity::team_member;
use hookgate_tests::{
    fake_idp::{Behavior, FakeIdp},
    server::{Backend, ServerOptions, TestServer, for_each_backend},
};
use sea_orm::EntityTrait;
use serde_json::json;

use crate::oidc::{config, sign_in, start, user_row};

/// The teams `user_id` is a member of, sorted.
fn teams_of(server: &TestServer, user_id: &str) -> Vec<String> {
    let mut teams: Vec<String> = server
        .db(async |conn| team_member::Entity::find().all(conn).await.unwrap())
        .into_iter()
        .filter(|member| member.user_id == user_id)
        .map(|member| member.team_id)
        .collect();
    teams.sort();
    teams
}

/// A hookgate server that signs in through `idp` playing Microsoft.
fn start_microsoft(backend: &Backend, idp: &FakeIdp, more_env: &[(&str, &str)]) -> TestServer {
    let env = idp.microsoft_env();
    let mut pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    pairs.extend_from_slice(more_env);
    let config = config("");
    TestServer::start_with(
        backend,
        ServerOptions { config: &config, env: &pairs, ..ServerOptions::default() },
    )
}

/// Graph's `/me` for Alice (what Microsoft's userinfo is), and the ID token's extra claims.
pub(crate) fn as_microsoft_user(
    idp: &FakeIdp,
    id_token_claims: serde_json::Value,
    graph: Behavior,
) {
    idp.set(Behavior {
        claims: json!({
            "sub": "alice-ms-sub",
            "id": "alice-oid",
            "userPrincipalName": "Alice@Example.test",
            "displayName": "Alice Liddell",
            "givenName": "Alice",
            "surname": "Liddell",
        }),
        id_token_claims,
        ..graph
    });
}

/// Five groups on three pages of two.
fn five_groups() -> Behavior {
    Behavior {
        graph_groups: (1..=5).map(|n| (format!("gid-{n}"), format!("Group {n}"))).collect(),
        graph_page_size: 2,
        ..Behavior::default()
    }
}

/// What Entra puts in an ID token in place of more than 200 groups.
fn overage_marker() -> serde_json::Value {
    json!({
        "_claim_names": {"groups": "src1"},
        "_claim_sources": {"src1": {"endpoint": "https://graph.windows.net/contoso/users/alice-oid/getMemberObjects"}},
    })
}

#[test]
fn an_entra_overage_reads_every_graph_page_and_the_user_joins_the_teams_they_name() {
    for_each_backend(|backend| {
        let idp = FakeIdp::start();
        let server = start_microsoft(backend, &idp, &[]);
        // One team named on the first page, one on the last; the others are no team.
        server.create_team("gid-1");
        server.create_team("gid-5");
        as_microsoft_user(&idp, overage_marker(), five_groups());
        let reply = sign_in(&server);
        assert_eq!(reply.status, 303, "{}\n{}", reply.body, server.logs());

        let requests = idp.graph_requests();
        assert_eq!(requests.len(), 3, "three pages: {requests:?}");
        assert!(
            requests[0].starts_with(
                "/graph/v1.0/me/transitiveMemberOf/microsoft.graph.group?$select=id,displayName"
            ),
            "{requests:?}"
        );
        assert!(requests[1].ends_with("$skiptoken=2") && requests[2].ends_with("$skiptoken=4"));
        assert_eq!(teams_of(&server, "alice-oid"), ["gid-1", "gid-5"]);
        let row = user_row(&server, "alice-oid").expect("the user row");
        assert_eq!(row.user_email.as_deref(), Some("alice@example.test"));
        // Bound to the ID token's subject, under the configured authorization endpoint.
        assert_eq!(row.sso_user_id.as_deref(), Some("alice-ms-sub"));
        assert_eq!(row.metadata["auth_provider"], "microsoft");
    });
}

#[test]
fn entra_groups_in_the_id_token_need_no_graph_and_no_groups_claim_asks_graph() {
    let idp = FakeIdp::start();
    let server = start_microsoft(&Backend::Sqlite, &idp, &[]);
    server.create_team("gid-2");
    server.create_team("gid-3");
    as_microsoft_user(&idp, json!({"groups": ["gid-2"]}), five_groups());
    assert_eq!(sign_in(&server).status, 303, "{}", server.logs());
    assert!(idp.graph_requests().is_empty(), "{:?}", idp.graph_requests());
    assert_eq!(teams_of(&server, "alice-oid"), ["gid-2"]);

    // No `groups` claim at all (the app registration emits none): Graph is asked.
    as_microsoft_user(&idp, json!({}), five_groups());
    assert_eq!(sign_in(&server).status, 303, "{}", server.logs());
    assert_eq!(idp.graph_requests().len(), 3);
    assert_eq!(teams_of(&server, "alice-oid"), ["gid-2", "gid-3"]);
}

#[test]
fn microsoft_groups_as_names_reads_display_names_from_graph() {
    let idp = FakeIdp::start();
    let server = start_microsoft(&Backend::Sqlite, &idp, &[("MICROSOFT_GROUPS_AS_NAMES", "true")]);
    server.create_team("Group 4");
    server.create_team("gid-1"); // an id: not a name, so not joined
    // The token names ids; names come from Graph.
    as_microsoft_user(&idp, json!({"groups": ["gid-1"]}), five_groups());
    let reply = sign_in(&server);
    assert_eq!(reply.status, 303, "{}\n{}", reply.body, server.logs());
    assert_eq!(idp.graph_requests().len(), 3);
    assert_eq!(teams_of(&server, "alice-oid"), ["Group 4"]);
}

#[test]
fn a_graph_failure_is_a_clear_502_logged_with_graphs_error() {
    let idp = FakeIdp::start();
    let server = start_microsoft(&Backend::Sqlite, &idp, &[]);
    as_microsoft_user(
        &idp,
        overage_marker(),
        Behavior { graph_status: Some(403), ..five_groups() },
    );
    let reply = sign_in(&server);
    assert_eq!(reply.status, 502, "{}", reply.body);
    assert!(
        reply.body.contains(
            "the identity provider&#39;s group service (Microsoft Graph) failed: page 1 answered \
             HTTP 403"
        ),
        "{}",
        reply.body
    );
    assert!(server.logged(
        "Microsoft Graph group lookup failed: page 1 answered HTTP 403 \
         (Authorization_RequestDenied: Insufficient privileges to complete the operation.)"
    ));
    assert!(user_row(&server, "alice-oid").is_none(), "no half sign-in");
}

#[test]
fn litellms_team_ids_jwt_field_maps_groups_and_unimplemented_keys_are_named_at_startup() {
    let idp = FakeIdp::start();
    let extra = "  litellm_jwtauth:
    team_ids_jwt_field: resource_access.app.groups
    sync_user_role_and_teams: true
    jwt_litellm_role_map: [{jwt_role: admins, litellm_role: proxy_admin}]
    team_id_upsert: true
    team_id_jwt_field: team
";
    let server =
        start(&Backend::Sqlite, &idp, extra, &[("GENERIC_USER_GROUPS_ATTRIBUTE", "groups")]);
    assert!(server.logged(
        "read but not implemented: general_settings.litellm_jwtauth.team_id_upsert, \
         general_settings.litellm_jwtauth.team_id_jwt_field"
    ));
    assert!(server.logged(
        "general_settings.litellm_jwtauth.team_ids_jwt_field (\"resource_access.app.groups\") \
         and environment variable GENERIC_USER_GROUPS_ATTRIBUTE (\"groups\") are both set and \
         differ: using general_settings.litellm_jwtauth.team_ids_jwt_field"
    ));
    server.create_team("research");
    server.create_team("staff");
    idp.set(Behavior {
        claims: json!({
            "sub": "bob-sub", "preferred_username": "bob", "email": "bob@example.test",
            "email_verified": true, "groups": ["staff"],
            "resource_access": {"app": {"groups": ["research"]}},
        }),
        ..Behavior::default()
    });
    let reply = sign_in(&server);
    assert_eq!(reply.status, 303, "{}\n{}", reply.body, server.logs());
    assert_eq!(teams_of(&server, "bob"), ["research"], "LiteLLM's name wins over the alias");
}

#[test]
fn sso_group_jwt_field_is_where_the_restricted_group_is_looked_for() {
    let idp = FakeIdp::start();
    let extra = "  ui_access_mode:
    type: restricted_sso_group
    restricted_sso_group: ops
    sso_group_jwt_field: realm_access.groups
";
    let server = start(&Backend::Sqlite, &idp, extra, &[]);
    let user = |groups: serde_json::Value, realm: serde_json::Value| Behavior {
        claims: json!({
            "sub": "carol-sub", "preferred_username": "carol", "email": "carol@example.test",
            "email_verified": true, "groups": groups, "realm_access": {"groups": realm},
        }),
        ..Behavior::default()
    };
    // `ops` in the `groups` claim is not where LiteLLM looks: refused.
    idp.set(user(json!(["ops"]), json!(["staff"])));
    let refused = sign_in(&server);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("restricted SSO group"), "{}", refused.body);
    assert!(user_row(&server, "carol").is_none());
    idp.set(user(json!(["staff"]), json!(["ops"])));
    assert_eq!(sign_in(&server).status, 303, "{}", server.logs());
}

#[test]
fn hookgate_check_names_what_it_reads_but_does_not_implement() {
    let scratch = hookgate_tests::Scratch::new();
    let config = scratch.write(
        "config.yaml",
        "general_settings:\n  litellm_jwtauth:\n    team_ids_jwt_field: groups\n    team_id_upsert: true\n  ui_access_mode:\n    type: restricted_sso_group\n    restricted_sso_group: ops\n    role_mappings: {}\n",
    );
    let output =
        hookgate_tests::run_hookgate(&["check", "--config", &config.display().to_string()], &[]);
    let (_, stderr) = hookgate_tests::output_text(&output);
    assert!(
        stderr.contains(
            "read but not implemented: general_settings.litellm_jwtauth.team_id_upsert, \
             general_settings.ui_access_mode.role_mappings"
        ),
        "{stderr}"
    );
}

#[test]
fn more_groups_than_hookgate_takes_from_graph_is_a_clear_refusal() {
    let idp = FakeIdp::start();
    let server = start_microsoft(&Backend::Sqlite, &idp, &[]);
    let max = 10_000; // hookgate_core::values::MAX_GROUPS
    as_microsoft_user(
        &idp,
        overage_marker(),
        Behavior {
            graph_groups: (0..=max).map(|n| (format!("gid-{n}"), format!("Group {n}"))).collect(),
            graph_page_size: 1000,
            ..Behavior::default()
        },
    );
    let reply = sign_in(&server);
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(
        reply.body.contains(&format!(
            "Microsoft Graph lists more than {max} groups for this user; hookgate accepts at most {max}"
        )),
        "{}",
        reply.body
    );
    assert_eq!(idp.graph_requests().len(), 11, "it stops once past the bound");
    assert!(user_row(&server, "alice-oid").is_none());
}

#[test]
fn a_microsoft_id_token_for_another_client_or_flow_is_refused() {
    let idp = FakeIdp::start();
    let server = start_microsoft(&Backend::Sqlite, &idp, &[]);
    for (behavior, why) in [
        (Behavior { audience: Some("another-app".into()), ..five_groups() }, "not for this client"),
        (
            Behavior { nonce: Some("another-flow".into()), ..five_groups() },
            "nonce is not this sign-in&#39;s",
        ),
    ] {
        as_microsoft_user(&idp, json!({"groups": []}), behavior);
        let reply = sign_in(&server);
        assert_eq!(reply.status, 401, "{}", reply.body);
        assert!(reply.body.contains(why), "{}", reply.body);
    }
    assert!(idp.graph_requests().is_empty());
    assert!(user_row(&server, "alice-oid").is_none());
}

#[test]
fn role_mappings_group_claim_is_the_claim_the_role_mapping_reads() {
    let idp = FakeIdp::start();
    // No custom_sso hook: the mapped role is the user's role.
    let extra = "  role_mappings:
    group_claim: realm_access.roles
    default_role: internal_user_viewer
    roles:
      proxy_admin_viewer: [auditors]
";
    let env = idp.env();
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let config = config(extra).replace("  custom_sso: custom_sso.custom_sso_handler\n", "");
    let server = TestServer::start_with(
        &Backend::Sqlite,
        ServerOptions { config: &config, env: &pairs, ..ServerOptions::default() },
    );
    let claims = |groups: serde_json::Value, roles: serde_json::Value| Behavior {
        claims: json!({
            "sub": "dee-sub", "preferred_username": "dee", "email": "dee@example.test",
            "email_verified": true, "groups": groups, "realm_access": {"roles": roles},
        }),
        ..Behavior::default()
    };
    let role = |server: &TestServer| {
        server.users().into_iter().find(|u| u.user_id == "dee").and_then(|u| u.user_role)
    };
    // `auditors` among the groups (team_ids) is not where the mapping looks: the default role.
    idp.set(claims(json!(["auditors"]), json!(["staff"])));
    assert_eq!(sign_in(&server).status, 303, "{}", server.logs());
    assert_eq!(role(&server).as_deref(), Some("internal_user_viewer"));
    // In the group claim, it maps.
    idp.set(claims(json!([]), json!(["auditors"])));
    assert_eq!(sign_in(&server).status, 303, "{}", server.logs());
    assert_eq!(role(&server).as_deref(), Some("proxy_admin_viewer"));
}
