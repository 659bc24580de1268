//! The sign-in rules (roles, access, budgets, new users, teams, the hook's writes) as tables of
//! cases over [`decide`], with a fixed clock; how the account is found is `identity_tests.rs`.

use chrono::{DateTime, TimeZone, Utc};
use plugin_api::{NewUser, OpenId, TeamRole, UserRole};

use super::*;
use crate::{
    budget::BudgetDuration,
    identity::{Binding, Proof},
    policy::{NewUsers, Policy, UiAccess},
    values::Values,
};

/// 2026-12-01 12:00 UTC, a Tuesday.
fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
}

fn proxy(subject: &str) -> Proof {
    Proof {
        binding: Some(Binding { issuer: Binding::PROXY_ISSUER.into(), subject: subject.into() }),
        email_verified: true,
        role_groups: None,
        directory_id: None,
    }
}

fn identity(id: &str, groups: &[&str]) -> OpenId {
    OpenId {
        id: Some(id.into()),
        email: Some(format!("{id}@example.test")),
        display_name: Some(format!("{id} Example")),
        team_ids: groups.iter().map(|g| (*g).to_owned()).collect(),
        provider: Some("oauth-proxy".into()),
        ..OpenId::default()
    }
}

/// Values as the example `custom_sso` hook returns them.
pub(super) fn hook_values(
    id: &str,
    role: Option<UserRole>,
    budget: Option<f64>,
    duration: &str,
) -> Values {
    Values {
        models: Vec::new(),
        user_id: id.into(),
        user_email: Some(format!("{id}@example.test")),
        user_role: role,
        max_budget: budget,
        budget_duration: (!duration.is_empty()).then(|| duration.parse().unwrap()),
        from_hook: true,
    }
}

/// Values without a hook (LiteLLM's defaults decide).
fn default_values(id: &str, role: Option<UserRole>) -> Values {
    Values {
        models: Vec::new(),
        user_id: id.into(),
        user_email: Some(format!("{id}@example.test")),
        user_role: role,
        max_budget: None,
        budget_duration: None,
        from_hook: false,
    }
}

pub(super) fn stored(id: &str) -> Account {
    let then = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    Account {
        user_id: id.into(),
        user_email: Some(format!("{id}@example.test")),
        user_alias: Some(format!("{id} Example")),
        user_role: Some(UserRole::InternalUser),
        binding: Some(Binding { issuer: Binding::PROXY_ISSUER.into(), subject: id.into() }),
        models: Vec::new(),
        max_budget: None,
        spend: 0.0,
        budget_duration: None,
        budget_reset_at: None,
        created_at: then,
        updated_at: then,
        active: true,
        directory_id: None,
    }
}

pub(super) struct Case {
    pub(super) name: &'static str,
    pub(super) policy: Policy<'static>,
    pub(super) openid: OpenId,
    pub(super) proof: Proof,
    pub(super) values: Values,
    pub(super) staged: Vec<Staged>,
    pub(super) snapshot: Snapshot,
}

impl Case {
    pub(super) fn new(name: &'static str, id: &str) -> Case {
        Case {
            name,
            policy: Policy::default(),
            openid: identity(id, &[]),
            proof: proxy(id),
            values: hook_values(id, Some(UserRole::InternalUser), None, ""),
            staged: Vec::new(),
            snapshot: Snapshot::default(),
        }
    }

    fn decide(&self) -> Result<Plan, Refusal> {
        let input = Input {
            openid: &self.openid,
            proof: &self.proof,
            idp_id: self.openid.id.as_deref(),
            values: &self.values,
            staged: &self.staged,
        };
        decide(&input, &self.snapshot, &self.policy, now())
    }

    pub(super) fn plan(&self) -> Plan {
        self.decide().unwrap_or_else(|error| panic!("{}: refused: {error}", self.name))
    }

    pub(super) fn refusal(&self) -> String {
        match self.decide() {
            Ok(plan) => panic!("{}: expected a refusal, got {plan:?}", self.name),
            Err(error) => error.to_string(),
        }
    }
}

#[test]
fn role_precedence() {
    // (case, stored role, hook/IdP role, PROXY_ADMIN_ID, session role, role written)
    type Row = (
        &'static str,
        Option<UserRole>,
        Option<UserRole>,
        Option<&'static str>,
        UserRole,
        Option<UserRole>,
    );
    let cases: Vec<Row> = vec![
        (
            "the hook's role wins over the stored one",
            Some(UserRole::InternalUser),
            Some(UserRole::ProxyAdminViewer),
            None,
            UserRole::ProxyAdminViewer,
            Some(UserRole::ProxyAdminViewer),
        ),
        (
            "no role from the hook keeps the stored one",
            Some(UserRole::ProxyAdminViewer),
            None,
            None,
            UserRole::ProxyAdminViewer,
            None,
        ),
        (
            "nothing stored, nothing given: viewer",
            None,
            None,
            None,
            UserRole::InternalUserViewer,
            None,
        ),
        (
            "PROXY_ADMIN_ID is always proxy_admin, and it is written",
            Some(UserRole::InternalUser),
            Some(UserRole::InternalUser),
            Some("alice"),
            UserRole::ProxyAdmin,
            Some(UserRole::ProxyAdmin),
        ),
        (
            "PROXY_ADMIN_ID names someone else",
            Some(UserRole::InternalUser),
            None,
            Some("root"),
            UserRole::InternalUser,
            None,
        ),
    ];
    for (name, stored_role, given, admin_id, session, written) in cases {
        let mut case = Case::new(name, "alice");
        case.policy.proxy_admin_id = admin_id;
        case.values.user_role = given;
        let mut account = stored("alice");
        account.user_role = stored_role;
        case.snapshot.accounts = vec![account];
        let plan = case.plan();
        assert_eq!(plan.role, session, "{name}");
        let role_written = match &plan.user {
            UserWrite::Update { changes, .. } => changes.user_role,
            _ => None,
        };
        assert_eq!(role_written, written, "{name}");
    }
}

#[test]
fn access_modes() {
    let mut case = Case::new("admin_only refuses a non-admin", "bob");
    case.policy.ui_access = UiAccess::AdminOnly;
    assert!(case.refusal().contains("only proxy admins may sign in"));
    case.values.user_role = Some(UserRole::ProxyAdminViewer);
    assert_eq!(case.plan().role, UserRole::ProxyAdminViewer, "admin_only admits admin viewers");

    let mut case = Case::new("restricted_sso_group", "carol");
    case.policy.ui_access = UiAccess::RestrictedSsoGroup("ops");
    assert!(case.refusal().contains("restricted SSO group \"ops\""));
    case.openid.team_ids = vec!["ops".into()];
    case.plan();
}

#[test]
fn budgets_and_periods() {
    let past = Utc.with_ymd_and_hms(2026, 11, 30, 0, 0, 0).unwrap();
    let future = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
    let next_midnight = Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap();
    let next_month = Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap();
    // (case, stored duration, stored reset, stored spend, hook duration,
    //  written duration, written reset, written spend)
    type Row = (
        &'static str,
        &'static str,
        Option<DateTime<Utc>>,
        f64,
        &'static str,
        Option<Option<&'static str>>,
        Option<Option<DateTime<Utc>>>,
        Option<f64>,
    );
    let cases: Vec<Row> = vec![
        (
            "same period, not ended: nothing changes",
            "1d",
            Some(future),
            5.0,
            "1d",
            None,
            None,
            None,
        ),
        (
            "same period, ended: spend resets, next period",
            "1d",
            Some(past),
            5.0,
            "1d",
            None,
            Some(Some(next_midnight)),
            Some(0.0),
        ),
        // The bug: moved from 30d to 1d after the old period ended, the next reset was a month away.
        (
            "moved to 1d after the 30d period ended: the next reset is 1d's",
            "30d",
            Some(past),
            5.0,
            "1d",
            Some(Some("1d")),
            Some(Some(next_midnight)),
            Some(0.0),
        ),
        (
            "moved to 1mo mid-period: a new period starts now, spend kept",
            "1d",
            Some(future),
            5.0,
            "1mo",
            Some(Some("1mo")),
            Some(Some(next_month)),
            None,
        ),
        ("period dropped", "1d", Some(future), 5.0, "", Some(None), Some(None), None),
    ];
    for (name, stored_duration, reset, spend, duration, w_duration, w_reset, w_spend) in cases {
        let mut case = Case::new(name, "dave");
        case.values = hook_values("dave", Some(UserRole::InternalUser), Some(1.0), duration);
        let mut account = stored("dave");
        account.max_budget = Some(1.0);
        account.budget_duration = Some(stored_duration.parse().unwrap());
        account.budget_reset_at = reset;
        account.spend = spend;
        case.snapshot.accounts = vec![account];
        let changes = match case.plan().user {
            UserWrite::Update { changes, .. } => changes,
            UserWrite::Unchanged => Changes::default(),
            other => panic!("{name}: {other:?}"),
        };
        assert_eq!(
            changes.budget_duration.map(|d| d.map(|d| d.to_string())),
            w_duration.map(|d| d.map(str::to_owned)),
            "{name}"
        );
        assert_eq!(changes.budget_reset_at, w_reset, "{name}");
        assert_eq!(changes.spend, w_spend, "{name}");
    }

    let mut case = Case::new("the hook's budget applies at every sign-in", "erin");
    case.values = hook_values("erin", None, Some(7.5), "");
    case.snapshot.accounts = vec![stored("erin")];
    let UserWrite::Update { changes, .. } = case.plan().user else { panic!("an update") };
    assert_eq!(changes.max_budget, Some(Some(7.5)));

    let mut case = Case::new("without a hook the stored budget stays", "erin");
    case.values = default_values("erin", None);
    let mut account = stored("erin");
    account.max_budget = Some(3.0);
    case.snapshot.accounts = vec![account];
    assert_eq!(case.plan().user, UserWrite::Unchanged);
}

#[test]
fn new_users_get_litellms_defaults_for_what_the_values_leave_open() {
    // max_internal_user_budget: 10, internal_user_budget_duration: 1mo,
    // default_internal_user_params: {user_role: internal_user, teams: [core, {ops, admin}, ghost]}
    let teams: &'static [(String, TeamRole)] = Vec::leak(vec![
        ("core".into(), TeamRole::User),
        ("ops".into(), TeamRole::Admin),
        ("ghost".into(), TeamRole::User),
    ]);
    let defaults = NewUsers {
        user_role: Some(UserRole::InternalUser),
        teams,
        max_internal_user_budget: Some(10.0),
        internal_user_budget_duration: Some("1mo".parse().unwrap()),
        ..NewUsers::default()
    };
    let mut case = Case::new("defaults", "frank");
    case.policy.new_users = defaults;
    case.values = default_values("frank", None);
    case.values.models = vec!["gpt-4o".into()];
    case.snapshot.teams = vec!["core".into(), "ops".into()];
    let plan = case.plan();
    let UserWrite::Insert(new) = &plan.user else { panic!("an insert: {:?}", plan.user) };
    let account = &new.account;
    assert_eq!(account.user_role, Some(UserRole::InternalUser));
    assert_eq!(account.max_budget, Some(10.0), "max_internal_user_budget for internal users");
    assert_eq!(account.budget_duration, Some("1mo".parse::<BudgetDuration>().unwrap()));
    assert_eq!(account.budget_reset_at, Some(Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap()));
    assert_eq!(account.user_alias.as_deref(), Some("frank Example"));
    assert_eq!(account.binding, case.proof.binding);
    assert_eq!(new.metadata["auth_provider"], "oauth-proxy");
    assert_eq!(plan.models, ["gpt-4o"]);
    assert!(plan.is_new);
    // Default teams that exist, with their roles; `ghost` does not exist.
    let teams: Vec<(&str, TeamRole)> =
        plan.memberships.iter().map(|m| (m.team_id.as_str(), m.role)).collect();
    assert_eq!(teams, [("core", TeamRole::User), ("ops", TeamRole::Admin)]);

    let mut case = Case::new("a viewer gets no internal-user budget", "gina");
    case.policy.new_users.max_internal_user_budget = Some(10.0);
    case.values = default_values("gina", None);
    let UserWrite::Insert(new) = case.plan().user else { panic!("an insert") };
    assert_eq!(new.account.max_budget, None);

    let mut case = Case::new("a returning user joins no default teams", "frank");
    case.policy.new_users = defaults;
    case.values = default_values("frank", None);
    case.snapshot.accounts = vec![stored("frank")];
    case.snapshot.teams = vec!["core".into()];
    assert!(case.plan().memberships.is_empty());
}

#[test]
fn team_sync_adds_and_never_changes_a_role() {
    let mut case = Case::new("groups that name existing teams", "hana");
    case.openid.team_ids = vec!["staff".into(), "ops".into(), "nope".into()];
    case.snapshot.accounts = vec![stored("hana")];
    case.snapshot.teams = vec!["staff".into(), "ops".into()];
    case.snapshot.memberships = vec![("ops".into(), "hana".into())];
    let added: Vec<String> = case.plan().memberships.into_iter().map(|m| m.team_id).collect();
    assert_eq!(added, ["staff"], "ops is already a membership; nope does not exist");

    // The bug: the example hook's add_team_member(team, user, User) demoted a team admin at
    // every sign-in. An existing membership is never in the plan, so its role stays.
    let mut case = Case::new("the hook re-adds a team admin", "hana");
    case.snapshot.accounts = vec![stored("hana")];
    case.snapshot.teams = vec!["ops".into()];
    case.snapshot.memberships = vec![("ops".into(), "hana".into())];
    case.staged = vec![Staged::Member {
        team_id: "ops".into(),
        user_id: "hana".into(),
        role: TeamRole::User,
    }];
    assert!(case.plan().memberships.is_empty());
}

#[test]
fn an_authoritative_sync_removes_only_what_it_added() {
    let pair = |team: &str| (team.to_owned(), "hana".to_owned());
    // hana is in: eng (a sync's, still named), ops (a sync's, no longer named), sales (an
    // administrator's, not named), lab (a sync's, of another user).
    let snapshot = Snapshot {
        accounts: vec![stored("hana")],
        memberships: vec![pair("eng"), pair("ops"), pair("sales")],
        synced: vec![pair("eng"), pair("ops"), ("lab".into(), "ivan".into())],
        teams: vec!["eng".into(), "ops".into(), "sales".into(), "new".into()],
        ..Snapshot::default()
    };
    // (name, authoritative, the identity's groups, teams added, teams removed)
    type Row<'a> = (&'a str, bool, &'a [&'a str], &'a [&'a str], &'a [&'a str]);
    let cases: [Row; 4] = [
        ("additive (the default): nothing removed", false, &["eng", "new"], &["new"], &[]),
        (
            "authoritative: the sync's unnamed membership goes",
            true,
            &["eng", "new"],
            &["new"],
            &["ops"],
        ),
        ("authoritative, no groups: every sync membership goes", true, &[], &[], &["eng", "ops"]),
        ("authoritative, all named: nothing goes", true, &["eng", "ops", "sales"], &[], &[]),
    ];
    for (name, authoritative, groups, added, removed) in cases {
        let mut case = Case::new(name, "hana");
        case.policy.sync_teams = authoritative;
        case.openid.team_ids = groups.iter().map(|g| (*g).to_owned()).collect();
        case.snapshot = snapshot.clone();
        let plan = case.plan();
        let added_now: Vec<(&str, Source)> =
            plan.memberships.iter().map(|m| (m.team_id.as_str(), m.source)).collect();
        let expected: Vec<(&str, Source)> = added.iter().map(|t| (*t, Source::Idp)).collect();
        assert_eq!(added_now, expected, "{name}");
        assert_eq!(plan.removed, removed, "{name}");
    }
}

#[test]
fn each_membership_says_who_made_it() {
    let policy_teams: &'static [(String, TeamRole)] =
        Vec::leak(vec![("all".into(), TeamRole::User)]);
    let mut case = Case::new("a new user with a group, a default team and a hook's team", "jo");
    case.policy.new_users.teams = policy_teams;
    case.openid.team_ids = vec!["eng".into()];
    case.snapshot.teams = vec!["eng".into(), "all".into(), "ops".into()];
    case.snapshot.teams.push("lab".into());
    case.openid.team_ids.push("lab".into());
    case.staged = vec![
        Staged::Member { team_id: "ops".into(), user_id: "jo".into(), role: TeamRole::Admin },
        // A team the groups name, joined by the hook (as LiteLLM's documented hook does): the
        // groups' membership, with the hook's role.
        Staged::Member { team_id: "lab".into(), user_id: "jo".into(), role: TeamRole::Admin },
    ];
    let made: Vec<(String, Source, TeamRole)> =
        case.plan().memberships.into_iter().map(|m| (m.team_id, m.source, m.role)).collect();
    assert_eq!(
        made,
        [
            ("ops".into(), Source::Hook, TeamRole::Admin),
            ("lab".into(), Source::Idp, TeamRole::Admin),
            ("all".into(), Source::Default, TeamRole::User),
            ("eng".into(), Source::Idp, TeamRole::User)
        ]
    );
    for source in [Source::Idp, Source::Admin, Source::Hook, Source::Default, Source::Unknown] {
        assert_eq!(Source::of(source.as_str()), source);
    }
    assert_eq!(Source::of("something later"), Source::Unknown, "an unknown name is kept");
}

#[test]
fn the_hooks_staged_writes() {
    let mut case = Case::new("new_user and add_team_member", "ivan");
    case.snapshot.teams = vec!["ops".into()];
    case.staged = vec![
        Staged::NewUser(NewUser {
            user_id: Some("helper".into()),
            user_role: Some(UserRole::InternalUser),
            budget_duration: Some("1d".into()),
            ..NewUser::default()
        }),
        Staged::Member { team_id: "ops".into(), user_id: "helper".into(), role: TeamRole::Admin },
        Staged::Member { team_id: "ops".into(), user_id: "stranger".into(), role: TeamRole::User },
    ];
    let plan = case.plan();
    assert_eq!(plan.hook_users.len(), 1);
    let helper = &plan.hook_users[0].account;
    assert_eq!(
        (helper.user_id.as_str(), helper.user_role),
        ("helper", Some(UserRole::InternalUser))
    );
    assert_eq!(helper.budget_reset_at, Some(Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap()));
    assert_eq!(plan.member_users, ["stranger"], "a member who is no user yet is created");
    let members: Vec<(&str, TeamRole)> =
        plan.memberships.iter().map(|m| (m.user_id.as_str(), m.role)).collect();
    assert_eq!(members, [("helper", TeamRole::Admin), ("stranger", TeamRole::User)]);

    let mut case = Case::new("the signing-in user is the hook's new user", "judy");
    case.values = hook_values("judy", None, Some(2.0), "");
    case.staged = vec![Staged::NewUser(NewUser {
        user_id: Some("judy".into()),
        user_role: Some(UserRole::ProxyAdminViewer),
        ..NewUser::default()
    })];
    let plan = case.plan();
    assert!(plan.hook_users.is_empty(), "one row, not two");
    let UserWrite::Insert(new) = &plan.user else { panic!("an insert") };
    assert_eq!(new.account.user_role, Some(UserRole::ProxyAdminViewer));
    assert_eq!(new.account.binding, case.proof.binding, "bound to the identity");
    assert_eq!(new.metadata["created_by"], "custom_sso");
}

#[test]
fn only_a_returning_user_with_nothing_new_keeps_every_account() {
    // (case, whether the plan leaves every account, team and membership as it is)
    let returning = || {
        let mut case = Case::new("a returning user with nothing new", "ida");
        case.openid.team_ids = vec!["ops".into()];
        case.snapshot.accounts = vec![stored("ida")];
        case.snapshot.teams = vec!["ops".into()];
        case.snapshot.memberships = vec![("ops".into(), "ida".into())];
        case
    };
    let mut cases = vec![(returning(), true)];
    let mut new = returning();
    new.name = "a new user";
    new.snapshot.accounts.clear();
    new.snapshot.memberships.clear();
    cases.push((new, false));
    let mut changed = returning();
    changed.name = "a changed email";
    changed.values.user_email = Some("ida@elsewhere.test".into());
    changed.openid.email = Some("ida@elsewhere.test".into());
    cases.push((changed, false));
    let mut joins = returning();
    joins.name = "a group that names another team";
    joins.openid.team_ids.push("staff".into());
    joins.snapshot.teams.push("staff".into());
    cases.push((joins, false));
    let mut staged = returning();
    staged.name = "a hook that adds someone to a team";
    staged.staged =
        vec![Staged::Member { team_id: "ops".into(), user_id: "jo".into(), role: TeamRole::User }];
    cases.push((staged, false));
    for (case, keeps) in cases {
        assert_eq!(case.plan().keeps_accounts(), keeps, "{}", case.name);
    }
}
