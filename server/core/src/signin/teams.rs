//! The teams a sign-in creates: the identity's groups that are no team yet, when
//! `general_settings.create_teams_from_groups` lets them become one.

use super::{Snapshot, Source};
use crate::{
    ids::is_storable_id,
    policy::{Policy, TeamParams},
};

/// Team ids no sign-in creates: LiteLLM's team of UI session keys (LiteLLM's `/team/new`
/// refuses it too).
pub const RESERVED_TEAM_IDS: &[&str] = &["litellm-dashboard"];

/// A team a sign-in creates, before the memberships that need it.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTeam {
    /// Its id (the group's name).
    pub team_id: String,
    /// Its display name.
    pub team_alias: Option<String>,
    /// Its models, budget and limits.
    pub params: TeamParams,
    /// Who asked for it: the identity's groups ([`Source::Idp`]) or a hook ([`Source::Hook`]).
    pub source: Source,
}

/// The identity's `groups` that become teams: allowed by the policy, storable, not reserved,
/// and not a team the snapshot found; each once, in the identity's order.
pub(super) fn from_groups(
    groups: &[String],
    snapshot: &Snapshot,
    policy: &Policy<'_>,
) -> Vec<NewTeam> {
    let Some(creation) = policy.team_creation else { return Vec::new() };
    let mut teams: Vec<NewTeam> = Vec::new();
    for group in groups {
        let creatable = creation.allows(group)
            && !group.trim().is_empty()
            && is_storable_id(group)
            && !RESERVED_TEAM_IDS.contains(&group.as_str())
            && !snapshot.teams.iter().any(|team| &team.team_id == group)
            && !teams.iter().any(|team| &team.team_id == group);
        if creatable {
            teams.push(NewTeam {
                team_id: group.clone(),
                team_alias: Some(group.clone()),
                params: creation.params.clone(),
                source: Source::Idp,
            });
        }
    }
    teams
}
