//! PostgreSQL's session checks from memory, exact across replicas.
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
use sea_orm::sqlx::postgres::{PgListener, PgPool};

use super::entity::{session, user};

/// The channel the schema's triggers notify and every replica listens on.
pub(crate) const CHANNEL: &str = "hookgate_sessions";

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
        self.with_entries(generation, |entries| match entries.get(token_hash) {
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
        self.with_entries(generation, |entries| {
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
    /// it is forgotten, and checks are remembered from now on.
    pub(crate) fn listener_ready(&self) {
        self.forget(Forget::All);
        self.live.store(true, Ordering::SeqCst);
    }

    /// The listener is down: nothing is remembered until it is back.
    pub(crate) fn listener_lost(&self) {
        self.live.store(false, Ordering::SeqCst);
        self.forget(Forget::All);
    }

    /// Runs `work` on this thread's entries, brought up to `generation` first.
    fn with_entries<T>(
        &self,
        generation: u64,
        work: impl FnOnce(&mut HashMap<String, Found>) -> T,
    ) -> T {
        ENTRIES.with_borrow_mut(|all| {
            let index = match all.iter().position(|mine| mine.cache == self.id) {
                Some(index) => index,
                None => {
                    all.push(ThreadEntries {
                        cache: self.id,
                        seen: generation,
                        entries: HashMap::new(),
                    });
                    all.len() - 1
                }
            };
            let mine = &mut all[index];
            if mine.seen < generation {
                self.catch_up(mine, generation);
            }
            work(&mut mine.entries)
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
    listener.listen(CHANNEL).await?;
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
                cache.upgrade()?.forget(Forget::of_payload(notification.payload()));
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
mod tests {
    use super::*;

    fn found(token_hash: &str, user_id: &str, expires_at: DateTime<Utc>) -> Found {
        let at = crate::db::store::now();
        (
            session::Model {
                token_hash: token_hash.to_owned(),
                user_id: user_id.to_owned(),
                user_role: "proxy_admin".into(),
                login_method: "header".into(),
                models: serde_json::json!([]),
                max_budget: None,
                created_at: at,
                expires_at,
                revoked_at: None,
            },
            user::Model {
                user_id: user_id.to_owned(),
                user_email: None,
                user_alias: None,
                user_role: Some("proxy_admin".into()),
                sso_user_id: None,
                sso_issuer: None,
                models: serde_json::json!([]),
                max_budget: None,
                spend: 0.0,
                budget_duration: None,
                budget_reset_at: None,
                metadata: serde_json::json!({}),
                created_at: at,
                updated_at: at,
            },
        )
    }

    /// Looks `token_hash` up, keeping `found` on a miss; returns whether it was a hit.
    fn check(cache: &SessionCache, token_hash: &str, found: &Found) -> bool {
        match cache.lookup(token_hash, crate::db::store::now()) {
            Ok(_) => true,
            Err(ticket) => {
                if let Some(ticket) = ticket {
                    cache.keep(ticket, token_hash, found);
                }
                false
            }
        }
    }

    fn later() -> DateTime<Utc> {
        crate::db::store::now() + chrono::Duration::hours(1)
    }

    #[test]
    fn nothing_is_remembered_until_the_listener_is_up() {
        let cache = SessionCache::new();
        let alice = found("h1", "alice", later());
        assert!(!check(&cache, "h1", &alice));
        assert!(!check(&cache, "h1", &alice), "kept while no listener was up");
        cache.listener_ready();
        assert!(!check(&cache, "h1", &alice));
        assert!(check(&cache, "h1", &alice));
    }

    #[test]
    fn a_lost_listener_forgets_everything_and_remembers_nothing_until_it_is_back() {
        let cache = SessionCache::new();
        cache.listener_ready();
        let alice = found("h1", "alice", later());
        check(&cache, "h1", &alice);
        assert!(check(&cache, "h1", &alice));

        cache.listener_lost();
        assert!(!cache.is_live());
        assert!(!check(&cache, "h1", &alice), "used after the listener was lost");
        assert!(!check(&cache, "h1", &alice), "kept while the listener was down");

        // A check that missed just before the loss must not keep what it read (a notification
        // may have been lost meanwhile).
        cache.listener_ready();
        let Err(Some(ticket)) = cache.lookup("h1", crate::db::store::now()) else {
            panic!("a miss with a ticket")
        };
        cache.listener_lost();
        cache.listener_ready();
        cache.keep(ticket, "h1", &alice);
        assert!(!check(&cache, "h1", &alice), "kept a read from before the loss");
        assert!(check(&cache, "h1", &alice));
    }

    #[test]
    fn forgetting_a_user_or_a_session_drops_only_those() {
        let cache = SessionCache::new();
        cache.listener_ready();
        let alice = found("h1", "alice", later());
        let alice2 = found("h2", "alice", later());
        let bob = found("h3", "bob", later());
        for (hash, found) in [("h1", &alice), ("h2", &alice2), ("h3", &bob)] {
            check(&cache, hash, found);
        }
        cache.forget(Forget::of_payload("user:alice"));
        assert!(!check(&cache, "h1", &alice));
        assert!(!check(&cache, "h2", &alice2));
        assert!(check(&cache, "h3", &bob));
        cache.forget(Forget::of_payload("session:h3"));
        assert!(!check(&cache, "h3", &bob));
        assert!(check(&cache, "h1", &alice));
        cache.forget(Forget::of_payload("*"));
        assert!(!check(&cache, "h1", &alice));
        assert_eq!(Forget::of_payload("from a newer version"), Forget::All);
    }

    #[test]
    fn a_read_that_a_forgetting_overtook_is_not_kept() {
        // The revocation commits while the check reads the row as it was: the forgetting comes
        // between the miss and the keep, so what was read must not be remembered.
        let cache = SessionCache::new();
        cache.listener_ready();
        let alice = found("h1", "alice", later());
        let Err(Some(ticket)) = cache.lookup("h1", crate::db::store::now()) else {
            panic!("a miss with a ticket")
        };
        cache.forget(Forget::User("alice".into()));
        cache.keep(ticket, "h1", &alice);
        assert!(!check(&cache, "h1", &alice), "kept a read older than a revocation");
    }

    #[test]
    fn a_thread_sees_what_another_forgot_even_past_the_logs_reach() {
        let cache = SessionCache::new();
        cache.listener_ready();
        let alice = found("h1", "alice", later());
        check(&cache, "h1", &alice);
        assert!(check(&cache, "h1", &alice));
        let other = Arc::clone(&cache);
        std::thread::spawn(move || other.forget(Forget::User("alice".into()))).join().unwrap();
        assert!(!check(&cache, "h1", &alice), "another thread's forgetting was missed");
        assert!(check(&cache, "h1", &alice));
        let other = Arc::clone(&cache);
        std::thread::spawn(move || {
            for n in 0..LOG + 10 {
                other.forget(Forget::User(format!("someone-{n}")));
            }
        })
        .join()
        .unwrap();
        assert!(!check(&cache, "h1", &alice), "kept past the log's reach");
    }

    #[test]
    fn an_expired_session_is_never_served() {
        let cache = SessionCache::new();
        cache.listener_ready();
        let soon = crate::db::store::now() + chrono::Duration::milliseconds(1);
        let alice = found("h1", "alice", soon);
        check(&cache, "h1", &alice);
        let after = soon + chrono::Duration::milliseconds(1);
        assert!(cache.lookup("h1", after).is_err(), "served past its expiry");
    }

    /// On PostgreSQL (when the test command started one, `HOOKGATE_TEST_POSTGRES_URL`): a
    /// change that notifies nobody (triggers off for the writing connection) is not seen while
    /// the check is remembered; losing the listener forgets it, so the next check reads the
    /// change; the listener comes back by itself and checks are remembered again.
    #[tokio::test]
    async fn a_lost_listener_forgets_what_it_may_have_missed_and_comes_back() {
        use sea_orm::{ConnectionTrait, Database};
        let Ok(admin_url) = std::env::var("HOOKGATE_TEST_POSTGRES_URL") else {
            eprintln!("--- PostgreSQL skipped (HOOKGATE_TEST_POSTGRES_URL is not set)");
            return;
        };
        let name = format!("hookgate_listener_{}", crate::session::random_hex(8));
        let admin = Database::connect(admin_url.as_str()).await.unwrap();
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        let url = format!("{base}/{name}");
        let db = crate::db::Db::connect(&url).await.unwrap();
        let cache = db.sessions.clone().expect("PostgreSQL remembers session checks");
        let live = async |cache: &SessionCache| {
            for _ in 0..100 {
                if cache.is_live() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("the listener did not come up within 5 s");
        };
        live(&cache).await;

        let behind = Database::connect(url.as_str()).await.unwrap();
        behind
            .execute_unprepared(
                "INSERT INTO users (user_id, user_role, models, spend, metadata, created_at, \
                 updated_at) VALUES ('ann', 'proxy_admin', '[]', 0, '{}', now(), now()); \
                 INSERT INTO sessions (token_hash, user_id, user_role, login_method, models, \
                 created_at, expires_at) VALUES ('h1', 'ann', 'proxy_admin', 'header', '[]', \
                 now(), now() + interval '1 hour')",
            )
            .await
            .unwrap();
        let role = async || {
            let (_, user) = db.live_session_user("h1").await.unwrap().expect("a live session");
            user.user_role.unwrap()
        };
        assert_eq!(role().await, "proxy_admin");
        // Behind the triggers' back (a superuser's replication role fires none): remembered.
        behind
            .execute_unprepared(
                "SET session_replication_role = replica; \
                 UPDATE users SET user_role = 'internal_user' WHERE user_id = 'ann'; \
                 SET session_replication_role = DEFAULT",
            )
            .await
            .unwrap();
        assert_eq!(role().await, "proxy_admin", "not remembered (this runtime has one thread)");

        // The listener's connection dies: what the cache held is forgotten.
        let killed = admin_of(&url)
            .await
            .execute_unprepared(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE application_name = 'hookgate-sessions-listener' AND datname = current_database()",
            )
            .await
            .unwrap();
        assert_eq!(killed.rows_affected(), 1, "one listener");
        let started = Instant::now();
        while role().await != "internal_user" {
            assert!(started.elapsed() < Duration::from_secs(2), "still remembered after the loss");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        eprintln!("the lost listener was noticed after {:?}", started.elapsed());

        // Back by itself; a notified change is seen (here with nothing forgotten locally).
        live(&cache).await;
        assert_eq!(role().await, "internal_user");
        behind
            .execute_unprepared("UPDATE users SET user_role = 'proxy_admin' WHERE user_id = 'ann'")
            .await
            .unwrap();
        let started = Instant::now();
        while role().await != "proxy_admin" {
            assert!(started.elapsed() < Duration::from_secs(1), "the notification was not heard");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        eprintln!("a notified change was heard after {:?}", started.elapsed());

        behind.close().await.unwrap();
        db.close().await.unwrap();
        admin.execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)")).await.unwrap();
        admin.close().await.unwrap();
    }

    /// On PostgreSQL: this process's own writes make it forget before they return. The cache
    /// here has no listener (it is made live by hand), so nothing but the writes themselves can
    /// make it forget.
    #[tokio::test]
    async fn this_processs_own_writes_forget_before_they_return() {
        use sea_orm::{ConnectionTrait, Database};
        let Ok(admin_url) = std::env::var("HOOKGATE_TEST_POSTGRES_URL") else {
            eprintln!("--- PostgreSQL skipped (HOOKGATE_TEST_POSTGRES_URL is not set)");
            return;
        };
        let name = format!("hookgate_forget_{}", crate::session::random_hex(8));
        let admin = Database::connect(admin_url.as_str()).await.unwrap();
        admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
        let (base, _) = admin_url.rsplit_once('/').unwrap();
        let url = format!("{base}/{name}");
        let mut db = crate::db::Db::connect(&url).await.unwrap();
        let cache = SessionCache::new();
        cache.listener_ready();
        db.sessions = Some(cache);
        for (user_id, hashes) in [("ann", ["a1", "a2", "a3"]), ("bob", ["b1", "b2", "b3"])] {
            db.conn()
                .execute_unprepared(&format!(
                    "INSERT INTO users (user_id, user_role, models, spend, metadata, created_at, \
                     updated_at) VALUES ('{user_id}', 'proxy_admin', '[]', 0, '{{}}', now(), now())"
                ))
                .await
                .unwrap();
            for hash in hashes {
                db.conn()
                    .execute_unprepared(&format!(
                        "INSERT INTO sessions (token_hash, user_id, user_role, login_method, \
                         models, created_at, expires_at) VALUES ('{hash}', '{user_id}', \
                         'proxy_admin', 'header', '[]', now(), now() + interval '1 hour')"
                    ))
                    .await
                    .unwrap();
            }
        }
        let check = async |hash: &str| {
            db.live_session_user(hash).await.unwrap().map(|(_, user)| user.user_role.unwrap())
        };
        for hash in ["a1", "a2", "a3", "b1", "b2", "b3"] {
            assert_eq!(check(hash).await.as_deref(), Some("proxy_admin"));
        }
        let access = crate::access::Access::new(&db, None);

        // A logout.
        assert!(db.revoke_session("a1").await.unwrap());
        assert_eq!(check("a1").await, None, "a logout");
        // An administrator's edit.
        let edit = crate::db::store::UserEdit {
            user_role: Some(plugin_api::UserRole::InternalUser),
            ..Default::default()
        };
        access.edit_user("ann", edit).await.unwrap();
        assert_eq!(check("a2").await.as_deref(), Some("internal_user"), "a demotion");
        // Signed out everywhere.
        assert_eq!(access.revoke_sessions("ann").await.unwrap(), 2);
        assert_eq!(check("a3").await, None, "signed out everywhere");
        // Deleted.
        assert_eq!(access.delete_users(&["bob".to_owned()]).await.unwrap(), ["bob"]);
        for hash in ["b1", "b2", "b3"] {
            assert_eq!(check(hash).await, None, "a deleted user");
        }

        db.close().await.unwrap();
        admin.execute_unprepared(&format!("DROP DATABASE {name} WITH (FORCE)")).await.unwrap();
        admin.close().await.unwrap();
    }

    /// A connection to the database at `url` (the test's admin user).
    async fn admin_of(url: &str) -> sea_orm::DatabaseConnection {
        sea_orm::Database::connect(url).await.unwrap()
    }

    #[test]
    fn a_thread_remembers_a_bounded_number() {
        let cache = SessionCache::new();
        cache.listener_ready();
        for n in 0..PER_THREAD * 2 {
            let hash = format!("h{n}");
            check(&cache, &hash, &found(&hash, "alice", later()));
        }
        let kept = ENTRIES.with_borrow(|all| {
            all.iter().find(|mine| mine.cache == cache.id).map_or(0, |mine| mine.entries.len())
        });
        assert_eq!(kept, PER_THREAD);
    }
}
