//! What crosses the library boundary: `#[repr(C)]` mirrors of the hook types, the host's call
//! table, and the descriptor each hook is exported as. Plugin authors never use this module; the
//! export macros and the server do.
//!
//! # The descriptor
//!
//! `export_custom_sso!(custom_sso_handler)` exports a `static` [`HookExport`] under the symbol
//! `custom_sso_handler`. Its first fields ([`HookExportV1::magic`] and
//! [`HookExportV1::descriptor_version`]) never change, so the server can recognise a descriptor
//! (and refuse a symbol that is not one, such as libc's `malloc`) before trusting anything else.
//! The rest says which kind of hook it is, which plugin-api built it, whether it was built with
//! `panic = "unwind"`, and carries abi_stable's [`TypeLayout`] of the hook's function type, which
//! the server compares with its own.
//!
//! [`TypeLayout`]: abi_stable::type_layout::TypeLayout
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
//!
//! And for 0.1.2's hook flags ([`HookExport::flags`]: a hook declared non-blocking): the
//! descriptor's own layout gained a field at its end, so its version is 2; the server reads
//! version 1 descriptors (0.1.0 and 0.1.1 plugins: no flags) as before, and an older server
//! refuses a version 2 descriptor with a message that says to rebuild the plugin.

mod check;
mod hooks;
mod host;
mod host2;
mod values;

pub use self::{
    check::{ExportError, Exported, check_export, summarize_layout_errors},
    hooks::{
        API_VERSION, CustomSsoHook, DESCRIPTOR_VERSION, Hook, HookExport, HookExportV1, HookKind,
        MAGIC, SignInHook,
    },
    host::{HostApi, HostRef, HostVtable, panic_message},
    host2::{CustomSsoHook2, HostRef2, HostVtable2, NewTeamFfi},
    values::{NewUserFfi, OpenIdFfi, SsoValuesFfi, TeamRecordFfi, UserRecordFfi},
};
