//! File metadata and names across platforms: the one place that knows how a
//! Unix or Windows file maps to a tree entry, and back.

use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::path::Path;

use coffre_core::Timestamp;

/// What tells the files cache that a file has not changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    /// Length in bytes.
    pub size: u64,
    /// Last modification.
    pub mtime: Timestamp,
    /// Last status change (Unix; the modification time elsewhere).
    pub ctime: Timestamp,
    /// Inode number (0 where there is none).
    pub ino: u64,
}

/// The metadata a tree entry keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Meta {
    /// `st_mode` (type and permission bits; synthesised on Windows).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Files: length; others 0.
    pub size: u64,
    /// Modification time.
    pub mtime: Timestamp,
    /// For the files cache.
    pub stamp: Stamp,
}

#[cfg(unix)]
fn ts(secs: i64, nanos: i64) -> Timestamp {
    Timestamp {
        secs,
        nanos: nanos.clamp(0, 999_999_999) as u32,
    }
}

/// Reads the metadata of a file (not following symlinks: pass `lstat` results).
#[cfg(unix)]
pub fn meta(md: &Metadata) -> Meta {
    use std::os::unix::fs::MetadataExt;
    let mtime = ts(md.mtime(), md.mtime_nsec());
    let size = if md.is_file() { md.len() } else { 0 };
    Meta {
        mode: md.mode(),
        uid: md.uid(),
        gid: md.gid(),
        size,
        mtime,
        stamp: Stamp {
            size,
            mtime,
            ctime: ts(md.ctime(), md.ctime_nsec()),
            ino: md.ino(),
        },
    }
}

/// Reads the metadata of a file (not following symlinks: pass `lstat` results).
#[cfg(not(unix))]
pub fn meta(md: &Metadata) -> Meta {
    let mtime: Timestamp = md.modified().map(Timestamp::from).unwrap_or_default();
    let size = if md.is_file() { md.len() } else { 0 };
    let kind = if md.is_dir() {
        0o040000
    } else if md.file_type().is_symlink() {
        0o120000
    } else {
        0o100000
    };
    let perm = match (md.is_dir(), md.permissions().readonly()) {
        (true, _) => 0o755,
        (false, true) => 0o444,
        (false, false) => 0o644,
    };
    Meta {
        mode: kind | perm,
        uid: 0,
        gid: 0,
        size,
        mtime,
        stamp: Stamp {
            size,
            mtime,
            ctime: mtime,
            ino: 0,
        },
    }
}

/// A file name as the bytes a tree stores.
#[cfg(unix)]
pub fn name_bytes(name: &OsStr) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    name.as_bytes().to_vec()
}

/// A file name as the bytes a tree stores (UTF-8 on Windows).
#[cfg(not(unix))]
pub fn name_bytes(name: &OsStr) -> Vec<u8> {
    name.to_string_lossy().into_owned().into_bytes()
}

/// A tree's name bytes as a file name.
#[cfg(unix)]
pub fn os_name(bytes: &[u8]) -> OsString {
    use std::os::unix::ffi::OsStrExt;
    OsStr::from_bytes(bytes).to_os_string()
}

/// A tree's name bytes as a file name.
#[cfg(not(unix))]
pub fn os_name(bytes: &[u8]) -> OsString {
    String::from_utf8_lossy(bytes).into_owned().into()
}

/// A whole path as bytes (for the files cache and messages).
pub fn path_bytes(path: &Path) -> Vec<u8> {
    name_bytes(path.as_os_str())
}

/// Applies permission bits (and owners, when running as root) to a restored
/// file or directory.
#[cfg(unix)]
pub fn apply_owner_and_mode(
    path: &Path,
    mode: u32,
    uid: u32,
    gid: u32,
    symlink: bool,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if is_root() {
        std::os::unix::fs::lchown(path, Some(uid), Some(gid))?;
    }
    if !symlink {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))?;
    }
    Ok(())
}

/// Applies the read-only flag to a restored file (owners are not restored on Windows).
#[cfg(not(unix))]
pub fn apply_owner_and_mode(
    path: &Path,
    mode: u32,
    _uid: u32,
    _gid: u32,
    symlink: bool,
) -> std::io::Result<()> {
    if !symlink {
        let mut p = std::fs::metadata(path)?.permissions();
        p.set_readonly(mode & 0o200 == 0);
        std::fs::set_permissions(path, p)?;
    }
    Ok(())
}

/// True when this process runs as root (its effective user id is 0).
#[cfg(unix)]
pub fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    // The owner of a file we just created is our effective user id.
    static ROOT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ROOT.get_or_init(|| {
        tempfile::tempfile()
            .and_then(|f| f.metadata())
            .map(|m| m.uid() == 0)
            .unwrap_or(false)
    })
}

/// Nobody is root on Windows.
#[cfg(not(unix))]
pub fn is_root() -> bool {
    false
}

/// Creates a symbolic link.
#[cfg(unix)]
pub fn symlink(target: &[u8], link: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(os_name(target), link)
}

/// Creates a symbolic link (a file link on Windows, which needs the privilege).
#[cfg(windows)]
pub fn symlink(target: &[u8], link: &Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_file(os_name(target), link)
}

/// Symbolic links are not restored on this platform.
#[cfg(not(any(unix, windows)))]
pub fn symlink(_target: &[u8], _link: &Path) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "symbolic links are not supported here",
    ))
}

/// A symlink's target as bytes.
pub fn read_link(path: &Path) -> std::io::Result<Vec<u8>> {
    Ok(path_bytes(&std::fs::read_link(path)?))
}

/// Sets the modification time of a restored file or directory.
pub fn set_mtime(path: &Path, mtime: coffre_core::Timestamp, dir: bool) -> std::io::Result<()> {
    let time: std::time::SystemTime = mtime.into();
    if dir && cfg!(not(unix)) {
        // Opening a directory for this needs platform flags on Windows.
        return Ok(());
    }
    let f = if dir {
        std::fs::File::open(path)?
    } else {
        std::fs::File::options().write(true).open(path)?
    };
    f.set_modified(time)
}
