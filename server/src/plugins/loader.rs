//! Finds, loads and checks hook libraries. Libraries are opened by absolute path, cached by
//! canonical path and never unloaded (a Rust library cannot be unloaded soundly).

use std::{
    collections::HashMap,
    ffi::c_void,
    fmt,
    path::{Path, PathBuf},
    sync::Mutex,
};

use libloading::Library;
use plugin_api::abi::{ExportError, Hook, HookExport, check_export};

use super::HookRef;

/// Why a hook could not be loaded. Each names the config key, the reference and what was tried.
#[derive(Debug)]
pub struct LoadError {
    /// The config key, e.g. `general_settings.custom_sso`.
    pub setting: String,
    /// The reference as written.
    pub reference: String,
    /// What went wrong (boxed: errors are rare, results are common).
    pub kind: Box<LoadErrorKind>,
}

/// What went wrong loading a hook.
#[derive(Debug)]
pub enum LoadErrorKind {
    /// No candidate file exists.
    NotFound {
        /// Every path tried, in order.
        tried: Vec<PathBuf>,
    },
    /// The file exists but the dynamic loader refused it.
    NotALibrary {
        /// The file.
        path: PathBuf,
        /// The loader's message.
        reason: String,
    },
    /// The library has no symbol of that name.
    SymbolAbsent {
        /// The library.
        path: PathBuf,
        /// The symbol.
        attribute: String,
    },
    /// The symbol is not a usable hook of the right kind.
    Export {
        /// The library.
        path: PathBuf,
        /// Why.
        error: ExportError,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: cannot load hook `{}`: ", self.setting, self.reference)?;
        match &*self.kind {
            LoadErrorKind::NotFound { tried } => {
                f.write_str("library not found; tried:")?;
                for path in tried {
                    write!(f, "\n    {} (not found)", path.display())?;
                }
                f.write_str(
                    "\n  build the plugin (cargo build --release) and list its folder in \
                     general_settings.plugin_dirs, or set HOOKGATE_PLUGIN_PATH",
                )
            }
            LoadErrorKind::NotALibrary { path, reason } => {
                write!(f, "{} is not a loadable library: {reason}", path.display())
            }
            LoadErrorKind::SymbolAbsent { path, attribute } => write!(
                f,
                "{} has no symbol `{attribute}`; is the hook exported with \
                 plugin_api::export_…!({attribute})?",
                path.display()
            ),
            LoadErrorKind::Export { path, error } => write!(f, "{}: {error}", path.display()),
        }
    }
}

impl std::error::Error for LoadError {}

/// A hook found and checked.
#[derive(Debug, Clone)]
pub struct Resolved<H: 'static> {
    /// The hook.
    pub hook: &'static H,
    /// The library file, canonical.
    pub file: PathBuf,
    /// The plugin-api version the plugin was built with.
    pub api_version: String,
}

/// Opens libraries and resolves hooks in them.
#[derive(Default)]
pub struct PluginLoader {
    libraries: Mutex<HashMap<PathBuf, &'static Library>>,
}

impl fmt::Debug for PluginLoader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginLoader").finish_non_exhaustive()
    }
}

impl PluginLoader {
    /// A loader with nothing loaded yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Finds `reference`'s library under the first of `dirs` that has it, loads it and checks
    /// that the symbol is a hook of kind `H`.
    pub fn resolve<H: Hook>(
        &self,
        setting: &str,
        reference: &HookRef,
        dirs: &[PathBuf],
    ) -> Result<Resolved<H>, LoadError> {
        let fail = |kind| LoadError {
            setting: setting.to_owned(),
            reference: reference.as_str().to_owned(),
            kind: Box::new(kind),
        };
        let relative = reference.relative_path();
        let tried: Vec<PathBuf> = dirs.iter().map(|dir| absolute(&dir.join(&relative))).collect();
        let Some(path) = tried.iter().find(|path| path.is_file()) else {
            return Err(fail(LoadErrorKind::NotFound { tried }));
        };
        let path = path.canonicalize().unwrap_or_else(|_| path.clone());
        let library = self
            .open(&path)
            .map_err(|reason| fail(LoadErrorKind::NotALibrary { path: path.clone(), reason }))?;

        // SAFETY: we only read the symbol's address; `check_export` decides what it points to.
        let symbol = unsafe { library.get::<*const c_void>(reference.attribute().as_bytes()) };
        let address: *const c_void = match symbol {
            Ok(symbol) => *symbol,
            Err(_) => {
                return Err(fail(LoadErrorKind::SymbolAbsent {
                    path,
                    attribute: reference.attribute().to_owned(),
                }));
            }
        };
        // SAFETY: `address` is a symbol of a library that stays loaded for the life of the
        // process (it is leaked in `open`), so it points to readable memory, and a descriptor
        // there is a `static`.
        match unsafe { check_export::<H>(address) } {
            Ok(hook) => {
                // SAFETY: `check_export` succeeded, so a `HookExport` is at `address`.
                let export = unsafe { &*address.cast::<HookExport>() };
                Ok(Resolved { hook, file: path, api_version: export.api_version_string() })
            }
            Err(error) => Err(fail(LoadErrorKind::Export { path, error })),
        }
    }

    fn open(&self, path: &Path) -> Result<&'static Library, String> {
        let mut libraries = self.libraries.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(library) = libraries.get(path) {
            return Ok(library);
        }
        // SAFETY: loading a library runs its initialisers. Plugins are trusted code (see
        // SECURITY.md); they are loaded only by absolute path from the configured folders.
        let library = unsafe { Library::new(path) }.map_err(|error| dlopen_reason(&error, path))?;
        // Never unloaded: hooks and descriptors are `&'static` into it.
        let library: &'static Library = Box::leak(Box::new(library));
        libraries.insert(path.to_owned(), library);
        Ok(library)
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// The loader's message without the repeated path prefix.
fn dlopen_reason(error: &libloading::Error, path: &Path) -> String {
    let text =
        std::error::Error::source(error).map_or_else(|| error.to_string(), |s| s.to_string());
    let prefix = format!("{}: ", path.display());
    text.strip_prefix(&prefix).map(str::to_owned).unwrap_or(text)
}
