//! `module.attribute` hook references, as LiteLLM's config writes them.

use std::{fmt, path::PathBuf, str::FromStr};

/// A hook reference: `custom_sso.custom_sso_handler` is the hook `custom_sso_handler` in the
/// library `custom_sso`; `sso.hooks.handler` is `handler` in library `hooks` in folder `sso/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookRef {
    text: String,
    folders: Vec<String>,
    library: String,
    attribute: String,
}

/// Why a reference is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid hook reference {text:?}: {reason}")]
pub struct InvalidHookRef {
    text: String,
    reason: &'static str,
}

impl FromStr for HookRef {
    type Err = InvalidHookRef;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |reason| InvalidHookRef { text: text.to_owned(), reason };
        if text.contains("://") {
            return Err(fail(
                "remote modules (s3://, gcs://) are not supported; build the hook as a plugin library and name it as module.attribute",
            ));
        }
        let parts: Vec<&str> = text.split('.').collect();
        if parts.len() < 2 {
            return Err(fail("expected module.attribute, e.g. custom_sso.custom_sso_handler"));
        }
        if !parts.iter().all(|part| is_identifier(part)) {
            return Err(fail(
                "each part must be an identifier (letters, digits and _, not starting with a \
                 digit): no paths, no `..`, no `/`",
            ));
        }
        let (attribute, module) = parts.split_last().expect("at least two parts");
        let (library, folders) = module.split_last().expect("at least one module part");
        Ok(HookRef {
            text: text.to_owned(),
            folders: folders.iter().map(|part| (*part).to_owned()).collect(),
            library: (*library).to_owned(),
            attribute: (*attribute).to_owned(),
        })
    }
}

fn is_identifier(part: &str) -> bool {
    let mut chars = part.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl HookRef {
    /// The reference as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The exported symbol: the last part.
    pub fn attribute(&self) -> &str {
        &self.attribute
    }

    /// The library's file name on this platform: `libcustom_sso.so`, `libcustom_sso.dylib`,
    /// `custom_sso.dll`.
    pub fn file_name(&self) -> String {
        format!("{}{}{}", std::env::consts::DLL_PREFIX, self.library, std::env::consts::DLL_SUFFIX)
    }

    /// The library's path relative to a plugin directory.
    pub fn relative_path(&self) -> PathBuf {
        let mut path: PathBuf = self.folders.iter().collect();
        path.push(self.file_name());
        path
    }
}

impl fmt::Display for HookRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_attribute_maps_to_folder_library_symbol() {
        let hook: HookRef = "custom_sso.custom_sso_handler".parse().unwrap();
        assert_eq!(hook.attribute(), "custom_sso_handler");
        assert_eq!(hook.relative_path(), PathBuf::from(hook.file_name()));
        assert!(hook.file_name().contains("custom_sso"));

        let nested: HookRef = "sso.hooks.handler".parse().unwrap();
        assert_eq!(nested.attribute(), "handler");
        assert!(nested.relative_path().starts_with("sso"));
    }

    #[test]
    fn paths_and_malformed_references_are_refused() {
        for (text, expected) in [
            ("custom_sso", "expected module.attribute"),
            ("../evil.hook", "no `..`"),
            ("/abs/path.hook", "no paths"),
            ("a..b", "identifier"),
            ("a.b.", "identifier"),
            ("1abc.hook", "identifier"),
            ("my-lib.hook", "identifier"),
            ("s3://bucket/custom_sso.handler", "remote modules"),
            ("", "expected module.attribute"),
        ] {
            let err = text.parse::<HookRef>().unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
