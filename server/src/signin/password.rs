//! The `UI_USERNAME`/`UI_PASSWORD` sign-in: a proxy_admin session for `PROXY_ADMIN_ID`, or
//! LiteLLM's `default_user_id`, opened in LiteLLM first when hookgate is its front door.

use hookgate_core::{admin, signin::Keys};
use plugin_api::UserRole;

use super::{
    Attempt, MAX_PLAN_ATTEMPTS, SessionKey, SignInError, SignInService, SignedIn, event_row,
};
use crate::db::{self, Applied, Job};

impl SignInService {
    /// `UI_USERNAME`/`UI_PASSWORD` sign-in (already checked by the caller): a proxy_admin
    /// session for `PROXY_ADMIN_ID`, or LiteLLM's `default_user_id`.
    pub async fn password_sign_in(&self, attempt: &Attempt) -> Result<SignedIn, SignInError> {
        let result = self.password_sign_in_inner(attempt).await;
        if let Err(error) = &result {
            self.record_refusal(attempt, error).await;
        }
        result
    }

    async fn password_sign_in_inner(&self, attempt: &Attempt) -> Result<SignedIn, SignInError> {
        let user_id =
            self.config.proxy_admin_id.clone().unwrap_or_else(|| "default_user_id".to_owned());
        // LiteLLM's session first: nothing is written here unless it opened.
        let litellm = match &self.front_door {
            None => None,
            Some(front_door) => {
                let user = crate::litellm::SessionUser {
                    user_id: &user_id,
                    user_email: None,
                    email_verified: false,
                    link_by_email: false,
                    binding: None,
                    operator: true,
                    user_role: UserRole::ProxyAdmin,
                    models: &[],
                    max_budget: None,
                    budget_duration: None,
                    teams: &[],
                };
                Some(front_door.open_session(&user).await?)
            }
        };
        let result = self.write_password_sign_in(attempt, user_id, litellm.as_ref()).await;
        if result.is_err() {
            self.discard_litellm_session(litellm).await;
        }
        result
    }

    /// Writes the password login's plan ([`admin::password_login`]) through the writer, with
    /// the session and the event, like a single sign-on plan: made again if the account changed
    /// since it was read.
    async fn write_password_sign_in(
        &self,
        attempt: &Attempt,
        user_id: String,
        litellm: Option<&crate::litellm::Session>,
    ) -> Result<SignedIn, SignInError> {
        let Some(writer) = &self.writer else {
            return Err(SignInError::Internal(
                "a rehearsal has no database writer: it writes nothing".into(),
            ));
        };
        let keys = Keys { user_ids: vec![user_id.clone()], ..Keys::default() };
        for _ in 0..MAX_PLAN_ATTEMPTS {
            let now = db::now();
            let snapshot = self.db.read_snapshot(&keys).await?;
            let stored = snapshot.accounts.iter().find(|account| account.user_id == user_id);
            if stored.is_some_and(|account| !account.active) {
                return Err(SignInError::Forbidden(
                    hookgate_core::signin::Refusal::Deactivated(user_id).to_string(),
                ));
            }
            let plan = admin::password_login(&user_id, stored, now);
            let key = litellm.map_or_else(SessionKey::new, SessionKey::of);
            let (minted, session) = self.mint(
                attempt,
                key,
                &user_id,
                plan.account.user_email.clone(),
                UserRole::ProxyAdmin,
                &plan.models,
                now,
            );
            let event = event_row(attempt, Some(user_id.clone()), "allowed", None);
            match writer.apply(Job { plan, session, event, now, remembered: None }).await? {
                Applied::Done => {
                    self.metrics.sign_in(attempt.method, "allowed", attempt.started.elapsed());
                    tracing::info!(%user_id, method = attempt.method.as_str(), "signed in");
                    return Ok(minted.signed_in(user_id, UserRole::ProxyAdmin));
                }
                Applied::Stale => {
                    tracing::debug!(%user_id, "the account changed during the sign-in; deciding again");
                }
            }
        }
        Err(SignInError::Conflict("the account kept changing during the sign-in; try again".into()))
    }
}
