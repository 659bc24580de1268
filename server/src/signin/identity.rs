//! Who is signing in and what they proved: the front door ([`LoginMethod`], [`Attempt`]), the
//! account binding ([`Binding`], [`Proof`]), and the checks every identity and every hook's values
//! pass before the rules see them.

use std::net::IpAddr;

use plugin_api::{OpenId, SsoUserDefinedValues};

use super::{SignInError, Values};
use crate::budget::BudgetDuration;

/// How the user proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginMethod {
    /// Identity headers from a trusted OAuth proxy, read by the header hook.
    Header,
    /// An OpenID Connect login.
    Oidc,
    /// `UI_USERNAME`/`UI_PASSWORD`.
    Password,
}

impl LoginMethod {
    /// The name recorded in sign-in events.
    pub fn as_str(self) -> &'static str {
        match self {
            LoginMethod::Header => "header",
            LoginMethod::Oidc => "oidc",
            LoginMethod::Password => "password",
        }
    }

    /// The JWT's `login_method` claim (LiteLLM's values).
    pub(super) fn claim(self) -> &'static str {
        match self {
            LoginMethod::Header | LoginMethod::Oidc => "sso",
            LoginMethod::Password => "username_password",
        }
    }
}

/// Who is trying to sign in, for the record.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The front door.
    pub method: LoginMethod,
    /// The TCP peer.
    pub peer: IpAddr,
    /// The client's address: the TCP peer, or the address a trusted proxy forwarded
    /// (bounds refusal events per client, not per proxy).
    pub client: IpAddr,
    /// The request id.
    pub request_id: String,
    /// When the request arrived (for the sign-in's duration).
    pub started: std::time::Instant,
}

impl Attempt {
    /// An attempt starting now.
    pub fn new(method: LoginMethod, peer: IpAddr, request_id: String) -> Attempt {
        Attempt { method, peer, client: peer, request_id, started: std::time::Instant::now() }
    }

    /// The attempt of `client`, behind the TCP peer (a trusted proxy).
    pub fn from_client(self, client: IpAddr) -> Attempt {
        Attempt { client, ..self }
    }
}

/// The account binding of a sign-in identity: who vouches for it, and its subject there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The OIDC issuer (or provider endpoint), or [`Binding::PROXY_ISSUER`].
    pub issuer: String,
    /// OIDC `sub`, or the id the header hook returned.
    pub subject: String,
}

impl Binding {
    /// The issuer recorded for identities an OAuth proxy vouched for (header sign-ins).
    pub const PROXY_ISSUER: &'static str = "oauth-proxy";
}

/// The longest user id or subject stored.
pub(super) const MAX_ID: usize = 255;

/// Whether an id fits its column: at most [`MAX_ID`] bytes, no control characters.
pub(super) fn is_storable_id(id: &str) -> bool {
    id.len() <= MAX_ID && !id.chars().any(char::is_control)
}

/// What the front door proved about an identity, beyond the [`OpenId`] hooks see.
#[derive(Debug, Clone, Default)]
pub struct Proof {
    /// The account the identity is bound to; `None` when it has no stable subject.
    pub binding: Option<Binding>,
    /// Whether the identity provider marked the email verified (`email_verified`). Header
    /// sign-ins count as verified: the OAuth proxy vouches for what it passes.
    pub email_verified: bool,
}

impl Proof {
    /// What a trusted OAuth proxy proves: the identity's id, bound under the proxy's issuer, and
    /// a verified email.
    pub fn of_header_identity(openid: &OpenId) -> Proof {
        let binding =
            openid.id.as_deref().map(str::trim).filter(|id| !id.is_empty()).map(|id| Binding {
                issuer: Binding::PROXY_ISSUER.to_owned(),
                subject: id.to_owned(),
            });
        Proof { binding, email_verified: true }
    }
}

/// A value quoted for a message, cut short: messages must not echo megabytes back.
pub(super) fn shown(text: &str) -> String {
    const MAX: usize = 64;
    if text.chars().count() <= MAX {
        format!("{text:?}")
    } else {
        format!(
            "{:?}… ({} characters)",
            text.chars().take(MAX).collect::<String>(),
            text.chars().count()
        )
    }
}

pub(super) fn check_values(values: SsoUserDefinedValues) -> Result<Values, SignInError> {
    let invalid = |what: String| {
        SignInError::InvalidHookOutput(format!(
            "the custom_sso hook returned invalid values: {what}"
        ))
    };
    let user_id = values.user_id.trim().to_owned();
    if user_id.is_empty() {
        return Err(invalid("user_id is empty".into()));
    }
    if !is_storable_id(&user_id) {
        return Err(invalid(format!(
            "user_id {user_id:?} is longer than {MAX_ID} characters or has control characters"
        )));
    }
    let user_email =
        values.user_email.map(|email| email.trim().to_lowercase()).filter(|e| !e.is_empty());
    if let Some(email) = &user_email
        && (!is_plausible_email(email) || email.len() > MAX_EMAIL)
    {
        return Err(invalid(format!("user_email {} is not an email address", shown(email))));
    }
    if let Some(budget) = values.max_budget
        && !crate::budget::is_valid_budget(budget)
    {
        return Err(invalid(format!("max_budget {budget} must be a number of USD, 0 or more")));
    }
    let budget_duration = match values.budget_duration {
        Some(text) => Some(
            text.parse::<BudgetDuration>()
                .map_err(|error| invalid(format!("budget_duration: {error}")))?,
        ),
        None => None,
    };
    if values.models.iter().any(|model| model.trim().is_empty()) {
        return Err(invalid("models has an empty name".into()));
    }
    if values.models.len() > MAX_MODELS || values.models.iter().any(|model| model.len() > 255) {
        return Err(invalid(format!(
            "models lists {} names; at most {MAX_MODELS} of at most 255 characters are accepted",
            values.models.len()
        )));
    }
    Ok(Values {
        models: values.models,
        user_id,
        user_email,
        user_role: values.user_role,
        max_budget: values.max_budget,
        budget_duration,
        from_hook: true,
    })
}

/// The most groups an identity may name (distinct): each is a key of one snapshot read, and
/// databases bound how many a statement takes (SQLite 32,766).
pub(super) const MAX_GROUPS: usize = 10_000;

/// The longest email address stored (RFC 5321's path limit).
pub(super) const MAX_EMAIL: usize = 254;
/// The most model names a user gets from a hook.
pub(super) const MAX_MODELS: usize = 1000;

/// An address with exactly one `@`, something on both sides, no spaces or control characters.
pub(super) fn is_plausible_email(email: &str) -> bool {
    match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

/// `text` cut to at most `max` characters.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    text.chars().take(max).collect()
}

/// LiteLLM's alias: the display name, unless it is just the id; else "first last".
pub(crate) fn alias_of(openid: &OpenId) -> Option<String> {
    let display = openid.display_name.as_deref().map(str::trim).filter(|name| !name.is_empty());
    match display {
        Some(name) if Some(name) != openid.id.as_deref() => Some(name.to_owned()),
        _ => {
            let full = [openid.first_name.as_deref(), openid.last_name.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            (!full.trim().is_empty()).then(|| full.trim().to_owned())
        }
    }
    .map(|alias| shorten(&alias, 255))
}
