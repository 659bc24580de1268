//! Queries, each a function over any connection or transaction.
//!
//! One file per aggregate: `users`, `teams` (and memberships), `sessions`, `events` (sign-in
//! events, completed OIDC flows, retention pruning), `scim` (what the SCIM endpoint reads and
//! writes), `sign_in` (the sign-in's snapshot read and its guarded update), and `standings`
//! (what `hookgate sync --dry-run` reads). Everything is re-exported here, so callers name
//! `store::…`; the shared helpers (the clock's precision, JSON lists) are here too.

mod batch;
mod events;
mod scim;
mod sessions;
mod sign_in;
mod standings;
mod teams;
mod users;

use chrono::{DateTime, SubsecRound, Utc};

#[cfg(test)]
pub(crate) use self::batch::chunks;
pub(crate) use self::{
    batch::apply_batch,
    sign_in::{row_of, snapshot, update_if_unchanged},
    users::member_user_row,
};
pub(super) use self::{events::event_row, sessions::session_row, teams::sign_in_team_row};
pub(crate) use self::{
    events::{complete_flow, events_page, insert_event, prune, recent_events},
    scim::{
        add_scim_members, all_teams_with_members, all_users, delete_team, insert_scim_team,
        insert_scim_user, remove_scim_members, update_scim_team, update_scim_user,
    },
    sessions::{
        count_live_sessions, live_session_hashes, live_session_user, revoke_session,
        revoke_user_sessions,
    },
    standings::user_standings,
    teams::{
        add_member_if_absent, delete_member, existing_teams, insert_team, list_teams,
        members_of_team, team_by_id, teams_of_user, teams_of_user_with_info, upsert_member,
    },
    users::{
        delete_users, edit_user, ensure_member_user, insert_new_user, list_users, new_user_row,
        user_by_binding, user_by_id,
    },
};

/// Now, at the precision every backend stores (microseconds).
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// A JSON array of strings.
pub fn json_list(items: &[String]) -> serde_json::Value {
    serde_json::Value::Array(items.iter().cloned().map(serde_json::Value::String).collect())
}

/// The strings of a JSON array (anything else reads as empty).
pub fn list_of(value: &serde_json::Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| items.iter().filter_map(|item| item.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}
