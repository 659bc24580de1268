//! The config file as written: LiteLLM's keys that hookgate implements, each with its type.
//! Field types parse and check their own values, so an error carries the key path and line.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Deserializer, de::Error as _};

use super::yaml::env_or_opt;
use crate::plugins::HookRef;
use hookgate_core::budget::BudgetDuration;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub(crate) general_settings: Option<RawGeneralSettings>,
    #[serde(default)]
    pub(crate) litellm_settings: Option<RawLitellmSettings>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawGeneralSettings {
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) custom_sso: Option<HookRef>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) custom_ui_sso_sign_in_handler: Option<HookRef>,
    #[serde(default)]
    pub(crate) plugin_dirs: Option<Vec<String>>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) master_key: Option<String>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) database_url: Option<String>,
    #[serde(default)]
    pub(crate) trusted_proxy_ranges: Option<Vec<Cidr>>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) hook_timeout: Option<Seconds>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) hook_concurrency: Option<usize>,
    #[serde(default)]
    pub(crate) ui_access_mode: Option<RawUiAccessMode>,
    #[serde(default)]
    pub(crate) litellm_jwtauth: Option<RawJwtAuth>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) session_cookie_http_only: Option<bool>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) oidc_issuer: Option<String>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) oidc_flow_timeout: Option<Seconds>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) disable_password_login_when_sso_enabled: Option<bool>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) allow_insecure_plugin_permissions: Option<bool>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) link_sso_accounts_by_email: Option<bool>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) sign_in_event_retention: Option<Span>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) http_header_read_timeout: Option<Seconds>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) http_idle_timeout: Option<Seconds>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) http_body_timeout: Option<Seconds>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) max_connections: Option<usize>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) max_connections_per_client: Option<usize>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) http_first_request_timeout: Option<Seconds>,
    #[serde(default)]
    pub(crate) allowed_hosts: Option<Vec<String>>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) litellm_proxy_url: Option<String>,
    /// The SCIM clients' bearer token (hookgate's own setting; LiteLLM's SCIM uses its keys).
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) scim_token: Option<String>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) require_auth_for_metrics_endpoint: Option<bool>,
    /// LiteLLM's `role_mappings` (which LiteLLM keeps in its database, `/update/sso_settings`).
    #[serde(default)]
    pub(crate) role_mappings: Option<RawRoleMappings>,
    /// hookgate's own: which identity-provider groups that are no team yet become one.
    #[serde(default)]
    pub(crate) create_teams_from_groups: Option<RawTeamCreation>,
}

/// `general_settings.create_teams_from_groups`: `{allowed_groups: [...],
/// allowed_group_prefixes: [...]}` (at least one entry between them).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawTeamCreation {
    #[serde(default)]
    pub(crate) allowed_groups: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) allowed_group_prefixes: Option<Vec<String>>,
}

/// `litellm_settings.default_team_params`: LiteLLM's `DefaultTeamSSOParams`, what a team
/// created from a group gets.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawTeamParams {
    #[serde(default)]
    pub(crate) models: Option<Vec<String>>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) max_budget: Option<Budget>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) budget_duration: Option<BudgetDuration>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) tpm_limit: Option<Limit>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) rpm_limit: Option<Limit>,
}

/// One entry of `jwt_litellm_role_map`: a group (LiteLLM's `jwt_role`) and the role it gives.
#[derive(Debug, Deserialize)]
pub(crate) struct RawJwtRole {
    pub(crate) jwt_role: String,
    pub(crate) litellm_role: Role,
}

/// `role_mappings`: `{group_claim, default_role, roles: {<role>: [groups]}}`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawRoleMappings {
    /// The claim (a dot path) the groups are read from, for OpenID Connect sign-ins.
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) group_claim: Option<String>,
    #[serde(default)]
    pub(crate) default_role: Option<Role>,
    #[serde(default)]
    pub(crate) roles: std::collections::BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawLitellmSettings {
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) max_internal_user_budget: Option<Budget>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) internal_user_budget_duration: Option<BudgetDuration>,
    #[serde(default)]
    pub(crate) default_internal_user_params: Option<RawDefaultUserParams>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) max_ui_session_budget: Option<Budget>,
    #[serde(default)]
    pub(crate) default_team_params: Option<RawTeamParams>,
    #[serde(default)]
    pub(crate) callbacks: Option<Callbacks>,
    #[serde(default)]
    pub(crate) success_callback: Option<Callbacks>,
    #[serde(default)]
    pub(crate) failure_callback: Option<Callbacks>,
}

/// LiteLLM's `callbacks`, `success_callback`, `failure_callback`: a name or a list of names.
/// hookgate implements `prometheus`; the caller reports the others as ignored.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Callbacks(pub(crate) Vec<String>);

impl<'de> Deserialize<'de> for Callbacks {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CallbacksVisitor;

        impl<'de> serde::de::Visitor<'de> for CallbacksVisitor {
            type Value = Callbacks;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a callback name such as prometheus, or a list of them")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Callbacks, E> {
                Ok(Callbacks(vec![name.to_owned()]))
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<Callbacks, E> {
                Ok(Callbacks::default())
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Callbacks, A::Error> {
                let mut names = Vec::new();
                while let Some(name) = seq.next_element::<String>()? {
                    names.push(name);
                }
                Ok(Callbacks(names))
            }
        }

        deserializer.deserialize_any(CallbacksVisitor)
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawDefaultUserParams {
    #[serde(default)]
    pub(crate) user_role: Option<Role>,
    #[serde(default)]
    pub(crate) models: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) max_budget: Option<Budget>,
    #[serde(default)]
    pub(crate) budget_duration: Option<BudgetDuration>,
    #[serde(default)]
    pub(crate) teams: Option<Vec<TeamEntry>>,
}

/// `default_internal_user_params.teams` entries: a team id, or `{team_id, user_role}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub(crate) enum TeamEntry {
    Id(String),
    Detailed {
        team_id: String,
        #[serde(default)]
        user_role: Option<String>,
    },
}

/// `ui_access_mode`: `admin_only`, or LiteLLM's restricted-group mapping.
#[derive(Debug, Clone, PartialEq)]
pub enum UiAccessModeSetting {
    /// Anyone who signs in may use the UI (LiteLLM's default, also written `all`).
    All,
    /// Only `proxy_admin` and `proxy_admin_viewer`.
    AdminOnly,
    /// Only members of this identity-provider group.
    RestrictedSsoGroup { group: String },
}

/// `general_settings.litellm_jwtauth`: the keys hookgate implements, with LiteLLM's meaning:
/// `sync_user_role_and_teams` (the identity provider authoritative for teams) with
/// `jwt_litellm_role_map` (groups to roles), and, for OpenID Connect sign-ins, the claims (dot
/// paths) that give the groups, id or email.
///
/// This struct is the one list of what hookgate implements there: every other key
/// (`role_mappings` under `litellm_jwtauth`, `team_id_upsert`, `team_id_jwt_field`, …)
/// is reported by the parser and named at startup and by `hookgate check` as "read but not
/// implemented", never dropped silently. Implementing one is giving it a field here.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RawJwtAuth {
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) sync_user_role_and_teams: Option<bool>,
    #[serde(default)]
    pub(crate) jwt_litellm_role_map: Option<Vec<RawJwtRole>>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) team_ids_jwt_field: Option<String>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) user_id_jwt_field: Option<String>,
    #[serde(default, deserialize_with = "env_or_opt")]
    pub(crate) user_email_jwt_field: Option<String>,
}

/// `general_settings.ui_access_mode` as written: the mode, LiteLLM's `sso_group_jwt_field`
/// (the claim the restricted group, and the groups, are read from) and the map's keys that
/// hookgate does not implement (the map is read by hand, so the parser cannot see them).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawUiAccessMode {
    pub(crate) mode: UiAccessModeSetting,
    pub(crate) sso_group_jwt_field: Option<String>,
    pub(crate) not_implemented: Vec<String>,
}

impl<'de> Deserialize<'de> for RawUiAccessMode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ModeVisitor;

        impl<'de> serde::de::Visitor<'de> for ModeVisitor {
            type Value = RawUiAccessMode;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    "`admin_only`, `all`, or {type: restricted_sso_group, restricted_sso_group: <group>}",
                )
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<Self::Value, E> {
                let mode = match name {
                    "admin_only" => UiAccessModeSetting::AdminOnly,
                    "all" => UiAccessModeSetting::All,
                    other => {
                        return Err(E::custom(format!(
                            "unknown ui_access_mode {other:?}; expected `admin_only` or `all`"
                        )));
                    }
                };
                Ok(RawUiAccessMode { mode, sso_group_jwt_field: None, not_implemented: Vec::new() })
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Self::Value, A::Error> {
                let (mut kind, mut group, mut field) = (None::<String>, None::<String>, None);
                let mut not_implemented = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "type" => kind = Some(map.next_value()?),
                        "restricted_sso_group" => group = Some(map.next_value()?),
                        "sso_group_jwt_field" => {
                            field = map
                                .next_value::<Option<String>>()?
                                .map(|path| path.trim().to_owned())
                                .filter(|path| !path.is_empty());
                        }
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                            not_implemented.push(format!("general_settings.ui_access_mode.{key}"));
                        }
                    }
                }
                let mode = match (kind.as_deref(), group) {
                    (Some("restricted_sso_group"), Some(group)) if !group.is_empty() => {
                        UiAccessModeSetting::RestrictedSsoGroup { group }
                    }
                    (Some("restricted_sso_group"), _) => {
                        return Err(A::Error::custom(
                            "restricted_sso_group mode needs a non-empty restricted_sso_group",
                        ));
                    }
                    (kind, _) => {
                        return Err(A::Error::custom(format!(
                            "unknown ui_access_mode type {kind:?}; expected restricted_sso_group"
                        )));
                    }
                };
                Ok(RawUiAccessMode { mode, sso_group_jwt_field: field, not_implemented })
            }
        }

        deserializer.deserialize_any(ModeVisitor)
    }
}

/// A CIDR range; a bare address means just that address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(pub ipnet::IpNet);

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        text.parse::<ipnet::IpNet>()
            .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            .map(|net| Cidr(net.trunc()))
            .map_err(|_| {
                format!("invalid CIDR range {text:?}: expected e.g. 127.0.0.1/32 or ::1/128")
            })
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse_str(deserializer, "a CIDR range such as 127.0.0.1/32")
    }
}

/// A duration in seconds, written as a number (`5`, `0.5`) or with a unit (`500ms`, `5s`, `1m`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Seconds(pub(crate) std::time::Duration);

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecondsVisitor;

        impl serde::de::Visitor<'_> for SecondsVisitor {
            type Value = Seconds;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as 5, 0.5, 500ms, 5s or 1m")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Seconds, E> {
                text.parse().map_err(E::custom)
            }

            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<Seconds, E> {
                self.visit_str(&value.to_string())
            }

            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<Seconds, E> {
                self.visit_str(&value.to_string())
            }

            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<Seconds, E> {
                self.visit_str(&value.to_string())
            }
        }

        deserializer.deserialize_any(SecondsVisitor)
    }
}

impl FromStr for Seconds {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let (number, scale) = if let Some(ms) = trimmed.strip_suffix("ms") {
            (ms, 0.001)
        } else if let Some(s) = trimmed.strip_suffix('s') {
            (s, 1.0)
        } else if let Some(m) = trimmed.strip_suffix('m') {
            (m, 60.0)
        } else {
            (trimmed, 1.0)
        };
        let seconds = number.trim().parse::<f64>().map_err(|_| {
            format!("invalid duration {text:?}: expected seconds (e.g. 5 or 0.5) or 500ms, 5s, 1m")
        })? * scale;
        if !(seconds.is_finite() && seconds > 0.0 && seconds <= 3600.0) {
            return Err(format!("invalid duration {text:?}: must be above 0 and at most 1 hour"));
        }
        Ok(Seconds(std::time::Duration::from_secs_f64(seconds)))
    }
}

/// A longer span of time: a whole number and a unit (`90d`, `12h`, `30m`, `45s`, `2w`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Span(pub(crate) std::time::Duration);

impl FromStr for Span {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        super::parse_span(text).map(Span).ok_or_else(|| {
            format!(
                "invalid duration {text:?}: expected a whole number and a unit, e.g. 90d, 12h, 30m"
            )
        })
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse_str(deserializer, "a duration such as 90d or 12h")
    }
}

/// A budget in USD: a finite number, not negative.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Budget(pub(crate) f64);

impl<'de> Deserialize<'de> for Budget {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse_number(deserializer, "a budget in USD", |value| {
            if hookgate_core::budget::is_valid_budget(value) {
                Ok(Budget(value))
            } else {
                Err(format!("invalid budget {value}: must be a number of USD, 0 or more"))
            }
        })
    }
}

/// A tokens- or requests-per-minute limit: a whole number, 0 or more.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Limit(pub(crate) u64);

impl<'de> Deserialize<'de> for Limit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse_number(deserializer, "a whole number per minute", |value| {
            if value >= 0.0 && value.fract() == 0.0 && value <= u64::MAX as f64 {
                Ok(Limit(value as u64))
            } else {
                Err(format!("invalid limit {value}: must be a whole number, 0 or more"))
            }
        })
    }
}

/// A LiteLLM role string.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Role(pub(crate) plugin_api::UserRole);

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse_str(deserializer, "a LiteLLM role such as internal_user").map(Role)
    }
}

impl<'de> Deserialize<'de> for HookRef {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        parse_str(deserializer, "a hook reference such as custom_sso.custom_sso_handler")
    }
}

/// Deserializes a string through `FromStr`, inside the parser's visit of the value so that
/// errors carry the exact key path and line.
fn parse_str<'de, D, T>(deserializer: D, expecting: &'static str) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    struct ParseVisitor<T>(&'static str, std::marker::PhantomData<T>);

    impl<T: FromStr> serde::de::Visitor<'_> for ParseVisitor<T>
    where
        T::Err: fmt::Display,
    {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<T, E> {
            text.parse().map_err(E::custom)
        }
    }

    deserializer.deserialize_str(ParseVisitor(expecting, std::marker::PhantomData))
}

/// Deserializes a number, checked by `check`, inside the parser's visit of the value.
fn parse_number<'de, D, T>(
    deserializer: D,
    expecting: &'static str,
    check: fn(f64) -> Result<T, String>,
) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
{
    struct NumberVisitor<T>(&'static str, fn(f64) -> Result<T, String>);

    impl<T> serde::de::Visitor<'_> for NumberVisitor<T> {
        type Value = T;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }

        fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<T, E> {
            (self.1)(value).map_err(E::custom)
        }

        fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<T, E> {
            (self.1)(value as f64).map_err(E::custom)
        }

        fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<T, E> {
            (self.1)(value as f64).map_err(E::custom)
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<T, E> {
            let value = text
                .trim()
                .parse::<f64>()
                .map_err(|_| E::custom(format!("invalid value {text:?}: expected {}", self.0)))?;
            (self.1)(value).map_err(E::custom)
        }
    }

    deserializer.deserialize_any(NumberVisitor(expecting, check))
}
