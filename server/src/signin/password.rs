//! The `UI_USERNAME`/`UI_PASSWORD` sign-in: a proxy_admin session for `PROXY_ADMIN_ID`, or
//! LiteLLM's `default_user_id`, opened in LiteLLM first when hookgate is its front door.

use plugin_api::UserRole;
use sea_orm::{ActiveValue::Set, IntoActiveModel};

use super::{Attempt, SessionKey, SignInError, SignInService, SignedIn, event_row};
use crate::db::store;

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
        let key = litellm.as_ref().map_or_else(SessionKey::new, SessionKey::of);
        let result = self.write_password_sign_in(attempt, user_id, key).await;
        if result.is_err() {
            self.discard_litellm_session(litellm).await;
        }
        result
    }

    async fn write_password_sign_in(
        &self,
        attempt: &Attempt,
        user_id: String,
        key: SessionKey,
    ) -> Result<SignedIn, SignInError> {
        let now = store::now();
        let txn = self.db.write().await?;
        let conn = txn.conn();
        let row = store::new_user_row(
            user_id.clone(),
            None,
            None,
            UserRole::ProxyAdmin,
            &[],
            None,
            None,
            None,
            serde_json::json!({"created_by": "password_login"}),
            now,
        );
        store::insert_user_if_absent(conn, row).await?;
        let mut row = store::user_by_id(conn, &user_id).await?.ok_or_else(|| {
            SignInError::Internal(format!("user {user_id} vanished during sign-in"))
        })?;
        let promoted = row.user_role.as_deref() != Some(UserRole::ProxyAdmin.as_str());
        if promoted {
            let mut changes = row.clone().into_active_model();
            changes.user_role = Set(Some(UserRole::ProxyAdmin.as_str().to_owned()));
            changes.updated_at = Set(now);
            row = store::update_user(conn, changes).await?;
        }
        let models = store::list_of(&row.models);
        let (minted, session) = self.mint(
            attempt,
            key,
            &row.user_id,
            row.user_email.clone(),
            UserRole::ProxyAdmin,
            &models,
            now,
        );
        store::insert_session(conn, session).await?;
        store::insert_event(conn, event_row(attempt, Some(row.user_id.clone()), "allowed", None))
            .await?;
        txn.commit().await?;
        if promoted {
            self.db.forget_user(&row.user_id);
        }
        self.metrics.sign_in(attempt.method, "allowed", attempt.started.elapsed());
        tracing::info!(user_id = %row.user_id, method = attempt.method.as_str(), "signed in");
        Ok(minted.signed_in(row.user_id, UserRole::ProxyAdmin))
    }
}
