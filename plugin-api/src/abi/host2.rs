//! plugin-api 0.1.1's host table: every call of 0.1.0's ([`super::HostVtable`]) and, after
//! them, `remove_team_member` and `create_team`. A `custom_sso` hook built with 0.1.1 is exported
//! as [`CustomSsoHook2`] (a hook kind of its own, [`super::HookKind::CustomSso2`]) and is handed
//! a [`HostRef2`]; a hook built with 0.1.0 is still exported as [`super::CustomSsoHook`], and the
//! server hands it the 0.1.0 table it was built for, so it keeps loading unchanged.

use std::{ffi::c_void, marker::PhantomData};

use abi_stable::{
    StableAbi,
    std_types::{ROption, RResult, RStr, RString, RVec},
};

use super::{
    Hook, HookKind, HostApi, NewUserFfi, OpenIdFfi, SsoValuesFfi, TeamRecordFfi, UserRecordFfi,
    host::HostTrampolines,
    values::{opt, ropt, rvec, vec},
};
use crate::{HookError, HostError, LogLevel, NewTeam, TeamRole};

/// [`NewTeam`] as it crosses the boundary.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
#[allow(missing_docs)]
pub struct NewTeamFfi {
    pub team_id: RString,
    pub team_alias: ROption<RString>,
    pub models: RVec<RString>,
    pub max_budget: ROption<f64>,
    pub budget_duration: ROption<RString>,
    pub tpm_limit: ROption<u64>,
    pub rpm_limit: ROption<u64>,
}

impl NewTeamFfi {
    /// Copies a borrowed value.
    pub fn from_native(value: &NewTeam) -> Self {
        Self {
            team_id: RString::from(value.team_id.clone()),
            team_alias: ropt(value.team_alias.clone()),
            models: rvec(value.models.clone()),
            max_budget: value.max_budget.into(),
            budget_duration: ropt(value.budget_duration.clone()),
            tpm_limit: value.tpm_limit.into(),
            rpm_limit: value.rpm_limit.into(),
        }
    }

    /// Copies the value into memory of the caller's allocator.
    pub fn to_native(&self) -> NewTeam {
        NewTeam {
            team_id: self.team_id.as_str().to_owned(),
            team_alias: opt(&self.team_alias),
            models: vec(&self.models),
            max_budget: self.max_budget.into_option(),
            budget_duration: opt(&self.budget_duration),
            tpm_limit: self.tpm_limit.into_option(),
            rpm_limit: self.rpm_limit.into_option(),
        }
    }
}

/// The function table behind [`HostRef2`]: 0.1.0's entries in 0.1.0's order, then the new ones.
#[repr(C)]
#[derive(StableAbi)]
#[allow(missing_docs)]
pub struct HostVtable2 {
    pub user_info:
        extern "C" fn(*const c_void, RStr<'_>) -> RResult<ROption<UserRecordFfi>, HostError>,
    pub new_user: extern "C" fn(*const c_void, &NewUserFfi) -> RResult<UserRecordFfi, HostError>,
    pub team_info:
        extern "C" fn(*const c_void, RStr<'_>) -> RResult<ROption<TeamRecordFfi>, HostError>,
    pub add_team_member:
        extern "C" fn(*const c_void, RStr<'_>, RStr<'_>, TeamRole) -> RResult<(), HostError>,
    pub log: extern "C" fn(*const c_void, LogLevel, RStr<'_>),
    pub remove_team_member:
        extern "C" fn(*const c_void, RStr<'_>, RStr<'_>) -> RResult<(), HostError>,
    pub create_team: extern "C" fn(*const c_void, &NewTeamFfi) -> RResult<(), HostError>,
}

/// A borrowed handle to the server's [`HostApi`], as passed to a 0.1.1 `custom_sso` hook.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct HostRef2<'a> {
    ctx: *const c_void,
    vtable: &'static HostVtable2,
    _borrow: PhantomData<&'a ()>,
}

impl<'a> HostRef2<'a> {
    /// A handle to `host`, valid while `host` is borrowed.
    pub fn new<H: HostApi>(host: &'a H) -> Self {
        Self {
            ctx: (host as *const H).cast(),
            vtable: &HostTrampolines::<H>::VTABLE2,
            _borrow: PhantomData,
        }
    }

    pub(crate) fn ctx(&self) -> *const c_void {
        self.ctx
    }

    pub(crate) fn vtable(&self) -> &'static HostVtable2 {
        self.vtable
    }
}

impl<H: HostApi> HostTrampolines<H> {
    const VTABLE2: HostVtable2 = HostVtable2 {
        user_info: Self::user_info,
        new_user: Self::new_user,
        team_info: Self::team_info,
        add_team_member: Self::add_team_member,
        log: Self::log,
        remove_team_member: Self::remove_team_member,
        create_team: Self::create_team,
    };

    extern "C" fn remove_team_member(
        ctx: *const c_void,
        team_id: RStr<'_>,
        user_id: RStr<'_>,
    ) -> RResult<(), HostError> {
        Self::guarded("remove_team_member", || {
            // SAFETY: `ctx` was made by `HostRef2::new::<H>` (the vtable is `H`'s).
            let host = unsafe { Self::host(ctx) };
            host.remove_team_member(team_id.as_str(), user_id.as_str())
        })
    }

    extern "C" fn create_team(ctx: *const c_void, team: &NewTeamFfi) -> RResult<(), HostError> {
        Self::guarded("create_team", || {
            // SAFETY: as in `remove_team_member`.
            let host = unsafe { Self::host(ctx) };
            host.create_team(team.to_native())
        })
    }
}

/// A `custom_sso` hook built with plugin-api 0.1.1 or later.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct CustomSsoHook2 {
    /// Takes the identity and the host, returns the user's values.
    pub call: extern "C" fn(HostRef2<'_>, &OpenIdFfi) -> RResult<SsoValuesFfi, HookError>,
}

impl Hook for CustomSsoHook2 {
    const KIND: HookKind = HookKind::CustomSso2;
}
