//! What the templates see: small view types built from the entity models, so a template
//! renders exactly the fields named here and a column added to a table reaches no page unseen.

use crate::db::entity::{sign_in_event, team_member, user};

/// A user, as the profile, the user list and the edit page show it.
pub(super) struct UserView {
    pub user_id: String,
    pub user_email: Option<String>,
    pub user_alias: Option<String>,
    pub user_role: Option<String>,
    /// The model list as stored (JSON text), for the user list.
    pub models: String,
    pub max_budget: Option<f64>,
    pub spend: f64,
    pub budget_duration: Option<String>,
    /// The next budget reset, formatted (`%Y-%m-%d %H:%M UTC`).
    pub budget_reset_at: Option<String>,
    pub sso_issuer: Option<String>,
    pub sso_user_id: Option<String>,
}

impl From<&user::Model> for UserView {
    fn from(row: &user::Model) -> Self {
        Self {
            user_id: row.user_id.clone(),
            user_email: row.user_email.clone(),
            user_alias: row.user_alias.clone(),
            user_role: row.user_role.clone(),
            models: row.models.to_string(),
            max_budget: row.max_budget,
            spend: row.spend,
            budget_duration: row.budget_duration.clone(),
            budget_reset_at: row
                .budget_reset_at
                .map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string()),
            sso_issuer: row.sso_issuer.clone(),
            sso_user_id: row.sso_user_id.clone(),
        }
    }
}

/// A sign-in event, as the profile and the sign-in log show it.
pub(super) struct EventView {
    /// When, formatted (`%Y-%m-%d %H:%M:%S`).
    pub at: String,
    pub user_id: Option<String>,
    pub method: String,
    pub outcome: String,
    pub reason: Option<String>,
    pub peer_addr: String,
    pub request_id: String,
}

impl From<sign_in_event::Model> for EventView {
    fn from(row: sign_in_event::Model) -> Self {
        Self {
            at: row.at.format("%Y-%m-%d %H:%M:%S").to_string(),
            user_id: row.user_id,
            method: row.method,
            outcome: row.outcome,
            reason: row.reason,
            peer_addr: row.peer_addr,
            request_id: row.request_id,
        }
    }
}

/// A team member, as the teams page shows it.
pub(super) struct MemberView {
    pub user_id: String,
    pub role: String,
}

impl From<team_member::Model> for MemberView {
    fn from(row: team_member::Model) -> Self {
        Self { user_id: row.user_id, role: row.role }
    }
}

/// A team with its members, as the teams page shows it.
pub(super) struct TeamView {
    pub team_id: String,
    pub team_alias: Option<String>,
    pub members: Vec<MemberView>,
}

/// Builds views from rows.
pub(super) fn views<R, V: From<R>>(rows: Vec<R>) -> Vec<V> {
    rows.into_iter().map(V::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_view_formats_the_time_as_the_pages_did() {
        let at = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        let row = sign_in_event::Model {
            id: 1,
            at,
            user_id: None,
            method: "oidc".into(),
            outcome: "refused".into(),
            reason: Some("no".into()),
            peer_addr: "192.0.2.1".into(),
            request_id: "r-1".into(),
            groups: None,
            role_groups: None,
        };
        let view = EventView::from(row);
        assert_eq!(view.at, "2023-11-14 22:13:20");
        assert_eq!(view.outcome, "refused");
    }
}
