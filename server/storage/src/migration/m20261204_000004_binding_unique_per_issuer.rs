//! A binding unique as the pair it is, (`sso_issuer`, `sso_user_id`), instead of `sso_user_id`
//! alone: PostgreSQL drops the column's constraint, SQLite rebuilds `users` keeping every row.

use sea_orm::{ConnectionTrait, DbBackend};
use sea_orm_migration::{prelude::*, schema::*};

use super::Users;

/// The unique index over a binding, (issuer, subject).
const BINDING_INDEX: &str = "users_sso_binding";
/// The unique constraint PostgreSQL named for `sso_user_id`'s own `UNIQUE` (the initial
/// migration's): `<table>_<column>_key`.
const POSTGRES_SUBJECT_KEY: &str = "users_sso_user_id_key";
/// Drops every unique constraint of `users` over `sso_user_id` alone (the initial migration's
/// is [`POSTGRES_SUBJECT_KEY`]), found in the catalog rather than by name.
const DROP_POSTGRES_SUBJECT_KEYS: &str = r#"DO $$
DECLARE
    key record;
BEGIN
    FOR key IN
        SELECT con.conname
        FROM pg_constraint con
        JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = con.conkey[1]
        WHERE con.conrelid = 'users'::regclass
          AND con.contype = 'u'
          AND array_length(con.conkey, 1) = 1
          AND att.attname = 'sso_user_id'
    LOOP
        EXECUTE format('ALTER TABLE "users" DROP CONSTRAINT %I', key.conname);
    END LOOP;
END
$$"#;

/// Makes a binding unique as the pair it is, (`sso_issuer`, `sso_user_id`): the initial schema
/// made `sso_user_id` unique on its own, so the same subject from a second issuer (another OIDC
/// provider, or `oauth-proxy`) could never get an account of its own (409 at every sign-in).
///
/// PostgreSQL drops the column's constraint. SQLite cannot drop a column's `UNIQUE`: the table
/// is rebuilt (SQLite's documented procedure, in one transaction, foreign keys off meanwhile so
/// that dropping the old table cascades to no membership or session).
pub(super) struct BindingPerIssuer;

impl MigrationName for BindingPerIssuer {
    fn name(&self) -> &str {
        "m20261204_000004_binding_unique_per_issuer"
    }
}

/// Which uniqueness the subject column has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubjectUnique {
    /// `sso_user_id` alone (before [`BindingPerIssuer`]).
    Alone,
    /// (`sso_issuer`, `sso_user_id`).
    PerIssuer,
}

#[async_trait::async_trait]
impl MigrationTrait for BindingPerIssuer {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                // Whatever its name: one left behind would keep the trap, silently.
                manager.get_connection().execute_unprepared(DROP_POSTGRES_SUBJECT_KEYS).await?;
                manager.create_index(binding_index()).await
            }
            DbBackend::Sqlite => rebuild_sqlite_users(manager, SubjectUnique::PerIssuer).await,
            other => Err(unsupported(other)),
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                manager
                    .drop_index(Index::drop().name(BINDING_INDEX).table(Users::Table).to_owned())
                    .await?;
                manager
                    .get_connection()
                    .execute_unprepared(&format!(
                        r#"ALTER TABLE "users" ADD CONSTRAINT "{POSTGRES_SUBJECT_KEY}" UNIQUE ("sso_user_id")"#
                    ))
                    .await
                    .map(|_| ())
            }
            DbBackend::Sqlite => rebuild_sqlite_users(manager, SubjectUnique::Alone).await,
            other => Err(unsupported(other)),
        }
    }
}

pub(super) fn unsupported(backend: DbBackend) -> DbErr {
    DbErr::Migration(format!(
        "hookgate's migrations support SQLite and PostgreSQL, not {backend:?}"
    ))
}

fn binding_index() -> IndexCreateStatement {
    Index::create()
        .name(BINDING_INDEX)
        .table(Users::Table)
        .col(Users::SsoIssuer)
        .col(Users::SsoUserId)
        .unique()
        .to_owned()
}

/// `users` as the migrations before [`BindingPerIssuer`] left it (column for column, in order:
/// `sso_issuer` last, where `ALTER TABLE` added it), named `table`, with `subject`'s uniqueness.
fn sqlite_users_table(table: &str, subject: SubjectUnique) -> TableCreateStatement {
    let mut sso_user_id = string_null(Users::SsoUserId);
    if subject == SubjectUnique::Alone {
        sso_user_id.unique_key();
    }
    Table::create()
        .table(Alias::new(table))
        .col(string(Users::UserId).primary_key())
        .col(string_null(Users::UserEmail))
        .col(string_null(Users::UserAlias))
        .col(string_null(Users::UserRole))
        .col(sso_user_id)
        .col(json_binary(Users::Models))
        .col(double_null(Users::MaxBudget))
        .col(double(Users::Spend).default(0.0))
        .col(string_null(Users::BudgetDuration))
        .col(timestamp_with_time_zone_null(Users::BudgetResetAt))
        .col(json_binary(Users::Metadata))
        .col(timestamp_with_time_zone(Users::CreatedAt))
        .col(timestamp_with_time_zone(Users::UpdatedAt))
        .col(string_null(Users::SsoIssuer))
        .to_owned()
}

/// Rebuilds SQLite's `users` with `subject`'s uniqueness, keeping every row.
///
/// `PRAGMA foreign_keys` cannot change inside a transaction and holds per connection, so this
/// runs on one connection taken from the pool: foreign keys off, the rebuild in one
/// transaction (checked with `PRAGMA foreign_key_check` before it commits), foreign keys on
/// again. With them on, `DROP TABLE users` would delete every membership and session
/// (`ON DELETE CASCADE`).
async fn rebuild_sqlite_users(
    manager: &SchemaManager<'_>,
    subject: SubjectUnique,
) -> Result<(), DbErr> {
    let sea_orm::DatabaseExecutor::Connection(db) = manager.get_connection() else {
        return Err(DbErr::Migration(
            "rebuilding SQLite's users table needs a connection with foreign keys off, which \
             cannot be had inside a transaction: run the migrations on the pool"
                .into(),
        ));
    };
    let mut conn =
        db.get_sqlite_connection_pool().acquire().await.map_err(|error| {
            DbErr::Migration(format!("rebuilding users: no connection: {error}"))
        })?;
    run_sqlite(&mut conn, "PRAGMA foreign_keys = OFF").await?;
    let rebuilt = rebuild_sqlite_users_on(&mut conn, subject).await;
    if rebuilt.is_err() {
        let _ = run_sqlite(&mut conn, "ROLLBACK").await;
    }
    let restored = run_sqlite(&mut conn, "PRAGMA foreign_keys = ON").await;
    if restored.is_err() {
        // Not back in the pool without its foreign keys.
        conn.close_on_drop();
    }
    rebuilt.and(restored)
}

async fn rebuild_sqlite_users_on(
    conn: &mut sea_orm::sqlx::SqliteConnection,
    subject: SubjectUnique,
) -> Result<(), DbErr> {
    use sea_orm::sea_query::SqliteQueryBuilder;
    const REBUILT: &str = "users_rebuilt";
    let create = sqlite_users_table(REBUILT, subject);
    let columns = create
        .get_columns()
        .iter()
        .map(|column| format!("\"{}\"", column.get_column_name()))
        .collect::<Vec<_>>()
        .join(", ");
    let mut statements = vec![
        "BEGIN IMMEDIATE".to_owned(),
        create.to_string(SqliteQueryBuilder),
        format!(r#"INSERT INTO "{REBUILT}" ({columns}) SELECT {columns} FROM "users""#),
        r#"DROP TABLE "users""#.to_owned(),
        format!(r#"ALTER TABLE "{REBUILT}" RENAME TO "users""#),
        // The initial migration's index, dropped with the old table.
        Index::create()
            .name("users_user_email")
            .table(Users::Table)
            .col(Users::UserEmail)
            .to_string(SqliteQueryBuilder),
    ];
    if subject == SubjectUnique::PerIssuer {
        statements.push(binding_index().to_string(SqliteQueryBuilder));
    }
    let mut dangling_before = None;
    for statement in &statements {
        run_sqlite(conn, statement).await?;
        if dangling_before.is_none() {
            // Inside the transaction, before any change.
            dangling_before = Some(dangling_user_references(conn).await?);
        }
    }
    // Every row was copied, so no membership or session can have lost its user; rows that
    // referred to no user before (written with foreign keys off) are left as they were.
    let dangling_after = dangling_user_references(conn).await?;
    if Some(dangling_after) != dangling_before {
        return Err(DbErr::Migration(format!(
            "rebuilding users: memberships and sessions without their user went from {} to \
             {dangling_after}; nothing was changed",
            dangling_before.unwrap_or_default()
        )));
    }
    run_sqlite(conn, "COMMIT").await
}

/// How many memberships and sessions refer to a user that does not exist.
async fn dangling_user_references(
    conn: &mut sea_orm::sqlx::SqliteConnection,
) -> Result<usize, DbErr> {
    let mut dangling = 0;
    for table in ["team_members", "sessions"] {
        let check = format!(r#"PRAGMA foreign_key_check("{table}")"#);
        dangling += sea_orm::sqlx::query(sea_orm::sqlx::AssertSqlSafe(check))
            .fetch_all(&mut *conn)
            .await
            .map_err(|error| DbErr::Migration(format!("rebuilding users: {error}")))?
            .len();
    }
    Ok(dangling)
}

async fn run_sqlite(conn: &mut sea_orm::sqlx::SqliteConnection, sql: &str) -> Result<(), DbErr> {
    use sea_orm::sqlx::{AssertSqlSafe, Executor};
    conn.execute(AssertSqlSafe(sql.to_owned()))
        .await
        .map(|_| ())
        .map_err(|error| DbErr::Migration(format!("rebuilding users: {sql}: {error}")))
}

#[cfg(test)]
mod tests {
    use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

    use super::{super::Migrator, *};

    /// A SQLite file in a folder of its own, with the server's connection options that matter
    /// here (foreign keys on, several connections).
    async fn sqlite(dir: &crate::tests_support::Scratch) -> DatabaseConnection {
        let mut options = ConnectOptions::new(dir.sqlite_url());
        options
            .sqlx_logging(false)
            .max_connections(4)
            .map_sqlx_sqlite_opts(|opts| opts.create_if_missing(true).foreign_keys(true));
        Database::connect(options).await.unwrap()
    }

    async fn count(conn: &DatabaseConnection, sql: &str) -> i64 {
        let row = conn
            .query_one_raw(sea_orm::Statement::from_string(conn.get_database_backend(), sql))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index(0).unwrap()
    }

    const AT: &str = "2026-12-01T00:00:00Z";

    fn insert_user(user_id: &str, issuer: &str, subject: &str) -> String {
        format!(
            "INSERT INTO users (user_id, sso_issuer, sso_user_id, models, spend, metadata, \
             created_at, updated_at) VALUES ('{user_id}', '{issuer}', '{subject}', '[]', 0, '{{}}', \
             '{AT}', '{AT}')"
        )
    }

    /// What each backend says when a unique key or a foreign key refuses a row.
    fn refusal_words(conn: &DatabaseConnection) -> (&'static str, &'static str) {
        match conn.get_database_backend() {
            DbBackend::Postgres => ("unique constraint", "foreign key constraint"),
            _ => ("UNIQUE", "FOREIGN KEY"),
        }
    }

    async fn check_binding_migration(conn: &DatabaseConnection) {
        let (unique, foreign_key) = refusal_words(conn);
        // A database as the previous build left it, with a user, a membership and a session.
        Migrator::up(conn, Some(3)).await.unwrap();
        for statement in [
            insert_user("ann", "https://idp.test", "s-1"),
            format!(
                "INSERT INTO teams (team_id, models, metadata, created_at, updated_at) VALUES \
                 ('ops', '[]', '{{}}', '{AT}', '{AT}')"
            ),
            format!(
                "INSERT INTO team_members (team_id, user_id, role, created_at) VALUES ('ops', \
                 'ann', 'user', '{AT}')"
            ),
            format!(
                "INSERT INTO sessions (token_hash, user_id, user_role, login_method, models, \
                 created_at, expires_at) VALUES ('h1', 'ann', 'internal_user', 'sso', '[]', \
                 '{AT}', '{AT}')"
            ),
        ] {
            conn.execute_unprepared(&statement).await.unwrap();
        }
        // The trap: the same subject from a second issuer.
        let error = conn
            .execute_unprepared(&insert_user("ann-proxy", "oauth-proxy", "s-1"))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains(unique), "{error}");

        Migrator::up(conn, Some(1)).await.unwrap();
        let row = conn
            .query_one_raw(sea_orm::Statement::from_string(
                conn.get_database_backend(),
                "SELECT version FROM seaql_migrations ORDER BY version DESC",
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.try_get::<String>("", "version").unwrap(), BindingPerIssuer.name());

        // Every row kept: the migration cascaded to no membership or session.
        assert_eq!(count(conn, "SELECT count(*) FROM users").await, 1);
        assert_eq!(count(conn, "SELECT count(*) FROM team_members").await, 1);
        assert_eq!(count(conn, "SELECT count(*) FROM sessions").await, 1);
        // The same subject from another issuer is another account; the same pair is refused.
        conn.execute_unprepared(&insert_user("ann-proxy", "oauth-proxy", "s-1")).await.unwrap();
        let error = conn
            .execute_unprepared(&insert_user("ann-again", "https://idp.test", "s-1"))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains(unique), "{error}");
        // Unbound accounts (no issuer, no subject) are as many as wanted.
        for user_id in ["u1", "u2"] {
            conn.execute_unprepared(&format!(
                "INSERT INTO users (user_id, models, spend, metadata, created_at, updated_at) \
                 VALUES ('{user_id}', '[]', 0, '{{}}', '{AT}', '{AT}')"
            ))
            .await
            .unwrap();
        }
        // Foreign keys still hold (and cascade) on the pool's connections, the rebuild's among
        // them on SQLite.
        for _ in 0..4 {
            let error = conn
                .execute_unprepared(&format!(
                    "INSERT INTO team_members (team_id, user_id, role, created_at) VALUES \
                     ('ops', 'nobody', 'user', '{AT}')"
                ))
                .await
                .unwrap_err()
                .to_string();
            assert!(error.contains(foreign_key), "{error}");
        }
        conn.execute_unprepared("DELETE FROM users WHERE user_id = 'ann'").await.unwrap();
        assert_eq!(count(conn, "SELECT count(*) FROM sessions").await, 0, "cascaded");

        // And back down: the subject unique on its own again.
        conn.execute_unprepared("DELETE FROM users WHERE user_id = 'ann-proxy'").await.unwrap();
        Migrator::down(conn, Some(1)).await.unwrap();
        conn.execute_unprepared(&insert_user("x", "https://idp.test", "s-2")).await.unwrap();
        let error = conn
            .execute_unprepared(&insert_user("y", "oauth-proxy", "s-2"))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains(unique), "{error}");
    }

    #[tokio::test]
    async fn a_binding_is_unique_per_issuer_and_sqlites_rebuild_keeps_every_row() {
        let dir = crate::tests_support::Scratch::dir("migration");
        let conn = sqlite(&dir).await;
        check_binding_migration(&conn).await;
        // The email index came back with the rebuild, beside the binding's.
        assert_eq!(
            count(
                &conn,
                "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN \
                 ('users_user_email', 'users_sso_binding')"
            )
            .await,
            1,
            "undone: the email index, without the binding's"
        );
        conn.close().await.unwrap();
    }

    /// The same on PostgreSQL, when the test command started one (`HOOKGATE_TEST_POSTGRES_URL`,
    /// an admin URL): a fresh database, dropped after.
    #[tokio::test]
    async fn a_binding_is_unique_per_issuer_on_postgresql() {
        let Some(database) = crate::tests_support::TestDatabase::create("hookgate_migration").await
        else {
            return;
        };
        let conn = Database::connect(database.url.as_str()).await.unwrap();
        check_binding_migration(&conn).await;
        conn.close().await.unwrap();
        database.drop_database().await;
    }
}
