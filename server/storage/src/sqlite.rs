//! SQLite's backend: every statement on sea-orm-sync over rusqlite, with the queries of
//! [`crate::lite`] (the twin of `store`). One driver, so one text for timestamps: rusqlite's.
//!
//! Reads run on the calling thread, on that thread's own read-only connection: sqlx ran each
//! SQLite connection on a thread of its own and handed every statement to it through a channel,
//! two thread switches per statement, which profiles showed to be most of a sign-in's cost. In
//! WAL mode readers never wait for the writer, so a read is a few microseconds of CPU. Writes
//! run on one read-write connection, behind one lock: the sign-ins' writer thread and every
//! other write ([`crate::Db::write`]) take it in turn, so concurrent writes queue in the
//! process instead of failing with "database is locked".

use std::{
    cell::RefCell,
    collections::HashMap,
    path::Path,
    sync::{
        Mutex, MutexGuard,
        atomic::{AtomicUsize, Ordering},
    },
};

use sea_orm::DbErr;
use sea_orm_sync::{self as sync, ConnectionTrait as _};

use crate::{
    entity::{session, team, user},
    lite::{self, Neutral, from_sync},
};

/// The most threads with a read connection of their own. Hooks run on the blocking pool
/// (`hook_concurrency` + 8 threads, 72 by default) and tokio hands each call to whichever idle
/// thread it wakes, so under load every one of those threads reads, as do the runtime's workers
/// (session checks). The bound keeps file descriptors and page caches from growing with the
/// pool: reached during a load's first seconds, it stops new threads from opening connections
/// later (the load test checks that no file descriptor is added after its warm-up). A thread past
/// it borrows a spare connection for each read ([`Spare`]: at most [`MAX_SPARES`] kept).
const MAX_READERS: usize = 64;

/// Each read connection's page cache, in KiB (SQLite's default is 2 MiB): 64 of them must not
/// make the server's memory grow with the database; the operating system caches the file too.
/// (The load test, c=64 over 10,000 users: RSS 48 MB with 128 KiB, 53 MB with 512 KiB.)
const READER_CACHE_KIB: u32 = 128;

/// Read connections open now.
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// A read connection and what its reads remember.
struct Held(sync::DatabaseConnection, Remembered);

/// A thread's own read connection; closing it (when the thread ends) frees its place.
struct Counted(Held);

impl Drop for Counted {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A read connection for the threads past [`MAX_READERS`], lent for one read at a time.
struct Spare(sync::DatabaseConnection);

// SAFETY: sea-orm-sync's connection is not `Send` only because of its optional metric callback
// (an `Arc<dyn Fn>` without `Send`), which hookgate never sets; what it wraps, rusqlite's
// connection behind an `Arc<Mutex<_>>`, is `Send`. A spare is used by one thread at a time (it
// is taken out of the list for the read and put back after).
unsafe impl Send for Spare {}

/// The most spare read connections kept.
const MAX_SPARES: usize = 16;

/// What a thread's reads found, kept while the database has not changed: the session checks and
/// the teams of a user that every management call and Admin UI page repeats. Exact, not timed: it
/// is kept only for one value of SQLite's `PRAGMA data_version`, which changes whenever any
/// other connection (this process's writer, or another process) commits a change, so a
/// revocation, deletion or role change is seen by the next read on every thread. Per thread, so
/// no lock is shared; expiry is checked on every use.
#[derive(Default)]
struct Remembered {
    /// The `data_version` the entries were read at.
    version: Option<i64>,
    sessions: HashMap<String, (session::Model, user::Model)>,
    teams: HashMap<String, Vec<team::Model>>,
}

impl Remembered {
    /// The most entries of each kind one thread keeps (then it starts again).
    const MAX: usize = 256;

    /// Forgets everything unless the database is still at `version`.
    fn at(&mut self, version: i64) -> &mut Self {
        if self.version != Some(version) {
            self.sessions.clear();
            self.teams.clear();
            self.version = Some(version);
        }
        self
    }

    fn keep<V>(map: &mut HashMap<String, V>, key: &str, value: V) {
        if map.len() >= Self::MAX {
            map.clear();
        }
        map.insert(key.to_owned(), value);
    }
}

thread_local! {
    /// This thread's read connection to each SQLite database it has read (by URI), closed when
    /// the thread ends (tokio retires idle blocking threads after ten seconds). sea-orm-sync's
    /// connections stay on the thread that opened them (they are not `Send`).
    static CONNECTIONS: RefCell<HashMap<String, Counted>> = RefCell::new(HashMap::new());

    /// This thread's write connection to each SQLite database it has written (by URI): the
    /// writer thread's, and those of the blocking threads other writes ran on. Only one writes
    /// at a time (the database's write lock).
    static WRITERS: RefCell<HashMap<String, sync::DatabaseConnection>> =
        RefCell::new(HashMap::new());
}

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
    readers: String,
    /// The URI write connections open; `None`: read-only.
    writer_uri: Option<String>,
    /// The lock every write takes, so that writes queue here rather than in the file.
    write_lock: Mutex<()>,
    /// Read connections lent to the threads past [`MAX_READERS`].
    spares: Mutex<Vec<Spare>>,
    /// An in-memory database ([`crate::Db::scratch`]): the connection that keeps it alive.
    _keep_alive: Option<sea_orm::DatabaseConnection>,
}

impl std::fmt::Debug for Lite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lite").field("readers", &self.readers).finish_non_exhaustive()
    }
}

impl Lite {
    /// The database in the file at `path` (which exists: it was created and migrated), read and
    /// written.
    pub(crate) fn file(path: &Path) -> Lite {
        Lite {
            readers: file_uri(path, "mode=ro"),
            writer_uri: Some(file_uri(path, "mode=rw")),
            write_lock: Mutex::new(()),
            spares: Mutex::new(Vec::new()),
            _keep_alive: None,
        }
    }

    /// A database opened read-only at `uri` (a rehearsal's), kept alive by `keep_alive` when it
    /// is in memory.
    pub(crate) fn read_only(uri: String, keep_alive: Option<sea_orm::DatabaseConnection>) -> Lite {
        Lite {
            readers: uri,
            writer_uri: None,
            write_lock: Mutex::new(()),
            spares: Mutex::new(Vec::new()),
            _keep_alive: keep_alive,
        }
    }

    fn open_reader(&self) -> Result<sync::DatabaseConnection, DbErr> {
        let conn = sync::Database::connect(self.readers.as_str()).map_err(from_sync)?;
        // A reader waits (rather than fails) in the rare moments WAL needs a lock: recovery
        // after a crash, or the last connection's checkpoint.
        conn.execute_unprepared("PRAGMA busy_timeout = 10000").map_err(from_sync)?;
        conn.execute_unprepared(&format!("PRAGMA cache_size = -{READER_CACHE_KIB}"))
            .map_err(from_sync)?;
        Ok(conn)
    }

    /// Runs `read` on this thread's connection (opened now if this thread has none), or, when
    /// [`MAX_READERS`] are open, on a connection opened for it.
    fn with_held<T>(&self, read: impl FnOnce(&mut Held) -> Result<T, DbErr>) -> Result<T, DbErr> {
        CONNECTIONS.with_borrow_mut(|connections| {
            if !connections.contains_key(&self.readers) {
                if OPEN.fetch_add(1, Ordering::Relaxed) >= MAX_READERS {
                    OPEN.fetch_sub(1, Ordering::Relaxed);
                    return self.with_spare(read);
                }
                match self.open_reader() {
                    Ok(conn) => {
                        let held = Counted(Held(conn, Remembered::default()));
                        connections.insert(self.readers.clone(), held);
                    }
                    Err(error) => {
                        OPEN.fetch_sub(1, Ordering::Relaxed);
                        return Err(error);
                    }
                }
            }
            let held = &mut connections.get_mut(&self.readers).expect("opened above").0;
            let result = read(held);
            // A connection whose statement failed is not kept: the next read opens a new one.
            if result.is_err() {
                connections.remove(&self.readers);
            }
            result
        })
    }

    /// Runs `read` on a spare connection (opened if none is free), put back after a read that
    /// did not fail. What a spare's reads find is not remembered.
    fn with_spare<T>(&self, read: impl FnOnce(&mut Held) -> Result<T, DbErr>) -> Result<T, DbErr> {
        let spare = self.spares.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
        let conn = match spare {
            Some(Spare(conn)) => conn,
            None => self.open_reader()?,
        };
        let mut held = Held(conn, Remembered::default());
        let result = read(&mut held);
        if result.is_ok() {
            let mut spares = self.spares.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if spares.len() < MAX_SPARES {
                spares.push(Spare(held.0));
            }
        }
        result
    }

    /// Runs `read` on this thread's read connection (tests).
    #[cfg(test)]
    pub(crate) fn with_held_for_test<T>(
        &self,
        read: impl FnOnce(&sync::DatabaseConnection) -> T,
    ) -> T {
        self.with_held(|held| Ok(read(&held.0))).expect("a read connection")
    }

    /// Runs a twin query on this thread's read connection; its rows in the port's flavour.
    pub(crate) fn read<T: Neutral>(
        &self,
        read: impl FnOnce(&sync::DatabaseConnection) -> Result<T, sync::DbErr>,
    ) -> Result<T::Out, DbErr> {
        self.with_held(|held| read(&held.0).map(Neutral::neutral).map_err(from_sync))
    }

    /// The live session with this key hash and its user, remembered while the database is
    /// unchanged.
    pub(crate) fn live_session_user(
        &self,
        token_hash: &str,
    ) -> Result<Option<(session::Model, user::Model)>, DbErr> {
        self.with_held(|Held(conn, remembered)| {
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
                Remembered::keep(&mut remembered.sessions, token_hash, found.clone());
            }
            Ok(found)
        })
    }

    /// The teams a user is in, remembered while the database is unchanged.
    pub(crate) fn teams_of_user(&self, user_id: &str) -> Result<Vec<team::Model>, DbErr> {
        self.with_held(|Held(conn, remembered)| {
            let remembered = remembered.at(data_version(conn)?);
            if let Some(teams) = remembered.teams.get(user_id) {
                return Ok(teams.clone());
            }
            let teams = lite::store::teams_of_user_with_info(conn, user_id)
                .map(Neutral::neutral)
                .map_err(from_sync)?;
            Remembered::keep(&mut remembered.teams, user_id, teams.clone());
            Ok(teams)
        })
    }

    /// The migrations recorded in the database, in order; none when it has no migration
    /// table (read only: nothing is created).
    pub(crate) fn applied_migrations(&self) -> Result<Vec<String>, DbErr> {
        self.with_held(|Held(conn, _)| {
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

    /// Runs `work` in an `IMMEDIATE` transaction on this thread's write connection, holding
    /// the write lock (blocking: call it from a blocking thread): committed if it returns `Ok`,
    /// rolled back otherwise.
    pub(crate) fn write<T, E: From<DbErr>>(
        &self,
        work: impl FnOnce(&sync::DatabaseConnection) -> Result<T, E>,
    ) -> Result<T, E> {
        let Some(uri) = &self.writer_uri else { return Err(crate::read_only_refusal().into()) };
        let _held = self.hold();
        WRITERS.with_borrow_mut(|writers| {
            // A panic in `work` leaves the connection out of the map (dropped, and with it the
            // transaction, rolled back).
            let conn = match writers.remove(uri) {
                Some(conn) => conn,
                None => open_writer(uri)?,
            };
            conn.execute_unprepared("BEGIN IMMEDIATE").map_err(from_sync)?;
            let result = work(&conn).and_then(|value| {
                conn.execute_unprepared("COMMIT").map_err(from_sync)?;
                Ok(value)
            });
            // A connection that cannot roll back is dropped; the next write opens a new one.
            if result.is_ok() || conn.execute_unprepared("ROLLBACK").is_ok() {
                writers.insert(uri.clone(), conn);
            }
            result
        })
    }

    /// The write lock (blocking).
    pub(crate) fn hold(&self) -> MutexGuard<'_, ()> {
        // A write that panicked left no transaction open (see `write`): go on.
        self.write_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// SQLite's count of changes other connections committed to the file, as this connection sees it.
fn data_version(conn: &sync::DatabaseConnection) -> Result<i64, DbErr> {
    let statement = sync::Statement::from_string(sync::DbBackend::Sqlite, "PRAGMA data_version");
    let row = conn.query_one_raw(statement).map_err(from_sync)?;
    let row = row.ok_or_else(|| DbErr::Custom("PRAGMA data_version returned no row".into()))?;
    row.try_get("", "data_version").map_err(from_sync)
}

/// The write connection: read-write, waiting up to ten seconds for the file's lock (another
/// process's writer).
fn open_writer(uri: &str) -> Result<sync::DatabaseConnection, DbErr> {
    let conn = sync::Database::connect(uri).map_err(from_sync)?;
    for pragma in ["busy_timeout = 10000", "synchronous = NORMAL", "foreign_keys = ON"] {
        conn.execute_unprepared(&format!("PRAGMA {pragma}")).map_err(from_sync)?;
    }
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use sea_orm_sync::ConnectionTrait as _;

    /// A thread past the bound reads on a spare, which is kept for the next such read: no
    /// connection is opened per read.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_spare_is_lent_for_one_read_and_kept_for_the_next() {
        let dir = std::env::temp_dir()
            .join(format!("hookgate-spare-test-{}", crate::tests_support::random_hex()));
        std::fs::create_dir(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("hookgate.db").display());
        let db = crate::Db::connect(&url).await.unwrap();
        let lite = db.sqlite_for_test();
        let count = |held: &mut super::Held| {
            let statement = sea_orm_sync::Statement::from_string(
                sea_orm_sync::DbBackend::Sqlite,
                "SELECT count(*) FROM users",
            );
            let row = held.0.query_one_raw(statement).map_err(super::from_sync)?.unwrap();
            row.try_get_by_index::<i64>(0).map_err(super::from_sync)
        };
        assert_eq!(lite.with_spare(count).unwrap(), 0);
        assert_eq!(lite.spares.lock().unwrap().len(), 1, "kept");
        assert_eq!(lite.with_spare(count).unwrap(), 0);
        assert_eq!(lite.spares.lock().unwrap().len(), 1, "the same one, lent again");
        // One that failed is not kept.
        let failed = lite.with_spare(|held| {
            held.0.execute_unprepared("SELECT * FROM no_such_table").map_err(super::from_sync)
        });
        assert!(failed.is_err());
        assert_eq!(lite.spares.lock().unwrap().len(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
