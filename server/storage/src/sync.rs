//! SQLite's sign-in reads on sea-orm's synchronous backend (`sea-orm-sync`, over rusqlite).
//!
//! sqlx runs each SQLite connection on a thread of its own and hands every statement to it
//! through a channel: two thread switches per statement, which profiles showed to be most of a
//! sign-in's cost. Here the statements run on the calling thread — the blocking thread the
//! sign-in's hook already runs on — over that thread's own rusqlite connection. In WAL mode
//! readers never wait for the writer, so a read is a few microseconds of CPU.
//!
//! The statements are the ones [`super::store`] builds with sea-orm's query builder for the
//! async path (same SQL, same values); only their execution and the decoding of rows differ.

use std::{
    cell::RefCell,
    collections::HashMap,
    sync::atomic::{AtomicUsize, Ordering},
};

use sea_orm::{DbBackend, DbErr, QueryTrait};
use sea_orm_sync::{self as sync, ConnectionTrait as _};

use super::{
    entity::{session, team, team_member, user},
    store,
    writer::Txn,
};
use hookgate_core::signin::{Keys, Snapshot};

/// The most read connections open at once, over all threads. Hooks run on the blocking pool, at
/// most `hook_concurrency` at once (64 unless configured), and tokio hands each call to whichever
/// idle thread it wakes, so under load every one of those threads reads: with fewer connections
/// than threads, the threads without one read through sqlx's worker, which at 8 readers was 17%
/// of a returning-user sign-in's profile at c=32 (4,800/s against 5,500/s with 64). The bound
/// keeps file descriptors and page caches from growing with the pool beyond that: a thread that
/// finds them all taken reads through the async pool instead.
const MAX_READERS: usize = 64;

/// Each read connection's page cache, in KiB (SQLite's default is 2 MiB): 64 of them must not
/// make the server's memory grow with the database; the operating system caches the file too.
/// (The load test, c=64 over 10,000 users: RSS 48 MB with 128 KiB, 53 MB with 512 KiB.)
const READER_CACHE_KIB: u32 = 128;

/// Read connections open now.
static OPEN: AtomicUsize = AtomicUsize::new(0);

/// A thread's read connection; closing it (when the thread ends) frees its place.
struct Held(sync::DatabaseConnection, Remembered);

/// What a thread's reads found, kept while the database has not changed: the session checks and
/// the teams of a user that every management call and Admin UI page repeats. Exact, not timed: it
/// is kept only for one value of SQLite's `PRAGMA data_version`, which changes whenever any
/// other connection (this process's writer and pool, or another process) commits a change, so a
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

/// SQLite's count of changes other connections committed to the file, as this connection sees it.
fn data_version(conn: &sync::DatabaseConnection) -> Result<i64, DbErr> {
    let statement = sync::Statement::from_string(sync::DbBackend::Sqlite, "PRAGMA data_version");
    let row = conn.query_one_raw(statement).map_err(from_sync)?;
    let row = row.ok_or_else(|| DbErr::Custom("PRAGMA data_version returned no row".into()))?;
    get(&row, "", "data_version")
}

impl Drop for Held {
    fn drop(&mut self) {
        OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}

thread_local! {
    /// This thread's read connection to each SQLite file it has read (sea-orm-sync's
    /// connections are not `Send`: each stays on the thread that opened it, and closes when
    /// that thread ends — tokio retires idle blocking threads after ten seconds).
    static CONNECTIONS: RefCell<HashMap<String, Held>> = RefCell::new(HashMap::new());
}

/// Read-only connections to one SQLite file, one per thread that reads (at most
/// [`MAX_READERS`] in all), opened on demand.
#[derive(Debug)]
pub(crate) struct Readers {
    url: String,
}

impl Readers {
    /// Readers of the SQLite file at `path` (which must exist: the async pool created and
    /// migrated it).
    pub(crate) fn new(path: &std::path::Path) -> Self {
        Self { url: format!("sqlite://{}?mode=ro", path.display()) }
    }

    fn open(&self) -> Result<Option<Held>, DbErr> {
        if OPEN.fetch_add(1, Ordering::Relaxed) >= MAX_READERS {
            OPEN.fetch_sub(1, Ordering::Relaxed);
            return Ok(None);
        }
        let open = || {
            let conn = sync::Database::connect(self.url.as_str()).map_err(from_sync)?;
            // A reader waits (rather than fails) in the rare moments WAL needs a lock: recovery
            // after a crash, or the last connection's checkpoint.
            conn.execute_unprepared("PRAGMA busy_timeout = 10000").map_err(from_sync)?;
            conn.execute_unprepared(&format!("PRAGMA cache_size = -{READER_CACHE_KIB}"))
                .map_err(from_sync)?;
            Ok(conn)
        };
        match open() {
            Ok(conn) => Ok(Some(Held(conn, Remembered::default()))),
            Err(error) => {
                OPEN.fetch_sub(1, Ordering::Relaxed);
                Err(error)
            }
        }
    }

    /// Runs `read` on this thread's connection; `None` when this thread has none and none may
    /// be opened.
    fn with<T>(
        &self,
        read: impl FnOnce(&sync::DatabaseConnection) -> Result<T, DbErr>,
    ) -> Option<Result<T, DbErr>> {
        self.with_held(|held| read(&held.0))
    }

    /// [`Self::with`], with what the thread's reads remember.
    fn with_held<T>(
        &self,
        read: impl FnOnce(&mut Held) -> Result<T, DbErr>,
    ) -> Option<Result<T, DbErr>> {
        CONNECTIONS.with_borrow_mut(|connections| {
            if !connections.contains_key(&self.url) {
                match self.open() {
                    Ok(Some(held)) => {
                        connections.insert(self.url.clone(), held);
                    }
                    Ok(None) => return None,
                    Err(error) => return Some(Err(error)),
                }
            }
            let result = read(connections.get_mut(&self.url).expect("opened above"));
            // A connection whose statement failed is not kept: the next read opens a new one.
            if result.is_err() {
                connections.remove(&self.url);
            }
            Some(result)
        })
    }

    /// [`store::snapshot`], on this thread (`None`: no connection free, read elsewhere).
    pub(crate) fn snapshot(&self, keys: &Keys) -> Option<Result<Snapshot, DbErr>> {
        self.with(|conn| {
            let accounts = query(conn, store::accounts_query(keys))?
                .iter()
                .map(|row| user_of(row, "").map(store::account_of))
                .collect::<Result<Vec<_>, _>>()?;
            let (memberships, synced, removable) = store::memberships_of(
                query(conn, store::memberships_query(keys, &accounts))?
                    .iter()
                    .map(|row| member_of(row, ""))
                    .collect::<Result<Vec<_>, _>>()?,
            );
            let teams = match store::teams_query(keys) {
                None => Vec::new(),
                Some(select) => query(conn, select)?
                    .iter()
                    .map(|row| team_of(row, "").map(store::team_of))
                    .collect::<Result<Vec<_>, _>>()?,
            };
            Ok(Snapshot { accounts, memberships, synced, removable, teams })
        })
    }

    /// [`store::live_session_user`], on this thread (`None`: no connection free, read
    /// elsewhere).
    pub(crate) fn live_session_user(
        &self,
        token_hash: &str,
    ) -> Option<Result<Option<(session::Model, user::Model)>, DbErr>> {
        self.with_held(|Held(conn, remembered)| {
            let remembered = remembered.at(data_version(conn)?);
            if let Some((session, user)) = remembered.sessions.get(token_hash)
                && session.expires_at > store::now()
            {
                return Ok(Some((session.clone(), user.clone())));
            }
            // By primary key: one row at most. No `LIMIT ?`: SQLite re-plans a statement whose
            // LIMIT is a bound parameter every time it is rebound (most of this read's cost).
            let rows = query(conn, store::live_session_user_query(token_hash))?;
            let found = rows
                .first()
                .map(|row| Ok::<_, DbErr>((session_of(row, "A_")?, user_of(row, "B_")?)))
                .transpose()?;
            if let Some(found) = &found {
                Remembered::keep(&mut remembered.sessions, token_hash, found.clone());
            }
            Ok(found)
        })
    }

    /// [`store::teams_of_user_with_info`], on this thread (`None`: no connection free, read
    /// elsewhere).
    pub(crate) fn teams_of_user(&self, user_id: &str) -> Option<Result<Vec<team::Model>, DbErr>> {
        self.with_held(|Held(conn, remembered)| {
            let remembered = remembered.at(data_version(conn)?);
            if let Some(teams) = remembered.teams.get(user_id) {
                return Ok(teams.clone());
            }
            // A membership whose team is gone has NULL team columns: skipped, as the async
            // path's `find_also_related` does.
            let teams = query(conn, store::teams_of_user_query(user_id))?
                .iter()
                .filter(|row| {
                    get::<Option<String>>(row, "B_", "team_id").is_ok_and(|t| t.is_some())
                })
                .map(|row| team_of(row, "B_"))
                .collect::<Result<Vec<_>, _>>()?;
            Remembered::keep(&mut remembered.teams, user_id, teams.clone());
            Ok(teams)
        })
    }
}

/// The writer's connection: read-write, waiting up to ten seconds for the file's lock (the async
/// pool's writers hold the same in-process lock, so this waits only for other processes).
pub(super) fn open_writer(path: &std::path::Path) -> Result<sync::DatabaseConnection, DbErr> {
    let conn = sync::Database::connect(format!("sqlite://{}?mode=rw", path.display()).as_str())
        .map_err(from_sync)?;
    conn.execute_unprepared("PRAGMA busy_timeout = 10000").map_err(from_sync)?;
    conn.execute_unprepared("PRAGMA synchronous = NORMAL").map_err(from_sync)?;
    Ok(conn)
}

/// Runs `work` in an `IMMEDIATE` transaction on `conn`: committed if it returns `Ok`, rolled
/// back otherwise.
pub(super) fn transaction<T>(
    conn: &sync::DatabaseConnection,
    work: impl FnOnce(&mut dyn Txn) -> Result<T, DbErr>,
) -> Result<T, DbErr> {
    conn.execute_unprepared("BEGIN IMMEDIATE").map_err(from_sync)?;
    let result = work(&mut Writing { conn })
        .and_then(|value| conn.execute_unprepared("COMMIT").map_err(from_sync).map(|_| value));
    if result.is_err() {
        let _ = conn.execute_unprepared("ROLLBACK");
    }
    result
}

struct Writing<'a> {
    conn: &'a sync::DatabaseConnection,
}

impl Txn for Writing<'_> {
    fn run(&mut self, statement: sea_orm::Statement) -> Result<u64, DbErr> {
        Ok(self.conn.execute_raw(to_sync(statement)).map_err(from_sync)?.rows_affected())
    }

    fn backend(&self) -> DbBackend {
        DbBackend::Sqlite
    }
}

/// A statement built by sea-orm's query builder, for the synchronous backend.
///
/// Timestamps are bound as the text sqlx writes (RFC 3339, `T` between date and time), not as
/// rusqlite would (a space): SQLite compares and orders them as text, so rows written by either
/// driver must agree — the writer's "still as read" check compares `updated_at` for equality.
fn to_sync(built: sea_orm::Statement) -> sync::Statement {
    use sea_orm::Value;
    let text = |at: chrono::DateTime<chrono::Utc>| {
        Value::String(Some(at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false)))
    };
    let values =
        built.values.map(|values| values.0).unwrap_or_default().into_iter().map(
            |value| match value {
                Value::ChronoDateTimeUtc(Some(at)) => text(at),
                Value::ChronoDateTimeWithTimeZone(Some(at)) => text(at.to_utc()),
                other => other,
            },
        );
    sync::Statement::from_sql_and_values(sync::DbBackend::Sqlite, built.sql, values)
}

/// Runs a query built for the async path.
fn query(
    conn: &sync::DatabaseConnection,
    select: impl QueryTrait,
) -> Result<Vec<sync::QueryResult>, DbErr> {
    conn.query_all_raw(to_sync(select.build(DbBackend::Sqlite))).map_err(from_sync)
}

fn get<T: sync::TryGetable>(
    row: &sync::QueryResult,
    prefix: &str,
    column: &str,
) -> Result<T, DbErr> {
    row.try_get(prefix, column).map_err(from_sync)
}

fn session_of(row: &sync::QueryResult, prefix: &str) -> Result<session::Model, DbErr> {
    Ok(session::Model {
        token_hash: get(row, prefix, "token_hash")?,
        user_id: get(row, prefix, "user_id")?,
        user_role: get(row, prefix, "user_role")?,
        login_method: get(row, prefix, "login_method")?,
        models: get(row, prefix, "models")?,
        max_budget: get(row, prefix, "max_budget")?,
        created_at: get(row, prefix, "created_at")?,
        expires_at: get(row, prefix, "expires_at")?,
        revoked_at: get(row, prefix, "revoked_at")?,
    })
}

fn user_of(row: &sync::QueryResult, prefix: &str) -> Result<user::Model, DbErr> {
    Ok(user::Model {
        user_id: get(row, prefix, "user_id")?,
        user_email: get(row, prefix, "user_email")?,
        user_alias: get(row, prefix, "user_alias")?,
        user_role: get(row, prefix, "user_role")?,
        sso_user_id: get(row, prefix, "sso_user_id")?,
        sso_issuer: get(row, prefix, "sso_issuer")?,
        models: get(row, prefix, "models")?,
        max_budget: get(row, prefix, "max_budget")?,
        spend: get(row, prefix, "spend")?,
        budget_duration: get(row, prefix, "budget_duration")?,
        budget_reset_at: get(row, prefix, "budget_reset_at")?,
        metadata: get(row, prefix, "metadata")?,
        created_at: get(row, prefix, "created_at")?,
        updated_at: get(row, prefix, "updated_at")?,
        active: get(row, prefix, "active")?,
        scim: get(row, prefix, "scim")?,
        scim_external_id: get(row, prefix, "scim_external_id")?,
    })
}

fn member_of(row: &sync::QueryResult, prefix: &str) -> Result<team_member::Model, DbErr> {
    Ok(team_member::Model {
        team_id: get(row, prefix, "team_id")?,
        user_id: get(row, prefix, "user_id")?,
        role: get(row, prefix, "role")?,
        created_at: get(row, prefix, "created_at")?,
        source: get(row, prefix, "source")?,
    })
}

fn team_of(row: &sync::QueryResult, prefix: &str) -> Result<team::Model, DbErr> {
    Ok(team::Model {
        team_id: get(row, prefix, "team_id")?,
        team_alias: get(row, prefix, "team_alias")?,
        models: get(row, prefix, "models")?,
        max_budget: get(row, prefix, "max_budget")?,
        metadata: get(row, prefix, "metadata")?,
        created_at: get(row, prefix, "created_at")?,
        updated_at: get(row, prefix, "updated_at")?,
        scim: get(row, prefix, "scim")?,
    })
}

/// The synchronous backend's error as the async one's (the message is kept; the kinds the
/// server tells apart — "the database failed" — are the same).
fn from_sync(error: impl std::fmt::Display) -> DbErr {
    DbErr::Custom(format!("sqlite: {error}"))
}
