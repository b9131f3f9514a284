//! File metadata and names across platforms: the one place that knows how a
//! Unix or Windows file maps to a tree entry, and back.
//!
//! `held`: whether another program holds a file (Windows' share modes and
//! byte-range locks), and a read checked to be whole; `shadow`: Volume
//! Shadow Copies (Windows), behind this one module; [`private`]: the files
//! only their owner may read.

use std::ffi::{OsStr, OsString};
use std::fs::Metadata;
use std::path::Path;

use coffre_core::Timestamp;

mod held;
pub mod private;
pub mod shadow;

pub use held::{changed, held, open_steady, CHANGED};

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
    /// The Windows attributes a snapshot keeps ([`KEPT_ATTRIBUTES`]:
    /// hidden, system); 0 elsewhere.
    pub attributes: u32,
}

/// Whether this platform's file names ignore case (Windows; macOS by
/// default): two names of a snapshot's folder that differ only by case are
/// then kept apart on restore (`restore::names::Folder`).
pub const NAMES_IGNORE_CASE: bool = cfg!(any(windows, target_os = "macos"));

/// `FILE_ATTRIBUTE_HIDDEN`.
pub const HIDDEN: u32 = 0x2;
/// `FILE_ATTRIBUTE_SYSTEM`.
pub const SYSTEM: u32 = 0x4;
/// The Windows attributes a snapshot keeps (read-only is in the mode's
/// write bits; archive, compressed and the others are the file system's).
pub const KEPT_ATTRIBUTES: u32 = HIDDEN | SYSTEM;
/// The tree entry attribute that holds them: the name of the extended
/// attribute pair, its value one byte (docs/format.md).
pub const ATTRIBUTES_XATTR: &[u8] = b"windows.attributes";

/// The extended attributes a tree entry keeps for `meta`: the Windows
/// attributes when any is set.
pub fn xattrs(meta: &Meta) -> Vec<(Vec<u8>, Vec<u8>)> {
    let kept = meta.attributes & KEPT_ATTRIBUTES;
    if kept == 0 {
        return Vec::new();
    }
    vec![(ATTRIBUTES_XATTR.to_vec(), vec![kept as u8])]
}

/// The Windows attributes an entry's extended attributes hold (0: none).
pub fn attributes(xattrs: &[(Vec<u8>, Vec<u8>)]) -> u32 {
    xattrs
        .iter()
        .find(|(k, _)| k == ATTRIBUTES_XATTR)
        .and_then(|(_, v)| v.first())
        .map_or(0, |&b| u32::from(b) & KEPT_ATTRIBUTES)
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
        attributes: 0,
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
        attributes: windows_attributes(md),
    }
}

#[cfg(windows)]
fn windows_attributes(md: &Metadata) -> u32 {
    std::os::windows::fs::MetadataExt::file_attributes(md) & KEPT_ATTRIBUTES
}

#[cfg(not(any(unix, windows)))]
fn windows_attributes(_md: &Metadata) -> u32 {
    0
}

/// Asks, on Windows, that a file be created with the Windows attributes
/// its entry kept (hidden, system): set when it is created, as
/// `CreateFileW` takes them (no `unsafe` call is needed for it).
#[cfg(windows)]
pub fn create_with_attributes(options: &mut cap_std::fs::OpenOptions, kept: u32) {
    if kept & KEPT_ATTRIBUTES != 0 {
        cap_std::fs::OpenOptionsExt::attributes(options, kept & KEPT_ATTRIBUTES);
    }
}

/// Windows attributes exist only on Windows.
#[cfg(not(windows))]
pub fn create_with_attributes(_options: &mut cap_std::fs::OpenOptions, _kept: u32) {}

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

/// The snapshot name of a Windows path's prefix: the drive letter alone
/// (`C:\Users` is `/C/Users` in a snapshot, as restic names it); `None` for
/// a network share (`\\server\share`), which the PC that holds it backs up.
pub fn drive_name(prefix: std::path::Prefix<'_>) -> Option<Vec<u8>> {
    use std::path::Prefix;
    match prefix {
        Prefix::Disk(letter) | Prefix::VerbatimDisk(letter) => {
            Some(vec![letter.to_ascii_uppercase()])
        }
        _ => None,
    }
}

/// A whole path as bytes (for the files cache and messages).
pub fn path_bytes(path: &Path) -> Vec<u8> {
    name_bytes(path.as_os_str())
}

/// Gives a restored file (or directory) its owner, when running as root, and
/// its permission bits, on the open handle (fchown, fchmod: never through a
/// path that could be a link). The owner first: changing it clears set-id bits.
#[cfg(unix)]
pub fn set_owner_and_mode(
    file: &std::fs::File,
    mode: u32,
    uid: u32,
    gid: u32,
) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if is_root() {
        std::os::unix::fs::fchown(file, Some(uid), Some(gid))?;
    }
    file.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))
}

/// Gives a restored file its read-only flag, on the open handle (owners are
/// not restored on Windows).
#[cfg(not(unix))]
pub fn set_owner_and_mode(
    file: &std::fs::File,
    mode: u32,
    _uid: u32,
    _gid: u32,
) -> std::io::Result<()> {
    let mut p = file.metadata()?.permissions();
    p.set_readonly(mode & 0o200 == 0);
    file.set_permissions(p)
}

/// Gives a restored directory, opened without following links, its owner,
/// mode and mtime on that handle.
#[cfg(unix)]
pub fn set_dir_meta(
    dir: std::fs::File,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: Timestamp,
) -> std::io::Result<()> {
    set_owner_and_mode(&dir, mode, uid, gid)?;
    dir.set_modified(mtime.into())
}

/// Gives a restored directory, opened with write-attribute access
/// ([`DIR_ACCESS`]), its mtime. A folder's hidden or system attribute is
/// not set again: Windows offers no safe call for it on an existing folder
/// (docs/decisions.md, "Windows attributes").
#[cfg(windows)]
pub fn set_dir_meta(
    dir: std::fs::File,
    _mode: u32,
    _uid: u32,
    _gid: u32,
    mtime: Timestamp,
) -> std::io::Result<()> {
    dir.set_modified(mtime.into())
}

/// What a directory's handle must be opened for to set its times on
/// Windows (`GENERIC_READ | FILE_WRITE_ATTRIBUTES`).
#[cfg(windows)]
pub const DIR_ACCESS: u32 = windows_sys::Win32::Foundation::GENERIC_READ
    | windows_sys::Win32::Storage::FileSystem::FILE_WRITE_ATTRIBUTES;

/// Directories keep the metadata this platform gives them.
#[cfg(not(any(unix, windows)))]
pub fn set_dir_meta(
    _dir: std::fs::File,
    _mode: u32,
    _uid: u32,
    _gid: u32,
    _mtime: Timestamp,
) -> std::io::Result<()> {
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

/// Creates the symbolic link `name` in `dir` pointing to `target` (symlinkat:
/// the target is stored as given, never resolved).
#[cfg(unix)]
pub fn symlink_in(dir: &cap_std::fs::Dir, target: &[u8], name: &OsStr) -> std::io::Result<()> {
    dir.symlink_contents(os_name(target), name)
}

/// Creates the file link `name` in `dir` (it needs the privilege on Windows).
#[cfg(windows)]
pub fn symlink_in(dir: &cap_std::fs::Dir, target: &[u8], name: &OsStr) -> std::io::Result<()> {
    dir.symlink_file(os_name(target), name)
}

/// Symbolic links are not restored on this platform.
#[cfg(not(any(unix, windows)))]
pub fn symlink_in(_dir: &cap_std::fs::Dir, _target: &[u8], _name: &OsStr) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "symbolic links are not supported here",
    ))
}

/// Gives a restored symlink its owner when running as root (fchownat with
/// AT_SYMLINK_NOFOLLOW: the link itself, never what it points to).
#[cfg(unix)]
pub fn set_symlink_owner(
    dir: &cap_std::fs::Dir,
    name: &OsStr,
    uid: u32,
    gid: u32,
) -> std::io::Result<()> {
    use rustix::fs::{chownat, AtFlags, Gid, Uid};
    if !is_root() {
        return Ok(());
    }
    chownat(
        dir,
        name,
        Some(Uid::from_raw(uid)),
        Some(Gid::from_raw(gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(std::io::Error::from)
}

/// Owners are not restored on Windows.
#[cfg(not(unix))]
pub fn set_symlink_owner(
    _dir: &cap_std::fs::Dir,
    _name: &OsStr,
    _uid: u32,
    _gid: u32,
) -> std::io::Result<()> {
    Ok(())
}

/// A symlink's target as bytes.
pub fn read_link(path: &Path) -> std::io::Result<Vec<u8>> {
    Ok(path_bytes(&std::fs::read_link(path)?))
}
