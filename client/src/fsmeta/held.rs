//! Files another program holds: what the operating system's answer means,
//! and a read that is known to be whole.
//!
//! **Held.** On Windows a program may open a file with a share mode that
//! lets nobody else read it (Outlook's `.pst`, an accounting database:
//! `CreateFileW` with share mode 0): opening it fails with
//! `ERROR_SHARING_VIOLATION` (32). Or it opens the file shared and locks
//! byte ranges (`LockFileEx`): reading a locked range fails with
//! `ERROR_LOCK_VIOLATION` (33). Both mean "another program holds it, now";
//! the backup sets such a file aside and tries again (`backup::set_aside`).
//! On Unix no lock stops a reader (advisory locks, `flock` and `fcntl`,
//! bind only the programs that ask; Linux dropped mandatory locking in
//! 5.15), so [`held`] never says so there.
//!
//! **Steady.** [`open_steady`] opens a file for a reader that, at the end
//! of the file, checks that its size and modification time are those it had
//! when opened, read on the same handle: if not, another program wrote it
//! meanwhile, and the reader fails ([`CHANGED`]) rather than hand over a
//! file that mixes two versions. The backup reads files it had to set aside
//! this way (their owner may be writing again as soon as it lets go).

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::time::SystemTime;

/// Why a file is held by another program.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Open with a share mode that lets nobody else read it (Windows error 32).
    Open,
    /// Part of it locked (Windows error 33).
    Locked,
}

impl std::fmt::Display for Held {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Held::Open => "another program has it open and lets no one else read it",
            Held::Locked => "another program has locked part of it",
        })
    }
}

/// Windows' `ERROR_SHARING_VIOLATION`.
const ERROR_SHARING_VIOLATION: i32 = 32;
/// Windows' `ERROR_LOCK_VIOLATION`.
const ERROR_LOCK_VIOLATION: i32 = 33;

/// What a Windows error code says, whatever the platform compiled for (so
/// that it is tested everywhere).
fn from_windows_code(code: i32) -> Option<Held> {
    match code {
        ERROR_SHARING_VIOLATION => Some(Held::Open),
        ERROR_LOCK_VIOLATION => Some(Held::Locked),
        _ => None,
    }
}

/// Whether `error`, from opening or reading a file, means that another
/// program holds it (Windows only: see the module's doc).
pub fn held(error: &io::Error) -> Option<Held> {
    if cfg!(windows) {
        error.raw_os_error().and_then(from_windows_code)
    } else {
        None
    }
}

/// What [`Steady`] fails with when the file changed while it was read.
pub const CHANGED: &str = "it changed while it was read (another program wrote it meanwhile)";

/// Whether `error` is [`Steady`]'s "changed while it was read".
pub fn changed(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::Other && error.to_string() == CHANGED
}

/// A file's size and modification time, read on its handle.
fn stamp(file: &File) -> io::Result<(u64, Option<SystemTime>)> {
    let md = file.metadata()?;
    Ok((md.len(), md.modified().ok()))
}

/// A file read to its end, whose size and modification time are checked at
/// the end against those at the start.
#[derive(Debug)]
pub struct Steady {
    file: File,
    at_open: (u64, Option<SystemTime>),
}

/// Opens `path` for a [`Steady`] read.
pub fn open_steady(path: &Path) -> io::Result<Steady> {
    let file = File::open(path)?;
    let at_open = stamp(&file)?;
    Ok(Steady { file, at_open })
}

impl Read for Steady {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        if n == 0 && !buf.is_empty() && stamp(&self.file)? != self.at_open {
            return Err(io::Error::other(CHANGED));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn windows_sharing_and_lock_violations_mean_held_and_nothing_else_does() {
        assert_eq!(from_windows_code(32), Some(Held::Open));
        assert_eq!(from_windows_code(33), Some(Held::Locked));
        // Access denied (5) is a permission, not another program.
        assert_eq!(from_windows_code(5), None);
        assert_eq!(from_windows_code(2), None);
        // On this platform's own errors: 32 and 33 are EPIPE and EDOM on
        // Linux, never "held".
        let e = io::Error::from_raw_os_error(32);
        assert_eq!(
            held(&e),
            if cfg!(windows) {
                Some(Held::Open)
            } else {
                None
            }
        );
        assert_eq!(held(&io::Error::other("x")), None);
    }

    #[test]
    fn a_steady_read_of_a_quiet_file_is_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        std::fs::write(&path, b"one version").unwrap();
        let mut got = Vec::new();
        open_steady(&path).unwrap().read_to_end(&mut got).unwrap();
        assert_eq!(got, b"one version");
    }

    #[test]
    fn a_file_written_while_it_is_read_fails_the_steady_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        std::fs::write(&path, vec![7u8; 100_000]).unwrap();
        let mut reader = open_steady(&path).unwrap();
        let mut head = [0u8; 1000];
        reader.read_exact(&mut head).unwrap();
        // Another program appends meanwhile.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"more")
            .unwrap();
        let mut rest = Vec::new();
        let err = reader.read_to_end(&mut rest).unwrap_err();
        assert!(changed(&err), "{err}");
        assert!(!changed(&io::Error::other("other")));
    }
}
