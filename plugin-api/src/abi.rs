//! What crosses the library boundary: `#[repr(C)]` mirrors of the hook types, the host's call
//! table, and the descriptor each hook is exported as. Plugin authors never use this module; the
//! export macros and the server do.
//!
//! # The descriptor
//!
//! `export_custom_sso!(custom_sso_handler)` exports a `static` [`HookExport`] under the symbol
//! `custom_sso_handler`. Its first fields ([`HookExport::magic`] and
//! [`HookExport::descriptor_version`]) never change, so the server can recognise a descriptor
//! (and refuse a symbol that is not one, such as libc's `malloc`) before trusting anything else.
//! The rest says which kind of hook it is, which plugin-api built it, whether it was built with
//! `panic = "unwind"`, and carries abi_stable's [`TypeLayout`] of the hook's function type, which
//! the server compares with its own.
//!
//! # Evolving the ABI
//!
//! Any change to a type reachable from [`SignInHook`] or [`CustomSsoHook`] is breaking: bump the
//! crate's minor version (0.x) or major version, and plugins must be rebuilt. Additions go in new
//! hook kinds, so older plugins keep loading, with a patch version (0.x.y: abi_stable and
//! [`check_export`] refuse another 0.x minor version).
//!
//! So it went for 0.1.1's host calls `remove_team_member` and `create_team`: 0.1.0's
//! [`CustomSsoHook`], [`HostRef`] and [`HostVtable`] are kept exactly as they were, for the
//! server to call hooks built with 0.1.0; hooks built with 0.1.1 are exported as
//! [`CustomSsoHook2`] (kind [`HookKind::CustomSso2`], code 3) and get a [`HostRef2`], whose table
//! is 0.1.0's followed by the new calls. The server accepts either kind for `custom_sso`.

use std::{
    ffi::c_void,
    fmt,
    marker::PhantomData,
    panic::{AssertUnwindSafe, catch_unwind},
};

use abi_stable::{
    StableAbi,
    abi_stability::abi_checking::{
        AbiInstability, AbiInstabilityErrors, check_layout_compatibility,
    },
    library::AbiHeader,
    std_types::{ROption, RResult, RStr, RString, RVec},
    type_layout::{TLFieldOrFunction, TypeLayout},
};

mod host2;
pub use host2::{CustomSsoHook2, HostRef2, HostVtable2, NewTeamFfi};

use crate::{
    HookError, HostError, LogLevel, NewTeam, NewUser, OpenId, SignInRequest, SsoUserDefinedValues,
    TeamRecord, TeamRole, UserRecord, UserRole,
};

// ---------------------------------------------------------------------------------------------
// Value types

fn rstring(value: String) -> RString {
    RString::from(value)
}

fn ropt(value: Option<String>) -> ROption<RString> {
    value.map(RString::from).into()
}

fn rvec(values: Vec<String>) -> RVec<RString> {
    values.into_iter().map(RString::from).collect()
}

fn opt(value: &ROption<RString>) -> Option<String> {
    value.as_ref().into_option().map(|value| value.as_str().to_owned())
}

fn vec(values: &RVec<RString>) -> Vec<String> {
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

// ---------------------------------------------------------------------------------------------
// The host's call table

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

struct HostTrampolines<H>(PhantomData<H>);

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
    unsafe fn host<'h>(ctx: *const c_void) -> &'h H {
        // SAFETY: see above.
        unsafe { &*ctx.cast::<H>() }
    }

    fn guarded<T>(
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

    extern "C" fn user_info(
        ctx: *const c_void,
        user_id: RStr<'_>,
    ) -> RResult<ROption<UserRecordFfi>, HostError> {
        Self::guarded("user_info", || {
            // SAFETY: `ctx` was made by `HostRef::new::<H>` (the vtable is `H`'s).
            let host = unsafe { Self::host(ctx) };
            Ok(host.user_info(user_id.as_str())?.map(UserRecordFfi::from_native).into())
        })
    }

    extern "C" fn new_user(
        ctx: *const c_void,
        user: &NewUserFfi,
    ) -> RResult<UserRecordFfi, HostError> {
        Self::guarded("new_user", || {
            // SAFETY: as in `user_info`.
            let host = unsafe { Self::host(ctx) };
            host.new_user(user.to_native()).map(UserRecordFfi::from_native)
        })
    }

    extern "C" fn team_info(
        ctx: *const c_void,
        team_id: RStr<'_>,
    ) -> RResult<ROption<TeamRecordFfi>, HostError> {
        Self::guarded("team_info", || {
            // SAFETY: as in `user_info`.
            let host = unsafe { Self::host(ctx) };
            Ok(host.team_info(team_id.as_str())?.map(TeamRecordFfi::from_native).into())
        })
    }

    extern "C" fn add_team_member(
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

    extern "C" fn log(ctx: *const c_void, level: LogLevel, message: RStr<'_>) {
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

// ---------------------------------------------------------------------------------------------
// Hooks and their descriptors

/// The two kinds of hooks, named after the settings that use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    /// `general_settings.custom_ui_sso_sign_in_handler`: request in, [`OpenId`] out.
    SignInHandler,
    /// `general_settings.custom_sso`: [`OpenId`] in, [`SsoUserDefinedValues`] out, with
    /// plugin-api 0.1.0's host ([`CustomSsoHook`]).
    CustomSso,
    /// `general_settings.custom_sso` built with plugin-api 0.1.1 or later, whose host has
    /// `remove_team_member` and `create_team` too ([`CustomSsoHook2`]).
    CustomSso2,
}

impl HookKind {
    /// The value stored in [`HookExport::kind`].
    pub const fn code(self) -> u32 {
        match self {
            HookKind::SignInHandler => 1,
            HookKind::CustomSso => 2,
            HookKind::CustomSso2 => 3,
        }
    }

    /// The kind stored as `code`, if any.
    pub const fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(HookKind::SignInHandler),
            2 => Some(HookKind::CustomSso),
            3 => Some(HookKind::CustomSso2),
            _ => None,
        }
    }

    /// The config key (and the export macro) this kind belongs to.
    pub const fn setting(self) -> &'static str {
        match self {
            HookKind::SignInHandler => "custom_ui_sso_sign_in_handler",
            HookKind::CustomSso | HookKind::CustomSso2 => "custom_sso",
        }
    }
}

impl fmt::Display for HookKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.setting())
    }
}

/// A hook's function type, wrapped in a struct so that its layout can be checked.
pub trait Hook: StableAbi + 'static {
    /// Which kind of hook this is.
    const KIND: HookKind;
}

/// A `custom_ui_sso_sign_in_handler` hook.
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct SignInHook {
    /// Reads the request, returns the identity.
    pub call: extern "C" fn(&SignInRequest<'_>) -> RResult<OpenIdFfi, HookError>,
}

impl Hook for SignInHook {
    const KIND: HookKind = HookKind::SignInHandler;
}

/// A `custom_sso` hook built with plugin-api 0.1.0 (kept unchanged so that such plugins keep
/// loading).
#[repr(C)]
#[derive(StableAbi, Debug)]
pub struct CustomSsoHook {
    /// Takes the identity and the host, returns the user's values.
    pub call: extern "C" fn(HostRef<'_>, &OpenIdFfi) -> RResult<SsoValuesFfi, HookError>,
}

impl Hook for CustomSsoHook {
    const KIND: HookKind = HookKind::CustomSso;
}

/// The first bytes of every hook descriptor.
pub const MAGIC: [u8; 8] = *b"HOOKGATE";

/// The version of [`HookExport`]'s own layout (after [`MAGIC`] and this field).
pub const DESCRIPTOR_VERSION: u32 = 1;

/// The descriptor a hook is exported as, under the hook's own name.
///
/// `magic` and `descriptor_version` stay first and unchanged forever; everything after them is
/// read only when both match.
#[repr(C)]
#[derive(Debug)]
pub struct HookExport {
    /// Always [`MAGIC`].
    pub magic: [u8; 8],
    /// [`DESCRIPTOR_VERSION`] of the plugin-api that built the plugin.
    pub descriptor_version: u32,
    /// [`HookKind::code`].
    pub kind: u32,
    /// The plugin-api version the plugin was built with: major, minor, patch.
    pub api_version: [u32; 3],
    /// 1 when the plugin was built with `panic = "unwind"`.
    pub panic_unwind: u32,
    /// abi_stable's own version marker.
    pub abi_header: AbiHeader,
    /// The layout of the hook's function type as the plugin saw it.
    pub layout: &'static TypeLayout,
    /// The hook: a `&'static SignInHook` or `&'static CustomSsoHook`, as `kind` says.
    pub hook: *const c_void,
}

// SAFETY: every field is immutable data with a 'static lifetime; `hook` points to a `static`.
unsafe impl Sync for HookExport {}

impl HookExport {
    /// The descriptor of `hook`, built by the export macros.
    ///
    /// `panic_unwind` must be `cfg!(panic = "unwind")` evaluated in the plugin crate.
    pub const fn new<H: Hook>(hook: &'static H, panic_unwind: bool) -> Self {
        Self::with_layout(H::KIND.code(), H::LAYOUT, (hook as *const H).cast(), panic_unwind)
    }

    /// A descriptor with an explicit kind and layout. Only test fixtures that imitate other
    /// plugin-api versions call this.
    #[doc(hidden)]
    pub const fn with_layout(
        kind: u32,
        layout: &'static TypeLayout,
        hook: *const c_void,
        panic_unwind: bool,
    ) -> Self {
        Self {
            magic: MAGIC,
            descriptor_version: DESCRIPTOR_VERSION,
            kind,
            api_version: API_VERSION,
            panic_unwind: panic_unwind as u32,
            abi_header: AbiHeader::VALUE,
            layout,
            hook,
        }
    }

    /// The same descriptor claiming another plugin-api version. Only test fixtures call this.
    #[doc(hidden)]
    pub const fn with_api_version(mut self, api_version: [u32; 3]) -> Self {
        self.api_version = api_version;
        self
    }

    /// The plugin-api version as text.
    pub fn api_version_string(&self) -> String {
        let [major, minor, patch] = self.api_version;
        format!("{major}.{minor}.{patch}")
    }
}

/// This crate's version as numbers.
pub const API_VERSION: [u32; 3] = [
    parse_u32(env!("CARGO_PKG_VERSION_MAJOR")),
    parse_u32(env!("CARGO_PKG_VERSION_MINOR")),
    parse_u32(env!("CARGO_PKG_VERSION_PATCH")),
];

const fn parse_u32(digits: &str) -> u32 {
    let bytes = digits.as_bytes();
    let mut value = 0;
    let mut idx = 0;
    while idx < bytes.len() {
        value = value * 10 + (bytes[idx] - b'0') as u32;
        idx += 1;
    }
    value
}

/// Why a symbol is not a usable hook of the expected kind.
#[derive(Debug, Clone, PartialEq)]
pub enum ExportError {
    /// The symbol does not start with [`MAGIC`]: it is some other function or variable.
    NotAHook,
    /// A descriptor of a layout this server does not know.
    DescriptorVersion {
        /// The descriptor's version.
        found: u32,
    },
    /// A hook of another kind.
    WrongKind {
        /// The kind the setting needs.
        expected: HookKind,
        /// The kind the plugin exports, when known.
        found: Option<HookKind>,
    },
    /// Built against a plugin-api this server cannot load.
    IncompatibleApi {
        /// The plugin's plugin-api version.
        plugin: String,
        /// The server's.
        host: String,
        /// Why, in a few lines.
        summary: String,
    },
    /// Built with `panic = "abort"`.
    PanicAbort,
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::NotAHook => f.write_str(
                "the symbol is not a hookgate hook (no hook descriptor there); \
                 check the attribute name",
            ),
            ExportError::DescriptorVersion { found } => write!(
                f,
                "the hook descriptor has version {found}, this server reads version \
                 {DESCRIPTOR_VERSION}; rebuild the plugin against this server's plugin-api"
            ),
            ExportError::WrongKind { expected, found: Some(found) } => write!(
                f,
                "the hook is a `{found}` hook (exported with export_{}!), but this setting \
                 needs a `{expected}` hook",
                found.setting()
            ),
            ExportError::WrongKind { expected, found: None } => {
                write!(f, "the hook is of an unknown kind; this setting needs a `{expected}` hook")
            }
            ExportError::IncompatibleApi { plugin, host, summary } if plugin == host => write!(
                f,
                "incompatible plugin-api: the plugin's hook types differ from this server's \
                 although both say plugin-api {host} (a modified copy?); rebuild the plugin \
                 against this server's plugin-api\n{summary}"
            ),
            ExportError::IncompatibleApi { plugin, host, summary } => write!(
                f,
                "incompatible plugin-api: the plugin was built with plugin-api {plugin}, \
                 this server uses {host}; rebuild the plugin against plugin-api {host}\n{summary}"
            ),
            ExportError::PanicAbort => f.write_str(
                "the plugin was built with panic = \"abort\" and could not contain its own \
                 panics; build it with panic = \"unwind\" (the default)",
            ),
        }
    }
}

impl std::error::Error for ExportError {}

/// Checks a descriptor found at `symbol` and returns the hook it describes.
///
/// # Safety
/// `symbol` must point to at least 8 readable bytes (any symbol address from `dlsym` does), and
/// when those bytes are [`MAGIC`], to a [`HookExport`] that lives for the rest of the process
/// (plugins are never unloaded).
pub unsafe fn check_export<H: Hook>(symbol: *const c_void) -> Result<&'static H, ExportError> {
    // SAFETY: the caller promises 8 readable bytes; the read is unaligned-safe.
    let magic = unsafe { symbol.cast::<[u8; 8]>().read_unaligned() };
    if magic != MAGIC {
        return Err(ExportError::NotAHook);
    }
    // SAFETY: a descriptor starts with the magic, then the version, at a fixed offset.
    let descriptor_version = unsafe { symbol.cast::<u8>().add(8).cast::<u32>().read_unaligned() };
    if descriptor_version != DESCRIPTOR_VERSION {
        return Err(ExportError::DescriptorVersion { found: descriptor_version });
    }
    // SAFETY: magic and version match, so this is a `HookExport` of our layout, in a `static`.
    let export: &'static HookExport = unsafe { &*symbol.cast::<HookExport>() };

    if export.kind != H::KIND.code() {
        return Err(ExportError::WrongKind {
            expected: H::KIND,
            found: HookKind::from_code(export.kind),
        });
    }
    let host_version = API_VERSION;
    let compatible_version = export.api_version[0] == host_version[0]
        && (host_version[0] != 0 || export.api_version[1] == host_version[1]);
    if !compatible_version || !export.abi_header.is_valid() {
        let summary = if export.abi_header.is_valid() {
            "    (versions with a different major version, or a different minor version \
             before 1.0, are not compatible)"
                .to_owned()
        } else {
            format!(
                "    abi_stable {}.{} in the plugin, {}.{} in the server",
                export.abi_header.abi_major,
                export.abi_header.abi_minor,
                AbiHeader::VALUE.abi_major,
                AbiHeader::VALUE.abi_minor
            )
        };
        return Err(ExportError::IncompatibleApi {
            plugin: export.api_version_string(),
            host: crate::PLUGIN_API_VERSION.to_owned(),
            summary,
        });
    }
    if export.panic_unwind != 1 {
        return Err(ExportError::PanicAbort);
    }
    if let Err(errors) = check_layout_compatibility(H::LAYOUT, export.layout) {
        return Err(ExportError::IncompatibleApi {
            plugin: export.api_version_string(),
            host: crate::PLUGIN_API_VERSION.to_owned(),
            summary: summarize_layout_errors(&errors),
        });
    }
    // SAFETY: the kind and the layout match `H`, and `hook` points to a `static H`.
    Ok(unsafe { &*export.hook.cast::<H>() })
}

/// At most this many lines of a layout summary are shown.
const MAX_SUMMARY_LINES: usize = 6;

/// A few readable lines from abi_stable's report (which runs to hundreds of lines):
/// `    OpenIdFfi: too many fields (expected 10, found 11)`.
pub fn summarize_layout_errors(errors: &AbiInstabilityErrors) -> String {
    let mut lines: Vec<String> = Vec::new();
    for error in errors.errors.iter() {
        let place = error
            .stack_trace
            .iter()
            .map(|step| match &step.expected {
                TLFieldOrFunction::Field(field) => field.name().to_owned(),
                TLFieldOrFunction::Function(function) => function.name.to_string(),
            })
            .fold(Vec::<String>::new(), |mut parts, part| {
                if parts.last() != Some(&part) {
                    parts.push(part);
                }
                parts
            })
            .join(".");
        let type_name = error
            .stack_trace
            .last()
            .map(|step| match &step.expected {
                TLFieldOrFunction::Field(field) => field.layout().name().to_owned(),
                TLFieldOrFunction::Function(_) => "fn".to_owned(),
            })
            .unwrap_or_else(|| errors.interface.name().to_owned());
        for instability in error.errs.iter() {
            let what = describe_instability(instability);
            let line = if place.is_empty() {
                format!("    {type_name}: {what}")
            } else {
                format!("    {type_name} (at {place}): {what}")
            };
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
    }
    if lines.is_empty() {
        lines.push("    the hook's type layouts differ".to_owned());
    }
    let n_lines = lines.len();
    if n_lines > MAX_SUMMARY_LINES {
        lines.truncate(MAX_SUMMARY_LINES);
        lines.push(format!("    … and {} more differences", n_lines - MAX_SUMMARY_LINES));
    }
    lines.join("\n")
}

fn describe_instability(instability: &AbiInstability) -> String {
    use AbiInstability as AI;
    match instability {
        AI::Size(v) => format!("different size (expected {}, found {})", v.expected, v.found),
        AI::Alignment(v) => {
            format!("different alignment (expected {}, found {})", v.expected, v.found)
        }
        AI::FieldCountMismatch(v) => {
            format!("different number of fields (expected {}, found {})", v.expected, v.found)
        }
        AI::UnexpectedField(v) => {
            format!(
                "unexpected field (expected `{}`, found `{}`)",
                v.expected.name(),
                v.found.name()
            )
        }
        AI::Name(v) => format!("different type (expected {}, found {})", v.expected, v.found),
        AI::TooManyVariants(v) => {
            format!("different number of variants (expected {}, found {})", v.expected, v.found)
        }
        AI::UnexpectedVariant(v) => {
            format!("unexpected variant (expected {}, found {})", v.expected, v.found)
        }
        AI::PackageVersion(v) => {
            format!("incompatible package version (expected {}, found {})", v.expected, v.found)
        }
        AI::MismatchedPrimitive(_) => "different primitive type".to_owned(),
        AI::FnLifetimeMismatch(_) | AI::FieldLifetimeMismatch(_) => {
            "different lifetimes".to_owned()
        }
        AI::FnQualifierMismatch(_) => "different function qualifiers".to_owned(),
        AI::ReprAttr(v) => {
            format!("different repr (expected {:?}, found {:?})", v.expected, v.found)
        }
        AI::EnumDiscriminant(_) => "different enum discriminants".to_owned(),
        other => {
            let text = format!("{other:?}");
            text.split(['(', ' ', '{']).next().unwrap_or("layout difference").to_owned()
        }
    }
}
