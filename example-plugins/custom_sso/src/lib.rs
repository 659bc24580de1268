//! Example `custom_sso` hook, after the one in LiteLLM's documentation: it runs after every
//! sign-in, looks the user up, and decides the values the user signs in with.
//!
//! ```yaml
//! general_settings:
//!   custom_sso: custom_sso.custom_sso_handler
//! ```
//!
//! What it decides:
//! * a user in the admin group (`admins`, or `$CUSTOM_SSO_ADMIN_GROUP`) is a `proxy_admin` with
//!   no budget limit;
//! * anyone else keeps the role already stored for them, or becomes an `internal_user`, with the
//!   documentation's budget of 0.01 USD a day;
//! * the user joins each existing team whose id is one of their identity provider groups.

use plugin_api::{HookError, Host, LogLevel, OpenId, SsoUserDefinedValues, TeamRole, UserRole};

/// The group whose members become proxy admins, unless `CUSTOM_SSO_ADMIN_GROUP` names another.
pub const DEFAULT_ADMIN_GROUP: &str = "admins";

/// Decides the user's values after a sign-in.
///
/// # Errors
/// Rejects a user without an id; fails when the server's database does.
pub fn custom_sso_handler(
    host: &Host<'_>,
    user: &OpenId,
) -> Result<SsoUserDefinedValues, HookError> {
    let Some(user_id) = user.id.as_deref().filter(|id| !id.is_empty()) else {
        return Err(HookError::rejected(
            "no id found for the user: the identity provider sent none",
        ));
    };
    let admin_group =
        std::env::var("CUSTOM_SSO_ADMIN_GROUP").unwrap_or_else(|_| DEFAULT_ADMIN_GROUP.to_owned());

    // Check whether the user exists in the database, as the LiteLLM example does.
    let existing = host.user_info(user_id)?;
    host.log(
        LogLevel::Info,
        format!(
            "custom_sso: user {user_id} {}",
            if existing.is_some() { "exists" } else { "is new" }
        ),
    );

    let is_admin = user.team_ids.contains(&admin_group);
    let user_role = if is_admin {
        UserRole::ProxyAdmin
    } else {
        existing
            .as_ref()
            .and_then(|stored| stored.user_role)
            .filter(|role| *role != UserRole::ProxyAdmin)
            .unwrap_or(UserRole::InternalUser)
    };

    for group in &user.team_ids {
        if host.team_info(group)?.is_some() {
            host.add_team_member(group, user_id, TeamRole::User)?;
        } else {
            host.log(LogLevel::Debug, format!("custom_sso: no team {group:?}, not joining it"));
        }
    }

    Ok(SsoUserDefinedValues {
        models: Vec::new(),
        user_id: user_id.to_owned(),
        user_email: user.email.clone(),
        user_role: Some(user_role),
        max_budget: if is_admin { None } else { Some(0.01) },
        budget_duration: if is_admin { None } else { Some("1d".to_owned()) },
    })
}

plugin_api::export_custom_sso!(custom_sso_handler, non_blocking);
