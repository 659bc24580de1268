//! Writes: a unit of work run in one transaction ([`Db::write`]) over [`Tx`], the statements a
//! write may make.

use chrono::{DateTime, Utc};
use sea_orm::{DatabaseTransaction, DbErr};

use crate::{
    Db,
    entity::{team, team_member, user},
    store,
    types::{NewTeam, NewUser, ScimUser, UserEdit},
};


/// The statements of one write transaction ([`Db::write`]). Each method runs at once, in the
/// transaction; what a method changes of a user makes the session checks of that user
/// forgotten once the transaction commits.
pub struct Tx<'a> {
    txn: &'a DatabaseTransaction,
    runtime: &'a tokio::runtime::Handle,
    /// The users whose session checks are forgotten after the commit.
    changed: Vec<String>,
}

impl Db {
    /// Runs `work` in one write transaction and answers after its commit: committed if `work`
    /// returns `Ok`, rolled back otherwise (and when it panics). The session checks of every
    /// user the work changed are forgotten before this returns.
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
        let txn = self.begin_write().await?;
        let runtime = tokio::runtime::Handle::current();
        let (outcome, txn) = tokio::task::spawn_blocking(move || {
            let mut tx = Tx { txn: txn.conn(), runtime: &runtime, changed: Vec::new() };
            let outcome = work(&mut tx).map(|value| (value, tx.changed));
            (outcome, txn)
        })
        .await
        .map_err(|error| DbErr::Custom(format!("a write stopped before it finished: {error}")))?;
        match outcome {
            Ok((value, changed)) => {
                txn.commit().await?;
                for user_id in &changed {
                    self.forget_user(user_id);
                }
                Ok(value)
            }
            Err(error) => {
                let _ = txn.rollback().await;
                Err(error)
            }
        }
    }
}

impl Tx<'_> {
    fn run<T>(&self, statement: impl Future<Output = Result<T, DbErr>>) -> Result<T, DbErr> {
        self.runtime.block_on(statement)
    }

    /// The user with this id, as this transaction sees it.
    pub fn user_by_id(&self, user_id: &str) -> Result<Option<user::Model>, DbErr> {
        self.run(store::user_by_id(self.txn, user_id))
    }

    /// The user bound to this identity, as this transaction sees it.
    pub fn user_by_binding(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<user::Model>, DbErr> {
        self.run(store::user_by_binding(self.txn, issuer, subject))
    }

    /// Every user, oldest first.
    pub fn all_users(&self) -> Result<Vec<user::Model>, DbErr> {
        self.run(store::all_users(self.txn))
    }

    /// Creates a user unless its id or binding is taken; returns whether it did.
    pub fn insert_user_if_absent(
        &mut self,
        new: NewUser,
        now: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        let row = store::new_user_row(
            new.user_id,
            new.user_email,
            new.user_alias,
            new.role,
            &new.models,
            new.max_budget,
            new.budget_duration,
            new.binding.map(|binding| (binding.issuer, binding.subject)),
            new.metadata,
            now,
        );
        self.run(store::insert_user_if_absent(self.txn, row))
    }

    /// Creates `user_id` as a team member who is not a user yet would be (an `internal_user`
    /// with nothing else; `created_by` in its metadata), unless it exists.
    pub fn ensure_member_user(&mut self, user_id: &str, created_by: &str) -> Result<(), DbErr> {
        self.run(store::ensure_member_user(self.txn, user_id, created_by))
    }

    /// Applies an administrator's edit; the user as saved, or `None` when there is none.
    pub fn edit_user(
        &mut self,
        user_id: &str,
        edit: UserEdit,
        now: DateTime<Utc>,
    ) -> Result<Option<user::Model>, DbErr> {
        let saved = self.run(store::edit_user(self.txn, user_id, edit, now))?;
        self.changed.push(user_id.to_owned());
        Ok(saved)
    }

    /// Revokes every live session of a user; how many there were.
    pub fn revoke_user_sessions(&mut self, user_id: &str) -> Result<u64, DbErr> {
        let revoked = self.run(store::revoke_user_sessions(self.txn, user_id))?;
        self.changed.push(user_id.to_owned());
        Ok(revoked)
    }

    /// Deletes users with their memberships and sessions; the ids that existed.
    pub fn delete_users(&mut self, user_ids: &[String]) -> Result<Vec<String>, DbErr> {
        let deleted = self.run(store::delete_users(self.txn, user_ids))?;
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
        self.run(store::insert_scim_user(self.txn, user_id, fields, now))
    }

    /// Sets what SCIM manages of a user; the row as saved.
    pub fn update_scim_user(
        &mut self,
        row: user::Model,
        fields: ScimUser,
        now: DateTime<Utc>,
    ) -> Result<user::Model, DbErr> {
        let saved = self.run(store::update_scim_user(self.txn, row, fields, now))?;
        self.changed.push(saved.user_id.clone());
        Ok(saved)
    }

    /// The team with this id, as this transaction sees it.
    pub fn team_by_id(&self, team_id: &str) -> Result<Option<team::Model>, DbErr> {
        self.run(store::team_by_id(self.txn, team_id))
    }

    /// Which of these team ids exist.
    pub fn existing_teams(&self, team_ids: &[String]) -> Result<Vec<String>, DbErr> {
        self.run(store::existing_teams(self.txn, team_ids))
    }

    /// A team's memberships, in joining order.
    pub fn members_of_team(&self, team_id: &str) -> Result<Vec<team_member::Model>, DbErr> {
        self.run(store::members_of_team(self.txn, team_id))
    }

    /// Every team, oldest first, with its members' ids.
    pub fn all_teams_with_members(&self) -> Result<Vec<(team::Model, Vec<String>)>, DbErr> {
        self.run(store::all_teams_with_members(self.txn))
    }

    /// Creates a team.
    pub fn insert_team(&mut self, new: NewTeam, now: DateTime<Utc>) -> Result<(), DbErr> {
        self.run(store::insert_team(self.txn, new, now))
    }

    /// Adds a member with `role`, or sets the role of one who is (an administrator's
    /// membership).
    pub fn upsert_member(&mut self, team_id: &str, user_id: &str, role: &str) -> Result<(), DbErr> {
        self.run(store::upsert_member(self.txn, team_id, user_id, role))
    }

    /// Adds a member with `role` unless it is one.
    pub fn add_member_if_absent(
        &mut self,
        team_id: &str,
        user_id: &str,
        role: &str,
    ) -> Result<(), DbErr> {
        self.run(store::add_member_if_absent(self.txn, team_id, user_id, role))
    }

    /// Removes a membership; whether there was one.
    pub fn delete_member(&mut self, team_id: &str, user_id: &str) -> Result<bool, DbErr> {
        self.run(store::delete_member(self.txn, team_id, user_id))
    }

    /// Creates a team for a SCIM group.
    pub fn insert_scim_team(
        &mut self,
        team_id: &str,
        alias: &str,
        scim: serde_json::Value,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        self.run(store::insert_scim_team(self.txn, team_id, alias, scim, now))
    }

    /// Renames a SCIM group's team (and sets its SCIM attributes, when given).
    pub fn update_scim_team(
        &mut self,
        row: team::Model,
        alias: &str,
        scim: Option<serde_json::Value>,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        self.run(store::update_scim_team(self.txn, row, alias, scim, now))
    }

    /// Adds SCIM's memberships (source `scim`) to a team.
    pub fn add_scim_members(
        &mut self,
        team_id: &str,
        user_ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        self.run(store::add_scim_members(self.txn, team_id, user_ids, now))
    }

    /// Removes SCIM's memberships of these users from a team; the ids removed.
    pub fn remove_scim_members(
        &mut self,
        team_id: &str,
        user_ids: &[String],
    ) -> Result<Vec<String>, DbErr> {
        self.run(store::remove_scim_members(self.txn, team_id, user_ids))
    }

    /// Deletes a team and its memberships.
    pub fn delete_team(&mut self, team_id: &str) -> Result<(), DbErr> {
        self.run(store::delete_team(self.txn, team_id))
    }
}
