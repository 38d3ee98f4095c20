//! Files only the tracker's own user may read. `chat.log` holds every
//! direct message and the data folder the certificate's key, so folders are
//! created 0700 and files 0600 whatever the umask, and an existing one that
//! is more open is reported (never changed behind the operator's back).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::Path;

/// Mode bits that let other users in (group and others).
const OPEN_TO_OTHERS: u32 = 0o077;

/// Creates `dir` and any missing parents, new ones as 0700.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Opens `path` for appending and reading, creating it as 0600.
pub fn open_append(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true).read(true);
    set_private_mode(&mut options);
    options.open(path)
}

/// Makes `options` create files as 0600.
pub fn set_private_mode(options: &mut OpenOptions) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = options;
}

/// What to tell the operator when `path` (a file or folder) can be read or
/// entered by other users: the path, its mode and the `chmod` that fixes
/// it. `None` when it is private (or cannot be looked at).
pub fn open_to_others(path: &Path) -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = fs::metadata(path).ok()?;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & OPEN_TO_OTHERS == 0 {
            return None;
        }
        let (what, fix) = if meta.is_dir() {
            ("folder", "700")
        } else {
            ("file", "600")
        };
        Some(format!(
            "{} ({what}, mode {mode:04o}) is open to other users of this machine; to fix: chmod {fix} {}",
            path.display(),
            shell_quoted(path)
        ))
    }
    #[cfg(not(unix))]
    {
        let _ = (path, OPEN_TO_OTHERS);
        None
    }
}

/// Logs [`open_to_others`] as a warning for each of `paths` that needs one.
pub fn warn_if_open(paths: &[&Path]) {
    for path in paths {
        if let Some(warning) = open_to_others(path) {
            tracing::warn!("{warning}");
        }
    }
}

/// `path` as one shell word, for a command the operator may paste.
fn shell_quoted(path: &Path) -> String {
    let text = path.display().to_string();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:@%".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn creates_private_and_reports_open_ones() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a b").join("logs");
        create_dir(&nested).unwrap();
        assert_eq!(mode(&nested), 0o700);
        assert_eq!(mode(nested.parent().unwrap()), 0o700);
        let log = nested.join("chat.log");
        drop(open_append(&log).unwrap());
        assert_eq!(mode(&log), 0o600);
        assert_eq!(open_to_others(&log), None);
        assert_eq!(open_to_others(&nested), None);

        fs::set_permissions(&log, fs::Permissions::from_mode(0o644)).unwrap();
        let warning = open_to_others(&log).unwrap();
        assert_eq!(
            warning,
            format!(
                "{} (file, mode 0644) is open to other users of this machine; to fix: chmod 600 '{}'",
                log.display(),
                log.display()
            )
        );
        fs::set_permissions(&nested, fs::Permissions::from_mode(0o750)).unwrap();
        assert!(open_to_others(&nested).unwrap().contains(
            "(folder, mode 0750) is open to other users of this machine; to fix: chmod 700 "
        ));
        assert_eq!(open_to_others(&dir.path().join("missing")), None);
        assert_eq!(shell_quoted(Path::new("logs/chat.log")), "logs/chat.log");
        assert_eq!(shell_quoted(Path::new("it's")), r"'it'\''s'");
    }
}
