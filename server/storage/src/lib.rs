//! hookgate's storage: users, teams, sessions and sign-in events, on SQLite by default and on
//! PostgreSQL when several replicas share one database. Only this crate knows sea-orm; the
//! server sees the port ([`Db`]'s methods, `port.rs`), the rows (`entity`) and the core's types.
//!
//! Each database has one backend, each on sea-orm: PostgreSQL's on sea-orm over sqlx (`store`),
//! SQLite's on sea-orm-sync over rusqlite (`lite`, the same queries compiled a second time;
//! `sqlite.rs`). Writes that belong together run in one transaction ([`Db::write`]); on SQLite
//! every write takes the one write connection in turn, so that concurrent writes queue instead
//! of failing with "database is locked".

mod accounts;
pub mod entity;
mod lite;
mod migration;
mod port;
mod read_only;
mod sessions;
mod sqlite;
mod store;
mod types;
mod writer;

pub use self::{
    port::{Remembered, SignInRead, Tx},
    read_only::{ReadOnlyError, SchemaMismatch},
    store::{json_list, list_of, now},
    types::{NewTeam, NewUser, Recorded, ScimUser, UserEdit, UserFilter, UserStanding},
    writer::{Applied, Job, Timed, Writer},
};

use std::{path::PathBuf, sync::Arc, time::Duration};

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbErr,
    TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

pub use sea_orm::DbErr as Error;

/// How long [`Db::close`] waits for the other handles of a SQLite database to go.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The PostgreSQL advisory lock taken while migrating (any constant unlikely to collide).
const MIGRATION_LOCK: i64 = 0x686f_6f6b_6761_7465; // "hookgate"

/// Prepared statements kept per pooled connection. The sign-in's reads take `IN` lists of
/// varying length, so their text varies; sqlx's default (100 per connection) let 16 PostgreSQL
/// connections hold thousands of prepared statements and grow the server by several MB under a
/// long load. The hot statements stay cached (least recently used goes first).
const STATEMENT_CACHE: usize = 24;

/// Which database a URL names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseKind {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL server.
    Postgres,
}

/// A URL that is not one hookgate can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported database URL scheme {scheme:?}: use sqlite://<file> or postgresql://…")]
pub struct UnsupportedUrl {
    scheme: String,
}

/// What a database URL names.
pub fn database_kind(url: &str) -> Result<DatabaseKind, UnsupportedUrl> {
    let (scheme, rest) = url.split_once(':').unwrap_or((url, ""));
    match scheme {
        "sqlite" => {
            let path = rest.trim_start_matches("//");
            let path = path.split('?').next().unwrap_or(path);
            Ok(DatabaseKind::Sqlite(PathBuf::from(path)))
        }
        "postgres" | "postgresql" => Ok(DatabaseKind::Postgres),
        other => Err(UnsupportedUrl { scheme: other.to_owned() }),
    }
}

/// The database: the storage port's methods (`port.rs`) over one of two backends.
#[derive(Debug, Clone)]
pub struct Db {
    backend: Backend,
    /// Opened for a rehearsal ([`Db::open_read_only`], [`Db::scratch`]): [`Db::write`] refuses.
    read_only: bool,
}

/// Where the statements go.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    /// SQLite, on sea-orm-sync over rusqlite ([`sqlite`]).
    Sqlite(Arc<sqlite::Lite>),
    /// PostgreSQL, on sea-orm over sqlx.
    Postgres(Pg),
}

/// PostgreSQL's pool, and what this replica remembers of session checks and sign-in snapshots.
#[derive(Debug, Clone)]
pub(crate) struct Pg {
    pub(crate) conn: DatabaseConnection,
    /// The session checks and snapshots remembered while this replica hears every change (see
    /// [`sessions`]); `None` for a rehearsal.
    pub(crate) sessions: Option<Arc<sessions::SessionCache>>,
}

impl Pg {
    /// What one sign-in needs to decide: remembered by this thread while this replica has heard
    /// of no change to an account, team or membership since it was read ([`sessions`]), else
    /// read now (and remembered).
    pub(crate) async fn snapshot(
        &self,
        keys: &hookgate_core::signin::Keys,
    ) -> Result<SignInRead, DbErr> {
        let memory = self.sessions.as_deref();
        let generation = match sessions::recall_snapshot(memory, keys) {
            Ok(remembered) => return Ok(remembered),
            Err(generation) => generation,
        };
        let snapshot = store::snapshot(&self.conn, keys).await?;
        Ok(sessions::keep_snapshot(memory, keys, generation, snapshot))
    }
}

/// A PostgreSQL write transaction; dropped without [`WriteTxn::commit`], it rolls back.
pub(crate) struct WriteTxn {
    txn: DatabaseTransaction,
}

impl WriteTxn {
    /// The transaction, to run statements on.
    pub(crate) fn conn(&self) -> &DatabaseTransaction {
        &self.txn
    }

    /// Commits.
    pub(crate) async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await
    }

    /// Rolls back.
    pub(crate) async fn rollback(self) -> Result<(), DbErr> {
        self.txn.rollback().await
    }
}

impl Db {
    /// Connects and runs the migrations. SQLite files are created if missing (0600) and use WAL.
    pub async fn connect(url: &str) -> Result<Db, DbErr> {
        let kind = database_kind(url).map_err(|error| DbErr::Custom(error.to_string()))?;
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .sqlx_logging(false)
            // When the database is down, sign-ins should fail fast (503), not queue for long.
            .connect_timeout(Duration::from_secs(3))
            .acquire_timeout(Duration::from_secs(3))
            // No `SELECT 1` round trip on every checkout: a dead connection fails its statement,
            // which the caller reports (503), and the pool replaces it.
            .test_before_acquire(false);
        let backend = match kind {
            DatabaseKind::Sqlite(path) => {
                if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" {
                    return Err(DbErr::Custom(format!(
                        "{url}: hookgate keeps SQLite in a file (sqlite://<path>), not in memory"
                    )));
                }
                create_private(&path).map_err(|error| {
                    DbErr::Custom(format!("cannot create {}: {error}", path.display()))
                })?;
                // sea-orm-migration runs on sea-orm (sqlx) only: the schema is migrated on one
                // connection of its own, closed before anything else opens the file.
                options.max_connections(1).min_connections(0).map_sqlx_sqlite_opts(|opts| {
                    opts.create_if_missing(true)
                        .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                        .busy_timeout(Duration::from_secs(10))
                        .foreign_keys(true)
                });
                let conn = Database::connect(options).await?;
                let migrated = migration::Migrator::up(&conn, None).await;
                conn.close().await?;
                migrated?;
                Backend::Sqlite(Arc::new(sqlite::Lite::file(&path)?))
            }
            DatabaseKind::Postgres => {
                options
                    .max_connections(16)
                    .min_connections(1)
                    .map_sqlx_postgres_opts(|opts| opts.statement_cache_capacity(STATEMENT_CACHE));
                let conn = Database::connect(options).await?;
                // Replicas sharing PostgreSQL may start together: one migrates while the others
                // wait on a transaction-scoped advisory lock, then find nothing pending.
                let txn = conn.begin().await?;
                txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
                    .await?;
                migration::Migrator::up(&txn, None).await?;
                txn.commit().await?;
                let cache = sessions::SessionCache::new();
                sessions::listen(&cache, conn.get_postgres_connection_pool().clone());
                Backend::Postgres(Pg { conn, sessions: Some(cache) })
            }
        };
        Ok(Db { backend, read_only: false })
    }

    /// Where the statements go.
    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }

    /// What one sign-in needs to decide ([`Db::snapshot`]), from a blocking thread: on SQLite
    /// on this thread, on PostgreSQL through `runtime` (remembered by this thread).
    pub fn snapshot_blocking(
        &self,
        runtime: &tokio::runtime::Handle,
        keys: &hookgate_core::signin::Keys,
    ) -> Result<SignInRead, DbErr> {
        match &self.backend {
            Backend::Sqlite(lite) => lite.snapshot(keys),
            Backend::Postgres(pg) => runtime.block_on(pg.snapshot(keys)),
        }
    }

    /// What this process remembers of the database (session checks, teams, sign-in snapshots:
    /// [`sessions`]); `None` for a rehearsal's.
    pub(crate) fn memory(&self) -> Option<&sessions::SessionCache> {
        match &self.backend {
            Backend::Sqlite(lite) => lite.memory(),
            Backend::Postgres(pg) => pg.sessions.as_deref(),
        }
    }

    /// Makes this process forget the session checks of `user_id` at once: called after a
    /// committed write that changed or deleted the user or revoked any of its sessions, before
    /// its caller is answered. (Other replicas hear of it through the schema's `NOTIFY`.)
    pub(crate) fn forget_user(&self, user_id: &str) {
        if let Some(memory) = self.memory() {
            memory.forget(sessions::Forget::User(user_id.to_owned()));
        }
    }

    /// Revokes a session; returns whether it was live.
    pub async fn revoke_session(&self, token_hash: &str) -> Result<bool, DbErr> {
        let hash = token_hash.to_owned();
        let revoked = self.write(move |tx| tx.revoke_session(&hash)).await?;
        if let Some(memory) = self.memory() {
            memory.forget(sessions::Forget::Session(token_hash.to_owned()));
        }
        Ok(revoked)
    }

    /// Revokes every live session of a user; returns how many there were.
    pub async fn revoke_user_sessions(&self, user_id: &str) -> Result<u64, DbErr> {
        let user_id = user_id.to_owned();
        self.write(move |tx| tx.revoke_user_sessions(&user_id)).await
    }

    /// Refuses when the database was opened read-only (a rehearsal).
    fn refuse_if_read_only(&self) -> Result<(), DbErr> {
        if self.read_only {
            return Err(read_only_refusal());
        }
        Ok(())
    }

    /// Starts a PostgreSQL write transaction.
    pub(crate) async fn begin_write(pg: &Pg) -> Result<WriteTxn, DbErr> {
        Ok(WriteTxn { txn: pg.conn.begin().await? })
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), DbErr> {
        match &self.backend {
            Backend::Sqlite(lite) => lite.read(|conn| {
                use sea_orm_sync::ConnectionTrait as _;
                conn.execute_unprepared("SELECT 1").map(|_| ())
            }),
            Backend::Postgres(pg) => pg.conn.execute_unprepared("SELECT 1").await.map(|_| ()),
        }
    }

    /// Closes the database: PostgreSQL's pool, waiting for connections to be returned; SQLite's
    /// connections, once this is the last handle (the writer thread lets go of its own when the
    /// last sign-in service is dropped; at most [`CLOSE_WAIT`]). On SQLite the last connection
    /// to close checkpoints and removes the WAL and its index: a process that exited while
    /// another thread was doing that left a WAL without its index, which `hookgate try` and
    /// `hookgate sync` refuse to read — so it is done here, before the caller returns.
    ///
    /// # Errors
    /// PostgreSQL failing to close; on SQLite, another handle still held after [`CLOSE_WAIT`].
    pub async fn close(self) -> Result<(), DbErr> {
        match self.backend {
            Backend::Sqlite(mut lite) => {
                let deadline = std::time::Instant::now() + CLOSE_WAIT;
                loop {
                    match Arc::try_unwrap(lite) {
                        Ok(last) => {
                            return tokio::task::spawn_blocking(move || drop(last)).await.map_err(
                                |error| DbErr::Custom(format!("closing SQLite: {error}")),
                            );
                        }
                        Err(shared) if std::time::Instant::now() < deadline => {
                            lite = shared;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        Err(_) => {
                            return Err(DbErr::Custom(
                                "SQLite was not closed: another part of the server still holds it"
                                    .into(),
                            ));
                        }
                    }
                }
            }
            Backend::Postgres(pg) => pg.conn.close().await,
        }
    }
}

/// Why a database opened read-only (a rehearsal's) takes no write.
pub(crate) fn read_only_refusal() -> DbErr {
    DbErr::Custom("the database is open read-only (hookgate try writes nothing)".into())
}

/// Creates the SQLite file readable and writable by the server's user only (0600) if it does
/// not exist: it holds session hashes and user data. SQLite gives its `-wal` and `-shm` files the
/// database file's mode.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" || path.exists() {
        return Ok(());
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

/// Deletes what is past keeping, now and then every `every`: sessions that expired or were
/// revoked, sign-in events older than `retention`, completed OIDC flows past their expiry.
pub async fn prune_forever(db: Db, retention: Duration, every: Duration) {
    loop {
        let now = store::now();
        let keep_from =
            now - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(90));
        match db.write(move |tx| tx.prune(now, keep_from)).await {
            Ok((0, 0)) => {}
            Ok((sessions, events)) => {
                tracing::info!(sessions, events, "pruned expired sessions and old sign-in events");
            }
            Err(error) => tracing::warn!("pruning old rows failed (will retry): {error}"),
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_a_reader_remembers_is_bounded() {
        let mut map = std::collections::HashMap::new();
        for n in 0..REMEMBERED {
            keep_bounded(&mut map, n.to_string().as_str(), n);
        }
        assert_eq!(map.len(), REMEMBERED);
        assert_eq!(map.get("0"), Some(&0));
        keep_bounded(&mut map, "again", 0);
        assert_eq!(map.len(), 1, "a full map starts again");
        assert_eq!(map.get("again"), Some(&0));
    }

    #[test]
    fn urls_name_their_database() {
        assert_eq!(
            database_kind("sqlite:///var/lib/hookgate.db?mode=rwc"),
            Ok(DatabaseKind::Sqlite("/var/lib/hookgate.db".into()))
        );
        assert_eq!(database_kind("sqlite://data.db"), Ok(DatabaseKind::Sqlite("data.db".into())));
        assert_eq!(database_kind("postgresql://u:p@127.0.0.1/db"), Ok(DatabaseKind::Postgres));
        assert_eq!(database_kind("postgres://u@h/db"), Ok(DatabaseKind::Postgres));
        let err = database_kind("mysql://h/db").unwrap_err();
        assert!(err.to_string().contains("\"mysql\""), "{err}");
    }

    #[tokio::test]
    async fn sqlite_in_memory_is_refused_with_the_reason() {
        // The sign-in's readers and the writer open the file themselves: a memory database
        // would be a different, empty one on each connection.
        let error = Db::connect("sqlite::memory:").await.unwrap_err().to_string();
        assert!(error.contains("not in memory"), "{error}");
    }
}

/// What the tests of this crate reach behind the port for.
#[cfg(test)]
impl Db {
    /// Runs `sql` (statements without results) in a write transaction.
    pub(crate) async fn execute_for_test(&self, sql: &str) -> Result<(), DbErr> {
        match self.backend() {
            Backend::Sqlite(lite) => lite.write(|conn| {
                use sea_orm_sync::ConnectionTrait as _;
                let done = conn.execute_unprepared(sql).map_err(lite::from_sync);
                done.map(|_| ((), sqlite::Wrote::Accounts))
            }),
            Backend::Postgres(pg) => pg.conn.execute_unprepared(sql).await.map(|_| ()),
        }
    }

    /// The first column of the first row `sql` returns, as a number.
    pub(crate) async fn count_for_test(&self, sql: &str) -> i64 {
        match self.backend() {
            Backend::Sqlite(lite) => lite.with_held_for_test(|conn| {
                use sea_orm_sync::ConnectionTrait as _;
                let statement =
                    sea_orm_sync::Statement::from_string(sea_orm_sync::DbBackend::Sqlite, sql);
                let row = conn.query_one_raw(statement).unwrap().unwrap();
                row.try_get_by_index(0).unwrap()
            }),
            Backend::Postgres(pg) => {
                let statement = sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, sql);
                let row = pg.conn.query_one_raw(statement).await.unwrap().unwrap();
                row.try_get_by_index(0).unwrap()
            }
        }
    }

    /// SQLite's backend.
    pub(crate) fn sqlite_for_test(&self) -> &sqlite::Lite {
        match self.backend() {
            Backend::Sqlite(lite) => lite,
            Backend::Postgres(_) => panic!("a SQLite database was expected"),
        }
    }

    /// PostgreSQL's session cache.
    pub(crate) fn session_cache_for_test(&mut self) -> &mut Option<Arc<sessions::SessionCache>> {
        match &mut self.backend {
            Backend::Postgres(pg) => &mut pg.sessions,
            Backend::Sqlite(_) => panic!("a PostgreSQL database was expected"),
        }
    }
}

/// The most entries of one kind a thread remembers (its sign-in snapshots, its users' teams:
/// [`sessions`]).
const REMEMBERED: usize = 256;

/// Remembers `value` for `key` in `map`, which holds at most [`REMEMBERED`] entries: a full map
/// starts again.
pub(crate) fn keep_bounded<K, Q, V>(map: &mut std::collections::HashMap<K, V>, key: &Q, value: V)
where
    K: std::hash::Hash + Eq + std::borrow::Borrow<Q>,
    Q: ToOwned<Owned = K> + ?Sized,
{
    if map.len() >= REMEMBERED {
        map.clear();
    }
    map.insert(key.to_owned(), value);
}

/// `bytes` random bytes as hexadecimal digits.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut random = vec![0u8; bytes];
    getrandom::fill(&mut random).expect("the operating system's random source failed");
    random.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// What the tests of this crate share.
#[cfg(test)]
mod tests_support {
    /// The PostgreSQL server the test command started (`HOOKGATE_TEST_POSTGRES_URL`, an admin
    /// URL). Missing, it fails the test, unless the run opts out with
    /// `HOOKGATE_TEST_SKIP_POSTGRES=1` (then `None`, and the PostgreSQL half is skipped, saying
    /// so).
    pub(crate) fn postgres_admin_url() -> Option<String> {
        match std::env::var("HOOKGATE_TEST_POSTGRES_URL") {
            Ok(url) if !url.is_empty() => Some(url),
            _ if std::env::var("HOOKGATE_TEST_SKIP_POSTGRES").as_deref() == Ok("1") => {
                eprintln!("--- PostgreSQL skipped (HOOKGATE_TEST_SKIP_POSTGRES=1)");
                None
            }
            _ => panic!(
                "HOOKGATE_TEST_POSTGRES_URL is not set: run the tests with scripts/test.sh, which \
                 starts PostgreSQL, or set HOOKGATE_TEST_SKIP_POSTGRES=1 to run without it"
            ),
        }
    }

    /// A directory of its own under the system's temporary one, removed with what is in it on
    /// drop (a failing test's too). A SQLite database in it is `hookgate.db`
    /// ([`Scratch::sqlite_url`]).
    pub(crate) struct Scratch(std::path::PathBuf);

    impl Scratch {
        /// A fresh, empty one, named after `what`.
        pub(crate) fn dir(what: &str) -> Scratch {
            let dir = std::env::temp_dir().join(format!("hookgate-{what}-test-{}", random_hex()));
            std::fs::create_dir(&dir).unwrap();
            Scratch(dir)
        }

        /// A fresh one, and the database opened in it.
        pub(crate) async fn new(what: &str) -> (Scratch, crate::Db) {
            let scratch = Scratch::dir(what);
            let db = crate::Db::connect(&scratch.sqlite_url()).await.unwrap();
            (scratch, db)
        }

        /// The directory.
        pub(crate) fn path(&self) -> &std::path::Path {
            &self.0
        }

        /// The URL of `hookgate.db` in it.
        pub(crate) fn sqlite_url(&self) -> String {
            format!("sqlite://{}", self.0.join("hookgate.db").display())
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The SQL that writes user `user_id` with `role` and a live session (until 2099, signed in
    /// by header, with the user's role) for each key hash in `hashes`: a user written behind the
    /// port's back, on either backend.
    pub(crate) fn user_with_sessions(user_id: &str, role: &str, hashes: &[&str]) -> String {
        let at = "'2026-12-01T00:00:00Z'";
        let mut sql = format!(
            "INSERT INTO users (user_id, user_role, models, spend, metadata, created_at, \
             updated_at) VALUES ('{user_id}', '{role}', '[]', 0, '{{}}', {at}, {at});"
        );
        for hash in hashes {
            sql += &format!(
                " INSERT INTO sessions (token_hash, user_id, user_role, login_method, models, \
                 created_at, expires_at) VALUES ('{hash}', '{user_id}', '{role}', 'header', \
                 '[]', {at}, '2099-01-01T00:00:00Z');"
            );
        }
        sql
    }

    /// 16 random hexadecimal digits: names no two test runs share.
    pub(crate) fn random_hex() -> String {
        crate::random_hex(8)
    }

    /// A database of its own on the test command's PostgreSQL; [`TestDatabase::drop_database`]
    /// drops it.
    pub(crate) struct TestDatabase {
        admin: sea_orm::DatabaseConnection,
        name: String,
        /// Where it is.
        pub(crate) url: String,
    }

    impl TestDatabase {
        /// A fresh database named `<prefix>_<random>`; `None` when the run opted out of
        /// PostgreSQL ([`postgres_admin_url`]).
        pub(crate) async fn create(prefix: &str) -> Option<TestDatabase> {
            use sea_orm::ConnectionTrait;
            let admin_url = postgres_admin_url()?;
            let name = format!("{prefix}_{}", random_hex());
            let admin = sea_orm::Database::connect(admin_url.as_str()).await.unwrap();
            admin.execute_unprepared(&format!("CREATE DATABASE {name}")).await.unwrap();
            let (base, _) = admin_url.rsplit_once('/').unwrap();
            let url = format!("{base}/{name}");
            Some(TestDatabase { admin, name, url })
        }

        /// Drops it, whoever is still connected.
        pub(crate) async fn drop_database(self) {
            use sea_orm::ConnectionTrait;
            let drop = format!("DROP DATABASE {} WITH (FORCE)", self.name);
            self.admin.execute_unprepared(&drop).await.unwrap();
            self.admin.close().await.unwrap();
        }
    }

    /// Waits until `cache`'s listener is up; fails the test after 5 s.
    pub(crate) async fn until_live(cache: &crate::sessions::SessionCache) {
        for _ in 0..500 {
            if cache.is_live() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the listener did not come up within 5 s");
    }
}

#[cfg(test)]
mod twin_tests;
