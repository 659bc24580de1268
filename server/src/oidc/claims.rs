//! From a provider's claims to hookgate's identity: the claim paths of the configuration
//! (dot paths such as `realm_access.roles`), the subject binding and the verified-email rule.

use plugin_api::{OpenId, UserRole};
use serde_json::Value;

use super::OidcError;
use crate::config::{ClaimPaths, Endpoints, OidcSettings};

/// The identity and proof a login's `claims` make, bound under `issuer`: the verified-email
/// rule when the provider requires it, the subject, and the claim mapping.
pub(super) fn identity_and_proof(
    settings: &OidcSettings,
    claims: &Value,
    issuer: String,
) -> Result<(OpenId, crate::signin::Proof), OidcError> {
    if settings.require_verified_email && !email_verified(claims) {
        return Err(OidcError::Refused(
            "the identity provider has not verified this email address".into(),
        ));
    }
    let subject = match claims.get("sub") {
        Some(Value::String(sub)) if !sub.trim().is_empty() => sub.trim().to_owned(),
        _ => {
            return Err(OidcError::Upstream(
                "the identity provider named no subject (`sub` claim)".into(),
            ));
        }
    };
    // The role mapping's own group claim, when one is configured.
    let role_groups = (!settings.claims.role_groups.is_empty())
        .then(|| groups_at(claims, &settings.claims.role_groups));
    // Microsoft's object id (`oid`), which Entra provisions as the SCIM `externalId`.
    let directory_id = match (&settings.kind, claims.get("oid")) {
        (crate::config::ProviderKind::Microsoft, Some(Value::String(oid)))
            if !oid.trim().is_empty() =>
        {
            Some(oid.trim().to_owned())
        }
        _ => None,
    };
    let proof = crate::signin::Proof {
        binding: Some(crate::signin::Binding { issuer, subject }),
        email_verified: email_verified(claims),
        role_groups,
        directory_id,
    };
    Ok((identity(claims, &settings.claims, settings.kind.as_str()), proof))
}

/// The identity and proof the callback would make of `claims` (`hookgate try --claims`), with
/// the issuer taken from the `iss` claim or the configuration (no provider is contacted).
pub fn identity_of_claims(
    settings: &OidcSettings,
    claims: &Value,
) -> Result<(OpenId, crate::signin::Proof), String> {
    if !claims.is_object() {
        return Err("the claims must be a JSON object".into());
    }
    let issuer = match (claims.get("iss"), &settings.endpoints) {
        (Some(Value::String(iss)), _) if !iss.trim().is_empty() => iss.trim().to_owned(),
        (_, Endpoints::Discover { issuer, .. }) => issuer.clone(),
        (_, Endpoints::Explicit { authorization, .. }) => authorization.clone(),
    };
    identity_and_proof(settings, claims, issuer).map_err(|error| error.to_string())
}

/// `email_verified: true` (some providers send the string `"true"`).
fn email_verified(claims: &Value) -> bool {
    match claims.get("email_verified") {
        Some(Value::Bool(verified)) => *verified,
        Some(Value::String(text)) => text.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// The value at a dot path (`realm_access.roles`).
pub(super) fn at_path<'v>(claims: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(claims, |value, key| value.get(key))
}

fn first_string(claims: &Value, paths: &[String]) -> Option<String> {
    paths.iter().find_map(|path| match at_path(claims, path)? {
        Value::String(text) if !text.trim().is_empty() => Some(text.trim().to_owned()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    })
}

fn strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(text) => {
            text.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
        }
        Value::Array(items) => {
            items.iter().filter_map(|item| item.as_str().map(str::to_owned)).collect()
        }
        _ => Vec::new(),
    }
}

/// The groups at `paths`, each once, in order.
fn groups_at(claims: &Value, paths: &[String]) -> Vec<String> {
    let mut groups: Vec<String> = Vec::new();
    for path in paths {
        if let Some(value) = at_path(claims, path) {
            for group in strings(value) {
                if !groups.contains(&group) {
                    groups.push(group);
                }
            }
        }
    }
    groups
}

/// Maps claims to an identity with the configured claim paths.
pub fn identity(claims: &Value, paths: &ClaimPaths, provider: &str) -> OpenId {
    let team_ids = groups_at(claims, &paths.groups);
    // The highest-privilege role among those given (LiteLLM's hierarchy).
    let user_role = paths
        .role
        .iter()
        .filter_map(|path| at_path(claims, path))
        .flat_map(strings)
        .filter_map(|role| role.parse::<UserRole>().ok())
        .min();
    OpenId {
        id: first_string(claims, &paths.id),
        email: first_string(claims, &paths.email).map(|email| email.to_lowercase()),
        first_name: first_string(claims, &paths.first_name),
        last_name: first_string(claims, &paths.last_name),
        display_name: first_string(claims, &paths.display_name),
        picture: first_string(claims, &paths.picture),
        provider: Some(provider.to_owned()),
        team_ids,
        user_role,
        extra_fields: Some(claims.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn paths() -> ClaimPaths {
        ClaimPaths {
            id: vec!["preferred_username".into(), "sub".into()],
            email: vec!["email".into()],
            display_name: vec!["name".into()],
            first_name: vec!["given_name".into()],
            last_name: vec!["family_name".into()],
            role: vec!["realm_access.roles".into()],
            groups: vec!["groups".into()],
            role_groups: vec![],
            picture: vec![],
        }
    }

    #[test]
    fn claims_map_through_dot_paths() {
        let claims = json!({
            "sub": "abc", "email": "Alice@Example.TEST", "name": "Alice L",
            "groups": ["admins", "staff", "admins"],
            "realm_access": {"roles": ["internal_user", "PROXY_ADMIN", "nonsense"]}
        });
        let openid = identity(&claims, &paths(), "generic");
        assert_eq!(openid.id.as_deref(), Some("abc"), "falls back to sub");
        assert_eq!(openid.email.as_deref(), Some("alice@example.test"));
        assert_eq!(openid.team_ids, ["admins", "staff"]);
        assert_eq!(openid.user_role, Some(UserRole::ProxyAdmin), "the highest role wins");
        assert_eq!(openid.provider.as_deref(), Some("generic"));
        let comma = identity(&json!({"sub": "x", "groups": "a, b"}), &paths(), "generic");
        assert_eq!(comma.team_ids, ["a", "b"]);
    }

    #[test]
    fn the_role_mappings_own_claim_gives_the_role_groups() {
        use crate::config::{Endpoints, OidcSettings, ProviderKind, Secret};
        let mut settings = OidcSettings {
            kind: ProviderKind::Generic,
            client_id: "c".into(),
            client_secret: Secret::new("s"),
            endpoints: Endpoints::Explicit {
                authorization: "https://idp.example/a".into(),
                token: "https://idp.example/t".into(),
                userinfo: "https://idp.example/u".into(),
            },
            scopes: vec!["openid".into()],
            use_pkce: true,
            claims: paths(),
            require_verified_email: false,
            graph: None,
        };
        let claims =
            json!({"sub": "s", "groups": ["eng"], "realm_access": {"roles": ["auditors", "x"]}});
        let (openid, proof) = identity_and_proof(&settings, &claims, "i".into()).unwrap();
        assert_eq!(openid.team_ids, ["eng"]);
        assert_eq!(
            proof.role_groups, None,
            "no claim of its own: the role mapping reads the groups"
        );
        settings.claims.role_groups = vec!["realm_access.roles".into()];
        let (openid, proof) = identity_and_proof(&settings, &claims, "i".into()).unwrap();
        assert_eq!(openid.team_ids, ["eng"], "the groups are unchanged");
        assert_eq!(
            proof.role_groups.as_deref(),
            Some(&["auditors".to_owned(), "x".to_owned()][..])
        );
    }
}
