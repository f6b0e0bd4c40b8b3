//! Secrets read from files (SMTP password, API keys).
//!
//! A secret never lives in the main config: the config names a file (a systemd credential
//! under `$CREDENTIALS_DIRECTORY` works too), and the value is wrapped in [`Secret`] whose
//! `Debug` and `Display` print `***`, so that it cannot end up in a log line by accident.

use std::fmt;
use std::path::{Path, PathBuf};

/// A secret string. Only [`Secret::expose`] gives the value, and only where it is used.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value itself. Call this only where the secret is handed to the peer that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read secret file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("secret file {path} is empty")]
    Empty { path: PathBuf },
    #[error(
        "secret file {path} is readable by other users or its group (mode {mode:o}); chmod 600 it"
    )]
    Loose { path: PathBuf, mode: u32 },
}

/// Expands `${CREDENTIALS_DIRECTORY}` (set by systemd's `LoadCredential=`) in a configured path.
pub fn expand_credentials_dir(path: &Path) -> PathBuf {
    let text = path.to_string_lossy();
    if !text.contains("${CREDENTIALS_DIRECTORY}") {
        return path.to_path_buf();
    }
    let dir = std::env::var("CREDENTIALS_DIRECTORY").unwrap_or_default();
    PathBuf::from(text.replace("${CREDENTIALS_DIRECTORY}", &dir))
}

/// The path of a secret file (`${CREDENTIALS_DIRECTORY}` expanded) once it is known to be
/// readable by its owner only; for secrets too large to hold as one [`Secret`] (an export
/// of the directory's password hashes).
pub fn check_secret_file(path: &Path) -> Result<PathBuf, SecretError> {
    let path = expand_credentials_dir(path);
    let meta = std::fs::metadata(&path).map_err(|source| SecretError::Read {
        path: path.clone(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretError::Loose { path, mode });
        }
    }
    #[cfg(not(unix))]
    let _ = meta;
    Ok(path)
}

/// Reads a secret from a file: trailing newlines are dropped, everything else is kept.
///
/// A file that other users can read, its group's included, is refused rather than warned
/// about: a readable SMTP password is a finding in itself, and the fix (`chmod 600`) is one
/// command. (systemd's credentials are 0400 to the service's user.)
pub fn read_secret_file(path: &Path) -> Result<Secret, SecretError> {
    let path = check_secret_file(path)?;
    let text = std::fs::read_to_string(&path).map_err(|source| SecretError::Read {
        path: path.clone(),
        source,
    })?;
    let value = text.trim_end_matches(['\r', '\n']);
    if value.is_empty() {
        return Err(SecretError::Empty { path });
    }
    Ok(Secret(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn reads_file_and_refuses_world_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        std::fs::write(&p, "s3cret\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_secret_file(&p).unwrap().expose(), "s3cret");
        for loose in [0o644, 0o640, 0o604, 0o660] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(loose)).unwrap();
            assert!(
                matches!(read_secret_file(&p), Err(SecretError::Loose { .. })),
                "{loose:o}"
            );
        }
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert_eq!(read_secret_file(&p).unwrap().expose(), "s3cret");
        std::fs::write(dir.path().join("empty"), "\n").unwrap();
        std::fs::set_permissions(
            dir.path().join("empty"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        assert!(matches!(
            read_secret_file(&dir.path().join("empty")),
            Err(SecretError::Empty { .. })
        ));
    }
}
