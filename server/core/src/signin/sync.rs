//! What an authoritative sync with the identity provider (`sync_user_role_and_teams`) does to
//! one user — the teams it takes them out of ([`removed_by_sync`]) and the role it gives them
//! ([`role_after`]) — and the preview of a user's first authoritative sign-in from the groups
//! their latest sign-in named ([`preview_first_sync`], `hookgate sync --dry-run`).
//!
//! [`super::decide`] applies the same two functions, so a preview and the sign-in it previews
//! cannot disagree on the rules.

use plugin_api::UserRole;

use crate::policy::Policy;

/// The teams an authoritative sync takes `user_id` out of: those of the memberships a sync
/// made (`synced`: (team, user) pairs, source `idp`) that the identity's `groups` no longer
/// name. Memberships an administrator, a hook or the defaults made are never in `synced`, so
/// never removed. Sorted, each once.
pub fn removed_by_sync(
    user_id: &str,
    synced: &[(String, String)],
    groups: &[String],
) -> Vec<String> {
    let mut removed: Vec<String> = synced
        .iter()
        .filter(|(team, user)| user == user_id && !groups.contains(team))
        .map(|(team, _)| team.clone())
        .collect();
    removed.sort();
    removed.dedup();
    removed
}

/// The role a sign-in gives `user_id` and the stored role it writes when that changes: the role
/// the sign-in chose (a `custom_sso` hook's, else the identity's — its groups' mapped role or
/// its own claim), else the stored one, else `internal_user_viewer`; `PROXY_ADMIN_ID` is always
/// `proxy_admin`. The stored role changes only to a chosen role or to `proxy_admin`.
pub fn role_after(
    chosen: Option<UserRole>,
    stored: Option<UserRole>,
    user_id: &str,
    policy: &Policy<'_>,
) -> (UserRole, Option<UserRole>) {
    let mut role = chosen.or(stored).unwrap_or(UserRole::InternalUserViewer);
    if policy.proxy_admin_id == Some(user_id) {
        role = UserRole::ProxyAdmin;
    }
    let write = (stored != Some(role) && (chosen.is_some() || role == UserRole::ProxyAdmin))
        .then_some(role);
    (role, write)
}

/// A stored user as [`preview_first_sync`] sees them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Standing<'a> {
    /// The user's id.
    pub user_id: &'a str,
    /// Their stored role.
    pub user_role: Option<UserRole>,
    /// Their memberships as stored: (team, user) pairs a sync made (source `idp`).
    pub synced: &'a [(String, String)],
    /// The groups their latest sign-in's identity named; `None` when no sign-in recorded them
    /// (none since hookgate records groups, or its event was pruned).
    pub groups: Option<&'a [String]>,
    /// The groups the role mapping read at that sign-in when a claim of their own gave them
    /// (`role_mappings.group_claim`); `None`: it read `groups`.
    pub role_groups: Option<&'a [String]>,
}

/// What a user's first authoritative sign-in would do, if their identity names the same groups
/// as at their latest sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preview {
    /// Their groups were never recorded: what the sign-in would remove cannot be known.
    Unknown,
    /// From their recorded groups.
    Known {
        /// The teams they would leave.
        removed: Vec<String>,
        /// The stored role the role mappings would give them, when it differs from the stored
        /// one (a `custom_sso` hook, which runs after the mappings, may still choose another).
        role: Option<UserRole>,
    },
}

/// What `user`'s first sign-in with `sync_user_role_and_teams` on would change, by the rules
/// [`super::decide`] applies: the memberships a sync made that their recorded groups no longer
/// name go, and the role is the one the role mapping (`policy.roles`) gives the groups it read
/// then (its own claim's, else the identity's) when that differs from the stored one.
/// `policy.sync_teams` is not read: the preview is of turning it on.
pub fn preview_first_sync(user: &Standing<'_>, policy: &Policy<'_>) -> Preview {
    let Some(groups) = user.groups else { return Preview::Unknown };
    let removed = removed_by_sync(user.user_id, user.synced, groups);
    let role_groups = user.role_groups.unwrap_or(groups);
    let mapped = policy.roles.and_then(|map| map.role_of(role_groups));
    let (_, role) = role_after(mapped, user.user_role, user.user_id, policy);
    Preview::Known { removed, role }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::RoleMap;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| (*item).to_owned()).collect()
    }

    fn synced(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(team, user)| ((*team).to_owned(), (*user).to_owned())).collect()
    }

    #[test]
    fn a_sync_removes_its_own_memberships_the_groups_no_longer_name() {
        let held = synced(&[("ops", "ann"), ("eng", "ann"), ("lab", "bob"), ("ops", "ann")]);
        // (name, groups, removed)
        let cases: [(&str, &[&str], &[&str]); 4] = [
            ("every team still named", &["eng", "ops", "x"], &[]),
            ("one dropped", &["eng"], &["ops"]),
            ("no groups: every synced team, sorted, once", &[], &["eng", "ops"]),
            ("another user's membership is not hers", &["eng", "ops"], &[]),
        ];
        for (name, groups, removed) in cases {
            assert_eq!(removed_by_sync("ann", &held, &list(groups)), list(removed), "{name}");
        }
        assert_eq!(removed_by_sync("bob", &held, &list(&["eng"])), list(&["lab"]));
        assert_eq!(removed_by_sync("cy", &held, &[]), Vec::<String>::new());
    }

    #[test]
    fn the_role_a_sign_in_gives_and_writes() {
        use UserRole::*;
        let root = Policy { proxy_admin_id: Some("root"), ..Policy::default() };
        // (name, chosen, stored, user, session role, written role)
        let cases = [
            (
                "chosen wins and is written",
                Some(ProxyAdmin),
                Some(InternalUser),
                "ann",
                ProxyAdmin,
                Some(ProxyAdmin),
            ),
            (
                "chosen equal to stored: nothing written",
                Some(InternalUser),
                Some(InternalUser),
                "ann",
                InternalUser,
                None,
            ),
            ("none chosen: the stored role", None, Some(InternalUser), "ann", InternalUser, None),
            ("nothing at all: a viewer, not written", None, None, "ann", InternalUserViewer, None),
            (
                "PROXY_ADMIN_ID beats a chosen role",
                Some(InternalUser),
                Some(InternalUser),
                "root",
                ProxyAdmin,
                Some(ProxyAdmin),
            ),
            ("PROXY_ADMIN_ID already stored", None, Some(ProxyAdmin), "root", ProxyAdmin, None),
        ];
        for (name, chosen, stored, user, role, write) in cases {
            assert_eq!(role_after(chosen, stored, user, &root), (role, write), "{name}");
        }
    }

    #[test]
    fn a_preview_of_the_first_authoritative_sign_in() {
        use UserRole::*;
        let map = RoleMap {
            roles: vec![(ProxyAdmin, list(&["admins"])), (InternalUser, list(&["eng"]))],
            default_role: None,
        };
        let mapped =
            Policy { roles: Some(&map), proxy_admin_id: Some("root"), ..Policy::default() };
        let plain = Policy::default();
        let held = synced(&[("eng", "ann"), ("ops", "ann")]);
        let known = |removed: &[&str], role| Preview::Known { removed: list(removed), role };
        // (name, user, synced, recorded groups, stored role, policy, preview)
        type Held<'a> = &'a [(String, String)];
        let cases: [(&str, &str, Held<'_>, Option<&[&str]>, _, _, _); 8] = [
            (
                "no recorded groups: unknown",
                "ann",
                &held,
                None,
                Some(InternalUser),
                &mapped,
                Preview::Unknown,
            ),
            (
                "no recorded groups, nothing synced: still unknown",
                "ann",
                &[],
                None,
                None,
                &plain,
                Preview::Unknown,
            ),
            (
                "same groups, same role",
                "ann",
                &held,
                Some(&["eng", "ops"]),
                Some(InternalUser),
                &mapped,
                known(&[], None),
            ),
            (
                "a dropped group and a higher mapped role",
                "ann",
                &held,
                Some(&["eng", "admins"]),
                Some(InternalUser),
                &mapped,
                known(&["ops"], Some(ProxyAdmin)),
            ),
            (
                "no mapping matches: the role stays",
                "ann",
                &held,
                Some(&["sales"]),
                Some(InternalUser),
                &mapped,
                known(&["eng", "ops"], None),
            ),
            (
                "no role map: only removals",
                "ann",
                &held,
                Some(&["admins"]),
                Some(InternalUser),
                &plain,
                known(&["eng", "ops"], None),
            ),
            (
                "recorded as none: every synced team",
                "ann",
                &held,
                Some(&[]),
                Some(InternalUser),
                &plain,
                known(&["eng", "ops"], None),
            ),
            (
                "PROXY_ADMIN_ID stays proxy_admin",
                "root",
                &[],
                Some(&["eng"]),
                Some(ProxyAdmin),
                &mapped,
                known(&[], None),
            ),
        ];
        for (name, user_id, synced, groups, user_role, policy, preview) in cases {
            let groups = groups.map(list);
            let standing = Standing {
                user_id,
                user_role,
                synced,
                groups: groups.as_deref(),
                role_groups: None,
            };
            assert_eq!(preview_first_sync(&standing, policy), preview, "{name}");
        }
        // The role mapping's own claim: its groups map the role, the identity's groups still
        // decide the teams.
        let (groups, role_groups) = (list(&["eng"]), list(&["admins"]));
        let own_claim = Standing {
            user_id: "ann",
            user_role: Some(InternalUser),
            synced: &held,
            groups: Some(&groups),
            role_groups: Some(&role_groups),
        };
        assert_eq!(preview_first_sync(&own_claim, &mapped), known(&["ops"], Some(ProxyAdmin)));
        let empty_claim = Standing { role_groups: Some(&[]), ..own_claim };
        assert_eq!(preview_first_sync(&empty_claim, &mapped), known(&["ops"], None));
    }
}
