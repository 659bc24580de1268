//! UI session keys after they are minted: closing them (`/key/delete`) and asking LiteLLM
//! whether one is still live (`/key/info`), with a short-lived cache of its "yes".

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{
    FrontDoor, FrontDoorError,
    transport::{encode, refused},
};

/// How long LiteLLM's word that a session key is live is trusted before asking again.
const LIVE_KEY_TTL: Duration = Duration::from_secs(10);
/// The most session keys remembered as live.
const MAX_LIVE_KEYS: usize = 10_000;

impl FrontDoor {
    /// Deletes a UI session key (the `sk-…` key or its SHA-256 hex); a key LiteLLM no longer
    /// has is already closed.
    pub async fn close_session(&self, key: &str) -> Result<(), FrontDoorError> {
        self.close_sessions(&[key.to_owned()]).await
    }

    /// Deletes UI session keys in one call.
    pub async fn close_sessions(&self, keys: &[String]) -> Result<(), FrontDoorError> {
        if keys.is_empty() {
            return Ok(());
        }
        {
            let mut live = self.live_keys();
            for key in keys {
                let hash = if key.starts_with("sk-") {
                    crate::session::hash_key(key)
                } else {
                    key.clone()
                };
                live.remove(&hash);
            }
        }
        let step = "deleting the session key";
        match self
            .call(reqwest::Method::POST, "/key/delete", step, Some(json!({"keys": keys})))
            .await?
        {
            (200 | 404, _) => Ok(()),
            (status, body) => Err(refused(step, status, &body)),
        }
    }

    /// Whether LiteLLM still has this session key (`token_hash` is its SHA-256) as an active
    /// key: a logout in LiteLLM's own UI deletes it. LiteLLM's "yes" is trusted for [`LIVE_KEY_TTL`]; a "no" is
    /// final, and a key closed through hookgate is forgotten at once.
    pub async fn key_is_live(&self, token_hash: &str) -> Result<bool, FrontDoorError> {
        let fresh = |at: &Instant| at.elapsed() < LIVE_KEY_TTL;
        if self.live_keys().get(token_hash).is_some_and(fresh) {
            return Ok(true);
        }
        let step = "checking the session key";
        // The hash, not the key: a query string is written verbatim into access logs.
        let path = format!("/key/info?key={}", encode(token_hash));
        let live = match self.call(reqwest::Method::GET, &path, step, None).await? {
            // LiteLLM serves deleted keys from its archive, with a status.
            (200, body) => match body.pointer("/info/status").and_then(Value::as_str) {
                Some(status) => status == "active",
                None => body.pointer("/info/blocked").and_then(Value::as_bool) != Some(true),
            },
            (404, _) => false,
            (status, body) => return Err(refused(step, status, &body)),
        };
        let mut keys = self.live_keys();
        if live {
            if keys.len() >= MAX_LIVE_KEYS {
                keys.retain(|_, at| fresh(at));
            }
            if keys.len() < MAX_LIVE_KEYS {
                keys.insert(token_hash.to_owned(), Instant::now());
            }
        } else {
            keys.remove(token_hash);
        }
        Ok(live)
    }

    fn live_keys(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Instant>> {
        // The map holds no invariant a panicking holder could break.
        self.live_keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
