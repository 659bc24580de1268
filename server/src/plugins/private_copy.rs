//! Opens a library through a private copy of its bytes, so that a file rebuilt in place is
//! really loaded again, and so that rewriting the file the operator configured never touches
//! code the server is running.
//!
//! The dynamic loader returns the library it already has for a path it has opened before (and
//! glibc also for the same device and inode), so opening a rebuilt `libx.so` again would give
//! back the old code. Each new build is therefore copied into a fresh folder,
//! `$TMPDIR/hookgate-<pid>-<random>/` (mode 0700, made by the server; creating it fails rather
//! than reuse anything already there), opened from there, and the copy and its folder are
//! removed at once: the mapping stays for the life of the process, the file name does not
//! (nor do its blocks in `$TMPDIR`, which stay allocated, unnamed, until the process exits).
//! A file whose bytes are already loaded (same path, same SHA-256) is not opened again.
//! On Windows a loaded DLL cannot be removed, so the copy stays in `%TEMP%`.

use std::{
    io::{Read, Write},
    path::{Path, PathBuf},
};

use libloading::Library;

use crate::private_dir::PrivateDir;
use sha2::{Digest, Sha256};

/// A private copy of a library file, not opened yet; removed (with its folder) when dropped.
pub(super) struct Staged {
    dir: PrivateDir,
    copy: PathBuf,
    /// SHA-256 of the bytes copied.
    pub(super) digest: [u8; 32],
}

/// Copies `original` into a fresh private folder, hashing the bytes as they are copied (so the
/// digest is of exactly what would be loaded, however the original changes meanwhile). Streams:
/// a large library never sits whole in the server's memory. On failure, the reason.
pub(super) fn stage(original: &Path) -> Result<Staged, String> {
    let name = original.file_name().ok_or_else(|| "it has no file name".to_owned())?;
    let mut source =
        std::fs::File::open(original).map_err(|error| format!("cannot read it: {error}"))?;
    let dir = PrivateDir::create("hookgate")
        .map_err(|error| format!("cannot make a private folder for its copy: {error}"))?;
    let copy = dir.path().join(name);
    let digest = copy_hashing(&mut source, &copy)
        .map_err(|error| format!("cannot copy it to {}: {error}", copy.display()))?;
    Ok(Staged { dir, copy, digest })
}

impl Staged {
    /// Opens the copy; the copy's name goes when this returns, its mapping stays.
    ///
    /// # Safety
    /// Loading a library runs its initialisers: it must be trusted as the server.
    pub(super) unsafe fn open(self) -> Result<Library, String> {
        // SAFETY: the caller's.
        let library = unsafe { Library::new(&self.copy) };
        let result = library.map_err(|error| super::loader::dlopen_reason(&error, &self.copy));
        // The copy's name goes with its folder; the mapping stays (on Windows the folder stays).
        drop(self.dir);
        result
    }
}

fn copy_hashing(source: &mut std::fs::File, path: &Path) -> std::io::Result<[u8; 32]> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o500);
    let mut file = options.open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = match source.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        hasher.update(&buffer[..read]);
        file.write_all(&buffer[..read])?;
    }
    // No fsync: the copy is opened from the page cache and unlinked at once; a crash loses
    // nothing that matters.
    Ok(hasher.finalize().into())
}
