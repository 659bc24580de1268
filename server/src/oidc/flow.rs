//! The flow between `/sso/key/generate` and `/sso/callback`: the state the flow cookie carries,
//! the callback's query, and the checks that a callback belongs to its flow and is not the
//! provider's refusal or a mix-up.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::OidcError;
use crate::untrusted::{MAX_SHOWN, printable};

/// What the flow cookie carries between `/sso/key/generate` and `/sso/callback`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlowState {
    /// Unique id, remembered once the flow completes.
    pub id: String,
    /// The `state` sent to the provider.
    pub state: String,
    /// The `nonce` sent to the provider.
    pub nonce: String,
    /// The PKCE verifier, when PKCE is used.
    pub pkce_verifier: Option<String>,
    /// Where to go after signing in (a local path).
    pub return_to: Option<String>,
    /// The redirect URI sent to the provider (the code exchange must repeat it).
    pub redirect_uri: String,
    /// When the flow started (seconds since the epoch).
    pub started_at: i64,
}

/// `/sso/callback`'s query.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CallbackQuery {
    /// The authorization code.
    pub code: Option<String>,
    /// The state.
    pub state: Option<String>,
    /// RFC 9207 issuer.
    pub iss: Option<String>,
    /// An error from the provider.
    pub error: Option<String>,
    /// Its description.
    pub error_description: Option<String>,
}

/// Whether a callback belongs to `flow`: the flow has not expired and the callback carries its
/// `state`. A callback that does is the flow's one use, whatever else it says (the caller then
/// marks the flow used, an error callback included, so that one flow cookie cannot be replayed).
pub fn check_flow(
    flow: &FlowState,
    query: &CallbackQuery,
    timeout: Duration,
) -> Result<(), OidcError> {
    let age = chrono::Utc::now().timestamp() - flow.started_at;
    if age < 0 || age as u64 > timeout.as_secs() {
        return Err(OidcError::BadCallback(format!(
            "this sign-in took longer than {} seconds and has expired; start again",
            timeout.as_secs()
        )));
    }
    let state_matches = query
        .state
        .as_deref()
        .is_some_and(|state| crate::session::secrets_equal(state, &flow.state));
    if !state_matches {
        return Err(OidcError::BadCallback(
            "the callback's state does not match this sign-in".into(),
        ));
    }
    Ok(())
}

/// Checks a callback that belongs to its flow ([`check_flow`]): the provider's `error`, and the
/// RFC 9207 `iss` parameter. Returns the code. The provider's error text is the client's to
/// choose (anyone can send the browser here with any query): it is escaped and cut short.
pub fn check_callback<'q>(
    query: &'q CallbackQuery,
    expected_issuer: Option<&str>,
) -> Result<&'q str, OidcError> {
    if let Some(error) = &query.error {
        let description = query
            .error_description
            .as_deref()
            .map(|text| format!(" ({})", printable(text, MAX_SHOWN)))
            .unwrap_or_default();
        return Err(OidcError::Refused(format!(
            "the identity provider refused the sign-in: {}{description}",
            printable(error, MAX_SHOWN)
        )));
    }
    if let (Some(iss), Some(expected)) = (query.iss.as_deref(), expected_issuer)
        && iss.trim_end_matches('/') != expected.trim_end_matches('/')
    {
        return Err(OidcError::BadCallback(format!(
            "the callback names issuer \"{}\", not {expected:?} (RFC 9207 mix-up protection)",
            printable(iss, MAX_SHOWN)
        )));
    }
    query
        .code
        .as_deref()
        .filter(|code| !code.is_empty())
        .ok_or_else(|| OidcError::BadCallback("the callback has no code".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> FlowState {
        FlowState {
            id: "f".into(),
            state: "s1".into(),
            nonce: "n".into(),
            pkce_verifier: None,
            return_to: None,
            redirect_uri: "http://rp/sso/callback".into(),
            started_at: chrono::Utc::now().timestamp(),
        }
    }

    #[test]
    fn callbacks_are_checked_against_their_flow() {
        let timeout = Duration::from_secs(600);
        let ok = CallbackQuery {
            code: Some("c".into()),
            state: Some("s1".into()),
            iss: Some("https://idp/".into()),
            ..Default::default()
        };
        assert_eq!(check_flow(&flow(), &ok, timeout), Ok(()));
        assert_eq!(check_callback(&ok, Some("https://idp")), Ok("c"));

        let wrong_state = CallbackQuery { state: Some("s2".into()), ..ok.clone() };
        assert!(matches!(
            check_flow(&flow(), &wrong_state, timeout),
            Err(OidcError::BadCallback(_))
        ));
        let no_state = CallbackQuery { state: None, ..ok.clone() };
        assert!(matches!(check_flow(&flow(), &no_state, timeout), Err(OidcError::BadCallback(_))));
        let old = FlowState { started_at: chrono::Utc::now().timestamp() - 601, ..flow() };
        assert!(check_flow(&old, &ok, timeout).unwrap_err().to_string().contains("expired"));

        let wrong_iss = CallbackQuery { iss: Some("https://evil".into()), ..ok.clone() };
        assert!(
            check_callback(&wrong_iss, Some("https://idp"))
                .unwrap_err()
                .to_string()
                .contains("RFC 9207")
        );
        let denied = CallbackQuery {
            error: Some("access_denied".into()),
            error_description: Some("End-User aborted interaction".into()),
            code: None,
            ..ok.clone()
        };
        // An error callback with the flow's state belongs to the flow (and uses it up).
        assert_eq!(check_flow(&flow(), &denied, timeout), Ok(()));
        assert_eq!(
            check_callback(&denied, None).unwrap_err(),
            OidcError::Refused(
                "the identity provider refused the sign-in: access_denied (End-User aborted interaction)"
                    .to_owned()
            )
        );
        let no_code = CallbackQuery { code: None, ..ok };
        assert!(matches!(check_callback(&no_code, None), Err(OidcError::BadCallback(_))));
    }

    #[test]
    fn the_providers_error_text_is_escaped_and_cut() {
        let forged =
            "x\n2026-12-04T18:00:00.000000Z  INFO hookgate::signin: signed in user_id=admin";
        let query = CallbackQuery {
            error: Some("access_denied\r\nINFO forged".into()),
            error_description: Some(format!("{forged}{}", "A".repeat(7800))),
            ..Default::default()
        };
        let message = check_callback(&query, None).unwrap_err().to_string();
        assert!(!message.contains(['\n', '\r']), "{message}");
        assert!(message.contains("access_denied\\r\\nINFO forged"), "{message}");
        assert!(message.contains("x\\n2026-12-04T18:00:00.000000Z"), "{message}");
        assert!(message.chars().count() < 2 * MAX_SHOWN + 200, "{} characters", message.len());
        assert!(message.ends_with("… (7877 characters))"), "{message}");

        let iss = CallbackQuery {
            iss: Some(format!("https://evil\n{}", "e".repeat(9000))),
            code: Some("c".into()),
            ..Default::default()
        };
        let message = check_callback(&iss, Some("https://idp")).unwrap_err().to_string();
        assert!(!message.contains('\n') && message.len() < 400, "{message}");
    }
}
