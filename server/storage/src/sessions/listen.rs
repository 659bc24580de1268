//! PostgreSQL's listener: a connection of its own that LISTENs on [`CHANNEL`] and [`ACCOUNTS`]
//! and keeps the cache live while it does ([`super`]'s documentation says why and what for).

use std::{
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

use sea_orm::sqlx::postgres::{PgListener, PgPool};

use super::{ACCOUNTS, CHANNEL, Forget, SessionCache};

/// Names the listening connection in `pg_stat_activity`, for operators (and tests) to find.
const SET_LISTENER_NAME: &str = "SET application_name = 'hookgate-sessions-listener'";
/// How long the listening connection may stay silent before it is pinged.
const QUIET: Duration = Duration::from_millis(400);
/// How long a ping may take before the connection is given up as lost.
const PING: Duration = Duration::from_millis(400);
/// The wait between attempts to listen again.
const RETRY: Duration = Duration::from_millis(250);

/// Starts `cache`'s listener on a connection of `pool`'s: it keeps the cache live while it
/// LISTENs, and ends when the cache is dropped or the pool closed.
pub(crate) fn listen(cache: &Arc<SessionCache>, pool: PgPool) {
    let task = tokio::spawn(listen_forever(Arc::downgrade(cache), pool));
    *cache.listener.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
        Some(task.abort_handle());
}

async fn listen_forever(cache: Weak<SessionCache>, pool: PgPool) {
    // Since when the cache has been off, once that was logged.
    let mut off_since: Option<Instant> = None;
    loop {
        if pool.is_closed() {
            return;
        }
        let mut listener = match subscribe(&pool).await {
            Ok(listener) => listener,
            Err(error) => {
                if off_since.is_none() {
                    tracing::warn!(
                        "session checks read the database every time until this replica can \
                         LISTEN on {CHANNEL:?} (will retry): {error}"
                    );
                    off_since = Some(Instant::now());
                }
                tokio::time::sleep(RETRY).await;
                continue;
            }
        };
        match cache.upgrade() {
            Some(cache) => cache.hears_every_change(),
            None => return,
        }
        match off_since.take() {
            Some(since) => tracing::info!(
                off_for_ms = since.elapsed().as_millis(),
                "session checks are remembered again: this replica LISTENs on {CHANNEL:?}"
            ),
            None => {
                tracing::info!(
                    "session checks are remembered: this replica LISTENs on {CHANNEL:?}"
                );
            }
        }
        let Some(why) = hear(&cache, &mut listener).await else { return };
        match cache.upgrade() {
            Some(cache) => cache.may_miss_changes(),
            None => return,
        }
        if pool.is_closed() {
            // The server is shutting down (`Db::close`): no one to warn.
            return;
        }
        off_since = Some(Instant::now());
        tracing::warn!(
            "session checks read the database every time until this replica LISTENs again: its \
             connection for {CHANNEL:?} notifications was lost ({why})"
        );
    }
}

/// A connection that LISTENs on [`CHANNEL`].
async fn subscribe(pool: &PgPool) -> Result<PgListener, sea_orm::sqlx::Error> {
    use sea_orm::sqlx::Executor as _;
    let mut listener = PgListener::connect_with(pool).await?;
    // A lost connection is reported, not silently replaced: the cache must go off meanwhile.
    listener.eager_reconnect(false);
    (&mut listener).execute(SET_LISTENER_NAME).await?;
    listener.listen_all([CHANNEL, ACCOUNTS]).await?;
    Ok(listener)
}

/// Applies notifications until the connection is lost (returns why) or the cache is gone
/// (returns `None`).
async fn hear(cache: &Weak<SessionCache>, listener: &mut PgListener) -> Option<String> {
    use sea_orm::sqlx::Executor as _;
    loop {
        // `try_recv` is cancel-safe (sqlx reads a message whole or not at all).
        match tokio::time::timeout(QUIET, listener.try_recv()).await {
            Ok(Ok(Some(notification))) => {
                let cache = cache.upgrade()?;
                match notification.channel() {
                    ACCOUNTS => cache.heard_on_accounts(notification.payload()),
                    _ => cache.forget(Forget::of_payload(notification.payload())),
                }
            }
            Ok(Ok(None)) => return Some("the connection closed".into()),
            Ok(Err(error)) => return Some(error.to_string()),
            Err(_quiet) => {
                if cache.strong_count() == 0 {
                    return None;
                }
                match tokio::time::timeout(PING, (&mut *listener).execute("SELECT 1")).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(error)) => return Some(format!("a ping failed: {error}")),
                    Err(_) => {
                        return Some(format!("it did not answer a ping within {PING:?}"));
                    }
                }
            }
        }
    }
}
