//! The keys a sign-in's [`Snapshot`](super::Snapshot) is read by, and the account lookups that
//! [`decide`](super::decide) shares with them.

use plugin_api::OpenId;

use super::{Account, Input, Keys, Staged};
use crate::{
    identity::{Binding, Proof},
    policy::Policy,
};

/// The keys a snapshot read before the `custom_sso` hook runs: what the identity alone names,
/// so that the hook's `user_info` and `team_info` for the signing-in user and their groups are
/// answered from it, and the decision after the hook usually needs no second read.
pub fn identity_keys(openid: &OpenId, proof: &Proof, policy: &Policy<'_>) -> Keys {
    let mut teams = named_teams(openid, policy);
    teams.sort();
    teams.dedup();
    let user_ids: Vec<String> = openid.id.iter().map(|id| id.trim().to_owned()).collect();
    let email =
        (policy.link_by_email && proof.email_verified).then(|| openid.email.clone()).flatten();
    Keys {
        members: user_ids.clone(),
        user_ids,
        binding: proof.binding.clone(),
        email,
        teams,
        directory_id: proof.directory_id.clone(),
    }
}

/// The keys a sign-in's snapshot must cover.
pub fn keys(input: &Input<'_>, policy: &Policy<'_>) -> Keys {
    let user_ids: Vec<String> = candidate_ids(input).into_iter().map(str::to_owned).collect();
    let mut teams = named_teams(input.openid, policy);
    let mut members = Vec::new();
    for write in input.staged {
        match write {
            Staged::Member { team_id, user_id, .. } | Staged::Removal { team_id, user_id } => {
                teams.push(team_id.clone());
                members.push(user_id.clone());
            }
            Staged::Team(team) => teams.push(team.team_id.clone()),
            Staged::NewUser(_) => {}
        }
    }
    teams.sort();
    teams.dedup();
    members.extend(user_ids.iter().cloned());
    members.sort();
    members.dedup();
    Keys {
        user_ids,
        binding: input.proof.binding.clone(),
        email: link_by_email(input, policy).then(|| input.values.user_email.clone()).flatten(),
        teams,
        members,
        directory_id: input.proof.directory_id.clone(),
    }
}

/// The teams an identity names: its groups, then the default teams.
fn named_teams(openid: &OpenId, policy: &Policy<'_>) -> Vec<String> {
    let mut teams = openid.team_ids.clone();
    teams.extend(policy.new_users.teams.iter().map(|(id, _)| id.clone()));
    teams
}

/// The user ids an account may be found by: the chosen one, then the identity's own when it
/// differs.
pub(super) fn candidate_ids<'a>(input: &Input<'a>) -> Vec<&'a str> {
    let mut ids = vec![input.values.user_id.as_str()];
    if let Some(idp_id) = input.idp_id
        && idp_id != input.values.user_id
    {
        ids.push(idp_id);
    }
    ids
}

/// Whether this sign-in may take an unbound account by its email: the setting is on, the
/// provider verified the email, and the values keep the identity's email.
pub(super) fn link_by_email(input: &Input<'_>, policy: &Policy<'_>) -> bool {
    policy.link_by_email
        && input.proof.email_verified
        && input.values.user_email.is_some()
        && input.values.user_email == input.openid.email
}

pub(super) fn same_binding(account: &Account, binding: Option<&Binding>) -> bool {
    binding.is_some() && account.binding.as_ref() == binding
}
