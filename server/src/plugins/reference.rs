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

    /// The library's file names on this platform, in the order they are tried: see
    /// [`LibraryNaming::file_names`].
    pub fn file_names(&self) -> Vec<String> {
        LibraryNaming::HOST.file_names(&self.library)
    }

    /// The library's paths relative to a plugin directory, in the order they are tried.
    pub fn relative_paths(&self) -> Vec<PathBuf> {
        self.relative_paths_for(LibraryNaming::HOST)
    }

    /// The library's paths relative to a plugin directory under `naming`.
    fn relative_paths_for(&self, naming: LibraryNaming) -> Vec<PathBuf> {
        let folder: PathBuf = self.folders.iter().collect();
        naming.file_names(&self.library).into_iter().map(|name| folder.join(name)).collect()
    }
}

/// How an operating system names a dynamic library; a parameter rather than `cfg!` so that every
/// platform's naming is unit-tested on any host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LibraryNaming {
    /// Linux and other Unix: `libcustom_sso.so`.
    Unix,
    /// macOS and the other Apple systems: `libcustom_sso.dylib`.
    Apple,
    /// Windows: `custom_sso.dll` (what rustc builds for both the MSVC and the GNU target), then
    /// `libcustom_sso.dll` (the MinGW convention for C libraries).
    Windows,
}

impl LibraryNaming {
    /// The naming of the platform this server was built for.
    pub const HOST: Self = if cfg!(windows) {
        Self::Windows
    } else if cfg!(target_vendor = "apple") {
        Self::Apple
    } else {
        Self::Unix
    };

    /// The file names library `library` may have, in the order they are tried.
    pub fn file_names(self, library: &str) -> Vec<String> {
        match self {
            Self::Unix => vec![format!("lib{library}.so")],
            Self::Apple => vec![format!("lib{library}.dylib")],
            Self::Windows => vec![format!("{library}.dll"), format!("lib{library}.dll")],
        }
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
        let names = hook.file_names();
        assert_eq!(hook.relative_paths(), names.iter().map(PathBuf::from).collect::<Vec<_>>());
        assert!(names.iter().all(|name| name.contains("custom_sso")), "{names:?}");

        let nested: HookRef = "sso.hooks.handler".parse().unwrap();
        assert_eq!(nested.attribute(), "handler");
        assert!(nested.relative_paths().iter().all(|path| path.starts_with("sso")));
    }

    #[test]
    fn library_file_names_per_platform() {
        let hook: HookRef = "custom_sso.custom_sso_handler".parse().unwrap();
        let names = |naming| hook.relative_paths_for(naming);
        assert_eq!(names(LibraryNaming::Unix), [PathBuf::from("libcustom_sso.so")]);
        assert_eq!(names(LibraryNaming::Apple), [PathBuf::from("libcustom_sso.dylib")]);
        assert_eq!(
            names(LibraryNaming::Windows),
            [PathBuf::from("custom_sso.dll"), PathBuf::from("libcustom_sso.dll")]
        );

        let nested: HookRef = "sso.hooks.handler".parse().unwrap();
        let folder = PathBuf::from("sso");
        assert_eq!(nested.relative_paths_for(LibraryNaming::Unix), [folder.join("libhooks.so")]);
        assert_eq!(
            nested.relative_paths_for(LibraryNaming::Apple),
            [folder.join("libhooks.dylib")]
        );
        assert_eq!(
            nested.relative_paths_for(LibraryNaming::Windows),
            [folder.join("hooks.dll"), folder.join("libhooks.dll")]
        );
    }

    #[test]
    fn the_host_naming_is_what_rustc_builds() {
        // A cdylib built for this host is found under the first name tried.
        let built =
            format!("{}custom_sso{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
        assert_eq!(LibraryNaming::HOST.file_names("custom_sso")[0], built);
        #[cfg(target_os = "linux")]
        assert_eq!(LibraryNaming::HOST, LibraryNaming::Unix);
        #[cfg(target_os = "macos")]
        assert_eq!(LibraryNaming::HOST, LibraryNaming::Apple);
        #[cfg(windows)]
        assert_eq!(LibraryNaming::HOST, LibraryNaming::Windows);
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
