//! OpenID Connect providers, from LiteLLM's environment variables: Google, Microsoft, or a
//! generic provider (with discovery when an issuer URL is given). Precedence as in LiteLLM:
//! Google, then Microsoft, then generic.
//!
//! Which claims give the groups, id and email: LiteLLM's config keys
//! (`ui_access_mode.sso_group_jwt_field`, `litellm_jwtauth.team_ids_jwt_field`,
//! `litellm_jwtauth.user_id_jwt_field`, `litellm_jwtauth.user_email_jwt_field`) win over
//! hookgate's environment aliases (`GENERIC_USER_GROUPS_ATTRIBUTE`, `*_USER_ID_ATTRIBUTE`,
//! `*_USER_EMAIL_ATTRIBUTE`); when both are set and differ, a warning says which is used
//! ([`pick`]).

use super::Secret;

/// Which provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// `GOOGLE_CLIENT_ID`.
    Google,
    /// `MICROSOFT_CLIENT_ID`.
    Microsoft,
    /// `GENERIC_CLIENT_ID`.
    Generic,
}

impl ProviderKind {
    /// The name recorded as the identity's provider.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Google => "google",
            ProviderKind::Microsoft => "microsoft",
            ProviderKind::Generic => "generic",
        }
    }
}

/// Where the provider's endpoints come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoints {
    /// OpenID discovery at this issuer (`<issuer>/.well-known/openid-configuration`); ID tokens
    /// are then fully verified. Explicit endpoints, when given, override the discovered ones.
    Discover {
        /// The issuer URL.
        issuer: String,
        /// Overrides.
        authorization: Option<String>,
        /// Overrides.
        token: Option<String>,
        /// Overrides.
        userinfo: Option<String>,
    },
    /// Fixed endpoints, as LiteLLM configures them; the identity comes from userinfo, fetched
    /// with the access token straight from the token endpoint.
    Explicit {
        /// The authorization endpoint.
        authorization: String,
        /// The token endpoint.
        token: String,
        /// The userinfo endpoint.
        userinfo: String,
    },
}

/// Which claims (dot paths into the userinfo/ID-token JSON) make the identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimPaths {
    /// `…_USER_ID_ATTRIBUTE`.
    pub id: Vec<String>,
    /// `…_USER_EMAIL_ATTRIBUTE`.
    pub email: Vec<String>,
    /// `…_USER_DISPLAY_NAME_ATTRIBUTE`.
    pub display_name: Vec<String>,
    /// `…_USER_FIRST_NAME_ATTRIBUTE`.
    pub first_name: Vec<String>,
    /// `…_USER_LAST_NAME_ATTRIBUTE`.
    pub last_name: Vec<String>,
    /// `…_USER_ROLE_ATTRIBUTE`.
    pub role: Vec<String>,
    /// `ui_access_mode.sso_group_jwt_field`, `litellm_jwtauth.team_ids_jwt_field` or
    /// `GENERIC_USER_GROUPS_ATTRIBUTE`: becomes `team_ids`.
    pub groups: Vec<String>,
    /// `role_mappings.group_claim` or `GENERIC_ROLE_MAPPINGS_GROUP_CLAIM`: the claim the role
    /// mapping reads its groups from; empty: the groups above.
    pub role_groups: Vec<String>,
    /// Picture URL.
    pub picture: Vec<String>,
}

/// A configured provider.
#[derive(Debug, Clone, PartialEq)]
pub struct OidcSettings {
    /// Which.
    pub kind: ProviderKind,
    /// Client id.
    pub client_id: String,
    /// Client secret.
    pub client_secret: Secret,
    /// Endpoints.
    pub endpoints: Endpoints,
    /// Scopes to request (`openid` is always among them).
    pub scopes: Vec<String>,
    /// Whether to use PKCE (S256); default on (`GENERIC_CLIENT_USE_PKCE=false` turns it off).
    pub use_pkce: bool,
    /// Claim paths.
    pub claims: ClaimPaths,
    /// Refuse identities whose `email_verified` claim is false (Google).
    pub require_verified_email: bool,
    /// Microsoft Graph, for the groups of `MICROSOFT_*` sign-ins; `None` for other providers.
    pub graph: Option<GraphSettings>,
}

/// Where and how Microsoft sign-ins read groups that the ID token does not carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphSettings {
    /// Graph's versioned API base, without a trailing slash (`https://graph.microsoft.com/v1.0`;
    /// `MICROSOFT_GRAPH_URL` names the host part, LiteLLM's `MICROSOFT_GRAPH_ENDPOINT` the whole).
    pub api: String,
    /// `MICROSOFT_GROUPS_AS_NAMES=true`: groups are the groups' display names, read from Graph,
    /// instead of their object ids.
    pub groups_as_names: bool,
}

/// The claim settings of the config file: LiteLLM's names, which win over hookgate's aliases.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct FileClaims {
    /// `general_settings.oidc_issuer`.
    pub(super) issuer: Option<String>,
    /// `general_settings.ui_access_mode.sso_group_jwt_field`.
    pub(super) sso_group_jwt_field: Option<String>,
    /// `general_settings.litellm_jwtauth.team_ids_jwt_field`.
    pub(super) team_ids_jwt_field: Option<String>,
    /// `general_settings.litellm_jwtauth.user_id_jwt_field`.
    pub(super) user_id_jwt_field: Option<String>,
    /// `general_settings.litellm_jwtauth.user_email_jwt_field`.
    pub(super) user_email_jwt_field: Option<String>,
    /// `general_settings.role_mappings.group_claim`.
    pub(super) role_group_claim: Option<String>,
}

const SSO_GROUP_JWT_FIELD: &str = "general_settings.ui_access_mode.sso_group_jwt_field";
const TEAM_IDS_JWT_FIELD: &str = "general_settings.litellm_jwtauth.team_ids_jwt_field";
const ROLE_GROUP_CLAIM: &str = "general_settings.role_mappings.group_claim";
const ROLE_GROUP_CLAIM_VAR: &str = "GENERIC_ROLE_MAPPINGS_GROUP_CLAIM";
const USER_ID_JWT_FIELD: &str = "general_settings.litellm_jwtauth.user_id_jwt_field";
const USER_EMAIL_JWT_FIELD: &str = "general_settings.litellm_jwtauth.user_email_jwt_field";

/// The precedence rule for a setting with several names: the first one set wins (callers list
/// LiteLLM's names first, then hookgate's alias). Returns the winning value, or `None` when no
/// name is set, and a warning when another name is set to a different value.
pub(super) fn pick(names: &[(&str, Option<String>)]) -> (Option<String>, Option<String>) {
    let set: Vec<(&str, &str)> = names
        .iter()
        .filter_map(|(name, value)| {
            value.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(|v| (*name, v))
        })
        .collect();
    let Some(&(winner, value)) = set.first() else { return (None, None) };
    let differing: Vec<String> = set[1..]
        .iter()
        .filter(|(_, other)| paths(Some(other.to_string()), &[]) != paths(Some(value.into()), &[]))
        .map(|(name, other)| format!("{name} ({other:?})"))
        .collect();
    let warning = (!differing.is_empty()).then(|| {
        format!(
            "{winner} ({value:?}) and {} are both set and differ: using {winner} (LiteLLM's name \
             wins over hookgate's alias)",
            differing.join(" and ")
        )
    });
    (Some(value.to_owned()), warning)
}

fn paths(value: Option<String>, default: &[&str]) -> Vec<String> {
    match value {
        Some(value) => {
            value.split(',').map(|path| path.trim().to_owned()).filter(|p| !p.is_empty()).collect()
        }
        None => default.iter().map(|path| (*path).to_owned()).collect(),
    }
}

/// The provider the environment configures, if any. `env` reads a variable (empty counts as
/// unset); `file` holds the config file's settings. Conflicting names are pushed to `warnings`.
pub(super) fn from_env(
    env: &dyn Fn(&str) -> Option<String>,
    file: FileClaims,
    warnings: &mut Vec<String>,
) -> Result<Option<OidcSettings>, String> {
    let var = |name: &str| env(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
    let graph = match (var("GOOGLE_CLIENT_ID"), var("MICROSOFT_CLIENT_ID")) {
        (None, Some(_)) => Some(graph_settings(&var, warnings)?),
        _ => None,
    };
    // One claim setting: LiteLLM's names from the file, then the environment alias `alias`.
    let mut claim = |litellm: &[(&str, &Option<String>)], alias: Option<&str>, default: &[&str]| {
        let mut names: Vec<(String, Option<String>)> =
            litellm.iter().map(|(name, value)| ((*name).to_owned(), (*value).clone())).collect();
        if let Some(alias) = alias {
            names.push((format!("environment variable {alias}"), var(alias)));
        }
        let names: Vec<(&str, Option<String>)> =
            names.iter().map(|(name, value)| (name.as_str(), value.clone())).collect();
        let (value, warning) = pick(&names);
        warnings.extend(warning);
        paths(value, default)
    };
    let groups_names = [
        (SSO_GROUP_JWT_FIELD, &file.sso_group_jwt_field),
        (TEAM_IDS_JWT_FIELD, &file.team_ids_jwt_field),
    ];
    let id_names = [(USER_ID_JWT_FIELD, &file.user_id_jwt_field)];
    let email_names = [(USER_EMAIL_JWT_FIELD, &file.user_email_jwt_field)];
    let role_group_names = [(ROLE_GROUP_CLAIM, &file.role_group_claim)];
    let issuer_setting = file.issuer.clone();
    let require = |name: &str, why: &str| {
        var(name).ok_or_else(|| format!("environment variable {name} is required with {why}"))
    };
    let check_url = |name: &str, url: String| {
        if url.starts_with("https://") || url.starts_with("http://") {
            Ok(url)
        } else {
            Err(format!("{name}={url:?}: must be an http(s) URL"))
        }
    };
    let pkce = match var("GENERIC_CLIENT_USE_PKCE").as_deref() {
        None => true,
        Some(value) if value.eq_ignore_ascii_case("true") || value == "1" => true,
        Some(value) if value.eq_ignore_ascii_case("false") || value == "0" => false,
        Some(other) => {
            return Err(format!("GENERIC_CLIENT_USE_PKCE={other:?}: expected true or false"));
        }
    };

    if let Some(client_id) = var("GOOGLE_CLIENT_ID") {
        let secret = require("GOOGLE_CLIENT_SECRET", "GOOGLE_CLIENT_ID")?;
        return Ok(Some(OidcSettings {
            kind: ProviderKind::Google,
            client_id,
            client_secret: Secret::new(secret),
            endpoints: Endpoints::Discover {
                issuer: "https://accounts.google.com".to_owned(),
                authorization: None,
                token: None,
                userinfo: None,
            },
            scopes: vec!["openid".into(), "email".into(), "profile".into()],
            use_pkce: true,
            claims: ClaimPaths {
                id: claim(&id_names, None, &["sub"]),
                email: claim(&email_names, None, &["email"]),
                display_name: paths(None, &["name"]),
                first_name: paths(None, &["given_name"]),
                last_name: paths(None, &["family_name"]),
                role: Vec::new(),
                groups: claim(&groups_names, None, &[]),
                role_groups: claim(&role_group_names, Some(ROLE_GROUP_CLAIM_VAR), &[]),
                picture: paths(None, &["picture"]),
            },
            require_verified_email: true,
            graph: None,
        }));
    }

    if let Some(client_id) = var("MICROSOFT_CLIENT_ID") {
        let secret = require("MICROSOFT_CLIENT_SECRET", "MICROSOFT_CLIENT_ID")?;
        let tenant = require("MICROSOFT_TENANT", "MICROSOFT_CLIENT_ID")?;
        let base = format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0");
        let endpoint = |name: &str, default: String| {
            var(name).map(|url| check_url(name, url)).unwrap_or(Ok(default))
        };
        let graph = graph.ok_or("MICROSOFT_CLIENT_ID without Graph settings")?;
        let id = claim(&id_names, Some("MICROSOFT_USER_ID_ATTRIBUTE"), &["id"]);
        let email = claim(
            &email_names,
            Some("MICROSOFT_USER_EMAIL_ATTRIBUTE"),
            &["userPrincipalName", "mail"],
        );
        let groups = claim(&groups_names, None, &["groups"]);
        return Ok(Some(OidcSettings {
            kind: ProviderKind::Microsoft,
            client_id,
            client_secret: Secret::new(secret),
            endpoints: Endpoints::Explicit {
                authorization: endpoint(
                    "MICROSOFT_AUTHORIZATION_ENDPOINT",
                    format!("{base}/authorize"),
                )?,
                token: endpoint("MICROSOFT_TOKEN_ENDPOINT", format!("{base}/token"))?,
                userinfo: endpoint("MICROSOFT_USERINFO_ENDPOINT", format!("{}/me", graph.api))?,
            },
            scopes: vec!["openid".into(), "User.Read".into(), "email".into()],
            use_pkce: true,
            claims: ClaimPaths {
                id,
                email,
                display_name: paths(var("MICROSOFT_USER_DISPLAY_NAME_ATTRIBUTE"), &["displayName"]),
                first_name: paths(var("MICROSOFT_USER_FIRST_NAME_ATTRIBUTE"), &["givenName"]),
                last_name: paths(var("MICROSOFT_USER_LAST_NAME_ATTRIBUTE"), &["surname"]),
                role: paths(None, &["roles", "app_roles"]),
                // The ID token's `groups` claim, or Graph when the token has too many to carry.
                groups,
                role_groups: claim(&role_group_names, Some(ROLE_GROUP_CLAIM_VAR), &[]),
                picture: Vec::new(),
            },
            require_verified_email: false,
            graph: Some(graph),
        }));
    }

    let Some(client_id) = var("GENERIC_CLIENT_ID") else {
        return Ok(None);
    };
    let secret = require("GENERIC_CLIENT_SECRET", "GENERIC_CLIENT_ID")?;
    let issuer =
        var("GENERIC_ISSUER").or(issuer_setting.filter(|issuer| !issuer.trim().is_empty()));
    let endpoint = |name: &str| var(name).map(|url| check_url(name, url)).transpose();
    let endpoints = match issuer {
        Some(issuer) => Endpoints::Discover {
            issuer: check_url("GENERIC_ISSUER", issuer.trim_end_matches('/').to_owned())?,
            authorization: endpoint("GENERIC_AUTHORIZATION_ENDPOINT")?,
            token: endpoint("GENERIC_TOKEN_ENDPOINT")?,
            userinfo: endpoint("GENERIC_USERINFO_ENDPOINT")?,
        },
        None => {
            let why = "GENERIC_CLIENT_ID unless GENERIC_ISSUER (or general_settings.oidc_issuer) enables discovery";
            Endpoints::Explicit {
                authorization: check_url(
                    "GENERIC_AUTHORIZATION_ENDPOINT",
                    require("GENERIC_AUTHORIZATION_ENDPOINT", why)?,
                )?,
                token: check_url(
                    "GENERIC_TOKEN_ENDPOINT",
                    require("GENERIC_TOKEN_ENDPOINT", why)?,
                )?,
                userinfo: check_url(
                    "GENERIC_USERINFO_ENDPOINT",
                    require("GENERIC_USERINFO_ENDPOINT", why)?,
                )?,
            }
        }
    };
    let mut scopes: Vec<String> = var("GENERIC_SCOPE")
        .unwrap_or_else(|| "openid email profile".to_owned())
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if !scopes.iter().any(|scope| scope == "openid") {
        scopes.insert(0, "openid".to_owned());
    }
    Ok(Some(OidcSettings {
        kind: ProviderKind::Generic,
        client_id,
        client_secret: Secret::new(secret),
        endpoints,
        scopes,
        use_pkce: pkce,
        claims: ClaimPaths {
            // LiteLLM's defaults, with `sub` as the last resort for the id.
            id: claim(&id_names, Some("GENERIC_USER_ID_ATTRIBUTE"), &["preferred_username", "sub"]),
            email: claim(&email_names, Some("GENERIC_USER_EMAIL_ATTRIBUTE"), &["email"]),
            display_name: paths(var("GENERIC_USER_DISPLAY_NAME_ATTRIBUTE"), &["name", "sub"]),
            first_name: paths(
                var("GENERIC_USER_FIRST_NAME_ATTRIBUTE"),
                &["first_name", "given_name"],
            ),
            last_name: paths(
                var("GENERIC_USER_LAST_NAME_ATTRIBUTE"),
                &["last_name", "family_name"],
            ),
            role: paths(var("GENERIC_USER_ROLE_ATTRIBUTE"), &["role"]),
            groups: claim(&groups_names, Some("GENERIC_USER_GROUPS_ATTRIBUTE"), &["groups"]),
            role_groups: claim(&role_group_names, Some(ROLE_GROUP_CLAIM_VAR), &[]),
            picture: paths(None, &["picture"]),
        },
        require_verified_email: false,
        graph: None,
    }))
}

/// Microsoft Graph's settings: `MICROSOFT_GRAPH_ENDPOINT` (LiteLLM's name: the versioned API
/// base) wins over `MICROSOFT_GRAPH_URL` (hookgate's: the host, `/v1.0` added); the default is
/// `https://graph.microsoft.com/v1.0` (GCC High: `MICROSOFT_GRAPH_URL=https://graph.microsoft.us`).
fn graph_settings(
    var: &dyn Fn(&str) -> Option<String>,
    warnings: &mut Vec<String>,
) -> Result<GraphSettings, String> {
    let (api, warning) = pick(&[
        ("environment variable MICROSOFT_GRAPH_ENDPOINT", var("MICROSOFT_GRAPH_ENDPOINT")),
        (
            "environment variable MICROSOFT_GRAPH_URL",
            var("MICROSOFT_GRAPH_URL").map(|url| format!("{}/v1.0", url.trim_end_matches('/'))),
        ),
    ]);
    warnings.extend(warning);
    let api = api.unwrap_or_else(|| "https://graph.microsoft.com/v1.0".to_owned());
    let api = api.trim_end_matches('/').to_owned();
    if !(api.starts_with("https://") || api.starts_with("http://")) || api.contains(['?', '#']) {
        return Err(format!(
            "MICROSOFT_GRAPH_URL / MICROSOFT_GRAPH_ENDPOINT ({api:?}): must be an http(s) URL \
             such as https://graph.microsoft.us"
        ));
    }
    let groups_as_names = match var("MICROSOFT_GROUPS_AS_NAMES").as_deref() {
        None => false,
        Some(value) if value.eq_ignore_ascii_case("true") || value == "1" => true,
        Some(value) if value.eq_ignore_ascii_case("false") || value == "0" => false,
        Some(other) => {
            return Err(format!("MICROSOFT_GROUPS_AS_NAMES={other:?}: expected true or false"));
        }
    };
    Ok(GraphSettings { api, groups_as_names })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(value: &str) -> Option<String> {
        Some(value.to_owned())
    }

    #[test]
    fn litellms_name_wins_over_hookgates_alias_and_a_difference_is_named() {
        assert_eq!(pick(&[("a", None), ("b", None)]), (None, None));
        assert_eq!(pick(&[("a", None), ("b", some("groups"))]), (some("groups"), None));
        assert_eq!(pick(&[("a", some(" x.y ")), ("b", some("x.y"))]), (some("x.y"), None));
        let (value, warning) = pick(&[
            ("ui", None),
            ("jwtauth", some("resource_access.app.groups")),
            ("env", some("groups")),
        ]);
        assert_eq!(value, some("resource_access.app.groups"));
        assert_eq!(
            warning.unwrap(),
            "jwtauth (\"resource_access.app.groups\") and env (\"groups\") are both set and \
             differ: using jwtauth (LiteLLM's name wins over hookgate's alias)"
        );
        // An empty value counts as unset.
        assert_eq!(pick(&[("a", some("  ")), ("b", some("g"))]), (some("g"), None));
    }

    #[test]
    fn graphs_base_url_and_the_names_setting() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_owned())
        };
        let mut warnings = Vec::new();
        let default = graph_settings(&env(&[]), &mut warnings).unwrap();
        assert_eq!(default.api, "https://graph.microsoft.com/v1.0");
        assert!(!default.groups_as_names);
        let gcc = graph_settings(
            &env(&[
                ("MICROSOFT_GRAPH_URL", "https://graph.microsoft.us/"),
                ("MICROSOFT_GROUPS_AS_NAMES", "true"),
            ]),
            &mut warnings,
        )
        .unwrap();
        assert_eq!(gcc.api, "https://graph.microsoft.us/v1.0");
        assert!(gcc.groups_as_names && warnings.is_empty());
        let both = graph_settings(
            &env(&[
                ("MICROSOFT_GRAPH_URL", "https://graph.microsoft.us"),
                ("MICROSOFT_GRAPH_ENDPOINT", "https://dod-graph.microsoft.us/v1.0"),
            ]),
            &mut warnings,
        )
        .unwrap();
        assert_eq!(both.api, "https://dod-graph.microsoft.us/v1.0");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            graph_settings(&env(&[("MICROSOFT_GROUPS_AS_NAMES", "yes")]), &mut warnings)
                .unwrap_err()
                .contains("expected true or false")
        );
        assert!(
            graph_settings(&env(&[("MICROSOFT_GRAPH_URL", "graph.microsoft.us")]), &mut warnings)
                .unwrap_err()
                .contains("must be an http(s) URL")
        );
    }
}
