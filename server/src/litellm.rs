//! The LiteLLM front door: after hookgate has signed someone in, it makes the same user and UI
//! session in a running LiteLLM proxy, through LiteLLM's public management API and the master
//! key only (no access to LiteLLM's database, so no coupling to its schema or its caches).
//!
//! Per sign-in: find the user the way LiteLLM's own SSO does (id, then `sso_user_id`, then
//! email), create it (`/user/new`) or bring it in line with the hooks' values (`/user/update`),
//! add it to the teams it belongs to that exist in LiteLLM (`/team/member_add`), and mint a UI
//! session key (`/key/generate` with `team_id = "litellm-dashboard"`), which goes into the
//! `token` cookie. Logout deletes the key (`/key/delete`), which also clears LiteLLM's key cache.
//!
//! Measured against LiteLLM 1.108.7 (see tests/litellm/NOTES.md for the exact exchanges).

use std::time::Duration;

use plugin_api::UserRole;
use serde_json::{Value, json};

use crate::config::Secret;

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
    /// LiteLLM holds an account for this email that belongs to another sign-in identity.
    #[error(
        "LiteLLM's user {litellm_user} has the email {email} but belongs to another sign-in \
         identity; hookgate does not take it over (change or remove that user in LiteLLM)"
    )]
    Taken {
        /// LiteLLM's user id.
        litellm_user: String,
        /// The email.
        email: String,
    },
}

/// The user a sign-in opens a LiteLLM session for, with the values the hooks decided.
#[derive(Debug, Clone)]
pub struct SessionUser<'a> {
    /// hookgate's user id (also sent as LiteLLM's `sso_user_id`).
    pub user_id: &'a str,
    /// Lower-case email.
    pub user_email: Option<&'a str>,
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
        FrontDoor {
            base: base.trim_end_matches('/').to_owned(),
            master_key,
            client,
            session_duration,
            session_budget,
        }
    }

    /// Creates or updates the user in LiteLLM, adds its memberships, and mints a UI session key.
    pub async fn open_session(&self, user: &SessionUser<'_>) -> Result<Session, FrontDoorError> {
        let found = self.find_user(user).await?;
        let user_id = match &found {
            Some(existing) => {
                self.update_user(&existing.user_id, user).await?;
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

    /// Deletes a UI session key (the `sk-…` key or its SHA-256 hex); a key LiteLLM no longer
    /// has is already closed.
    pub async fn close_session(&self, key: &str) -> Result<(), FrontDoorError> {
        self.close_sessions(&[key.to_owned()]).await
    }

    /// Deletes UI session keys in one call.
    pub async fn close_sessions(&self, keys: &[String]) -> Result<(), FrontDoorError> {
        if keys.is_empty() {
            return Ok(());
        }
        let step = "deleting the session key";
        match self
            .call(reqwest::Method::POST, "/key/delete", step, Some(json!({"keys": keys})))
            .await?
        {
            (200 | 404, _) => Ok(()),
            (status, body) => Err(refused(step, status, &body)),
        }
    }

    /// LiteLLM's lookup: by id, then by `sso_user_id`, then by email (exact, any case). An
    /// account found by email that is bound to another identity is not taken.
    async fn find_user(&self, user: &SessionUser<'_>) -> Result<Option<Found>, FrontDoorError> {
        let step = "looking the user up";
        let path = format!("/user/info?user_id={}", encode(user.user_id));
        match self.call(reqwest::Method::GET, &path, step, None).await? {
            (200, body) => {
                return Ok(Some(Found::of(body.get("user_info").unwrap_or(&Value::Null))));
            }
            (404, _) => {}
            (status, body) => return Err(refused(step, status, &body)),
        }
        let path = format!("/user/list?sso_user_ids={}", encode(user.user_id));
        let users = self.list(&path, step).await?;
        if let Some(row) = users
            .iter()
            .find(|row| row.get("sso_user_id").and_then(Value::as_str) == Some(user.user_id))
        {
            return Ok(Some(Found::of(row)));
        }
        let Some(email) = user.user_email else { return Ok(None) };
        let path = format!("/user/list?user_email={}", encode(email));
        let users = self.list(&path, step).await?;
        let same_email = |row: &&Value| {
            row.get("user_email")
                .and_then(Value::as_str)
                .is_some_and(|stored| stored.eq_ignore_ascii_case(email))
        };
        match users.iter().find(same_email) {
            None => Ok(None),
            Some(row) => {
                let found = Found::of(row);
                match row.get("sso_user_id").and_then(Value::as_str) {
                    Some(bound) if bound != user.user_id => Err(FrontDoorError::Taken {
                        litellm_user: found.user_id,
                        email: email.to_owned(),
                    }),
                    _ => Ok(Some(found)),
                }
            }
        }
    }

    async fn list(&self, path: &str, step: &'static str) -> Result<Vec<Value>, FrontDoorError> {
        match self.call(reqwest::Method::GET, path, step, None).await? {
            (200, body) => {
                Ok(body.get("users").and_then(Value::as_array).cloned().unwrap_or_default())
            }
            (status, body) => Err(refused(step, status, &body)),
        }
    }

    async fn create_user(&self, user: &SessionUser<'_>) -> Result<(), FrontDoorError> {
        let step = "creating the user";
        let body = json!({
            "user_id": user.user_id,
            "user_email": user.user_email,
            "user_role": litellm_role(user.user_role),
            "models": user.models,
            "max_budget": user.max_budget,
            "budget_duration": user.budget_duration,
            "sso_user_id": user.user_id,
            "auto_create_key": false,
            "metadata": {"auth_provider": "hookgate"},
        });
        match self.call(reqwest::Method::POST, "/user/new", step, Some(body)).await? {
            (200, _) => Ok(()),
            (status, body) => Err(refused(step, status, &body)),
        }
    }

    async fn update_user(
        &self,
        user_id: &str,
        user: &SessionUser<'_>,
    ) -> Result<(), FrontDoorError> {
        let step = "updating the user";
        let mut body = json!({
            "user_id": user_id,
            "user_role": litellm_role(user.user_role),
            "models": user.models,
            "max_budget": user.max_budget,
            "budget_duration": user.budget_duration,
        });
        if let Some(email) = user.user_email {
            body["user_email"] = json!(email);
        }
        match self.call(reqwest::Method::POST, "/user/update", step, Some(body)).await? {
            (200, _) => Ok(()),
            (status, body) => Err(refused(step, status, &body)),
        }
    }

    /// Adds `user_id` to `team` as a `user`; a team LiteLLM does not have is skipped, and an
    /// existing member keeps the role LiteLLM's admin gave them.
    async fn add_member(&self, team: &str, user_id: &str) -> Result<(), FrontDoorError> {
        let step = "adding the user to a team";
        let body = json!({"team_id": team, "member": [{"role": "user", "user_id": user_id}]});
        match self.call(reqwest::Method::POST, "/team/member_add", step, Some(body)).await? {
            (200 | 404, _) => Ok(()),
            (400, body) if error_type(&body) == Some("team_member_already_in_team") => Ok(()),
            (status, body) => Err(refused(step, status, &body)),
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        step: &'static str,
        body: Option<Value>,
    ) -> Result<(u16, Value), FrontDoorError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.client.request(method, &url).bearer_auth(self.master_key.expose());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let unreachable = |error: reqwest::Error| FrontDoorError::Unreachable {
            url: format!("{}{}", self.base, path.split('?').next().unwrap_or(path)),
            step,
            reason: error_chain(&error),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(unreachable)?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, body))
    }
}

/// A LiteLLM user the lookup found.
#[derive(Debug)]
struct Found {
    user_id: String,
    teams: Vec<String>,
}

impl Found {
    fn of(row: &Value) -> Found {
        Found {
            user_id: row.get("user_id").and_then(Value::as_str).unwrap_or_default().to_owned(),
            teams: row
                .get("teams")
                .and_then(Value::as_array)
                .map(|teams| teams.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
        }
    }
}

/// LiteLLM's roles for users are the four below; the others hookgate knows map to the nearest
/// one that grants no more.
fn litellm_role(role: UserRole) -> &'static str {
    match role {
        UserRole::ProxyAdmin => "proxy_admin",
        UserRole::ProxyAdminViewer => "proxy_admin_viewer",
        UserRole::InternalUser | UserRole::OrgAdmin => "internal_user",
        _ => "internal_user_viewer",
    }
}

fn refused(step: &'static str, status: u16, body: &Value) -> FrontDoorError {
    FrontDoorError::Refused { step, status, message: message_of(body) }
}

/// LiteLLM's error message: `{"error": {"message"}}`, FastAPI's `{"detail"}`, or the text.
fn message_of(body: &Value) -> String {
    let text = match body {
        Value::String(text) => text.clone(),
        _ => body
            .pointer("/error/message")
            .or_else(|| body.pointer("/detail/error"))
            .or_else(|| body.get("detail"))
            .map(|message| match message {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| body.to_string()),
    };
    crate::signin::shorten(&text, 300)
}

fn error_type(body: &Value) -> Option<&str> {
    body.pointer("/error/type").and_then(Value::as_str)
}

/// A reqwest error with its causes ("error sending request: … Connection refused").
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_come_from_each_error_shape() {
        let litellm = json!({"error": {"message": "User with id x already exists", "code": "409"}});
        assert_eq!(message_of(&litellm), "User with id x already exists");
        let fastapi = json!({"detail": {"error": "Team doesn't exist in db."}});
        assert_eq!(message_of(&fastapi), "Team doesn't exist in db.");
        assert_eq!(message_of(&json!({"detail": "Not Found"})), "Not Found");
        assert_eq!(
            message_of(&Value::String("Internal Server Error".into())),
            "Internal Server Error"
        );
    }

    #[test]
    fn roles_map_to_litellms_four_without_granting_more() {
        assert_eq!(litellm_role(UserRole::ProxyAdmin), "proxy_admin");
        assert_eq!(litellm_role(UserRole::ProxyAdminViewer), "proxy_admin_viewer");
        assert_eq!(litellm_role(UserRole::InternalUser), "internal_user");
        assert_eq!(litellm_role(UserRole::OrgAdmin), "internal_user");
        assert_eq!(litellm_role(UserRole::InternalUserViewer), "internal_user_viewer");
        assert_eq!(litellm_role(UserRole::Team), "internal_user_viewer");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("a b+c@d.e/f"), "a%20b%2Bc%40d.e%2Ff");
    }
}
