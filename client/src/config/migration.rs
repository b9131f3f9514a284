//! The old layout, moved into the state folder on first load.
//!
//! Before issue 18 an installation kept its state beside its config file:
//! `DIR/credentials`, `DIR/credentials.lock`, `DIR/cache/`,
//! `DIR/last-run.json`, `DIR/backup.log`, whatever the config file's name.
//! So two config files in one folder shared one identity. Now each config
//! file has its own state folder (`layout.rs`); [`migrate`] moves the old
//! files there, without a new enrolment, into the one config they belong to:
//!
//! - the credentials name their device and subscriber in their first line
//!   (`credentials_file.rs`): they go only to the config naming the same
//!   (the server fingerprint is then the config's); a config naming other
//!   ones leaves them where they are, and its first command that needs
//!   credentials says whose they are ([`super::Installation::credentials`]);
//! - a file without that line (from before issue 17) goes only to the
//!   default `config.toml`.
//!
//! Crash safety, under the old layout's `credentials.lock` (an older coffre
//! rolling the secret, or a second command migrating, waits):
//!
//! 1. `cache/`, `last-run.json`, `backup.log` are renamed into the state
//!    folder (each rename is atomic; one already moved is skipped);
//! 2. the credentials are written into the state folder, with the fields
//!    that record their owner (temporary file, fsync, rename);
//! 3. the old `credentials` is removed.
//!
//! Interrupted before 2, the next run finds the old file and no new one and
//! goes on from 1; interrupted between 2 and 3, it finds both and, the old
//! file being this config's, only removes it. The old `credentials.lock`
//! stays (an empty file: removing a lock file races with its waiters).

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use super::credentials_file::{self, Owner};
use super::Installation;

/// The old layout's files and folders moved with the credentials, under
/// the same names.
const MOVED: &[&str] = &["cache", "last-run.json", "backup.log"];

/// The old layout's credentials file, beside the config file.
pub const OLD_CREDENTIALS: &str = "credentials";
/// The old layout's lock file.
const OLD_LOCK: &str = "credentials.lock";

/// Moves the old layout's state of `inst`, if any and if it is `inst`'s,
/// into its state folder (see the module doc). Returns true if it moved
/// the credentials.
pub fn migrate(inst: &Installation) -> Result<bool> {
    let dir = inst.config_dir();
    let old = dir.join(OLD_CREDENTIALS);
    if fs::symlink_metadata(&old).is_err() {
        return Ok(false);
    }
    let _one_at_a_time = lock_file(&dir.join(OLD_LOCK))?;
    let text = match fs::read_to_string(&old) {
        Ok(t) => t,
        // Moved meanwhile by another command, or unreadable: the
        // credentials of the state folder, or their absence, speak.
        Err(_) => return Ok(false),
    };
    let ours = Owner::of(&text)
        .ok()
        .is_some_and(|o| o.mismatch(&inst.config, &inst.config_path).is_none());
    if !ours {
        return Ok(false);
    }
    let new = inst.credentials_path();
    let moved = if fs::symlink_metadata(&new).is_err() {
        let state = inst.state_dir();
        for name in MOVED {
            let (from, to) = (dir.join(name), state.join(name));
            if fs::symlink_metadata(&from).is_ok() && fs::symlink_metadata(&to).is_err() {
                fs::rename(&from, &to).with_context(|| {
                    format!("moving {} into {}", from.display(), state.display())
                })?;
            }
        }
        let creds = credentials_file::parse(&text, &old)?;
        super::write_credentials(inst, &creds)?;
        sync_dir(state);
        true
    } else {
        false
    };
    fs::remove_file(&old).with_context(|| {
        format!(
            "removing {} (its credentials are now in {}): remove it by hand",
            old.display(),
            new.display()
        )
    })?;
    sync_dir(dir);
    Ok(moved)
}

/// Waits for, then holds, the lock file at `path` until the returned file
/// is dropped (the credentials lock, old or new layout).
pub(super) fn lock_file(path: &Path) -> Result<fs::File> {
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    file.lock()
        .with_context(|| format!("locking {}", path.display()))?;
    Ok(file)
}

/// Makes a folder's renames durable (best effort: not every platform can
/// open a folder).
fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}
