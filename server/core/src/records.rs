//! What a sign-in leaves on record besides the account: its session and its event, with the
//! bounds on what a client can make the server store.

use chrono::{DateTime, Utc};
use plugin_api::UserRole;

use crate::{
    ids::{MAX_ID, is_storable_id, shorten},
    values::MAX_GROUPS,
};

/// The longest reason an event records.
pub const MAX_REASON: usize = 1000;
/// The longest request id an event records.
pub const MAX_REQUEST_ID: usize = 64;

/// A session to store: the hash of its key (the key itself is never stored) and what it grants.
#[derive(Debug, Clone, PartialEq)]
pub struct NewSession {
    /// SHA-256 of the session key, hex.
    pub token_hash: String,
    /// The user.
    pub user_id: String,
    /// The role it was issued with (authorisation reads the user's current one).
    pub user_role: UserRole,
    /// LiteLLM's `login_method` claim (`sso`, `username_password`).
    pub login_method: &'static str,
    /// The models it was issued with.
    pub models: Vec<String>,
    /// `max_ui_session_budget`.
    pub max_budget: Option<f64>,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it ends.
    pub expires_at: DateTime<Utc>,
}

/// A sign-in attempt as the event log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInRecord {
    /// When.
    pub at: DateTime<Utc>,
    /// The user it concerns, when known.
    pub user_id: Option<String>,
    /// The front door (`header`, `oidc`, `password`).
    pub method: &'static str,
    /// `allowed`, `refused` or `failed`.
    pub outcome: String,
    /// Why, for a refusal or failure.
    pub reason: Option<String>,
    /// The client's address (behind a trusted proxy, the one it forwarded).
    pub client: String,
    /// The request id (`-` for a summary of many attempts).
    pub request_id: String,
    /// For an allowed single sign-on, the groups the identity named (the team ids an
    /// authoritative sync compares memberships with), bounded ([`recorded_groups`]); `None`
    /// otherwise.
    pub groups: Option<Vec<String>>,
    /// For an allowed single sign-on whose role mapping read a claim of its own
    /// (`role_mappings.group_claim`), the groups it read there, bounded alike; `None` otherwise
    /// (the role mapping read `groups`).
    pub role_groups: Option<Vec<String>>,
}

impl SignInRecord {
    /// A record, with every client-chosen part cut to its bound: the user id to [`MAX_ID`]
    /// characters, the reason to [`MAX_REASON`], the request id to [`MAX_REQUEST_ID`].
    pub fn new(
        at: DateTime<Utc>,
        user_id: Option<&str>,
        method: &'static str,
        outcome: &str,
        reason: Option<&str>,
        client: String,
        request_id: &str,
    ) -> SignInRecord {
        SignInRecord {
            at,
            user_id: user_id.map(|id| shorten(id, MAX_ID)),
            method,
            outcome: outcome.to_owned(),
            reason: reason.map(|reason| shorten(reason, MAX_REASON)),
            client,
            request_id: shorten(request_id, MAX_REQUEST_ID),
            groups: None,
            role_groups: None,
        }
    }

    /// The record with the groups the identity named and, when a claim of their own gave them,
    /// the groups the role mapping read ([`recorded_groups`], both).
    pub fn with_groups(
        mut self,
        groups: &[String],
        role_groups: Option<&[String]>,
    ) -> SignInRecord {
        self.groups = Some(recorded_groups(groups));
        self.role_groups = role_groups.map(recorded_groups);
        self
    }
}

/// The groups an event records of those an identity named: the ones that can be team ids
/// ([`is_storable_id`]: at most [`MAX_ID`] bytes, no control characters), at most
/// [`MAX_GROUPS`], each once, in the identity's order. A group left out names no team, so a
/// sync's removals computed from the record are the sign-in's.
pub fn recorded_groups(groups: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    groups
        .iter()
        .filter(|group| is_storable_id(group) && seen.insert(group.as_str()))
        .take(MAX_GROUPS)
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn what_a_client_chose_is_cut_to_its_bound() {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        let long = "é".repeat(5000);
        let record = SignInRecord::new(
            at,
            Some(&long),
            "header",
            "refused",
            Some(&long),
            "::1".into(),
            &long,
        );
        assert_eq!(record.user_id.unwrap().chars().count(), MAX_ID);
        assert_eq!(record.reason.unwrap().chars().count(), MAX_REASON);
        assert_eq!(record.request_id.chars().count(), MAX_REQUEST_ID);
        let short = SignInRecord::new(at, None, "oidc", "allowed", None, "::1".into(), "r-1");
        assert_eq!((short.user_id, short.reason, short.request_id.as_str()), (None, None, "r-1"));
        assert_eq!(short.groups, None, "only an allowed single sign-on records groups");
    }

    #[test]
    fn recorded_groups_are_those_that_can_name_a_team() {
        let text = |items: &[&str]| items.iter().map(|item| (*item).to_owned()).collect::<Vec<_>>();
        let long = "g".repeat(MAX_ID + 1);
        let at_bound = "g".repeat(MAX_ID);
        // (name, named, recorded)
        let cases: [(&str, Vec<String>, Vec<String>); 4] = [
            ("none", text(&[]), text(&[])),
            ("in order, each once", text(&["ops", "eng", "ops"]), text(&["ops", "eng"])),
            (
                "too long or with control characters: no team id can be one",
                vec![long, at_bound.clone(), "a\nb".into(), "eng".into()],
                vec![at_bound, "eng".into()],
            ),
            ("unicode ids are kept", text(&["équipe"]), text(&["équipe"])),
        ];
        for (name, named, recorded) in cases {
            assert_eq!(recorded_groups(&named), recorded, "{name}");
        }
        let many: Vec<String> = (0..MAX_GROUPS + 5).map(|n| n.to_string()).collect();
        assert_eq!(recorded_groups(&many).len(), MAX_GROUPS);
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap();
        let record = SignInRecord::new(at, Some("ann"), "oidc", "allowed", None, "::1".into(), "r")
            .with_groups(&text(&["eng", "eng"]), None);
        assert_eq!((record.groups, record.role_groups), (Some(text(&["eng"])), None));
        let record = SignInRecord::new(at, Some("ann"), "oidc", "allowed", None, "::1".into(), "r")
            .with_groups(&text(&["eng"]), Some(&text(&["admin", "admin"])));
        assert_eq!(record.role_groups, Some(text(&["admin"])));
    }
}
