//! Fresh folders only the server's user may enter, for files the server makes for itself and
//! nobody else may swap: the private copies of plugin libraries.

use std::path::{Path, PathBuf};

/// A folder `$TMPDIR/<prefix>-<pid>-<random>` (mode 0700 on Unix), made new: an existing entry
/// of that name, even a symlink, is an error rather than reused. Removed, with what is in it,
/// when dropped.
#[derive(Debug)]
pub(crate) struct PrivateDir {
    path: PathBuf,
}

impl PrivateDir {
    /// Makes the folder.
    pub(crate) fn create(prefix: &str) -> std::io::Result<Self> {
        let name = format!("{prefix}-{}-{}", std::process::id(), crate::session::random_hex(8));
        let path = std::env::temp_dir().join(name);
        #[cfg_attr(not(unix), allow(unused_mut))] // only unix sets a mode
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        // `create`, not `create_all`: an existing entry (even a symlink) is an error.
        builder.create(&path)?;
        Ok(Self { path })
    }

    /// The folder.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        // Fails, harmlessly, on Windows while a library in it is loaded.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Only the server's user may enter it, and it goes with what is in it when dropped.
    #[cfg(unix)]
    #[test]
    fn the_folder_is_the_users_alone_and_goes_when_dropped() {
        use std::os::unix::fs::PermissionsExt;
        let dir = PrivateDir::create("hookgate-private-dir-test").unwrap();
        let path = dir.path().to_owned();
        let metadata = std::fs::symlink_metadata(&path).unwrap();
        assert!(metadata.is_dir());
        assert_eq!(metadata.permissions().mode() & 0o777, 0o700);
        std::fs::write(path.join("copy.so"), b"x").unwrap();
        drop(dir);
        assert!(!path.exists());
    }
}
