//! The values hooks exchange with the server, as plain Rust types.

use std::{fmt, str::FromStr};

use abi_stable::StableAbi;

/// A user's identity, as an identity provider or an OAuth proxy vouches for it.
///
/// The first seven fields are LiteLLM's (fastapi-sso's) `OpenID`; the last three are LiteLLM's
/// `CustomOpenID` extras. Every field is optional, as in LiteLLM.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OpenId {
    /// The user's id at the identity provider (the OIDC `sub`, or the proxy's user header).
    pub id: Option<String>,
    /// The user's email address. The server lower-cases it.
    pub email: Option<String>,
    /// Given name.
    pub first_name: Option<String>,
    /// Family name.
    pub last_name: Option<String>,
    /// The name to show.
    pub display_name: Option<String>,
    /// URL of the user's picture.
    pub picture: Option<String>,
    /// Which provider vouched for the user (`google`, `microsoft`, `generic`, `oauth2-proxy`…).
    pub provider: Option<String>,
    /// Team ids the identity provider places the user in (its groups). The server adds the user
    /// to those of these teams that exist.
    pub team_ids: Vec<String>,
    /// The role the identity provider gives the user, if any.
    pub user_role: Option<UserRole>,
    /// Further claims, as a JSON object in text form (LiteLLM's `extra_fields`).
    pub extra_fields: Option<String>,
}

/// What a `custom_sso` hook decides for a user: LiteLLM's `SSOUserDefinedValues`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SsoUserDefinedValues {
    /// Models the user may use; empty means the user's stored models (or all) apply.
    pub models: Vec<String>,
    /// The user id to use in the database. Must not be empty.
    pub user_id: String,
    /// The email to record for the user.
    pub user_email: Option<String>,
    /// The role the user signs in with.
    pub user_role: Option<UserRole>,
    /// The user's budget in USD; `None` means unlimited. Must not be negative.
    pub max_budget: Option<f64>,
    /// How often the budget resets: `<n>s`, `<n>m`, `<n>h`, `<n>d`, `<n>w`, `<n>mo`, or
    /// `hourly`, `daily`, `weekly`, `monthly`.
    pub budget_duration: Option<String>,
}

/// LiteLLM's user roles (`LitellmUserRoles`), with LiteLLM's exact strings.
///
/// The discriminants are part of the plugin ABI: new roles are appended, never reordered.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum UserRole {
    /// `proxy_admin`: administers the whole server.
    ProxyAdmin = 0,
    /// `proxy_admin_viewer`: sees everything, changes nothing.
    ProxyAdminViewer = 1,
    /// `org_admin`: administers an organisation.
    OrgAdmin = 2,
    /// `internal_user`: manages their own keys and spend.
    InternalUser = 3,
    /// `internal_user_viewer`: sees their own keys and spend.
    InternalUserViewer = 4,
    /// `team`: used by JWT authentication only.
    Team = 5,
    /// `customer`: an end user.
    Customer = 6,
}

impl UserRole {
    /// Every role, highest privilege first.
    pub const ALL: [UserRole; 7] = [
        UserRole::ProxyAdmin,
        UserRole::ProxyAdminViewer,
        UserRole::OrgAdmin,
        UserRole::InternalUser,
        UserRole::InternalUserViewer,
        UserRole::Team,
        UserRole::Customer,
    ];

    /// LiteLLM's string for the role.
    pub const fn as_str(self) -> &'static str {
        match self {
            UserRole::ProxyAdmin => "proxy_admin",
            UserRole::ProxyAdminViewer => "proxy_admin_viewer",
            UserRole::OrgAdmin => "org_admin",
            UserRole::InternalUser => "internal_user",
            UserRole::InternalUserViewer => "internal_user_viewer",
            UserRole::Team => "team",
            UserRole::Customer => "customer",
        }
    }

    /// Whether the role may use an admin-only UI (`ui_access_mode: admin_only`).
    pub const fn is_admin(self) -> bool {
        matches!(self, UserRole::ProxyAdmin | UserRole::ProxyAdminViewer)
    }
}

impl fmt::Display for UserRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role string that is not one of LiteLLM's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownRole(pub String);

impl fmt::Display for UnknownRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown role {:?}; expected one of ", self.0)?;
        for (idx, role) in UserRole::ALL.iter().enumerate() {
            if idx > 0 {
                f.write_str(", ")?;
            }
            f.write_str(role.as_str())?;
        }
        Ok(())
    }
}

impl std::error::Error for UnknownRole {}

impl FromStr for UserRole {
    type Err = UnknownRole;

    /// Parses LiteLLM's role strings, ignoring ASCII case as LiteLLM does for IdP roles.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        UserRole::ALL
            .into_iter()
            .find(|role| role.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// A member's role within a team: LiteLLM's `"user"` or `"admin"`.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TeamRole {
    /// `user`: a plain member.
    #[default]
    User = 0,
    /// `admin`: manages the team.
    Admin = 1,
}

impl TeamRole {
    /// LiteLLM's string for the role.
    pub const fn as_str(self) -> &'static str {
        match self {
            TeamRole::User => "user",
            TeamRole::Admin => "admin",
        }
    }
}

impl fmt::Display for TeamRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TeamRole {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "user" => Ok(TeamRole::User),
            "admin" => Ok(TeamRole::Admin),
            other => Err(format!("unknown team role {other:?}; expected user or admin")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_through_litellm_strings() {
        for role in UserRole::ALL {
            assert_eq!(role.as_str().parse::<UserRole>(), Ok(role));
        }
        assert_eq!("PROXY_ADMIN".parse::<UserRole>(), Ok(UserRole::ProxyAdmin));
        let err = "internal_user_view_only".parse::<UserRole>().unwrap_err();
        assert!(err.to_string().contains("internal_user_viewer"), "{err}");
    }
}
