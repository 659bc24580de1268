//! Sign-in routes: `GET /sso/key/generate` (header sign-in behind an OAuth proxy, or the start
//! of an OIDC sign-in), `GET /sso/callback` (the end of one), and `POST /session/logout`.

use axum::{
    extract::{Query, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Redirect, Response},
};
use axum_extra::extract::{
    PrivateCookieJar,
    cookie::{Cookie, SameSite},
};

use super::{ApiError, AppState, Ctx, auth::Caller, client::client_address};
use crate::{
    config::Config,
    oidc::{CallbackQuery, FlowState, OidcError, check_callback, check_flow},
    plugins::{HookRequest, RequestLine},
    session::{clear_cookie, session_cookie},
    signin::{Attempt, LoginMethod, SignInError, SignedIn},
    untrusted::{MAX_SHOWN, printable},
};

/// The cookie that carries an OIDC flow between its two requests (encrypted and authenticated
/// with a key derived from the master key).
const FLOW_COOKIE: &str = "hookgate_oidc_flow";

/// The base of every redirect: `PROXY_BASE_URL`, else nothing — a relative redirect. The Host
/// header never decides where a browser is sent (a client chooses it).
pub(super) fn public_base(config: &Config) -> &str {
    config.proxy_base_url.as_deref().unwrap_or("")
}

/// Whether a state-changing browser request comes from this site: `Sec-Fetch-Site` is not
/// `cross-site`, and `Origin`, when sent, is `PROXY_BASE_URL` (or, without one, the request's
/// own host, and that host one the server answers for: `general_settings.allowed_hosts`, an IP
/// address or `localhost` — never a name a rebinding page chose). SameSite=Lax already keeps the
/// session cookie off cross-site POSTs; this also covers older browsers.
pub(super) fn same_origin(config: &Config, headers: &HeaderMap) -> bool {
    let cross_site =
        headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) == Some("cross-site");
    let origin_ok = match headers.get(header::ORIGIN).map(|v| v.to_str()) {
        None => true,
        Some(Err(_)) => false,
        Some(Ok(origin)) => {
            let origin = origin.trim_end_matches('/');
            match &config.proxy_base_url {
                Some(base) => origin == base,
                None => {
                    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
                    let authority =
                        origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
                    host.is_some_and(|host| config.allowed_hosts.allows(host)) && authority == host
                }
            }
        }
    };
    !cross_site && origin_ok
}

/// The `token` cookie's path: `SERVER_ROOT_PATH`, or `/`; `/` in front of LiteLLM, as LiteLLM
/// sets it.
pub(super) fn cookie_path(config: &Config) -> &str {
    if config.server_root_path.is_empty() || config.litellm_proxy_url.is_some() {
        "/"
    } else {
        &config.server_root_path
    }
}

/// Whether the `token` cookie is HttpOnly: as configured, but never in front of LiteLLM, whose
/// UI reads the cookie from `document.cookie`.
fn cookie_http_only(config: &Config) -> bool {
    config.session_cookie_http_only && config.litellm_proxy_url.is_none()
}

/// Whether the public URL is https (cookies are then `Secure`).
pub(super) fn is_https(config: &Config) -> bool {
    config.proxy_base_url.as_deref().is_some_and(|base| base.starts_with("https://"))
}

/// Longer request targets on the sign-in routes are refused (414): no real sign-in needs them.
const MAX_TARGET_LEN: usize = 8 * 1024;

fn target_too_long(uri: &Uri) -> Option<Response> {
    let len = uri.path_and_query().map_or(0, |target| target.as_str().len());
    (len > MAX_TARGET_LEN).then(|| {
        ApiError::new(
            StatusCode::URI_TOO_LONG,
            format!(
                "the request target is {len} bytes long; at most {MAX_TARGET_LEN} are accepted"
            ),
        )
        .into_response()
    })
}

/// `return_to` values accepted: local paths only (no scheme, no `//host`, no backslashes).
fn safe_return_to(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains(['\\', '\r', '\n', '\t'])
        && path.len() <= 2000
}

#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct GenerateQuery {
    return_to: Option<String>,
}

pub(super) async fn key_generate(
    State(state): State<AppState>,
    ctx: Ctx,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    jar: PrivateCookieJar,
    query: Result<Query<GenerateQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Some(refused) = target_too_long(&uri) {
        return refused;
    }
    let config = state.config();
    let root = &config.server_root_path;
    if config.custom_ui_sso_sign_in_handler.is_some() {
        // The header hook wins over any OIDC provider, as in LiteLLM.
        let location = format!("{}{root}/ui/?login=success", public_base(config));
        // The TCP peer decides whether the headers are trusted; the forwarded client is who
        // refusal events are bounded by.
        let attempt = Attempt::new(LoginMethod::Header, ctx.peer.ip(), ctx.request_id.clone())
            .from_client(client_address(config, ctx.peer.ip(), &headers));
        let request = HookRequest::new(RequestLine::new(&method, &uri, ctx.peer), headers);
        return match state.signin().header_sign_in(&attempt, request).await {
            Ok(signed_in) => signed_in_response(config, &signed_in, &location),
            Err(error) => ApiError::from(error).into_response(),
        };
    }
    let Some(provider) = state.oidc() else {
        return ApiError::not_found(
            "SSO is not configured: set general_settings.custom_ui_sso_sign_in_handler, or \
             GENERIC_CLIENT_ID (or GOOGLE_CLIENT_ID, MICROSOFT_CLIENT_ID) and its settings",
        )
        .into_response();
    };
    // PROXY_BASE_URL is required with an OIDC provider (checked at startup).
    let redirect_uri = format!("{}{root}/sso/callback", public_base(config));
    let return_to =
        query.ok().and_then(|Query(query)| query.return_to).filter(|path| safe_return_to(path));
    match provider.begin(&redirect_uri, return_to).await {
        Ok((url, flow)) => {
            let value = serde_json::to_string(&flow).expect("flow state serialises");
            let cookie = Cookie::build((FLOW_COOKIE, value))
                .path("/")
                .http_only(true)
                .same_site(SameSite::Lax)
                .secure(is_https(config))
                .max_age(cookie_duration(config.oidc_flow_timeout))
                .build();
            (jar.add(cookie), Redirect::to(&url)).into_response()
        }
        Err(error) => {
            // Anyone can ask while the provider is down: the line is sampled.
            if let Some(left_out) = state.oidc_start_log().admit() {
                let note = state.oidc_start_log().note(left_out);
                tracing::error!("cannot start the OIDC sign-in: {error}{note}");
            }
            let attempt = Attempt::new(LoginMethod::Oidc, ctx.peer.ip(), ctx.request_id.clone())
                .from_client(client_address(config, ctx.peer.ip(), &headers));
            let error = oidc_error(error);
            state.signin().record_refusal(&attempt, &error).await;
            ApiError::from(error)
                .with_link(format!("{root}/ui/login"), "Back to sign-in")
                .into_response()
        }
    }
}

fn cookie_duration(duration: std::time::Duration) -> time::Duration {
    time::Duration::seconds(duration.as_secs().min(i64::MAX as u64) as i64)
}

/// `303` to `location` with the session cookie.
pub(super) fn signed_in_response(
    config: &Config,
    signed_in: &SignedIn,
    location: &str,
) -> Response {
    let location = if location.is_empty() { "/ui/?login=success" } else { location };
    let cookie = session_cookie(
        &signed_in.token,
        cookie_path(config),
        is_https(config),
        cookie_http_only(config),
    );
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    match HeaderValue::try_from(location) {
        Ok(location) => headers.insert(header::LOCATION, location),
        Err(_) => headers.insert(header::LOCATION, HeaderValue::from_static("/ui/?login=success")),
    };
    headers.insert(
        header::SET_COOKIE,
        HeaderValue::try_from(cookie).expect("a JWT is a valid header value"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /sso/callback`: the identity provider sends the browser back here.
pub(super) async fn callback(
    State(state): State<AppState>,
    ctx: Ctx,
    uri: Uri,
    headers: HeaderMap,
    jar: PrivateCookieJar,
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    if let Some(refused) = target_too_long(&uri) {
        return refused;
    }
    let config = state.config();
    let root = &config.server_root_path;
    let Some(provider) = state.oidc() else {
        return ApiError::not_found("no OpenID Connect provider is configured").into_response();
    };
    let attempt = Attempt::new(LoginMethod::Oidc, ctx.peer.ip(), ctx.request_id.clone())
        .from_client(client_address(config, ctx.peer.ip(), &headers));
    // The flow cookie is single-use: it goes whatever happens next.
    let flow_cookie = jar.get(FLOW_COOKIE);
    let jar = jar.remove(Cookie::build(FLOW_COOKIE).path("/"));

    let identity = async {
        let Ok(Query(query)) = query else {
            return Err(SignInError::BadRequest("the callback's query string is malformed".into()));
        };
        let flow: FlowState = flow_cookie
            .and_then(|cookie| serde_json::from_str(cookie.value()).ok())
            .ok_or_else(|| {
                SignInError::BadRequest(
                    "no sign-in is in progress in this browser: it expired, was completed \
                     already, or was started elsewhere; start again"
                        .into(),
                )
            })?;
        check_flow(&flow, &query, config.oidc_flow_timeout).map_err(oidc_error)?;
        // The callback carries this flow's state: it is the flow's one use, whatever it says
        // (an error callback too), so neither a code nor a flow cookie can be replayed.
        let expires = chrono::DateTime::from_timestamp(flow.started_at, 0).unwrap_or_default()
            + chrono::Duration::from_std(config.oidc_flow_timeout).unwrap_or_default();
        if !state.db().complete_flow(&flow.id, expires).await? {
            return Err(SignInError::BadRequest(
                "this sign-in was already completed or refused: its callback cannot be used \
                 twice; start again"
                    .into(),
            ));
        }
        let issuer = provider.issuer().await;
        let code = check_callback(&query, issuer.as_deref()).map_err(oidc_error)?;
        let (openid, proof) = provider.finish(&flow, code).await.map_err(oidc_error)?;
        let location = match &flow.return_to {
            Some(path) => format!("{}{path}", public_base(config)),
            None => format!("{}{root}/ui/?login=success", public_base(config)),
        };
        Ok((openid, proof, location))
    }
    .await;

    let (openid, proof, location) = match identity {
        Ok(pair) => pair,
        Err(error) => {
            // Anyone can send a browser (or curl) here: the line is sampled, and what the client
            // wrote in it is escaped and cut (again: the checks already did).
            if let Some(left_out) = state.callback_log().admit() {
                let note = state.callback_log().note(left_out);
                let reason = printable(&error.to_string(), 2 * MAX_SHOWN);
                tracing::warn!("OIDC callback refused: {reason}{note}");
            }
            state.signin().record_refusal(&attempt, &error).await;
            let page = ApiError::from(error).with_link(format!("{root}/ui/login"), "Sign in again");
            return (jar, page).into_response();
        }
    };
    match state.signin().complete(&attempt, openid, proof).await {
        Ok(signed_in) => (jar, signed_in_response(config, &signed_in, &location)).into_response(),
        Err(error) => {
            let page = ApiError::from(error).with_link(format!("{root}/ui/login"), "Sign in again");
            (jar, page).into_response()
        }
    }
}

fn oidc_error(error: OidcError) -> SignInError {
    match error {
        OidcError::BadCallback(message) => SignInError::BadRequest(message),
        OidcError::Refused(message) => SignInError::Unauthenticated(message),
        OidcError::Upstream(message) => SignInError::Upstream(message),
    }
}

/// Ends one session: the API's and the UI's logout. In front of LiteLLM the session key is
/// LiteLLM's too (its token is this hash): LiteLLM deletes it first, so that a refusal changes
/// nothing and the logout can be retried.
pub(super) async fn end_session(state: &AppState, token_hash: &str) -> Result<(), ApiError> {
    state.signin().close_front_door_session(token_hash).await?;
    state.db().revoke_session(token_hash).await?;
    Ok(())
}

pub(super) async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    caller: Caller,
    // Read before answering, even a refusal: a body left unread makes the server close a
    // keep-alive connection the client may already be reusing.
    _body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let Caller::Session { token_hash, user_id, from_cookie, .. } = caller else {
        return Err(ApiError::bad_request(
            "the master key is not a session; log out with a session key or the token cookie",
        ));
    };
    // A browser's cookie rides along on any site's form: only this site may use it to log out.
    if from_cookie && !same_origin(state.config(), &headers) {
        return Err(ApiError::forbidden("cross-site requests are refused"));
    }
    end_session(&state, &token_hash).await?;
    tracing::info!(%user_id, "logged out");
    let mut response =
        axum::Json(serde_json::json!({"message": "Logged out successfully"})).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::try_from(clear_cookie(cookie_path(state.config()), is_https(state.config())))
            .expect("a valid cookie"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::safe_return_to;

    #[test]
    fn only_local_paths_are_return_targets() {
        for ok in ["/ui/", "/ui/users?page=2", "/litellm/ui/"] {
            assert!(safe_return_to(ok), "{ok}");
        }
        for bad in [
            "https://evil.example",
            "//evil.example/x",
            "/\\evil.example",
            "ui/",
            "/ui\r\nX: y",
            "",
        ] {
            assert!(!safe_return_to(bad), "{bad:?}");
        }
    }
}
