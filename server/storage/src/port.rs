//! The storage port: everything the server reads and writes, as methods of [`Db`]. Nothing
//! above this crate sees a connection, a transaction or a statement: reads are `async` methods
//! here; writes are units of work handed to [`Db::write`], which runs them in one transaction
//! ([`Tx`]) and answers after the commit, having made this process forget the session checks of
//! every user the work changed. Sign-ins' plans go through [`crate::Writer`] (the group
//! commit). The port's own tests (`port/tests.rs`) run each method on SQLite and on PostgreSQL.

mod tx;

pub use self::tx::Tx;

use chrono::{DateTime, Utc};
use hookgate_core::{
    records::SignInRecord,
    signin::{Keys, Snapshot},
};
use sea_orm::DbErr;

use crate::{
    Db,
    entity::{sign_in_event, team, team_member, user},
    store,
    types::{UserFilter, UserStanding},
};

impl Db {
    /// The user with this id.
    pub async fn user_by_id(&self, user_id: &str) -> Result<Option<user::Model>, DbErr> {
        store::user_by_id(self.conn(), user_id).await
    }

    /// The user bound to this identity (issuer, subject), if any.
    pub async fn user_by_binding(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<user::Model>, DbErr> {
        store::user_by_binding(self.conn(), issuer, subject).await
    }

    /// A page of users (1-based) matching `filter`, and how many match.
    pub async fn list_users(
        &self,
        filter: &UserFilter,
        page: u64,
        page_size: u64,
    ) -> Result<(Vec<user::Model>, u64), DbErr> {
        store::list_users(self.conn(), filter, page, page_size).await
    }

    /// Every user, oldest first.
    pub async fn all_users(&self) -> Result<Vec<user::Model>, DbErr> {
        store::all_users(self.conn()).await
    }

    /// The ids of the teams a user is in, in joining order.
    pub async fn team_ids_of_user(&self, user_id: &str) -> Result<Vec<String>, DbErr> {
        store::teams_of_user(self.conn(), user_id).await
    }

    /// The team with this id.
    pub async fn team_by_id(&self, team_id: &str) -> Result<Option<team::Model>, DbErr> {
        store::team_by_id(self.conn(), team_id).await
    }

    /// Every team, by id.
    pub async fn list_teams(&self) -> Result<Vec<team::Model>, DbErr> {
        store::list_teams(self.conn()).await
    }

    /// A team's memberships, in joining order.
    pub async fn members_of_team(&self, team_id: &str) -> Result<Vec<team_member::Model>, DbErr> {
        store::members_of_team(self.conn(), team_id).await
    }

    /// Every team, oldest first, with its members' ids.
    pub async fn all_teams_with_members(&self) -> Result<Vec<(team::Model, Vec<String>)>, DbErr> {
        store::all_teams_with_members(self.conn()).await
    }

    /// The key hashes of a user's live sessions.
    pub async fn live_session_hashes(&self, user_id: &str) -> Result<Vec<String>, DbErr> {
        store::live_session_hashes(self.conn(), user_id).await
    }

    /// How many sessions are live.
    pub async fn count_live_sessions(&self) -> Result<u64, DbErr> {
        store::count_live_sessions(self.conn()).await
    }

    /// The latest sign-in events, of one user or of everyone, newest first.
    pub async fn recent_events(
        &self,
        user_id: Option<&str>,
        limit: u64,
    ) -> Result<Vec<sign_in_event::Model>, DbErr> {
        store::recent_events(self.conn(), user_id, limit).await
    }

    /// A page of sign-in events (1-based), newest first, and how many there are.
    pub async fn events_page(
        &self,
        page: u64,
        page_size: u64,
    ) -> Result<(Vec<sign_in_event::Model>, u64), DbErr> {
        store::events_page(self.conn(), page, page_size).await
    }

    /// Every user's standing, for the sync preview.
    pub async fn user_standings(&self) -> Result<Vec<UserStanding>, DbErr> {
        store::user_standings(self.conn()).await
    }

    /// What one sign-in needs to decide.
    pub async fn snapshot(&self, keys: &Keys) -> Result<Snapshot, DbErr> {
        store::snapshot(self.conn(), keys).await
    }

    /// Records a sign-in attempt (a refused or failed one: an allowed sign-in's event is part of
    /// its plan).
    pub async fn insert_event(&self, record: &SignInRecord) -> Result<(), DbErr> {
        self.refuse_if_read_only()?;
        store::insert_event(self.conn(), record).await
    }

    /// Marks an OIDC flow used; false when it already was (a replayed callback).
    pub async fn complete_flow(
        &self,
        flow_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        self.refuse_if_read_only()?;
        store::complete_flow(self.conn(), flow_id, expires_at).await
    }
}

#[cfg(test)]
mod tests;
