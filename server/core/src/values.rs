//! The values a sign-in applies to its user — the `custom_sso` hook's, or LiteLLM's defaults —
//! and the checks a hook's values pass before the rules see them.

use plugin_api::{SsoUserDefinedValues, UserRole};

use crate::{
    budget::{BudgetDuration, is_valid_budget},
    identity::{Checked, IdentityProblem},
    ids::{MAX_EMAIL, MAX_ID, is_plausible_email, is_storable_id, normalise_email, shown},
    policy::NewUsers,
};

/// The most groups an identity may name (distinct): each is a key of one snapshot read, and
/// databases bound how many a statement takes (SQLite 32,766).
pub const MAX_GROUPS: usize = 10_000;

/// The most model names a user gets from a hook.
pub const MAX_MODELS: usize = 1000;

/// The values a sign-in applies, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Values {
    /// Models.
    pub models: Vec<String>,
    /// The user id the sign-in is for.
    pub user_id: String,
    /// Lower-case email.
    pub user_email: Option<String>,
    /// Role, when chosen.
    pub user_role: Option<UserRole>,
    /// Budget in USD.
    pub max_budget: Option<f64>,
    /// Budget period.
    pub budget_duration: Option<BudgetDuration>,
    /// Whether a `custom_sso` hook chose these (its budget applies at every sign-in).
    pub from_hook: bool,
}

/// A hook's values that are not ones a user can have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the custom_sso hook returned invalid values: {0}")]
pub struct InvalidValues(pub String);

/// Checks and normalises what a `custom_sso` hook returned.
///
/// # Errors
/// [`InvalidValues`], saying which value is wrong and why.
pub fn check_values(values: SsoUserDefinedValues) -> Result<Values, InvalidValues> {
    let invalid = |what: String| InvalidValues(what);
    let user_id = values.user_id.trim().to_owned();
    if user_id.is_empty() {
        return Err(invalid("user_id is empty".into()));
    }
    if !is_storable_id(&user_id) {
        return Err(invalid(format!(
            "user_id {} is longer than {MAX_ID} characters or has control characters",
            shown(&user_id)
        )));
    }
    let user_email = values.user_email.as_deref().and_then(normalise_email);
    if let Some(email) = &user_email
        && (!is_plausible_email(email) || email.len() > MAX_EMAIL)
    {
        return Err(invalid(format!("user_email {} is not an email address", shown(email))));
    }
    if let Some(budget) = values.max_budget
        && !is_valid_budget(budget)
    {
        return Err(invalid(format!("max_budget {budget} must be a number of USD, 0 or more")));
    }
    let budget_duration = match values.budget_duration {
        Some(text) => Some(
            text.parse::<BudgetDuration>()
                .map_err(|error| invalid(format!("budget_duration: {error}")))?,
        ),
        None => None,
    };
    if values.models.iter().any(|model| model.trim().is_empty()) {
        return Err(invalid("models has an empty name".into()));
    }
    if values.models.len() > MAX_MODELS || values.models.iter().any(|model| model.len() > MAX_ID) {
        return Err(invalid(format!(
            "models lists {} names; at most {MAX_MODELS} of at most {MAX_ID} characters are \
             accepted",
            values.models.len()
        )));
    }
    Ok(Values {
        models: values.models,
        user_id,
        user_email,
        user_role: values.user_role,
        max_budget: values.max_budget,
        budget_duration,
        from_hook: true,
    })
}

/// The values of a sign-in without a `custom_sso` hook (LiteLLM's defaults): the user id
/// derived from the identity, its email and role, the default models, and the internal-user
/// budget.
///
/// # Errors
/// [`IdentityProblem::Anonymous`] without anything to name the user by;
/// [`IdentityProblem::UserId`] when the derived id does not fit its column.
pub fn defaults(identity: &Checked, new_users: &NewUsers<'_>) -> Result<Values, IdentityProblem> {
    let Some(user_id) = identity.parsed_user_id.clone() else {
        return Err(IdentityProblem::Anonymous);
    };
    if !is_storable_id(&user_id) {
        return Err(IdentityProblem::UserId(shown(&user_id)));
    }
    Ok(Values {
        models: new_users.models.to_vec(),
        user_id,
        user_email: identity.openid.email.clone(),
        user_role: identity.openid.user_role,
        max_budget: new_users.max_internal_user_budget,
        budget_duration: new_users.internal_user_budget_duration,
        from_hook: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn returned(edit: impl FnOnce(&mut SsoUserDefinedValues)) -> Result<Values, InvalidValues> {
        let mut values = SsoUserDefinedValues {
            models: vec!["gpt-4o".into()],
            user_id: " ann ".into(),
            user_email: Some(" Ann@Example.TEST ".into()),
            user_role: Some(UserRole::InternalUser),
            max_budget: Some(10.0),
            budget_duration: Some("30d".into()),
        };
        edit(&mut values);
        check_values(values)
    }

    #[test]
    fn good_values_are_normalised() {
        let values = returned(|_| {}).unwrap();
        assert_eq!(values.user_id, "ann");
        assert_eq!(values.user_email.as_deref(), Some("ann@example.test"));
        assert_eq!(values.budget_duration, Some("30d".parse().unwrap()));
        assert!(values.from_hook);
        assert_eq!(returned(|v| v.user_email = Some("  ".into())).unwrap().user_email, None);
    }

    #[test]
    fn without_a_hook_litellms_defaults_apply() {
        let checked = |id: Option<&str>| Checked {
            openid: plugin_api::OpenId {
                email: Some("ann@example.test".into()),
                user_role: Some(UserRole::ProxyAdminViewer),
                ..plugin_api::OpenId::default()
            },
            idp_id: id.map(Into::into),
            parsed_user_id: id.map(Into::into),
        };
        let models = ["gpt-4o".to_owned()];
        let new_users = NewUsers {
            models: &models,
            max_internal_user_budget: Some(10.0),
            internal_user_budget_duration: Some("1mo".parse().unwrap()),
            ..NewUsers::default()
        };
        let values = defaults(&checked(Some("ann")), &new_users).unwrap();
        assert_eq!(
            values,
            Values {
                models: vec!["gpt-4o".into()],
                user_id: "ann".into(),
                user_email: Some("ann@example.test".into()),
                user_role: Some(UserRole::ProxyAdminViewer),
                max_budget: Some(10.0),
                budget_duration: Some("1mo".parse().unwrap()),
                from_hook: false,
            }
        );
        assert_eq!(defaults(&checked(None), &new_users), Err(IdentityProblem::Anonymous));
        let long = "x".repeat(300);
        assert!(matches!(
            defaults(&checked(Some(&long)), &new_users),
            Err(IdentityProblem::UserId(_))
        ));
    }

    #[test]
    fn each_bad_value_is_named() {
        type Edit = fn(&mut SsoUserDefinedValues);
        let cases: [(&str, Edit); 8] = [
            ("user_id is empty", |v| v.user_id = "  ".into()),
            ("user_id \"a\\nb\" is longer than 255", |v| v.user_id = "a\nb".into()),
            ("user_email \"nobody\" is not an email", |v| v.user_email = Some("nobody".into())),
            ("max_budget -1 must be", |v| v.max_budget = Some(-1.0)),
            ("max_budget NaN must be", |v| v.max_budget = Some(f64::NAN)),
            ("budget_duration: invalid budget duration \"soon\"", |v| {
                v.budget_duration = Some("soon".into());
            }),
            ("models has an empty name", |v| v.models = vec![" ".into()]),
            ("models lists 1001 names", |v| v.models = vec!["m".into(); 1001]),
        ];
        for (message, edit) in cases {
            let error = returned(edit).unwrap_err().to_string();
            assert!(
                error.starts_with("the custom_sso hook returned invalid values: ")
                    && error.contains(message),
                "{error} should say {message}"
            );
        }
    }
}
