//! Why a sign-in did not complete, and what the event records of it.

use crate::db::Error as DbErr;
use hookgate_core::{identity::IdentityProblem, signin::Refusal, values::InvalidValues};

/// Why a sign-in did not complete. Each says what the user sees.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The request itself is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// A header value is too long (431).
    #[error("{0}")]
    HeadersTooLarge(String),
    /// Who is signing in could not be established (no identity, a refused provider login).
    #[error("{0}")]
    Unauthenticated(String),
    /// A rule refuses this identity (untrusted peer, email domain, access mode, an account
    /// bound to another identity).
    #[error("{0}")]
    Forbidden(String),
    /// The account the sign-in needs is taken in a way it cannot resolve.
    #[error("{0}")]
    Conflict(String),
    /// A hook refused or failed with a message for the user.
    #[error("{message}")]
    HookRefused {
        /// The config key of the hook.
        setting: &'static str,
        /// The hook's message.
        message: String,
    },
    /// A hook panicked; the message goes to the log, not to the user.
    #[error("sign-in hook failed")]
    HookPanicked {
        /// The config key of the hook.
        setting: &'static str,
        /// The panic message.
        detail: String,
    },
    /// A hook ran past `hook_timeout`.
    #[error("the sign-in hook did not answer within {0:?}")]
    HookTimeout(std::time::Duration),
    /// Every hook slot stayed busy.
    #[error("the server is busy running sign-in hooks; try again")]
    Busy,
    /// A hook returned values the server cannot use.
    #[error("{0}")]
    InvalidHookOutput(String),
    /// The identity provider could not be reached or answered nonsense (502).
    #[error("{0}")]
    Upstream(String),
    /// The LiteLLM proxy hookgate is the front door of did not open the session (502), or
    /// holds a user this identity cannot prove is its own (403). The detail goes to the log
    /// and the sign-in event, never to the browser: it names LiteLLM's internal URL and users.
    #[error("{0}")]
    FrontDoor(#[from] crate::litellm::FrontDoorError),
    /// The database failed.
    #[error("the database is unavailable")]
    Database(#[from] DbErr),
    /// A server bug.
    #[error("internal error")]
    Internal(String),
}

impl SignInError {
    /// The outcome recorded in the sign-in event.
    pub(super) fn outcome(&self) -> &'static str {
        match self {
            SignInError::BadRequest(_)
            | SignInError::HeadersTooLarge(_)
            | SignInError::Unauthenticated(_)
            | SignInError::Forbidden(_)
            | SignInError::Conflict(_)
            | SignInError::HookRefused { .. } => "refused",
            SignInError::FrontDoor(error) if error.is_refusal() => "refused",
            _ => "failed",
        }
    }

    /// The reason recorded in the sign-in event (never a secret).
    pub(super) fn reason(&self) -> String {
        match self {
            SignInError::HookPanicked { setting, detail } => {
                format!("{setting} hook panicked: {detail}")
            }
            SignInError::HookRefused { setting, message } => format!("{setting} hook: {message}"),
            SignInError::Database(error) => format!("database: {error}"),
            SignInError::Upstream(message) => format!("identity provider: {message}"),
            SignInError::FrontDoor(error) => format!("litellm: {error}"),
            SignInError::Internal(detail) => format!("internal: {detail}"),
            other => other.to_string(),
        }
    }
}

impl From<Refusal> for SignInError {
    fn from(refusal: Refusal) -> Self {
        SignInError::Forbidden(refusal.to_string())
    }
}

impl From<InvalidValues> for SignInError {
    fn from(invalid: InvalidValues) -> Self {
        SignInError::InvalidHookOutput(invalid.to_string())
    }
}

impl From<IdentityProblem> for SignInError {
    fn from(problem: IdentityProblem) -> Self {
        let message = problem.to_string();
        match problem {
            IdentityProblem::Subject(_)
            | IdentityProblem::UserId(_)
            | IdentityProblem::Email(_) => SignInError::InvalidHookOutput(message),
            IdentityProblem::TooManyGroups(_) => SignInError::BadRequest(message),
            IdentityProblem::UnverifiedEmail | IdentityProblem::Domain(_) => {
                SignInError::Forbidden(message)
            }
            IdentityProblem::Anonymous => SignInError::Unauthenticated(message),
        }
    }
}
