//! Which `Host` headers the server answers: PROXY_BASE_URL's host, IP literals, `localhost`, and
//! the names in `general_settings.allowed_hosts` (`*` answers any). A DNS-rebinding page always
//! reaches the server under a DNS name of the attacker's, never under one of these, so refusing
//! every other Host keeps such a page from using the header sign-in or the cookie API.

use std::net::IpAddr;

/// The Host names answered, besides IP literals and `localhost`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedHosts {
    /// `allowed_hosts: ["*"]`: any Host (the check is off).
    Any,
    /// These names: lower-case, no port, no trailing dot.
    Names(Vec<String>),
}

impl AllowedHosts {
    /// From `general_settings.allowed_hosts` and `PROXY_BASE_URL`; `Err` names the bad entry.
    pub(super) fn new(
        configured: Option<Vec<String>>,
        proxy_base_url: Option<&str>,
    ) -> Result<Self, String> {
        let mut names = Vec::new();
        for (index, entry) in configured.unwrap_or_default().iter().enumerate() {
            let entry = entry.trim();
            if entry == "*" {
                return Ok(AllowedHosts::Any);
            }
            let name = normalise(entry);
            let is_name = !name.is_empty()
                && name.len() <= 253
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
            if !is_name && name.parse::<IpAddr>().is_err() {
                return Err(format!(
                    "general_settings.allowed_hosts[{index}]: {entry:?} is not a host name; write \
                     the name alone, without scheme, port or path (e.g. sso.example.com), or \"*\" \
                     to answer any Host"
                ));
            }
            names.push(name);
        }
        if let Some(host) = proxy_base_url.and_then(base_url_host) {
            names.push(host);
        }
        Ok(AllowedHosts::Names(names))
    }

    /// Whether a request whose `Host` header (or request-target authority) is `authority`
    /// (`name[:port]`) is answered.
    pub fn allows(&self, authority: &str) -> bool {
        let names = match self {
            AllowedHosts::Any => return true,
            AllowedHosts::Names(names) => names,
        };
        let Some(host) = authority_host(authority) else { return false };
        let host = normalise(host);
        host.parse::<IpAddr>().is_ok() || host == "localhost" || names.contains(&host)
    }
}

/// Lower-case, without the trailing dot of a fully qualified name.
fn normalise(name: &str) -> String {
    name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase()
}

/// The host of `name[:port]` or `[v6][:port]`, without brackets; `None` when it is malformed.
fn authority_host(authority: &str) -> Option<&str> {
    let authority = authority.trim();
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port_ok = after.is_empty()
            || after.strip_prefix(':').is_some_and(|port| port.bytes().all(|b| b.is_ascii_digit()));
        return port_ok.then_some(host);
    }
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        Some(_) => return None,
        None => authority,
    };
    (!host.is_empty() && !host.contains([':', '@', '/'])).then_some(host)
}

/// PROXY_BASE_URL's host, normalised.
fn base_url_host(base: &str) -> Option<String> {
    let rest = base.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    authority_host(authority).map(normalise)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_localhost_the_public_host_and_listed_names_are_answered() {
        let hosts = AllowedHosts::new(
            Some(vec!["SSO.Internal".into(), "hookgate.ns.svc.cluster.local.".into()]),
            Some("https://Sso.Example.com:8443/litellm"),
        )
        .unwrap();
        for ok in [
            "127.0.0.1",
            "127.0.0.1:4000",
            "[::1]:4000",
            "[2001:db8::1]",
            "10.1.2.3:80",
            "localhost",
            "LOCALHOST:4000",
            "localhost.:4000",
            "sso.example.com",
            "sso.example.com:443",
            "sso.internal:4000",
            "hookgate.ns.svc.cluster.local",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for refused in [
            "rebind.evil.test:4301",
            "evil.example",
            "example.com",
            "sso.example.com.evil.test",
            "localhost.evil.test",
            "127.0.0.1.nip.io",
            "sso.example.com:x",
            "user@sso.example.com",
            "[::1",
            "",
        ] {
            assert!(!hosts.allows(refused), "{refused}");
        }
    }

    #[test]
    fn a_star_answers_any_host_and_bad_entries_are_named() {
        let any = AllowedHosts::new(Some(vec!["a.example".into(), "*".into()]), None).unwrap();
        assert!(any.allows("rebind.evil.test"));
        for bad in ["https://sso.example.com", "sso.example.com:443", "sso.example.com/x", ""] {
            let error =
                AllowedHosts::new(Some(vec!["ok.example".into(), bad.into()]), None).unwrap_err();
            assert!(error.starts_with("general_settings.allowed_hosts[1]: "), "{error}");
            assert!(error.contains("without scheme, port or path"), "{error}");
        }
        let defaults = AllowedHosts::new(None, None).unwrap();
        assert!(defaults.allows("127.0.0.1:4000") && defaults.allows("localhost"));
        assert!(!defaults.allows("sso.example.com"));
    }
}
