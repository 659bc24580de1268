//! The hook types' `#[repr(C)]` mirrors, as they cross the boundary, and their conversions.

use abi_stable::{
    StableAbi,
    std_types::{ROption, RString, RVec},
};

use crate::{NewUser, OpenId, SsoUserDefinedValues, TeamRecord, UserRecord, UserRole};

pub(super) fn rstring(value: String) -> RString {
    RString::from(value)
}

pub(super) fn ropt(value: Option<String>) -> ROption<RString> {
    value.map(RString::from).into()
}

pub(super) fn rvec(values: Vec<String>) -> RVec<RString> {
    values.into_iter().map(RString::from).collect()
}

pub(super) fn opt(value: &ROption<RString>) -> Option<String> {
    value.as_ref().into_option().map(|value| value.as_str().to_owned())
}

pub(super) fn vec(values: &RVec<RString>) -> Vec<String> {
    values.iter().map(|value| value.as_str().to_owned()).collect()
}

/// [`OpenId`] as it crosses the boundary.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
#[allow(missing_docs)]
pub struct OpenIdFfi {
    pub id: ROption<RString>,
    pub email: ROption<RString>,
    pub first_name: ROption<RString>,
    pub last_name: ROption<RString>,
    pub display_name: ROption<RString>,
    pub picture: ROption<RString>,
    pub provider: ROption<RString>,
    pub team_ids: RVec<RString>,
    pub user_role: ROption<UserRole>,
    /// Test fixtures build plugin-api without this field to imitate an older plugin-api.
    #[cfg(not(feature = "__test_older_layout"))]
    pub extra_fields: ROption<RString>,
}

impl OpenIdFfi {
    /// Moves the strings over without copying them.
    pub fn from_native(value: OpenId) -> Self {
        Self {
            id: ropt(value.id),
            email: ropt(value.email),
            first_name: ropt(value.first_name),
            last_name: ropt(value.last_name),
            display_name: ropt(value.display_name),
            picture: ropt(value.picture),
            provider: ropt(value.provider),
            team_ids: rvec(value.team_ids),
            user_role: value.user_role.into(),
            #[cfg(not(feature = "__test_older_layout"))]
            extra_fields: ropt(value.extra_fields),
        }
    }

    /// Copies the value into memory of the caller's allocator.
    pub fn to_native(&self) -> OpenId {
        OpenId {
            id: opt(&self.id),
            email: opt(&self.email),
            first_name: opt(&self.first_name),
            last_name: opt(&self.last_name),
            display_name: opt(&self.display_name),
            picture: opt(&self.picture),
            provider: opt(&self.provider),
            team_ids: vec(&self.team_ids),
            user_role: self.user_role.into_option(),
            #[cfg(not(feature = "__test_older_layout"))]
            extra_fields: opt(&self.extra_fields),
            #[cfg(feature = "__test_older_layout")]
            extra_fields: None,
        }
    }
}

/// [`SsoUserDefinedValues`] as it crosses the boundary.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
#[allow(missing_docs)]
pub struct SsoValuesFfi {
    pub models: RVec<RString>,
    pub user_id: RString,
    pub user_email: ROption<RString>,
    pub user_role: ROption<UserRole>,
    pub max_budget: ROption<f64>,
    pub budget_duration: ROption<RString>,
}

impl SsoValuesFfi {
    /// Moves the strings over without copying them.
    pub fn from_native(value: SsoUserDefinedValues) -> Self {
        Self {
            models: rvec(value.models),
            user_id: rstring(value.user_id),
            user_email: ropt(value.user_email),
            user_role: value.user_role.into(),
            max_budget: value.max_budget.into(),
            budget_duration: ropt(value.budget_duration),
        }
    }

    /// Copies the value into memory of the caller's allocator.
    pub fn to_native(&self) -> SsoUserDefinedValues {
        SsoUserDefinedValues {
            models: vec(&self.models),
            user_id: self.user_id.as_str().to_owned(),
            user_email: opt(&self.user_email),
            user_role: self.user_role.into_option(),
            max_budget: self.max_budget.into_option(),
            budget_duration: opt(&self.budget_duration),
        }
    }
}

/// [`UserRecord`] as it crosses the boundary.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
#[allow(missing_docs)]
pub struct UserRecordFfi {
    pub user_id: RString,
    pub user_email: ROption<RString>,
    pub user_alias: ROption<RString>,
    pub user_role: ROption<UserRole>,
    pub sso_user_id: ROption<RString>,
    pub models: RVec<RString>,
    pub max_budget: ROption<f64>,
    pub spend: f64,
    pub budget_duration: ROption<RString>,
    pub teams: RVec<RString>,
}

impl UserRecordFfi {
    /// Moves the strings over without copying them.
    pub fn from_native(value: UserRecord) -> Self {
        Self {
            user_id: rstring(value.user_id),
            user_email: ropt(value.user_email),
            user_alias: ropt(value.user_alias),
            user_role: value.user_role.into(),
            sso_user_id: ropt(value.sso_user_id),
            models: rvec(value.models),
            max_budget: value.max_budget.into(),
            spend: value.spend,
            budget_duration: ropt(value.budget_duration),
            teams: rvec(value.teams),
        }
    }

    /// Copies the value into memory of the caller's allocator.
    pub fn to_native(&self) -> UserRecord {
        UserRecord {
            user_id: self.user_id.as_str().to_owned(),
            user_email: opt(&self.user_email),
            user_alias: opt(&self.user_alias),
            user_role: self.user_role.into_option(),
            sso_user_id: opt(&self.sso_user_id),
            models: vec(&self.models),
            max_budget: self.max_budget.into_option(),
            spend: self.spend,
            budget_duration: opt(&self.budget_duration),
            teams: vec(&self.teams),
        }
    }
}

/// [`NewUser`] as it crosses the boundary.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
#[allow(missing_docs)]
pub struct NewUserFfi {
    pub user_id: ROption<RString>,
    pub user_email: ROption<RString>,
    pub user_alias: ROption<RString>,
    pub user_role: ROption<UserRole>,
    pub models: RVec<RString>,
    pub max_budget: ROption<f64>,
    pub budget_duration: ROption<RString>,
}

impl NewUserFfi {
    /// Copies a borrowed value.
    pub fn from_native(value: &NewUser) -> Self {
        Self {
            user_id: ropt(value.user_id.clone()),
            user_email: ropt(value.user_email.clone()),
            user_alias: ropt(value.user_alias.clone()),
            user_role: value.user_role.into(),
            models: rvec(value.models.clone()),
            max_budget: value.max_budget.into(),
            budget_duration: ropt(value.budget_duration.clone()),
        }
    }

    /// Copies the value into memory of the caller's allocator.
    pub fn to_native(&self) -> NewUser {
        NewUser {
            user_id: opt(&self.user_id),
            user_email: opt(&self.user_email),
            user_alias: opt(&self.user_alias),
            user_role: self.user_role.into_option(),
            models: vec(&self.models),
            max_budget: self.max_budget.into_option(),
            budget_duration: opt(&self.budget_duration),
        }
    }
}

/// [`TeamRecord`] as it crosses the boundary.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
#[allow(missing_docs)]
pub struct TeamRecordFfi {
    pub team_id: RString,
    pub team_alias: ROption<RString>,
    pub models: RVec<RString>,
}

impl TeamRecordFfi {
    /// Moves the strings over without copying them.
    pub fn from_native(value: TeamRecord) -> Self {
        Self {
            team_id: rstring(value.team_id),
            team_alias: ropt(value.team_alias),
            models: rvec(value.models),
        }
    }

    /// Copies the value into memory of the caller's allocator.
    pub fn to_native(&self) -> TeamRecord {
        TeamRecord {
            team_id: self.team_id.as_str().to_owned(),
            team_alias: opt(&self.team_alias),
            models: vec(&self.models),
        }
    }
}
