//! What a sign-in leaves on record besides the account: its session and its event, with the
//! bounds on what a client can make the server store.

use chrono::{DateTime, Utc};
use plugin_api::UserRole;

use crate::ids::{MAX_ID, shorten};

/// The longest reason an event records.
pub const MAX_REASON: usize = 1000;
/// The longest request id an event records.
pub const MAX_REQUEST_ID: usize = 64;

/// A session to store: the hash of its key (the key itself is never stored) and what it grants.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSession {
    /// SHA-256 of the session key, hex.
    pub token_hash: String,
    /// The user.
    pub user_id: String,
    /// The role it was issued with (authorisation reads the user's current one).
    pub user_role: UserRole,
    /// LiteLLM's `login_method` claim (`sso`, `username_password`).
    pub login_method: &'static str,
    /// The models it was issued with.
    pub models: Vec<String>,
    /// `max_ui_session_budget`.
    pub max_budget: Option<f64>,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
}

/// A sign-in attempt as the event log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInRecord {
    /// When.
    pub at: DateTime<Utc>,
    /// The user it concerns, when known.
    pub user_id: Option<String>,
    /// The front door (`header`, `oidc`, `password`).
    pub method: &'static str,
    /// `allowed`, `refused` or `failed`.
    pub outcome: String,
    /// Why, for a refusal or failure.
    pub reason: Option<String>,
    /// The client's address (behind a trusted proxy, the one it forwarded).
    pub client: String,
    /// The request id (`-` for a summary of many attempts).
    pub request_id: String,
}

impl SignInRecord {
    /// A record, with every client-chosen part cut to its bound: the user id to [`MAX_ID`]
    /// characters, the reason to [`MAX_REASON`], the request id to [`MAX_REQUEST_ID`].
    pub fn new(
        at: DateTime<Utc>,
        user_id: Option<&str>,
        method: &'static str,
        outcome: &str,
        reason: Option<&str>,
        client: String,
        request_id: &str,
    ) -> SignInRecord {
        SignInRecord {
            at,
            user_id: user_id.map(|id| shorten(id, MAX_ID)),
            method,
            outcome: outcome.to_owned(),
            reason: reason.map(|reason| shorten(reason, MAX_REASON)),
            client,
            request_id: shorten(request_id, MAX_REQUEST_ID),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn what_a_client_chose_is_cut_to_its_bound() {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        let long = "é".repeat(5000);
        let record = SignInRecord::new(
            at,
            Some(&long),
            "header",
            "refused",
            Some(&long),
            "::1".into(),
            &long,
        );
        assert_eq!(record.user_id.unwrap().chars().count(), MAX_ID);
        assert_eq!(record.reason.unwrap().chars().count(), MAX_REASON);
        assert_eq!(record.request_id.chars().count(), MAX_REQUEST_ID);
        let short = SignInRecord::new(at, None, "oidc", "allowed", None, "::1".into(), "r-1");
        assert_eq!((short.user_id, short.reason, short.request_id.as_str()), (None, None, "r-1"));
    }
}
