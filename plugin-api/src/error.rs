//! The error a hook returns.

use std::fmt;

use abi_stable::{StableAbi, std_types::RString};

/// Why a hook did not return a value.
///
/// The kinds are an append-only list: new kinds get new discriminants at the end.
#[repr(u8)]
#[derive(StableAbi, Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookErrorKind {
    /// The hook refused the sign-in on purpose (unknown user, wrong group, missing header…).
    /// The user sees the hook's message with status 403.
    Rejected = 0,
    /// The hook could not do its job (a backend it needs is down, its own bug…).
    Failed = 1,
    /// The hook panicked; the export macro caught the panic.
    Panicked = 2,
}

/// The error a hook returns: a kind and a message meant for the person signing in.
///
/// Keep secrets out of the message: it is shown to the user and written to the server's log.
#[repr(C)]
#[derive(StableAbi, Debug, Clone, PartialEq)]
pub struct HookError {
    kind: HookErrorKind,
    message: RString,
}

impl HookError {
    /// The sign-in is refused, with a message for the user (shown with status 403).
    pub fn rejected(message: impl Into<String>) -> Self {
        Self::new(HookErrorKind::Rejected, message)
    }

    /// The hook failed to do its job; the message says why.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::new(HookErrorKind::Failed, message)
    }

    /// An error of the given kind.
    pub fn new(kind: HookErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: RString::from(message.into()) }
    }

    /// The kind of error.
    pub fn kind(&self) -> HookErrorKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        self.message.as_str()
    }
}

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            HookErrorKind::Rejected => "rejected",
            HookErrorKind::Failed => "failed",
            HookErrorKind::Panicked => "panicked",
        };
        write!(f, "hook {kind}: {}", self.message)
    }
}

impl std::error::Error for HookError {}

impl From<crate::HostError> for HookError {
    /// A failed host call fails the hook, so that `?` works on [`crate::Host`] calls.
    fn from(error: crate::HostError) -> Self {
        HookError::failed(error.to_string())
    }
}
