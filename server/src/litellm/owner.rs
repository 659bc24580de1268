//! Which LiteLLM user is an identity's: the lookups by binding, id and email (`/user/list`,
//! `/user/info`) and the ownership rule ([`Owner`]) that the sign-in and administrators'
//! changes both apply.

use serde_json::Value;

use super::{
    FrontDoor, FrontDoorError, LinkedAccount, SessionUser, litellm_binding,
    transport::{encode, refused},
};

impl FrontDoor {
    /// The sign-in's lookup, under hookgate's identity rule: the user bound to this identity;
    /// else the user with this id, taken only if it is this identity's, or unbound and the
    /// identity's verified email is its email; else, when linking by email is allowed and the
    /// email verified, the unbound user with this email. A user reached by id or email that is
    /// bound to another identity, or that the identity cannot prove, refuses the sign-in.
    pub(super) async fn find_user(
        &self,
        user: &SessionUser<'_>,
    ) -> Result<Option<Found>, FrontDoorError> {
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
    pub(super) async fn user_row(
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
}

/// A LiteLLM user the lookup found.
#[derive(Debug)]
pub(super) struct Found {
    pub(super) user_id: String,
    pub(super) user_email: Option<String>,
    pub(super) sso_user_id: Option<String>,
    pub(super) hookgate_binding: Option<String>,
    /// Whether hookgate created it (`metadata.auth_provider`).
    pub(super) by_hookgate: bool,
    pub(super) metadata: Value,
    pub(super) teams: Vec<String>,
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
    pub(super) fn of(row: &Value) -> Found {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

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
}
