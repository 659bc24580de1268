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
//!
//! What this process remembers of the database (session checks, users' teams, sign-in
//! snapshots: [`crate::sessions`]) is kept true by its writes, which all pass through the write
//! connection, and by [`LOOK_OUTSIDE`] for another process's.

use std::{
    cell::Cell,
    path::Path,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError, TryLockError,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use sea_orm::DbErr;
use sea_orm_sync::{self as sync, ConnectionTrait as _};

mod checkpoint;

use crate::{
    SignInRead,
    accounts::Accounts,
    lite::{self, from_sync},
    sessions::{self, Forget, SessionCache},
};
use hookgate_core::signin::Keys;

/// Each read connection's page cache, in KiB (SQLite's default is 2 MiB): the readers must not
/// make the server's memory grow with the database; the operating system caches the file too.
/// (The load test, c=64 over 10,000 users: RSS 48 MB with 128 KiB, 53 MB with 512 KiB.)
const READER_CACHE_KIB: u32 = 128;

/// How often, between writes, the checkpointer's thread looks at the write connection's `PRAGMA
/// data_version` for another process's commit (an operator's `sqlite3`, `hookgate sync`, a
/// second server on the file): what this process remembers forgets such a change within this
/// long. Every write transaction looks first anyway. This process's own writes are forgotten
/// exactly, before they answer ([`crate::sessions`]).
pub(crate) const LOOK_OUTSIDE: Duration = Duration::from_millis(100);

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

/// A sea-orm-sync connection, moved between threads behind a lock.
pub(crate) struct Conn(sync::DatabaseConnection);

// SAFETY: sea-orm-sync's connection is not `Send` only because of its optional metric callback
// (an `Arc<dyn Fn>` without `Send`), which hookgate never sets; what it wraps, rusqlite's
// connection behind an `Arc<Mutex<_>>`, is `Send`. A `Conn` is used by one thread at a time:
// the one holding the lock it is kept behind.
unsafe impl Send for Conn {}

/// One reader on a cache line of its own, so that threads reading on neighbouring readers do not
/// slow each other down.
/// `None` after a read that failed on it: the next read opens a new one.
#[repr(align(128))]
struct Slot(Mutex<Option<Conn>>);

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
    /// The write connection and what is remembered; `None`: read-only (nothing is remembered:
    /// this process would see no write).
    writable: Option<Arc<Writable>>,
    /// The WAL checkpoint's thread, which also looks for another process's commits (none when
    /// read-only).
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
        let memory = SessionCache::new();
        memory.hears_every_change();
        let writable =
            Arc::new(Writable { uri: file_uri(path, "mode=rw"), writer: Mutex::new(None), memory });
        let looking = Arc::clone(&writable);
        let checkpointer =
            checkpoint::Checkpointer::start(&writable.uri, LOOK_OUTSIDE, move || {
                looking.look_outside_now();
            })?;
        Ok(Lite { writable: Some(writable), checkpointer: Some(checkpointer), ..lite })
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
            writable: None,
            checkpointer: None,
            _keep_alive: keep_alive,
        }
    }

    /// Opens every read connection, so that none is opened while the server serves.
    fn open_readers(&self) -> Result<(), DbErr> {
        for slot in &self.readers {
            *slot.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(self.open_reader()?);
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
    fn reader(&self) -> MutexGuard<'_, Option<Conn>> {
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
        read: impl FnOnce(&sync::DatabaseConnection) -> Result<T, DbErr>,
    ) -> Result<T, DbErr> {
        let mut conn = self.reader();
        let held = match &mut *conn {
            Some(held) => held,
            None => conn.insert(self.open_reader()?),
        };
        let result = read(&held.0);
        // A connection whose statement failed is not kept: the next read opens a new one.
        if result.is_err() {
            *conn = None;
        }
        result
    }

    /// Runs `read` on a read connection (tests).
    #[cfg(test)]
    pub(crate) fn with_held_for_test<T>(
        &self,
        read: impl FnOnce(&sync::DatabaseConnection) -> T,
    ) -> T {
        self.with_reader(|conn| Ok(read(conn))).expect("a read connection")
    }

    /// Runs a twin query on a read connection; its rows in the port's flavour.
    pub(crate) fn read<T: lite::Neutral>(
        &self,
        read: impl FnOnce(&sync::DatabaseConnection) -> Result<T, sync::DbErr>,
    ) -> Result<T::Out, DbErr> {
        self.with_reader(|conn| read(conn).map(lite::Neutral::neutral).map_err(from_sync))
    }

    /// What this process remembers of the database; `None` when it was opened read-only.
    pub(crate) fn memory(&self) -> Option<&SessionCache> {
        self.writable.as_deref().map(|writable| &*writable.memory)
    }

    /// The migrations recorded in the database, in order; none when it has no migration
    /// table (read only: nothing is created).
    pub(crate) fn applied_migrations(&self) -> Result<Vec<String>, DbErr> {
        self.with_reader(|conn| {
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
    /// look is looked for ([`Writable::look_outside`]).
    pub(crate) fn write<T, E: From<DbErr>>(
        &self,
        work: impl FnOnce(&sync::DatabaseConnection) -> Result<(T, Wrote), E>,
    ) -> Result<T, E> {
        let Some(writable) = &self.writable else {
            return Err(crate::read_only_refusal().into());
        };
        let mut writer = writable.hold();
        // A panic in `work` leaves the connection out (dropped, and with it the transaction,
        // rolled back).
        let Writing { conn, mut seen } = match writer.take() {
            Some(writing) => writing,
            None => Writing { conn: open_writer(&writable.uri)?, seen: None },
        };
        conn.0.execute_unprepared("BEGIN IMMEDIATE").map_err(from_sync)?;
        let result = writable.look_outside(&conn.0, &mut seen).map_err(E::from);
        let result = result.and_then(|()| work(&conn.0)).and_then(|(value, wrote)| {
            conn.0.execute_unprepared("COMMIT").map_err(from_sync)?;
            if wrote == Wrote::Accounts {
                writable.memory.accounts.changed();
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

    /// The write lock, and with it the write connection (tests: to hold the writer up).
    #[cfg(test)]
    pub(crate) fn hold(&self) -> MutexGuard<'_, Option<Writing>> {
        self.writable.as_ref().expect("a database opened for writing").hold()
    }

    /// What the sign-ins' remembered snapshots are checked against; `None` when read-only.
    pub(crate) fn accounts(&self) -> Option<&Accounts> {
        self.memory().map(|memory| &memory.accounts)
    }

    /// What one sign-in needs to decide: remembered by this thread if no account, team or
    /// membership changed since it was read ([`crate::sessions`]), else read now, in one read
    /// transaction (and remembered). Never remembered when the database is open read-only.
    pub(crate) fn snapshot(&self, keys: &Keys) -> Result<SignInRead, DbErr> {
        let generation = match sessions::recall_snapshot(self.memory(), keys) {
            Ok(remembered) => return Ok(remembered),
            Err(generation) => generation,
        };
        let snapshot =
            self.with_reader(|conn| read_together(conn, |conn| lite::store::snapshot(conn, keys)))?;
        Ok(sessions::keep_snapshot(self.memory(), keys, generation, snapshot))
    }
}

/// The write side of a database: the write connection, behind the lock every write takes (the
/// sign-ins' writer, [`crate::Db::write`]) so that writes queue here rather than in the file;
/// and what this process remembers of the database, which those writes keep true.
struct Writable {
    /// The URI the write connection opens.
    uri: String,
    /// Opened on the first write (or look), and again after one that could not roll back.
    writer: Mutex<Option<Writing>>,
    memory: Arc<SessionCache>,
}

impl Writable {
    /// The write lock (blocking), and with it the write connection.
    fn hold(&self) -> MutexGuard<'_, Option<Writing>> {
        // A write that panicked left no transaction open (see `Lite::write`): go on.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether another process committed since the write connection last looked: its
    /// `data_version` moves only when another connection commits (a new connection cannot know,
    /// so it counts as one). If so, everything remembered is forgotten, the accounts'
    /// generation moves on, and plans made on a snapshot remembered before are stale.
    fn look_outside(
        &self,
        conn: &sync::DatabaseConnection,
        seen: &mut Option<i64>,
    ) -> Result<(), DbErr> {
        let version = data_version(conn)?;
        if *seen != Some(version) {
            self.memory.forget(Forget::All);
            self.memory.accounts.changed_outside();
            *seen = Some(version);
        }
        Ok(())
    }

    /// Between writes ([`LOOK_OUTSIDE`], on the checkpointer's thread): looks for another
    /// process's commit on the write connection, unless a write holds it (that write has just
    /// looked). While it cannot look, nothing is remembered (the memory is off: only this turns
    /// it off and on again on SQLite).
    fn look_outside_now(&self) {
        let mut writer = match self.writer.try_lock() {
            Ok(writer) => writer,
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) => return,
        };
        let looked = match &mut *writer {
            Some(Writing { conn, seen }) => self.look_outside(&conn.0, seen),
            None => open_writer(&self.uri).and_then(|conn| {
                let Writing { conn, seen } = writer.insert(Writing { conn, seen: None });
                self.look_outside(&conn.0, seen)
            }),
        };
        if looked.is_err() {
            *writer = None;
        }
        drop(writer);
        match looked {
            Ok(()) if !self.memory.is_live() => {
                self.memory.hears_every_change();
                tracing::info!(
                    "session checks are remembered again: SQLite's data_version can be read"
                );
            }
            Err(error) if self.memory.is_live() => {
                self.memory.may_miss_changes();
                tracing::warn!(
                    "session checks read the database every time until SQLite's data_version can \
                     be read again (another process's changes could not be seen): {error}"
                );
            }
            _ => {}
        }
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
mod tests;
