//! Durable writes: the one place where the store puts bytes on disk.
//!
//! [`write_atomic`] follows the classic sequence (as proxmox-backup's
//! `insert_chunk` does):
//!
//! 1. write the data to a new temporary file in the destination's directory,
//!    named `.NAME.tmp-PID-COUNTER` (unique per process and call, created with
//!    `O_EXCL` so two writers never share one);
//! 2. fsync the temporary file, so its contents are on disk;
//! 3. rename it over the destination, which atomically replaces any old file;
//! 4. fsync the directory, so the rename itself is on disk.
//!
//! Guarantees:
//!
//! - **All or nothing.** If the process or the machine dies at any instant, the
//!   destination holds either its previous contents (or does not exist) or the
//!   new contents in full, never a mix or a truncated file.
//! - **Durable on success.** When `write_atomic` returns `Ok`, the new contents
//!   and the directory entry survive a power cut. Callers may acknowledge the
//!   write to a client only after that (invariant 2 of `DESIGN.md`).
//! - **No debris on error.** If any step before the rename fails, the temporary
//!   file is removed before the error is returned. Only a crash can leave one
//!   behind; such files match `.*.tmp-*` and are safe to delete while no writer
//!   is running.
//! - **Concurrent writers** to the same destination each write their own
//!   temporary file; the last rename wins and the destination is always one
//!   writer's contents in full.
//! - **Errors name the path** they are about, so an operator can act on them.
//!
//! A failed fsync is reported and never retried: after a failed fsync the
//! kernel may have dropped the dirty pages, so a retry could falsely succeed.
//!
//! On non-Unix systems directories cannot be opened for fsync; [`sync_dir`] is
//! then a no-op and step 4 relies on the file system journaling the rename.
//!
//! Files written in several steps (packs) use the same sequence split in two:
//! [`create_new`] opens the temporary file (`O_EXCL`), the caller writes it,
//! then [`persist`] does steps 2 to 4 (and removes the temporary file if one of
//! them fails). [`create_dir_all`] and [`remove_file`] make directory
//! creations and removals durable the same way.
//!
//! **Owner-only from creation.** On Unix every file this module creates is
//! opened with mode [`FILE_MODE`] (0600) and every folder made with
//! [`DIR_MODE`] (0700), whatever the process's umask: the catalogue, the
//! wrapped key files, the packs and manifests are never readable by another
//! local user, not even for an instant (issue 17; a umask can only narrow
//! these modes, never widen them). `permissions` tightens data directories
//! made before this rule.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
#[cfg(unix)]
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The mode of every file the store creates: read and write by its owner
/// (the server's user) only.
pub const FILE_MODE: u32 = 0o600;
/// The mode of every folder the store creates: its owner only.
pub const DIR_MODE: u32 = 0o700;

/// Options that create a file with [`FILE_MODE`] (on Unix) for writing.
pub fn private_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    options.write(true);
    #[cfg(unix)]
    options.mode(FILE_MODE);
    options
}

/// Creates the folder `dir` (its parent must exist) with [`DIR_MODE`].
fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    #[cfg(unix)]
    builder.mode(DIR_MODE);
    builder.create(dir)
}

/// Distinguishes the temporary files of one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// How many temporary names to try before giving up (only a stale file from a
/// crashed process with the same pid can collide).
const TEMP_ATTEMPTS: u32 = 16;

/// Writes `data` to `path` crash-safely: temporary file, fsync, rename over
/// `path`, fsync of the directory. See the module documentation for the
/// guarantees.
///
/// The parent directory must exist. Errors keep the [`io::ErrorKind`] of the
/// failing call (so a full disk is still `StorageFull`) and name the path.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let Some(name) = path.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "writing {}: the path has no file name; give the path of a file",
                path.display()
            ),
        ));
    };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };

    let (tmp, mut file) = create_temp(dir, name, path)?;
    if let Err(e) = file.write_all(data) {
        drop(file);
        // Best effort: the original error is the one that matters.
        let _ = fs::remove_file(&tmp);
        return Err(context(e, "writing", &tmp, path));
    }
    persist(file, &tmp, path)
}

/// Makes an already written temporary file durable under `path`: fsync of the
/// file, rename of `tmp` over `path`, fsync of the directory (steps 2 to 4 of
/// the module documentation).
///
/// `tmp` must be in the same directory as `path` (a rename is atomic only
/// within one file system). If the fsync or the rename fails, `tmp` is removed
/// before the error is returned. Errors keep their [`io::ErrorKind`] and name
/// `path`.
pub fn persist(file: File, tmp: &Path, path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let synced = file
        .sync_all()
        .map_err(|e| context(e, "syncing", tmp, path));
    drop(file);
    if let Err(e) = synced.and_then(|()| {
        fs::rename(tmp, path).map_err(|e| {
            let what = format!("renaming temporary file {} into place", tmp.display());
            io::Error::new(e.kind(), format!("writing {}: {what}: {e}", path.display()))
        })
    }) {
        // Best effort: the original error is the one that matters.
        let _ = fs::remove_file(tmp);
        return Err(e);
    }
    sync_dir(dir).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "writing {}: the file was renamed into place but may not survive a crash: {e}",
                path.display()
            ),
        )
    })
}

/// Creates `path` for writing, owner-only ([`FILE_MODE`]); fails if it
/// exists (`O_EXCL`), so two writers never share a file. The error names the
/// path.
pub fn create_new(path: &Path) -> io::Result<File> {
    private_options()
        .create_new(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("creating {}: {e}", path.display())))
}

/// Creates `dir` and its missing parents, owner-only ([`DIR_MODE`]), and
/// fsyncs the parent of every directory it created, so the new directories
/// survive a crash. Does nothing (one `stat`) when `dir` exists.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all(parent)?;
    }
    match create_private_dir(dir) {
        Ok(()) => {}
        // Created by a concurrent caller meanwhile: it syncs the parent too.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => return Ok(()),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("creating directory {}: {e}", dir.display()),
            ))
        }
    }
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

/// The entries of `dir`, none if it does not exist (a subscriber with no
/// pack or manifest yet). Errors name the folder.
pub(crate) fn entries(dir: &Path) -> crate::error::Result<Vec<fs::DirEntry>> {
    let io_err = |e| crate::error::Error::io(dir, e);
    match fs::read_dir(dir) {
        Ok(list) => list.map(|e| e.map_err(io_err)).collect(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io_err(e)),
    }
}

/// The files of `dir` with their metadata, none if `dir` does not exist.
///
/// A file that disappears between the listing and its `stat` is left out:
/// a writer renamed its temporary file into place, or a removal ran, while
/// the folder was read (GC lists a subscriber's folders while its PCs
/// commit). Any other error names the file.
pub(crate) fn files_with_metadata(
    dir: &Path,
) -> crate::error::Result<Vec<(fs::DirEntry, fs::Metadata)>> {
    let mut out = Vec::new();
    for entry in entries(dir)? {
        match entry.metadata() {
            Ok(meta) if meta.is_file() => out.push((entry, meta)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(crate::error::Error::io(&entry.path(), e)),
        }
    }
    Ok(out)
}

/// Removes the file `path` and fsyncs its directory, so the removal survives a
/// crash. Returns `false` if there was no such file.
pub fn remove_file(path: &Path) -> io::Result<bool> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("removing {}: {e}", path.display()),
            ))
        }
    }
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => sync_dir(dir).map(|()| true),
        None => Ok(true),
    }
}

/// Flushes `dir`'s entries (creations, renames, deletions) to disk.
///
/// Call it after creating or removing files in `dir` by other means than
/// [`write_atomic`], which already does. A no-op on non-Unix systems.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir).and_then(|d| d.sync_all()).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("syncing directory {}: {e}", dir.display()),
            )
        })
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Creates a new, unique temporary file next to the destination.
fn create_temp(dir: &Path, name: &std::ffi::OsStr, path: &Path) -> io::Result<(PathBuf, File)> {
    let pid = std::process::id();
    let mut attempt = 0;
    loop {
        let counter = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut tmp_name = std::ffi::OsString::from(".");
        tmp_name.push(name);
        tmp_name.push(format!(".tmp-{pid}-{counter}"));
        let tmp = dir.join(tmp_name);
        match private_options().create_new(true).open(&tmp) {
            Ok(file) => return Ok((tmp, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempt + 1 < TEMP_ATTEMPTS => {
                attempt += 1;
            }
            Err(e) => return Err(context(e, "creating", &tmp, path)),
        }
    }
}

fn context(e: io::Error, doing: &str, tmp: &Path, path: &Path) -> io::Error {
    io::Error::new(
        e.kind(),
        format!(
            "writing {}: {doing} temporary file {}: {e}",
            path.display(),
            tmp.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Every entry of `dir`, sorted.
    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// GC lists a subscriber's folders while its PCs commit: a temporary
    /// file renamed into place between the listing and its `stat` is not an
    /// error (the CI failure of stop 31 was this race).
    #[test]
    fn listing_a_folder_while_files_are_renamed_into_it_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = std::thread::spawn({
            let (dir, done) = (dir.path().to_path_buf(), Arc::clone(&done));
            move || {
                for n in 0..300 {
                    write_atomic(&dir.join(format!("m{}", n % 8)), b"manifest").unwrap();
                    remove_file(&dir.join(format!("m{}", (n + 4) % 8))).unwrap();
                }
                done.store(true, Ordering::Relaxed);
            }
        });
        let (mut listings, mut seen) = (0, 0);
        while !done.load(Ordering::Relaxed) {
            for (entry, meta) in files_with_metadata(dir.path()).unwrap() {
                assert!(meta.is_file(), "{:?}", entry.path());
                seen += 1;
            }
            listings += 1;
        }
        writer.join().unwrap();
        assert!(
            listings > 0 && seen > 0,
            "{listings} listings, {seen} files seen"
        );
    }

    #[test]
    fn writes_and_replaces_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pack-0001");
        write_atomic(&path, b"first version").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first version");
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        write_atomic(&path, b"").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"");
    }

    #[test]
    fn no_temp_file_left_after_success() {
        let dir = tempfile::tempdir().unwrap();
        for i in 0..5 {
            write_atomic(&dir.path().join(format!("f{i}")), &[i; 1000]).unwrap();
        }
        write_atomic(&dir.path().join("f0"), b"again").unwrap();
        assert_eq!(entries(dir.path()), ["f0", "f1", "f2", "f3", "f4"]);
    }

    #[test]
    fn missing_directory_fails_naming_the_path_and_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-dir").join("catalog.sqlite");
        let err = write_atomic(&path, b"data").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn failed_rename_removes_the_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        // A non-empty directory cannot be replaced by a file.
        let path = dir.path().join("occupied");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"x").unwrap();
        let err = write_atomic(&path, b"data").unwrap_err();
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        assert_eq!(entries(dir.path()), ["occupied"]);
        assert_eq!(entries(&path), ["inside"]);
    }

    #[test]
    fn path_without_file_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("..");
        let err = write_atomic(&path, b"data").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("no file name"), "{err}");
    }

    #[test]
    fn concurrent_writers_leave_one_whole_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = Arc::new(dir.path().join("manifest"));
        let versions: Vec<Vec<u8>> = (0..8u8).map(|i| vec![i; 64 * 1024]).collect();
        let handles: Vec<_> = versions
            .iter()
            .cloned()
            .map(|data| {
                let path = Arc::clone(&path);
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        write_atomic(&path, &data).unwrap();
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let content = fs::read(&*path).unwrap();
        assert!(versions.contains(&content));
        assert_eq!(entries(dir.path()), ["manifest"]);
    }

    #[test]
    fn persist_renames_a_written_temp_file_into_place() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join(".a.pack.tmp");
        let path = dir.path().join("a.pack");
        let mut file = create_new(&tmp).unwrap();
        file.write_all(b"pack bytes").unwrap();
        persist(file, &tmp, &path).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"pack bytes");
        assert_eq!(entries(dir.path()), ["a.pack"]);
        // create_new never reuses an existing name.
        let err = create_new(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
    }

    #[test]
    fn failed_persist_removes_the_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join(".b.tmp");
        let occupied = dir.path().join("b");
        fs::create_dir(&occupied).unwrap();
        fs::write(occupied.join("inside"), b"x").unwrap();
        let file = create_new(&tmp).unwrap();
        persist(file, &tmp, &occupied).unwrap_err();
        assert_eq!(entries(dir.path()), ["b"]);
    }

    #[test]
    fn create_dir_all_and_remove_file() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("subscribers").join("7").join("packs");
        create_dir_all(&deep).unwrap();
        create_dir_all(&deep).unwrap();
        assert!(deep.is_dir());
        let f = deep.join("f");
        write_atomic(&f, b"x").unwrap();
        assert!(remove_file(&f).unwrap());
        assert!(!remove_file(&f).unwrap());
        assert!(entries(&deep).is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn every_file_and_folder_is_created_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("subscribers").join("7");
        create_dir_all(&deep).unwrap();
        write_atomic(&deep.join("account.json"), b"{}").unwrap();
        drop(create_new(&deep.join(".p.pack.tmp")).unwrap());
        assert_eq!(mode(&dir.path().join("subscribers")), DIR_MODE);
        assert_eq!(mode(&deep), DIR_MODE);
        assert_eq!(mode(&deep.join("account.json")), FILE_MODE);
        assert_eq!(mode(&deep.join(".p.pack.tmp")), FILE_MODE);
    }

    #[test]
    fn sync_dir_syncs_an_existing_directory() {
        let dir = tempfile::tempdir().unwrap();
        sync_dir(dir.path()).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn sync_dir_error_names_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gone");
        let err = sync_dir(&missing).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(
            err.to_string().contains(&missing.display().to_string()),
            "{err}"
        );
    }
}
