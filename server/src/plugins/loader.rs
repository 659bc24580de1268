//! Finds, loads and checks hook libraries. Libraries are opened through a private copy (see
//! `private_copy`), cached by canonical path and content, and never unloaded (a Rust library
//! cannot be unloaded soundly).
//!
//! Before a library is opened, its canonical path must lie inside the plugin folder it was found
//! in, and (on Unix) neither it nor any folder above it may be writable by group or others
//! (sticky folders such as `/tmp` excepted) or owned by anyone but root or the server's user,
//! as sshd's `StrictModes`. `general_settings.allow_insecure_plugin_permissions` turns these
//! refusals into warnings.

use std::{
    collections::HashMap,
    ffi::c_void,
    fmt,
    path::{Path, PathBuf},
    sync::Mutex,
};

use libloading::Library;
use plugin_api::abi::{ExportError, Hook, check_export};

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
    /// Others could replace the library, or it resolves outside its plugin folder; not opened.
    Insecure {
        /// The path found in the plugin folder.
        found: PathBuf,
        /// The library, canonical.
        path: PathBuf,
        /// Everything wrong: a symlink out of the folder, then the file, then folders upwards.
        problems: Vec<Insecurity>,
    },
}

/// Why a library found in a plugin folder is not safe to load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Insecurity {
    /// The path found resolves, through a symlink, outside the plugin folder it was found in.
    OutsideFolder {
        /// The path found in the plugin folder.
        link: PathBuf,
        /// Where it resolves to.
        target: PathBuf,
        /// The plugin folder, canonical.
        folder: PathBuf,
    },
    /// The file or a folder above it is writable by its group or by others.
    Writable {
        /// The file or folder.
        path: PathBuf,
        /// Whether it is a folder.
        is_dir: bool,
        /// Its permission bits.
        mode: u32,
    },
    /// The file or a folder above it is owned by neither root nor the server's user.
    Owner {
        /// The file or folder.
        path: PathBuf,
        /// Whether it is a folder.
        is_dir: bool,
        /// Its owner's uid.
        uid: u32,
        /// The server's effective uid.
        server_uid: u32,
    },
}

impl fmt::Display for Insecurity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = |is_dir: bool| if is_dir { "folder" } else { "file" };
        match self {
            Insecurity::OutsideFolder { link, target, folder } => write!(
                f,
                "{} resolves through a symlink to {}, outside the plugin folder {}",
                link.display(),
                target.display(),
                folder.display()
            ),
            Insecurity::Writable { path, is_dir, mode } => {
                let who = match (mode & 0o020 != 0, mode & 0o002 != 0) {
                    (true, true) => "its group and by others",
                    (true, false) => "its group",
                    _ => "others",
                };
                write!(
                    f,
                    "{} {} is writable by {who} (mode {:04o})",
                    what(*is_dir),
                    path.display(),
                    mode & 0o7777
                )
            }
            Insecurity::Owner { path, is_dir, uid, server_uid } => write!(
                f,
                "{} {} is owned by uid {uid}, neither root nor the server's user \
                 (uid {server_uid})",
                what(*is_dir),
                path.display()
            ),
        }
    }
}

/// Whether libraries that others could replace may be loaded
/// (`general_settings.allow_insecure_plugin_permissions`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PermissionPolicy {
    /// Refuse them (the default).
    #[default]
    Strict,
    /// Load them, with a warning naming what is insecure.
    AllowInsecure,
}

impl PermissionPolicy {
    /// The policy `allow_insecure_plugin_permissions` asks for.
    pub fn from_setting(allow_insecure_plugin_permissions: bool) -> Self {
        if allow_insecure_plugin_permissions { Self::AllowInsecure } else { Self::Strict }
    }
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
            LoadErrorKind::Insecure { found, path, problems } => {
                write!(f, "refusing to load {}", path.display())?;
                if found != path {
                    write!(f, " (found as {})", found.display())?;
                }
                f.write_str(":")?;
                for problem in problems {
                    write!(f, "\n    {problem}")?;
                }
                f.write_str(
                    "\n  a plugin runs as the server, so it must stay inside its plugin folder, \
                     and it and every folder above it must be owned by root or the server's \
                     user and writable by no one else (chmod go-w)\n  set \
                     general_settings.allow_insecure_plugin_permissions: true to load it anyway",
                )
            }
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
    /// The library file as found in the plugin folder (absolute, symlinks not resolved).
    pub found: PathBuf,
    /// The plugin-api version the plugin was built with.
    pub api_version: String,
    /// The plugin declared the hook non-blocking.
    pub non_blocking: bool,
}

/// Opens libraries and resolves hooks in them.
#[derive(Default)]
pub struct PluginLoader {
    /// By canonical path and SHA-256 of the bytes: a file rebuilt in place is opened anew.
    libraries: Mutex<HashMap<(PathBuf, [u8; 32]), &'static Library>>,
    /// How many times a library was actually opened (each is leaked, never unloaded).
    opened: std::sync::atomic::AtomicUsize,
}

impl fmt::Debug for PluginLoader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginLoader").finish_non_exhaustive()
    }
}

impl PluginLoader {
    /// How many libraries this loader opened: one per file, however many hooks it resolves
    /// from it.
    pub fn libraries_opened(&self) -> usize {
        self.opened.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A loader with nothing loaded yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Finds `reference`'s library under the first of `dirs` that has it, checks that others
    /// cannot replace it (see the module's documentation; `policy` says whether to refuse or
    /// warn), loads it and checks that the symbol is a hook of kind `H`.
    pub fn resolve<H: Hook>(
        &self,
        setting: &str,
        reference: &HookRef,
        dirs: &[PathBuf],
        policy: PermissionPolicy,
    ) -> Result<Resolved<H>, LoadError> {
        let fail = |kind| LoadError {
            setting: setting.to_owned(),
            reference: reference.as_str().to_owned(),
            kind: Box::new(kind),
        };
        // Folder by folder, each of the platform's names (on Windows `x.dll`, then `libx.dll`):
        // the first folder holding the library wins.
        let relatives = reference.relative_paths();
        let candidates: Vec<(&PathBuf, PathBuf)> = dirs
            .iter()
            .flat_map(|dir| {
                relatives.iter().map(move |relative| (dir, absolute(&dir.join(relative))))
            })
            .collect();
        let Some((dir, found)) = candidates.iter().find(|(_, path)| path.is_file()) else {
            let tried = candidates.into_iter().map(|(_, path)| path).collect();
            return Err(fail(LoadErrorKind::NotFound { tried }));
        };
        let found = found.clone();
        let path = canonical(&found).unwrap_or_else(|_| found.clone());
        let folder = absolute(dir);
        let folder = canonical(&folder).unwrap_or(folder);
        let problems = insecurities(&found, &path, &folder);
        if !problems.is_empty() {
            match policy {
                PermissionPolicy::Strict => {
                    return Err(fail(LoadErrorKind::Insecure { found, path, problems }));
                }
                PermissionPolicy::AllowInsecure => {
                    for problem in &problems {
                        tracing::warn!(
                            setting,
                            hook = reference.as_str(),
                            file = %path.display(),
                            "loading an insecure plugin because \
                             general_settings.allow_insecure_plugin_permissions is true: {problem}"
                        );
                    }
                }
            }
        }
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
            Ok(export) => Ok(Resolved {
                hook: export.hook,
                file: path,
                found,
                api_version: export.api_version_string(),
                non_blocking: export.non_blocking(),
            }),
            Err(error) => Err(fail(LoadErrorKind::Export { path, error })),
        }
    }

    fn open(&self, path: &Path) -> Result<&'static Library, String> {
        // The bytes copied and hashed here are the bytes loaded: the file may be rewritten at
        // any time.
        let staged = super::private_copy::stage(path)?;
        let key = (path.to_owned(), staged.digest);
        let mut libraries = self.libraries.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(library) = libraries.get(&key) {
            return Ok(library);
        }
        // SAFETY: loading a library runs its initialisers. Plugins are trusted code (see
        // SECURITY.md); they are loaded only from the configured folders, after the checks.
        let library = unsafe { staged.open() }?;
        self.opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Never unloaded: hooks and descriptors are `&'static` into it.
        let library: &'static Library = Box::leak(Box::new(library));
        libraries.insert(key, library);
        Ok(library)
    }
}

/// What makes the library at `resolved` (canonical; found as `found` in plugin folder `folder`,
/// canonical) unsafe to load.
fn insecurities(found: &Path, resolved: &Path, folder: &Path) -> Vec<Insecurity> {
    let mut problems = Vec::new();
    if !resolved.starts_with(folder) {
        problems.push(Insecurity::OutsideFolder {
            link: found.to_owned(),
            target: resolved.to_owned(),
            folder: folder.to_owned(),
        });
    }
    problems.extend(strict_mode_problems(resolved));
    problems
}

/// sshd's `StrictModes` for the file at `path` (canonical) and every folder above it: each
/// writable by its group or by others (a folder with the sticky bit, such as `/tmp`,
/// excepted), or owned by neither root nor the server's user, is a way for someone else to
/// replace or change the file. Applied to each hook library and to the config file, which
/// chooses them. Nothing on platforms without Unix permissions.
pub fn strict_mode_problems(path: &Path) -> Vec<Insecurity> {
    #[cfg(unix)]
    return unix::permission_problems(path);
    #[cfg(not(unix))]
    {
        let _ = path;
        Vec::new()
    }
}

/// sshd's `StrictModes`, for the library file and every folder above it.
#[cfg(unix)]
mod unix {
    use std::{fs, os::unix::fs::MetadataExt, path::Path};

    use super::Insecurity;

    /// The sticky bit: in such a folder only an entry's owner may rename or remove it.
    const STICKY: u32 = 0o1000;
    /// Write permission for the group and for others.
    const WRITABLE_BY_OTHERS: u32 = 0o022;

    unsafe extern "C" {
        /// POSIX `geteuid`: always succeeds.
        safe fn geteuid() -> u32;
    }

    /// Problems with `resolved` (canonical) and each folder from its parent up to `/`.
    pub(super) fn permission_problems(resolved: &Path) -> Vec<Insecurity> {
        let server_uid = geteuid();
        resolved
            .ancestors()
            .filter(|path| !path.as_os_str().is_empty())
            .filter_map(|path| Some((path, fs::metadata(path).ok()?)))
            .flat_map(|(path, metadata)| {
                entry_problems(path, metadata.is_dir(), metadata.mode(), metadata.uid(), server_uid)
            })
            .collect()
    }

    /// Problems with one file or folder: writable by group or others (a folder with the sticky
    /// bit excepted: others cannot replace entries they do not own), or owned by neither root
    /// nor `server_uid`.
    pub(super) fn entry_problems(
        path: &Path,
        is_dir: bool,
        mode: u32,
        uid: u32,
        server_uid: u32,
    ) -> Vec<Insecurity> {
        let mut problems = Vec::new();
        if mode & WRITABLE_BY_OTHERS != 0 && !(is_dir && mode & STICKY != 0) {
            problems.push(Insecurity::Writable { path: path.to_owned(), is_dir, mode });
        }
        if uid != 0 && uid != server_uid {
            problems.push(Insecurity::Owner { path: path.to_owned(), is_dir, uid, server_uid });
        }
        problems
    }
}

/// `path` made canonical. On Windows, where that gives a verbatim path (`\\?\C:\…`), the plain
/// path (`C:\…`) when it names the same file, as it does for ordinary drive paths: so that the
/// path found and the path loaded compare equal, and `hookgate check` and errors show `C:\…`.
fn canonical(path: &Path) -> std::io::Result<PathBuf> {
    let canonical = path.canonicalize()?;
    #[cfg(windows)]
    if let Some(plain) = canonical.to_str().and_then(|text| text.strip_prefix(r"\\?\")) {
        let plain = PathBuf::from(plain);
        // `\\?\UNC\…` stripped is relative, and a plain path that resolves elsewhere (a
        // reserved name, a trailing dot) is not the same file: both keep the verbatim path.
        if plain.is_absolute() && plain.canonicalize().is_ok_and(|again| again == canonical) {
            return Ok(plain);
        }
    }
    Ok(canonical)
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// The loader's message without the repeated path prefix.
pub(super) fn dlopen_reason(error: &libloading::Error, path: &Path) -> String {
    let text =
        std::error::Error::source(error).map_or_else(|| error.to_string(), |s| s.to_string());
    let prefix = format!("{}: ", path.display());
    text.strip_prefix(&prefix).map(str::to_owned).unwrap_or(text)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn a_library_resolving_outside_its_folder_is_insecure() {
        let found = Path::new("/srv/plugins/libx.so");
        let inside =
            insecurities(found, Path::new("/srv/plugins/v2/libx.so"), Path::new("/srv/plugins"));
        assert!(
            !inside.iter().any(|p| matches!(p, Insecurity::OutsideFolder { .. })),
            "{inside:?}"
        );

        let outside =
            insecurities(found, Path::new("/srv/plugins-old/libx.so"), Path::new("/srv/plugins"));
        let problem = outside
            .iter()
            .find(|p| matches!(p, Insecurity::OutsideFolder { .. }))
            .expect("outside the folder");
        assert_eq!(
            problem.to_string(),
            "/srv/plugins/libx.so resolves through a symlink to /srv/plugins-old/libx.so, outside \
             the plugin folder /srv/plugins"
        );
    }

    #[cfg(unix)]
    #[test]
    fn strict_modes_refuse_what_others_may_write_or_own() {
        use super::unix::entry_problems;
        let path = Path::new("/p/libx.so");
        let me = 1000;
        for (is_dir, mode, uid) in
            [(false, 0o100644, 0), (false, 0o100755, me), (true, 0o40755, 0), (true, 0o41777, 0)]
        {
            assert_eq!(entry_problems(path, is_dir, mode, uid, me), [], "{mode:o} uid {uid}");
        }

        let problems = entry_problems(path, false, 0o100666, 0, me);
        assert_eq!(problems.len(), 1);
        assert_eq!(
            problems[0].to_string(),
            "file /p/libx.so is writable by its group and by others (mode 0666)"
        );
        let problems = entry_problems(path, true, 0o40775, 0, me);
        assert_eq!(
            problems[0].to_string(),
            "folder /p/libx.so is writable by its group (mode 0775)"
        );
        let problems = entry_problems(path, true, 0o40757, 0, me);
        assert_eq!(problems[0].to_string(), "folder /p/libx.so is writable by others (mode 0757)");
        // The sticky bit protects a folder's entries, not a file.
        assert_eq!(entry_problems(path, false, 0o101666, 0, me).len(), 1);

        let problems = entry_problems(path, false, 0o100644, 1001, me);
        assert_eq!(
            problems,
            [Insecurity::Owner { path: path.to_owned(), is_dir: false, uid: 1001, server_uid: me }]
        );
        assert_eq!(
            problems[0].to_string(),
            "file /p/libx.so is owned by uid 1001, neither root nor the server's user (uid 1000)"
        );
        assert_eq!(entry_problems(path, true, 0o40777, 1001, me).len(), 2);
    }
}
