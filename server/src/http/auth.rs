//! Who is calling: the master key, or a session key (as `Authorization: Bearer`, or inside the
//! `token` cookie's JWT).

use axum::{extract::FromRequestParts, http::request::Parts};
use plugin_api::UserRole;

use super::{ApiError, AppState};
use crate::{
    session::{COOKIE_NAME, hash_key, secrets_equal},
    untrusted::{MAX_SHOWN, printable},
};

/// An authenticated caller.
#[derive(Debug, Clone)]
pub(super) enum Caller {
    /// The master key.
    Master,
    /// A live session.
    Session {
        /// Its user.
        user_id: String,
        /// The user's role as stored now (not the one the session was issued with: a demotion
        /// takes effect on the next request).
        role: UserRole,
        /// The key's hash.
        token_hash: String,
        /// Whether the key came in the `token` cookie (a browser: state changes need a
        /// same-origin check) rather than an `Authorization` header.
        from_cookie: bool,
        /// The user's row, read with the session.
        user: Box<crate::db::entity::user::Model>,
    },
}

impl Caller {
    /// The master key or a proxy_admin session.
    pub(super) fn is_admin(&self) -> bool {
        match self {
            Caller::Master => true,
            Caller::Session { role, .. } => *role == UserRole::ProxyAdmin,
        }
    }

    /// Refuses anyone but an admin.
    pub(super) fn require_admin(&self) -> Result<(), ApiError> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ApiError::forbidden("this needs the master key or a proxy_admin session"))
        }
    }

    /// The caller's own user row, when the caller is `user_id`'s session.
    pub(super) fn own_user(&self, user_id: &str) -> Option<&crate::db::entity::user::Model> {
        match self {
            Caller::Session { user_id: own, user, .. } if own == user_id => Some(user),
            _ => None,
        }
    }

    /// Refuses anyone but an admin or `user_id` themself.
    pub(super) fn require_self_or_admin(&self, user_id: &str) -> Result<(), ApiError> {
        match self {
            Caller::Session { user_id: own, .. } if own == user_id => Ok(()),
            _ if self.is_admin() => Ok(()),
            _ => Err(ApiError::forbidden("a session key may only read its own user")),
        }
    }
}

/// A user's role as stored now; a row without a readable role has the least one.
pub(super) fn current_role(user: &crate::db::entity::user::Model) -> UserRole {
    user.user_role
        .as_deref()
        .and_then(|role| role.parse().ok())
        .unwrap_or(UserRole::InternalUserViewer)
}

/// The bearer token of the request, if any.
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The `token` cookie, if any.
pub(super) fn token_cookie(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE_NAME && !value.is_empty()).then_some(value)
        })
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let (key, from_cookie) = match bearer(parts) {
            Some(token) => {
                if secrets_equal(token, state.master_key().expose()) {
                    return Ok(Caller::Master);
                }
                (token.to_owned(), false)
            }
            None => match token_cookie(&parts.headers) {
                Some(jwt) => {
                    let claims = state.signin().signer().verify(jwt).map_err(|error| {
                        // The library's words (which algorithms it knows, what it could not
                        // parse) are for the operator; the client learns only that it failed.
                        tracing::debug!(
                            "token cookie refused: {}",
                            printable(&error.to_string(), MAX_SHOWN)
                        );
                        ApiError::unauthorized("invalid session token: sign in again")
                    })?;
                    (claims.key, true)
                }
                None => {
                    return Err(ApiError::unauthorized(
                        "authentication required: send Authorization: Bearer <key>",
                    ));
                }
            },
        };
        let token_hash = hash_key(&key);
        match state.db().live_session_user(&token_hash).await {
            // In front of LiteLLM: a session signed out there is signed out here.
            Ok(Some(_)) if !state.signin().session_key_is_live(&token_hash).await? => {
                Err(ApiError::unauthorized("this session was signed out in the LiteLLM proxy"))
            }
            Ok(Some((session, user))) => Ok(Caller::Session {
                user_id: session.user_id,
                role: current_role(&user),
                token_hash,
                from_cookie,
                user: Box::new(user),
            }),
            Ok(None) => Err(ApiError::unauthorized("invalid, expired or revoked key")),
            Err(error) => Err(ApiError::database(&error)),
        }
    }
}
