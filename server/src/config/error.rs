//! [`ConfigError`]: why the configuration cannot be used (unreadable, invalid, or a file others
//! could change), with the messages that say so.

use std::path::{Path, PathBuf};

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {}: {source}", file.display())]
    Read {
        /// The config file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid, or a value is wrong.
    #[error("{}: {message}", file.display())]
    Invalid {
        /// The config file.
        file: PathBuf,
        /// What is wrong, with the key path and, where known, the line.
        message: String,
    },
    /// Someone other than root or the server's user could change the file (or a folder above
    /// it): it is refused, whatever it says, before it is read.
    #[error("{}", insecure_message(file, problems))]
    Insecure {
        /// The config file, as given (absolute).
        file: PathBuf,
        /// Everything wrong: the file, then folders upwards.
        problems: Vec<crate::plugins::Insecurity>,
    },
}

fn insecure_message(file: &Path, problems: &[crate::plugins::Insecurity]) -> String {
    let mut text = format!(
        "refusing the config file {}: it chooses the plugin libraries the server runs (and can \
         turn their permission checks off), so no one but root or the server's user may be able \
         to change it:",
        file.display()
    );
    for problem in problems {
        text.push_str(&format!("\n    {problem}"));
    }
    text.push_str(
        "\n  the file and every folder above it must be owned by root or the server's user and \
         writable by no one else (chown, chmod go-w); allow_insecure_plugin_permissions does \
         not apply to the config file itself",
    );
    text
}
