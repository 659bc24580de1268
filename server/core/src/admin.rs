//! What administrators and the password login do to accounts, as rules: an edit of a user
//! ([`edited`]), and the plan of a `UI_USERNAME`/`UI_PASSWORD` sign-in ([`password_login`]),
//! which goes through the same writer as single sign-on's plans.

use chrono::{DateTime, Utc};
use plugin_api::UserRole;

use crate::{
    budget::{BudgetDuration, period_end},
    identity::Binding,
    ids::normalise_email,
    signin::{Account, Changes, NewAccount, Plan, UserWrite},
};

/// An administrator's edit of a user (the API's `/user/update`, the UI's user page); `None`
/// leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserEdit {
    /// New email (blank clears it).
    pub user_email: Option<String>,
    /// New display name.
    pub user_alias: Option<String>,
    /// New role.
    pub user_role: Option<UserRole>,
    /// New models.
    pub models: Option<Vec<String>>,
    /// New budget (`Some(None)`: unlimited).
    pub max_budget: Option<Option<f64>>,
    /// New period (`Some(None)`: none). A changed period starts now.
    pub budget_duration: Option<Option<BudgetDuration>>,
    /// New spend.
    pub spend: Option<f64>,
    /// New metadata object (stored as given; the rules do not read it).
    pub metadata: Option<serde_json::Value>,
    /// New binding (`Some(None)`: unlinked): an administrator links an account to the identity
    /// that may sign into it.
    pub binding: Option<Option<Binding>>,
}

/// The account as an administrator's edit leaves it at `now`: emails are stored lower-case; a
/// budget period that changes starts now (its reset moves to the end of the new period), one
/// given unchanged keeps its reset; `updated_at` is `now`.
pub fn edited(account: &Account, edit: &UserEdit, now: DateTime<Utc>) -> Account {
    let mut after = account.clone();
    if let Some(email) = &edit.user_email {
        after.user_email = normalise_email(email);
    }
    if let Some(alias) = &edit.user_alias {
        after.user_alias = Some(alias.clone());
    }
    if let Some(role) = edit.user_role {
        after.user_role = Some(role);
    }
    if let Some(models) = &edit.models {
        after.models = models.clone();
    }
    if let Some(budget) = edit.max_budget {
        after.max_budget = budget;
    }
    if let Some(duration) = edit.budget_duration
        && duration != account.budget_duration
    {
        after.budget_duration = duration;
        after.budget_reset_at = period_end(duration, now);
    }
    if let Some(spend) = edit.spend {
        after.spend = spend;
    }
    if let Some(binding) = &edit.binding {
        after.binding = binding.clone();
    }
    after.updated_at = now;
    after
}

/// The password login's plan for `user_id` (`PROXY_ADMIN_ID`, or LiteLLM's `default_user_id`):
/// the account is created as `proxy_admin` if absent, made `proxy_admin` if it is not, and
/// otherwise left as it is; the session is `proxy_admin` with the account's models. It goes to
/// the writer like a single sign-on plan, so it is checked against what it read.
pub fn password_login(user_id: &str, stored: Option<&Account>, now: DateTime<Utc>) -> Plan {
    let (account, user, is_new) = match stored {
        None => {
            let account = Account {
                user_id: user_id.to_owned(),
                user_email: None,
                user_alias: None,
                user_role: Some(UserRole::ProxyAdmin),
                binding: None,
                models: Vec::new(),
                max_budget: None,
                spend: 0.0,
                budget_duration: None,
                budget_reset_at: None,
                created_at: now,
                updated_at: now,
                active: true,
                directory_id: None,
            };
            let new = NewAccount {
                account: account.clone(),
                metadata: serde_json::json!({"created_by": "password_login"}),
            };
            (account, UserWrite::Insert(new), true)
        }
        Some(stored) if stored.user_role == Some(UserRole::ProxyAdmin) => {
            (stored.clone(), UserWrite::Unchanged, false)
        }
        Some(stored) => {
            let changes = Changes { user_role: Some(UserRole::ProxyAdmin), ..Changes::default() };
            let account = Account { user_role: Some(UserRole::ProxyAdmin), ..stored.clone() };
            (account, UserWrite::Update { read_at: stored.updated_at, changes }, false)
        }
    };
    Plan {
        hook_users: Vec::new(),
        member_users: Vec::new(),
        user,
        new_teams: Vec::new(),
        memberships: Vec::new(),
        removed: Vec::new(),
        hook_removed: Vec::new(),
        models: account.models.clone(),
        account,
        is_new,
        role: UserRole::ProxyAdmin,
        passed_over: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    /// 2026-12-01 12:00 UTC, a Tuesday.
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
    }

    fn stored() -> Account {
        let then = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
        Account {
            user_id: "ann".into(),
            user_email: Some("ann@example.test".into()),
            user_alias: Some("Ann".into()),
            user_role: Some(UserRole::InternalUser),
            binding: Some(Binding { issuer: "oauth-proxy".into(), subject: "ann".into() }),
            models: vec!["gpt-4o".into()],
            max_budget: Some(5.0),
            spend: 2.0,
            budget_duration: Some("30d".parse().unwrap()),
            budget_reset_at: Some(Utc.with_ymd_and_hms(2026, 12, 20, 0, 0, 0).unwrap()),
            created_at: then,
            updated_at: then,
            active: true,
            directory_id: None,
        }
    }

    #[test]
    fn an_edit_changes_what_it_names_and_a_changed_period_starts_now() {
        let day = |d| Some(Utc.with_ymd_and_hms(2026, 12, d, 0, 0, 0).unwrap());
        type Case = (&'static str, UserEdit, fn(&mut Account));
        let cases: [Case; 7] = [
            ("nothing named: only updated_at", UserEdit::default(), |_| {}),
            (
                "email lower-cased",
                UserEdit { user_email: Some(" Ann@Corp.TEST ".into()), ..UserEdit::default() },
                |a| a.user_email = Some("ann@corp.test".into()),
            ),
            (
                "a blank email clears it",
                UserEdit { user_email: Some("  ".into()), ..UserEdit::default() },
                |a| a.user_email = None,
            ),
            (
                "the same period keeps its reset",
                UserEdit {
                    budget_duration: Some(Some("30d".parse().unwrap())),
                    ..UserEdit::default()
                },
                |_| {},
            ),
            (
                "a new period starts now",
                UserEdit {
                    budget_duration: Some(Some("1d".parse().unwrap())),
                    ..UserEdit::default()
                },
                |a| {
                    a.budget_duration = Some("1d".parse().unwrap());
                    a.budget_reset_at = Some(Utc.with_ymd_and_hms(2026, 12, 2, 0, 0, 0).unwrap());
                },
            ),
            (
                "no period: no reset",
                UserEdit { budget_duration: Some(None), ..UserEdit::default() },
                |a| {
                    a.budget_duration = None;
                    a.budget_reset_at = None;
                },
            ),
            (
                "role, models, budget, spend, unlinked",
                UserEdit {
                    user_role: Some(UserRole::ProxyAdminViewer),
                    models: Some(Vec::new()),
                    max_budget: Some(None),
                    spend: Some(0.0),
                    binding: Some(None),
                    ..UserEdit::default()
                },
                |a| {
                    a.user_role = Some(UserRole::ProxyAdminViewer);
                    a.models = Vec::new();
                    a.max_budget = None;
                    a.spend = 0.0;
                    a.binding = None;
                },
            ),
        ];
        for (name, edit, expect) in cases {
            let mut expected = Account { updated_at: now(), ..stored() };
            expect(&mut expected);
            assert_eq!(edited(&stored(), &edit, now()), expected, "{name}");
        }
        assert_eq!(stored().budget_reset_at, day(20));
    }

    #[test]
    fn the_password_login_creates_or_promotes_its_account() {
        let plan = password_login("root", None, now());
        let UserWrite::Insert(new) = &plan.user else { panic!("an insert: {:?}", plan.user) };
        assert_eq!(new.account.user_role, Some(UserRole::ProxyAdmin));
        assert_eq!(new.metadata["created_by"], "password_login");
        assert!(plan.is_new && plan.role == UserRole::ProxyAdmin);

        let plan = password_login("ann", Some(&stored()), now());
        let UserWrite::Update { read_at, changes } = &plan.user else { panic!("an update") };
        assert_eq!(*read_at, stored().updated_at, "checked against what was read");
        assert_eq!(changes.user_role, Some(UserRole::ProxyAdmin));
        assert_eq!(changes.user_email, None, "nothing else changes");
        assert_eq!(plan.models, ["gpt-4o"], "the session keeps the account's models");

        let admin = Account { user_role: Some(UserRole::ProxyAdmin), ..stored() };
        assert_eq!(password_login("ann", Some(&admin), now()).user, UserWrite::Unchanged);
    }
}
