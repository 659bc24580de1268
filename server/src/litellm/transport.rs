//! How hookgate talks to LiteLLM's management API: the authenticated call with the master key,
//! reading LiteLLM's error shapes, and the checks and encoding around the URL.

use serde_json::Value;

use super::{FrontDoor, FrontDoorError};

impl FrontDoor {
    pub(super) async fn list(
        &self,
        path: &str,
        step: &'static str,
    ) -> Result<Vec<Value>, FrontDoorError> {
        match self.call(reqwest::Method::GET, path, step, None).await? {
            (200, body) => {
                Ok(body.get("users").and_then(Value::as_array).cloned().unwrap_or_default())
            }
            (status, body) => Err(refused(step, status, &body)),
        }
    }

    pub(super) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        step: &'static str,
        body: Option<Value>,
    ) -> Result<(u16, Value), FrontDoorError> {
        let url = format!("{}{path}", self.base);
        let mut request = self.client.request(method, &url).bearer_auth(self.master_key.expose());
        if let Some(body) = body {
            request = request.json(&body);
        }
        let unreachable = |error: reqwest::Error| FrontDoorError::Unreachable {
            url: format!("{}{}", self.base, path.split('?').next().unwrap_or(path)),
            step,
            reason: error_chain(&error),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(unreachable)?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, body))
    }
}

pub(super) fn refused(step: &'static str, status: u16, body: &Value) -> FrontDoorError {
    FrontDoorError::Refused { step, status, message: message_of(body) }
}

/// LiteLLM's error message: `{"error": {"message"}}`, FastAPI's `{"detail"}`, or the text.
pub(super) fn message_of(body: &Value) -> String {
    let text = match body {
        Value::String(text) => text.clone(),
        _ => body
            .pointer("/error/message")
            .or_else(|| body.pointer("/detail/error"))
            .or_else(|| body.get("detail"))
            .map(|message| match message {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .unwrap_or_else(|| body.to_string()),
    };
    hookgate_core::ids::shorten(&text, 300)
}

/// LiteLLM's 400 messages for a member removal with nothing to remove ("Team id=… does not
/// exist in db", "User not found in team").
pub(super) fn is_already_gone(message: &str) -> bool {
    message.contains("does not exist") || message.contains("not found in team")
}

pub(super) fn error_type(body: &Value) -> Option<&str> {
    body.pointer("/error/type").and_then(Value::as_str)
}

/// A reqwest error with its causes ("error sending request: … Connection refused").
fn error_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether calls to `base` would carry the master key in clear beyond this host: `http://` to a
/// host that is not a loopback address or `localhost`.
pub(super) fn sends_key_in_clear(base: &str) -> bool {
    let Some(rest) = base.strip_prefix("http://") else { return false };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    !loopback
}

/// Percent-encodes a query value.
pub(super) fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn messages_come_from_each_error_shape() {
        let litellm = json!({"error": {"message": "User with id x already exists", "code": "409"}});
        assert_eq!(message_of(&litellm), "User with id x already exists");
        let fastapi = json!({"detail": {"error": "Team doesn't exist in db."}});
        assert_eq!(message_of(&fastapi), "Team doesn't exist in db.");
        assert_eq!(message_of(&json!({"detail": "Not Found"})), "Not Found");
        assert_eq!(
            message_of(&Value::String("Internal Server Error".into())),
            "Internal Server Error"
        );
    }

    #[test]
    fn plain_http_beyond_this_host_is_flagged() {
        for clear in
            ["http://litellm.internal:4000", "http://10.0.0.5", "http://[2001:db8::1]:4000/x"]
        {
            assert!(sends_key_in_clear(clear), "{clear}");
        }
        for fine in [
            "https://litellm.example.com",
            "http://127.0.0.1:4000",
            "http://localhost:4000/litellm",
            "http://[::1]:4000",
        ] {
            assert!(!sends_key_in_clear(fine), "{fine}");
        }
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode("a b+c@d.e/f"), "a%20b%2Bc%40d.e%2Ff");
    }
}
