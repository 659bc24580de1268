//! The host's call table as plugin-api 0.1.0 has it: [`HostApi`] (the server's side),
//! [`HostVtable`] and [`HostRef`], and the trampolines that catch the host's panics.

use std::{
    ffi::c_void,
    marker::PhantomData,
    panic::{AssertUnwindSafe, catch_unwind},
};

use abi_stable::{
    StableAbi,
    std_types::{ROption, RResult, RStr},
};

use super::{NewUserFfi, TeamRecordFfi, UserRecordFfi};
use crate::{HostError, LogLevel, NewTeam, NewUser, TeamRecord, TeamRole, UserRecord};

/// The server's side of [`crate::Host`]: what it implements for `custom_sso` hooks to call.
pub trait HostApi: Sync {
    /// See [`crate::Host::user_info`].
    fn user_info(&self, user_id: &str) -> Result<Option<UserRecord>, HostError>;
    /// See [`crate::Host::new_user`].
    fn new_user(&self, user: NewUser) -> Result<UserRecord, HostError>;
    /// See [`crate::Host::team_info`].
    fn team_info(&self, team_id: &str) -> Result<Option<TeamRecord>, HostError>;
    /// See [`crate::Host::add_team_member`].
    fn add_team_member(
        &self,
        team_id: &str,
        user_id: &str,
        role: TeamRole,
    ) -> Result<(), HostError>;
    /// See [`crate::Host::log`].
    fn log(&self, level: LogLevel, message: &str);
    /// See [`crate::Host::remove_team_member`] (0.1.1). A host that does not implement it
    /// answers an error.
    fn remove_team_member(&self, team_id: &str, user_id: &str) -> Result<(), HostError> {
        let _ = (team_id, user_id);
        Err(HostError::new("this host does not implement remove_team_member"))
    }
    /// See [`crate::Host::create_team`] (0.1.1). A host that does not implement it answers an
    /// error.
    fn create_team(&self, team: NewTeam) -> Result<(), HostError> {
        let _ = team;
        Err(HostError::new("this host does not implement create_team"))
    }
}

/// The function table behind [`HostRef`]. Each entry is a host function that catches its own
/// panics: a panic must never unwind into plugin code.
#[repr(C)]
#[derive(StableAbi)]
#[allow(missing_docs)]
pub struct HostVtable {
    pub user_info:
        extern "C" fn(*const c_void, RStr<'_>) -> RResult<ROption<UserRecordFfi>, HostError>,
    pub new_user: extern "C" fn(*const c_void, &NewUserFfi) -> RResult<UserRecordFfi, HostError>,
    pub team_info:
        extern "C" fn(*const c_void, RStr<'_>) -> RResult<ROption<TeamRecordFfi>, HostError>,
    pub add_team_member:
        extern "C" fn(*const c_void, RStr<'_>, RStr<'_>, TeamRole) -> RResult<(), HostError>,
    pub log: extern "C" fn(*const c_void, LogLevel, RStr<'_>),
}

/// A borrowed handle to the server's [`HostApi`], as passed to a `custom_sso` hook.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct HostRef<'a> {
    ctx: *const c_void,
    vtable: &'static HostVtable,
    _borrow: PhantomData<&'a ()>,
}

impl<'a> HostRef<'a> {
    /// A handle to `host`, valid while `host` is borrowed.
    pub fn new<H: HostApi>(host: &'a H) -> Self {
        Self {
            ctx: (host as *const H).cast(),
            vtable: &HostTrampolines::<H>::VTABLE,
            _borrow: PhantomData,
        }
    }

    /// The host's context pointer. Only test fixtures that imitate a plugin built with
    /// plugin-api 0.1.0 (which called through this table) use it.
    #[doc(hidden)]
    pub fn ctx(&self) -> *const c_void {
        self.ctx
    }

    /// The host's 0.1.0 call table. As [`Self::ctx`].
    #[doc(hidden)]
    pub fn vtable(&self) -> &'static HostVtable {
        self.vtable
    }
}

pub(super) struct HostTrampolines<H>(PhantomData<H>);

impl<H: HostApi> HostTrampolines<H> {
    const VTABLE: HostVtable = HostVtable {
        user_info: Self::user_info,
        new_user: Self::new_user,
        team_info: Self::team_info,
        add_team_member: Self::add_team_member,
        log: Self::log,
    };

    /// # Safety
    /// `ctx` comes from [`HostRef::new`] with this `H`, and the borrow it was made from is alive:
    /// a `HostRef<'a>` cannot outlive `'a`, and plugins only get it for the duration of a call.
    pub(super) unsafe fn host<'h>(ctx: *const c_void) -> &'h H {
        // SAFETY: see above.
        unsafe { &*ctx.cast::<H>() }
    }

    pub(super) fn guarded<T>(
        what: &str,
        call: impl FnOnce() -> Result<T, HostError>,
    ) -> RResult<T, HostError> {
        match catch_unwind(AssertUnwindSafe(call)) {
            Ok(result) => result.into(),
            Err(payload) => RResult::RErr(HostError::new(format!(
                "the server failed while handling {what}: {}",
                panic_message(payload.as_ref())
            ))),
        }
    }

    pub(super) extern "C" fn user_info(
        ctx: *const c_void,
        user_id: RStr<'_>,
    ) -> RResult<ROption<UserRecordFfi>, HostError> {
        Self::guarded("user_info", || {
            // SAFETY: `ctx` was made by `HostRef::new::<H>` (the vtable is `H`'s).
            let host = unsafe { Self::host(ctx) };
            Ok(host.user_info(user_id.as_str())?.map(UserRecordFfi::from_native).into())
        })
    }

    pub(super) extern "C" fn new_user(
        ctx: *const c_void,
        user: &NewUserFfi,
    ) -> RResult<UserRecordFfi, HostError> {
        Self::guarded("new_user", || {
            // SAFETY: as in `user_info`.
            let host = unsafe { Self::host(ctx) };
            host.new_user(user.to_native()).map(UserRecordFfi::from_native)
        })
    }

    pub(super) extern "C" fn team_info(
        ctx: *const c_void,
        team_id: RStr<'_>,
    ) -> RResult<ROption<TeamRecordFfi>, HostError> {
        Self::guarded("team_info", || {
            // SAFETY: as in `user_info`.
            let host = unsafe { Self::host(ctx) };
            Ok(host.team_info(team_id.as_str())?.map(TeamRecordFfi::from_native).into())
        })
    }

    pub(super) extern "C" fn add_team_member(
        ctx: *const c_void,
        team_id: RStr<'_>,
        user_id: RStr<'_>,
        role: TeamRole,
    ) -> RResult<(), HostError> {
        Self::guarded("add_team_member", || {
            // SAFETY: as in `user_info`.
            let host = unsafe { Self::host(ctx) };
            host.add_team_member(team_id.as_str(), user_id.as_str(), role)
        })
    }

    pub(super) extern "C" fn log(ctx: *const c_void, level: LogLevel, message: RStr<'_>) {
        let _ignored = Self::guarded("log", || {
            // SAFETY: as in `user_info`.
            let host = unsafe { Self::host(ctx) };
            host.log(level, message.as_str());
            Ok(())
        });
    }
}

/// The text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    if let Some(message) = payload.downcast_ref::<&'static str>() {
        message
    } else if let Some(message) = payload.downcast_ref::<String>() {
        message
    } else {
        "panic with a non-string payload"
    }
}
