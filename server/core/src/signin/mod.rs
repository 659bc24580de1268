//! The sign-in's rules as one pure function, [`decide`]: from what the identity says, what the
//! `custom_sso` hook decided, what the database held when the sign-in read it (a [`Snapshot`]),
//! the settings ([`Policy`](crate::policy::Policy)) and the clock, to a [`Plan`] of writes or a
//! [`Refusal`] — no I/O, no HTTP, no storage types.
//!
//! The server's pipeline reads the snapshot, runs the hooks, calls [`decide`], and applies the
//! plan in one transaction. A plan made from a snapshot another sign-in has since changed is
//! refused by the write (it checks what it read) and made again.

mod decide;
mod lookup;
mod model;
mod plan;
mod sync;
mod teams;

pub use self::{
    decide::decide,
    lookup::{identity_keys, keys},
    model::{Account, Keys, Membership, RESERVED_USER_IDS, Snapshot, Source, Staged, Team},
    plan::{Changes, Input, NewAccount, Plan, Refusal, UserWrite},
    sync::{Preview, Standing, preview_first_sync, removed_by_sync, role_after},
    teams::{NewTeam, RESERVED_TEAM_IDS},
};

#[cfg(test)]
mod identity_tests;
#[cfg(test)]
mod team_tests;
#[cfg(test)]
mod tests;
