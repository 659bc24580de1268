//! An in-process OpenID provider for the integration tests: discovery, JWKS, an authorization
//! endpoint that approves at once (or refuses, as told), a token endpoint that checks client
//! credentials, codes, redirect URIs and PKCE (S256), and userinfo. It also plays Microsoft
//! (`microsoft_env`): a fake Graph under `/graph/v1.0` lists the user's groups page by page
//! (`fake_graph`). What it signs can be made
//! wrong on purpose (nonce, audience, expiry, key, `alg: none`, issuer) to test the relying
//! party's checks.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::{
    Form, Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The client the tests register.
pub const CLIENT_ID: &str = "hookgate-test";
/// Its secret.
pub const CLIENT_SECRET: &str = "hookgate-test-secret";
const KID: &str = "test-key";

/// How the provider behaves for the next sign-ins.
#[derive(Debug, Clone)]
pub struct Behavior {
    /// The user's claims (userinfo; `sub` also goes into the ID token).
    pub claims: Value,
    /// Refuse at the authorization endpoint with this error and description.
    pub deny: Option<(String, String)>,
    /// Put this nonce in the ID token instead of the one asked for.
    pub nonce: Option<String>,
    /// Put this audience in the ID token instead of the client id.
    pub audience: Option<String>,
    /// Put this issuer in the ID token instead of the provider's.
    pub token_issuer: Option<String>,
    /// Send this `iss` in the callback instead of the provider's (RFC 9207).
    pub callback_issuer: Option<String>,
    /// Issue an ID token that expired an hour ago.
    pub expired: bool,
    /// Sign with a key that is not in the JWKS.
    pub wrong_key: bool,
    /// Send an unsigned (`alg: none`) ID token.
    pub alg_none: bool,
    /// Answer userinfo with this status instead of the claims.
    pub userinfo_status: Option<u16>,
    /// Answer userinfo with a 307 to this URL instead of the claims.
    pub userinfo_redirect: Option<String>,
    /// Answer userinfo about this subject instead of the ID token's.
    pub userinfo_sub: Option<String>,
    /// Refuse code exchanges without PKCE.
    pub require_pkce: bool,
    /// More claims for the ID token (Microsoft's `groups`, or its overage marker).
    pub id_token_claims: Value,
    /// The groups Graph lists for every user: (object id, display name).
    pub graph_groups: Vec<(String, String)>,
    /// How many groups one Graph page holds.
    pub graph_page_size: usize,
    /// Answer Graph with this status (and a Graph error body) instead of the groups.
    pub graph_status: Option<u16>,
}

impl Default for Behavior {
    fn default() -> Self {
        Self {
            claims: json!({
                "sub": "alice-sub",
                "preferred_username": "alice",
                "email": "Alice@Example.test",
                "email_verified": true,
                "name": "Alice Liddell",
                "given_name": "Alice",
                "family_name": "Liddell",
                "groups": ["admins", "staff"],
            }),
            deny: None,
            nonce: None,
            audience: None,
            token_issuer: None,
            callback_issuer: None,
            expired: false,
            wrong_key: false,
            alg_none: false,
            userinfo_status: None,
            userinfo_redirect: None,
            userinfo_sub: None,
            require_pkce: true,
            id_token_claims: json!({}),
            graph_groups: Vec::new(),
            graph_page_size: 100,
            graph_status: None,
        }
    }
}

struct Grant {
    redirect_uri: String,
    nonce: Option<String>,
    challenge: Option<String>,
    used: bool,
}

pub(crate) struct Shared {
    pub(crate) issuer: String,
    pub(crate) behavior: Mutex<Behavior>,
    grants: Mutex<HashMap<String, Grant>>,
    pub(crate) tokens: Mutex<HashMap<String, Value>>,
    token_requests: Mutex<Vec<HashMap<String, String>>>,
    pub(crate) graph_requests: Mutex<Vec<String>>,
}

/// A running provider.
pub struct FakeIdp {
    shared: Arc<Shared>,
    _runtime: tokio::runtime::Runtime,
}

impl FakeIdp {
    /// Starts on a free loopback port.
    pub fn start() -> FakeIdp {
        let (runtime, listener, address) = crate::loopback_server("fake IdP");
        let shared = Arc::new(Shared {
            issuer: format!("http://{address}"),
            behavior: Mutex::new(Behavior::default()),
            grants: Mutex::new(HashMap::new()),
            tokens: Mutex::new(HashMap::new()),
            token_requests: Mutex::new(Vec::new()),
            graph_requests: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(jwks))
            .route("/authorize", get(authorize))
            .route("/token", post(token))
            .route("/userinfo", get(userinfo))
            .route(crate::fake_graph::GROUPS_PATH, get(crate::fake_graph::groups))
            .with_state(shared.clone());
        runtime.spawn(async move {
            axum::serve(listener, app).await.expect("fake IdP serves");
        });
        FakeIdp { shared, _runtime: runtime }
    }

    /// The issuer URL (`http://127.0.0.1:<port>`).
    pub fn issuer(&self) -> &str {
        &self.shared.issuer
    }

    /// Changes the behavior for the next sign-ins.
    pub fn set(&self, behavior: Behavior) {
        *self.shared.behavior.lock().unwrap() = behavior;
    }

    /// The form fields of every token request so far.
    pub fn token_requests(&self) -> Vec<HashMap<String, String>> {
        self.shared.token_requests.lock().unwrap().clone()
    }

    /// The path and query of every Graph request so far.
    pub fn graph_requests(&self) -> Vec<String> {
        self.shared.graph_requests.lock().unwrap().clone()
    }

    /// The environment a hookgate server needs to use this provider as Microsoft: its
    /// endpoints in place of login.microsoftonline.com's, its fake Graph in place of Graph.
    pub fn microsoft_env(&self) -> Vec<(&'static str, String)> {
        let issuer = self.issuer();
        vec![
            ("MICROSOFT_CLIENT_ID", CLIENT_ID.to_owned()),
            ("MICROSOFT_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
            ("MICROSOFT_TENANT", "contoso".to_owned()),
            ("MICROSOFT_AUTHORIZATION_ENDPOINT", format!("{issuer}/authorize")),
            ("MICROSOFT_TOKEN_ENDPOINT", format!("{issuer}/token")),
            ("MICROSOFT_USERINFO_ENDPOINT", format!("{issuer}/userinfo")),
            ("MICROSOFT_GRAPH_URL", format!("{issuer}/graph")),
            ("PROXY_BASE_URL", "{base}".to_owned()),
        ]
    }

    /// The environment a hookgate server needs to use this provider.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("GENERIC_CLIENT_ID", CLIENT_ID.to_owned()),
            ("GENERIC_CLIENT_SECRET", CLIENT_SECRET.to_owned()),
            ("GENERIC_ISSUER", self.issuer().to_owned()),
            ("GENERIC_SCOPE", "openid email profile groups".to_owned()),
            // The test server's own URL (the server helper fills it in).
            ("PROXY_BASE_URL", "{base}".to_owned()),
        ]
    }
}

async fn discovery(State(shared): State<Arc<Shared>>) -> Json<Value> {
    let issuer = &shared.issuer;
    Json(json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "authorization_response_iss_parameter_supported": true,
    }))
}

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/oidc").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

async fn jwks() -> Json<Value> {
    Json(
        json!({"keys": [{"kty": "RSA", "kid": KID, "use": "sig", "alg": "RS256", "n": fixture("idp-key.n").trim(), "e": "AQAB"}]}),
    )
}

fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let query: Vec<String> =
        pairs.iter().map(|(key, value)| format!("{key}={}", encode(value))).collect();
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{}", query.join("&"))
}

/// `text` percent-encoded for a query string (everything but unreserved characters).
pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

async fn authorize(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let behavior = shared.behavior.lock().unwrap().clone();
    if query.get("client_id").map(String::as_str) != Some(CLIENT_ID)
        || query.get("response_type").map(String::as_str) != Some("code")
    {
        return (StatusCode::BAD_REQUEST, "unknown client or response type").into_response();
    }
    let Some(redirect_uri) = query.get("redirect_uri").cloned() else {
        return (StatusCode::BAD_REQUEST, "no redirect_uri").into_response();
    };
    let state = query.get("state").cloned().unwrap_or_default();
    let issuer = behavior.callback_issuer.clone().unwrap_or_else(|| shared.issuer.clone());
    if let Some((error, description)) = &behavior.deny {
        return Redirect::to(&with_query(
            &redirect_uri,
            &[
                ("error", error),
                ("error_description", description),
                ("state", &state),
                ("iss", &issuer),
            ],
        ))
        .into_response();
    }
    if query.contains_key("code_challenge")
        && query.get("code_challenge_method").map(String::as_str) != Some("S256")
    {
        return (StatusCode::BAD_REQUEST, "only S256").into_response();
    }
    let code = format!("code-{}", crate::server::random_suffix());
    shared.grants.lock().unwrap().insert(
        code.clone(),
        Grant {
            redirect_uri: redirect_uri.clone(),
            nonce: query.get("nonce").cloned(),
            challenge: query.get("code_challenge").cloned(),
            used: false,
        },
    );
    Redirect::to(&with_query(
        &redirect_uri,
        &[("code", &code), ("state", &state), ("iss", &issuer)],
    ))
    .into_response()
}

fn token_error(error: &str, description: &str) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": error, "error_description": description})))
        .into_response()
}

fn client_authenticated(headers: &HeaderMap, form: &HashMap<String, String>) -> bool {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok());
    match basic {
        Some(pair) => pair == format!("{CLIENT_ID}:{CLIENT_SECRET}"),
        None => {
            form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
                && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET)
        }
    }
}

async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    shared.token_requests.lock().unwrap().push(form.clone());
    let behavior = shared.behavior.lock().unwrap().clone();
    if !client_authenticated(&headers, &form) {
        return (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_client"})))
            .into_response();
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return token_error("unsupported_grant_type", "");
    }
    let code = form.get("code").cloned().unwrap_or_default();
    let (nonce, challenge) = {
        let mut grants = shared.grants.lock().unwrap();
        let Some(grant) = grants.get_mut(&code) else {
            return token_error("invalid_grant", "unknown code");
        };
        if grant.used {
            return token_error("invalid_grant", "code already used");
        }
        grant.used = true;
        if form.get("redirect_uri") != Some(&grant.redirect_uri) {
            return token_error("invalid_grant", "redirect_uri mismatch");
        }
        (grant.nonce.clone(), grant.challenge.clone())
    };
    match (&challenge, form.get("code_verifier")) {
        (Some(challenge), Some(verifier)) => {
            let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(Sha256::digest(verifier.as_bytes()));
            if &computed != challenge {
                return token_error("invalid_grant", "PKCE verification failed");
            }
        }
        (Some(_), None) => return token_error("invalid_grant", "PKCE verifier missing"),
        (None, _) if behavior.require_pkce => {
            return token_error("invalid_grant", "PKCE is required for this client");
        }
        (None, _) => {}
    }
    let now = chrono::Utc::now().timestamp();
    let mut claims = json!({
        "iss": behavior.token_issuer.clone().unwrap_or_else(|| shared.issuer.clone()),
        "sub": behavior.claims["sub"],
        "aud": behavior.audience.clone().unwrap_or_else(|| CLIENT_ID.to_owned()),
        "iat": now - 5,
        "exp": if behavior.expired { now - 3600 } else { now + 300 },
    });
    if let Some(nonce) = behavior.nonce.clone().or(nonce) {
        claims["nonce"] = json!(nonce);
    }
    if let Value::Object(extra) = &behavior.id_token_claims {
        for (key, value) in extra {
            claims[key] = value.clone();
        }
    }
    let id_token = if behavior.alg_none {
        let b64 = |value: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
        };
        format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&claims))
    } else {
        let pem = fixture(if behavior.wrong_key { "other-key.pem" } else { "idp-key.pem" });
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).expect("test key");
        let mut jwt_header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        jwt_header.kid = Some(KID.to_owned());
        jsonwebtoken::encode(&jwt_header, &claims, &key).expect("sign")
    };
    let access_token = format!("at-{}", crate::server::random_suffix());
    shared.tokens.lock().unwrap().insert(access_token.clone(), behavior.claims.clone());
    Json(json!({"access_token": access_token, "token_type": "Bearer", "expires_in": 300, "id_token": id_token, "scope": "openid email profile groups"})).into_response()
}

async fn userinfo(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let behavior = shared.behavior.lock().unwrap().clone();
    if let Some(status) = behavior.userinfo_status {
        return (StatusCode::from_u16(status).unwrap(), "userinfo is down").into_response();
    }
    if let Some(target) = behavior.userinfo_redirect {
        return (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, target)]).into_response();
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match token.and_then(|token| shared.tokens.lock().unwrap().get(token).cloned()) {
        Some(mut claims) => {
            if let Some(sub) = behavior.userinfo_sub {
                claims["sub"] = json!(sub);
            }
            Json(claims).into_response()
        }
        None => (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_token"}))).into_response(),
    }
}

/// The query of a URL as pairs (no decoding beyond `%XX` and `+`).
pub fn query_pairs(url: &str) -> HashMap<String, String> {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or("");
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(key, value)| (decode(key), decode(value)))
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut idx = 0;
    while idx < bytes.len() {
        match bytes[idx] {
            b'+' => out.push(b' '),
            b'%' if idx + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&text[idx + 1..idx + 3], 16).unwrap_or(b'?'));
                idx += 2;
            }
            byte => out.push(byte),
        }
        idx += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
