//! The database as `hookgate try` and `hookgate sync --dry-run` open it: read-only, never
//! migrated, with no writer.
//!
//! A rehearsal or a preview may run against production before an upgrade, so it must not
//! change a byte:
//! no migration (a schema that is not this build's is refused, naming the migrations), no
//! journal or other persistent pragma, no file created beside a SQLite database, and on
//! PostgreSQL every transaction read-only. SQLite's read connections open the file with
//! `mode=ro` and no write connection is ever opened; PostgreSQL's pool sets the read-only option
//! on every connection it opens.

use std::{
    ffi::OsString,
    io::Read,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    QueryOrder, Statement,
};
use sea_orm_migration::{MigratorTrait, SchemaManager, seaql_migrations};

use super::{
    Backend, DatabaseKind, Db, Pg, STATEMENT_CACHE, database_kind,
    migration::Migrator,
    sqlite::{Lite, file_uri},
};

/// Why a rehearsal cannot read the database.
#[derive(Debug, thiserror::Error)]
pub enum ReadOnlyError {
    /// The database could not be opened or read.
    #[error(transparent)]
    Database(#[from] DbErr),
    /// The database's schema is not the one this build needs.
    #[error(transparent)]
    Schema(#[from] SchemaMismatch),
    /// The database cannot be opened without changing something beside it, or the server did
    /// not make the session read-only.
    #[error("{0}")]
    Unsafe(String),
}

/// The database's migrations differ from this build's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.describe())]
pub struct SchemaMismatch {
    /// Applied in the database, in order.
    pub applied: Vec<String>,
    /// This build's, in order.
    pub needed: Vec<String>,
    /// The command that refuses (`hookgate try`, `hookgate sync`).
    pub command: &'static str,
}

impl SchemaMismatch {
    /// The mismatch between `applied` and `needed`, if any, as `command` refuses it.
    pub fn check(
        applied: Vec<String>,
        needed: Vec<String>,
        command: &'static str,
    ) -> Result<(), SchemaMismatch> {
        if applied == needed { Ok(()) } else { Err(SchemaMismatch { applied, needed, command }) }
    }

    fn describe(&self) -> String {
        let at = self.applied.last().map_or("none (it has no hookgate tables)", String::as_str);
        let needs = self.needed.last().map_or("none", String::as_str);
        let missing: Vec<&str> = self
            .needed
            .iter()
            .filter(|name| !self.applied.contains(name))
            .map(String::as_str)
            .collect();
        let unknown: Vec<&str> = self
            .applied
            .iter()
            .filter(|name| !self.needed.contains(name))
            .map(String::as_str)
            .collect();
        let mut text = format!("the database is at migration {at}, this build needs {needs}");
        if !missing.is_empty() {
            text.push_str(&format!(" (not applied: {})", missing.join(", ")));
        }
        if !unknown.is_empty() {
            text.push_str(&format!(
                " (applied by another build, unknown to this one: {})",
                unknown.join(", ")
            ));
        }
        text.push_str(&format!(
            "; {} never migrates or writes the database: rehearse on a copy that this build has \
             migrated (start this build's server once on the copy), or after the upgrade",
            self.command
        ));
        text
    }
}

impl Db {
    /// Opens the database at `url` read-only for `command` (`hookgate try`, `hookgate sync`,
    /// named in its refusals), and checks that its schema is this build's (never migrating
    /// it). SQLite: `mode=ro` (and `immutable=1` where reading would create files beside it),
    /// no journal or other persistent pragma, nothing created, no write connection;
    /// PostgreSQL: every connection with `default_transaction_read_only = on`, checked. The
    /// [`Db`] refuses [`Db::write`].
    pub async fn open_read_only(url: &str, command: &'static str) -> Result<Db, ReadOnlyError> {
        let kind = database_kind(url).map_err(|error| DbErr::Custom(error.to_string()))?;
        let backend = match kind {
            DatabaseKind::Sqlite(path) => {
                let params = match sqlite_access(&path) {
                    Ok(SqliteAccess::Immutable) => "mode=ro&immutable=1",
                    Ok(SqliteAccess::Shared) => "mode=ro",
                    Err(reason) => return Err(ReadOnlyError::Unsafe(reason)),
                };
                if !path.exists() {
                    return Err(DbErr::Custom(format!("{}: no such file", path.display())).into());
                }
                Backend::Sqlite(Arc::new(Lite::read_only(file_uri(&path, params), None)?))
            }
            DatabaseKind::Postgres => {
                let mut options = ConnectOptions::new(url.to_owned());
                options
                    .sqlx_logging(false)
                    .connect_timeout(Duration::from_secs(3))
                    .acquire_timeout(Duration::from_secs(10))
                    .max_connections(4)
                    .min_connections(0)
                    .map_sqlx_postgres_opts(|opts| {
                        opts.statement_cache_capacity(STATEMENT_CACHE)
                            // A startup parameter: every connection the pool opens, before its
                            // first statement.
                            .options([("default_transaction_read_only", "on")])
                    });
                let conn = Database::connect(options).await?;
                Backend::Postgres(Pg { conn, sessions: None })
            }
        };
        let db = Db { backend, read_only: true };
        if let Err(error) = db.check_read_only_rehearsal(command).await {
            if let Err(close) = db.close().await {
                tracing::debug!("closing the database: {close}");
            }
            return Err(error);
        }
        Ok(db)
    }

    /// An empty database of this build's schema, in memory, for a rehearsal when the configured
    /// SQLite file does not exist yet: nothing is created on disk, so nothing is left behind
    /// when the rehearsal is interrupted. The [`Db`] refuses [`Db::write`].
    ///
    /// sea-orm-migration creates the schema over sea-orm (sqlx), on a connection kept open for
    /// the life of the [`Db`]; the rehearsal reads through sea-orm-sync, on connections to the
    /// same in-memory database (a named one, in SQLite's shared cache).
    pub async fn scratch() -> Result<Db, DbErr> {
        let name = format!("hookgate-scratch-{}", scratch_id());
        let mut options =
            ConnectOptions::new(format!("sqlite:file:{name}?mode=memory&cache=shared"));
        options
            .sqlx_logging(false)
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(Duration::from_secs(10));
        let conn = Database::connect(options).await?;
        Migrator::up(&conn, None).await?;
        let uri = format!("sqlite:file:{name}?mode=memory&cache=shared");
        Ok(Db {
            backend: Backend::Sqlite(Arc::new(Lite::read_only(uri, Some(conn))?)),
            read_only: true,
        })
    }

    /// The checks after opening: the session is read-only (PostgreSQL) and the schema is this
    /// build's.
    async fn check_read_only_rehearsal(&self, command: &'static str) -> Result<(), ReadOnlyError> {
        let applied = match self.backend() {
            Backend::Sqlite(lite) => lite.applied_migrations()?,
            Backend::Postgres(pg) => {
                let row = pg
                    .conn
                    .query_one_raw(Statement::from_string(
                        DbBackend::Postgres,
                        "SHOW default_transaction_read_only",
                    ))
                    .await?;
                let setting: Option<String> =
                    row.map(|row| row.try_get("", "default_transaction_read_only")).transpose()?;
                if setting.as_deref() != Some("on") {
                    return Err(ReadOnlyError::Unsafe(format!(
                        "the PostgreSQL server did not make the session read-only \
                         (default_transaction_read_only is {}; a connection pooler may drop \
                         startup options): {command} refuses to run without it",
                        setting.as_deref().unwrap_or("unknown")
                    )));
                }
                applied_migrations(&pg.conn).await?
            }
        };
        let needed = Migrator::migrations().iter().map(|m| m.name().to_owned()).collect();
        SchemaMismatch::check(applied, needed, command)?;
        Ok(())
    }
}

/// A name no other scratch database of this process has.
fn scratch_id() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The migrations recorded in the database, in order; none when it has no migration table.
/// Reads only (sea-orm-migration's own status calls create the table when it is missing).
async fn applied_migrations(conn: &DatabaseConnection) -> Result<Vec<String>, DbErr> {
    let table = Migrator::migration_table_name().to_string();
    if !SchemaManager::new(conn).has_table(&table).await? {
        return Ok(Vec::new());
    }
    let rows = seaql_migrations::Entity::find()
        .order_by_asc(seaql_migrations::Column::Version)
        .all(conn)
        .await?;
    Ok(rows.into_iter().map(|row| row.version).collect())
}

/// How a SQLite file can be read without changing anything beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SqliteAccess {
    /// Read-only, with the usual locking (a rollback-journal database, or a WAL database some
    /// connection has open: its `-wal` and `-shm` exist and are shared).
    Shared,
    /// `immutable=1`: a WAL database nobody has open (no `-wal`, no `-shm`). Opened read-only
    /// the usual way, SQLite would create both files beside it and leave them there. Its
    /// content is all in the file then; a server starting on it during the rehearsal could
    /// make the rehearsal read inconsistent pages (its report, never the file, would suffer).
    Immutable,
}

/// How to open the SQLite file at `path` read-only; `Err` when it cannot be done without
/// creating or changing a file beside it.
fn sqlite_access(path: &Path) -> Result<SqliteAccess, String> {
    if !is_wal(path) {
        return Ok(SqliteAccess::Shared);
    }
    let beside = |suffix: &str| {
        let mut name = OsString::from(path.as_os_str());
        name.push(suffix);
        PathBuf::from(name)
    };
    let (wal, shm) = (beside("-wal"), beside("-shm"));
    match (wal.exists(), shm.exists()) {
        (true, true) => Ok(SqliteAccess::Shared),
        (false, false) => Ok(SqliteAccess::Immutable),
        (wal_exists, _) => {
            let (present, absent) = if wal_exists { (&wal, &shm) } else { (&shm, &wal) };
            Err(format!(
                "{} is a WAL database with {} but no {}: a process that had it open ended \
                 without closing it, and reading it now would create the missing file. Start \
                 the server on it once (it recovers and closes it cleanly), or rehearse on a \
                 copy",
                path.display(),
                present.display(),
                absent.display()
            ))
        }
    }
}

/// Whether the SQLite file at `path` is in WAL mode (its header's read and write versions are
/// 2). A file too short to have a header, or unreadable, is not (opening it reports why).
fn is_wal(path: &Path) -> bool {
    let mut header = [0u8; 20];
    let read = std::fs::File::open(path).and_then(|mut file| file.read_exact(&mut header));
    read.is_ok() && header.starts_with(b"SQLite format 3\0") && header[18] == 2 && header[19] == 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn the_schema_must_be_this_builds() {
        let needed = names(&["m1_initial", "m2_flows", "m3_binding"]);
        let check = |applied, needed| SchemaMismatch::check(applied, needed, "hookgate try");
        assert_eq!(check(needed.clone(), needed.clone()), Ok(()));

        let behind =
            check(names(&["m1_initial", "m2_flows"]), needed.clone()).unwrap_err().to_string();
        assert!(
            behind.starts_with(
                "the database is at migration m2_flows, this build needs m3_binding (not \
                 applied: m3_binding); hookgate try never migrates"
            ),
            "{behind}"
        );
        assert!(behind.contains("rehearse on a copy"), "{behind}");
        let sync = SchemaMismatch::check(names(&["m1_initial"]), needed.clone(), "hookgate sync")
            .unwrap_err()
            .to_string();
        assert!(sync.contains("; hookgate sync never migrates or writes the database"), "{sync}");

        let empty = check(Vec::new(), needed.clone()).unwrap_err().to_string();
        assert!(
            empty.starts_with(
                "the database is at migration none (it has no hookgate tables), this build \
                 needs m3_binding (not applied: m1_initial, m2_flows, m3_binding)"
            ),
            "{empty}"
        );

        let ahead = check(names(&["m1_initial", "m2_flows", "m3_binding", "m4_future"]), needed)
            .unwrap_err()
            .to_string();
        assert!(
            ahead.starts_with(
                "the database is at migration m4_future, this build needs m3_binding (applied \
                 by another build, unknown to this one: m4_future)"
            ),
            "{ahead}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scratch_database_has_this_builds_schema_and_takes_no_write() {
        let db = Db::scratch().await.unwrap();
        assert_eq!(db.user_by_id("ann").await.unwrap(), None);
        let needed: Vec<String> =
            Migrator::migrations().iter().map(|m| m.name().to_owned()).collect();
        let Backend::Sqlite(lite) = db.backend() else { panic!("SQLite") };
        assert_eq!(lite.applied_migrations().unwrap(), needed);
        let refused = db.write(|tx| tx.delete_team("t")).await.unwrap_err().to_string();
        assert!(refused.contains("read-only"), "{refused}");
    }

    #[test]
    fn a_wal_database_is_read_without_creating_files_beside_it() {
        let scratch = crate::tests_support::Scratch::dir("read-only");
        let dir = scratch.path();
        let path = dir.join("x.db");
        // Not a database at all, or a rollback-journal one: the usual read-only open.
        std::fs::write(&path, b"").unwrap();
        assert_eq!(sqlite_access(&path), Ok(SqliteAccess::Shared));
        let mut header = b"SQLite format 3\0".to_vec();
        header.extend_from_slice(&[0x10, 0x00, 1, 1]);
        std::fs::write(&path, &header).unwrap();
        assert_eq!(sqlite_access(&path), Ok(SqliteAccess::Shared));

        // WAL, nobody has it open: immutable.
        header[18] = 2;
        header[19] = 2;
        std::fs::write(&path, &header).unwrap();
        assert_eq!(sqlite_access(&path), Ok(SqliteAccess::Immutable));
        // WAL, open somewhere: shared.
        std::fs::write(dir.join("x.db-wal"), b"").unwrap();
        std::fs::write(dir.join("x.db-shm"), b"").unwrap();
        assert_eq!(sqlite_access(&path), Ok(SqliteAccess::Shared));
        // Half of it: refused, naming both files.
        std::fs::remove_file(dir.join("x.db-shm")).unwrap();
        let reason = sqlite_access(&path).unwrap_err();
        assert!(reason.contains("x.db-wal but no ") && reason.contains("x.db-shm"), "{reason}");
    }
}
