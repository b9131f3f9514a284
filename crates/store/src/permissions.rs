//! Owner-only data directories: the data directory is 0700 and everything
//! in it 0600 (files) or 0700 (folders), so no other local user of the
//! server can read the catalogue, the wrapped key files (and guess their
//! passphrases offline), the packs, the manifests or `account.json`.
//!
//! New files and folders get these modes at creation ([`crate::durable`]:
//! [`FILE_MODE`], [`DIR_MODE`]). This module brings a data directory made by
//! an older release (0755 folders, 0644 files) to the same state:
//! [`tighten`] runs when the store is opened ([`crate::Store::open`]) and
//! when an admin command that works without a store opens the directory
//! (`rebuild-catalog`, `move-packs`), and says what it changed so that the
//! caller logs it once.
//!
//! It costs one `stat` when the data directory itself is already 0700: then
//! no other user can reach anything inside, whatever the modes there. Only a
//! directory open to others is walked (every entry, symbolic links not
//! followed: a link is neither changed nor entered). On other systems than
//! Unix it does nothing.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What [`tighten`] changed, and what it could not change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tightened {
    /// Files and folders whose mode was narrowed to owner-only.
    pub changed: u64,
    /// The first few of them (for the log line).
    pub examples: Vec<PathBuf>,
    /// Files and folders left open because changing them failed (another
    /// owner, a read-only file system): the first few, with the error. The
    /// store opens anyway: the operator is told to fix them.
    pub refused: Vec<String>,
}

impl Tightened {
    /// Whether there is nothing to tell.
    pub fn is_empty(&self) -> bool {
        self.changed == 0 && self.refused.is_empty()
    }
}

impl std::fmt::Display for Tightened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<String> = self
            .examples
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        if self.changed > 0 {
            write!(
                f,
                "made {} files and folders of the data directory owner-only (0600/0700), \
                 as an older coffre-server left them readable by other local users: {}{}",
                self.changed,
                names.join(", "),
                if self.changed as usize > names.len() {
                    ", ..."
                } else {
                    ""
                }
            )?;
        }
        if !self.refused.is_empty() {
            write!(
                f,
                "{}could not make owner-only {} (other local users may read them: run \
                 `chmod -R go-rwx` on the data directory as its owner)",
                if self.changed > 0 { "; " } else { "" },
                self.refused.join("; ")
            )?;
        }
        Ok(())
    }
}

/// How many changed paths [`Tightened::examples`] keeps.
const EXAMPLES: usize = 3;

/// Makes `data_dir` and everything in it owner-only if the directory is
/// open to other users (see the module documentation). What cannot be
/// changed is reported in [`Tightened::refused`], not as an error: a
/// server still opens its data directory. Fails only if `data_dir` (or an
/// entry found meanwhile) cannot be looked at.
pub fn tighten(data_dir: &Path) -> Result<Tightened> {
    let mut done = Tightened::default();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(data_dir).map_err(|e| Error::io(data_dir, e))?;
        if meta.permissions().mode() & 0o077 == 0 {
            return Ok(done);
        }
        walk(data_dir, &mut done)?;
    }
    #[cfg(not(unix))]
    let _ = data_dir;
    Ok(done)
}

/// Narrows `path` (then, for a folder, its entries) to owner-only.
#[cfg(unix)]
fn walk(path: &Path, done: &mut Tightened) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::symlink_metadata(path).map_err(|e| Error::io(path, e))?;
    let (is_dir, mode) = (meta.is_dir(), meta.permissions().mode());
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mut refused = |e: std::io::Error| {
        if done.refused.len() < EXAMPLES {
            done.refused.push(format!("{}: {e}", path.display()));
        }
    };
    if mode & 0o077 != 0 {
        let narrowed = mode & 0o7700;
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(narrowed)) {
            Ok(()) => {
                done.changed += 1;
                if done.examples.len() < EXAMPLES {
                    done.examples.push(path.to_path_buf());
                }
            }
            Err(e) => refused(e),
        }
    }
    if is_dir {
        let list = match std::fs::read_dir(path) {
            Ok(list) => list,
            Err(e) => {
                refused(e);
                return Ok(());
            }
        };
        for entry in list {
            let entry = entry.map_err(|e| Error::io(path, e))?;
            walk(&entry.path(), done)?;
        }
    }
    Ok(())
}

/// Makes the folder `dir` owner-only if it is open to others (a data
/// directory that existed before `init`), without looking inside.
pub(crate) fn private_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o7700))
                .map_err(|e| Error::io(dir, e))?;
        }
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn set(p: &Path, m: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    }

    #[test]
    fn an_open_directory_is_narrowed_to_its_owner_and_links_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("elsewhere");
        std::fs::write(&target, b"x").unwrap();
        set(&target, 0o644);
        let root = dir.path().join("data");
        std::fs::create_dir_all(root.join("subscribers/1/packs")).unwrap();
        std::fs::write(root.join("catalog.sqlite"), b"").unwrap();
        std::fs::write(root.join("subscribers/1/key"), b"").unwrap();
        std::os::unix::fs::symlink(&target, root.join("link")).unwrap();
        for p in ["", "subscribers", "subscribers/1", "subscribers/1/packs"] {
            set(&root.join(p), 0o755);
        }
        set(&root.join("catalog.sqlite"), 0o644);
        set(&root.join("subscribers/1/key"), 0o664);

        let done = tighten(&root).unwrap();
        assert_eq!(done.changed, 6, "{done:?}");
        assert!(done.to_string().contains("owner-only"), "{done}");
        for p in ["", "subscribers", "subscribers/1", "subscribers/1/packs"] {
            assert_eq!(mode(&root.join(p)), 0o700, "{p}");
        }
        assert_eq!(mode(&root.join("catalog.sqlite")), 0o600);
        assert_eq!(mode(&root.join("subscribers/1/key")), 0o600);
        assert_eq!(mode(&target), 0o644, "a link's target is not ours");
        // Once private, nothing more to do.
        assert!(tighten(&root).unwrap().is_empty());
    }
}
