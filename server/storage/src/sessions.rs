//! PostgreSQL's session checks and sign-in snapshots from memory, exact across replicas.
//!
//! Every Admin UI page, management call and `GET /user/info` checks a session key: the session
//! row and its user as stored now. On SQLite the readers remember them while the file is
//! unchanged ([`super::sync`]); on PostgreSQL other replicas write the same tables, so a check
//! remembered here is kept only while nothing says it changed:
//!
//! - a write by this process that revokes or changes a session or its user makes it forget them
//!   before the write's caller gets its answer ([`super::Db::forget_user`] and the revocations
//!   on [`super::Db`]);
//! - every such write, by any process (another replica, an operator's `psql`), sends
//!   `NOTIFY hookgate_sessions` in its own transaction: the schema's triggers do
//!   ([`super::migration`], `SessionNotifications`), so no write path can forget to. Each
//!   replica LISTENs on a connection of its own and forgets what a notification names, within
//!   milliseconds of the commit;
//! - while that connection is not known to be up (before it first is, after it failed, or when
//!   it did not answer a ping within [`PING`]) nothing is remembered and every check reads the
//!   database: a notification lost with the connection cannot keep a revoked session alive. A
//!   silent connection is pinged after [`QUIET`], so one that died without a word is noticed
//!   within `QUIET + PING` (under a second);
//! - an entry is never used past its session's expiry.
//!
//! No lock is shared on the read path: each thread keeps its own entries (bounded, [`PER_THREAD`]
//! a thread), and a read costs one atomic load of a generation counter that changes only when
//! something is forgotten. What was forgotten goes into a short log; a thread that sees a new
//! generation replays the log since its last one (or, if it fell further behind than the log
//! reaches, forgets everything), under the log's lock — only then.
//!
//! The same listener keeps a returning user's sign-in from reading its snapshot while nothing it
//! holds has changed: it also LISTENs on `hookgate_accounts`, which the schema's triggers notify
//! on every change to users, teams and memberships, and each notification moves the accounts'
//! generation on ([`crate::accounts`]); each thread remembers snapshots under the generation it
//! read them at ([`SessionCache::snapshot`]). Before the writer applies a plan made on a
//! remembered snapshot, it sends a notification of its own and waits for it to come back
//! ([`SessionCache::barrier`]): notifications arrive in commit order, so by then every change
//! committed before it has been heard.

use std::{
    cell::RefCell,
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use hookgate_core::signin::{Keys, Snapshot};
use sea_orm::sqlx::postgres::{PgListener, PgPool};

use super::{
    accounts::Accounts,
    entity::{session, team, user},
};

/// The channel the schema's triggers notify and every replica listens on.
pub(crate) const CHANNEL: &str = "hookgate_sessions";
/// The channel that says a user, team or membership changed (and carries the barriers).
pub(crate) const ACCOUNTS: &str = "hookgate_accounts";

/// Names the listening connection in `pg_stat_activity`, for operators (and tests) to find.
const SET_LISTENER_NAME: &str = "SET application_name = 'hookgate-sessions-listener'";
/// How long the listening connection may stay silent before it is pinged.
const QUIET: Duration = Duration::from_millis(400);
/// How long a ping may take before the connection is given up as lost.
const PING: Duration = Duration::from_millis(400);
/// The wait between attempts to listen again.
const RETRY: Duration = Duration::from_millis(250);
/// The most session checks one thread remembers (the server's async workers check sessions:
/// one per core, so a few thousand in all).
const PER_THREAD: usize = 512;
/// How many forgettings the log keeps for threads that have not looked since.
const LOG: usize = 1024;
/// How long the writer waits for its barrier to come back before it counts as a change made
/// elsewhere (the listener's connection is given up as lost within `QUIET + PING`).
const BARRIER: Duration = Duration::from_secs(1);

/// A session and its user, as a check found them.
pub(crate) type Found = (session::Model, user::Model);

/// What a change makes every replica forget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Forget {
    /// The sessions of this user (its row changed or went, or one of its sessions did).
    User(String),
    /// This session (by key hash).
    Session(String),
    /// Everything.
    All,
}

impl Forget {
    /// What a notification's payload names: `user:<id>`, `session:<hash>` or `*`. Anything else
    /// (a newer version's payload) forgets everything: never less than was meant.
    pub(crate) fn of_payload(payload: &str) -> Forget {
        if let Some(user_id) = payload.strip_prefix("user:") {
            Forget::User(user_id.to_owned())
        } else if let Some(token_hash) = payload.strip_prefix("session:") {
            Forget::Session(token_hash.to_owned())
        } else {
            Forget::All
        }
    }

    fn apply(&self, entries: &mut HashMap<String, Found>) {
        match self {
            Forget::User(user_id) => entries.retain(|_, (session, _)| session.user_id != *user_id),
            Forget::Session(token_hash) => {
                entries.remove(token_hash);
            }
            Forget::All => entries.clear(),
        }
    }
}

/// A check that missed: what it reads may be kept if nothing was forgotten meanwhile.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    generation: u64,
}

/// One thread's entries for one cache.
struct ThreadEntries {
    cache: u64,
    /// The generation the entries are up to date with.
    seen: u64,
    entries: HashMap<String, Found>,
    /// Sign-in snapshots by their keys, with the accounts' generation each was read at.
    snapshots: HashMap<Keys, (u64, Snapshot)>,
    /// Users' teams (`GET /user/info`, the Admin UI) by user id, likewise.
    teams: HashMap<String, (u64, Vec<team::Model>)>,
}

thread_local! {
    static ENTRIES: RefCell<Vec<ThreadEntries>> = const { RefCell::new(Vec::new()) };
}

/// Forgettings not yet seen by every thread: entry `i` made generation `first + i`.
struct Log {
    first: u64,
    forgotten: VecDeque<Forget>,
}

/// The process's remembered session checks (see the module's documentation).
pub(crate) struct SessionCache {
    id: u64,
    /// Bumped (under `log`'s lock, after logging) by every forgetting.
    generation: AtomicU64,
    /// Whether this replica hears every change now (its listener is up).
    live: AtomicBool,
    log: Mutex<Log>,
    listener: Mutex<Option<tokio::task::AbortHandle>>,
    /// The accounts' generation, which the sign-in snapshots are remembered under.
    pub(crate) accounts: Accounts,
    /// Tells this replica's barriers from other replicas' (random).
    barrier_token: String,
    /// The last barrier sent.
    barrier_sent: AtomicU64,
    /// The last barrier heard back.
    barrier_heard: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionCache")
            .field("generation", &self.generation.load(Ordering::Relaxed))
            .field("live", &self.live.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Drop for SessionCache {
    fn drop(&mut self) {
        if let Some(listener) =
            self.listener.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take()
        {
            listener.abort();
        }
    }
}

impl SessionCache {
    /// An empty cache, off until [`SessionCache::listener_ready`].
    pub(crate) fn new() -> Arc<SessionCache> {
        static IDS: AtomicU64 = AtomicU64::new(0);
        Arc::new(SessionCache {
            id: IDS.fetch_add(1, Ordering::Relaxed),
            generation: AtomicU64::new(0),
            live: AtomicBool::new(false),
            log: Mutex::new(Log { first: 1, forgotten: VecDeque::new() }),
            listener: Mutex::new(None),
            accounts: Accounts::default(),
            barrier_token: crate::random_hex(16),
            barrier_sent: AtomicU64::new(0),
            barrier_heard: tokio::sync::watch::channel(0).0,
        })
    }

    /// Whether checks are remembered now.
    pub(crate) fn is_live(&self) -> bool {
        self.live.load(Ordering::SeqCst)
    }

    /// The remembered check of `token_hash`, if there is one and its session is live at `now`;
    /// otherwise the ticket to keep what the database says (none while the cache is off).
    pub(crate) fn lookup(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Found, Option<Ticket>> {
        if !self.is_live() {
            return Err(None);
        }
        let generation = self.generation.load(Ordering::SeqCst);
        self.with_entries(generation, |mine| match mine.entries.get(token_hash) {
            Some(found) if found.0.expires_at > now && found.0.revoked_at.is_none() => {
                Ok(found.clone())
            }
            _ => Err(Some(Ticket { generation })),
        })
    }

    /// Remembers what the database said for `token_hash` after `ticket`'s miss, unless anything
    /// was forgotten since (the read may predate it) or the cache went off.
    pub(crate) fn keep(&self, ticket: Ticket, token_hash: &str, found: &Found) {
        let generation = self.generation.load(Ordering::SeqCst);
        if generation != ticket.generation || !self.is_live() {
            return;
        }
        self.with_entries(generation, |ThreadEntries { entries, .. }| {
            if entries.len() >= PER_THREAD
                && let Some(evicted) = entries.keys().next().cloned()
            {
                entries.remove(&evicted);
            }
            entries.insert(token_hash.to_owned(), found.clone());
        });
    }

    /// Forgets, on every thread (each at its next check).
    pub(crate) fn forget(&self, what: Forget) {
        let mut log = self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        log.forgotten.push_back(what);
        if log.forgotten.len() > LOG {
            log.forgotten.pop_front();
            log.first += 1;
        }
        let generation = log.first + log.forgotten.len() as u64 - 1;
        self.generation.store(generation, Ordering::SeqCst);
    }

    /// The listener is up (it LISTENs): what was remembered before may have missed changes, so
    /// it is forgotten, and checks and snapshots are remembered from now on.
    pub(crate) fn listener_ready(&self) {
        self.forget(Forget::All);
        self.accounts.changed_outside();
        self.live.store(true, Ordering::SeqCst);
    }

    /// The listener is down: nothing is remembered until it is back, and a plan made on a
    /// snapshot remembered before is made again.
    pub(crate) fn listener_lost(&self) {
        self.live.store(false, Ordering::SeqCst);
        self.forget(Forget::All);
        self.accounts.changed_outside();
    }

    /// What a notification on [`ACCOUNTS`] says: a barrier (`barrier:<token>:<n>`, ignored
    /// unless it is this replica's), or a change (anything else: the triggers send the table's
    /// name).
    pub(crate) fn heard_on_accounts(&self, payload: &str) {
        let Some(barrier) = payload.strip_prefix("barrier:") else {
            self.accounts.changed_outside();
            return;
        };
        if let Some((token, n)) = barrier.rsplit_once(':')
            && token == self.barrier_token
            && let Ok(n) = n.parse::<u64>()
        {
            self.barrier_heard.send_if_modified(|heard| {
                let later = n > *heard;
                if later {
                    *heard = n;
                }
                later
            });
        }
    }

    /// The sign-in snapshot this thread remembers for `keys` under the accounts' generation
    /// now, with that generation; otherwise the generation a snapshot read now may be
    /// remembered under (`None` while the listener is not up: nothing is remembered then).
    pub(crate) fn snapshot(&self, keys: &Keys) -> Result<(Snapshot, u64), Option<u64>> {
        self.recall(|mine| &mut mine.snapshots, keys)
    }

    /// Remembers, on this thread, a snapshot read at `generation` ([`SessionCache::snapshot`]).
    pub(crate) fn keep_snapshot(&self, keys: &Keys, generation: u64, snapshot: Snapshot) {
        self.keep_under(|mine| &mut mine.snapshots, keys, generation, snapshot);
    }

    /// The teams of `user_id` as [`SessionCache::snapshot`] remembers snapshots: they are read
    /// from teams and memberships only, whose every change moves the accounts' generation.
    pub(crate) fn teams(&self, user_id: &str) -> Result<(Vec<team::Model>, u64), Option<u64>> {
        self.recall(|mine| &mut mine.teams, user_id)
    }

    /// Remembers, on this thread, the teams of `user_id` read at `generation`.
    pub(crate) fn keep_teams(&self, user_id: &str, generation: u64, teams: Vec<team::Model>) {
        self.keep_under(|mine| &mut mine.teams, user_id, generation, teams);
    }

    /// What this thread remembers for `key` in `table` under the accounts' generation now.
    fn recall<K, Q, V>(
        &self,
        table: impl FnOnce(&mut ThreadEntries) -> &mut HashMap<K, (u64, V)>,
        key: &Q,
    ) -> Result<(V, u64), Option<u64>>
    where
        K: std::hash::Hash + Eq + std::borrow::Borrow<Q>,
        Q: std::hash::Hash + Eq + ?Sized,
        V: Clone,
    {
        let generation = self.accounts.now();
        if !self.is_live() {
            return Err(None);
        }
        self.with_entries(self.generation.load(Ordering::SeqCst), |mine| {
            match table(mine).get(key) {
                Some((at, value)) if *at == generation => Ok((value.clone(), generation)),
                _ => Err(Some(generation)),
            }
        })
    }

    /// Remembers `value` for `key` in `table`, read at `generation` (bounded:
    /// [`crate::keep_bounded`]).
    fn keep_under<K, Q, V>(
        &self,
        table: impl FnOnce(&mut ThreadEntries) -> &mut HashMap<K, (u64, V)>,
        key: &Q,
        generation: u64,
        value: V,
    ) where
        K: std::hash::Hash + Eq + std::borrow::Borrow<Q>,
        Q: ToOwned<Owned = K> + ?Sized,
    {
        self.with_entries(self.generation.load(Ordering::SeqCst), |mine| {
            crate::keep_bounded(table(mine), key, (generation, value));
        });
    }

    /// Sends a barrier on [`ACCOUNTS`] through `conn` and waits (at most [`BARRIER`]) for the
    /// listener to hear it: every change committed before it has been heard by then, and
    /// [`Accounts::changed_outside_since`] is up to date. A barrier that cannot be sent or does
    /// not come back in time counts as a change made elsewhere.
    pub(crate) async fn barrier(&self, conn: &sea_orm::DatabaseConnection) {
        use sea_orm::{ConnectionTrait, DbBackend, Statement};
        let n = self.barrier_sent.fetch_add(1, Ordering::SeqCst) + 1;
        let mut heard = self.barrier_heard.subscribe();
        let payload = format!("barrier:{}:{n}", self.barrier_token);
        let notify = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [ACCOUNTS.into(), payload.into()],
        );
        let back = match conn.execute_raw(notify).await {
            Ok(_) => tokio::time::timeout(BARRIER, heard.wait_for(|heard| *heard >= n))
                .await
                .map_err(|_| format!("it did not come back within {BARRIER:?}"))
                .and_then(|waited| waited.map(|_| ()).map_err(|error| error.to_string())),
            Err(error) => Err(format!("it could not be sent: {error}")),
        };
        if let Err(why) = back {
            tracing::warn!(
                "sign-ins planned on remembered snapshots are decided again on a new read: the \
                 writer's barrier on {ACCOUNTS:?} failed ({why})"
            );
            self.accounts.changed_outside();
        }
    }

    /// Runs `work` on this thread's entries, brought up to `generation` first.
    fn with_entries<T>(&self, generation: u64, work: impl FnOnce(&mut ThreadEntries) -> T) -> T {
        ENTRIES.with_borrow_mut(|all| {
            let index = match all.iter().position(|mine| mine.cache == self.id) {
                Some(index) => index,
                None => {
                    all.push(ThreadEntries {
                        cache: self.id,
                        seen: generation,
                        entries: HashMap::new(),
                        snapshots: HashMap::new(),
                        teams: HashMap::new(),
                    });
                    all.len() - 1
                }
            };
            let mine = &mut all[index];
            if mine.seen < generation {
                self.catch_up(mine, generation);
            }
            work(mine)
        })
    }

    /// Replays the forgettings after `mine.seen` up to `generation` (all of them are logged:
    /// the counter moves only after the log).
    fn catch_up(&self, mine: &mut ThreadEntries, generation: u64) {
        let log = self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if mine.seen + 1 < log.first {
            // Further behind than the log reaches.
            mine.entries.clear();
        } else {
            let from = usize::try_from(mine.seen + 1 - log.first).unwrap_or(usize::MAX);
            let to = usize::try_from(generation + 1 - log.first).unwrap_or(usize::MAX);
            for forgotten in log.forgotten.range(from..to.min(log.forgotten.len())) {
                forgotten.apply(&mut mine.entries);
            }
        }
        mine.seen = generation;
    }
}

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
            Some(cache) => cache.listener_ready(),
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
            Some(cache) => cache.listener_lost(),
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

#[cfg(test)]
mod tests;
