//! Who is signing in, for the record: the front door ([`LoginMethod`]) and the attempt
//! ([`Attempt`]). What they proved ([`Binding`], [`Proof`]) is the core's.

use std::net::IpAddr;

pub use hookgate_core::identity::{Binding, Proof};

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
