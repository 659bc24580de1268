//! The export macros, and the guards they wrap every hook in.

use std::{
    cell::{Cell, RefCell},
    panic::{self, AssertUnwindSafe, catch_unwind},
    sync::Once,
};

use abi_stable::std_types::RResult;

use crate::{
    HookError, HookErrorKind, Host, OpenId, SignInRequest, SsoUserDefinedValues,
    abi::{HostRef2, OpenIdFfi, SsoValuesFfi, panic_message},
};

/// Exports `fn(&SignInRequest<'_>) -> Result<OpenId, HookError>` as a
/// `custom_ui_sso_sign_in_handler` hook named after the function.
///
/// ```
/// use plugin_api::{HookError, OpenId, SignInRequest};
///
/// pub fn my_handler(request: &SignInRequest<'_>) -> Result<OpenId, HookError> {
///     Ok(OpenId { id: request.header("x-forwarded-user").map(str::to_owned), ..OpenId::default() })
/// }
/// plugin_api::export_ui_sso_sign_in_handler!(my_handler);
/// ```
/// With this, `general_settings.custom_ui_sso_sign_in_handler: <library>.my_handler` loads it.
///
/// `export_ui_sso_sign_in_handler!(my_handler, non_blocking)` declares that the hook never
/// waits (it only reads the request), so the server may call it on the thread serving the
/// request rather than on its blocking pool: see the plugin authors' guide for what it costs.
#[macro_export]
macro_rules! export_ui_sso_sign_in_handler {
    ($hook:ident) => {
        $crate::export_ui_sso_sign_in_handler!(@flags $hook, 0);
    };
    ($hook:ident, non_blocking) => {
        $crate::export_ui_sso_sign_in_handler!(@flags $hook, $crate::abi::HookExport::NON_BLOCKING);
    };
    (@flags $hook:ident, $flags:expr) => {
        const _: () = {
            extern "C" fn __hookgate_sign_in(
                request: &$crate::SignInRequest<'_>,
            ) -> $crate::__private::RResult<$crate::abi::OpenIdFfi, $crate::HookError> {
                $crate::__private::call_sign_in(request, $hook)
            }

            static __HOOKGATE_HOOK: $crate::abi::SignInHook =
                $crate::abi::SignInHook { call: __hookgate_sign_in };

            #[unsafe(export_name = stringify!($hook))]
            pub static __HOOKGATE_EXPORT: $crate::abi::HookExport =
                $crate::abi::HookExport::new(&__HOOKGATE_HOOK, cfg!(panic = "unwind"))
                    .with_flags($flags);
        };
    };
}

/// Exports `fn(&Host<'_>, &OpenId) -> Result<SsoUserDefinedValues, HookError>` as a `custom_sso`
/// hook named after the function.
///
/// ```
/// use plugin_api::{HookError, Host, OpenId, SsoUserDefinedValues};
///
/// pub fn my_custom_sso(_host: &Host<'_>, user: &OpenId) -> Result<SsoUserDefinedValues, HookError> {
///     let user_id = user.id.clone().ok_or_else(|| HookError::rejected("no user id"))?;
///     Ok(SsoUserDefinedValues { user_id, user_email: user.email.clone(), ..Default::default() })
/// }
/// plugin_api::export_custom_sso!(my_custom_sso);
/// ```
/// With this, `general_settings.custom_sso: <library>.my_custom_sso` loads it.
///
/// `export_custom_sso!(my_custom_sso, non_blocking)` declares that the hook never waits (it
/// decides from the identity and the host's answers alone), so the server may call it on the
/// thread serving the request: see the plugin authors' guide for what it costs.
#[macro_export]
macro_rules! export_custom_sso {
    ($hook:ident) => {
        $crate::export_custom_sso!(@flags $hook, 0);
    };
    ($hook:ident, non_blocking) => {
        $crate::export_custom_sso!(@flags $hook, $crate::abi::HookExport::NON_BLOCKING);
    };
    (@flags $hook:ident, $flags:expr) => {
        const _: () = {
            extern "C" fn __hookgate_custom_sso(
                host: $crate::abi::HostRef2<'_>,
                user: &$crate::abi::OpenIdFfi,
            ) -> $crate::__private::RResult<$crate::abi::SsoValuesFfi, $crate::HookError> {
                $crate::__private::call_custom_sso(host, user, $hook)
            }

            static __HOOKGATE_HOOK: $crate::abi::CustomSsoHook2 =
                $crate::abi::CustomSsoHook2 { call: __hookgate_custom_sso };

            #[unsafe(export_name = stringify!($hook))]
            pub static __HOOKGATE_EXPORT: $crate::abi::HookExport =
                $crate::abi::HookExport::new(&__HOOKGATE_HOOK, cfg!(panic = "unwind"))
                    .with_flags($flags);
        };
    };
}

/// Runs a sign-in handler, converting its result and catching its panics.
pub fn call_sign_in(
    request: &SignInRequest<'_>,
    hook: fn(&SignInRequest<'_>) -> Result<OpenId, HookError>,
) -> RResult<OpenIdFfi, HookError> {
    guard(|| hook(request).map(OpenIdFfi::from_native))
}

/// Runs a `custom_sso` hook, converting its arguments and result and catching its panics.
pub fn call_custom_sso(
    host: HostRef2<'_>,
    user: &OpenIdFfi,
    hook: fn(&Host<'_>, &OpenId) -> Result<SsoUserDefinedValues, HookError>,
) -> RResult<SsoValuesFfi, HookError> {
    guard(|| {
        let user = user.to_native();
        hook(&Host::from(host), &user).map(SsoValuesFfi::from_native)
    })
}

thread_local! {
    /// Whether this thread is inside a guarded hook call.
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
    /// Where the last panic inside a guarded call happened.
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// This plugin's copy of std has its own panic hook. Inside a hook call, it records where the
/// panic happened (the message is reported to the server, which logs it) instead of printing to
/// stderr; elsewhere (threads the plugin starts itself) the previous hook runs as before.
fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if IN_HOOK.with(Cell::get) {
                let location = info.location().map(|at| format!("{}:{}", at.file(), at.line()));
                PANIC_LOCATION.with(|slot| *slot.borrow_mut() = location);
            } else {
                previous(info);
            }
        }));
    });
}

fn guard<T>(call: impl FnOnce() -> Result<T, HookError>) -> RResult<T, HookError> {
    install_panic_hook();
    IN_HOOK.with(|flag| flag.set(true));
    let outcome = catch_unwind(AssertUnwindSafe(call));
    IN_HOOK.with(|flag| flag.set(false));
    match outcome {
        Ok(result) => result.into(),
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            let message = match PANIC_LOCATION.with(|slot| slot.borrow_mut().take()) {
                Some(location) => format!("panicked at {location}: {message}"),
                None => format!("panicked: {message}"),
            };
            RResult::RErr(HookError::new(HookErrorKind::Panicked, message))
        }
    }
}
