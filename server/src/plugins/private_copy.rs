//! Opens a library through a private copy of its bytes, so that a file rebuilt in place is
//! really loaded again, and so that rewriting the file the operator configured never touches
//! code the server is running.
//!
//! The dynamic loader returns the library it already has for a path it has opened before (and
//! glibc also for the same device and inode), so opening a rebuilt `libx.so` again would give
//! back the old code. Each new build is therefore copied into a fresh folder,
//! `$TMPDIR/hookgate-<pid>-<random>/` (mode 0700, made by the server; creating it fails rather
//! than reuse anything already there), opened from there, and the copy and its folder are
//! removed at once: the mapping stays for the life of the process, the file name does not.
//! On Windows a loaded DLL cannot be removed, so the copy stays in `%TEMP%`.

use std::{
    io::Write,
    path::{Path, PathBuf},
};

use libloading::Library;

/// Opens the library whose file holds `bytes` (read from `original`) through a private copy.
/// On failure, the reason (the dynamic loader's message, or why no copy could be made).
///
/// # Safety
/// Loading a library runs its initialisers: `bytes` must be a library trusted as the server.
pub(super) unsafe fn open(original: &Path, bytes: &[u8]) -> Result<Library, String> {
    let name = original.file_name().ok_or_else(|| "it has no file name".to_owned())?;
    let dir = PrivateDir::create()
        .map_err(|error| format!("cannot make a private folder for its copy: {error}"))?;
    let copy = dir.path.join(name);
    write_copy(&copy, bytes)
        .map_err(|error| format!("cannot write its private copy {}: {error}", copy.display()))?;
    // SAFETY: the caller's.
    let library = unsafe { Library::new(&copy) };
    library.map_err(|error| super::loader::dlopen_reason(&error, &copy))
}

fn write_copy(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o500);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// A folder only the server's user may enter, removed (with what is in it) when dropped.
struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    fn create() -> std::io::Result<Self> {
        let mut random = [0u8; 8];
        getrandom::fill(&mut random).map_err(std::io::Error::other)?;
        let suffix: String = random.iter().map(|byte| format!("{byte:02x}")).collect();
        let path = std::env::temp_dir().join(format!("hookgate-{}-{suffix}", std::process::id()));
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        // `create`, not `create_all`: an existing entry (even a symlink) is an error.
        builder.create(&path)?;
        Ok(Self { path })
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        // The library stays mapped; only its name goes. (Fails, harmlessly, on Windows.)
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
