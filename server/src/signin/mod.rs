//! The sign-in flow, as plain orchestration (no HTTP types): identity in, a session out.
//!
//! Both front doors — the OAuth-proxy header hook and the OIDC callback — end in
//! [`SignInService::complete`], LiteLLM's `get_redirect_response_from_openid`: email rules, the
//! `custom_sso` hook (or LiteLLM's defaults), access rules, then one transaction that finds or
//! creates the user, applies the hook's writes, joins teams, mints the session key and records
//! the event.

mod error;
mod host;
mod identity;
mod password;
mod refusals;
mod rehearsal;
pub(crate) mod rules;
mod runner;

use chrono::{DateTime, Utc};
use plugin_api::{HookErrorKind, OpenId, UserRole};
use sea_orm::{ActiveValue::Set, DbErr};
use tokio::runtime::Handle;

pub(crate) use self::identity::{alias_of, shorten};
pub(crate) use self::refusals::{LogSampler, client_bucket};
pub use self::{
    error::SignInError,
    identity::{Attempt, Binding, LoginMethod, Proof},
    rehearsal::{Rehearsal, Rehearsed},
    runner::{HookRunner, RunError},
};
use self::{
    host::SignInHost,
    identity::{
        MAX_EMAIL, MAX_GROUPS, MAX_ID, check_values, is_plausible_email, is_storable_id, shown,
    },
};
use crate::{
    budget::BudgetDuration,
    config::Config,
    db::{
        Db,
        entity::{session, sign_in_event},
        store,
    },
    litellm::FrontDoor,
    metrics::{Hook, Metrics},
    plugins::{HookRequest, LivePlugins, Plugins, UnfitRequest},
    session::{TokenSigner, UiTokenClaims, hash_key, new_session_key},
};

/// How long each hook of one sign-in ran (on its blocking thread).
#[derive(Debug, Clone, Copy, Default)]
pub struct HookTimes {
    /// `custom_ui_sso_sign_in_handler`.
    pub sign_in_handler: Option<std::time::Duration>,
    /// `custom_sso`.
    pub custom_sso: Option<std::time::Duration>,
}

/// What the pipeline settled before it writes: the identity as normalised, the values to apply
/// and the writes the `custom_sso` hook staged.
struct Prepared {
    openid: OpenId,
    proof: Proof,
    idp_id: Option<String>,
    values: Values,
    staged: Vec<host::Staged>,
    /// The read made for the hook, which usually serves the decision too.
    read_before: Option<std::sync::Arc<(rules::Keys, rules::Snapshot)>>,
}

impl Prepared {
    fn input(&self) -> rules::Input<'_> {
        rules::Input {
            openid: &self.openid,
            proof: &self.proof,
            idp_id: self.idp_id.as_deref(),
            values: &self.values,
            staged: &self.staged,
        }
    }
}

/// User ids an SSO sign-in never reaches: LiteLLM's password-login account.
const RESERVED_USER_IDS: &[&str] = &["default_user_id"];

/// A completed sign-in.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The user's id.
    pub user_id: String,
    /// The session's role.
    pub role: UserRole,
    /// The session key (`sk-…`); only its hash is stored.
    pub key: String,
    /// The signed `token` cookie value.
    pub token: String,
    /// When the session ends.
    pub expires_at: DateTime<Utc>,
}

/// How often a sign-in decides again when its snapshot went stale before the write.
const MAX_PLAN_ATTEMPTS: usize = 4;

/// A minted session: the key and the signed cookie (the row to store comes beside it).
struct Minted {
    key: String,
    token: String,
    expires_at: DateTime<Utc>,
}

impl Minted {
    fn signed_in(self, user_id: String, role: UserRole) -> SignedIn {
        SignedIn { user_id, role, key: self.key, token: self.token, expires_at: self.expires_at }
    }
}

/// The key a session is minted with: hookgate's own, or the one LiteLLM minted (with the user
/// LiteLLM minted it for).
struct SessionKey {
    key: String,
    litellm_user: Option<String>,
}

impl SessionKey {
    fn new() -> SessionKey {
        SessionKey { key: new_session_key(), litellm_user: None }
    }

    fn of(session: &crate::litellm::Session) -> SessionKey {
        SessionKey { key: session.key.clone(), litellm_user: Some(session.user_id.clone()) }
    }
}

/// The sign-in machinery the HTTP layer calls.
#[derive(Clone)]
pub struct SignInService {
    config: std::sync::Arc<Config>,
    db: Db,
    /// The hooks; a reload replaces them ([`Self::replace_hooks`]).
    plugins: LivePlugins,
    runner: HookRunner,
    signer: TokenSigner,
    refusals: std::sync::Arc<refusals::RefusalBudget>,
    /// The group commit; none for a rehearsal ([`Self::for_rehearsal`]), which writes nothing.
    writer: Option<crate::db::Writer>,
    /// The LiteLLM proxy each sign-in also opens a session in (`litellm_proxy_url`).
    front_door: Option<FrontDoor>,
    metrics: Metrics,
}

impl std::fmt::Debug for SignInService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SignInService").finish_non_exhaustive()
    }
}

/// The values a sign-in applies, checked.
#[derive(Debug, Clone)]
pub(crate) struct Values {
    pub(crate) models: Vec<String>,
    pub(crate) user_id: String,
    pub(crate) user_email: Option<String>,
    pub(crate) user_role: Option<UserRole>,
    pub(crate) max_budget: Option<f64>,
    pub(crate) budget_duration: Option<BudgetDuration>,
    /// Whether a `custom_sso` hook chose these (its budget applies at every sign-in).
    pub(crate) from_hook: bool,
}

impl SignInService {
    /// The service over a database and loaded hooks; starts the database writer.
    pub fn new(
        config: std::sync::Arc<Config>,
        db: Db,
        plugins: Plugins,
        signer: TokenSigner,
    ) -> Self {
        let metrics = Metrics::new();
        let writer = crate::db::Writer::start(db.clone(), metrics.clone());
        Self::with_writer(config, db, plugins, signer, metrics, Some(writer))
    }

    /// The service `hookgate try` rehearses with ([`Self::rehearse`]): no database writer is
    /// started, so a sign-in through it fails before writing, and its session signer is a
    /// throw-away key.
    pub fn for_rehearsal(config: std::sync::Arc<Config>, db: Db, plugins: Plugins) -> Self {
        let signer = TokenSigner::new(&crate::config::Secret::new(crate::session::random_hex(32)));
        Self::with_writer(config, db, plugins, signer, Metrics::new(), None)
    }

    fn with_writer(
        config: std::sync::Arc<Config>,
        db: Db,
        plugins: Plugins,
        signer: TokenSigner,
        metrics: Metrics,
        writer: Option<crate::db::Writer>,
    ) -> Self {
        let runner = HookRunner::new(config.hook_concurrency, config.hook_timeout);
        let refusals = std::sync::Arc::new(refusals::RefusalBudget::default());
        let front_door = match (&config.litellm_proxy_url, &config.master_key) {
            (Some(url), Some((key, _))) => Some(FrontDoor::new(
                url,
                key.clone(),
                config.session_duration,
                config.max_ui_session_budget,
            )),
            _ => None,
        };
        let plugins = LivePlugins::new(plugins);
        Self { config, db, plugins, runner, signer, refusals, writer, front_door, metrics }
    }

    /// What sign-ins, hooks and the writer record.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The hooks a sign-in starting now would use.
    pub fn hooks(&self) -> std::sync::Arc<Plugins> {
        self.plugins.current()
    }

    /// Serves `plugins`, each call given `hook_timeout`, to sign-ins that start from now on
    /// (a reload); sign-ins already running finish on the hooks they started with.
    pub fn replace_hooks(&self, plugins: Plugins, hook_timeout: std::time::Duration) {
        self.runner.set_timeout(hook_timeout);
        self.plugins.replace(plugins);
    }

    /// The token signer.
    pub fn signer(&self) -> &TokenSigner {
        &self.signer
    }

    /// Records an attempt that never reached the pipeline (untrusted peer, bad request…).
    pub async fn record_refusal(&self, attempt: &Attempt, error: &SignInError) {
        self.record_event(attempt, None, error).await;
    }

    /// Records a refused or failed attempt: as its own event, or over the bound counted into a
    /// summary event ([`refusals`]).
    async fn record_event(&self, attempt: &Attempt, user_id: Option<String>, error: &SignInError) {
        let outcome = error.outcome();
        self.metrics.sign_in(attempt.method, outcome, attempt.started.elapsed());
        let reason = error.reason();
        if self.refusals.admit(attempt, error, &reason) == refusals::Admit::Counted {
            return;
        }
        let row = event_row(attempt, user_id, outcome, Some(reason));
        if let Err(error) = store::insert_event(self.db.conn(), row).await {
            tracing::error!("could not record the sign-in event: {error}");
        }
    }

    /// Header sign-in: the trusted-proxy rule, then the header hook, then [`Self::complete`].
    pub async fn header_sign_in(
        &self,
        attempt: &Attempt,
        request: Result<HookRequest, UnfitRequest>,
    ) -> Result<SignedIn, SignInError> {
        // One set of hooks for the whole sign-in, whatever a reload does meanwhile.
        let hooks = self.plugins.current();
        match self.header_identity(&hooks, attempt, request, &mut HookTimes::default()).await {
            Ok(openid) => {
                let proof = Proof::of_header_identity(&openid);
                self.complete_with(&hooks, attempt, openid, proof).await
            }
            Err(error) => {
                self.record_refusal(attempt, &error).await;
                Err(error)
            }
        }
    }

    async fn header_identity(
        &self,
        hooks: &Plugins,
        attempt: &Attempt,
        request: Result<HookRequest, UnfitRequest>,
        times: &mut HookTimes,
    ) -> Result<OpenId, SignInError> {
        let Some(handler) = hooks.sign_in_handler.clone() else {
            return Err(SignInError::Internal("no sign-in handler is configured".into()));
        };
        // The peer first: an untrusted one learns nothing about its headers.
        let peer = attempt.peer.to_canonical();
        if !self.config.is_trusted_proxy(&peer) {
            return Err(SignInError::Forbidden(format!(
                "header sign-in is only accepted from the OAuth proxy: {peer} is not in \
                     general_settings.trusted_proxy_ranges"
            )));
        }
        let request = request.map_err(|unfit| match unfit {
            UnfitRequest::TooLarge { .. } => SignInError::HeadersTooLarge(unfit.to_string()),
            UnfitRequest::NotUtf8(_) => SignInError::BadRequest(unfit.to_string()),
        })?;
        self.call_sign_in_handler(handler, request, times).await
    }

    /// Runs the header hook on the request.
    async fn call_sign_in_handler(
        &self,
        handler: crate::plugins::SignInHandler,
        request: HookRequest,
        times: &mut HookTimes,
    ) -> Result<OpenId, SignInError> {
        let metrics = self.metrics.clone();
        let outcome = self
            .runner
            .run(move || {
                metrics
                    .time_hook(Hook::SignInHandler, || request.with_view(|view| handler.call(view)))
            })
            .await;
        let outcome = outcome.map(|(result, took)| {
            times.sign_in_handler = Some(took);
            result
        });
        self.hook_result("custom_ui_sso_sign_in_handler", outcome)
    }

    fn hook_result<T>(
        &self,
        setting: &'static str,
        outcome: Result<Result<T, plugin_api::HookError>, RunError>,
    ) -> Result<T, SignInError> {
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) if error.kind() == HookErrorKind::Panicked => {
                tracing::error!(setting, "hook {}", error);
                Err(SignInError::HookPanicked { setting, detail: error.message().to_owned() })
            }
            Ok(Err(error)) => {
                self.refusals.log_hook_refusal(setting, error.message());
                Err(SignInError::HookRefused { setting, message: error.message().to_owned() })
            }
            Err(RunError::Timeout) => {
                tracing::error!(setting, timeout = ?self.runner.timeout(), "hook timed out");
                Err(SignInError::HookTimeout(self.runner.timeout()))
            }
            Err(RunError::Busy) => Err(SignInError::Busy),
            Err(RunError::Crashed(detail)) => Err(SignInError::Internal(detail)),
        }
    }

    /// The common pipeline: from an identity to a session, recording the attempt either way.
    pub async fn complete(
        &self,
        attempt: &Attempt,
        openid: OpenId,
        proof: Proof,
    ) -> Result<SignedIn, SignInError> {
        self.complete_with(&self.plugins.current(), attempt, openid, proof).await
    }

    async fn complete_with(
        &self,
        hooks: &Plugins,
        attempt: &Attempt,
        openid: OpenId,
        proof: Proof,
    ) -> Result<SignedIn, SignInError> {
        let user_hint = openid.id.clone().or_else(|| openid.email.clone());
        match self.complete_inner(hooks, attempt, openid, proof).await {
            Ok(signed_in) => Ok(signed_in),
            Err((user_id, error)) => {
                let user_id = user_id.or(user_hint);
                if let SignInError::Database(db_error) = &error {
                    tracing::error!("sign-in failed on the database: {db_error}");
                }
                self.record_event(attempt, user_id, &error).await;
                Err(error)
            }
        }
    }

    async fn complete_inner(
        &self,
        hooks: &Plugins,
        attempt: &Attempt,
        openid: OpenId,
        proof: Proof,
    ) -> Result<SignedIn, (Option<String>, SignInError)> {
        let mut prepared = self.prepare(hooks, openid, proof, &mut HookTimes::default()).await?;
        let who = Some(prepared.values.user_id.clone());
        // Taken, not cloned: the write unwraps the only reference instead of copying the read.
        let read_before = prepared.read_before.take();
        match self.write_sign_in(attempt, &prepared.input(), read_before).await {
            Ok(signed_in) => Ok(signed_in),
            Err(error) => Err((who, error)),
        }
    }

    /// Everything before the write: the identity's checks, then the `custom_sso` hook (over a
    /// read made on its thread) or LiteLLM's defaults. On failure, the user it concerns if known.
    async fn prepare(
        &self,
        hooks: &Plugins,
        mut openid: OpenId,
        proof: Proof,
        times: &mut HookTimes,
    ) -> Result<Prepared, (Option<String>, SignInError)> {
        let config = &self.config;
        let no_user = |error| (None, error);
        if let Some(binding) = &proof.binding
            && !is_storable_id(&binding.subject)
        {
            return Err(no_user(SignInError::InvalidHookOutput(format!(
                "the identity's subject {} is longer than {MAX_ID} characters or has control \
                 characters",
                shown(&binding.subject),
            ))));
        }

        // Groups: each once; a bounded number (each is a lookup key of the snapshot read).
        let mut seen = std::collections::HashSet::new();
        openid.team_ids.retain(|team| seen.insert(team.clone()));
        if openid.team_ids.len() > MAX_GROUPS {
            return Err(no_user(SignInError::BadRequest(format!(
                "the identity names {} groups; hookgate accepts at most {MAX_GROUPS} (ask the \
                 identity provider's administrator to send only the groups that matter here)",
                openid.team_ids.len()
            ))));
        }

        // Identity: email lower-cased and checked; an id, else first + last, else the email.
        openid.email =
            openid.email.map(|email| email.trim().to_lowercase()).filter(|e| !e.is_empty());
        if let Some(email) = &openid.email
            && (!is_plausible_email(email) || email.len() > MAX_EMAIL)
        {
            return Err(no_user(SignInError::InvalidHookOutput(format!(
                "the identity's email {} is not an email address",
                shown(email)
            ))));
        }
        if !config.allowed_email_domains.is_empty() {
            if openid.email.is_some() && !proof.email_verified {
                return Err(no_user(SignInError::Forbidden(
                    "the identity provider has not verified this email address, and \
                              ALLOWED_EMAIL_DOMAINS admits verified addresses only"
                        .into(),
                )));
            }
            let domain =
                openid.email.as_deref().and_then(|email| email.rsplit_once('@')).map(|(_, d)| d);
            if !domain
                .is_some_and(|domain| config.allowed_email_domains.iter().any(|d| d == domain))
            {
                return Err(no_user(SignInError::Forbidden(format!(
                    "the email domain {} is not allowed to sign in (ALLOWED_EMAIL_DOMAINS)",
                    domain.unwrap_or("(none)")
                ))));
            }
        }
        let idp_id = openid.id.clone().map(|id| id.trim().to_owned()).filter(|id| !id.is_empty());
        let parsed_user_id = idp_id
            .clone()
            .or_else(|| {
                let name = format!(
                    "{}{}",
                    openid.first_name.as_deref().unwrap_or(""),
                    openid.last_name.as_deref().unwrap_or("")
                );
                (!name.trim().is_empty()).then(|| name.trim().to_owned())
            })
            .or_else(|| openid.email.clone());

        // The custom_sso hook, or LiteLLM's defaults.
        let mut read_before = None;
        let (values, staged) = match hooks.custom_sso.clone() {
            Some(hook) => {
                // One read for the hook's questions and, usually, the decision after it, made
                // on the hook's thread.
                let keys = rules::identity_keys(&openid, &proof, config);
                let db = self.db.clone();
                let runtime = Handle::current();
                let reference = hook.info().reference.clone();
                let identity = openid.clone();
                let metrics = self.metrics.clone();
                let outcome = self
                    .runner
                    .run(move || {
                        let snapshot = db.snapshot_blocking(&runtime, &keys)?;
                        let read = std::sync::Arc::new((keys, snapshot));
                        let host = SignInHost::new(db, runtime, reference, read.clone());
                        let (result, took) =
                            metrics.time_hook(Hook::CustomSso, || hook.call(&host, &identity));
                        Ok::<_, DbErr>((result, host.into_staged(), read, took))
                    })
                    .await;
                let (result, staged) = match outcome {
                    Ok(Err(error)) => return Err(no_user(SignInError::Database(error))),
                    Ok(Ok((result, (staged, database_failed), read, took))) => {
                        times.custom_sso = Some(took);
                        read_before = Some(read);
                        if database_failed && result.is_err() {
                            return Err(no_user(SignInError::Database(DbErr::Custom(
                                "a custom_sso host call failed on the database".into(),
                            ))));
                        }
                        (Ok(result), staged)
                    }
                    Err(error) => (Err(error), Vec::new()),
                };
                let values = self.hook_result("custom_sso", result).map_err(no_user)?;
                (check_values(values).map_err(no_user)?, staged)
            }
            None => {
                let Some(user_id) = parsed_user_id else {
                    return Err(no_user(SignInError::Unauthenticated(
                        "sign-in failed: the identity has no user id and no email".into(),
                    )));
                };
                if !is_storable_id(&user_id) {
                    return Err(no_user(SignInError::InvalidHookOutput(format!(
                        "the identity's user id {} is longer than {MAX_ID} characters or has \
                         control characters",
                        shown(&user_id)
                    ))));
                }
                let defaults = &config.default_internal_user_params;
                (
                    Values {
                        models: defaults.models.clone().unwrap_or_default(),
                        user_id,
                        user_email: openid.email.clone(),
                        user_role: openid.user_role,
                        max_budget: config.max_internal_user_budget,
                        budget_duration: config.internal_user_budget_duration,
                        from_hook: false,
                    },
                    Vec::new(),
                )
            }
        };
        Ok(Prepared { openid, proof, idp_id, values, staged, read_before })
    }

    /// Reads what the decision needs, decides ([`rules::decide`]), and applies the plan with the
    /// session and the "allowed" event in one transaction. A plan made from a snapshot another
    /// sign-in changed in the meantime is refused by the write and made again.
    async fn write_sign_in(
        &self,
        attempt: &Attempt,
        input: &rules::Input<'_>,
        read_before: Option<std::sync::Arc<(rules::Keys, rules::Snapshot)>>,
    ) -> Result<SignedIn, SignInError> {
        let keys = rules::keys(input, &self.config);
        // The read made for the hook serves the first decision when it covers it.
        let mut reused = read_before;
        // The LiteLLM session, once opened, serves every attempt; closed again if none lands.
        let mut litellm: Option<crate::litellm::Session> = None;
        // What the LiteLLM session was opened for: a plan made again that differs (another
        // user, role or models) needs a session of its own.
        let mut opened_for: Option<(String, UserRole, Vec<String>)> = None;
        let outcome = async {
            for _ in 0..MAX_PLAN_ATTEMPTS {
                let now = store::now();
                let snapshot = self.snapshot_for(&keys, reused.take()).await?;
                let plan = rules::decide(input, &snapshot, &self.config, now)?;
                let (user_id, role, is_new) =
                    (plan.account.user_id.clone(), plan.role, plan.is_new);
                let wanted = (user_id.clone(), role, plan.models.clone());
                if litellm.is_some() && opened_for.as_ref() != Some(&wanted) {
                    self.discard_litellm_session(litellm.take()).await;
                }
                let key = match (&self.front_door, &litellm) {
                    (None, _) => SessionKey::new(),
                    (Some(_), Some(session)) => SessionKey::of(session),
                    (Some(front_door), None) => {
                        let teams = teams_after(&plan, &snapshot);
                        let user = crate::litellm::SessionUser {
                            user_id: &user_id,
                            // The identity's email, verified or not (only a verified one is
                            // written), not the row's.
                            user_email: input.openid.email.as_deref(),
                            email_verified: input.proof.email_verified,
                            link_by_email: self.config.link_sso_accounts_by_email,
                            binding: plan.account.binding.as_ref(),
                            operator: false,
                            user_role: role,
                            models: &plan.models,
                            max_budget: plan.account.max_budget,
                            budget_duration: plan.account.budget_duration.map(|d| d.to_string()),
                            teams: &teams,
                        };
                        let session = front_door.open_session(&user).await?;
                        let key = SessionKey::of(&session);
                        litellm = Some(session);
                        opened_for = Some(wanted);
                        key
                    }
                };
                let (minted, session) = self.mint(
                    attempt,
                    key,
                    &user_id,
                    plan.account.user_email.clone(),
                    role,
                    &plan.models,
                    now,
                );
                let event = event_row(attempt, Some(user_id.clone()), "allowed", None);
                let job = crate::db::Job { plan, session, event, now };
                let Some(writer) = &self.writer else {
                    return Err(SignInError::Internal(
                        "a rehearsal has no database writer: it writes nothing".into(),
                    ));
                };
                match writer.apply(job).await? {
                    crate::db::Applied::Done => {
                        self.metrics.sign_in(attempt.method, "allowed", attempt.started.elapsed());
                        tracing::info!(%user_id, %role, new_user = is_new, method = attempt.method.as_str(), "signed in");
                        return Ok(minted.signed_in(user_id, role));
                    }
                    crate::db::Applied::Stale => {
                        tracing::debug!(%user_id, "the account changed during the sign-in; deciding again");
                    }
                }
            }
            Err(SignInError::Conflict(
                "the account kept changing during the sign-in; try again".into(),
            ))
        }
        .await;
        if outcome.is_err() {
            self.discard_litellm_session(litellm).await;
        }
        outcome
    }

    /// What the decision reads: the read made for the hook when it covers `keys` (taken without
    /// a copy: the hook's host has let go of it by now), else a new read.
    async fn snapshot_for(
        &self,
        keys: &rules::Keys,
        read_before: Option<std::sync::Arc<(rules::Keys, rules::Snapshot)>>,
    ) -> Result<rules::Snapshot, DbErr> {
        match read_before.filter(|read| read.0.covers(keys)) {
            Some(read) => Ok(std::sync::Arc::try_unwrap(read)
                .map_or_else(|shared| shared.1.clone(), |(_, snapshot)| snapshot)),
            None => store::snapshot(self.db.conn(), keys).await,
        }
    }

    /// Deletes the LiteLLM session key of a sign-in that did not complete, if it opened one
    /// (logged if LiteLLM refuses: the key then lapses at its expiry, and no cookie carries it).
    async fn discard_litellm_session(&self, litellm: Option<crate::litellm::Session>) {
        let (Some(front_door), Some(session)) = (&self.front_door, litellm) else { return };
        if let Err(error) = front_door.close_session(&session.key).await {
            tracing::warn!("could not delete the LiteLLM session key of a failed sign-in: {error}");
        }
    }

    /// Access changes (edits, deletions, memberships, sign-outs), written through to LiteLLM
    /// when hookgate is its front door.
    pub fn access(&self) -> crate::access::Access<'_> {
        crate::access::Access::new(&self.db, self.front_door.as_ref())
    }

    /// In front of LiteLLM, whether a live hookgate session's key is still live in LiteLLM too:
    /// a logout in LiteLLM's own UI deletes the key there, and then the session is revoked here
    /// as well (a logout on either side ends it on both). Always true without a front door.
    pub async fn session_key_is_live(&self, token_hash: &str) -> Result<bool, SignInError> {
        let Some(front_door) = &self.front_door else { return Ok(true) };
        if front_door.key_is_live(token_hash).await? {
            return Ok(true);
        }
        self.db.revoke_session(token_hash).await?;
        tracing::info!("a session signed out in LiteLLM is revoked here too");
        Ok(false)
    }

    /// Logs a session out of LiteLLM too, when hookgate is its front door.
    pub async fn close_front_door_session(&self, key: &str) -> Result<(), SignInError> {
        match &self.front_door {
            Some(front_door) => Ok(front_door.close_session(key).await?),
            None => Ok(()),
        }
    }

    /// Mints a session key (only its hash is stored) and signs the `token` cookie.
    #[allow(clippy::too_many_arguments)]
    fn mint(
        &self,
        attempt: &Attempt,
        key: SessionKey,
        user_id: &str,
        user_email: Option<String>,
        role: UserRole,
        models: &[String],
        now: DateTime<Utc>,
    ) -> (Minted, session::ActiveModel) {
        let SessionKey { key, litellm_user } = key;
        let config = &self.config;
        let expires_at = now
            + chrono::Duration::from_std(config.session_duration)
                .unwrap_or(chrono::Duration::days(1));
        let session = session::ActiveModel {
            token_hash: Set(hash_key(&key)),
            user_id: Set(user_id.to_owned()),
            user_role: Set(role.as_str().to_owned()),
            login_method: Set(attempt.method.claim().to_owned()),
            models: Set(store::json_list(models)),
            max_budget: Set(config.max_ui_session_budget),
            created_at: Set(now),
            expires_at: Set(expires_at),
            revoked_at: Set(None),
        };
        let token = self.signer.sign(&UiTokenClaims {
            // In front of LiteLLM, the user LiteLLM's key belongs to (its id when LiteLLM knew
            // the person under another one).
            user_id: litellm_user.unwrap_or_else(|| user_id.to_owned()),
            key: key.clone(),
            user_email,
            user_role: role.as_str().to_owned(),
            login_method: attempt.method.claim().to_owned(),
            premium_user: false,
            auth_header_name: "Authorization".to_owned(),
            disabled_non_admin_personal_key_creation: false,
            server_root_path: config.server_root_path.clone(),
            password_reset_required: false,
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
        });
        (Minted { key, token, expires_at }, session)
    }
}

/// The teams the user is a member of once `plan` is applied.
fn teams_after(plan: &rules::Plan, snapshot: &rules::Snapshot) -> Vec<String> {
    let user_id = &plan.account.user_id;
    let mut teams: Vec<String> = snapshot
        .memberships
        .iter()
        .filter(|(_, member)| member == user_id)
        .map(|(team, _)| team.clone())
        .chain(plan.memberships.iter().filter(|m| &m.user_id == user_id).map(|m| m.team_id.clone()))
        .collect();
    teams.sort();
    teams.dedup();
    teams
}

fn event_row(
    attempt: &Attempt,
    user_id: Option<String>,
    outcome: &str,
    reason: Option<String>,
) -> sign_in_event::ActiveModel {
    sign_in_event::ActiveModel {
        id: sea_orm::ActiveValue::NotSet,
        at: Set(store::now()),
        user_id: Set(user_id.map(|id| shorten(&id, 255))),
        method: Set(attempt.method.as_str().to_owned()),
        outcome: Set(outcome.to_owned()),
        reason: Set(reason.map(|reason| reason.chars().take(1000).collect())),
        // The client: behind a trusted proxy the address it forwarded, as for the password login.
        peer_addr: Set(attempt.client.to_canonical().to_string()),
        request_id: Set(shorten(&attempt.request_id, 64)),
    }
}
