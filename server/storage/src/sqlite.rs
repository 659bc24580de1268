//! SQLite's backend: every statement on sea-orm-sync over rusqlite, with the queries of
//! [`crate::lite`] (the twin of `store`). One driver, so one text for timestamps: rusqlite's.
//!
//! Reads run on the calling thread, on one of a fixed set of read-only connections opened with
//! the database: sqlx ran each SQLite connection on a thread of its own and handed every
//! statement to it through a channel, two thread switches per statement, which profiles showed
//! to be most of a sign-in's cost. In WAL mode readers never wait for the writer, so a read
//! holds its connection for a few microseconds of CPU. Writes run on one read-write connection,
//! behind one lock: the sign-ins' writer thread and every other write ([`crate::Db::write`])
//! take it in turn, so concurrent writes queue in the process instead of failing with
//! "database is locked".

use std::{
    cell::Cell,
    path::Path,
    sync::{
        Mutex, MutexGuard, PoisonError, TryLockError,
        atomic::{AtomicUsize, Ordering},
    },
};

use sea_orm::DbErr;
use sea_orm_sync::{self as sync, ConnectionTrait as _};

mod checkpoint;
mod remember;

use self::remember::Remembered;
use crate::accounts::Accounts;

use crate::SignInRead;
use crate::{
    entity::{session, team, user},
    lite::{self, Neutral, from_sync},
};
use hookgate_core::signin::Keys;

/// Each read connection's page cache, in KiB (SQLite's default is 2 MiB): the readers must not
/// make the server's memory grow with the database; the operating system caches the file too.
/// (The load test, c=64 over 10,000 users: RSS 48 MB with 128 KiB, 53 MB with 512 KiB.)
const READER_CACHE_KIB: u32 = 128;

/// How many read connections a database served by this process keeps: four per core, at least
/// 8 and at most 64. A read holds one for microseconds, so a core rarely needs more than one;
/// the others cover threads preempted while holding theirs. Fixed when the database is opened
/// (so file descriptors and page caches never grow with the threads that read: the hooks'
/// blocking pool alone is `hook_concurrency` + 8 threads, and tokio retires and replaces them).
fn reader_count() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    (cores * 4).clamp(8, 64)
}

/// A connection with no lock shared on the hot path: each thread has a home reader (given out
/// in turn on its first read) and tries it first; when another thread holds it, the thread
/// tries the next ones, and waits for its own only when every reader is busy.
static NEXT_HOME: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's home reader, as an index taken modulo the number of readers.
    static HOME: Cell<Option<usize>> = const { Cell::new(None) };
}

fn home() -> usize {
    HOME.with(|home| match home.get() {
        Some(index) => index,
        None => {
            let index = NEXT_HOME.fetch_add(1, Ordering::Relaxed);
            home.set(Some(index));
            index
        }
    })
}

/// A read connection (opened again after a read that failed) and what its reads remember.
#[derive(Default)]
struct Reader {
    conn: Option<Conn>,
    remembered: Remembered,
}

/// A sea-orm-sync connection, moved between threads behind a lock.
pub(crate) struct Conn(sync::DatabaseConnection);

// SAFETY: sea-orm-sync's connection is not `Send` only because of its optional metric callback
// (an `Arc<dyn Fn>` without `Send`), which hookgate never sets; what it wraps, rusqlite's
// connection behind an `Arc<Mutex<_>>`, is `Send`. A `Conn` is used by one thread at a time:
// the one holding the lock it is kept behind.
unsafe impl Send for Conn {}

/// One reader on a cache line of its own, so that threads reading on neighbouring readers do not
/// slow each other down.
#[repr(align(128))]
struct Slot(Mutex<Reader>);

/// `path` as a SQLite URI filename (`file:…`, with `%`, `?` and `#` escaped), with `params`.
pub(crate) fn file_uri(path: &Path, params: &str) -> String {
    let mut uri = String::from("sqlite:file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push('?');
    uri.push_str(params);
    uri
}

/// One SQLite database: its readers and, unless it was opened read-only, its write connection.
pub(crate) struct Lite {
    /// The URI each read connection opens (read-only).
    readers_uri: String,
    readers: Box<[Slot]>,
    /// The URI the write connection opens; `None`: read-only.
    writer_uri: Option<String>,
    /// The write connection (opened on the first write, and again after one that could not
    /// roll back), behind the lock every write takes, so that writes queue here rather than in
    /// the file.
    writer: Mutex<Option<Writing>>,
    /// What the sign-ins' remembered snapshots are checked against.
    accounts: Accounts,
    /// The WAL checkpoint's thread (none when read-only).
    checkpointer: Option<checkpoint::Checkpointer>,
    /// An in-memory database ([`crate::Db::scratch`]): the connection that keeps it alive.
    _keep_alive: Option<sea_orm::DatabaseConnection>,
}

impl std::fmt::Debug for Lite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lite")
            .field("readers", &self.readers_uri)
            .field("count", &self.readers.len())
            .finish_non_exhaustive()
    }
}

impl Lite {
    /// The database in the file at `path` (which exists: it was created and migrated), read and
    /// written; its read connections are opened now.
    pub(crate) fn file(path: &Path) -> Result<Lite, DbErr> {
        let lite = Lite::new(file_uri(path, "mode=ro"), reader_count(), None);
        lite.open_readers()?;
        let writer_uri = file_uri(path, "mode=rw");
        let checkpointer = checkpoint::Checkpointer::start(&writer_uri)?;
        Ok(Lite { writer_uri: Some(writer_uri), checkpointer: Some(checkpointer), ..lite })
    }

    /// A database opened read-only at `uri` (a rehearsal's: one thread reads), kept alive by
    /// `keep_alive` when it is in memory; its read connections are opened now.
    pub(crate) fn read_only(
        uri: String,
        keep_alive: Option<sea_orm::DatabaseConnection>,
    ) -> Result<Lite, DbErr> {
        let lite = Lite::new(uri, 2, keep_alive);
        lite.open_readers()?;
        Ok(lite)
    }

    fn new(
        readers_uri: String,
        count: usize,
        keep_alive: Option<sea_orm::DatabaseConnection>,
    ) -> Lite {
        Lite {
            readers_uri,
            readers: (0..count).map(|_| Slot(Mutex::default())).collect(),
            writer_uri: None,
            writer: Mutex::new(None),
            accounts: Accounts::default(),
            checkpointer: None,
            _keep_alive: keep_alive,
        }
    }

    /// Opens every read connection, so that none is opened while the server serves.
    fn open_readers(&self) -> Result<(), DbErr> {
        for slot in &self.readers {
            let mut reader = slot.0.lock().unwrap_or_else(PoisonError::into_inner);
            reader.conn = Some(self.open_reader()?);
        }
        Ok(())
    }

    fn open_reader(&self) -> Result<Conn, DbErr> {
        let conn = sync::Database::connect(self.readers_uri.as_str()).map_err(from_sync)?;
        // A reader waits (rather than fails) in the rare moments WAL needs a lock: recovery
        // after a crash, or the last connection's checkpoint.
        conn.execute_unprepared("PRAGMA busy_timeout = 10000").map_err(from_sync)?;
        conn.execute_unprepared(&format!("PRAGMA cache_size = -{READER_CACHE_KIB}"))
            .map_err(from_sync)?;
        Ok(Conn(conn))
    }

    /// A reader for this thread: its home reader if free, else the first free one after it,
    /// else (every reader busy) its home reader once the thread holding it is done.
    fn reader(&self) -> MutexGuard<'_, Reader> {
        let count = self.readers.len();
        let home = home() % count;
        for offset in 0..count {
            match self.readers[(home + offset) % count].0.try_lock() {
                Ok(reader) => return reader,
                // A read that panicked left the reader as it was: its connection is still
                // good, or `None`.
                Err(TryLockError::Poisoned(poisoned)) => return poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => {}
            }
        }
        self.readers[home].0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `read` on a reader's connection (opened again first if the last read on it failed).
    fn with_reader<T>(
        &self,
        read: impl FnOnce(&sync::DatabaseConnection, &mut Remembered) -> Result<T, DbErr>,
    ) -> Result<T, DbErr> {
        let mut reader = self.reader();
        let Reader { conn, remembered } = &mut *reader;
        let held = match conn {
            Some(conn) => conn,
            None => conn.insert(self.open_reader()?),
        };
        let result = read(&held.0, remembered);
        // A connection whose statement failed is not kept: the next read opens a new one.
        if result.is_err() {
            *conn = None;
            *remembered = Remembered::default();
        }
        result
    }

    /// Runs `read` on a read connection (tests).
    #[cfg(test)]
    pub(crate) fn with_held_for_test<T>(
        &self,
        read: impl FnOnce(&sync::DatabaseConnection) -> T,
    ) -> T {
        self.with_reader(|conn, _| Ok(read(conn))).expect("a read connection")
    }

    /// Runs a twin query on a read connection; its rows in the port's flavour.
    pub(crate) fn read<T: Neutral>(
        &self,
        read: impl FnOnce(&sync::DatabaseConnection) -> Result<T, sync::DbErr>,
    ) -> Result<T::Out, DbErr> {
        self.with_reader(|conn, _| read(conn).map(Neutral::neutral).map_err(from_sync))
    }

    /// The live session with this key hash and its user, remembered while the database is
    /// unchanged.
    pub(crate) fn live_session_user(
        &self,
        token_hash: &str,
    ) -> Result<Option<(session::Model, user::Model)>, DbErr> {
        self.with_reader(|conn, remembered| {
            let remembered = remembered.at(data_version(conn)?);
            if let Some((session, user)) = remembered.sessions.get(token_hash)
                && session.expires_at > crate::store::now()
            {
                return Ok(Some((session.clone(), user.clone())));
            }
            let found = lite::store::live_session_user(conn, token_hash)
                .map(Neutral::neutral)
                .map_err(from_sync)?;
            if let Some(found) = &found {
                crate::keep_bounded(&mut remembered.sessions, token_hash, found.clone());
            }
            Ok(found)
        })
    }

    /// The teams a user is in, remembered while the database is unchanged.
    pub(crate) fn teams_of_user(&self, user_id: &str) -> Result<Vec<team::Model>, DbErr> {
        self.with_reader(|conn, remembered| {
            let remembered = remembered.at(data_version(conn)?);
            if let Some(teams) = remembered.teams.get(user_id) {
                return Ok(teams.clone());
            }
            let teams = lite::store::teams_of_user_with_info(conn, user_id)
                .map(Neutral::neutral)
                .map_err(from_sync)?;
            crate::keep_bounded(&mut remembered.teams, user_id, teams.clone());
            Ok(teams)
        })
    }

    /// The migrations recorded in the database, in order; none when it has no migration
    /// table (read only: nothing is created).
    pub(crate) fn applied_migrations(&self) -> Result<Vec<String>, DbErr> {
        self.with_reader(|conn, _| {
            let query = |sql: &str| {
                let statement = sync::Statement::from_string(sync::DbBackend::Sqlite, sql);
                conn.query_all_raw(statement).map_err(from_sync)
            };
            let table = "SELECT name FROM sqlite_master WHERE type = 'table' AND name = \
                         'seaql_migrations'";
            if query(table)?.is_empty() {
                return Ok(Vec::new());
            }
            query("SELECT version FROM seaql_migrations ORDER BY version")?
                .iter()
                .map(|row| row.try_get("", "version").map_err(from_sync))
                .collect()
        })
    }

    /// Runs `work` in an `IMMEDIATE` transaction on the write connection, holding the write
    /// lock (blocking: call it from a blocking thread): committed if it returns `Ok`, rolled
    /// back otherwise. `work` tells whether it may have changed an account, a team or a
    /// membership ([`Wrote`]); if so, the [`Accounts`] generation moves on after the commit,
    /// before this returns. Before `work` runs, a commit by another process since the last
    /// write is looked for (and moves the generation on: [`remember`]).
    pub(crate) fn write<T, E: From<DbErr>>(
        &self,
        work: impl FnOnce(&sync::DatabaseConnection) -> Result<(T, Wrote), E>,
    ) -> Result<T, E> {
        let Some(uri) = &self.writer_uri else { return Err(crate::read_only_refusal().into()) };
        let mut writer = self.hold();
        // A panic in `work` leaves the connection out (dropped, and with it the transaction,
        // rolled back).
        let Writing { conn, mut seen } = match writer.take() {
            Some(writing) => writing,
            None => Writing { conn: open_writer(uri)?, seen: None },
        };
        conn.0.execute_unprepared("BEGIN IMMEDIATE").map_err(from_sync)?;
        let result = self.look_outside(&conn.0, &mut seen).map_err(E::from);
        let result = result.and_then(|()| work(&conn.0)).and_then(|(value, wrote)| {
            conn.0.execute_unprepared("COMMIT").map_err(from_sync)?;
            if wrote == Wrote::Accounts {
                self.accounts.changed();
            }
            if let Some(checkpointer) = &self.checkpointer {
                checkpointer.committed();
            }
            Ok(value)
        });
        // A connection that cannot roll back is dropped; the next write opens a new one.
        if result.is_ok() || conn.0.execute_unprepared("ROLLBACK").is_ok() {
            *writer = Some(Writing { conn, seen });
        }
        result
    }

    /// In the write transaction: whether another process committed since the write
    /// connection's last transaction (its `data_version` moved; a new connection cannot know,
    /// so it counts as one), and if so the generation moves on.
    fn look_outside(
        &self,
        conn: &sync::DatabaseConnection,
        seen: &mut Option<i64>,
    ) -> Result<(), DbErr> {
        let version = data_version(conn)?;
        if *seen != Some(version) {
            self.accounts.changed_outside();
            *seen = Some(version);
        }
        Ok(())
    }

    /// The write lock (blocking), and with it the write connection.
    pub(crate) fn hold(&self) -> MutexGuard<'_, Option<Writing>> {
        // A write that panicked left no transaction open (see `write`): go on.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the sign-ins' remembered snapshots are checked against.
    pub(crate) fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// What one sign-in needs to decide: remembered from this reader's last read of the same
    /// keys if no account, team or membership changed since ([`remember`]), marked with the
    /// generation it is good for; else read now (and remembered). Never remembered when the
    /// database is open read-only (this process sees no write, so it could not know).
    pub(crate) fn snapshot(&self, keys: &Keys) -> Result<SignInRead, DbErr> {
        let remembers = self.writer_uri.is_some();
        let generation = self.accounts.now();
        self.with_reader(|conn, remembered| {
            if remembers && let Some(snapshot) = remembered.snapshot(keys, generation) {
                let remembered = Some(crate::Remembered(generation));
                return Ok(SignInRead { snapshot: snapshot.clone(), remembered });
            }
            let snapshot = read_together(conn, |conn| lite::store::snapshot(conn, keys))?;
            // One that found no account is a new user's: its creation moves the generation on
            // before the same keys could ask again.
            if remembers && !snapshot.accounts.is_empty() {
                remembered.keep_snapshot(keys, generation, snapshot.clone());
            }
            Ok(SignInRead::read(snapshot))
        })
    }
}

/// The write connection, and the `data_version` it last saw (none: not looked at yet).
pub(crate) struct Writing {
    conn: Conn,
    seen: Option<i64>,
}

/// Whether a write may have changed what the sign-ins' snapshots hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wrote {
    /// An account, a team or a membership (or it cannot tell).
    Accounts,
    /// Sessions, events or completed flows only.
    Other,
}

/// Runs `read`'s statements in one read transaction: they see one state of the database, and
/// take the file's read locks once (three statements on their own took them three times: 12
/// `fcntl` calls). A failed read's connection is dropped with its transaction (`with_reader`).
fn read_together<T>(
    conn: &sync::DatabaseConnection,
    read: impl FnOnce(&sync::DatabaseConnection) -> Result<T, sync::DbErr>,
) -> Result<T, DbErr> {
    conn.execute_unprepared("BEGIN").map_err(from_sync)?;
    let value = read(conn).map_err(from_sync)?;
    conn.execute_unprepared("COMMIT").map_err(from_sync)?;
    Ok(value)
}

/// SQLite's count of changes other connections committed to the file, as this connection sees it.
fn data_version(conn: &sync::DatabaseConnection) -> Result<i64, DbErr> {
    let statement = sync::Statement::from_string(sync::DbBackend::Sqlite, "PRAGMA data_version");
    let row = conn.query_one_raw(statement).map_err(from_sync)?;
    let row = row.ok_or_else(|| DbErr::Custom("PRAGMA data_version returned no row".into()))?;
    row.try_get("", "data_version").map_err(from_sync)
}

/// A write connection (the writer's, the checkpointer's): read-write, waiting up to ten seconds
/// for the file's lock (another process's writer), checkpointing only past
/// [`checkpoint::BACKSTOP_PAGES`] (the checkpointer does it sooner).
fn open_writer(uri: &str) -> Result<Conn, DbErr> {
    let conn = sync::Database::connect(uri).map_err(from_sync)?;
    let backstop = format!("wal_autocheckpoint = {}", checkpoint::BACKSTOP_PAGES);
    for pragma in [
        backstop.as_str(),
        "busy_timeout = 10000",
        "synchronous = NORMAL",
        "foreign_keys = ON",
        // The statement journal of a multi-row insert in the sign-ins' transaction, and any
        // temporary table, in memory: in a file (the default) they were a `pwrite` per page,
        // 6.5% of a sign-in's CPU.
        "temp_store = MEMORY",
    ] {
        conn.execute_unprepared(&format!("PRAGMA {pragma}")).map_err(from_sync)?;
    }
    Ok(Conn(conn))
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use sea_orm_sync::ConnectionTrait as _;

    use super::{Lite, from_sync};

    /// A database in a directory of its own (removed on drop).
    struct Scratch(PathBuf);

    impl Scratch {
        async fn new() -> (Scratch, crate::Db) {
            let dir = std::env::temp_dir()
                .join(format!("hookgate-readers-test-{}", crate::tests_support::random_hex()));
            std::fs::create_dir(&dir).unwrap();
            let url = format!("sqlite://{}", dir.join("hookgate.db").display());
            let db = crate::Db::connect(&url).await.unwrap();
            (Scratch(dir), db)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn count_users(lite: &Lite) -> i64 {
        lite.with_reader(|conn, _| {
            let statement = sea_orm_sync::Statement::from_string(
                sea_orm_sync::DbBackend::Sqlite,
                "SELECT count(*) FROM users",
            );
            let row = conn.query_one_raw(statement).map_err(from_sync)?.unwrap();
            row.try_get_by_index::<i64>(0).map_err(from_sync)
        })
        .unwrap()
    }

    /// The file descriptors this process has open on the files in `dir`.
    #[cfg(target_os = "linux")]
    fn descriptors_in(dir: &Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
            .filter(|target| target.starts_with(dir))
            .count()
    }

    /// Every read connection is opened with the database: reads from many more threads than
    /// there are readers, and threads that end, open none (the load test's file descriptors
    /// stay as they were after its warm-up).
    #[cfg(target_os = "linux")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_from_any_number_of_threads_open_no_connection() {
        let (scratch, db) = Scratch::new().await;
        let lite = db.sqlite_for_test();
        assert!(lite.readers.iter().all(|slot| slot.0.lock().unwrap().conn.is_some()));
        let before = descriptors_in(&scratch.0);
        assert!(before >= lite.readers.len(), "{before} descriptors for {}", lite.readers.len());
        for _ in 0..4 {
            std::thread::scope(|scope| {
                for _ in 0..lite.readers.len() * 4 {
                    scope.spawn(|| assert_eq!(count_users(lite), 0));
                }
            });
        }
        assert_eq!(descriptors_in(&scratch.0), before);
    }

    /// Commits reach the database file through the checkpointer's thread within moments, with
    /// the WAL far below the writer's own checkpoint (the backstop).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_checkpointer_moves_commits_into_the_database_file() {
        let (scratch, db) = Scratch::new().await;
        let file = scratch.0.join("hookgate.db");
        let size = || std::fs::metadata(&file).unwrap().len();
        let before = size();
        // About 50 pages of rows: far below the backstop's 10,000.
        db.execute_for_test(
            "CREATE TABLE filler (x TEXT); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) \
             INSERT INTO filler SELECT hex(randomblob(500)) FROM n",
        )
        .await
        .unwrap();
        // Generous: a busy machine may be slow to run the thread and its fsync.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while size() <= before + 100_000 && std::time::Instant::now() < deadline {
            tokio::time::sleep(super::checkpoint::INTERVAL / 4).await;
        }
        assert!(size() > before + 100_000, "the file is still {} bytes ({before} before)", size());
    }

    /// A thread whose home reader is busy reads on another, without waiting.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_reader_is_passed_over() {
        let (_scratch, db) = Scratch::new().await;
        let lite = db.sqlite_for_test();
        let home = super::home() % lite.readers.len();
        let held = lite.readers[home].0.lock().unwrap();
        assert_eq!(count_users(lite), 0, "read while the home reader is held");
        drop(held);
    }

    /// A reader whose read failed drops its connection and forgets what it remembered; the
    /// next read on it opens a new one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_read_reopens_its_connection() {
        let (_scratch, db) = Scratch::new().await;
        let lite = db.sqlite_for_test();
        let home = super::home() % lite.readers.len();
        let failed = lite.with_reader(|conn, _| {
            conn.execute_unprepared("SELECT * FROM no_such_table").map_err(from_sync)
        });
        assert!(failed.is_err());
        assert!(lite.readers[home].0.lock().unwrap().conn.is_none(), "dropped");
        assert_eq!(count_users(lite), 0);
        assert!(lite.readers[home].0.lock().unwrap().conn.is_some(), "opened again");
    }
}
