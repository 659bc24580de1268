//! The identity provider's settings, driven by text: the OIDC provider from LiteLLM's
//! environment, the claim names that choose the identity's values, and the role mappings.

use super::tests::load;
use super::*;

#[test]
fn oidc_providers_come_from_litellms_environment_with_its_precedence() {
    let both = load(
        "",
        &[
            ("PROXY_BASE_URL", "https://sso.example"),
            ("GOOGLE_CLIENT_ID", "g"),
            ("GOOGLE_CLIENT_SECRET", "gs"),
            ("GENERIC_CLIENT_ID", "x"),
            ("GENERIC_CLIENT_SECRET", "y"),
            ("GENERIC_ISSUER", "https://idp.example"),
        ],
    )
    .unwrap();
    let google = both.oidc.unwrap();
    assert_eq!((google.kind, google.client_id.as_str()), (ProviderKind::Google, "g"));
    assert!(google.require_verified_email);
    assert!(
        matches!(google.endpoints, Endpoints::Discover { ref issuer, .. } if issuer == "https://accounts.google.com")
    );

    let microsoft = load(
        "",
        &[
            ("PROXY_BASE_URL", "https://sso.example"),
            ("MICROSOFT_CLIENT_ID", "m"),
            ("MICROSOFT_CLIENT_SECRET", "ms"),
            ("MICROSOFT_TENANT", "contoso"),
            ("MICROSOFT_USERINFO_ENDPOINT", "https://graph.example/me"),
            ("GENERIC_CLIENT_ID", "x"),
        ],
    )
    .unwrap()
    .oidc
    .unwrap();
    assert_eq!(microsoft.kind, ProviderKind::Microsoft);
    assert_eq!(
        microsoft.endpoints,
        Endpoints::Explicit {
            authorization: "https://login.microsoftonline.com/contoso/oauth2/v2.0/authorize".into(),
            token: "https://login.microsoftonline.com/contoso/oauth2/v2.0/token".into(),
            userinfo: "https://graph.example/me".into(),
        }
    );
    assert_eq!(microsoft.claims.email, ["userPrincipalName", "mail"]);

    let generic = load(
        "general_settings:\n  oidc_issuer: https://idp.example/\n",
        &[
            ("PROXY_BASE_URL", "https://sso.example"),
            ("GENERIC_CLIENT_ID", "x"),
            ("GENERIC_CLIENT_SECRET", "y"),
            ("GENERIC_SCOPE", "email groups"),
            ("GENERIC_CLIENT_USE_PKCE", "false"),
            ("GENERIC_USER_ID_ATTRIBUTE", "sub"),
            ("GENERIC_USER_GROUPS_ATTRIBUTE", "realm_access.groups"),
        ],
    )
    .unwrap()
    .oidc
    .unwrap();
    assert!(
        matches!(generic.endpoints, Endpoints::Discover { ref issuer, .. } if issuer == "https://idp.example")
    );
    assert_eq!(generic.scopes, ["openid", "email", "groups"], "openid is always asked for");
    assert!(!generic.use_pkce);
    assert_eq!(
        (generic.claims.id.as_slice(), generic.claims.groups.as_slice()),
        (&["sub".to_owned()][..], &["realm_access.groups".to_owned()][..])
    );

    for (env, expected) in [
        (
            vec![("MICROSOFT_CLIENT_ID", "m"), ("MICROSOFT_CLIENT_SECRET", "s")],
            "MICROSOFT_TENANT is required",
        ),
        (
            vec![
                ("GENERIC_CLIENT_ID", "x"),
                ("GENERIC_CLIENT_SECRET", "y"),
                ("GENERIC_ISSUER", "idp.example"),
            ],
            "GENERIC_ISSUER=\"idp.example\": must be an http(s) URL",
        ),
        (
            vec![
                ("GENERIC_CLIENT_ID", "x"),
                ("GENERIC_CLIENT_SECRET", "y"),
                ("GENERIC_ISSUER", "https://i"),
                ("GENERIC_CLIENT_USE_PKCE", "maybe"),
            ],
            "GENERIC_CLIENT_USE_PKCE=\"maybe\"",
        ),
        (
            // The redirect URI must not come from a client's Host header.
            vec![
                ("GENERIC_CLIENT_ID", "x"),
                ("GENERIC_CLIENT_SECRET", "y"),
                ("GENERIC_ISSUER", "https://idp.example"),
            ],
            "PROXY_BASE_URL is required with an OpenID Connect provider",
        ),
    ] {
        let err = load("", &env).unwrap_err().to_string();
        assert!(err.contains(expected), "{err}");
    }
}

#[test]
fn litellms_claim_names_choose_the_claims_and_unimplemented_keys_are_named() {
    let text = "general_settings:
  ui_access_mode:
    type: restricted_sso_group
    restricted_sso_group: ops
    sso_group_jwt_field: realm_access.groups
    sso_group_jwt_fields_typo: x
  litellm_jwtauth:
    team_ids_jwt_field: resource_access.app.groups
    user_id_jwt_field: oid
    user_email_jwt_field: upn
    sync_user_role_and_teams: true
    jwt_litellm_role_map: [{jwt_role: admins, litellm_role: proxy_admin}]
    team_id_upsert: true
";
    let env = [
        ("PROXY_BASE_URL", "https://sso.example"),
        ("GENERIC_CLIENT_ID", "x"),
        ("GENERIC_CLIENT_SECRET", "y"),
        ("GENERIC_ISSUER", "https://idp.example"),
        ("GENERIC_USER_GROUPS_ATTRIBUTE", "groups"),
        ("GENERIC_USER_EMAIL_ATTRIBUTE", "upn"),
    ];
    let config = load(text, &env).unwrap();
    let claims = &config.oidc.as_ref().unwrap().claims;
    // ui_access_mode.sso_group_jwt_field, then litellm_jwtauth.team_ids_jwt_field, then the
    // environment alias.
    assert_eq!(claims.groups, ["realm_access.groups"]);
    assert_eq!(claims.id, ["oid"]);
    assert_eq!(claims.email, ["upn"]);
    assert_eq!(
        config.ui_access_mode,
        UiAccessModeSetting::RestrictedSsoGroup { group: "ops".into() }
    );
    assert_eq!(
        config.not_implemented,
        [
            "general_settings.ui_access_mode.sso_group_jwt_fields_typo",
            "general_settings.litellm_jwtauth.team_id_upsert",
        ]
    );
    // Implemented, so not named: the sync and its role map.
    assert!(config.sync_user_role_and_teams);
    let map = config.role_map.as_ref().expect("jwt_litellm_role_map applies with the sync");
    assert_eq!(map.role_of(&["admins".to_owned()]), Some(plugin_api::UserRole::ProxyAdmin));
    assert!(config.ignored_keys.is_empty(), "{:?}", config.ignored_keys);
    // One warning: the groups claim under three names with different values; the email claim
    // under two names with the same value is no conflict.
    assert_eq!(config.setting_conflicts.len(), 1, "{:?}", config.setting_conflicts);
    assert!(
        config.setting_conflicts[0].starts_with(
            "general_settings.ui_access_mode.sso_group_jwt_field (\"realm_access.groups\") and \
             general_settings.litellm_jwtauth.team_ids_jwt_field (\"resource_access.app.groups\") \
             and environment variable GENERIC_USER_GROUPS_ATTRIBUTE (\"groups\") are both set"
        ),
        "{:?}",
        config.setting_conflicts
    );

    // Without LiteLLM's names, hookgate's aliases and defaults apply as before.
    let plain = load("", &env).unwrap();
    assert_eq!(plain.oidc.unwrap().claims.groups, ["groups"]);
    assert!(plain.not_implemented.is_empty() && plain.setting_conflicts.is_empty());
    // LiteLLM's names reach every provider, Microsoft's default being the ID token's `groups`.
    let microsoft = |text: &str| {
        load(
            text,
            &[
                ("PROXY_BASE_URL", "https://sso.example"),
                ("MICROSOFT_CLIENT_ID", "m"),
                ("MICROSOFT_CLIENT_SECRET", "ms"),
                ("MICROSOFT_TENANT", "contoso"),
            ],
        )
        .unwrap()
        .oidc
        .unwrap()
    };
    assert_eq!(microsoft("").claims.groups, ["groups"]);
    assert_eq!(
        microsoft("general_settings:\n  litellm_jwtauth:\n    team_ids_jwt_field: wids\n")
            .claims
            .groups,
        ["wids"]
    );
    let graph = microsoft("").graph.unwrap();
    assert_eq!(graph.api, "https://graph.microsoft.com/v1.0");
}

#[test]
fn jwt_litellm_role_map_without_the_sync_is_ignored_with_a_warning() {
    let text = "general_settings:
  litellm_jwtauth:
    jwt_litellm_role_map: [{jwt_role: admins, litellm_role: proxy_admin}]
";
    let config = load(text, &[]).unwrap();
    assert!(!config.sync_user_role_and_teams);
    assert!(config.role_map.is_none(), "LiteLLM applies the map only with the sync");
    assert_eq!(config.setting_conflicts.len(), 1, "{:?}", config.setting_conflicts);
    assert!(
        config.setting_conflicts[0].starts_with(
            "general_settings.litellm_jwtauth.jwt_litellm_role_map is ignored: it applies only \
             with general_settings.litellm_jwtauth.sync_user_role_and_teams: true"
        ),
        "{:?}",
        config.setting_conflicts
    );
    // With the sync, no warning.
    let synced = load(
        &text.replace(
            "  litellm_jwtauth:\n",
            "  litellm_jwtauth:\n    sync_user_role_and_teams: true\n",
        ),
        &[],
    )
    .unwrap();
    assert!(synced.setting_conflicts.is_empty(), "{:?}", synced.setting_conflicts);
    assert!(synced.role_map.is_some());
}

#[test]
fn the_role_mappings_group_claim_comes_from_the_file_else_litellms_variable() {
    let env = [
        ("PROXY_BASE_URL", "https://sso.example"),
        ("GENERIC_CLIENT_ID", "x"),
        ("GENERIC_CLIENT_SECRET", "y"),
        ("GENERIC_ISSUER", "https://idp.example"),
    ];
    let claims = |text: &str, more: &[(&str, &str)]| {
        let env: Vec<(&str, &str)> = env.iter().chain(more).copied().collect();
        load(text, &env).unwrap().oidc.unwrap().claims
    };
    assert!(claims("", &[]).role_groups.is_empty(), "no claim of its own: the groups");
    let file = "general_settings:\n  role_mappings:\n    group_claim: realm_access.roles\n    \
                roles: {proxy_admin: [admins]}\n";
    assert_eq!(claims(file, &[]).role_groups, ["realm_access.roles"]);
    assert_eq!(
        claims("", &[("GENERIC_ROLE_MAPPINGS_GROUP_CLAIM", "roles")]).role_groups,
        ["roles"]
    );
    // Both: the file's (LiteLLM's own name) wins, with a warning.
    let both =
        load(file, &[env.as_slice(), &[("GENERIC_ROLE_MAPPINGS_GROUP_CLAIM", "roles")]].concat())
            .unwrap();
    assert_eq!(both.oidc.as_ref().unwrap().claims.role_groups, ["realm_access.roles"]);
    assert_eq!(both.setting_conflicts.len(), 1, "{:?}", both.setting_conflicts);
    assert!(both.ignored_keys.is_empty(), "group_claim is read: {:?}", both.ignored_keys);
}
