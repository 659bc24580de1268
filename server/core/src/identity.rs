//! Who signs in, as the rules see it: the account binding ([`Binding`]), what the front door
//! proved ([`Proof`]), and the display name LiteLLM would give them ([`alias_of`]).

use std::collections::HashSet;

use plugin_api::OpenId;

use crate::{
    ids::{MAX_EMAIL, MAX_ID, is_plausible_email, is_storable_id, normalise_email, shorten, shown},
    policy::RoleMap,
    values::MAX_GROUPS,
};

/// The account binding of a sign-in identity: who vouches for it, and its subject there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Binding {
    /// The OIDC issuer (or provider endpoint), or [`Binding::PROXY_ISSUER`].
    pub issuer: String,
    /// OIDC `sub`, or the id the header hook returned.
    pub subject: String,
}

impl Binding {
    /// The issuer recorded for identities an OAuth proxy vouched for (header sign-ins).
    pub const PROXY_ISSUER: &'static str = "oauth-proxy";
}

/// What the front door proved about an identity, beyond the [`OpenId`] hooks see.
#[derive(Debug, Clone, Default)]
pub struct Proof {
    /// The account the identity is bound to; `None` when it has no stable subject.
    pub binding: Option<Binding>,
    /// Whether the identity provider marked the email verified (`email_verified`). Header
    /// sign-ins count as verified: the OAuth proxy vouches for what it passes.
    pub email_verified: bool,
    /// The groups the role mapping reads when a claim of their own gives them
    /// (`role_mappings.group_claim`, `GENERIC_ROLE_MAPPINGS_GROUP_CLAIM`); `None`: the identity's
    /// groups (`team_ids`).
    pub role_groups: Option<Vec<String>>,
    /// The identity's id in the directory that provisions users over SCIM, as the identity
    /// provider proves it: Microsoft's `oid` (the object id Entra sends as `externalId`). An
    /// unbound account provisioned with it is the identity's.
    pub directory_id: Option<String>,
}

impl Proof {
    /// What a trusted OAuth proxy proves: the identity's id, bound under the proxy's issuer, and
    /// a verified email.
    pub fn of_header_identity(openid: &OpenId) -> Proof {
        let binding =
            openid.id.as_deref().map(str::trim).filter(|id| !id.is_empty()).map(|id| Binding {
                issuer: Binding::PROXY_ISSUER.to_owned(),
                subject: id.to_owned(),
            });
        Proof { binding, email_verified: true, role_groups: None, directory_id: None }
    }
}

/// LiteLLM's alias: the display name, unless it is just the id; else "first last".
pub fn alias_of(openid: &OpenId) -> Option<String> {
    let display = openid.display_name.as_deref().map(str::trim).filter(|name| !name.is_empty());
    match display {
        Some(name) if Some(name) != openid.id.as_deref() => Some(name.to_owned()),
        _ => {
            let full = [openid.first_name.as_deref(), openid.last_name.as_deref()]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" ");
            (!full.trim().is_empty()).then(|| full.trim().to_owned())
        }
    }
    .map(|alias| shorten(&alias, 255))
}

/// Why an identity cannot sign in as it is, before any hook runs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityProblem {
    /// The subject does not fit its column.
    #[error(
        "the identity's subject {0} is longer than {MAX_ID} characters or has control characters"
    )]
    Subject(String),
    /// The user id derived from the identity does not fit its column.
    #[error(
        "the identity's user id {0} is longer than {MAX_ID} characters or has control characters"
    )]
    UserId(String),
    /// More distinct groups than a snapshot read takes.
    #[error(
        "the identity names {0} groups; hookgate accepts at most {MAX_GROUPS} (ask the identity \
         provider's administrator to send only the groups that matter here)"
    )]
    TooManyGroups(usize),
    /// The email is not an address.
    #[error("the identity's email {0} is not an email address")]
    Email(String),
    /// `ALLOWED_EMAIL_DOMAINS` is set and the email is not verified.
    #[error(
        "the identity provider has not verified this email address, and ALLOWED_EMAIL_DOMAINS \
         admits verified addresses only"
    )]
    UnverifiedEmail,
    /// `ALLOWED_EMAIL_DOMAINS` is set and does not list the email's domain.
    #[error("the email domain {0} is not allowed to sign in (ALLOWED_EMAIL_DOMAINS)")]
    Domain(String),
    /// Nothing to name the user by.
    #[error("sign-in failed: the identity has no user id and no email")]
    Anonymous,
}

/// An identity that passed [`check_identity`].
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// The identity: email trimmed and lower-cased (or `None`), each group once.
    pub openid: OpenId,
    /// The identity's own id, trimmed, when it has one.
    pub idp_id: Option<String>,
    /// The user id LiteLLM derives without a `custom_sso` hook: the id, else first + last name,
    /// else the email.
    pub parsed_user_id: Option<String>,
}

/// The identity with the role its groups map to (`roles`), when they map to one: a mapping
/// overrides the provider's own role claim; the `custom_sso` hook, which runs after, still has
/// the last word. The groups are the proof's `role_groups` when a claim of their own gave them,
/// else the identity's.
pub fn with_mapped_role(mut checked: Checked, roles: Option<&RoleMap>, proof: &Proof) -> Checked {
    let groups = proof.role_groups.as_deref().unwrap_or(&checked.openid.team_ids);
    if let Some(role) = roles.and_then(|map| map.role_of(groups)) {
        checked.openid.user_role = Some(role);
    }
    checked
}

/// Checks and normalises an identity before any hook sees it: a storable subject, each group
/// once and at most [`MAX_GROUPS`] of them, a plausible email, and `allowed_email_domains`
/// (when not empty: a verified email in one of them).
///
/// # Errors
/// [`IdentityProblem`], saying what is wrong.
pub fn check_identity(
    mut openid: OpenId,
    proof: &Proof,
    allowed_email_domains: &[String],
) -> Result<Checked, IdentityProblem> {
    if let Some(binding) = &proof.binding
        && !is_storable_id(&binding.subject)
    {
        return Err(IdentityProblem::Subject(shown(&binding.subject)));
    }
    let mut seen = HashSet::new();
    openid.team_ids.retain(|team| seen.insert(team.clone()));
    if openid.team_ids.len() > MAX_GROUPS {
        return Err(IdentityProblem::TooManyGroups(openid.team_ids.len()));
    }
    openid.email = openid.email.as_deref().and_then(normalise_email);
    if let Some(email) = &openid.email
        && (!is_plausible_email(email) || email.len() > MAX_EMAIL)
    {
        return Err(IdentityProblem::Email(shown(email)));
    }
    if !allowed_email_domains.is_empty() {
        if openid.email.is_some() && !proof.email_verified {
            return Err(IdentityProblem::UnverifiedEmail);
        }
        let domain =
            openid.email.as_deref().and_then(|email| email.rsplit_once('@')).map(|(_, d)| d);
        if !domain.is_some_and(|domain| allowed_email_domains.iter().any(|d| d == domain)) {
            return Err(IdentityProblem::Domain(domain.unwrap_or("(none)").to_owned()));
        }
    }
    let idp_id = openid.id.as_deref().map(str::trim).filter(|id| !id.is_empty()).map(str::to_owned);
    let parsed_user_id = idp_id
        .clone()
        .or_else(|| {
            let name = format!(
                "{}{}",
                openid.first_name.as_deref().unwrap_or(""),
                openid.last_name.as_deref().unwrap_or("")
            );
            (!name.trim().is_empty()).then(|| name.trim().to_owned())
        })
        .or_else(|| openid.email.clone());
    Ok(Checked { openid, idp_id, parsed_user_id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_are_checked_and_normalised() {
        let verified = Proof { email_verified: true, ..Proof::default() };
        let ann = OpenId {
            id: Some(" ann ".into()),
            email: Some(" Ann@Corp.TEST".into()),
            team_ids: vec!["a".into(), "b".into(), "a".into()],
            ..OpenId::default()
        };
        let checked = check_identity(ann.clone(), &verified, &[]).unwrap();
        assert_eq!(checked.openid.email.as_deref(), Some("ann@corp.test"));
        assert_eq!(checked.openid.team_ids, ["a", "b"]);
        assert_eq!(
            (checked.idp_id.as_deref(), checked.parsed_user_id.as_deref()),
            (Some("ann"), Some("ann"))
        );

        let named = OpenId {
            first_name: Some("Ann".into()),
            last_name: Some("Lee".into()),
            ..OpenId::default()
        };
        assert_eq!(
            check_identity(named, &verified, &[]).unwrap().parsed_user_id.as_deref(),
            Some("AnnLee")
        );
        let mailed = OpenId { email: Some("x@y".into()), ..OpenId::default() };
        assert_eq!(
            check_identity(mailed, &verified, &[]).unwrap().parsed_user_id.as_deref(),
            Some("x@y")
        );

        let corp = ["corp.test".to_owned()];
        let cases: [(&str, OpenId, Proof, &[String], IdentityProblem); 5] = [
            (
                "a subject with a control character",
                ann.clone(),
                Proof {
                    binding: Some(Binding { issuer: "i".into(), subject: "a\u{7}".into() }),
                    email_verified: true,
                    role_groups: None,
                    directory_id: None,
                },
                &[],
                IdentityProblem::Subject("\"a\\u{7}\"".into()),
            ),
            (
                "too many groups",
                OpenId {
                    team_ids: (0..=MAX_GROUPS).map(|g| g.to_string()).collect(),
                    ..ann.clone()
                },
                verified.clone(),
                &[],
                IdentityProblem::TooManyGroups(MAX_GROUPS + 1),
            ),
            (
                "not an email",
                OpenId { email: Some("nobody".into()), ..ann.clone() },
                verified.clone(),
                &[],
                IdentityProblem::Email("\"nobody\"".into()),
            ),
            (
                "unverified with domains",
                ann.clone(),
                Proof::default(),
                &corp,
                IdentityProblem::UnverifiedEmail,
            ),
            (
                "another domain",
                OpenId { email: Some("ann@else.test".into()), ..ann.clone() },
                verified.clone(),
                &corp,
                IdentityProblem::Domain("else.test".into()),
            ),
        ];
        for (name, openid, proof, domains, problem) in cases {
            assert_eq!(check_identity(openid, &proof, domains), Err(problem), "{name}");
        }
        assert!(
            check_identity(ann, &verified, &corp).is_ok(),
            "a verified email in a listed domain"
        );
    }

    fn openid(id: &str, display: Option<&str>, first: Option<&str>, last: Option<&str>) -> OpenId {
        OpenId {
            id: Some(id.into()),
            display_name: display.map(Into::into),
            first_name: first.map(Into::into),
            last_name: last.map(Into::into),
            ..OpenId::default()
        }
    }

    #[test]
    fn the_alias_is_the_display_name_unless_it_is_the_id() {
        for (identity, alias) in [
            (openid("ann", Some("Ann Lee"), None, None), Some("Ann Lee")),
            (openid("ann", Some("ann"), Some("Ann"), Some("Lee")), Some("Ann Lee")),
            (openid("ann", Some("  "), Some("Ann"), None), Some("Ann")),
            (openid("ann", None, None, None), None),
        ] {
            assert_eq!(alias_of(&identity).as_deref(), alias, "{identity:?}");
        }
        let long = openid("ann", Some(&"n".repeat(300)), None, None);
        assert_eq!(alias_of(&long).unwrap().chars().count(), 255);
    }

    #[test]
    fn a_header_identity_is_bound_under_the_proxy_issuer() {
        let proof = Proof::of_header_identity(&openid(" ann ", None, None, None));
        assert_eq!(
            proof.binding,
            Some(Binding { issuer: "oauth-proxy".into(), subject: "ann".into() })
        );
        assert!(proof.email_verified);
        assert_eq!(Proof::of_header_identity(&openid("  ", None, None, None)).binding, None);
    }

    #[test]
    fn the_mapped_role_comes_from_the_role_groups_when_a_claim_gives_them() {
        use crate::policy::RoleMap;
        use plugin_api::UserRole;
        let map = RoleMap {
            roles: vec![(UserRole::ProxyAdmin, vec!["admins".into()])],
            default_role: Some(UserRole::InternalUserViewer),
        };
        let checked = |role: Option<UserRole>| Checked {
            openid: OpenId {
                team_ids: vec!["admins".into()],
                user_role: role,
                ..OpenId::default()
            },
            idp_id: None,
            parsed_user_id: None,
        };
        let role_groups = |groups: Option<&[&str]>| Proof {
            role_groups: groups.map(|g| g.iter().map(|s| (*s).to_owned()).collect()),
            ..Proof::default()
        };
        // (name, map, role_groups, the provider's role, the role after)
        type Row<'a> = (
            &'a str,
            Option<&'a RoleMap>,
            Option<&'a [&'a str]>,
            Option<UserRole>,
            Option<UserRole>,
        );
        let rows: [Row; 5] = [
            (
                "no map: the provider's role",
                None,
                None,
                Some(UserRole::InternalUser),
                Some(UserRole::InternalUser),
            ),
            (
                "the groups map",
                Some(&map),
                None,
                Some(UserRole::InternalUser),
                Some(UserRole::ProxyAdmin),
            ),
            (
                "a claim of its own that maps",
                Some(&map),
                Some(&["admins"]),
                None,
                Some(UserRole::ProxyAdmin),
            ),
            (
                "a claim of its own without the group: the default",
                Some(&map),
                Some(&["staff"]),
                None,
                Some(UserRole::InternalUserViewer),
            ),
            (
                "an empty claim of its own: the default, never the groups",
                Some(&map),
                Some(&[]),
                Some(UserRole::InternalUser),
                Some(UserRole::InternalUserViewer),
            ),
        ];
        for (name, roles, groups, before, after) in rows {
            let mapped = with_mapped_role(checked(before), roles, &role_groups(groups));
            assert_eq!(mapped.openid.user_role, after, "{name}");
        }
    }
}
