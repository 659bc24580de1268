//! Example `custom_ui_sso_sign_in_handler` hook: signs users in from the identity headers an
//! OAuth proxy (oauth2-proxy, Apache mod_auth_openidc, nginx `auth_request`…) sets, as LiteLLM's
//! documented `MyCustomSSOLoginHandler` does.
//!
//! ```yaml
//! general_settings:
//!   custom_ui_sso_sign_in_handler: custom_sso_handler.custom_ui_sso_sign_in_handler
//! ```
//!
//! It reads exactly one header per value, and no other header:
//!
//! | value | header (default) | override with the environment variable |
//! |---|---|---|
//! | user id | `x-forwarded-user` | `CUSTOM_SSO_HANDLER_USER_HEADER` |
//! | email | `x-forwarded-email` | `CUSTOM_SSO_HANDLER_EMAIL_HEADER` |
//! | display name | `x-forwarded-preferred-username` | `CUSTOM_SSO_HANDLER_NAME_HEADER` |
//! | groups (become `team_ids`) | `x-forwarded-groups` | `CUSTOM_SSO_HANDLER_GROUPS_HEADER` |
//!
//! These headers are worth exactly what the proxy in front makes them worth: it must set all
//! four on every request, replacing whatever the client sent, and strip their look-alikes (see
//! "What the OAuth proxy must do" in `docs/plugin-authors.md`). The hook's own rules:
//!
//! * **No fallbacks.** Each value comes from its one header. Nothing else is consulted: not
//!   `x-user`, `x-email`, nor mod_auth_openidc's `oidc_claim_*`.
//! * **Present but empty (or blank) is "no value".** An empty `x-forwarded-email` means the user
//!   has no email; it does not fall through to anything.
//! * **The user id** is the user header's value, else the email. With neither, the sign-in is
//!   rejected.
//! * **Groups**: every line of the groups header (oauth2-proxy sends one per group, Apache one
//!   comma-separated line), split at commas, trimmed; empty entries and repeats are dropped.
//! * **Refused** (403, with a message naming the header):
//!   - a user, email or name header that appears more than once, even if a copy is empty;
//!   - a look-alike of any of the four headers: a header whose name is equal to it once
//!     lower-cased and with `_` read as `-` (`x_forwarded_user`, `X-Forwarded_Groups`). Proxies
//!     overwrite the real name but may pass these through, and other software behind the proxy
//!     (CGI, WSGI, some frameworks) reads them as the real header.
//!
//! The environment variables are read once, at the first sign-in. Unset or empty keeps the
//! default; otherwise the value must be a lower-case header name (`a-z`, `0-9` and inner `-`,
//! no `_`), and the four names must differ. An invalid value fails every sign-in (500) with a
//! message naming the variable.

use std::{ffi::OsString, sync::OnceLock};

use plugin_api::{HookError, OpenId, SignInRequest};

/// The environment variable that overrides the user id header.
pub const USER_HEADER_VAR: &str = "CUSTOM_SSO_HANDLER_USER_HEADER";
/// The environment variable that overrides the email header.
pub const EMAIL_HEADER_VAR: &str = "CUSTOM_SSO_HANDLER_EMAIL_HEADER";
/// The environment variable that overrides the display name header.
pub const NAME_HEADER_VAR: &str = "CUSTOM_SSO_HANDLER_NAME_HEADER";
/// The environment variable that overrides the groups header.
pub const GROUPS_HEADER_VAR: &str = "CUSTOM_SSO_HANDLER_GROUPS_HEADER";

/// The one header the hook reads for each value.
///
/// Every name is a valid lower-case header name without `_`, and the four differ: [`Self::new`]
/// checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderNames {
    user: String,
    email: String,
    name: String,
    groups: String,
}

impl Default for HeaderNames {
    fn default() -> Self {
        Self {
            user: "x-forwarded-user".to_owned(),
            email: "x-forwarded-email".to_owned(),
            name: "x-forwarded-preferred-username".to_owned(),
            groups: "x-forwarded-groups".to_owned(),
        }
    }
}

impl HeaderNames {
    /// Header names for the user id, email, display name and groups.
    ///
    /// # Errors
    /// A name that is not a lower-case header name (`a-z`, `0-9`, inner `-`), or two equal names.
    pub fn new(user: &str, email: &str, name: &str, groups: &str) -> Result<Self, String> {
        Self::from_values([
            (user, "user header"),
            (email, "email header"),
            (name, "name header"),
            (groups, "groups header"),
        ])
    }

    /// The names from `CUSTOM_SSO_HANDLER_{USER,EMAIL,NAME,GROUPS}_HEADER`, defaults where unset
    /// or empty.
    ///
    /// # Errors
    /// A variable that is not valid (the message names it).
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(std::env::var_os)
    }

    /// As [`Self::from_env`], with the variables from `lookup`.
    ///
    /// # Errors
    /// A variable that is not valid (the message names it).
    pub fn from_lookup(lookup: impl Fn(&'static str) -> Option<OsString>) -> Result<Self, String> {
        let defaults = Self::default();
        let pick = |var: &'static str, default: &str| -> Result<(String, &'static str), String> {
            match lookup(var).map(OsString::into_string) {
                None => Ok((default.to_owned(), var)),
                Some(Err(_)) => Err(format!("{var} is not valid UTF-8")),
                Some(Ok(value)) if value.trim().is_empty() => Ok((default.to_owned(), var)),
                Some(Ok(value)) => Ok((value, var)),
            }
        };
        let values = [
            pick(USER_HEADER_VAR, &defaults.user)?,
            pick(EMAIL_HEADER_VAR, &defaults.email)?,
            pick(NAME_HEADER_VAR, &defaults.name)?,
            pick(GROUPS_HEADER_VAR, &defaults.groups)?,
        ];
        Self::from_values(values.each_ref().map(|(value, var)| (value.as_str(), *var)))
    }

    fn from_values(values: [(&str, &str); 4]) -> Result<Self, String> {
        for (value, what) in values {
            if !is_lower_case_header_name(value) {
                return Err(format!(
                    "{what} {value:?} is not a lower-case header name (a-z, 0-9 and inner '-', \
                     no '_')"
                ));
            }
        }
        for (index, (value, what)) in values.iter().enumerate() {
            if let Some((_, other)) = values[..index].iter().find(|(seen, _)| seen == value) {
                return Err(format!(
                    "{what} {value:?} is the same header as {other}: the four must differ"
                ));
            }
        }
        let [user, email, name, groups] = values.map(|(value, _)| value.to_owned());
        Ok(Self { user, email, name, groups })
    }

    /// The user id header.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The email header.
    pub fn email(&self) -> &str {
        &self.email
    }

    /// The display name header.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The groups header.
    pub fn groups(&self) -> &str {
        &self.groups
    }

    fn all(&self) -> [&str; 4] {
        [&self.user, &self.email, &self.name, &self.groups]
    }
}

fn is_lower_case_header_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.iter().all(|byte| matches!(byte, b'a'..=b'z' | b'0'..=b'9' | b'-'))
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

/// Whether the header `name` is a look-alike of `wanted` (lower-case, no `_`): not the same
/// header, but equal once lower-cased and with `_` read as `-`.
fn is_look_alike(name: &str, wanted: &str) -> bool {
    name.len() == wanted.len()
        && !name.eq_ignore_ascii_case(wanted)
        && name.bytes().zip(wanted.bytes()).all(|(byte, want)| {
            let byte = byte.to_ascii_lowercase();
            (if byte == b'_' { b'-' } else { byte }) == want
        })
}

/// The value of a header the proxy sets once: `None` when absent or blank.
fn single_value<'a>(request: &SignInRequest<'a>, name: &str) -> Result<Option<&'a str>, HookError> {
    let mut values = request.headers_all(name);
    let value = values.next();
    if values.next().is_some() {
        return Err(HookError::rejected(format!(
            "the request carries more than one {name} header; refusing an ambiguous identity"
        )));
    }
    Ok(value.map(str::trim).filter(|value| !value.is_empty()))
}

/// The identity in `request`'s headers `names`, under the rules of the crate documentation.
///
/// # Errors
/// Rejects the sign-in when a header it reads is repeated (groups excepted) or has a look-alike
/// in the request, and when there is neither a user nor an email.
pub fn identity_from_headers(
    names: &HeaderNames,
    request: &SignInRequest<'_>,
) -> Result<OpenId, HookError> {
    for header in request.headers() {
        if let Some(wanted) =
            names.all().into_iter().find(|wanted| is_look_alike(header.name(), wanted))
        {
            return Err(HookError::rejected(format!(
                "the request carries a `{}` header, a look-alike of the {wanted} header; refusing \
                 an identity a client may have set (the OAuth proxy must strip such headers)",
                header.name()
            )));
        }
    }

    let user_id = single_value(request, names.user())?;
    let email = single_value(request, names.email())?;
    let display_name = single_value(request, names.name())?;
    if user_id.is_none() && email.is_none() {
        return Err(HookError::rejected(format!(
            "the OAuth proxy sent no identity: expected the {} or {} header",
            names.user(),
            names.email()
        )));
    }

    let mut team_ids: Vec<String> = Vec::new();
    let groups = request.headers_all(names.groups()).flat_map(|line| line.split(','));
    for group in groups.map(str::trim) {
        if !group.is_empty() && !team_ids.iter().any(|known| known == group) {
            team_ids.push(group.to_owned());
        }
    }

    Ok(OpenId {
        id: user_id.or(email).map(str::to_owned),
        email: email.map(str::to_owned),
        first_name: None,
        last_name: None,
        display_name: display_name.map(str::to_owned),
        picture: None,
        provider: Some("oauth-proxy".to_owned()),
        team_ids,
        user_role: None,
        extra_fields: None,
    })
}

/// The header names, from the environment at the first call.
fn configured_names() -> Result<&'static HeaderNames, HookError> {
    static NAMES: OnceLock<Result<HeaderNames, String>> = OnceLock::new();
    NAMES
        .get_or_init(HeaderNames::from_env)
        .as_ref()
        .map_err(|error| HookError::failed(format!("custom_sso_handler is misconfigured: {error}")))
}

/// Reads the proxy's identity headers and returns the user's identity (see the crate
/// documentation for the headers and the rules).
///
/// # Errors
/// Rejects the sign-in when the proxy sent neither a user nor an email, when an identity header
/// is repeated, or when the request carries a look-alike of a header it reads; fails when a
/// `CUSTOM_SSO_HANDLER_*_HEADER` variable is invalid.
pub fn custom_ui_sso_sign_in_handler(request: &SignInRequest<'_>) -> Result<OpenId, HookError> {
    identity_from_headers(configured_names()?, request)
}

plugin_api::export_ui_sso_sign_in_handler!(custom_ui_sso_sign_in_handler, non_blocking);

#[cfg(test)]
mod tests {
    use plugin_api::{HeaderPair, HookErrorKind};

    use super::*;

    fn parse(names: &HeaderNames, headers: &[HeaderPair<'_>]) -> Result<OpenId, HookError> {
        let request = SignInRequest::new("GET", "/sso/key/generate", "", "127.0.0.1", 1, headers);
        identity_from_headers(names, &request)
    }

    fn sign_in(headers: &[HeaderPair<'_>]) -> Result<OpenId, HookError> {
        parse(&HeaderNames::default(), headers)
    }

    fn refused(headers: &[HeaderPair<'_>]) -> String {
        let error = sign_in(headers).unwrap_err();
        assert_eq!(error.kind(), HookErrorKind::Rejected, "{error}");
        error.message().to_owned()
    }

    const ALICE: [HeaderPair<'static>; 2] = [
        HeaderPair::new("x-forwarded-user", "alice"),
        HeaderPair::new("x-forwarded-email", "alice@example.test"),
    ];

    fn alice_and(extra: &[HeaderPair<'static>]) -> Vec<HeaderPair<'static>> {
        ALICE.iter().chain(extra).copied().collect()
    }

    #[test]
    fn oauth2_proxy_headers_one_group_per_line() {
        let openid = sign_in(&[
            HeaderPair::new("x-forwarded-user", "alice"),
            HeaderPair::new("x-forwarded-email", "Alice@Example.test"),
            HeaderPair::new("x-forwarded-preferred-username", "alice.l"),
            HeaderPair::new("x-forwarded-groups", "admins"),
            HeaderPair::new("x-forwarded-groups", "staff"),
            HeaderPair::new("x-forwarded-groups", "admins"),
        ])
        .unwrap();
        assert_eq!(openid.id.as_deref(), Some("alice"));
        assert_eq!(openid.email.as_deref(), Some("Alice@Example.test"));
        assert_eq!(openid.display_name.as_deref(), Some("alice.l"));
        assert_eq!(openid.team_ids, ["admins", "staff"]);
        assert_eq!(openid.provider.as_deref(), Some("oauth-proxy"));
    }

    #[test]
    fn apache_comma_joined_groups_on_several_lines() {
        let openid = sign_in(&alice_and(&[
            HeaderPair::new("x-forwarded-groups", "staff, ops,"),
            HeaderPair::new("x-forwarded-groups", " ,dev ,staff"),
        ]))
        .unwrap();
        assert_eq!(openid.team_ids, ["staff", "ops", "dev"]);
    }

    #[test]
    fn the_exported_hook_reads_the_default_headers() {
        // The test process does not set CUSTOM_SSO_HANDLER_*_HEADER.
        let request = SignInRequest::new("GET", "/sso/key/generate", "", "127.0.0.1", 1, &ALICE);
        let openid = custom_ui_sso_sign_in_handler(&request).unwrap();
        assert_eq!(openid.id.as_deref(), Some("alice"));
    }

    #[test]
    fn oidc_claim_headers_are_not_read() {
        // The old attack: a client-added oidc_claim_groups made its sender a proxy_admin.
        let openid = sign_in(&alice_and(&[
            HeaderPair::new("oidc_claim_groups", "admins"),
            HeaderPair::new("oidc_claim_sub", "root"),
            HeaderPair::new("oidc_claim_email", "root@example.test"),
            HeaderPair::new("oidc_claim_preferred_username", "root"),
            HeaderPair::new("x-groups", "admins"),
        ]))
        .unwrap();
        assert!(openid.team_ids.is_empty(), "{:?}", openid.team_ids);
        assert_eq!(openid.id.as_deref(), Some("alice"));
        assert_eq!(openid.email.as_deref(), Some("alice@example.test"));
        assert_eq!(openid.display_name, None);

        let message = refused(&[
            HeaderPair::new("oidc_claim_sub", "bob"),
            HeaderPair::new("oidc_claim_email", "bob@example.test"),
        ]);
        assert!(message.contains("the OAuth proxy sent no identity"), "{message}");
    }

    #[test]
    fn an_empty_header_is_no_value_and_falls_through_to_nothing() {
        // The old attack: an empty x-forwarded-email fell through to the client's x-email.
        let openid = sign_in(&[
            HeaderPair::new("x-forwarded-user", "alice"),
            HeaderPair::new("x-forwarded-email", ""),
            HeaderPair::new("x-email", "root@example.test"),
            HeaderPair::new("x-forwarded-preferred-username", "  "),
            HeaderPair::new("x-preferred-username", "root"),
            HeaderPair::new("x-forwarded-groups", ""),
        ])
        .unwrap();
        assert_eq!(openid.email, None);
        assert_eq!(openid.display_name, None);
        assert!(openid.team_ids.is_empty());

        // An empty user is no user: the id is the email, never a client's x-user.
        let openid = sign_in(&[
            HeaderPair::new("x-forwarded-user", " "),
            HeaderPair::new("x-user", "root"),
            HeaderPair::new("x-forwarded-email", "ann@example.test"),
        ])
        .unwrap();
        assert_eq!(openid.id.as_deref(), Some("ann@example.test"));

        let message = refused(&[
            HeaderPair::new("x-forwarded-user", ""),
            HeaderPair::new("x-forwarded-email", "\t"),
            HeaderPair::new("x-user", "root"),
            HeaderPair::new("x-email", "root@example.test"),
        ]);
        assert!(message.contains("the OAuth proxy sent no identity"), "{message}");
        assert!(message.contains("x-forwarded-user or x-forwarded-email"), "{message}");
    }

    #[test]
    fn values_are_trimmed() {
        let openid = sign_in(&[
            HeaderPair::new("x-forwarded-user", " alice "),
            HeaderPair::new("x-forwarded-preferred-username", " Alice L "),
        ])
        .unwrap();
        assert_eq!(openid.id.as_deref(), Some("alice"));
        assert_eq!(openid.email, None);
        assert_eq!(openid.display_name.as_deref(), Some("Alice L"));
    }

    #[test]
    fn look_alikes_of_every_header_read_are_refused() {
        for name in [
            "x_forwarded_user",
            "X_Forwarded_User",
            "x-forwarded_user",
            "x_forwarded-email",
            "x_forwarded_preferred_username",
            "x-forwarded-preferred_username",
            "x_forwarded_groups",
            "X_Forwarded_Groups",
        ] {
            // Even empty, and even beside the real headers.
            for value in ["admins", ""] {
                let message = refused(&alice_and(&[HeaderPair::new(name, value)]));
                assert!(message.contains(&format!("`{name}`")), "{name}: {message}");
                assert!(message.contains("look-alike"), "{name}: {message}");
            }
        }
        // A look-alike alone is refused too.
        let message = refused(&[HeaderPair::new("x_forwarded_email", "evil@example.test")]);
        assert!(message.contains("`x_forwarded_email`") && message.contains("x-forwarded-email"));
    }

    #[test]
    fn other_names_are_neither_look_alikes_nor_read() {
        let openid = sign_in(&alice_and(&[
            HeaderPair::new("x-forwarded-for", "10.0.0.1"),
            HeaderPair::new("x-forwarded-users", "root"),
            HeaderPair::new("x_forwarded_for", "10.0.0.1"),
            HeaderPair::new("x__forwarded_user", "root"),
            HeaderPair::new("x-forwarded-group", "admins"),
        ]))
        .unwrap();
        assert_eq!(openid.id.as_deref(), Some("alice"));
        assert!(openid.team_ids.is_empty());
        // Header names are case-insensitive: an upper-case real name is the header itself.
        let openid = sign_in(&[HeaderPair::new("X-Forwarded-User", "alice")]).unwrap();
        assert_eq!(openid.id.as_deref(), Some("alice"));
    }

    #[test]
    fn repeated_identity_headers_are_refused_even_when_one_is_empty() {
        for name in ["x-forwarded-user", "x-forwarded-email", "x-forwarded-preferred-username"] {
            for second in ["root", ""] {
                let message = refused(&alice_and(&[
                    HeaderPair::new(name, "alice"),
                    HeaderPair::new(name, second),
                ]));
                assert!(message.contains(&format!("more than one {name} header")), "{message}");
            }
        }
        let message = refused(&[
            HeaderPair::new("x-forwarded-email", ""),
            HeaderPair::new("x-forwarded-email", "root@example.test"),
        ]);
        assert!(message.contains("more than one x-forwarded-email header"), "{message}");
    }

    #[test]
    fn overridden_names_are_the_only_ones_read() {
        let names = HeaderNames::new("remote-user", "remote-email", "remote-name", "remote-groups")
            .unwrap();
        let openid = parse(
            &names,
            &[
                HeaderPair::new("remote-user", "carol"),
                HeaderPair::new("remote-email", "carol@example.test"),
                HeaderPair::new("remote-name", "Carol"),
                HeaderPair::new("remote-groups", "staff,ops"),
                HeaderPair::new("x-forwarded-user", "root"),
                HeaderPair::new("x-forwarded-groups", "admins"),
                HeaderPair::new("x_forwarded_groups", "admins"),
            ],
        )
        .unwrap();
        assert_eq!(openid.id.as_deref(), Some("carol"));
        assert_eq!(openid.email.as_deref(), Some("carol@example.test"));
        assert_eq!(openid.display_name.as_deref(), Some("Carol"));
        assert_eq!(openid.team_ids, ["staff", "ops"]);

        let error = parse(
            &names,
            &[HeaderPair::new("remote-user", "carol"), HeaderPair::new("remote_groups", "admins")],
        )
        .unwrap_err();
        assert!(error.message().contains("`remote_groups`"), "{error}");
        let error = parse(&names, &[HeaderPair::new("x-forwarded-user", "root")]).unwrap_err();
        assert!(error.message().contains("expected the remote-user or remote-email"), "{error}");
    }

    fn from_pairs(pairs: &[(&str, &str)]) -> Result<HeaderNames, String> {
        HeaderNames::from_lookup(|var| {
            pairs.iter().find(|(key, _)| *key == var).map(|(_, value)| OsString::from(value))
        })
    }

    #[test]
    fn names_from_the_environment() {
        assert_eq!(from_pairs(&[]).unwrap(), HeaderNames::default());
        let names = from_pairs(&[
            (USER_HEADER_VAR, "remote-user"),
            (EMAIL_HEADER_VAR, ""),
            (GROUPS_HEADER_VAR, "x-auth-request-groups"),
        ])
        .unwrap();
        assert_eq!(
            names.all(),
            [
                "remote-user",
                "x-forwarded-email",
                "x-forwarded-preferred-username",
                "x-auth-request-groups"
            ]
        );

        for bad in ["Remote-User", "remote_user", "remote user", "-remote", "remote-", "é"] {
            let error = from_pairs(&[(NAME_HEADER_VAR, bad)]).unwrap_err();
            assert!(error.contains(NAME_HEADER_VAR) && error.contains("lower-case"), "{error}");
        }
        let error = from_pairs(&[(GROUPS_HEADER_VAR, "x-forwarded-user")]).unwrap_err();
        assert!(error.contains(GROUPS_HEADER_VAR) && error.contains(USER_HEADER_VAR), "{error}");

        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStringExt;
            let error = HeaderNames::from_lookup(|var| {
                (var == USER_HEADER_VAR).then(|| OsString::from_vec(vec![0xff]))
            })
            .unwrap_err();
            assert!(error.contains(USER_HEADER_VAR), "{error}");
        }
        assert!(HeaderNames::new("a", "b", "c", "a").is_err());
    }
}
