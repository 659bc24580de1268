//! Writes: a unit of work run in one transaction ([`Db::write`]) over [`Tx`], the statements a
//! write may make.

use chrono::{DateTime, Utc};
use hookgate_core::records::SignInRecord;
use sea_orm::{DatabaseTransaction, DbErr};

use crate::{
    Backend, Db,
    entity::{team, team_member, user},
    lite::{self, Neutral, from_sync},
    sqlite::Wrote,
    store,
    types::{NewTeam, NewUser, ScimUser, UserEdit},
};

/// The statements of one write transaction ([`Db::write`]). Each method runs at once, in the
/// transaction; what a method changes of a user makes the session checks of that user
/// forgotten once the transaction commits.
pub struct Tx<'a> {
    exec: Exec<'a>,
    /// The users whose session checks are forgotten after the commit.
    changed: Vec<String>,
    /// Whether a statement may have changed an account, a team or a membership (each method
    /// that may says so: [`changes!`]), which makes this process forget the sign-in snapshots
    /// it remembers once the transaction commits.
    wrote: Wrote,
}

/// The transaction the statements run in.
enum Exec<'a> {
    /// SQLite's write connection, in an `IMMEDIATE` transaction.
    Sqlite(&'a sea_orm_sync::DatabaseConnection),
    /// A PostgreSQL transaction, driven from a blocking thread.
    Postgres { txn: &'a DatabaseTransaction, runtime: &'a tokio::runtime::Handle },
}

/// One statement (or a few) in the transaction: the twin query on SQLite, the original on
/// PostgreSQL. A first argument written `row: …` is a row, converted to the twin's for SQLite.
macro_rules! both {
    ($tx:expr, $query:ident(row: $row:expr, $($arg:expr),*)) => {
        match &$tx.exec {
            Exec::Sqlite(conn) => lite::store::$query(*conn, $row.into(), $($arg),*)
                .map(Neutral::neutral)
                .map_err(from_sync),
            Exec::Postgres { txn, runtime } => {
                runtime.block_on(store::$query(*txn, $row, $($arg),*))
            }
        }
    };
    ($tx:expr, $query:ident($($arg:expr),*)) => {
        match &$tx.exec {
            Exec::Sqlite(conn) => {
                lite::store::$query(*conn, $($arg),*).map(Neutral::neutral).map_err(from_sync)
            }
            Exec::Postgres { txn, runtime } => runtime.block_on(store::$query(*txn, $($arg),*)),
        }
    };
}

/// [`both!`] for a statement that may change an account, a team or a membership.
macro_rules! changes {
    ($tx:expr, $($query:tt)*) => {{
        $tx.wrote = Wrote::Accounts;
        both!($tx, $($query)*)
    }};
}

impl Db {
    /// Runs `work` in one write transaction and answers after its commit: committed if `work`
    /// returns `Ok`, rolled back otherwise (and when it panics). The session checks of every
    /// user the work changed are forgotten before this returns. On SQLite the work takes the
    /// write connection's lock, as the sign-ins' writer does, so writes never contend in the
    /// file.
    ///
    /// The work runs on a blocking thread, so it may take its time deciding between statements
    /// without holding up the runtime.
    ///
    /// # Errors
    /// The database failing (begin, a statement, commit), or the work's own error.
    pub async fn write<T, E>(
        &self,
        work: impl FnOnce(&mut Tx<'_>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<DbErr> + Send + 'static,
    {
        self.refuse_if_read_only()?;
        let stopped = |error| DbErr::Custom(format!("a write stopped before it finished: {error}"));
        let (value, changed) = match self.backend().clone() {
            Backend::Sqlite(sqlite) => tokio::task::spawn_blocking(move || {
                sqlite.write(|conn| {
                    let mut tx =
                        Tx { exec: Exec::Sqlite(conn), changed: Vec::new(), wrote: Wrote::Other };
                    work(&mut tx).map(|value| ((value, tx.changed), tx.wrote))
                })
            })
            .await
            .map_err(stopped)??,
            Backend::Postgres(pg) => {
                let txn = Db::begin_write(&pg).await?;
                let runtime = tokio::runtime::Handle::current();
                let (outcome, txn) = tokio::task::spawn_blocking(move || {
                    let exec = Exec::Postgres { txn: txn.conn(), runtime: &runtime };
                    let mut tx = Tx { exec, changed: Vec::new(), wrote: Wrote::Other };
                    let outcome = work(&mut tx).map(|value| ((value, tx.changed), tx.wrote));
                    (outcome, txn)
                })
                .await
                .map_err(stopped)?;
                match outcome {
                    Ok((done, wrote)) => {
                        txn.commit().await?;
                        if wrote == Wrote::Accounts
                            && let Some(cache) = &pg.sessions
                        {
                            cache.accounts.changed();
                        }
                        done
                    }
                    Err(error) => {
                        let _ = txn.rollback().await;
                        return Err(error);
                    }
                }
            }
        };
        for user_id in &changed {
            self.forget_user(user_id);
        }
        Ok(value)
    }
}

impl Tx<'_> {
    /// The user with this id, as this transaction sees it.
    pub fn user_by_id(&self, user_id: &str) -> Result<Option<user::Model>, DbErr> {
        both!(self, user_by_id(user_id))
    }

    /// The user bound to this identity, as this transaction sees it.
    pub fn user_by_binding(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<user::Model>, DbErr> {
        both!(self, user_by_binding(issuer, subject))
    }

    /// Every user, oldest first.
    pub fn all_users(&self) -> Result<Vec<user::Model>, DbErr> {
        both!(self, all_users())
    }

    /// Creates a user unless its id or binding is taken; returns whether it did.
    pub fn insert_user_if_absent(
        &mut self,
        new: NewUser,
        now: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        changes!(self, insert_new_user(new, now))
    }

    /// Creates `user_id` as a team member who is not a user yet would be (an `internal_user`
    /// with nothing else; `created_by` in its metadata), unless it exists.
    pub fn ensure_member_user(&mut self, user_id: &str, created_by: &str) -> Result<(), DbErr> {
        changes!(self, ensure_member_user(user_id, created_by))
    }

    /// Applies an administrator's edit; the user as saved, or `None` when there is none.
    pub fn edit_user(
        &mut self,
        user_id: &str,
        edit: UserEdit,
        now: DateTime<Utc>,
    ) -> Result<Option<user::Model>, DbErr> {
        let saved = changes!(self, edit_user(user_id, edit, now))?;
        self.changed.push(user_id.to_owned());
        Ok(saved)
    }

    /// Revokes every live session of a user; how many there were.
    pub fn revoke_user_sessions(&mut self, user_id: &str) -> Result<u64, DbErr> {
        let revoked = both!(self, revoke_user_sessions(user_id))?;
        self.changed.push(user_id.to_owned());
        Ok(revoked)
    }

    /// Deletes users with their memberships and sessions; the ids that existed.
    pub fn delete_users(&mut self, user_ids: &[String]) -> Result<Vec<String>, DbErr> {
        let deleted = changes!(self, delete_users(user_ids))?;
        self.changed.extend(deleted.iter().cloned());
        Ok(deleted)
    }

    /// Creates a user provisioned by SCIM; the row as saved.
    pub fn insert_scim_user(
        &mut self,
        user_id: &str,
        fields: ScimUser,
        now: DateTime<Utc>,
    ) -> Result<user::Model, DbErr> {
        changes!(self, insert_scim_user(user_id, fields, now))
    }

    /// Sets what SCIM manages of a user; the row as saved.
    pub fn update_scim_user(
        &mut self,
        row: user::Model,
        fields: ScimUser,
        now: DateTime<Utc>,
    ) -> Result<user::Model, DbErr> {
        let saved = changes!(self, update_scim_user(row: row, fields, now))?;
        self.changed.push(saved.user_id.clone());
        Ok(saved)
    }

    /// The team with this id, as this transaction sees it.
    pub fn team_by_id(&self, team_id: &str) -> Result<Option<team::Model>, DbErr> {
        both!(self, team_by_id(team_id))
    }

    /// Which of these team ids exist.
    pub fn existing_teams(&self, team_ids: &[String]) -> Result<Vec<String>, DbErr> {
        both!(self, existing_teams(team_ids))
    }

    /// A team's memberships, in joining order.
    pub fn members_of_team(&self, team_id: &str) -> Result<Vec<team_member::Model>, DbErr> {
        both!(self, members_of_team(team_id))
    }

    /// Every team, oldest first, with its members' ids.
    pub fn all_teams_with_members(&self) -> Result<Vec<(team::Model, Vec<String>)>, DbErr> {
        both!(self, all_teams_with_members())
    }

    /// Creates a team.
    pub fn insert_team(&mut self, new: NewTeam, now: DateTime<Utc>) -> Result<(), DbErr> {
        changes!(self, insert_team(new, now))
    }

    /// Adds a member with `role`, or sets the role of one who is (an administrator's
    /// membership).
    pub fn upsert_member(&mut self, team_id: &str, user_id: &str, role: &str) -> Result<(), DbErr> {
        changes!(self, upsert_member(team_id, user_id, role))
    }

    /// Adds a member with `role` unless it is one.
    pub fn add_member_if_absent(
        &mut self,
        team_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<(), DbErr> {
        changes!(self, add_member_if_absent(team_id, user_id, role))
    }

    /// Removes a membership; whether there was one.
    pub fn delete_member(&mut self, team_id: &str, user_id: &str) -> Result<bool, DbErr> {
        changes!(self, delete_member(team_id, user_id))
    }

    /// Creates a team for a SCIM group.
    pub fn insert_scim_team(
        &mut self,
        team_id: &str,
        alias: &str,
        scim: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        changes!(self, insert_scim_team(team_id, alias, scim, now))
    }

    /// Renames a SCIM group's team (and sets its SCIM attributes, when given).
    pub fn update_scim_team(
        &mut self,
        row: team::Model,
        alias: &str,
        scim: Option<serde_json::Value>,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        changes!(self, update_scim_team(row: row, alias, scim, now))
    }

    /// Adds SCIM's memberships (source `scim`) to a team.
    pub fn add_scim_members(
        &mut self,
        team_id: &str,
        user_ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        changes!(self, add_scim_members(team_id, user_ids, now))
    }

    /// Removes SCIM's memberships of these users from a team; the ids removed.
    pub fn remove_scim_members(
        &mut self,
        team_id: &str,
        user_ids: &[String],
    ) -> Result<Vec<String>, DbErr> {
        changes!(self, remove_scim_members(team_id, user_ids))
    }

    /// Deletes a team and its memberships.
    pub fn delete_team(&mut self, team_id: &str) -> Result<(), DbErr> {
        changes!(self, delete_team(team_id))
    }

    /// Revokes a session; whether it was live.
    pub fn revoke_session(&mut self, token_hash: &str) -> Result<bool, DbErr> {
        both!(self, revoke_session(token_hash))
    }

    /// Records a sign-in attempt.
    pub fn insert_event(&mut self, record: &SignInRecord) -> Result<(), DbErr> {
        both!(self, insert_event(record))
    }

    /// Marks an OIDC flow used (and forgets those past their expiry); false when it already was.
    pub fn complete_flow(
        &mut self,
        flow_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        both!(self, complete_flow(flow_id, expires_at))
    }

    /// Deletes sessions that expired or were revoked, and sign-in events from before
    /// `keep_from`; how many of each.
    pub fn prune(
        &mut self,
        now: DateTime<Utc>,
        keep_from: DateTime<Utc>,
    ) -> Result<(u64, u64), DbErr> {
        both!(self, prune(now, keep_from))
    }
}
