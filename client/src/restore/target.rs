//! The confined writer: the restore's target folder, opened once, and every
//! directory, file and symlink made relative to it without following any
//! symlink (`cap-std` directory handles; `openat` with `O_NOFOLLOW`).
//!
//! - A directory below the target is only ever entered with
//!   `open_dir_nofollow`: a symlink (or a file) where the snapshot has a
//!   folder is never traversed; the caller reports it or, with
//!   `--overwrite`, removes the link itself ([`Target::make_dir`]).
//! - Files are written under a temporary name created exclusively
//!   (temp.rs), given their times, mode and owner **on the open handle**
//!   (futimens, fchmod, fchown), then renamed relative to the same
//!   directory handle (renameat): a symlink at the final name is replaced,
//!   never written through.
//! - Symlinks are created with `symlinkat`; their owner and times are set
//!   with the no-follow calls (`fchownat`/`utimensat` with
//!   `AT_SYMLINK_NOFOLLOW`).
//! - Directory metadata is set on a handle opened without following links.
//!
//! Relative paths here are made only of names checked by names.rs: one
//! component each, never `..`.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use cap_fs_ext::{DirExt, FollowSymlinks, OpenOptionsFollowExt, OpenOptionsMaybeDirExt};
use cap_std::fs::{Dir, OpenOptions};
use coffre_core::{Entry, Timestamp};

use super::temp::{Registry, TempFile};
use crate::fsmeta;

/// Directory handles kept open at most (each is a file descriptor); past
/// this the cache starts again from the target.
const CACHED_DIRS: usize = 256;

/// What is already at a name in the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Existing {
    /// Nothing.
    Missing,
    /// A regular file.
    File {
        /// Length in bytes.
        size: u64,
        /// Modification time.
        mtime: Timestamp,
    },
    /// A real directory.
    Dir,
    /// A symbolic link, with its target.
    Symlink(Vec<u8>),
    /// Anything else (a device, a socket, a FIFO).
    Other,
}

/// The target folder of one restore.
#[derive(Debug)]
pub struct Target {
    root: Arc<Dir>,
    path: PathBuf,
    dirs: Mutex<HashMap<PathBuf, Arc<Dir>>>,
    /// The live temporary files.
    pub temps: Registry,
}

impl Target {
    /// Creates `path` if needed and opens it: the one path of the restore
    /// resolved as a path (it is the user's choice).
    pub fn open(path: &Path) -> anyhow::Result<Target> {
        use anyhow::Context;
        std::fs::create_dir_all(path).with_context(|| {
            format!(
                "creating the target folder {}: choose a folder you can write to",
                path.display()
            )
        })?;
        let root = Dir::open_ambient_dir(path, cap_std::ambient_authority())
            .with_context(|| format!("opening the target folder {}", path.display()))?;
        Ok(Target {
            root: Arc::new(root),
            path: path.to_path_buf(),
            dirs: Mutex::new(HashMap::new()),
            temps: Registry::default(),
        })
    }

    /// `rel` as the user sees it (for messages only, never opened).
    pub fn display(&self, rel: &Path) -> PathBuf {
        self.path.join(rel)
    }

    /// The directory `rel` below the target, entered one name at a time
    /// without following a symlink.
    pub fn dir(&self, rel: &Path) -> io::Result<Arc<Dir>> {
        if rel.as_os_str().is_empty() {
            return Ok(self.root.clone());
        }
        if let Some(d) = self.cached(rel) {
            return Ok(d);
        }
        let (parent, name) = split(rel)?;
        let dir = Arc::new(self.dir(parent)?.open_dir_nofollow(name)?);
        let mut dirs = self.dirs.lock().unwrap_or_else(|e| e.into_inner());
        if dirs.len() >= CACHED_DIRS {
            dirs.clear();
        }
        dirs.insert(rel.to_path_buf(), dir.clone());
        Ok(dir)
    }

    fn cached(&self, rel: &Path) -> Option<Arc<Dir>> {
        let dirs = self.dirs.lock().unwrap_or_else(|e| e.into_inner());
        dirs.get(rel).cloned()
    }

    /// What is at `rel`, not following a link at any step.
    pub fn existing(&self, rel: &Path) -> io::Result<Existing> {
        let (parent, name) = split(rel)?;
        let dir = self.dir(parent)?;
        existing_in(&dir, name)
    }

    /// Makes `rel` a real directory. Returns false when a link or file
    /// stands there and `replace` is false (nothing is changed then); with
    /// `replace` the link or file itself is removed first.
    pub fn make_dir(&self, rel: &Path, replace: bool) -> io::Result<bool> {
        let (parent, name) = split(rel)?;
        let dir = self.dir(parent)?;
        match existing_in(&dir, name)? {
            Existing::Dir => return Ok(true),
            Existing::Missing => {}
            _ if !replace => return Ok(false),
            _ => dir.remove_file_or_symlink(name)?,
        }
        match dir.create_dir(name) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if existing_in(&dir, name)? != Existing::Dir {
                    return Ok(false);
                }
            }
            r => r?,
        }
        Ok(true)
    }

    /// Creates the temporary file that becomes `rel`, with the Windows
    /// `attributes` of its entry (hidden, system; nothing elsewhere).
    pub fn create_temp(&self, rel: &Path, attributes: u32) -> io::Result<TempFile> {
        let (parent, name) = split(rel)?;
        let dir = self.dir(parent)?;
        self.temps.create(&dir, name, attributes)
    }

    /// Opens the file `rel` for reading, not following a link at any step
    /// (a file restored earlier, to read a shared chunk back: shared.rs).
    pub fn open_read(&self, rel: &Path) -> io::Result<std::fs::File> {
        let (parent, name) = split(rel)?;
        let mut options = OpenOptions::new();
        options.read(true).follow(FollowSymlinks::No);
        // A FIFO planted at the name must not block the open.
        #[cfg(unix)]
        cap_std::fs::OpenOptionsExt::custom_flags(
            &mut options,
            rustix::fs::OFlags::NONBLOCK.bits() as i32,
        );
        let file = self.dir(parent)?.open_with(name, &options)?.into_std();
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok(file)
    }

    /// Gives a written temporary file the entry's mtime, then its owner and
    /// mode (all on the open handle), then its final name `rel`.
    pub fn finish(&self, temp: TempFile, rel: &Path, entry: &Entry) -> io::Result<()> {
        let r = (|| {
            temp.file.set_modified(entry.mtime.into())?;
            fsmeta::set_owner_and_mode(&temp.file, entry.mode, entry.uid, entry.gid)?;
            let (_, name) = split(rel)?;
            temp.dir.rename(&temp.name, &temp.dir, name)
        })();
        match r {
            Ok(()) => {
                self.temps.finished_one(&temp);
                Ok(())
            }
            Err(e) => {
                self.temps.discard(temp);
                Err(e)
            }
        }
    }

    /// Creates the symlink `rel` pointing to `to` (replacing a link or
    /// file there when `replace`), with its owner (as root) and mtime set
    /// without following it.
    pub fn symlink(&self, rel: &Path, to: &[u8], entry: &Entry, replace: bool) -> io::Result<()> {
        let (parent, name) = split(rel)?;
        let dir = self.dir(parent)?;
        if replace {
            match existing_in(&dir, name)? {
                Existing::Missing => {}
                Existing::Dir => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        "a folder stands where the snapshot has a link",
                    ))
                }
                _ => dir.remove_file_or_symlink(name)?,
            }
        }
        fsmeta::symlink_in(&dir, to, name)?;
        fsmeta::set_symlink_owner(&dir, name, entry.uid, entry.gid)?;
        let _ = dir.set_symlink_times(
            name,
            None,
            Some(cap_fs_ext::SystemTimeSpec::Absolute(
                cap_std::time::SystemTime::from_std(entry.mtime.into()),
            )),
        );
        Ok(())
    }

    /// Gives the directory `rel` the entry's owner, mode and mtime, on a
    /// handle opened for reading without following links (the handles
    /// cap-std walks with are `O_PATH`, on which fchmod fails).
    pub fn set_dir_meta(&self, rel: &Path, entry: &Entry) -> io::Result<()> {
        let (parent, name) = split(rel)?;
        let mut options = OpenOptions::new();
        options
            .read(true)
            .follow(FollowSymlinks::No)
            .maybe_dir(true);
        // Windows sets a folder's time through its handle.
        #[cfg(windows)]
        cap_std::fs::OpenOptionsExt::access_mode(&mut options, fsmeta::DIR_ACCESS);
        let dir = self.dir(parent)?.open_with(name, &options)?.into_std();
        if !dir.metadata()?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "no longer a folder",
            ));
        }
        fsmeta::set_dir_meta(dir, entry.mode, entry.uid, entry.gid, entry.mtime)
    }
}

/// The parent and name of a relative path of checked names.
fn split(rel: &Path) -> io::Result<(&Path, &OsStr)> {
    match (rel.parent(), rel.file_name()) {
        (Some(p), Some(n)) => Ok((p, n)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} is not a name below the target", rel.display()),
        )),
    }
}

fn existing_in(dir: &Dir, name: &OsStr) -> io::Result<Existing> {
    let md = match dir.symlink_metadata(name) {
        Ok(md) => md,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Existing::Missing),
        Err(e) => return Err(e),
    };
    let ft = md.file_type();
    Ok(if ft.is_symlink() {
        Existing::Symlink(fsmeta::path_bytes(&dir.read_link_contents(name)?))
    } else if ft.is_dir() {
        Existing::Dir
    } else if ft.is_file() {
        Existing::File {
            size: md.len(),
            mtime: md
                .modified()
                .map(|t| Timestamp::from(t.into_std()))
                .unwrap_or_default(),
        }
    } else {
        Existing::Other
    })
}
