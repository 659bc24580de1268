//! hookgate's storage: users, teams, sessions and sign-in events, on SQLite by default and on
//! PostgreSQL when several replicas share one database. Only this crate knows sea-orm; the
//! server sees the port ([`Db`]'s methods, `port.rs`), the rows (`entity`) and the core's types.
//!
//! Writes that belong together run in one transaction ([`Db::write`]). On SQLite, write
//! transactions start `IMMEDIATE` and are also serialised in-process, so that concurrent
//! sign-ins queue instead of failing with "database is locked".

pub mod entity;
mod migration;
mod port;
mod read_only;
mod sessions;
mod store;
mod types;
mod sync;
mod writer;

pub use self::{
    port::Tx,
    read_only::{ReadOnlyError, SchemaMismatch},
    store::{json_list, list_of, now},
    types::{NewTeam, NewUser, Recorded, ScimUser, UserEdit, UserFilter, UserStanding},
    writer::{Applied, Job, Timed, Writer},
};

use std::{path::PathBuf, sync::Arc, time::Duration};

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

pub use sea_orm::DbErr as Error;

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

/// A connection pool and the write discipline that goes with it.
#[derive(Debug, Clone)]
pub struct Db {
    conn: DatabaseConnection,
    write_lock: Option<Arc<tokio::sync::Mutex<()>>>,
    /// SQLite: the file, and its readers on the calling thread (see [`sync`]).
    sqlite: Option<(PathBuf, Arc<sync::Readers>)>,
    /// Opened for a rehearsal ([`Db::open_read_only`], [`Db::scratch`]): [`Db::write`] refuses.
    read_only: bool,
    /// PostgreSQL: the session checks remembered while this replica hears every change (see
    /// [`sessions`]).
    sessions: Option<Arc<sessions::SessionCache>>,
}

/// A write transaction; dropped without [`WriteTxn::commit`], it rolls back.
pub(crate) struct WriteTxn {
    txn: DatabaseTransaction,
    _guard: Option<tokio::sync::OwnedMutexGuard<()>>,
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
    /// Connects and runs the migrations. SQLite files are created if missing and use WAL.
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
        let mut sqlite = None;
        let write_lock = match kind {
            DatabaseKind::Sqlite(path) => {
                if path.as_os_str().is_empty() || path.as_os_str() == ":memory:" {
                    return Err(DbErr::Custom(format!(
                        "{url}: hookgate keeps SQLite in a file (sqlite://<path>), not in memory"
                    )));
                }
                sqlite = Some((path.clone(), Arc::new(sync::Readers::new(&path))));
                create_private(&path).map_err(|error| {
                    DbErr::Custom(format!("cannot create {}: {error}", path.display()))
                })?;
                options.max_connections(8).min_connections(1).map_sqlx_sqlite_opts(|opts| {
                    opts.create_if_missing(true)
                        .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                        .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                        .busy_timeout(Duration::from_secs(10))
                        .foreign_keys(true)
                        .statement_cache_capacity(STATEMENT_CACHE)
                });
                Some(Arc::new(tokio::sync::Mutex::new(())))
            }
            DatabaseKind::Postgres => {
                options
                    .max_connections(16)
                    .min_connections(1)
                    .map_sqlx_postgres_opts(|opts| opts.statement_cache_capacity(STATEMENT_CACHE));
                None
            }
        };
        let conn = Database::connect(options).await?;
        if write_lock.is_none() {
            // Replicas sharing PostgreSQL may start together: one migrates while the others wait
            // on a transaction-scoped advisory lock, then find nothing pending.
            let txn = conn.begin().await?;
            txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
                .await?;
            migration::Migrator::up(&txn, None).await?;
            txn.commit().await?;
        } else {
            migration::Migrator::up(&conn, None).await?;
        }
        let sessions = write_lock.is_none().then(|| {
            let cache = sessions::SessionCache::new();
            sessions::listen(&cache, conn.get_postgres_connection_pool().clone());
            cache
        });
        Ok(Db { conn, write_lock, sqlite, read_only: false, sessions })
    }

    /// The pool, for reads.
    pub(crate) fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// What one sign-in needs to decide ([`store::snapshot`]), read from a blocking thread: on
    /// SQLite on this thread, without sqlx's hand-offs; on PostgreSQL through `runtime`.
    pub fn snapshot_blocking(
        &self,
        runtime: &tokio::runtime::Handle,
        keys: &hookgate_core::signin::Keys,
    ) -> Result<hookgate_core::signin::Snapshot, DbErr> {
        if let Some((_, readers)) = &self.sqlite
            && let Some(read) = readers.snapshot(keys)
        {
            return read;
        }
        runtime.block_on(store::snapshot(&self.conn, keys))
    }

    /// The live session with this key hash and its user ([`store::live_session_user`]). On
    /// SQLite it reads on the calling thread's own connection, without sqlx's two thread
    /// switches per statement: a primary-key lookup in WAL mode, which never waits for the
    /// writer, costs microseconds, less than handing it to another thread would. On PostgreSQL
    /// it is remembered while this replica hears every change ([`sessions`]).
    pub async fn live_session_user(
        &self,
        token_hash: &str,
    ) -> Result<Option<(entity::session::Model, entity::user::Model)>, DbErr> {
        if let Some((_, readers)) = &self.sqlite
            && let Some(read) = readers.live_session_user(token_hash)
        {
            return read;
        }
        let Some(cache) = &self.sessions else {
            return store::live_session_user(&self.conn, token_hash).await;
        };
        let ticket = match cache.lookup(token_hash, store::now()) {
            Ok(found) => return Ok(Some(found)),
            Err(ticket) => ticket,
        };
        let found = store::live_session_user(&self.conn, token_hash).await?;
        if let (Some(ticket), Some(found)) = (ticket, &found) {
            cache.keep(ticket, token_hash, found);
        }
        Ok(found)
    }

    /// Makes this process forget the session checks of `user_id` at once: called after a
    /// committed write that changed or deleted the user or revoked any of its sessions, before
    /// its caller is answered. (Other replicas hear of it through the schema's `NOTIFY`.)
    pub fn forget_user(&self, user_id: &str) {
        if let Some(cache) = &self.sessions {
            cache.forget(sessions::Forget::User(user_id.to_owned()));
        }
    }

    /// Revokes a session ([`store::revoke_session`]); returns whether it was live.
    pub async fn revoke_session(&self, token_hash: &str) -> Result<bool, DbErr> {
        let revoked = store::revoke_session(&self.conn, token_hash).await?;
        if let Some(cache) = &self.sessions {
            cache.forget(sessions::Forget::Session(token_hash.to_owned()));
        }
        Ok(revoked)
    }

    /// Revokes every live session of a user ([`store::revoke_user_sessions`]); returns how many
    /// there were.
    pub async fn revoke_user_sessions(&self, user_id: &str) -> Result<u64, DbErr> {
        let revoked = store::revoke_user_sessions(&self.conn, user_id).await?;
        self.forget_user(user_id);
        Ok(revoked)
    }

    /// The teams a user is in ([`store::teams_of_user_with_info`]); on SQLite read on the
    /// calling thread, as [`Db::live_session_user`] is.
    pub async fn teams_of_user(&self, user_id: &str) -> Result<Vec<entity::team::Model>, DbErr> {
        if let Some((_, readers)) = &self.sqlite
            && let Some(read) = readers.teams_of_user(user_id)
        {
            return read;
        }
        store::teams_of_user_with_info(&self.conn, user_id).await
    }

    /// The SQLite file, if this is SQLite.
    fn sqlite_path(&self) -> Option<&std::path::Path> {
        self.sqlite.as_ref().map(|(path, _)| path.as_path())
    }

    /// Which backend this is.
    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    /// Refuses when the database was opened read-only (a rehearsal).
    fn refuse_if_read_only(&self) -> Result<(), DbErr> {
        if self.read_only {
            return Err(DbErr::Custom(
                "the database is open read-only (hookgate try writes nothing)".into(),
            ));
        }
        Ok(())
    }

    /// Starts a write transaction.
    pub(crate) async fn begin_write(&self) -> Result<WriteTxn, DbErr> {
        self.refuse_if_read_only()?;
        let guard = match &self.write_lock {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        let txn = self
            .conn
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await?;
        Ok(WriteTxn { txn, _guard: guard })
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.conn.execute_unprepared("SELECT 1").await.map(|_| ())
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(self) -> Result<(), DbErr> {
        self.conn.close().await
    }
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
        match store::prune(db.conn(), now, keep_from).await {
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

    /// 16 random hexadecimal digits: names no two test runs share.
    pub(crate) fn random_hex() -> String {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).expect("the operating system's random source");
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}
