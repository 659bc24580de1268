//! The plugin API of hookgate: everything a sign-in hook plugin needs, and nothing else.
//!
//! A hookgate plugin is a `cdylib` that exports one or more hooks. A LiteLLM `config.yaml` names a
//! hook as `module.attribute`: `custom_sso.custom_sso_handler` is the hook exported under the name
//! `custom_sso_handler` by the library `custom_sso` (`libcustom_sso.so` on Linux).
//!
//! There are two kinds of hooks, one for each LiteLLM setting:
//!
//! * `general_settings.custom_ui_sso_sign_in_handler`: an OAuth proxy has already authenticated the
//!   user; the hook reads the request (headers, cookies, query, peer address) and returns the
//!   user's [`OpenId`]. Export it with [`export_ui_sso_sign_in_handler!`].
//! * `general_settings.custom_sso`: runs after every sign-in with the user's [`OpenId`], may look
//!   users up, create them, create teams, add them to teams or take them out through the
//!   [`Host`] (the sign-in's groups are [`OpenId::team_ids`]), and returns the
//!   [`SsoUserDefinedValues`] the user signs in with. Export it with [`export_custom_sso!`].
//!
//! ```
//! use plugin_api::{HookError, OpenId, SignInRequest};
//!
//! pub fn custom_ui_sso_sign_in_handler(request: &SignInRequest<'_>) -> Result<OpenId, HookError> {
//!     let email = request
//!         .header("x-forwarded-email")
//!         .ok_or_else(|| HookError::rejected("the proxy sent no x-forwarded-email header"))?;
//!     Ok(OpenId {
//!         id: request.header("x-forwarded-user").map(str::to_owned),
//!         email: Some(email.to_owned()),
//!         provider: Some("oauth2-proxy".to_owned()),
//!         ..OpenId::default()
//!     })
//! }
//!
//! plugin_api::export_ui_sso_sign_in_handler!(custom_ui_sso_sign_in_handler);
//! ```
//!
//! Hooks are plain synchronous Rust functions. The host calls them on a thread of its blocking
//! pool, so they may block (on the [`Host`] calls, or on I/O of their own). A panic inside a hook
//! is caught by the export macro and reported as a [`HookError`] of kind
//! [`HookErrorKind::Panicked`]; it never crosses into the server. Plugins must be built with
//! `panic = "unwind"` (the default): the server refuses a plugin built with `panic = "abort"`,
//! because such a plugin cannot contain its own panics.
//!
//! The types that cross the library boundary live in [`abi`]; plugin authors never need them.
//! They are `#[repr(C)]` and carry abi_stable layouts, which the server compares with its own at
//! load time, so a plugin built against an incompatible plugin-api is refused with a readable
//! error instead of misbehaving.

#![warn(missing_docs)]

pub mod abi;
mod error;
mod export;
mod host;
mod request;
mod types;

pub use error::{HookError, HookErrorKind};
pub use host::{Host, HostError, LogLevel, NewTeam, NewUser, TeamRecord, UserRecord};
pub use request::{HeaderPair, Headers, SignInRequest};
pub use types::{OpenId, SsoUserDefinedValues, TeamRole, UnknownRole, UserRole};

/// The version of this crate, which a plugin records in each hook it exports.
pub const PLUGIN_API_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the export macros expand to. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::export::{call_custom_sso, call_sign_in};
    pub use abi_stable::std_types::RResult;
}
