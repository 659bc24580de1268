//! The identity provider: discovery of its endpoints and keys (cached for [`DISCOVERY_TTL`]),
//! the openidconnect client, the start of a sign-in and the code exchange that finishes it
//! (ID-token verification, userinfo).

use std::time::{Duration, Instant};

use openidconnect::{
    AuthUrl, AuthenticationFlow, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, Scope, TokenUrl,
    core::{CoreClient, CoreJsonWebKeySet, CoreProviderMetadata, CoreResponseType},
};
use plugin_api::OpenId;
use serde_json::Value;
use tokio::sync::RwLock;

use super::{
    FlowState, OidcError,
    claims::identity_and_proof,
    graph::{GroupSource, graph_groups, group_source},
};
use crate::{
    config::{Endpoints, OidcSettings},
    untrusted::{MAX_SHOWN, printable},
};

/// How long discovered metadata and keys are trusted before they are fetched again.
const DISCOVERY_TTL: Duration = Duration::from_secs(600);

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
        } else if self.settings.graph.is_some() {
            // Microsoft (fixed endpoints, no keys fetched): the ID token came straight from the
            // token endpoint over TLS in answer to this client's authenticated request, which
            // OpenID Connect Core 3.1.3.7 (6) accepts in place of its signature; its audience
            // and nonce are still checked. It carries `sub` and the `groups` claim.
            let id_token = tokens.extra_fields().id_token().ok_or_else(|| {
                OidcError::Upstream("the identity provider returned no ID token".into())
            })?;
            claims = jwt_payload(&id_token.to_string())
                .ok_or_else(|| OidcError::Upstream("the ID token payload is not JSON".into()))?;
            check_direct_id_token(&claims, &self.settings.client_id, &flow.nonce)?;
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
        let claims = Value::Object(claims);
        let (mut openid, proof) = identity_and_proof(&self.settings, &claims, issuer)?;
        if let Some(graph) = &self.settings.graph
            && group_source(&claims, &self.settings.claims.groups, graph) == GroupSource::Graph
        {
            openid.team_ids =
                graph_groups(&self.http, graph, tokens.access_token().secret()).await?;
        }
        Ok((openid, proof))
    }
}

/// The checks left for an ID token taken straight from the token endpoint: it names this
/// client among its audiences and carries this flow's nonce.
fn check_direct_id_token(
    claims: &serde_json::Map<String, Value>,
    client_id: &str,
    nonce: &str,
) -> Result<(), OidcError> {
    let audience = match claims.get("aud") {
        Some(Value::String(aud)) => aud == client_id,
        Some(Value::Array(auds)) => auds.iter().any(|aud| aud.as_str() == Some(client_id)),
        _ => false,
    };
    if !audience {
        return Err(OidcError::Refused("invalid ID token: it is not for this client".into()));
    }
    if claims.get("nonce").and_then(Value::as_str) != Some(nonce) {
        return Err(OidcError::Refused("invalid ID token: its nonce is not this sign-in's".into()));
    }
    Ok(())
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

pub(super) fn error_chain(error: &dyn std::error::Error) -> String {
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
