//! The OpenID Connect relying party: authorization code flow with PKCE (S256), state and nonce;
//! ID tokens verified against the provider's keys (issuer, audience, expiry, nonce, signature);
//! userinfo merged in. The flow's state lives in an encrypted, authenticated, short-lived cookie
//! (no server memory, so a sign-in begun on one replica can finish on another); the database
//! only remembers which flows were used (by any callback carrying their state, an error callback
//! included), so a callback cannot be replayed.

use std::time::{Duration, Instant};

use openidconnect::{
    AuthUrl, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, Scope, TokenUrl,
    core::{CoreClient, CoreJsonWebKeySet, CoreProviderMetadata, CoreResponseType},
};
use plugin_api::{OpenId, UserRole};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::RwLock;

use crate::{
    config::{ClaimPaths, Endpoints, OidcSettings},
    untrusted::{MAX_SHOWN, printable},
};

/// How long discovered metadata and keys are trusted before they are fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(600);

/// Why an OIDC sign-in failed, with the status the user gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// The browser's side of the flow is wrong: no/expired/tampered flow cookie, state or issuer
    /// mismatch, a replayed callback (400; the HTTP layer maps each variant to its status).
    #[error("{0}")]
    BadCallback(String),
    /// The identity provider refused: an `error` callback, a refused code exchange, an invalid
    /// ID token (401).
    #[error("{0}")]
    Refused(String),
    /// The identity provider could not be reached or answered nonsense (502).
    #[error("{0}")]
    Upstream(String),
}

/// What the flow cookie carries between `/sso/key/generate` and `/sso/callback`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowState {
    /// Unique id, remembered once the flow completes.
    pub id: String,
    /// The `state` sent to the provider.
    pub state: String,
    /// The `nonce` sent to the provider.
    pub nonce: String,
    /// The PKCE verifier, when PKCE is used.
    pub pkce_verifier: Option<String>,
    /// Where to go after signing in (a local path).
    pub return_to: Option<String>,
    /// The redirect URI sent to the provider (the code exchange must repeat it).
    pub redirect_uri: String,
    /// When the flow started (seconds since the epoch).
    pub started_at: i64,
}

#[derive(Debug, Clone)]
struct Resolved {
    issuer: Option<String>,
    authorization: String,
    token: String,
    userinfo: Option<String>,
    jwks: Option<CoreJsonWebKeySet>,
}

/// A configured provider, with its discovered metadata cached.
pub struct OidcProvider {
    settings: OidcSettings,
    http: reqwest::Client,
    discovered: RwLock<Option<(Instant, Resolved)>>,
}

impl std::fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcProvider").field("kind", &self.settings.kind).finish_non_exhaustive()
    }
}

/// The HTTP client for talking to identity providers: no redirects (SSRF), timeouts.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .user_agent(concat!("hookgate/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a TLS client with the system's and Mozilla's roots")
}

impl OidcProvider {
    /// A provider; nothing is fetched until the first sign-in.
    pub fn new(settings: OidcSettings) -> Self {
        Self { settings, http: http_client(), discovered: RwLock::new(None) }
    }

    /// The settings.
    pub fn settings(&self) -> &OidcSettings {
        &self.settings
    }

    async fn resolve(&self, refresh: bool) -> Result<Resolved, OidcError> {
        let (issuer, overrides) = match &self.settings.endpoints {
            Endpoints::Explicit { authorization, token, userinfo } => {
                return Ok(Resolved {
                    issuer: None,
                    authorization: authorization.clone(),
                    token: token.clone(),
                    userinfo: Some(userinfo.clone()),
                    jwks: None,
                });
            }
            Endpoints::Discover { issuer, authorization, token, userinfo } => {
                (issuer, (authorization, token, userinfo))
            }
        };
        if !refresh
            && let Some((at, resolved)) = &*self.discovered.read().await
            && at.elapsed() < DISCOVERY_TTL
        {
            return Ok(resolved.clone());
        }
        let issuer_url = IssuerUrl::new(issuer.clone()).map_err(|error| {
            OidcError::Upstream(format!("invalid issuer URL {issuer:?}: {error}"))
        })?;
        let metadata = CoreProviderMetadata::discover_async(issuer_url, &self.http).await.map_err(
            |error| {
                OidcError::Upstream(format!(
                    "OpenID discovery at {issuer} failed: {}",
                    error_chain(&error)
                ))
            },
        )?;
        let token = overrides
            .1
            .clone()
            .or_else(|| metadata.token_endpoint().map(|url| url.to_string()))
            .ok_or_else(|| OidcError::Upstream(format!("{issuer} advertises no token endpoint")))?;
        let resolved = Resolved {
            issuer: Some(metadata.issuer().to_string()),
            authorization: overrides
                .0
                .clone()
                .unwrap_or_else(|| metadata.authorization_endpoint().to_string()),
            token,
            userinfo: overrides
                .2
                .clone()
                .or_else(|| metadata.userinfo_endpoint().map(|url| url.to_string())),
            jwks: Some(metadata.jwks().clone()),
        };
        *self.discovered.write().await = Some((Instant::now(), resolved.clone()));
        Ok(resolved)
    }

    fn client(
        &self,
        resolved: &Resolved,
        redirect_uri: &str,
    ) -> Result<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
        >,
        OidcError,
    > {
        let bad = |what: &str, error: &dyn std::fmt::Display| {
            OidcError::Upstream(format!("invalid {what}: {error}"))
        };
        let issuer = resolved.issuer.clone().unwrap_or_else(|| resolved.authorization.clone());
        Ok(CoreClient::new(
            ClientId::new(self.settings.client_id.clone()),
            IssuerUrl::new(issuer).map_err(|e| bad("issuer URL", &e))?,
            resolved.jwks.clone().unwrap_or_else(|| CoreJsonWebKeySet::new(Vec::new())),
        )
        .set_client_secret(ClientSecret::new(self.settings.client_secret.expose().to_owned()))
        .set_auth_uri(
            AuthUrl::new(resolved.authorization.clone())
                .map_err(|e| bad("authorization endpoint", &e))?,
        )
        .set_token_uri(
            TokenUrl::new(resolved.token.clone()).map_err(|e| bad("token endpoint", &e))?,
        )
        .set_redirect_uri(
            RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| bad("redirect URI", &e))?,
        ))
    }

    /// Starts a sign-in: the provider's authorization URL and the flow state to keep.
    pub async fn begin(
        &self,
        redirect_uri: &str,
        return_to: Option<String>,
    ) -> Result<(String, FlowState), OidcError> {
        let resolved = self.resolve(false).await?;
        let client = self.client(&resolved, redirect_uri)?;
        let mut request = client.authorize_url(
            AuthenticationFlow::<CoreResponseType>::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        );
        for scope in &self.settings.scopes {
            if scope != "openid" {
                request = request.add_scope(Scope::new(scope.clone()));
            }
        }
        let mut pkce_verifier = None;
        if self.settings.use_pkce {
            let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
            request = request.set_pkce_challenge(challenge);
            pkce_verifier = Some(verifier.secret().clone());
        }
        let (url, state, nonce) = request.url();
        let flow = FlowState {
            id: crate::session::random_hex(16),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            pkce_verifier,
            return_to,
            redirect_uri: redirect_uri.to_owned(),
            started_at: chrono::Utc::now().timestamp(),
        };
        Ok((url.to_string(), flow))
    }

    /// Finishes a sign-in from the callback's query (already checked against the flow): code
    /// exchange, ID-token verification, userinfo, then the identity.
    ///
    /// The [`Proof`] binds the account to (issuer, `sub`) — never to a changeable claim such as
    /// `preferred_username` — and says whether the provider verified the email.
    pub async fn finish(
        &self,
        flow: &FlowState,
        code: &str,
    ) -> Result<(OpenId, crate::signin::Proof), OidcError> {
        let redirect_uri = flow.redirect_uri.as_str();
        let resolved = self.resolve(false).await?;
        let client = self.client(&resolved, redirect_uri)?;
        let mut exchange = client.exchange_code(AuthorizationCode::new(code.to_owned()));
        if let Some(verifier) = &flow.pkce_verifier {
            exchange = exchange.set_pkce_verifier(PkceCodeVerifier::new(verifier.clone()));
        }
        let tokens = exchange.request_async(&self.http).await.map_err(|error| match error {
            RequestTokenError::ServerResponse(response) => OidcError::Refused(format!(
                "the identity provider refused the code exchange: {}{}",
                printable(response.error().as_ref(), MAX_SHOWN),
                response
                    .error_description()
                    .map(|d| format!(" ({})", printable(d, MAX_SHOWN)))
                    .unwrap_or_default()
            )),
            other => {
                OidcError::Upstream(format!("the code exchange failed: {}", error_chain(&other)))
            }
        })?;

        // The ID token: verified when the provider was discovered (keys known).
        let mut claims = serde_json::Map::new();
        if resolved.issuer.is_some() {
            let id_token = tokens.extra_fields().id_token().ok_or_else(|| {
                OidcError::Upstream("the identity provider returned no ID token".into())
            })?;
            let nonce = Nonce::new(flow.nonce.clone());
            match id_token.claims(&client.id_token_verifier(), &nonce) {
                Ok(_) => {}
                // Keys may have rotated since discovery: fetch them again once.
                Err(openidconnect::ClaimsVerificationError::SignatureVerification(_)) => {
                    let fresh = self.resolve(true).await?;
                    let client = self.client(&fresh, redirect_uri)?;
                    id_token.claims(&client.id_token_verifier(), &nonce).map_err(|error| {
                        OidcError::Refused(format!("invalid ID token: {error}"))
                    })?;
                }
                Err(error) => return Err(OidcError::Refused(format!("invalid ID token: {error}"))),
            }
            // Verified: its payload is trustworthy JSON.
            claims = jwt_payload(&id_token.to_string())
                .ok_or_else(|| OidcError::Upstream("the ID token payload is not JSON".into()))?;
        }

        // Userinfo, with the access token.
        if let Some(url) = &resolved.userinfo {
            let response = self
                .http
                .get(url)
                .bearer_auth(tokens.access_token().secret())
                .header(reqwest::header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(|error| {
                    OidcError::Upstream(format!("userinfo request failed: {}", error_chain(&error)))
                })?;
            let status = response.status();
            if !status.is_success() {
                return Err(OidcError::Upstream(format!(
                    "userinfo answered HTTP {}",
                    status.as_u16()
                )));
            }
            let info: Value = response
                .json()
                .await
                .map_err(|error| OidcError::Upstream(format!("userinfo is not JSON: {error}")))?;
            let Value::Object(info) = info else {
                return Err(OidcError::Upstream("userinfo is not a JSON object".into()));
            };
            if let (Some(Value::String(token_sub)), Some(Value::String(info_sub))) =
                (claims.get("sub"), info.get("sub"))
                && token_sub != info_sub
            {
                return Err(OidcError::Refused(
                    "userinfo is about another subject than the ID token".into(),
                ));
            }
            // Userinfo first, ID-token claims for what it lacks.
            for (key, value) in info {
                claims.insert(key, value);
            }
        }
        if claims.is_empty() {
            return Err(OidcError::Upstream("the identity provider gave no claims".into()));
        }
        let issuer = resolved.issuer.clone().unwrap_or_else(|| resolved.authorization.clone());
        identity_and_proof(&self.settings, &Value::Object(claims), issuer)
    }
}

/// The identity and proof a login's `claims` make, bound under `issuer`: the verified-email
/// rule when the provider requires it, the subject, and the claim mapping.
fn identity_and_proof(
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
    let proof = crate::signin::Proof {
        binding: Some(crate::signin::Binding { issuer, subject }),
        email_verified: email_verified(claims),
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

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The payload of a compact JWT, as a JSON object.
fn jwt_payload(token: &str) -> Option<serde_json::Map<String, Value>> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(map) => Some(map),
        _ => None,
    }
}

/// The value at a dot path (`realm_access.roles`).
fn at_path<'v>(claims: &'v Value, path: &str) -> Option<&'v Value> {
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

/// Maps claims to an identity with the configured claim paths.
pub fn identity(claims: &Value, paths: &ClaimPaths, provider: &str) -> OpenId {
    let mut team_ids: Vec<String> = Vec::new();
    for path in &paths.groups {
        if let Some(value) = at_path(claims, path) {
            for group in strings(value) {
                if !team_ids.contains(&group) {
                    team_ids.push(group);
                }
            }
        }
    }
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

/// Whether a callback belongs to `flow`: the flow has not expired and the callback carries its
/// `state`. A callback that does is the flow's one use, whatever else it says (the caller then
/// marks the flow used, an error callback included, so that one flow cookie cannot be replayed).
pub fn check_flow(
    flow: &FlowState,
    query: &CallbackQuery,
    timeout: Duration,
) -> Result<(), OidcError> {
    let age = chrono::Utc::now().timestamp() - flow.started_at;
    if age < 0 || age as u64 > timeout.as_secs() {
        return Err(OidcError::BadCallback(format!(
            "this sign-in took longer than {} seconds and has expired; start again",
            timeout.as_secs()
        )));
    }
    let state_matches = query
        .state
        .as_deref()
        .is_some_and(|state| crate::session::secrets_equal(state, &flow.state));
    if !state_matches {
        return Err(OidcError::BadCallback(
            "the callback's state does not match this sign-in".into(),
        ));
    }
    Ok(())
}

/// Checks a callback that belongs to its flow ([`check_flow`]): the provider's `error`, and the
/// RFC 9207 `iss` parameter. Returns the code. The provider's error text is the client's to
/// choose (anyone can send the browser here with any query): it is escaped and cut short.
pub fn check_callback<'q>(
    query: &'q CallbackQuery,
    expected_issuer: Option<&str>,
) -> Result<&'q str, OidcError> {
    if let Some(error) = &query.error {
        let description = query
            .error_description
            .as_deref()
            .map(|text| format!(" ({})", printable(text, MAX_SHOWN)))
            .unwrap_or_default();
        return Err(OidcError::Refused(format!(
            "the identity provider refused the sign-in: {}{description}",
            printable(error, MAX_SHOWN)
        )));
    }
    if let (Some(iss), Some(expected)) = (query.iss.as_deref(), expected_issuer)
        && iss.trim_end_matches('/') != expected.trim_end_matches('/')
    {
        return Err(OidcError::BadCallback(format!(
            "the callback names issuer \"{}\", not {expected:?} (RFC 9207 mix-up protection)",
            printable(iss, MAX_SHOWN)
        )));
    }
    query
        .code
        .as_deref()
        .filter(|code| !code.is_empty())
        .ok_or_else(|| OidcError::BadCallback("the callback has no code".into()))
}

impl OidcProvider {
    /// The issuer, once discovered.
    pub async fn issuer(&self) -> Option<String> {
        match &self.settings.endpoints {
            Endpoints::Explicit { .. } => None,
            Endpoints::Discover { issuer, .. } => Some(
                self.discovered
                    .read()
                    .await
                    .as_ref()
                    .and_then(|(_, resolved)| resolved.issuer.clone())
                    .unwrap_or_else(|| issuer.clone()),
            ),
        }
    }
}

/// `/sso/callback`'s query.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CallbackQuery {
    /// The authorization code.
    pub code: Option<String>,
    /// The state.
    pub state: Option<String>,
    /// RFC 9207 issuer.
    pub iss: Option<String>,
    /// An error from the provider.
    pub error: Option<String>,
    /// Its description.
    pub error_description: Option<String>,
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

    fn flow() -> FlowState {
        FlowState {
            id: "f".into(),
            state: "s1".into(),
            nonce: "n".into(),
            pkce_verifier: None,
            return_to: None,
            redirect_uri: "http://rp/sso/callback".into(),
            started_at: chrono::Utc::now().timestamp(),
        }
    }

    #[test]
    fn callbacks_are_checked_against_their_flow() {
        let timeout = Duration::from_secs(600);
        let ok = CallbackQuery {
            code: Some("c".into()),
            state: Some("s1".into()),
            iss: Some("https://idp/".into()),
            ..Default::default()
        };
        assert_eq!(check_flow(&flow(), &ok, timeout), Ok(()));
        assert_eq!(check_callback(&ok, Some("https://idp")), Ok("c"));

        let wrong_state = CallbackQuery { state: Some("s2".into()), ..ok.clone() };
        assert!(matches!(
            check_flow(&flow(), &wrong_state, timeout),
            Err(OidcError::BadCallback(_))
        ));
        let no_state = CallbackQuery { state: None, ..ok.clone() };
        assert!(matches!(check_flow(&flow(), &no_state, timeout), Err(OidcError::BadCallback(_))));
        let old = FlowState { started_at: chrono::Utc::now().timestamp() - 601, ..flow() };
        assert!(check_flow(&old, &ok, timeout).unwrap_err().to_string().contains("expired"));

        let wrong_iss = CallbackQuery { iss: Some("https://evil".into()), ..ok.clone() };
        assert!(
            check_callback(&wrong_iss, Some("https://idp"))
                .unwrap_err()
                .to_string()
                .contains("RFC 9207")
        );
        let denied = CallbackQuery {
            error: Some("access_denied".into()),
            error_description: Some("End-User aborted interaction".into()),
            code: None,
            ..ok.clone()
        };
        // An error callback with the flow's state belongs to the flow (and uses it up).
        assert_eq!(check_flow(&flow(), &denied, timeout), Ok(()));
        assert_eq!(
            check_callback(&denied, None).unwrap_err(),
            OidcError::Refused(
                "the identity provider refused the sign-in: access_denied (End-User aborted interaction)"
                    .to_owned()
            )
        );
        let no_code = CallbackQuery { code: None, ..ok };
        assert!(matches!(check_callback(&no_code, None), Err(OidcError::BadCallback(_))));
    }

    #[test]
    fn the_providers_error_text_is_escaped_and_cut() {
        let forged =
            "x\n2026-12-04T18:00:00.000000Z  INFO hookgate::signin: signed in user_id=admin";
        let query = CallbackQuery {
            error: Some("access_denied\r\nINFO forged".into()),
            error_description: Some(format!("{forged}{}", "A".repeat(7800))),
            ..Default::default()
        };
        let message = check_callback(&query, None).unwrap_err().to_string();
        assert!(!message.contains(['\n', '\r']), "{message}");
        assert!(message.contains("access_denied\\r\\nINFO forged"), "{message}");
        assert!(message.contains("x\\n2026-12-04T18:00:00.000000Z"), "{message}");
        assert!(message.chars().count() < 2 * MAX_SHOWN + 200, "{} characters", message.len());
        assert!(message.ends_with("… (7877 characters))"), "{message}");

        let iss = CallbackQuery {
            iss: Some(format!("https://evil\n{}", "e".repeat(9000))),
            code: Some("c".into()),
            ..Default::default()
        };
        let message = check_callback(&iss, Some("https://idp")).unwrap_err().to_string();
        assert!(!message.contains('\n') && message.len() < 400, "{message}");
    }
}
