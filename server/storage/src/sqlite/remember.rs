//! What SQLite's readers remember between reads, and how each entry is known to be still true.
//!
//! Two kinds of memory, each exact (never timed):
//!
//! - **Session checks and a user's teams**, which every Admin UI page and management call
//!   repeats, are kept for one value of SQLite's `PRAGMA data_version` on the reader: it changes
//!   whenever any other connection commits (this process's writer, or another process), so a
//!   revocation, deletion or role change is seen by the next read.
//! - **Sign-in snapshots** (the accounts, memberships and teams one decision reads) are kept for
//!   one [`crate::accounts::Accounts`] generation: it moves on after every commit that may have changed a user, a
//!   team or a membership — before that write's caller gets its answer — but not after a
//!   returning user's sign-in, which writes only its session and its event. So a returning
//!   user's next sign-in decides on what it read last time, without a statement, while nothing
//!   it read has changed; `data_version` would have been useless here, as every sign-in commits.
//!
//! Every write on SQLite goes through this process's one write connection (`Lite::write`), so
//! the generation sees every change but another process's (an operator's `sqlite3` shell, a
//! second server on the same file). Those the write connection sees: its own `data_version`
//! moves only when another connection commits, and every write transaction looks at it first.
//! When it moved, the generation moves on (nothing remembered is used again) and the sign-ins
//! whose plans were made on a snapshot remembered before are stale: they decide again on a new
//! read, as a sign-in whose account changed under it does. A refusal is never decided on a
//! remembered snapshot (the sign-in reads again first), so the short time before the next write
//! cannot refuse anyone on what another process has changed.

use std::collections::HashMap;

use hookgate_core::signin::{Keys, Snapshot};

use crate::entity::{session, team, user};

/// What one reader remembers.
#[derive(Default)]
pub(super) struct Remembered {
    /// The `data_version` the session checks and teams were read at.
    version: Option<i64>,
    pub(super) sessions: HashMap<String, (session::Model, user::Model)>,
    pub(super) teams: HashMap<String, Vec<team::Model>>,
    /// Sign-in snapshots by their keys, with the [`crate::accounts::Accounts`] generation each was read at.
    snapshots: HashMap<Keys, (u64, Snapshot)>,
}

impl Remembered {
    /// The session checks and teams, forgotten unless the database is still at `version`.
    pub(super) fn at(&mut self, version: i64) -> &mut Self {
        if self.version != Some(version) {
            self.sessions.clear();
            self.teams.clear();
            self.version = Some(version);
        }
        self
    }

    /// The snapshot remembered for `keys`, if it was read at `generation`.
    pub(super) fn snapshot(&self, keys: &Keys, generation: u64) -> Option<&Snapshot> {
        self.snapshots.get(keys).filter(|(at, _)| *at == generation).map(|(_, snapshot)| snapshot)
    }

    /// Remembers a snapshot read at `generation` (or a later one).
    pub(super) fn keep_snapshot(&mut self, keys: &Keys, generation: u64, snapshot: Snapshot) {
        crate::keep_bounded(&mut self.snapshots, keys, (generation, snapshot));
    }
}
