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

use std::time::{Duration, Instant};

use plugin_api::UserRole;
use serde_json::{Value, json};

use crate::{config::Secret, signin::Binding};

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

/// How long LiteLLM's word that a session key is live is trusted before asking again.
const LIVE_KEY_TTL: Duration = Duration::from_secs(10);
/// The most session keys remembered as live.
const MAX_LIVE_KEYS: usize = 10_000;

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
        {
            let mut live = self.live_keys();
            for key in keys {
                let hash = if key.starts_with("sk-") {
                    crate::session::hash_key(key)
                } else {
                    key.clone()
                };
                live.remove(&hash);
            }
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

    /// Whether LiteLLM still has this session key (`token_hash` is its SHA-256) as an active
    /// key: a logout in LiteLLM's own UI deletes it. LiteLLM's "yes" is trusted for [`LIVE_KEY_TTL`]; a "no" is
    /// final, and a key closed through hookgate is forgotten at once.
    pub async fn key_is_live(&self, token_hash: &str) -> Result<bool, FrontDoorError> {
        let fresh = |at: &Instant| at.elapsed() < LIVE_KEY_TTL;
        if self.live_keys().get(token_hash).is_some_and(fresh) {
            return Ok(true);
        }
        let step = "checking the session key";
        // The hash, not the key: a query string is written verbatim into access logs.
        let path = format!("/key/info?key={}", encode(token_hash));
        let live = match self.call(reqwest::Method::GET, &path, step, None).await? {
            // LiteLLM serves deleted keys from its archive, with a status.
            (200, body) => match body.pointer("/info/status").and_then(Value::as_str) {
                Some(status) => status == "active",
                None => body.pointer("/info/blocked").and_then(Value::as_bool) != Some(true),
            },
            (404, _) => false,
            (status, body) => return Err(refused(step, status, &body)),
        };
        let mut keys = self.live_keys();
        if live {
            if keys.len() >= MAX_LIVE_KEYS {
                keys.retain(|_, at| fresh(at));
            }
            if keys.len() < MAX_LIVE_KEYS {
                keys.insert(token_hash.to_owned(), Instant::now());
            }
        } else {
            keys.remove(token_hash);
        }
        Ok(live)
    }

    fn live_keys(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Instant>> {
        // The map holds no invariant a panicking holder could break.
        self.live_keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The sign-in's lookup, under hookgate's identity rule: the user bound to this identity;
    /// else the user with this id, taken only if it is this identity's, or unbound and the
    /// identity's verified email is its email; else, when linking by email is allowed and the
    /// email verified, the unbound user with this email. A user reached by id or email that is
    /// bound to another identity, or that the identity cannot prove, refuses the sign-in.
    async fn find_user(&self, user: &SessionUser<'_>) -> Result<Option<Found>, FrontDoorError> {
        let step = "looking the user up";
        let ours = user.binding.map(litellm_binding);
        if let Some(found) = self.by_binding(ours.as_deref(), step).await? {
            return Ok(Some(found));
        }
        let verified_email = user.user_email.filter(|_| user.email_verified);
        if let Some(row) = self.user_row(user.user_id, step).await? {
            let found = Found::of(&row);
            // The password login is the operator's: its id is its proof.
            if user.operator {
                return Ok(Some(found));
            }
            return match found.owner(ours.as_deref(), user.user_id) {
                Owner::Ours => Ok(Some(found)),
                Owner::Other => Err(found.not_linked("is bound to another sign-in identity")),
                Owner::Nobody if found.has_email(verified_email) => Ok(Some(found)),
                Owner::Nobody => Err(found.not_linked(
                    "is not linked to this sign-in, and the identity has no verified email equal \
                     to that user's",
                )),
            };
        }
        let Some(email) = verified_email.filter(|_| user.link_by_email && ours.is_some()) else {
            return Ok(None);
        };
        let rows = self.by_email(email, step).await?;
        let Some(found) = rows.into_iter().find(|found| found.has_email(Some(email))) else {
            return Ok(None);
        };
        match found.owner(ours.as_deref(), user.user_id) {
            Owner::Ours | Owner::Nobody => Ok(Some(found)),
            Owner::Other => {
                Err(found.not_linked("has this email but is bound to another identity"))
            }
        }
    }

    /// The LiteLLM user a hookgate account is, for an administrator's change: the one that
    /// carries its binding, found by binding, id or email; `None` when LiteLLM has none (the
    /// user never signed in through the front door).
    pub async fn linked_user(
        &self,
        account: &LinkedAccount<'_>,
    ) -> Result<Option<String>, FrontDoorError> {
        let step = "looking the user up";
        let ours = account.binding.as_ref().map(litellm_binding);
        if let Some(found) = self.by_binding(ours.as_deref(), step).await? {
            return Ok(Some(found.user_id));
        }
        if let Some(row) = self.user_row(account.user_id, step).await? {
            let found = Found::of(&row);
            if found.owner(ours.as_deref(), account.user_id) == Owner::Ours {
                return Ok(Some(found.user_id));
            }
        }
        let (Some(email), Some(_)) = (account.user_email, &ours) else { return Ok(None) };
        Ok(self
            .by_email(email, step)
            .await?
            .into_iter()
            .find(|found| found.owner(ours.as_deref(), account.user_id) == Owner::Ours)
            .map(|found| found.user_id))
    }

    /// Applies an administrator's change to LiteLLM's user (role, models, budget, period).
    pub async fn update_access(
        &self,
        litellm_user: &str,
        update: &AccessUpdate,
    ) -> Result<(), FrontDoorError> {
        if update.is_empty() {
            return Ok(());
        }
        let step = "updating the user";
        let mut body = json!({"user_id": litellm_user});
        if let Some(role) = update.user_role {
            body["user_role"] = json!(litellm_role(role));
        }
        if let Some(models) = &update.models {
            body["models"] = json!(models);
        }
        if let Some(budget) = update.max_budget {
            body["max_budget"] = json!(budget);
        }
        if let Some(duration) = &update.budget_duration {
            body["budget_duration"] = json!(duration);
        }
        match self.call(reqwest::Method::POST, "/user/update", step, Some(body)).await? {
            (200, _) => Ok(()),
            (status, body) => Err(refused(step, status, &body)),
        }
    }

    /// The user created with this binding as its `sso_user_id` (`None` without a binding).
    async fn by_binding(
        &self,
        ours: Option<&str>,
        step: &'static str,
    ) -> Result<Option<Found>, FrontDoorError> {
        let Some(ours) = ours else { return Ok(None) };
        let path = format!("/user/list?sso_user_ids={}", encode(ours));
        let rows = self.list(&path, step).await?;
        Ok(rows.iter().find(|row| str_of(row, "sso_user_id") == Some(ours)).map(Found::of))
    }

    /// The users LiteLLM lists for an email (a substring match, any case: callers compare).
    async fn by_email(
        &self,
        email: &str,
        step: &'static str,
    ) -> Result<Vec<Found>, FrontDoorError> {
        let path = format!("/user/list?user_email={}", encode(email));
        Ok(self.list(&path, step).await?.iter().map(Found::of).collect())
    }

    /// The user with this id, or `None`.
    async fn user_row(
        &self,
        user_id: &str,
        step: &'static str,
    ) -> Result<Option<Value>, FrontDoorError> {
        let path = format!("/user/info?user_id={}", encode(user_id));
        match self.call(reqwest::Method::GET, &path, step, None).await? {
            (200, body) => Ok(Some(body.get("user_info").cloned().unwrap_or(Value::Null))),
            (404, _) => Ok(None),
            (status, body) => Err(refused(step, status, &body)),
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
        let ours = user.binding.map(litellm_binding);
        let mut metadata = json!({"auth_provider": "hookgate"});
        if let Some(ours) = &ours {
            metadata["hookgate_binding"] = json!(ours);
        }
        let body = json!({
            "user_id": user.user_id,
            "user_email": user.user_email.filter(|_| user.email_verified),
            "user_role": litellm_role(user.user_role),
            "models": user.models,
            "max_budget": user.max_budget,
            "budget_duration": user.budget_duration,
            "sso_user_id": ours,
            "auto_create_key": false,
            "metadata": metadata,
        });
        match self.call(reqwest::Method::POST, "/user/new", step, Some(body)).await? {
            (200, _) => Ok(()),
            (status, body) => Err(refused(step, status, &body)),
        }
    }

    async fn update_user(
        &self,
        found: &Found,
        user: &SessionUser<'_>,
    ) -> Result<(), FrontDoorError> {
        let step = "updating the user";
        let mut body = json!({
            "user_id": found.user_id,
            "user_role": litellm_role(user.user_role),
            "models": user.models,
            "max_budget": user.max_budget,
            "budget_duration": user.budget_duration,
        });
        if let Some(email) = user.user_email.filter(|_| user.email_verified) {
            body["user_email"] = json!(email);
        }
        // A user hookgate links (found by a verified email) is marked with the binding, so that
        // later sign-ins and administrators' changes find it; LiteLLM's `sso_user_id` cannot be
        // changed through its API.
        if let Some(binding) = user.binding {
            let ours = litellm_binding(binding);
            if found.sso_user_id.as_deref() != Some(ours.as_str())
                && found.hookgate_binding.as_deref() != Some(ours.as_str())
            {
                let mut metadata = match &found.metadata {
                    Value::Object(map) => Value::Object(map.clone()),
                    _ => json!({}),
                };
                metadata["hookgate_binding"] = json!(ours);
                body["metadata"] = metadata;
            }
        }
        match self.call(reqwest::Method::POST, "/user/update", step, Some(body)).await? {
            (200, _) => Ok(()),
            (status, body) => Err(refused(step, status, &body)),
        }
    }

    /// Adds `user_id` to `team` as a `user`; a team LiteLLM does not have is skipped, and an
    /// existing member keeps the role LiteLLM's admin gave them.
    pub async fn add_member(&self, team: &str, user_id: &str) -> Result<(), FrontDoorError> {
        let step = "adding the user to a team";
        let body = json!({"team_id": team, "member": [{"role": "user", "user_id": user_id}]});
        match self.call(reqwest::Method::POST, "/team/member_add", step, Some(body)).await? {
            (200 | 404, _) => Ok(()),
            (400, body) if error_type(&body) == Some("team_member_already_in_team") => Ok(()),
            (status, body) => Err(refused(step, status, &body)),
        }
    }

    /// Removes `user_id` from `team`; a team LiteLLM does not have, or a user who is not a
    /// member, is already done.
    pub async fn remove_member(&self, team: &str, user_id: &str) -> Result<(), FrontDoorError> {
        let step = "removing the user from a team";
        let body = json!({"team_id": team, "user_id": user_id});
        match self.call(reqwest::Method::POST, "/team/member_delete", step, Some(body)).await? {
            (200 | 404, _) => Ok(()),
            (400, body) if is_already_gone(&message_of(&body)) => Ok(()),
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
    user_email: Option<String>,
    sso_user_id: Option<String>,
    hookgate_binding: Option<String>,
    /// Whether hookgate created it (`metadata.auth_provider`).
    by_hookgate: bool,
    metadata: Value,
    teams: Vec<String>,
}

/// Whose a LiteLLM user is, for one identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// This identity's.
    Ours,
    /// Another identity's (LiteLLM's own SSO, or another hookgate binding).
    Other,
    /// Nobody's: invited or created in LiteLLM without single sign-on.
    Nobody,
}

impl Found {
    fn of(row: &Value) -> Found {
        let text = |key: &str| str_of(row, key).filter(|v| !v.is_empty()).map(str::to_owned);
        let metadata = row.get("metadata").cloned().unwrap_or(Value::Null);
        Found {
            user_id: text("user_id").unwrap_or_default(),
            user_email: text("user_email"),
            sso_user_id: text("sso_user_id"),
            hookgate_binding: str_of(&metadata, "hookgate_binding").map(str::to_owned),
            by_hookgate: str_of(&metadata, "auth_provider") == Some("hookgate"),
            metadata,
            teams: row
                .get("teams")
                .and_then(Value::as_array)
                .map(|teams| teams.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
        }
    }

    /// Whose this user is, for the identity with binding `ours` (`None`: no binding) signing
    /// in as hookgate's `user_id`. A user an earlier hookgate created for that id (its
    /// `sso_user_id` was hookgate's user id) is hookgate's user of that id.
    fn owner(&self, ours: Option<&str>, user_id: &str) -> Owner {
        let marks = [self.sso_user_id.as_deref(), self.hookgate_binding.as_deref()];
        if ours.is_some() && marks.contains(&ours) {
            return Owner::Ours;
        }
        if self.hookgate_binding.is_none()
            && self.by_hookgate
            && self.sso_user_id.as_deref() == Some(user_id)
        {
            return Owner::Ours;
        }
        if marks.iter().any(Option::is_some) { Owner::Other } else { Owner::Nobody }
    }

    /// Whether the user's email is `email` (any case).
    fn has_email(&self, email: Option<&str>) -> bool {
        match (&self.user_email, email) {
            (Some(stored), Some(email)) => stored.eq_ignore_ascii_case(email),
            _ => false,
        }
    }

    fn not_linked(&self, why: &'static str) -> FrontDoorError {
        tracing::warn!(litellm_user = %self.user_id, "front door: LiteLLM's user {why}; not taking it over");
        FrontDoorError::NotLinked { litellm_user: self.user_id.clone(), why }
    }
}

fn str_of<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value.get(key).and_then(Value::as_str)
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
    hookgate_core::ids::shorten(&text, 300)
}

/// LiteLLM's 400 messages for a member removal with nothing to remove ("Team id=… does not
/// exist in db", "User not found in team").
fn is_already_gone(message: &str) -> bool {
    message.contains("does not exist") || message.contains("not found in team")
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

/// Whether calls to `base` would carry the master key in clear beyond this host: `http://` to a
/// host that is not a loopback address or `localhost`.
fn sends_key_in_clear(base: &str) -> bool {
    let Some(rest) = base.strip_prefix("http://") else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    !loopback
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
    fn plain_http_beyond_this_host_is_flagged() {
        for clear in
            ["http://litellm.internal:4000", "http://10.0.0.5", "http://[2001:db8::1]:4000/x"]
        {
            assert!(sends_key_in_clear(clear), "{clear}");
        }
        for fine in [
            "https://litellm.example.com",
            "http://127.0.0.1:4000",
            "http://localhost:4000/litellm",
            "http://[::1]:4000",
        ] {
            assert!(!sends_key_in_clear(fine), "{fine}");
        }
    }

    #[test]
    fn litellm_users_belong_to_the_binding_they_carry() {
        let ours = "hookgate:https://idp.example#sub-1";
        let owner = |row: Value, user_id: &str| Found::of(&row).owner(Some(ours), user_id);
        assert_eq!(owner(json!({"user_id": "a", "sso_user_id": ours}), "a"), Owner::Ours);
        let marked = json!({"user_id": "a", "metadata": {"hookgate_binding": ours}});
        assert_eq!(owner(marked, "x"), Owner::Ours, "linked by hookgate, under any id");
        let legacy =
            json!({"user_id": "a", "sso_user_id": "a", "metadata": {"auth_provider": "hookgate"}});
        assert_eq!(owner(legacy.clone(), "a"), Owner::Ours, "made by an earlier hookgate");
        assert_eq!(owner(legacy, "b"), Owner::Other, "for another hookgate user");
        let litellms = json!({"user_id": "a", "sso_user_id": "a"});
        assert_eq!(owner(litellms, "a"), Owner::Other, "LiteLLM's own SSO, same id");
        let other = json!({"user_id": "a", "metadata": {"hookgate_binding": "hookgate:x#y"}});
        assert_eq!(owner(other, "a"), Owner::Other);
        assert_eq!(owner(json!({"user_id": "a", "sso_user_id": ""}), "a"), Owner::Nobody);
        assert_eq!(owner(json!({"user_id": "a"}), "a"), Owner::Nobody);
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("a b+c@d.e/f"), "a%20b%2Bc%40d.e%2Ff");
    }
}
