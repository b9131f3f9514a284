//! Orphans: files under a subscriber's folder that the catalogue does not
//! know. A crash leaves them (a temporary pack or manifest, a pack renamed
//! but not recorded, an old pack whose repack switched but whose file was not
//! removed yet); they are not counted in `used_bytes`. They are removed once
//! older than the grace period, and never before an hour: a pack being sealed
//! right now is renamed a moment before its row is written.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use crate::durable;
use crate::error::{Error, Result};
use crate::store::Store;

/// Files younger than this are never orphans, whatever the grace period.
const MIN_AGE_SECS: i64 = 3600;

impl Store {
    /// Removes the orphan files of subscriber `sub` last modified before
    /// `cutoff` (Unix seconds); returns how many.
    pub(crate) fn remove_orphans(&self, sub: i64, cutoff: i64) -> Result<u64> {
        let cutoff = cutoff.min(self.now() - MIN_AGE_SECS);
        // List the directories first: a file written after the catalogue
        // is read would otherwise look like an orphan.
        let packs_dir = self.packs_dir(sub);
        let manifests_dir = self.manifests_dir(sub);
        // Temporary files are always local; sealed packs are where the
        // storage keeps them.
        let temp_files: Vec<String> = old_files(&packs_dir, cutoff)?
            .into_iter()
            .filter(|n| n.starts_with('.'))
            .collect();
        let stored: Vec<String> = self
            .packs
            .list(sub)?
            .into_iter()
            .filter(|p| p.modified < cutoff)
            .map(|p| p.name)
            .collect();
        let manifest_files = old_files(&manifests_dir, cutoff)?;
        let (packs, manifests) = self.catalog.known_files(sub)?;
        let packs: HashSet<String> = packs.into_iter().collect();
        let manifests: HashSet<String> = manifests.iter().map(|id| id.to_hex()).collect();
        let mut removed = 0;
        for name in temp_files {
            removed += remove(&packs_dir.join(&name))?;
        }
        let unknown: Vec<&str> = stored
            .iter()
            .filter(|name| !packs.contains(name.as_str()))
            .map(String::as_str)
            .collect();
        self.packs.remove(sub, &unknown)?;
        removed += unknown.len() as u64;
        for name in manifest_files {
            if !manifests.contains(&name) && (name.starts_with('.') || name.len() == 64) {
                removed += remove(&manifests_dir.join(&name))?;
            }
        }
        Ok(removed)
    }
}

/// Names of the files in `dir` last modified before `cutoff`.
fn old_files(dir: &Path, cutoff: i64) -> Result<Vec<String>> {
    let cutoff = UNIX_EPOCH + Duration::from_secs(cutoff.max(0) as u64);
    let mut names = Vec::new();
    for (entry, meta) in durable::files_with_metadata(dir)? {
        let modified = meta.modified().map_err(|e| Error::io(&entry.path(), e))?;
        if modified < cutoff {
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_string());
            }
        }
    }
    Ok(names)
}

fn remove(path: &Path) -> Result<u64> {
    Ok(u64::from(
        durable::remove_file(path).map_err(|e| Error::io(path, e))?,
    ))
}
