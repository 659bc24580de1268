//! How [`decide`] finds the signing-in user's account (binding, id, verified email), what it
//! writes to a returning one (alias, email), and that a deactivated account refuses every way it
//! is reached, as tables.

use super::tests::{Case, hook_values, stored};
use super::*;
use crate::identity::{Binding, Proof};

#[test]
fn accounts_are_matched_by_binding_id_then_verified_email() {
    let oidc = |sub: &str, verified: bool| Proof {
        binding: Some(Binding { issuer: "https://idp.example".into(), subject: sub.into() }),
        email_verified: verified,
        role_groups: None,
        directory_id: None,
    };
    let unbound = |id: &str| Account { binding: None, ..stored(id) };

    let mut case = Case::new("by binding, whatever the id", "kim");
    case.proof = oidc("kim-sub", true);
    case.values = hook_values("kim.renamed", None, None, "");
    let mut account = stored("kim");
    account.binding = case.proof.binding.clone();
    case.snapshot.accounts = vec![account];
    assert_eq!(case.plan().account.user_id, "kim");

    let mut case = Case::new("by id, bound elsewhere", "kim");
    case.proof = oidc("mallory-sub", true);
    case.snapshot.accounts = vec![stored("kim")];
    assert!(case.refusal().contains("belongs to another sign-in identity"));

    // An unbound account found by id (pre-provisioned by an admin) is taken only with a
    // verified email equal to its own: a chosen preferred_username proves nothing.
    let mut leo = unbound("leo");
    leo.user_email = Some("Leo@Example.test".into());
    let mut case = Case::new("by id, unbound, verified email matches: taken and bound", "leo");
    case.proof = oidc("leo-sub", true);
    case.openid.email = Some("leo@example.test".into());
    case.snapshot.accounts = vec![leo.clone()];
    let UserWrite::Update { changes, .. } = case.plan().user else { panic!("an update") };
    assert_eq!(changes.binding, case.proof.binding);
    for (name, verified, email) in [
        ("by id, unbound, email unverified", false, Some("leo@example.test")),
        ("by id, unbound, another verified email", true, Some("eve@evil.test")),
        ("by id, unbound, no email", true, None),
    ] {
        let mut case = Case::new(name, "leo");
        case.proof = oidc("eve-sub", verified);
        case.openid.email = email.map(str::to_owned);
        case.values.user_email = Some("leo@example.test".into());
        case.snapshot.accounts = vec![leo.clone()];
        assert!(case.refusal().contains("not linked to your sign-in"), "{name}");
    }
    let mut case = Case::new("by id, unbound account without an email", "leo");
    case.openid.email = Some("leo@example.test".into());
    case.snapshot.accounts = vec![Account { user_email: None, ..unbound("leo") }];
    assert!(case.refusal().contains("not linked to your sign-in"), "header identities too");
    let mut case = Case::new("pre-bound by an administrator: found by its binding", "leo");
    case.proof = oidc("leo-sub", false);
    let mut pre_bound = unbound("leo");
    pre_bound.binding = case.proof.binding.clone();
    case.snapshot.accounts = vec![pre_bound];
    assert_eq!(case.plan().account.user_id, "leo");

    let mut case = Case::new("reserved ids", "default_user_id");
    assert!(case.refusal().contains("reserved for the password login"));
    case = Case::new("PROXY_ADMIN_ID unbound", "root");
    case.policy.proxy_admin_id = Some("root");
    case.snapshot.accounts = vec![unbound("root")];
    assert!(case.refusal().contains("administrator account"));

    let mut case = Case::new("by email, unverified: a new account", "max");
    case.proof = oidc("max-sub", false);
    case.values.user_email = Some("boss@example.test".into());
    case.openid.email = Some("boss@example.test".into());
    let mut boss = unbound("boss");
    boss.user_email = Some("boss@example.test".into());
    case.snapshot.accounts = vec![boss.clone()];
    assert!(case.plan().is_new);
    assert!(keys(&input_of(&case), &case.policy).email.is_none(), "not even looked up");

    case.proof = oidc("max-sub", true);
    assert_eq!(case.plan().account.user_id, "boss", "verified: linked");
    case.policy.link_by_email = false;
    assert!(case.plan().is_new, "linking turned off");

    let mut case = Case::new("by email, bound elsewhere: skipped", "max");
    case.proof = oidc("max-sub", true);
    case.values.user_email = Some("boss@example.test".into());
    case.openid.email = Some("boss@example.test".into());
    let mut bound_boss = stored("boss");
    bound_boss.user_email = Some("boss@example.test".into());
    case.snapshot.accounts = vec![bound_boss];
    assert!(case.plan().is_new);
}

fn input_of(case: &Case) -> Input<'_> {
    Input {
        openid: &case.openid,
        proof: &case.proof,
        idp_id: case.openid.id.as_deref(),
        values: &case.values,
        staged: &case.staged,
    }
}

#[test]
fn alias_and_email() {
    let mut case = Case::new("an empty alias is filled, a set one kept", "nina");
    let mut account = stored("nina");
    account.user_alias = None;
    case.snapshot.accounts = vec![account];
    let UserWrite::Update { changes, .. } = case.plan().user else { panic!("an update") };
    assert_eq!(changes.user_alias.as_deref(), Some("nina Example"));

    let mut case = Case::new("a set alias is kept; a new email is written", "nina");
    case.values.user_email = Some("nina@new.example".into());
    case.snapshot.accounts = vec![stored("nina")];
    let UserWrite::Update { changes, .. } = case.plan().user else { panic!("an update") };
    assert_eq!(changes.user_alias, None);
    assert_eq!(changes.user_email.as_deref(), Some("nina@new.example"));

    let mut case = Case::new("a returning user with nothing new writes nothing", "otto");
    case.snapshot.accounts = vec![stored("otto")];
    assert_eq!(case.plan().user, UserWrite::Unchanged);
}

#[test]
fn a_deactivated_account_refuses_every_way_it_is_reached() {
    let oidc = Proof {
        binding: Some(Binding { issuer: "https://idp.example".into(), subject: "dee-sub".into() }),
        email_verified: true,
        role_groups: None,
        directory_id: None,
    };
    let deactivated = |id: &str| Account { active: false, ..stored(id) };

    let mut case = Case::new("by binding", "dee");
    case.proof = oidc.clone();
    let mut account = deactivated("dee");
    account.binding = oidc.binding.clone();
    case.snapshot.accounts = vec![account];
    assert!(case.refusal().contains("is deactivated"), "{}", case.name);

    let mut case = Case::new("by id, unbound, verified email", "dee");
    case.proof = oidc.clone();
    case.openid.email = Some("dee@example.test".into());
    case.snapshot.accounts = vec![Account { binding: None, ..deactivated("dee") }];
    assert!(case.refusal().contains("is deactivated"), "{}", case.name);

    let mut case = Case::new("by verified email, linking on", "dee.other");
    case.policy.link_by_email = true;
    case.proof = oidc.clone();
    case.openid.email = Some("dee@example.test".into());
    case.values.user_email = Some("dee@example.test".into());
    case.snapshot.accounts = vec![Account { binding: None, ..deactivated("dee") }];
    assert!(case.refusal().contains("is deactivated"), "{}", case.name);

    let mut case = Case::new("active again: signs in", "dee");
    case.proof = oidc.clone();
    let mut account = stored("dee");
    account.binding = oidc.binding.clone();
    case.snapshot.accounts = vec![account];
    assert_eq!(case.plan().account.user_id, "dee");
}

#[test]
fn an_account_provisioned_for_the_directory_id_is_the_identitys() {
    // Entra provisions `erin@contoso.test` over SCIM with externalId = her object id; a
    // Microsoft sign-in proves that id (`oid`) but no email, and its user id is another.
    let microsoft = |oid: Option<&str>| Proof {
        binding: Some(Binding {
            issuer: "https://login.example".into(),
            subject: "pairwise".into(),
        }),
        email_verified: false,
        role_groups: None,
        directory_id: oid.map(str::to_owned),
    };
    let provisioned = |id: &str, oid: &str| Account {
        binding: None,
        directory_id: Some(oid.into()),
        ..stored(id)
    };
    // (name, the proof's oid, the accounts, the account the plan takes; None: a new one)
    type Row<'a> = (&'a str, Option<&'a str>, Vec<Account>, Option<&'a str>);
    let rows: Vec<Row> = vec![
        (
            "the same oid, unbound: taken",
            Some("oid-1"),
            vec![provisioned("erin@contoso.test", "oid-1")],
            Some("erin@contoso.test"),
        ),
        (
            "another oid: a new account",
            Some("oid-2"),
            vec![provisioned("erin@contoso.test", "oid-1")],
            None,
        ),
        (
            "no oid proved: a new account",
            None,
            vec![provisioned("erin@contoso.test", "oid-1")],
            None,
        ),
        (
            "bound to another identity: never",
            Some("oid-1"),
            vec![Account {
                binding: Some(Binding { issuer: "x".into(), subject: "y".into() }),
                ..provisioned("erin@contoso.test", "oid-1")
            }],
            None,
        ),
        (
            "two accounts with the oid: neither",
            Some("oid-1"),
            vec![
                provisioned("erin@contoso.test", "oid-1"),
                provisioned("erin2@contoso.test", "oid-1"),
            ],
            None,
        ),
    ];
    for (name, oid, accounts, taken) in rows {
        let mut case = Case::new(name, "00000000-oid-user");
        case.proof = microsoft(oid);
        case.snapshot.accounts = accounts;
        let plan = case.plan();
        match taken {
            Some(user_id) => {
                assert_eq!(plan.account.user_id, user_id, "{name}");
                let UserWrite::Update { changes, .. } = plan.user else {
                    panic!("{name}: an update")
                };
                assert_eq!(changes.binding, case.proof.binding, "{name}: bound at once");
            }
            None => assert!(plan.is_new && plan.account.user_id == "00000000-oid-user", "{name}"),
        }
    }
    // A directory-provisioned account that is deactivated refuses, as by any other way.
    let mut case = Case::new("deactivated", "00000000-oid-user");
    case.proof = microsoft(Some("oid-1"));
    case.snapshot.accounts =
        vec![Account { active: false, ..provisioned("erin@contoso.test", "oid-1") }];
    assert!(!case.refusal().is_empty());
}
