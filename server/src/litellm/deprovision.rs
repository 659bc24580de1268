//! Deprovisioning in LiteLLM (SCIM `active: false` or a SCIM delete): every key the user owns
//! is deleted (`/key/list?user_id=`, page by page, then `/key/delete`) and the user leaves
//! every team (`/team/member_delete`). LiteLLM's user row stays, with its spend.

use serde_json::Value;

use super::{
    FrontDoor, FrontDoorError, LinkedAccount,
    owner::Found,
    transport::{encode, refused},
};

/// LiteLLM's largest `/key/list` page.
const KEY_PAGE: u64 = 100;
/// The most pages read (100 000 keys): a bound on a LiteLLM that keeps answering.
const MAX_KEY_PAGES: u64 = 1_000;

impl FrontDoor {
    /// Takes a deprovisioned user's access away in LiteLLM: its keys deleted, its team
    /// memberships removed. A user LiteLLM does not have (never signed in through the front
    /// door) has nothing to take away.
    ///
    /// # Errors
    /// LiteLLM refusing or unreachable; what was done before stays done (deprovisioning again
    /// finishes it).
    pub async fn deprovision(&self, account: &LinkedAccount<'_>) -> Result<(), FrontDoorError> {
        let Some(litellm_user) = self.linked_user(account).await? else { return Ok(()) };
        let keys = self.keys_of(&litellm_user).await?;
        self.close_sessions(&keys).await?;
        let step = "reading the user's teams";
        if let Some(row) = self.user_row(&litellm_user, step).await? {
            for team in Found::of(&row).teams {
                self.remove_member(&team, &litellm_user).await?;
            }
        }
        Ok(())
    }

    /// The tokens (SHA-256 hex) of every key `user_id` owns in LiteLLM.
    async fn keys_of(&self, user_id: &str) -> Result<Vec<String>, FrontDoorError> {
        let step = "listing the user's keys";
        let mut keys = Vec::new();
        for page in 1..=MAX_KEY_PAGES {
            let path = format!("/key/list?user_id={}&page={page}&size={KEY_PAGE}", encode(user_id));
            let body = match self.call(reqwest::Method::GET, &path, step, None).await? {
                (200, body) => body,
                (status, body) => return Err(refused(step, status, &body)),
            };
            let listed = body.get("keys").and_then(Value::as_array).cloned().unwrap_or_default();
            keys.extend(listed.iter().filter_map(|key| match key {
                Value::String(token) => Some(token.clone()),
                object => object.get("token").and_then(Value::as_str).map(str::to_owned),
            }));
            let pages = body.get("total_pages").and_then(Value::as_u64).unwrap_or(1);
            if listed.is_empty() || page >= pages {
                break;
            }
        }
        Ok(keys)
    }
}
