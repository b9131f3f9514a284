//! [`DaemonLock`]: one daemon per data directory, and no unsafe admin
//! command beside it.
//!
//! `DATA/daemon.lock` carries an exclusive advisory lock (`flock`), held by
//! `coffre-server run` for its whole life and, for their whole run, by the
//! admin commands that must not run beside the daemon: `rebuild-catalog`
//! (the daemon would keep writing to the catalogue it replaces, and a backup
//! made meanwhile would be lost at its restart) and `move-packs` (packs
//! sealed meanwhile would stay behind on the old storage). Whoever comes
//! second is refused at once with [`Error::DataDirInUse`], which names the
//! holder and its process id (written in the file), and changes nothing.
//!
//! The lock lives as long as the open file: the kernel releases it when the
//! process ends, even killed, so a crash never leaves a stale lock (the file
//! itself stays; it is never deleted, as deleting a lock file races with its
//! next holder). Commands that work beside the daemon (`gc`, `verify`,
//! `prune`, `usage`, `subscriber`, `device`) do not take it: they go through
//! SQLite transactions and `gc.lock` (`lib.rs`, "Concurrency").

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::durable;
use crate::error::{Error, Result};
use crate::layout::DAEMON_LOCK_FILE;

/// The holder's name of the daemon (`coffre-server run`).
pub const DAEMON: &str = "the daemon";

/// The daemon lock of a data directory, held until dropped.
#[derive(Debug)]
pub struct DaemonLock {
    file: File,
    path: PathBuf,
}

impl DaemonLock {
    /// Takes the lock of `data_dir` for `holder` ([`DAEMON`], or a
    /// command's name such as "`coffre-server rebuild-catalog`"), or fails at
    /// once with [`Error::DataDirInUse`] if another process holds it. The
    /// file (created owner-only) then says who holds it.
    pub fn acquire(data_dir: &Path, holder: &str) -> Result<DaemonLock> {
        let path = data_dir.join(DAEMON_LOCK_FILE);
        let mut file = durable::private_options()
            .read(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let mut lines = text.lines();
                let pid = lines.next().and_then(|l| l.trim().parse().ok());
                let holder = lines
                    .next()
                    .map(str::to_string)
                    .unwrap_or_else(|| DAEMON.to_string());
                return Err(Error::DataDirInUse {
                    data: data_dir.to_path_buf(),
                    daemon: holder == DAEMON,
                    holder,
                    pid,
                });
            }
            Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
        }
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}\n{holder}", std::process::id()))
            .map_err(|e| Error::io(&path, e))?;
        Ok(DaemonLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DaemonLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_second_holder_is_refused_with_the_first_ones_name_and_pid() {
        let dir = tempfile::tempdir().unwrap();
        let lock = DaemonLock::acquire(dir.path(), DAEMON).unwrap();
        let e = DaemonLock::acquire(dir.path(), "`coffre-server rebuild-catalog`").unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&format!("the daemon (pid {})", std::process::id()))
                && text.contains("stop it first")
                && text.contains(&dir.path().display().to_string()),
            "{text}"
        );
        drop(lock);
        let lock = DaemonLock::acquire(dir.path(), "`coffre-server rebuild-catalog`").unwrap();
        let e = DaemonLock::acquire(dir.path(), DAEMON).unwrap_err();
        assert!(e.to_string().contains("rebuild-catalog` (pid"), "{e}");
        drop(lock);
    }
}
