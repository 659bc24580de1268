//! The storage port: everything the server reads and writes, as methods of [`Db`]. Nothing
//! above this crate sees a connection, a transaction or a statement: reads are `async` methods
//! here; writes are units of work handed to [`Db::write`], which runs them in one transaction
//! ([`Tx`]) and answers after the commit, having made this process forget the session checks of
//! every user the work changed. Sign-ins' plans go through [`crate::Writer`] (the group
//! commit). Each method runs the same query on either backend: on SQLite its twin
//! (`crate::lite`), on the calling thread's read connection; on PostgreSQL the original, on
//! the pool. The port's own tests (`port/tests.rs`) run each method on both.

mod tx;

pub use self::tx::Tx;

use chrono::{DateTime, Utc};
use hookgate_core::{
    records::SignInRecord,
    signin::{Keys, Snapshot},
};
use sea_orm::DbErr;

use crate::{
    Backend, Db,
    entity::{session, sign_in_event, team, team_member, user},
    lite, store,
    types::{UserFilter, UserStanding},
};

/// A read: the twin query on SQLite, the original on PostgreSQL.
macro_rules! read {
    ($db:expr, $query:ident($($arg:expr),*)) => {
        match $db.backend() {
            Backend::Sqlite(sqlite) => sqlite.read(|conn| lite::store::$query(conn, $($arg),*)),
            Backend::Postgres(pg) => store::$query(&pg.conn, $($arg),*).await,
        }
    };
}

/// A sign-in's snapshot as the port answers it.
#[derive(Debug, Clone)]
pub struct SignInRead {
    /// What the decision reads.
    pub snapshot: Snapshot,
    /// Set when it was remembered from an earlier read rather than read now (while no account,
    /// team or membership changed): a plan made on it carries this to the writer
    /// ([`crate::Job::remembered`]), which makes the plan again if another process (or replica)
    /// changed one since.
    pub remembered: Option<Remembered>,
}

/// The generation of the accounts a remembered snapshot is good for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remembered(pub(crate) u64);

impl SignInRead {
    /// A snapshot read now.
    pub fn read(snapshot: Snapshot) -> SignInRead {
        SignInRead { snapshot, remembered: None }
    }
}

impl Db {
    /// The user with this id.
    pub async fn user_by_id(&self, user_id: &str) -> Result<Option<user::Model>, DbErr> {
        read!(self, user_by_id(user_id))
    }

    /// The user bound to this identity (issuer, subject), if any.
    pub async fn user_by_binding(
        &self,
        issuer: &str,
        subject: &str,
    ) -> Result<Option<user::Model>, DbErr> {
        read!(self, user_by_binding(issuer, subject))
    }

    /// A page of users (1-based) matching `filter`, and how many match.
    pub async fn list_users(
        &self,
        filter: &UserFilter,
        page: u64,
        page_size: u64,
    ) -> Result<(Vec<user::Model>, u64), DbErr> {
        read!(self, list_users(filter, page, page_size))
    }

    /// Every user, oldest first.
    pub async fn all_users(&self) -> Result<Vec<user::Model>, DbErr> {
        read!(self, all_users())
    }

    /// The ids of the teams a user is in, in joining order.
    pub async fn team_ids_of_user(&self, user_id: &str) -> Result<Vec<String>, DbErr> {
        read!(self, teams_of_user(user_id))
    }

    /// The team with this id.
    pub async fn team_by_id(&self, team_id: &str) -> Result<Option<team::Model>, DbErr> {
        read!(self, team_by_id(team_id))
    }

    /// Every team, by id.
    pub async fn list_teams(&self) -> Result<Vec<team::Model>, DbErr> {
        read!(self, list_teams())
    }

    /// A team's memberships, in joining order.
    pub async fn members_of_team(&self, team_id: &str) -> Result<Vec<team_member::Model>, DbErr> {
        read!(self, members_of_team(team_id))
    }

    /// Every team, oldest first, with its members' ids.
    pub async fn all_teams_with_members(&self) -> Result<Vec<(team::Model, Vec<String>)>, DbErr> {
        read!(self, all_teams_with_members())
    }

    /// The key hashes of a user's live sessions.
    pub async fn live_session_hashes(&self, user_id: &str) -> Result<Vec<String>, DbErr> {
        read!(self, live_session_hashes(user_id))
    }

    /// How many sessions are live.
    pub async fn count_live_sessions(&self) -> Result<u64, DbErr> {
        read!(self, count_live_sessions())
    }

    /// The latest sign-in events, of one user or of everyone, newest first.
    pub async fn recent_events(
        &self,
        user_id: Option<&str>,
        limit: u64,
    ) -> Result<Vec<sign_in_event::Model>, DbErr> {
        read!(self, recent_events(user_id, limit))
    }

    /// A page of sign-in events (1-based), newest first, and how many there are.
    pub async fn events_page(
        &self,
        page: u64,
        page_size: u64,
    ) -> Result<(Vec<sign_in_event::Model>, u64), DbErr> {
        read!(self, events_page(page, page_size))
    }

    /// Every user's standing, for the sync preview.
    pub async fn user_standings(&self) -> Result<Vec<UserStanding>, DbErr> {
        read!(self, user_standings())
    }

    /// The live session with this key hash and its user: remembered by this thread while
    /// nothing says it changed (`crate::sessions`: on SQLite no statement is made then), else
    /// read now (on SQLite on the calling thread's read connection: a primary-key lookup in WAL
    /// mode never waits for the writer) and remembered.
    pub async fn live_session_user(
        &self,
        token_hash: &str,
    ) -> Result<Option<(session::Model, user::Model)>, DbErr> {
        let memory = self.memory();
        let ticket = match memory.map(|memory| memory.lookup(token_hash, store::now())) {
            Some(Ok(found)) => return Ok(Some(found)),
            Some(Err(ticket)) => ticket,
            None => None,
        };
        let found = read!(self, live_session_user(token_hash))?;
        if let (Some(memory), Some(ticket), Some(found)) = (memory, ticket, &found) {
            memory.keep(ticket, token_hash, found);
        }
        Ok(found)
    }

    /// The teams a user is in (`GET /user/info`, the Admin UI): remembered by this thread as
    /// sign-in snapshots are (every change to a team or a membership makes them stale), else
    /// read now and remembered.
    pub async fn teams_of_user(&self, user_id: &str) -> Result<Vec<team::Model>, DbErr> {
        let memory = self.memory();
        let generation = match memory.map(|memory| memory.teams(user_id)) {
            Some(Ok((teams, _))) => return Ok(teams),
            Some(Err(generation)) => generation,
            None => None,
        };
        let teams = read!(self, teams_of_user_with_info(user_id))?;
        if let (Some(memory), Some(generation)) = (memory, generation) {
            memory.keep_teams(user_id, generation, teams.clone());
        }
        Ok(teams)
    }

    /// What one sign-in needs to decide: remembered by this thread from an earlier read of the
    /// same keys while no account, team or membership has changed since (then
    /// [`SignInRead::remembered`] says so), else read now.
    pub async fn snapshot(&self, keys: &Keys) -> Result<SignInRead, DbErr> {
        match self.backend() {
            Backend::Sqlite(sqlite) => sqlite.snapshot(keys),
            Backend::Postgres(pg) => pg.snapshot(keys).await,
        }
    }

    /// What one sign-in needs to decide, read now (never remembered): what a refusal is
    /// decided on, and a rehearsal.
    pub async fn read_snapshot(&self, keys: &Keys) -> Result<Snapshot, DbErr> {
        read!(self, snapshot(keys))
    }

    /// Records a sign-in attempt (a refused or failed one: an allowed sign-in's event is part of
    /// its plan).
    pub async fn insert_event(&self, record: &SignInRecord) -> Result<(), DbErr> {
        let record = record.clone();
        self.write(move |tx| tx.insert_event(&record)).await
    }

    /// Marks an OIDC flow used; false when it already was (a replayed callback).
    pub async fn complete_flow(
        &self,
        flow_id: &str,
        expires_at: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        let flow_id = flow_id.to_owned();
        self.write(move |tx| tx.complete_flow(&flow_id, expires_at)).await
    }
}

#[cfg(test)]
mod tests;
