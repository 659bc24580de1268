//! Teams a sign-in creates from the identity's groups (`create_teams_from_groups`), as tables.

use chrono::{DateTime, TimeZone, Utc};
use plugin_api::{OpenId, TeamRole, UserRole};

use super::*;
use crate::{
    identity::{Binding, Proof},
    policy::{Policy, TeamCreation, TeamParams},
    values::Values,
};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
}

fn params() -> TeamParams {
    TeamParams {
        models: vec!["gpt-4o".into()],
        max_budget: Some(25.0),
        budget_duration: Some("30d".parse().unwrap()),
        tpm_limit: Some(1000),
        rpm_limit: Some(10),
    }
}

/// Decides the first sign-in of `alice` with `groups`, the teams `existing` in the database,
/// and `creation` (or none).
fn plan(groups: &[&str], existing: &[&str], creation: Option<&TeamCreation>) -> Plan {
    let openid = OpenId {
        id: Some("alice".into()),
        email: Some("alice@example.test".into()),
        team_ids: groups.iter().map(|g| (*g).to_owned()).collect(),
        ..OpenId::default()
    };
    let proof = Proof {
        binding: Some(Binding { issuer: Binding::PROXY_ISSUER.into(), subject: "alice".into() }),
        email_verified: true,
        role_groups: None,
        directory_id: None,
    };
    let values = Values {
        models: Vec::new(),
        user_id: "alice".into(),
        user_email: Some("alice@example.test".into()),
        user_role: Some(UserRole::InternalUser),
        max_budget: None,
        budget_duration: None,
        from_hook: false,
    };
    let input = Input {
        openid: &openid,
        proof: &proof,
        idp_id: Some("alice"),
        values: &values,
        staged: &[],
    };
    let snapshot = Snapshot {
        teams: existing.iter().map(|team| Team::from(*team)).collect(),
        ..Snapshot::default()
    };
    let policy = Policy { team_creation: creation, ..Policy::default() };
    decide(&input, &snapshot, &policy, now()).expect("allowed")
}

fn created(plan: &Plan) -> Vec<&str> {
    plan.new_teams.iter().map(|team| team.team_id.as_str()).collect()
}

fn joined(plan: &Plan) -> Vec<(&str, Source)> {
    plan.memberships.iter().map(|m| (m.team_id.as_str(), m.source)).collect()
}

#[test]
fn only_allowed_groups_that_are_no_team_yet_become_teams() {
    let creation = TeamCreation {
        groups: vec!["research".into(), "litellm-dashboard".into()],
        prefixes: vec!["llm-".into()],
        params: params(),
    };
    // (case, groups, existing teams, with creation on, created, joined)
    type Row = (
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
        bool,
        &'static [&'static str],
        &'static [&'static str],
    );
    let rows: &[Row] = &[
        (
            "off by default: groups only join teams that exist",
            &["llm-eng", "research", "core"],
            &["core"],
            false,
            &[],
            &["core"],
        ),
        (
            "an allow-listed group becomes a team",
            &["research"],
            &[],
            true,
            &["research"],
            &["research"],
        ),
        (
            "a group with an allowed prefix becomes a team",
            &["llm-eng", "llm-ops"],
            &[],
            true,
            &["llm-eng", "llm-ops"],
            &["llm-eng", "llm-ops"],
        ),
        ("any other group does not", &["sales", "eng-llm", "LLM-eng"], &[], true, &[], &[]),
        (
            "an existing team is joined, not created again",
            &["llm-eng", "research"],
            &["llm-eng"],
            true,
            &["research"],
            &["llm-eng", "research"],
        ),
        ("LiteLLM's session team is never created", &["litellm-dashboard"], &[], true, &[], &[]),
        ("a group equal to a prefix is under it", &["llm-"], &[], true, &["llm-"], &["llm-"]),
        ("an unstorable group is never a team", &["llm-\u{7}"], &[], true, &[], &[]),
    ];
    for (name, groups, existing, on, want_created, want_joined) in rows {
        let plan = plan(groups, existing, on.then_some(&creation));
        assert_eq!(created(&plan), *want_created, "{name}: created");
        let joined: Vec<&str> = joined(&plan)
            .into_iter()
            .map(|(team, source)| {
                assert_eq!(source, Source::Idp, "{name}: a sync's membership");
                team
            })
            .collect();
        assert_eq!(joined, *want_joined, "{name}: joined");
    }
}

#[test]
fn a_created_team_gets_default_team_params_and_the_group_as_its_alias() {
    let creation =
        TeamCreation { groups: vec!["research".into()], prefixes: Vec::new(), params: params() };
    let plan = plan(&["research", "research"], &[], Some(&creation));
    assert_eq!(
        plan.new_teams,
        [NewTeam {
            team_id: "research".into(),
            team_alias: Some("research".into()),
            params: params(),
            source: Source::Idp,
        }]
    );
    assert_eq!(plan.memberships.len(), 1);
    assert_eq!(plan.memberships[0].role, TeamRole::User);
}

#[test]
fn an_allow_list_matches_exactly_and_an_empty_prefix_matches_nothing() {
    let creation = TeamCreation {
        groups: vec!["eng".into()],
        prefixes: vec![String::new()],
        params: TeamParams::default(),
    };
    for (group, allowed) in
        [("eng", true), ("Eng", false), ("eng2", false), ("", false), ("ops", false)]
    {
        assert_eq!(creation.allows(group), allowed, "{group:?}");
    }
}

/// Decides `alice`'s sign-in with groups `groups`, the hook's `staged` writes, and stored
/// memberships `stored`: (team, user, source).
fn plan_with_hook(groups: &[&str], staged: &[Staged], stored: &[(&str, &str, Source)]) -> Plan {
    let openid = OpenId {
        id: Some("alice".into()),
        email: Some("alice@example.test".into()),
        team_ids: groups.iter().map(|g| (*g).to_owned()).collect(),
        ..OpenId::default()
    };
    let proof = Proof {
        binding: Some(Binding { issuer: Binding::PROXY_ISSUER.into(), subject: "alice".into() }),
        email_verified: true,
        role_groups: None,
        directory_id: None,
    };
    let values = Values {
        models: Vec::new(),
        user_id: "alice".into(),
        user_email: Some("alice@example.test".into()),
        user_role: Some(UserRole::InternalUser),
        max_budget: None,
        budget_duration: None,
        from_hook: true,
    };
    let input =
        Input { openid: &openid, proof: &proof, idp_id: Some("alice"), values: &values, staged };
    let pair = |(team, user, _): &(&str, &str, Source)| ((*team).to_owned(), (*user).to_owned());
    let snapshot = Snapshot {
        teams: ["eng", "ops", "lab", "sales"].iter().map(|team| Team::from(*team)).collect(),
        memberships: stored.iter().map(pair).collect(),
        synced: stored.iter().filter(|m| m.2 == Source::Idp).map(pair).collect(),
        removable: stored.iter().filter(|m| m.2.hook_may_remove()).map(pair).collect(),
        ..Snapshot::default()
    };
    decide(&input, &snapshot, &Policy::default(), now()).expect("allowed")
}

fn removal(team: &str, user: &str) -> Staged {
    Staged::Removal { team_id: team.into(), user_id: user.into() }
}

#[test]
fn a_hooks_removals_take_only_what_a_sign_in_made_and_have_the_last_word() {
    let stored = [
        ("eng", "alice", Source::Idp),
        ("ops", "alice", Source::Hook),
        ("lab", "alice", Source::Default),
        ("sales", "alice", Source::Admin),
        ("eng", "bob", Source::Unknown),
        ("ops", "bob", Source::Hook),
    ];
    let staged = [
        removal("eng", "alice"),
        removal("ops", "alice"),
        removal("lab", "alice"),
        removal("sales", "alice"),
        removal("eng", "bob"),
        removal("ops", "bob"),
        removal("ops", "bob"),
        removal("nowhere", "alice"),
    ];
    let plan = plan_with_hook(&[], &staged, &stored);
    let pairs = |items: &[(&str, &str)]| -> Vec<(String, String)> {
        items.iter().map(|(t, u)| ((*t).to_owned(), (*u).to_owned())).collect()
    };
    assert_eq!(
        plan.hook_removed,
        pairs(&[("eng", "alice"), ("ops", "alice"), ("lab", "alice"), ("ops", "bob")]),
        "an administrator's and an unknown membership stay; each removal once"
    );
    assert!(plan.removed.is_empty(), "no authoritative sync here");

    // A group the identity names and the hook removes is not joined; a membership the hook
    // adds and then removes is not added.
    let staged = [
        Staged::Member { team_id: "lab".into(), user_id: "bob".into(), role: TeamRole::User },
        removal("lab", "bob"),
        removal("eng", "alice"),
    ];
    let plan = plan_with_hook(&["eng", "ops"], &staged, &[]);
    let joined: Vec<(&str, &str)> =
        plan.memberships.iter().map(|m| (m.team_id.as_str(), m.user_id.as_str())).collect();
    assert_eq!(joined, [("ops", "alice")]);
    assert!(plan.hook_removed.is_empty(), "nothing stored to remove");
}

#[test]
fn a_hooks_new_team_is_created_once_unless_it_exists() {
    let team = |id: &str| {
        Staged::Team(NewTeam {
            team_id: id.into(),
            team_alias: Some(format!("{id} team")),
            params: TeamParams { max_budget: Some(5.0), ..TeamParams::default() },
            source: Source::Hook,
        })
    };
    let staged = [
        team("platform"),
        team("platform"),
        team("eng"),
        Staged::Member {
            team_id: "platform".into(),
            user_id: "alice".into(),
            role: TeamRole::Admin,
        },
    ];
    let plan = plan_with_hook(&[], &staged, &[]);
    assert_eq!(created(&plan), ["platform"], "eng exists; platform once");
    assert_eq!(plan.new_teams[0].source, Source::Hook);
    assert_eq!(plan.new_teams[0].team_alias.as_deref(), Some("platform team"));
    assert_eq!(joined(&plan), [("platform", Source::Hook)]);
}
