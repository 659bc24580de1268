//! The only module that touches YAML (serde_yaml is deprecated upstream; swapping it for a fork
//! such as serde_yaml_ng is a change to this file alone).
//!
//! LiteLLM's `os.environ/NAME` values are resolved here too, while the parser still knows where
//! each value stands, so that every error names the key path and the line.

use std::{fmt, marker::PhantomData};

use serde::{
    Deserializer,
    de::{self, DeserializeOwned, IntoDeserializer, Visitor},
};

use super::{ConfigError, raw::RawConfig};

/// The prefix by which LiteLLM configs take a value from the environment.
const ENV_PREFIX: &str = "os.environ/";

/// Parses a config file's text. Returns the raw settings and the key paths of every key that
/// hookgate does not implement (LiteLLM has many), which the caller warns about once.
pub(super) fn parse(
    path: &std::path::Path,
    text: &str,
) -> Result<(RawConfig, Vec<String>), ConfigError> {
    let mut ignored = Vec::new();
    let deserializer = serde_yaml::Deserializer::from_str(text);
    let raw: Option<RawConfig> =
        serde_ignored::deserialize(deserializer, |key| ignored.push(key_path(&key))).map_err(
            |error| ConfigError::Invalid { file: path.to_owned(), message: error.to_string() },
        )?;
    // An empty file is an empty config.
    Ok((raw.unwrap_or_default(), ignored))
}

/// Whether `text` writes `general_settings.master_key` as a literal secret, not as
/// `os.environ/NAME` (a file holding the key itself must be kept from other readers).
pub(super) fn has_literal_master_key(text: &str) -> bool {
    let Ok(value) = serde_yaml::from_str::<serde_yaml::Value>(text) else { return false };
    value
        .get("general_settings")
        .and_then(|general| general.get("master_key"))
        .and_then(serde_yaml::Value::as_str)
        .is_some_and(|key| !key.trim().is_empty() && !key.trim().starts_with(ENV_PREFIX))
}

/// `deserialize_with` for optional settings that may be written as `os.environ/NAME`: the
/// environment variable's value is parsed as the YAML scalar it would have been in the file.
///
/// It works as a visitor, inside the parser's visit of the value, so that errors carry the
/// setting's key path and line.
pub(super) fn env_or_opt<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: DeserializeOwned,
{
    deserializer.deserialize_any(EnvOr(PhantomData))
}

struct EnvOr<T>(PhantomData<T>);

impl<'de, T: DeserializeOwned> Visitor<'de> for EnvOr<T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a value, or os.environ/NAME")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        match text.strip_prefix(ENV_PREFIX) {
            Some(name) => from_env(name).map(Some).map_err(E::custom),
            None => T::deserialize(text.into_deserializer()).map(Some),
        }
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        T::deserialize(value.into_deserializer()).map(Some)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        T::deserialize(value.into_deserializer()).map(Some)
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        T::deserialize(value.into_deserializer()).map(Some)
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        T::deserialize(value.into_deserializer()).map(Some)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        T::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Some)
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
    }
}

/// A group → role table written as LiteLLM's `GENERIC_ROLE_MAPPINGS_ROLES` is: a Python-literal
/// or JSON dict of lists (`{"proxy_admin": ["admins"]}`, `{'internal_user': ['eng']}`), which
/// is a YAML flow mapping.
pub(super) fn role_groups(
    text: &str,
) -> Result<std::collections::BTreeMap<String, Vec<String>>, String> {
    serde_yaml::from_str(text).map_err(|error| {
        format!("expected a mapping of roles to lists of groups, like {{\"proxy_admin\": [\"admins\"]}}: {error}")
    })
}

/// The environment variable `name`, parsed as the YAML scalar it would have been in the file.
fn from_env<T: DeserializeOwned>(name: &str) -> Result<T, String> {
    let value = std::env::var(name).map_err(|_| {
        format!("environment variable {name} (named by `{ENV_PREFIX}{name}`) is not set")
    })?;
    serde_yaml::from_value(serde_yaml::Value::String(value.clone()))
        .or_else(|_| serde_yaml::from_str(&value))
        .map_err(|error| format!("environment variable {name}: {error}"))
}

/// `general_settings.foo`, `model_list[0]`: a key path as a person writes it.
fn key_path(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => format!("{}[{index}]", key_path(parent)),
        Path::Map { parent, key } => {
            let parent = key_path(parent);
            if parent.is_empty() { key.clone() } else { format!("{parent}.{key}") }
        }
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => key_path(parent),
    }
}
