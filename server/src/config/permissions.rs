//! Who may change or read the config file: it chooses the plugin libraries the server runs, so
//! it is refused when anyone but root or the server's user could change it, and a warning is
//! logged when others can read a master key written in it.

use std::path::Path;

/// What would let someone other than root or the server's user change the config file at
/// `file` (absolute): the file it resolves to and every folder above that, and, when it is
/// reached through a symlink, the folders above the link (whoever can replace the link chooses
/// the file). Nothing when the file cannot be resolved: reading it then says why.
pub(super) fn config_file_problems(file: &Path) -> Vec<crate::plugins::Insecurity> {
    let Ok(canonical) = file.canonicalize() else { return Vec::new() };
    let mut problems = crate::plugins::strict_mode_problems(&canonical);
    if canonical != file
        && let Some(folder) = file.parent()
    {
        for problem in crate::plugins::strict_mode_problems(folder) {
            if !problems.contains(&problem) {
                problems.push(problem);
            }
        }
    }
    problems
}

/// Warns when the group or others can read `file`, which writes the master key itself: whoever
/// reads it can sign session tokens and use the management API as an admin.
pub(super) fn warn_if_others_can_read(file: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(mode) = std::fs::metadata(file).map(|metadata| metadata.mode()) else { return };
        let who = match (mode & 0o040 != 0, mode & 0o004 != 0) {
            (true, true) => "its group and others",
            (true, false) => "its group",
            (false, true) => "others",
            (false, false) => return,
        };
        tracing::warn!(
            "{}: general_settings.master_key is written in this file, which {who} can read \
             (mode {:04o}): whoever reads it can act as an admin; chmod 600 the file, or write \
             master_key: os.environ/LITELLM_MASTER_KEY",
            file.display(),
            mode & 0o7777
        );
    }
    #[cfg(not(unix))]
    let _ = file;
}
