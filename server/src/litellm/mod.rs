//! The LiteLLM front door: after hookgate has signed someone in, it makes the same user and UI
//! session in a running LiteLLM proxy, through LiteLLM's public management API and the master
//! key only (no access to LiteLLM's database, so no coupling to its schema or its caches).
//!
//! Per sign-in: find the user under the one identity rule hookgate applies to its own accounts
//! (its binding; else, by id or email, an unbound user the identity proves with a verified email;
//! never a user bound to another identity), create it (`/user/new`) or bring it in line with the
//! hooks' values (`/user/update`), add it to the teams it belongs to that exist in LiteLLM
//! (`/team/member_add`), and mint a UI session key (`/key/generate` with `team_id =
//! "litellm-dashboard"`), which goes into the `token` cookie. Logout deletes the key
//! (`/key/delete`), which also clears LiteLLM's key cache.
//!
//! A LiteLLM user is hookgate's when its `sso_user_id` (set at creation) or its
//! `metadata.hookgate_binding` (set when hookgate links an existing user: LiteLLM's
//! `/user/update` ignores `sso_user_id`) is the identity's binding, [`litellm_binding`].
//! Administrators' changes reach LiteLLM through [`FrontDoor::linked_user`] and
//! [`FrontDoor::update_access`] (see `crate::access`).
//!
//! Measured against LiteLLM 1.108.7 (see tests/litellm/NOTES.md for the exact exchanges).

mod deprovision;
mod keys;
mod owner;
mod transport;
mod users;

use std::time::{Duration, Instant};

use plugin_api::UserRole;
use serde_json::{Value, json};

use crate::{config::Secret, signin::Binding};
use transport::{refused, sends_key_in_clear};

/// LiteLLM's team id for UI session keys.
pub const UI_SESSION_TEAM: &str = "litellm-dashboard";
/// LiteLLM's default `max_ui_session_budget`.
const DEFAULT_SESSION_BUDGET: f64 = 1.0;
/// How long one call to LiteLLM may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// A LiteLLM proxy that hookgate signs people into.
#[derive(Debug, Clone)]
pub struct FrontDoor {
    base: String,
    master_key: Secret,
    client: reqwest::Client,
    /// How long a UI session key lasts (`LITELLM_UI_SESSION_DURATION`).
    session_duration: Duration,
    /// A UI session key's budget (`max_ui_session_budget`; LiteLLM's default 1.0 when `None`).
    session_budget: Option<f64>,
    /// Session keys LiteLLM said were live, by hash, and when it said so.
    live_keys: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, Instant>>>,
}

/// What LiteLLM did not do.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FrontDoorError {
    /// No answer.
    #[error("LiteLLM at {url} did not answer {step}: {reason}")]
    Unreachable {
        /// The URL called.
        url: String,
        /// What hookgate was doing.
        step: &'static str,
        /// Why.
        reason: String,
    },
    /// An answer other than the one expected.
    #[error("LiteLLM refused {step}: HTTP {status}: {message}")]
    Refused {
        /// What hookgate was doing.
        step: &'static str,
        /// LiteLLM's status code.
        status: u16,
        /// LiteLLM's message.
        message: String,
    },
    /// LiteLLM holds a user the sign-in reached (by id or email) that this identity cannot
    /// prove is its own: bound to another identity, or unbound without a matching verified
    /// email. Nothing is changed in LiteLLM.
    #[error(
        "LiteLLM's user {litellm_user} {why}; hookgate does not take it over (an administrator \
         can link or remove that user in LiteLLM)"
    )]
    NotLinked {
        /// LiteLLM's user id (for the log; never shown to the person signing in).
        litellm_user: String,
        /// Why it is not this identity's.
        why: &'static str,
    },
}

impl FrontDoorError {
    /// Whether LiteLLM refused to let this identity in (a refusal, not a failure).
    pub fn is_refusal(&self) -> bool {
        matches!(self, FrontDoorError::NotLinked { .. })
    }
}

/// The value hookgate writes into LiteLLM's `sso_user_id` (or `metadata.hookgate_binding`) for
/// an identity's binding: the issuer and the subject, so two issuers' equal subjects differ.
pub fn litellm_binding(binding: &Binding) -> String {
    format!("hookgate:{}#{}", binding.issuer, binding.subject)
}

/// Which LiteLLM user a hookgate account is, for an administrator's change.
#[derive(Debug, Clone)]
pub struct LinkedAccount<'a> {
    /// hookgate's user id.
    pub user_id: &'a str,
    /// hookgate's stored email.
    pub user_email: Option<&'a str>,
    /// hookgate's binding (`None`: never signed in through single sign-on).
    pub binding: Option<Binding>,
}

/// An administrator's change to what a user may do; `None` leaves a value as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccessUpdate {
    /// Role.
    pub user_role: Option<UserRole>,
    /// Models.
    pub models: Option<Vec<String>>,
    /// Budget (`Some(None)`: unlimited).
    pub max_budget: Option<Option<f64>>,
    /// Budget period (`Some(None)`: none), as LiteLLM writes it.
    pub budget_duration: Option<Option<String>>,
}

impl AccessUpdate {
    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        *self == AccessUpdate::default()
    }
}

/// The user a sign-in opens a LiteLLM session for, with the values the hooks decided.
#[derive(Debug, Clone)]
pub struct SessionUser<'a> {
    /// hookgate's user id.
    pub user_id: &'a str,
    /// Lower-case email; written to LiteLLM only when verified.
    pub user_email: Option<&'a str>,
    /// Whether the identity provider verified the email (header sign-ins: the proxy vouches).
    pub email_verified: bool,
    /// `link_sso_accounts_by_email`: whether a verified email may reach an unbound user.
    pub link_by_email: bool,
    /// The identity's binding (`None`: none, so no LiteLLM user is this identity's by binding).
    pub binding: Option<&'a Binding>,
    /// The password login: the operator, who reaches the LiteLLM user of its id (LiteLLM's
    /// `default_user_id` or `PROXY_ADMIN_ID`) whatever it is bound to.
    pub operator: bool,
    /// Role.
    pub user_role: UserRole,
    /// Models (empty: all).
    pub models: &'a [String],
    /// Budget (`None`: unlimited).
    pub max_budget: Option<f64>,
    /// Budget period, as LiteLLM writes it (`30d`).
    pub budget_duration: Option<String>,
    /// Teams the user is a member of in hookgate.
    pub teams: &'a [String],
}

/// A LiteLLM UI session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// LiteLLM's user id (hookgate's, unless LiteLLM already knew the person under another id).
    pub user_id: String,
    /// The `sk-…` key.
    pub key: String,
}

impl FrontDoor {
    /// The proxy at `base` (no trailing slash), managed with `master_key`; its UI session keys
    /// last `session_duration` and carry `session_budget`.
    pub fn new(
        base: &str,
        master_key: Secret,
        session_duration: Duration,
        session_budget: Option<f64>,
    ) -> FrontDoor {
        let client = reqwest::Client::builder()
            .timeout(CALL_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("the TLS backend initialises");
        if sends_key_in_clear(base) {
            tracing::warn!(
                litellm_proxy_url = base,
                "litellm_proxy_url is plain http:// to a host that is not this one: LiteLLM's \
                 master key crosses the network in clear on every call; use https:// or a \
                 private network"
            );
        }
        FrontDoor {
            base: base.trim_end_matches('/').to_owned(),
            master_key,
            client,
            session_duration,
            session_budget,
            live_keys: Default::default(),
        }
    }

    /// Creates or updates the user in LiteLLM, adds its memberships, and mints a UI session key.
    ///
    /// # Errors
    /// [`FrontDoorError::NotLinked`] when the user LiteLLM holds under this id or email is not
    /// this identity's (nothing is written then); the others when LiteLLM fails.
    pub async fn open_session(&self, user: &SessionUser<'_>) -> Result<Session, FrontDoorError> {
        let found = self.find_user(user).await?;
        let user_id = match &found {
            Some(existing) => {
                self.update_user(existing, user).await?;
                existing.user_id.clone()
            }
            None => {
                self.create_user(user).await?;
                user.user_id.to_owned()
            }
        };
        let current: &[String] = found.as_ref().map_or(&[], |existing| &existing.teams);
        for team in user.teams.iter().filter(|team| !current.contains(team)) {
            self.add_member(team, &user_id).await?;
        }
        let answer = self
            .call(
                reqwest::Method::POST,
                "/key/generate",
                "minting the session key",
                Some(json!({
                    "user_id": user_id,
                    "team_id": UI_SESSION_TEAM,
                    "duration": format!("{}s", self.session_duration.as_secs().max(1)),
                    "max_budget": self.session_budget.unwrap_or(DEFAULT_SESSION_BUDGET),
                    "models": user.models,
                })),
            )
            .await?;
        let key = match answer {
            (200, body) => body.get("key").and_then(Value::as_str).map(str::to_owned),
            (status, body) => return Err(refused("minting the session key", status, &body)),
        };
        let key =
            key.filter(|key| key.starts_with("sk-")).ok_or_else(|| FrontDoorError::Refused {
                step: "minting the session key",
                status: 200,
                message: "the answer has no sk- key".into(),
            })?;
        Ok(Session { user_id, key })
    }
}
