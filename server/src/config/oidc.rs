//! OpenID Connect providers, from LiteLLM's environment variables: Google, Microsoft, or a
//! generic provider (with discovery when an issuer URL is given). Precedence as in LiteLLM:
//! Google, then Microsoft, then generic.

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
    /// `GENERIC_USER_GROUPS_ATTRIBUTE`: becomes `team_ids`.
    pub groups: Vec<String>,
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
/// unset); `issuer_setting` is `general_settings.oidc_issuer`.
pub(super) fn from_env(
    env: &dyn Fn(&str) -> Option<String>,
    issuer_setting: Option<String>,
) -> Result<Option<OidcSettings>, String> {
    let var = |name: &str| env(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
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
                id: paths(None, &["sub"]),
                email: paths(None, &["email"]),
                display_name: paths(None, &["name"]),
                first_name: paths(None, &["given_name"]),
                last_name: paths(None, &["family_name"]),
                role: Vec::new(),
                groups: Vec::new(),
                picture: paths(None, &["picture"]),
            },
            require_verified_email: true,
        }));
    }

    if let Some(client_id) = var("MICROSOFT_CLIENT_ID") {
        let secret = require("MICROSOFT_CLIENT_SECRET", "MICROSOFT_CLIENT_ID")?;
        let tenant = require("MICROSOFT_TENANT", "MICROSOFT_CLIENT_ID")?;
        let base = format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0");
        let endpoint = |name: &str, default: String| {
            var(name).map(|url| check_url(name, url)).unwrap_or(Ok(default))
        };
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
                userinfo: endpoint(
                    "MICROSOFT_USERINFO_ENDPOINT",
                    "https://graph.microsoft.com/v1.0/me".to_owned(),
                )?,
            },
            scopes: vec!["openid".into(), "User.Read".into(), "email".into()],
            use_pkce: true,
            claims: ClaimPaths {
                id: paths(var("MICROSOFT_USER_ID_ATTRIBUTE"), &["id"]),
                email: paths(var("MICROSOFT_USER_EMAIL_ATTRIBUTE"), &["userPrincipalName", "mail"]),
                display_name: paths(var("MICROSOFT_USER_DISPLAY_NAME_ATTRIBUTE"), &["displayName"]),
                first_name: paths(var("MICROSOFT_USER_FIRST_NAME_ATTRIBUTE"), &["givenName"]),
                last_name: paths(var("MICROSOFT_USER_LAST_NAME_ATTRIBUTE"), &["surname"]),
                role: paths(None, &["roles", "app_roles"]),
                groups: Vec::new(),
                picture: Vec::new(),
            },
            require_verified_email: false,
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
            id: paths(var("GENERIC_USER_ID_ATTRIBUTE"), &["preferred_username", "sub"]),
            email: paths(var("GENERIC_USER_EMAIL_ATTRIBUTE"), &["email"]),
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
            groups: paths(var("GENERIC_USER_GROUPS_ATTRIBUTE"), &["groups"]),
            picture: paths(None, &["picture"]),
        },
        require_verified_email: false,
    }))
}
