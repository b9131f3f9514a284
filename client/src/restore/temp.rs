//! Temporary files of a restore: a file is written under an unpredictable
//! name beside its final one (`.NAME.<12 hex digits>.coffre-restore`),
//! created exclusively (`O_CREAT|O_EXCL`: a file or symlink planted at that
//! name is never opened, let alone written through), then renamed into place
//! relative to the same directory handle.
//!
//! Every live temporary file is in a [`Registry`], so an interrupted restore
//! (Ctrl-C, SIGTERM) removes them all before it exits; once the registry is
//! closed no new one is created. A restore killed outright (SIGKILL, a power
//! cut) can leave one: the next restore removes the stale ones it meets
//! ([`is_temp_name`]) in the folders it restores into.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cap_fs_ext::{FollowSymlinks, OpenOptionsFollowExt};
use cap_std::fs::{Dir, OpenOptions};

/// The end of every temporary name.
pub const SUFFIX: &str = ".coffre-restore";
/// Hex digits of the random part.
const RANDOM_HEX: usize = 12;
/// At most this much of the final name is kept in the temporary one, so
/// that it stays within the 255 bytes a name may take.
const KEPT: usize = 200;

/// A fresh temporary name for the file `name`.
pub fn temp_name(name: &OsStr) -> OsString {
    let mut random = [0u8; RANDOM_HEX / 2];
    // Without the OS's randomness the name is still exclusive (create_new),
    // only predictable: a planted name then fails that one file.
    let _ = getrandom::fill(&mut random);
    let mut out = OsString::from(".");
    out.push(shortened(name));
    out.push(format!(".{}{SUFFIX}", hex::encode(random)));
    out
}

#[cfg(unix)]
fn shortened(name: &OsStr) -> OsString {
    use std::os::unix::ffi::OsStrExt;
    let b = name.as_bytes();
    OsStr::from_bytes(&b[..b.len().min(KEPT)]).to_os_string()
}

#[cfg(not(unix))]
fn shortened(name: &OsStr) -> OsString {
    // Names are UTF-16 on Windows: 255 units; a char is at most 2.
    name.to_string_lossy()
        .chars()
        .take(KEPT / 2)
        .collect::<String>()
        .into()
}

/// True for a name [`temp_name`] makes (what a killed restore leaves).
pub fn is_temp_name(name: &OsStr) -> bool {
    let name = name.to_string_lossy();
    let Some(rest) = name.strip_suffix(SUFFIX) else {
        return false;
    };
    let Some(dot) = rest.len().checked_sub(RANDOM_HEX + 1) else {
        return false;
    };
    let (head, random) = rest.split_at(dot);
    head.starts_with('.')
        && head.len() > 1
        && random.starts_with('.')
        && random[1..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Removes the stale temporary files directly in `dir` (unlinking never
/// follows a link); returns how many.
pub fn remove_stale(dir: &Dir) -> io::Result<u64> {
    let mut removed = 0;
    for entry in dir.entries()? {
        let name = entry?.file_name();
        if is_temp_name(&name) && dir.remove_file(&name).is_ok() {
            removed += 1;
        }
    }
    Ok(removed)
}

/// A temporary file being written.
#[derive(Debug)]
pub struct TempFile {
    /// The open file.
    pub file: std::fs::File,
    /// Its temporary name in `dir`.
    pub name: OsString,
    /// The directory it is in.
    pub dir: Arc<Dir>,
    key: u64,
}

#[derive(Debug, Default)]
struct Live {
    closed: bool,
    next: u64,
    files: HashMap<u64, (Arc<Dir>, OsString)>,
}

/// The live temporary files of one restore.
#[derive(Debug, Default)]
pub struct Registry {
    live: Mutex<Live>,
    finished: AtomicU64,
}

impl Registry {
    /// Creates a temporary file for `final_name` in `dir`, exclusively and
    /// readable by its owner only until it is finished. Refused once the
    /// restore is interrupted. `attributes`: the Windows attributes the
    /// file is created with (`fsmeta::create_with_attributes`).
    pub fn create(
        &self,
        dir: &Arc<Dir>,
        final_name: &OsStr,
        attributes: u32,
    ) -> io::Result<TempFile> {
        let mut options = OpenOptions::new();
        // Readable too: a chunk repeated within the file is read back from
        // its first place (download.rs).
        options
            .read(true)
            .write(true)
            .create_new(true)
            .follow(FollowSymlinks::No);
        #[cfg(unix)]
        cap_std::fs::OpenOptionsExt::mode(&mut options, 0o600);
        crate::fsmeta::create_with_attributes(&mut options, attributes);
        // Created under the lock: an interruption either sees the file in
        // the registry or comes before it exists.
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        if live.closed {
            return Err(io::Error::new(
                io::ErrorKind::Interrupted,
                "the restore was interrupted",
            ));
        }
        let name = temp_name(final_name);
        let file = dir.open_with(&name, &options)?.into_std();
        live.next += 1;
        let key = live.next;
        live.files.insert(key, (dir.clone(), name.clone()));
        Ok(TempFile {
            file,
            name,
            dir: dir.clone(),
            key,
        })
    }

    /// The file is renamed into place or removed: no longer live.
    pub fn done(&self, temp: &TempFile) {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.files.remove(&temp.key);
    }

    /// The file is in place under its final name.
    pub fn finished_one(&self, temp: &TempFile) {
        self.done(temp);
        self.finished.fetch_add(1, Ordering::Relaxed);
    }

    /// How many files were put in place.
    pub fn finished(&self) -> u64 {
        self.finished.load(Ordering::Relaxed)
    }

    /// Removes what was written of a file that failed.
    pub fn discard(&self, temp: TempFile) {
        let TempFile {
            file, name, dir, ..
        } = &temp;
        let _ = file;
        let _ = dir.remove_file(name);
        self.done(&temp);
    }

    /// Closes the registry (no temporary file is created after this) and
    /// removes every live temporary file; returns how many.
    pub fn remove_all(&self) -> usize {
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.closed = true;
        let files = std::mem::take(&mut live.files);
        for (dir, name) in files.values() {
            let _ = dir.remove_file(name);
        }
        files.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_recognised_and_unpredictable() {
        let a = temp_name(OsStr::new("budget.ods"));
        let b = temp_name(OsStr::new("budget.ods"));
        assert_ne!(a, b);
        let s = a.to_string_lossy();
        assert!(s.starts_with(".budget.ods.") && s.ends_with(SUFFIX), "{s}");
        assert!(is_temp_name(&a));
        for other in [
            "budget.ods",
            ".budget.ods.coffre-restore",
            ".0123456789ab.coffre-restore",
            ".x.0123456789AB.coffre-restore",
            ".x.0123456789ab.coffre-restore.ods",
        ] {
            assert!(!is_temp_name(OsStr::new(other)), "{other}");
        }
        let long = "n".repeat(255);
        assert!(temp_name(OsStr::new(&long)).len() <= 255);
    }

    #[test]
    fn an_interrupted_registry_removes_its_files_and_makes_no_more() {
        let tmp = tempfile::tempdir().unwrap();
        let dir =
            Arc::new(Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap());
        let reg = Registry::default();
        let t = reg.create(&dir, OsStr::new("a"), 0).unwrap();
        assert!(tmp.path().join(&t.name).exists());
        assert_eq!(reg.remove_all(), 1);
        assert!(!tmp.path().join(&t.name).exists());
        assert!(reg.create(&dir, OsStr::new("b"), 0).is_err());
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    }
}
