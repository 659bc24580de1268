//! The OpenID Connect relying party: authorization code flow with PKCE (S256), state and nonce;
//! ID tokens verified against the provider's keys (issuer, audience, expiry, nonce, signature);
//! userinfo merged in. The flow's state lives in an encrypted, authenticated, short-lived cookie
//! (no server memory, so a sign-in begun on one replica can finish on another); the database
//! only remembers which flows were used (by any callback carrying their state, an error callback
//! included), so a callback cannot be replayed.
//!
//! `provider` holds the provider (discovery, the client, the code exchange), `flow` the
//! flow's state and the callback's checks, `claims` the mapping from claims to an identity,
//! `graph` Microsoft Entra's groups (the ID token's, or Microsoft Graph's when it overflows).

mod claims;
mod flow;
mod graph;
mod provider;

pub use claims::{identity, identity_of_claims};
pub use flow::{CallbackQuery, FlowState, check_callback, check_flow};
pub use provider::{OidcProvider, http_client};

/// Why an OIDC sign-in failed, with the status the user gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    /// The browser's side of the flow is wrong: no/expired/tampered flow cookie, state or issuer
    /// mismatch, a replayed callback (400; the HTTP layer maps each variant to its status).
    #[error("{0}")]
    BadCallback(String),
    /// The identity provider refused: an `error` callback, a refused code exchange, an invalid
    /// ID token (401).
    #[error("{0}")]
    Refused(String),
    /// The identity provider could not be reached or answered nonsense (502).
    #[error("{0}")]
    Upstream(String),
}
