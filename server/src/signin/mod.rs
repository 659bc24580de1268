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
mod prepare;
mod refusals;
mod rehearsal;
mod runner;

use crate::db::Error as DbErr;
use chrono::{DateTime, Utc};
use hookgate_core::{
    records::{NewSession, SignInRecord},
    signin as rules,
};
use plugin_api::UserRole;

pub(crate) use self::refusals::{LogSampler, client_bucket};
pub use self::{
    error::SignInError,
    identity::{Attempt, Binding, LoginMethod, Proof},
    prepare::HookTimes,
    rehearsal::{Rehearsal, Rehearsed},
    runner::{HookRunner, RunError},
};
use crate::{
    config::Config,
    db::{self, Db},
    litellm::FrontDoor,
    metrics::Metrics,
    plugins::{LivePlugins, Plugins},
    session::{TokenSigner, UiTokenClaims, hash_key, new_session_key},
};

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

impl SignInService {
    /// The service over a database and loaded hooks; starts the database writer.
    pub fn new(
        config: std::sync::Arc<Config>,
        db: Db,
        plugins: Plugins,
        signer: TokenSigner,
    ) -> Self {
        let metrics = Metrics::new();
        let writer = crate::db::Writer::start(db.clone(), {
            let metrics = metrics.clone();
            std::sync::Arc::new(move |took| metrics.db_transaction(took))
        });
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
        if let Err(error) = self.db.insert_event(&row).await {
            tracing::error!("could not record the sign-in event: {error}");
        }
    }

    /// Reads what the decision needs, decides ([`rules::decide`]), and applies the plan with the
    /// session and the "allowed" event in one transaction. A plan made from a snapshot another
    /// sign-in changed in the meantime is refused by the write and made again.
    async fn write_sign_in(
        &self,
        attempt: &Attempt,
        input: &rules::Input<'_>,
        read_before: Option<prepare::ReadBefore>,
    ) -> Result<SignedIn, SignInError> {
        let keys = rules::keys(input, &self.config.policy());
        // The read made for the hook serves the first decision when it covers it.
        let mut reused = read_before;
        // The LiteLLM session, once opened, serves every attempt; closed again if none lands.
        let mut litellm: Option<crate::litellm::Session> = None;
        // What the LiteLLM session was opened for: a plan made again that differs (another
        // user, role, models or teams) needs a session of its own.
        let mut opened_for: Option<(String, UserRole, Vec<String>, Vec<String>)> = None;
        let outcome = async {
            for _ in 0..MAX_PLAN_ATTEMPTS {
                let now = db::now();
                let db::SignInRead { mut snapshot, mut remembered } =
                    self.snapshot_for(&keys, reused.take()).await?;
                let mut decided = rules::decide(input, &snapshot, &self.config.policy(), now);
                // A refusal is never decided on a remembered snapshot: read, and decide again.
                if decided.is_err() && remembered.is_some() {
                    (snapshot, remembered) = (self.db.read_snapshot(&keys).await?, None);
                    decided = rules::decide(input, &snapshot, &self.config.policy(), now);
                }
                let plan = decided
                    .inspect_err(|refusal| match refusal {
                        rules::Refusal::BoundElsewhere(user_id) | rules::Refusal::NotLinked(user_id) => {
                            tracing::warn!(%user_id, "sign-in refused: {refusal}");
                        }
                        _ => {}
                    })?;
                for user_id in &plan.passed_over {
                    tracing::warn!(
                        %user_id,
                        "an account with this email is bound to another identity or reserved; not taking it over"
                    );
                }
                let (user_id, role, is_new) =
                    (plan.account.user_id.clone(), plan.role, plan.is_new);
                let wanted =
                    (user_id.clone(), role, plan.models.clone(), teams_after(&plan, &snapshot));
                if litellm.is_some() && opened_for.as_ref() != Some(&wanted) {
                    self.discard_litellm_session(litellm.take()).await;
                }
                // The teams the sign-in creates exist in LiteLLM before the user joins them
                // there (a refusal fails the sign-in with nothing written here).
                if let Some(front_door) = &self.front_door {
                    for team in &plan.new_teams {
                        front_door.create_team(team).await?;
                    }
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
                // An authoritative sync's removals reach LiteLLM first: the user leaves the
                // teams there, and the keys of the sessions this sign-in ends are deleted (a
                // refusal fails the sign-in with nothing changed here).
                if let (Some(front_door), Some(session)) = (&self.front_door, &litellm)
                    && !plan.removed.is_empty()
                {
                    for team_id in &plan.removed {
                        front_door.remove_member(team_id, &session.user_id).await?;
                    }
                    let earlier = self.db.live_session_hashes(&user_id).await?;
                    front_door.close_sessions(&earlier).await?;
                }
                // So do a hook's (`remove_team_member`): each user leaves the LiteLLM team (the
                // signing-in user under LiteLLM's id for them), and their sessions' keys go.
                if let (Some(front_door), Some(session)) = (&self.front_door, &litellm)
                    && !plan.hook_removed.is_empty()
                {
                    let mut losing: Vec<&str> = Vec::new();
                    for (team_id, member) in &plan.hook_removed {
                        let litellm_user =
                            if *member == user_id { session.user_id.as_str() } else { member };
                        front_door.remove_member(team_id, litellm_user).await?;
                        if !losing.contains(&member.as_str()) {
                            losing.push(member);
                        }
                    }
                    for member in losing {
                        let earlier = self.db.live_session_hashes(member).await?;
                        front_door.close_sessions(&earlier).await?;
                    }
                }
                let (minted, session) = self.mint(
                    attempt,
                    key,
                    &user_id,
                    plan.account.user_email.clone(),
                    role,
                    &plan.models,
                    now,
                );
                // The groups decide what an authoritative sync removes (and, or the role
                // mapping's own, the role): recorded, so that `hookgate sync --dry-run` can
                // preview it from the latest sign-in.
                let event = event_row(attempt, Some(user_id.clone()), "allowed", None)
                    .with_groups(&input.openid.team_ids, input.proof.role_groups.as_deref());
                let job = crate::db::Job { plan, session, event, now, remembered };
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
    /// a copy: the hook's host has let go of it by now), else a new one ([`Db::snapshot`]).
    async fn snapshot_for(
        &self,
        keys: &rules::Keys,
        read_before: Option<prepare::ReadBefore>,
    ) -> Result<db::SignInRead, DbErr> {
        match read_before.filter(|before| before.read.0.covers(keys)) {
            Some(prepare::ReadBefore { read, remembered }) => {
                let snapshot = std::sync::Arc::try_unwrap(read)
                    .map_or_else(|shared| shared.1.clone(), |(_, snapshot)| snapshot);
                Ok(db::SignInRead { snapshot, remembered })
            }
            None => self.db.snapshot(keys).await,
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
    ) -> (Minted, NewSession) {
        let SessionKey { key, litellm_user } = key;
        let config = &self.config;
        let expires_at = now
            + chrono::Duration::from_std(config.session_duration)
                .unwrap_or(chrono::Duration::days(1));
        let session = NewSession {
            token_hash: hash_key(&key),
            user_id: user_id.to_owned(),
            user_role: role,
            login_method: attempt.method.claim(),
            models: models.to_vec(),
            max_budget: config.max_ui_session_budget,
            created_at: now,
            expires_at,
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

/// The teams the user is a member of once `plan` is applied (an authoritative sync's and the
/// hook's removals taken out).
fn teams_after(plan: &rules::Plan, snapshot: &rules::Snapshot) -> Vec<String> {
    let user_id = &plan.account.user_id;
    let mut teams: Vec<String> = snapshot
        .memberships
        .iter()
        .filter(|(_, member)| member == user_id)
        .map(|(team, _)| team.clone())
        .chain(plan.memberships.iter().filter(|m| &m.user_id == user_id).map(|m| m.team_id.clone()))
        .filter(|team| !plan.removed.contains(team))
        .filter(|team| !plan.hook_removed.iter().any(|(t, u)| t == team && u == user_id))
        .collect();
    teams.sort();
    teams.dedup();
    teams
}

/// The record of an attempt, now.
fn event_row(
    attempt: &Attempt,
    user_id: Option<String>,
    outcome: &str,
    reason: Option<String>,
) -> SignInRecord {
    // The client: behind a trusted proxy the address it forwarded, as for the password login.
    SignInRecord::new(
        db::now(),
        user_id.as_deref(),
        attempt.method.as_str(),
        outcome,
        reason.as_deref(),
        attempt.client.to_canonical().to_string(),
        &attempt.request_id,
    )
}
