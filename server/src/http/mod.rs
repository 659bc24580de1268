//! The HTTP server: the axum router, the request context, and the serve loop. Only this module
//! knows axum.

mod auth;
mod client;
mod error;
mod login_limiter;
mod management;
mod metrics;
mod scim;
mod serve;
mod sso;
mod ui;

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json, Router,
    extract::{ConnectInfo, FromRequestParts, State},
    http::{HeaderMap, Request, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use tower_http::{
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    trace::TraceLayer,
};

pub use self::{
    error::{ApiError, Surface},
    serve::{bind, serve},
};
use crate::{
    config::{Config, Secret},
    db::Db,
    oidc::OidcProvider,
    signin::{LogSampler, SignInService},
};

impl axum::extract::FromRef<AppState> for axum_extra::extract::cookie::Key {
    fn from_ref(state: &AppState) -> Self {
        state.inner.cookie_key.clone()
    }
}

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Arc<Config>,
    db: Db,
    signin: SignInService,
    master_key: Secret,
    oidc: Option<OidcProvider>,
    cookie_key: axum_extra::extract::cookie::Key,
    login_limiter: login_limiter::LoginLimiter,
    /// Samples the log lines of refused OIDC callbacks (anyone can cause them).
    callback_log: LogSampler,
    /// Samples the log lines of OIDC sign-ins that cannot start (the provider is down).
    oidc_start_log: LogSampler,
    /// The live-session gauge of `/metrics`, counted at most once per interval.
    live_sessions: metrics::LiveSessions,
}

impl AppState {
    /// The state over a connected database.
    pub fn new(
        config: Arc<Config>,
        db: Db,
        signin: SignInService,
        master_key: Secret,
        oidc: Option<OidcProvider>,
    ) -> Self {
        // The flow cookie's key (AES-256-GCM via the cookie crate), derived from the master key
        // so every replica that shares the master key can read every replica's flow cookies.
        use sha2::Digest;
        let mut hasher = sha2::Sha512::new();
        hasher.update(b"hookgate oidc flow cookie\0");
        hasher.update(master_key.expose().as_bytes());
        let cookie_key = axum_extra::extract::cookie::Key::from(hasher.finalize().as_slice());
        let live_sessions = metrics::LiveSessions::new(config.metrics_live_sessions_ttl);
        Self {
            inner: Arc::new(Inner {
                config,
                db,
                signin,
                master_key,
                oidc,
                cookie_key,
                login_limiter: login_limiter::LoginLimiter::default(),
                callback_log: LogSampler::default(),
                oidc_start_log: LogSampler::default(),
                live_sessions,
            }),
        }
    }

    fn oidc(&self) -> Option<&OidcProvider> {
        self.inner.oidc.as_ref()
    }

    fn login_limiter(&self) -> &login_limiter::LoginLimiter {
        &self.inner.login_limiter
    }

    fn callback_log(&self) -> &LogSampler {
        &self.inner.callback_log
    }

    fn oidc_start_log(&self) -> &LogSampler {
        &self.inner.oidc_start_log
    }

    fn live_sessions(&self) -> &metrics::LiveSessions {
        &self.inner.live_sessions
    }

    fn config(&self) -> &Config {
        &self.inner.config
    }

    fn db(&self) -> &Db {
        &self.inner.db
    }

    fn signin(&self) -> &SignInService {
        &self.inner.signin
    }

    fn master_key(&self) -> &Secret {
        &self.inner.master_key
    }
}

/// Per-request facts every handler may need (errors get the request id and the
/// representation at the edge, [`finish_errors`], not from here).
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The `x-request-id`.
    pub request_id: String,
    /// The TCP peer.
    pub peer: SocketAddr,
    /// Whether the client prefers HTML (a browser).
    pub wants_html: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let request_id = request_id(&parts.extensions).to_owned();
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let wants_html = wants_html(&parts.headers);
        Ok(Ctx { request_id, peer, wants_html })
    }
}

/// The request's `x-request-id` ([`plain_request_id`], then tower-http's), or `-`.
fn request_id(extensions: &axum::http::Extensions) -> &str {
    extensions.get::<RequestId>().and_then(|id| id.header_value().to_str().ok()).unwrap_or("-")
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .any(|accept| accept.contains("text/html"))
}

/// The application's routes.
pub fn router(state: AppState) -> Router {
    let root = state.config().server_root_path.clone();
    let config = state.inner.config.clone();
    let sign_in = Router::new()
        .route("/sso/key/generate", get(sso::key_generate))
        .route("/sso/callback", get(sso::callback));
    let api = Router::new()
        .route("/health/liveliness", get(|| async { Json("I'm alive!") }))
        .route("/health/readiness", get(readiness))
        .route("/session/logout", post(sso::logout))
        .merge(management::routes())
        .merge(metrics::routes(state.config()));
    let scim = scim::routes(&state).unwrap_or_default();
    let routes = Router::new()
        .merge(scim)
        .merge(on_surface(sign_in, Surface::SignIn))
        .merge(on_surface(
            Router::new().route("/login", post(ui::password_login)),
            Surface::LoginForm,
        ))
        .merge(on_surface(ui::routes(), Surface::Ui))
        .merge(on_surface(api, Surface::Api))
        .fallback(|| async { ApiError::not_found("no such route") })
        .with_state(state);
    let routes = if root.is_empty() { routes } else { Router::new().nest(&root, routes) };
    routes
        .layer(axum::middleware::map_request_with_state(config.clone(), allowed_host))
        .layer(axum::middleware::from_fn(finish_errors))
        .layer(axum::middleware::map_response(security_headers))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
            let id = request_id(request.extensions());
            // The path only: query strings can carry codes and tokens.
            tracing::info_span!("request", id, method = %request.method(), path = %request.uri().path())
        }))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(axum::middleware::map_request_with_state(config, plain_request_id))
}

/// Marks every answer of `routes` as `surface`'s, which decides how their errors look.
fn on_surface<S: Clone + Send + Sync + 'static>(routes: Router<S>, surface: Surface) -> Router<S> {
    routes.route_layer(axum::middleware::map_response(move |response: Response| async move {
        surface.mark(response)
    }))
}

/// The one place an error answer gets the request id and its representation: handlers return
/// [`ApiError`] with `?`, and here, on the way out, it is rendered as JSON or as an HTML page
/// with the title of the route's [`Surface`] (unmarked answers are the API's: JSON). Headers
/// the handler set (a cookie, `Retry-After`) stay; the body and its headers are replaced.
async fn finish_errors(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let request_id = request_id(request.extensions()).to_owned();
    let wants_html = wants_html(request.headers());
    let response = next.run(request).await;
    let (mut parts, body) = response.into_parts();
    let Some(error::Unfinished(error)) = parts.extensions.remove::<error::Unfinished>() else {
        return Response::from_parts(parts, body);
    };
    let surface = parts.extensions.get::<Surface>().copied().unwrap_or(Surface::Api);
    let (finished, body) =
        error.finish(surface, &request_id, wants_html).into_response().into_parts();
    for name in finished.headers.keys() {
        parts.headers.remove(name);
    }
    for (name, value) in &finished.headers {
        parts.headers.append(name, value.clone());
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.status = finished.status;
    Response::from_parts(parts, body)
}

/// The longest client-chosen request id kept.
const MAX_REQUEST_ID: usize = 64;

/// Keeps an `X-Request-Id` only if a trusted proxy (`trusted_proxy_ranges`) sent it and it is
/// one short, plain token (at most [`MAX_REQUEST_ID`] of `[A-Za-z0-9._-]`); otherwise the server
/// makes its own. The id goes into every log line and every sign-in event, so it must not carry
/// a client's payload, nor let a client reuse another request's id in the audit trail.
async fn plain_request_id<B>(
    State(config): State<Arc<Config>>,
    mut request: Request<B>,
) -> Request<B> {
    let from_proxy = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_some_and(|ConnectInfo(peer)| config.is_trusted_proxy(&peer.ip().to_canonical()));
    let headers = request.headers_mut();
    if !from_proxy {
        headers.remove("x-request-id");
        return request;
    }
    let values = headers.get_all("x-request-id");
    let mut iter = values.iter();
    let plain = match (iter.next(), iter.next()) {
        (Some(value), None) => {
            let bytes = value.as_bytes();
            !bytes.is_empty()
                && bytes.len() <= MAX_REQUEST_ID
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        }
        (None, _) => true,
        _ => false,
    };
    if !plain {
        headers.remove("x-request-id");
    }
    request
}

/// Answers `421 Misdirected Request` to a request for a Host the server does not answer for
/// (`Config::allowed_hosts`), before any route sees it: a DNS-rebinding page reaches the server
/// under the attacker's own name. `/health/*` answers any Host: probes use pod addresses and
/// service names, and say nothing a page could use.
async fn allowed_host<B>(
    State(config): State<Arc<Config>>,
    request: Request<B>,
) -> Result<Request<B>, axum::response::Response> {
    let health = format!("{}/health/", config.server_root_path);
    if request.uri().path().starts_with(&health) {
        return Ok(request);
    }
    let host = request.headers().get(header::HOST).map(|host| host.to_str().unwrap_or(""));
    // A request target in absolute form names a host too.
    let target = request.uri().authority().map(|authority| authority.as_str());
    let refused =
        [host, target].into_iter().flatten().find(|host| !config.allowed_hosts.allows(host));
    let Some(refused) = refused else { return Ok(request) };
    let shown: String = refused.chars().take(100).collect();
    tracing::debug!(host = ?shown, "refused a request for a host not in allowed_hosts (421)");
    let error = ApiError::new(
        StatusCode::MISDIRECTED_REQUEST,
        format!(
            "this server does not answer for the host {shown:?}: it answers for PROXY_BASE_URL's \
             host, IP addresses, localhost, and the names listed in \
             general_settings.allowed_hosts"
        ),
    );
    Err(Surface::Edge.mark(error.into_response()))
}

/// Headers on every response: no sniffing, no framing, no referrer; nothing cached unless the
/// handler said otherwise (answers carry sessions, keys and user data).
async fn security_headers(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::HeaderValue;
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn readiness(State(state): State<AppState>) -> impl IntoResponse {
    let (status, db) = match state.db().ping().await {
        Ok(()) => (StatusCode::OK, "connected"),
        Err(error) => {
            tracing::error!("readiness: database: {error}");
            (StatusCode::SERVICE_UNAVAILABLE, "unreachable")
        }
    };
    // No hook names or paths: probes need a status, not a map of the deployment.
    let health = if status == StatusCode::OK { "healthy" } else { "unhealthy" };
    (status, Json(serde_json::json!({"status": health, "db": db})))
}
