//! Writes to LiteLLM's users and team memberships: creating a user, bringing it in line with
//! the hooks' values, administrators' access changes, team membership, and the teams a sign-in
//! creates.

use hookgate_core::signin::NewTeam;
use plugin_api::UserRole;
use serde_json::{Value, json};

use super::{
    AccessUpdate, FrontDoor, FrontDoorError, SessionUser, litellm_binding,
    owner::Found,
    transport::{error_type, is_already_gone, message_of, refused},
};

impl FrontDoor {
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

    pub(super) async fn create_user(&self, user: &SessionUser<'_>) -> Result<(), FrontDoorError> {
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

    pub(super) async fn update_user(
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

    /// Creates a team a sign-in makes (`/team/new` with the same id, alias, models, budget,
    /// period and limits); a team LiteLLM already has (another sign-in's, or an
    /// administrator's) counts as created and is left as it is.
    pub async fn create_team(&self, team: &NewTeam) -> Result<(), FrontDoorError> {
        let step = "creating a team";
        let params = &team.params;
        let body = json!({
            "team_id": team.team_id,
            "team_alias": team.team_alias,
            "models": params.models,
            "max_budget": params.max_budget,
            "budget_duration": params.budget_duration.map(|duration| duration.to_string()),
            "tpm_limit": params.tpm_limit,
            "rpm_limit": params.rpm_limit,
            "metadata": {"created_by": "hookgate"},
        });
        match self.call(reqwest::Method::POST, "/team/new", step, Some(body)).await? {
            (200, _) => Ok(()),
            // LiteLLM 1.108.7: 400 "Team id = … already exists" (tests/litellm/NOTES.md).
            (400 | 409, body) if message_of(&body).contains("already exists") => Ok(()),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_map_to_litellms_four_without_granting_more() {
        assert_eq!(litellm_role(UserRole::ProxyAdmin), "proxy_admin");
        assert_eq!(litellm_role(UserRole::ProxyAdminViewer), "proxy_admin_viewer");
        assert_eq!(litellm_role(UserRole::InternalUser), "internal_user");
        assert_eq!(litellm_role(UserRole::OrgAdmin), "internal_user");
        assert_eq!(litellm_role(UserRole::InternalUserViewer), "internal_user_viewer");
        assert_eq!(litellm_role(UserRole::Team), "internal_user_viewer");
    }
}
