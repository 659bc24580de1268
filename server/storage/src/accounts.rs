//! The generation of the accounts: what tells a remembered sign-in snapshot (the accounts,
//! memberships and teams one decision reads) from a stale one, on both databases.
//!
//! It moves on after the commit of every write by this process that may have changed a user, a
//! team or a membership, before that write's caller gets its answer, but not after a returning
//! user's sign-in, which writes only its session and its event. A snapshot is remembered under
//! the generation it was read at and used only while the generation is still that one.
//!
//! Changes made elsewhere move it too, as soon as this process learns of them; a plan made on a
//! snapshot remembered before such a change is stale ([`Accounts::changed_outside_since`]) and
//! is decided again on a new read:
//!
//! - **SQLite** (`super::sqlite`): another process's commit (an operator's `sqlite3`, a second
//!   server on the file) is seen by the write connection's `PRAGMA data_version`, looked at
//!   first in every write transaction and every [`crate::sqlite::LOOK_OUTSIDE`] in between.
//! - **PostgreSQL** (`super::sessions`): every statement that changes `users`, `teams` or
//!   `team_members`, by any process, sends `NOTIFY hookgate_accounts` (the schema's triggers,
//!   so no write path can forget to), delivered when its transaction commits. Each replica's
//!   listener moves the generation on when it hears one. For the milliseconds between another
//!   replica's commit and its notification, the writer waits, before it applies a plan made on a
//!   remembered snapshot, for a notification of its own to come back (a barrier): PostgreSQL
//!   delivers notifications in the order their transactions committed, so every change
//!   committed before the barrier has been heard by then. Snapshots are remembered only while
//!   the listener is up; a barrier that does not come back in time counts as a change.

use std::sync::atomic::{AtomicU64, Ordering};

/// The generation of the accounts: see the module's documentation.
#[derive(Debug, Default)]
pub(crate) struct Accounts {
    generation: AtomicU64,
    /// The generation the last change made elsewhere moved it to.
    outside: AtomicU64,
}

impl Accounts {
    /// The generation now (a read that starts after this may be remembered under it).
    pub(crate) fn now(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// After the commit of a write by this process that may have changed an account, team or
    /// membership.
    pub(crate) fn changed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// When this process learns of a change made elsewhere (or may have missed one).
    pub(crate) fn changed_outside(&self) {
        let now = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.outside.fetch_max(now, Ordering::SeqCst);
    }

    /// Whether a snapshot remembered at `generation` may predate a change made elsewhere (and a
    /// plan made on it must be made again).
    pub(crate) fn changed_outside_since(&self, generation: u64) -> bool {
        generation < self.outside.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::Accounts;

    #[test]
    fn only_a_change_made_elsewhere_makes_a_remembered_plan_stale() {
        let accounts = Accounts::default();
        let remembered = accounts.now();
        accounts.changed();
        assert_ne!(accounts.now(), remembered, "this process's change forgets");
        assert!(!accounts.changed_outside_since(remembered), "without making the plan stale");
        let after = accounts.now();
        accounts.changed_outside();
        assert_ne!(accounts.now(), after);
        assert!(accounts.changed_outside_since(remembered));
        assert!(accounts.changed_outside_since(after));
        assert!(!accounts.changed_outside_since(accounts.now()));
    }
}
