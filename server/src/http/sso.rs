//! `GET /sso/key/generate` (header sign-in behind an OAuth proxy) and `POST /session/logout`.

use axum::{
    extract::State,
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};

use super::{ApiError, AppState, Ctx, auth::Caller};
use crate::{
    config::Config,
    db::store,
    plugins::RequestLine,
    session::{clear_cookie, session_cookie},
    signin::{Attempt, LoginMethod},
};

/// The public base URL: `PROXY_BASE_URL`, else `http://<Host>` when the Host header is a valid
/// authority, else nothing (a relative redirect).
fn public_base(config: &Config, headers: &HeaderMap) -> String {
    if let Some(base) = &config.proxy_base_url {
        return base.clone();
    }
    headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .and_then(|host| host.parse::<axum::http::uri::Authority>().ok())
        .map(|authority| format!("http://{authority}"))
        .unwrap_or_default()
}

fn is_https(config: &Config) -> bool {
    config.proxy_base_url.as_deref().is_some_and(|base| base.starts_with("https://"))
}

pub(super) async fn key_generate(
    State(state): State<AppState>,
    ctx: Ctx,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let config = state.config();
    if state
        .signin()
        .hooks()
        .iter()
        .all(|hook| hook.setting != "general_settings.custom_ui_sso_sign_in_handler")
    {
        return ctx
            .error(ApiError::not_found(
                "SSO is not configured: set general_settings.custom_ui_sso_sign_in_handler",
            ))
            .into_response();
    }
    let location =
        format!("{}{}/ui/?login=success", public_base(config, &headers), config.server_root_path);
    let attempt = Attempt {
        method: LoginMethod::Header,
        peer: ctx.peer.ip(),
        request_id: ctx.request_id.clone(),
    };
    let line = RequestLine::new(&method, &uri, ctx.peer);
    match state.signin().header_sign_in(&attempt, line, headers).await {
        Ok(signed_in) => {
            let cookie =
                session_cookie(&signed_in.token, is_https(config), config.session_cookie_http_only);
            let mut response = StatusCode::SEE_OTHER.into_response();
            let headers = response.headers_mut();
            match HeaderValue::try_from(location) {
                Ok(location) => headers.insert(header::LOCATION, location),
                Err(_) => {
                    headers.insert(header::LOCATION, HeaderValue::from_static("/ui/?login=success"))
                }
            };
            headers.insert(
                header::SET_COOKIE,
                HeaderValue::try_from(cookie).expect("a JWT is a valid header value"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => ctx.error(error).into_response(),
    }
}

pub(super) async fn logout(
    State(state): State<AppState>,
    ctx: Ctx,
    caller: Caller,
) -> Result<Response, ApiError> {
    let Caller::Session { token_hash, user_id, .. } = caller else {
        return Err(ctx.json_error(ApiError::bad_request(
            "the master key is not a session; log out with a session key or the token cookie",
        )));
    };
    store::revoke_session(state.db().conn(), &token_hash)
        .await
        .map_err(|error| ctx.json_error(ApiError::database(&error)))?;
    tracing::info!(%user_id, "logged out");
    let mut response =
        axum::Json(serde_json::json!({"message": "Logged out successfully"})).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::try_from(clear_cookie(is_https(state.config()))).expect("a static cookie"),
    );
    Ok(response)
}
