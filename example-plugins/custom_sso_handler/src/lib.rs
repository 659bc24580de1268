//! Example `custom_ui_sso_sign_in_handler` hook: signs users in from the identity headers an
//! OAuth proxy adds, as LiteLLM's documented `MyCustomSSOLoginHandler` does.
//!
//! ```yaml
//! general_settings:
//!   custom_ui_sso_sign_in_handler: custom_sso_handler.custom_ui_sso_sign_in_handler
//! ```
//!
//! It understands the two proxies people run in front of LiteLLM:
//! * oauth2-proxy: `x-forwarded-user`, `-email`, `-preferred-username`, and one
//!   `x-forwarded-groups` line per group;
//! * Apache mod_auth_openidc: the same names set with `RequestHeader set`, with the groups joined
//!   by commas in one line, or its own `oidc_claim_*` headers.
//!
//! The groups become the user's `team_ids`.

use plugin_api::{HookError, OpenId, SignInRequest};

/// Reads the proxy's identity headers and returns the user's identity.
///
/// # Errors
/// Rejects the sign-in when the proxy sent neither a user nor an email header, which means the
/// request did not come through an authenticating proxy.
pub fn custom_ui_sso_sign_in_handler(request: &SignInRequest<'_>) -> Result<OpenId, HookError> {
    // A proxy sets each identity header once; two values mean something upstream let a client's
    // own header through, and which one is true cannot be told.
    for name in ["x-forwarded-user", "x-forwarded-email", "oidc_claim_sub", "oidc_claim_email"] {
        if request.headers_all(name).filter(|value| !value.is_empty()).count() > 1 {
            return Err(HookError::rejected(format!(
                "the request carries more than one {name} header; refusing an ambiguous identity"
            )));
        }
    }
    let first = |names: &[&str]| names.iter().find_map(|name| request.header(name));

    let user_id = first(&["x-forwarded-user", "x-user", "oidc_claim_sub"]);
    let email = first(&["x-forwarded-email", "x-email", "oidc_claim_email"]);
    let username = first(&[
        "x-forwarded-preferred-username",
        "x-preferred-username",
        "oidc_claim_preferred_username",
    ]);
    let name = first(&["x-forwarded-name", "oidc_claim_name"]);
    if user_id.is_none() && email.is_none() {
        return Err(HookError::rejected(
            "the OAuth proxy sent no identity: expected an x-forwarded-user or \
             x-forwarded-email header",
        ));
    }

    let mut team_ids: Vec<String> = Vec::new();
    let group_lines =
        request.headers_all("x-forwarded-groups").chain(request.headers_all("oidc_claim_groups"));
    for group in group_lines.flat_map(|line| line.split(',')).map(str::trim) {
        if !group.is_empty() && !team_ids.iter().any(|known| known == group) {
            team_ids.push(group.to_owned());
        }
    }

    Ok(OpenId {
        id: user_id.or(email).map(str::to_owned),
        email: email.map(str::to_owned),
        first_name: first(&["oidc_claim_given_name"]).map(str::to_owned),
        last_name: first(&["oidc_claim_family_name"]).map(str::to_owned),
        display_name: name.or(username).map(str::to_owned),
        picture: None,
        provider: Some("oauth-proxy".to_owned()),
        team_ids,
        user_role: None,
        extra_fields: None,
    })
}

plugin_api::export_ui_sso_sign_in_handler!(custom_ui_sso_sign_in_handler);

#[cfg(test)]
mod tests {
    use plugin_api::HeaderPair;

    use super::*;

    fn sign_in(headers: &[HeaderPair<'_>]) -> Result<OpenId, HookError> {
        custom_ui_sso_sign_in_handler(&SignInRequest::new(
            "GET",
            "/sso/key/generate",
            "",
            "127.0.0.1",
            1,
            headers,
        ))
    }

    #[test]
    fn oauth2_proxy_headers_one_group_per_line() {
        let openid = sign_in(&[
            HeaderPair::new("x-forwarded-user", "alice"),
            HeaderPair::new("x-forwarded-email", "Alice@Example.test"),
            HeaderPair::new("x-forwarded-preferred-username", "alice.l"),
            HeaderPair::new("x-forwarded-groups", "admins"),
            HeaderPair::new("x-forwarded-groups", "staff"),
            HeaderPair::new("x-forwarded-groups", "admins"),
        ])
        .unwrap();
        assert_eq!(openid.id.as_deref(), Some("alice"));
        assert_eq!(openid.email.as_deref(), Some("Alice@Example.test"));
        assert_eq!(openid.display_name.as_deref(), Some("alice.l"));
        assert_eq!(openid.team_ids, ["admins", "staff"]);
        assert_eq!(openid.provider.as_deref(), Some("oauth-proxy"));
    }

    #[test]
    fn mod_auth_openidc_comma_joined_groups() {
        let openid = sign_in(&[
            HeaderPair::new("oidc_claim_sub", "bob"),
            HeaderPair::new("oidc_claim_email", "bob@example.test"),
            HeaderPair::new("oidc_claim_given_name", "Bob"),
            HeaderPair::new("oidc_claim_groups", "staff, ops,"),
        ])
        .unwrap();
        assert_eq!(openid.id.as_deref(), Some("bob"));
        assert_eq!(openid.first_name.as_deref(), Some("Bob"));
        assert_eq!(openid.team_ids, ["staff", "ops"]);
    }

    #[test]
    fn repeated_identity_headers_are_rejected() {
        let err = sign_in(&[
            HeaderPair::new("x-forwarded-user", "alice"),
            HeaderPair::new("x-forwarded-user", "root"),
        ])
        .unwrap_err();
        assert!(err.message().contains("more than one x-forwarded-user header"), "{err}");
    }

    #[test]
    fn no_identity_is_rejected_and_look_alikes_do_not_count() {
        let err =
            sign_in(&[HeaderPair::new("x_forwarded_email", "evil@example.test")]).unwrap_err();
        assert_eq!(err.kind(), plugin_api::HookErrorKind::Rejected);
        assert!(err.message().contains("x-forwarded-email"), "{err}");
    }
}
