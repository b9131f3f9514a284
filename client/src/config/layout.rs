//! Where an installation keeps its state: the one rule that names the state
//! folder of a config file, and how the folder is made.
//!
//! For a config file `DIR/NAME.toml` (or `DIR/NAME` with any other name) the
//! state folder is `DIR/NAME.state/`: two config files in one folder
//! (`asso-a.toml`, `asso-b.toml`) have two state folders and share nothing.
//! The folder is private to the user (0700 on Unix, a protected access list
//! for the user and SYSTEM on Windows: `fsmeta::private`) and holds a
//! `CACHEDIR.TAG`, so that no backup tool, coffre included, saves it.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The name of the marker file of the cache-directory standard.
pub const CACHEDIR_TAG: &str = "CACHEDIR.TAG";

/// The contents of the `CACHEDIR.TAG` written into a state folder: the
/// standard signature line first (<https://bford.info/cachedir/>).
const CACHEDIR_TAG_TEXT: &str = "Signature: 8a477f597d28d172789f06886806bc55\n\
# This file is a cache directory tag created by coffre: this folder holds the\n\
# state of one coffre installation (its device credentials among others), which\n\
# backups must not save. For information about cache directory tags, see\n\
#\thttps://bford.info/cachedir/\n";

/// The state folder of the config file at `config_path` (absolute): the file
/// name minus a `.toml` extension, plus `.state`, in the same folder.
pub fn state_dir_of(config_path: &Path) -> PathBuf {
    let name = config_path.file_name().unwrap_or_default();
    let stem = match Path::new(name).extension() {
        Some(ext) if ext.eq_ignore_ascii_case("toml") => {
            Path::new(name).file_stem().unwrap_or_default()
        }
        _ => name,
    };
    let mut state: OsString = stem.to_os_string();
    state.push(".state");
    config_path.with_file_name(state)
}

/// Makes sure the state folder exists, is private (0700 on Unix) and holds
/// its `CACHEDIR.TAG`.
pub fn ensure_state_dir(dir: &Path) -> Result<()> {
    create_private_dir(dir).with_context(|| {
        format!(
            "creating this installation's state folder {} (check the permissions of its parent folder)",
            dir.display()
        )
    })?;
    let tag = dir.join(CACHEDIR_TAG);
    if !tag.exists() {
        super::atomic_write(&tag, CACHEDIR_TAG_TEXT.as_bytes(), false)?;
    }
    Ok(())
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    if let Some(parent) = dir.parent() {
        fs::create_dir_all(parent)?;
    }
    match fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let md = fs::metadata(dir)?;
            if md.permissions().mode() & 0o777 != 0o700 {
                crate::fsmeta::private::restrict_dir(dir)?;
            }
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Windows: the folder gets a protected access list (`fsmeta::private`), made
/// again when it is not private any more. A failure (a drive without access
/// lists) is a warning: the folder is still used.
#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use crate::fsmeta::private;
    fs::create_dir_all(dir)?;
    if private::check(dir).is_ok_and(|p| p.is_private()) {
        return Ok(());
    }
    if let Err(e) = private::restrict_dir(dir) {
        errln!(
            "coffre: WARNING: the state folder {} could not be made private to you ({e}); \
             other accounts of this PC may read what it holds",
            dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_config_file_names_its_own_state_folder() {
        let s = |p: &str| state_dir_of(Path::new(p));
        assert_eq!(
            s("/h/coffre/config.toml"),
            Path::new("/h/coffre/config.state")
        );
        assert_eq!(
            s("/h/coffre/asso-a.toml"),
            Path::new("/h/coffre/asso-a.state")
        );
        assert_eq!(
            s("/h/coffre/asso-b.TOML"),
            Path::new("/h/coffre/asso-b.state")
        );
        assert_eq!(
            s("/h/coffre/asso.conf"),
            Path::new("/h/coffre/asso.conf.state")
        );
        assert_eq!(s("/h/coffre/asso"), Path::new("/h/coffre/asso.state"));
        assert_eq!(s("/h/v1.2.toml"), Path::new("/h/v1.2.state"));
    }

    #[test]
    fn the_state_folder_is_private_and_tagged() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/config.state");
        ensure_state_dir(&dir).unwrap();
        let tag = fs::read(dir.join(CACHEDIR_TAG)).unwrap();
        assert!(tag.starts_with(b"Signature: 8a477f597d28d172789f06886806bc55"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir), 0o700);
            // A folder made too open by hand is made private again.
            fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
            ensure_state_dir(&dir).unwrap();
            assert_eq!(mode(&dir), 0o700);
        }
    }
}
