//! Plugin hooks: loading them, and calling them. Only this module calls plugin code.

mod loader;
mod private_copy;
mod reference;
mod request;

use std::path::PathBuf;

use plugin_api::{
    HookError, OpenId, SignInRequest, SsoUserDefinedValues,
    abi::{
        CustomSsoHook, CustomSsoHook2, ExportError, Hook, HookKind, HostApi, HostRef, HostRef2,
        OpenIdFfi, SignInHook,
    },
};

pub use self::{
    loader::{
        Insecurity, LoadError, LoadErrorKind, PermissionPolicy, PluginLoader, Resolved,
        strict_mode_problems,
    },
    reference::{HookRef, InvalidHookRef, LibraryNaming},
    request::{
        HookRequest, InvalidHeader, MAX_HEADER_VALUE, MAX_HEADERS_TOTAL, RequestLine, UnfitRequest,
        header_pairs,
    },
};
use crate::config::Config;

/// Where a loaded hook came from, for `hookgate check` and the logs.
#[derive(Debug, Clone)]
pub struct HookInfo {
    /// The config key.
    pub setting: &'static str,
    /// The reference as written.
    pub reference: String,
    /// The library, canonical.
    pub file: PathBuf,
    /// The library as found in the plugin folder (absolute, symlinks not resolved).
    pub found: PathBuf,
    /// The hook's kind.
    pub kind: HookKind,
    /// The plugin-api version the plugin was built with.
    pub api_version: String,
    /// The plugin declared the hook non-blocking (plugin-api 0.1.2's flag): the sign-in may
    /// call it on the runtime's thread serving the request.
    pub non_blocking: bool,
}

impl HookInfo {
    /// The library for people: `found -> resolved` when the path found in the plugin folder
    /// resolves (through symlinks) elsewhere, else the resolved path.
    pub fn location(&self) -> String {
        if self.found == self.file {
            self.file.display().to_string()
        } else {
            format!("{} -> {}", self.found.display(), self.file.display())
        }
    }
}

/// A loaded `custom_ui_sso_sign_in_handler` hook.
#[derive(Debug, Clone)]
pub struct SignInHandler {
    info: HookInfo,
    hook: &'static SignInHook,
}

impl SignInHandler {
    /// Where it came from.
    pub fn info(&self) -> &HookInfo {
        &self.info
    }

    /// Calls the hook. It may block: call it from a blocking thread, unless it was declared
    /// non-blocking ([`HookInfo::non_blocking`]).
    pub fn call(&self, request: &SignInRequest<'_>) -> Result<OpenId, HookError> {
        (self.hook.call)(request).into_result().map(|openid| openid.to_native())
    }
}

/// A loaded `custom_sso` hook.
#[derive(Debug, Clone)]
pub struct CustomSso {
    info: HookInfo,
    hook: CustomSsoVersion,
}

/// A `custom_sso` hook as the plugin-api it was built with exports it.
#[derive(Debug, Clone, Copy)]
enum CustomSsoVersion {
    /// plugin-api 0.1.0: its host has no `remove_team_member` or `create_team`.
    V1(&'static CustomSsoHook),
    /// plugin-api 0.1.1 and later.
    V2(&'static CustomSsoHook2),
}

impl CustomSso {
    /// Where it came from.
    pub fn info(&self) -> &HookInfo {
        &self.info
    }

    /// Calls the hook with `host` for its callbacks. It may block: call it from a blocking
    /// thread, unless it was declared non-blocking ([`HookInfo::non_blocking`]).
    pub fn call<H: HostApi>(
        &self,
        host: &H,
        openid: &OpenId,
    ) -> Result<SsoUserDefinedValues, HookError> {
        let openid = OpenIdFfi::from_native(openid.clone());
        let values = match self.hook {
            CustomSsoVersion::V1(hook) => (hook.call)(HostRef::new(host), &openid),
            CustomSsoVersion::V2(hook) => (hook.call)(HostRef2::new(host), &openid),
        };
        values.into_result().map(|values| values.to_native())
    }
}

/// The hooks the config names.
#[derive(Debug, Clone, Default)]
pub struct Plugins {
    /// `general_settings.custom_ui_sso_sign_in_handler`.
    pub sign_in_handler: Option<SignInHandler>,
    /// `general_settings.custom_sso`.
    pub custom_sso: Option<CustomSso>,
}

impl Plugins {
    /// Loads every hook the config names.
    /// Libraries that others could replace are refused unless
    /// `allow_insecure_plugin_permissions` is set.
    pub fn load(config: &Config, loader: &PluginLoader) -> Result<Plugins, LoadError> {
        let policy = PermissionPolicy::from_setting(config.allow_insecure_plugin_permissions);
        let sign_in_handler = match &config.custom_ui_sso_sign_in_handler {
            Some(reference) => {
                let (info, hook) = resolve::<SignInHook>(
                    loader,
                    "general_settings.custom_ui_sso_sign_in_handler",
                    reference,
                    &config.plugin_dirs,
                    policy,
                )?;
                Some(SignInHandler { info, hook })
            }
            None => None,
        };
        let custom_sso = match &config.custom_sso {
            Some(reference) => {
                let setting = "general_settings.custom_sso";
                let dirs = &config.plugin_dirs;
                // A hook built with plugin-api 0.1.1 or later, else one built with 0.1.0.
                let hook = match resolve::<CustomSsoHook2>(loader, setting, reference, dirs, policy)
                {
                    Ok((info, hook)) => CustomSso { info, hook: CustomSsoVersion::V2(hook) },
                    Err(error) if is_older_custom_sso(&error) => {
                        let (info, hook) =
                            resolve::<CustomSsoHook>(loader, setting, reference, dirs, policy)?;
                        CustomSso { info, hook: CustomSsoVersion::V1(hook) }
                    }
                    Err(error) => return Err(error),
                };
                Some(hook)
            }
            None => None,
        };
        Ok(Plugins { sign_in_handler, custom_sso })
    }

    /// What is loaded, in config order.
    pub fn infos(&self) -> Vec<&HookInfo> {
        let sign_in = self.sign_in_handler.as_ref().map(SignInHandler::info);
        sign_in.into_iter().chain(self.custom_sso.as_ref().map(CustomSso::info)).collect()
    }
}

/// The hooks new sign-ins use. A reload replaces them whole; a sign-in takes the current set
/// once, when it starts, and finishes on it whatever is reloaded meanwhile.
#[derive(Debug, Clone, Default)]
pub struct LivePlugins(std::sync::Arc<std::sync::RwLock<std::sync::Arc<Plugins>>>);

impl LivePlugins {
    /// Serving `plugins`.
    pub fn new(plugins: Plugins) -> Self {
        Self(std::sync::Arc::new(std::sync::RwLock::new(std::sync::Arc::new(plugins))))
    }

    /// The hooks a sign-in starting now uses.
    pub fn current(&self) -> std::sync::Arc<Plugins> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    /// Serves `plugins` from now on; sign-ins already running keep what they took.
    pub fn replace(&self, plugins: Plugins) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
            std::sync::Arc::new(plugins);
    }
}

/// Whether loading a 0.1.1 `custom_sso` hook failed because the plugin exports a 0.1.0 one.
fn is_older_custom_sso(error: &LoadError) -> bool {
    matches!(
        &*error.kind,
        LoadErrorKind::Export {
            error: ExportError::WrongKind { found: Some(HookKind::CustomSso), .. },
            ..
        }
    )
}

fn resolve<H: Hook>(
    loader: &PluginLoader,
    setting: &'static str,
    reference: &HookRef,
    dirs: &[PathBuf],
    policy: PermissionPolicy,
) -> Result<(HookInfo, &'static H), LoadError> {
    let resolved = loader.resolve::<H>(setting, reference, dirs, policy)?;
    let info = HookInfo {
        setting,
        reference: reference.as_str().to_owned(),
        file: resolved.file,
        found: resolved.found,
        kind: H::KIND,
        api_version: resolved.api_version,
        non_blocking: resolved.non_blocking,
    };
    tracing::info!(
        setting,
        hook = %info.reference,
        file = %info.location(),
        plugin_api = %info.api_version,
        non_blocking = info.non_blocking,
        "loaded hook"
    );
    Ok((info, resolved.hook))
}
