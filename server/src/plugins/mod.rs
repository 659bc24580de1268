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
///
/// Taking the set takes no lock: each thread remembers the last set it took, with the number of
/// that set, and takes it again while the number is current (one atomic read, shared by every
/// core but only written by a reload). A reload stores the new set, then its number, under a
/// lock that only reloads and the first sign-in on each thread after one take. A thread lets
/// go of a replaced set at its next take or when it ends (its libraries stay mapped either way:
/// a library is never unloaded).
#[derive(Debug, Clone)]
pub struct LivePlugins(std::sync::Arc<Live>);

#[derive(Debug)]
struct Live {
    /// The current set's number: unique among every set any `LivePlugins` has served.
    number: std::sync::atomic::AtomicU64,
    /// The current set and its number.
    current: std::sync::Mutex<(u64, std::sync::Arc<Plugins>)>,
}

/// The numbers sets are given, from 1 (0 is "none taken yet").
static NEXT_SET: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

thread_local! {
    /// The last set this thread took, with its number.
    static TAKEN: std::cell::RefCell<Option<(u64, std::sync::Arc<Plugins>)>> =
        const { std::cell::RefCell::new(None) };
}

impl LivePlugins {
    /// Serving `plugins`.
    pub fn new(plugins: Plugins) -> Self {
        let number = NEXT_SET.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        LivePlugins(std::sync::Arc::new(Live {
            number: number.into(),
            current: std::sync::Mutex::new((number, std::sync::Arc::new(plugins))),
        }))
    }

    /// The hooks a sign-in starting now uses.
    pub fn current(&self) -> std::sync::Arc<Plugins> {
        use std::sync::atomic::Ordering::Acquire;
        let number = self.0.number.load(Acquire);
        TAKEN.with_borrow_mut(|taken| match taken {
            Some((taken_number, plugins)) if *taken_number == number => plugins.clone(),
            _ => {
                let (number, plugins) = self
                    .0
                    .current
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                *taken = Some((number, plugins.clone()));
                plugins
            }
        })
    }

    /// Serves `plugins` from now on; sign-ins already running keep what they took.
    pub fn replace(&self, plugins: Plugins) {
        use std::sync::atomic::Ordering::{Relaxed, Release};
        let number = NEXT_SET.fetch_add(1, Relaxed);
        let mut current = self.0.current.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *current = (number, std::sync::Arc::new(plugins));
        self.0.number.store(number, Release);
    }
}

impl Default for LivePlugins {
    /// Serving no hooks.
    fn default() -> Self {
        LivePlugins::new(Plugins::default())
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::{LivePlugins, Plugins};

    /// A thread takes the set it remembered until a reload, then the new one; other threads
    /// and other services are not confused with it; what a sign-in took stays its own.
    #[test]
    fn after_a_replacement_every_thread_takes_the_new_set() {
        let live = LivePlugins::new(Plugins::default());
        let first = live.current();
        assert!(Arc::ptr_eq(&first, &live.current()), "taken again while current");
        let on_another_thread = std::thread::scope(|scope| {
            scope.spawn(|| live.current()).join().expect("the thread ran")
        });
        assert!(Arc::ptr_eq(&first, &on_another_thread));
        drop(on_another_thread);

        live.replace(Plugins::default());
        let second = live.current();
        assert!(
            !Arc::ptr_eq(&first, &second),
            "the thread that took the first set takes the new one"
        );
        let on_another_thread = std::thread::scope(|scope| {
            scope.spawn(|| live.current()).join().expect("the thread ran")
        });
        assert!(Arc::ptr_eq(&second, &on_another_thread));
        assert_eq!(Arc::strong_count(&first), 1, "only the sign-in that took it holds the old set");

        let other_service = LivePlugins::default();
        let others = other_service.current();
        assert!(!Arc::ptr_eq(&others, &second));
        assert!(
            Arc::ptr_eq(&live.current(), &second),
            "this thread last took the other service's set"
        );
        let clone = live.clone();
        assert!(Arc::ptr_eq(&clone.current(), &second), "a clone serves the same sets");
    }
}
