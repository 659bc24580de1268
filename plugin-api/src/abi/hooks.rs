//! The hook kinds, their function types, and the [`HookExport`] descriptor each is exported as.

use std::{ffi::c_void, fmt};

use abi_stable::{StableAbi, library::AbiHeader, std_types::RResult, type_layout::TypeLayout};

use super::{HostRef, OpenIdFfi, SsoValuesFfi};
use crate::{HookError, SignInRequest};

/// The two kinds of hooks, named after the settings that use them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    /// `general_settings.custom_ui_sso_sign_in_handler`: request in, [`OpenId`](crate::OpenId)
    /// out.
    SignInHandler,
    /// `general_settings.custom_sso`: [`OpenId`](crate::OpenId) in,
    /// [`SsoUserDefinedValues`](crate::SsoUserDefinedValues) out, with plugin-api 0.1.0's host
    /// ([`CustomSsoHook`]).
    CustomSso,
    /// `general_settings.custom_sso` built with plugin-api 0.1.1 or later, whose host has
    /// `remove_team_member` and `create_team` too ([`CustomSsoHook2`](super::CustomSsoHook2)).
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

    /// The config key this kind belongs to.
    pub const fn setting(self) -> &'static str {
        match self {
            HookKind::SignInHandler => "custom_ui_sso_sign_in_handler",
            HookKind::CustomSso | HookKind::CustomSso2 => "custom_sso",
        }
    }

    /// The macro that exports a hook of this kind.
    pub const fn export_macro(self) -> &'static str {
        match self {
            HookKind::SignInHandler => "export_ui_sso_sign_in_handler!",
            HookKind::CustomSso | HookKind::CustomSso2 => "export_custom_sso!",
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

/// The version of [`HookExport`]'s own layout (after [`MAGIC`] and this field): 2 since
/// plugin-api 0.1.2, which appended [`HookExport::flags`]. The server reads versions 1 and 2.
pub const DESCRIPTOR_VERSION: u32 = 2;

/// The descriptor a hook is exported as, under the hook's own name.
///
/// `magic` and `descriptor_version` stay first and unchanged forever; everything after them is
/// read only when both are known. Version 2 is version 1's fields ([`HookExportV1`], in the same
/// order) followed by [`HookExport::flags`].
#[repr(C)]
#[derive(Debug)]
pub struct HookExport {
    /// Version 1's fields.
    pub v1: HookExportV1,
    /// What the plugin declares about the hook: [`HookExport::NON_BLOCKING`] or 0. Bits this
    /// server does not know are ignored (flags are declarations the server may act on, never
    /// requirements).
    pub flags: u32,
}

/// The descriptor as plugin-api 0.1.0 and 0.1.1 exported it (descriptor version 1), and the
/// start of every later version.
#[repr(C)]
#[derive(Debug)]
pub struct HookExportV1 {
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
unsafe impl Sync for HookExportV1 {}

impl HookExport {
    /// The hook never waits (no network, file or lock another thread holds, no sleep): the
    /// server may call it on the thread that serves the request instead of handing it to the
    /// blocking pool. Declared with `export_…!(hook, non_blocking)`; see the plugin authors'
    /// guide for what it costs.
    pub const NON_BLOCKING: u32 = 1;

    /// The descriptor of `hook`, built by the export macros.
    ///
    /// `panic_unwind` must be `cfg!(panic = "unwind")` evaluated in the plugin crate.
    pub const fn new<H: Hook>(hook: &'static H, panic_unwind: bool) -> Self {
        let mut v1 = HookExportV1::new(hook, panic_unwind);
        v1.descriptor_version = DESCRIPTOR_VERSION;
        HookExport { v1, flags: 0 }
    }

    /// The same descriptor with `flags` ([`HookExport::NON_BLOCKING`]).
    pub const fn with_flags(mut self, flags: u32) -> Self {
        self.flags = flags;
        self
    }

    /// The same descriptor claiming another plugin-api version. Only test fixtures call this.
    #[doc(hidden)]
    pub const fn with_api_version(mut self, api_version: [u32; 3]) -> Self {
        self.v1.api_version = api_version;
        self
    }
}

impl HookExportV1 {
    /// A version 1 descriptor of `hook`. Only test fixtures that imitate plugins built with
    /// plugin-api 0.1.0 or 0.1.1 export one.
    #[doc(hidden)]
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
            descriptor_version: 1,
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
        version_string(self.api_version)
    }
}

/// A plugin-api version (major, minor, patch) as text.
pub(super) fn version_string([major, minor, patch]: [u32; 3]) -> String {
    format!("{major}.{minor}.{patch}")
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
