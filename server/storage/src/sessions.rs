//! Session checks, users' teams and sign-in snapshots from memory, on both databases, exact.
//!
//! Every Admin UI page, management call and `GET /user/info` checks a session key (the session
//! row and its user as stored now) and most read the user's teams; every returning user's
//! sign-in reads its snapshot (the accounts, memberships and teams one decision reads). This
//! process remembers them, per thread, for as long as nothing says they changed:
//!
//! - a write by this process that revokes or changes a session or its user makes it forget them
//!   before the write's caller gets its answer ([`super::Db::forget_user`] and the revocations
//!   on [`super::Db`]; the sign-ins' writer for a user a sign-in changed);
//! - a write by this process that may change a user, a team or a membership moves the accounts'
//!   generation on ([`crate::accounts`]) after its commit, before its caller gets its answer:
//!   teams and snapshots are remembered under the generation they were read at, and used only
//!   while it is still that one. A returning user's sign-in writes only its session and its
//!   event, so it moves nothing and forgets nothing;
//! - changes made elsewhere make it forget everything and move the generation on, as soon as
//!   this process learns of them:
//!   - **SQLite**: every write of the server passes through this process's one write
//!     connection, so the two rules above see them all. Another process's commit (an operator's
//!     `sqlite3`, `hookgate sync`, a second server on the file) moves that connection's `PRAGMA
//!     data_version`, which every write transaction looks at first and the checkpointer's thread
//!     looks at every [`crate::sqlite::LOOK_OUTSIDE`] (a tenth of a second) in between;
//!   - **PostgreSQL**: other replicas write the same tables. Every write that changes a session
//!     or a user, by any process (another replica, an operator's `psql`), sends `NOTIFY
//!     hookgate_sessions` in its own transaction, and every change to users, teams or
//!     memberships `NOTIFY hookgate_accounts`: the schema's triggers do
//!     ([`super::migration`]), so no write path can forget to. Each replica LISTENs on a
//!     connection of its own ([`listen()`]) and forgets what a notification names, within
//!     milliseconds of the commit. Before the writer applies a plan made on a remembered
//!     snapshot, it sends a notification of its own and waits for it to come back
//!     ([`SessionCache::barrier`]): notifications arrive in commit order, so by then every
//!     change committed before it has been heard;
//! - while this process cannot be sure to learn of changes made elsewhere (PostgreSQL: its
//!   listener is not known to be up, before it first is, after it failed, or when it did not
//!   answer a ping; SQLite: `data_version` could not be read) nothing is remembered and every
//!   check reads the database ([`SessionCache::may_miss_changes`]);
//! - a session is never served past its expiry or its revocation.
//!
//! No lock is shared on the read path: each thread keeps its own entries (bounded, [`PER_THREAD`]
//! a thread), and a read costs one atomic load of a generation counter that changes only when
//! something is forgotten. What was forgotten goes into a short log; a thread that sees a new
//! generation replays the log since its last one (or, if it fell further behind than the log
//! reaches, forgets everything), under the log's lock — only then. On SQLite, a remembered
//! check makes no statement at all: it takes none of SQLite's process-wide locks (the WAL
//! index's, the unix VFS's), which every read transaction takes.

use std::{
    cell::RefCell,
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use hookgate_core::signin::{Keys, Snapshot};

use super::{
    Remembered, SignInRead,
    accounts::Accounts,
    entity::{session, team, user},
};

/// The channel the schema's triggers notify and every replica listens on.
pub(crate) const CHANNEL: &str = "hookgate_sessions";
/// The channel that says a user, team or membership changed (and carries the barriers).
pub(crate) const ACCOUNTS: &str = "hookgate_accounts";

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
    /// An empty cache, off until [`SessionCache::hears_every_change`].
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

    /// This process learns of every change from now on (PostgreSQL: its listener LISTENs;
    /// SQLite: from the start, and again once `data_version` can be read): what was remembered
    /// before may have missed changes, so it is forgotten, and checks, teams and snapshots are
    /// remembered from now on.
    pub(crate) fn hears_every_change(&self) {
        self.forget(Forget::All);
        self.accounts.changed_outside();
        self.live.store(true, Ordering::SeqCst);
    }

    /// This process may miss changes made elsewhere (its listener is down; SQLite's
    /// `data_version` cannot be read): nothing is remembered until it hears every change again,
    /// and a plan made on a snapshot remembered before is made again.
    pub(crate) fn may_miss_changes(&self) {
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

/// What one sign-in needs to decide, as this thread remembers it under the accounts' generation
/// now ([`SessionCache::snapshot`]); otherwise the generation a snapshot read now may be kept
/// under ([`keep_snapshot`]; `None`: nothing is remembered, or `memory` is `None`).
pub(crate) fn recall_snapshot(
    memory: Option<&SessionCache>,
    keys: &Keys,
) -> Result<SignInRead, Option<u64>> {
    match memory.map(|memory| memory.snapshot(keys)) {
        Some(Ok((snapshot, generation))) => {
            Ok(SignInRead { snapshot, remembered: Some(Remembered(generation)) })
        }
        Some(Err(generation)) => Err(generation),
        None => Err(None),
    }
}

/// A snapshot read now after [`recall_snapshot`] missed at `generation`, remembered if it found
/// an account (one that found none is a new user's: its creation moves the generation on
/// before the same keys could ask again).
pub(crate) fn keep_snapshot(
    memory: Option<&SessionCache>,
    keys: &Keys,
    generation: Option<u64>,
    snapshot: Snapshot,
) -> SignInRead {
    if let (Some(memory), Some(generation)) = (memory, generation)
        && !snapshot.accounts.is_empty()
    {
        memory.keep_snapshot(keys, generation, snapshot.clone());
    }
    SignInRead::read(snapshot)
}

mod listen;

pub(crate) use self::listen::listen;

#[cfg(test)]
mod tests;
