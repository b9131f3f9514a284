//! The journal of confirmed uploads (`cache/uploaded`): the ids the server
//! confirmed during a backup that has not committed yet, so that a rerun
//! after an interruption neither seals nor sends them again.
//!
//! ```text
//! id (32) | id (32) | ...      appended as the server confirms them; no header
//! ```
//!
//! It is a hint, not a truth: the server is asked about every sealed blob
//! anyway (has-chunks), so a record lost in a crash costs one blob sealed
//! again, never a blob sent twice. Hence no fsync and no magic: a torn last
//! record (a crash mid-write) is dropped on reading, a missing or unreadable
//! file reads as empty. The file is removed once the snapshot is committed
//! (the files cache then knows every chunk), and when a backup runs without
//! its caches.
//!
//! Writes are blocking file writes: they run on the journal's own thread
//! (`bridge`), never on the async runtime.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;

use anyhow::{Context, Result};
use coffre_core::ChunkId;

/// The journal, open for appending.
#[derive(Debug)]
pub(super) struct Journal(File);

impl Journal {
    /// Opens (creates) the journal at `path` for appending; if the caches
    /// are not to be used, an earlier run's journal is removed first.
    pub(super) fn open(path: &Path, enabled: bool) -> Result<Journal> {
        if !enabled {
            clear(path);
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Journal(f))
    }

    /// Appends `ids` in one write (none: no write).
    pub(super) fn record<'a>(&mut self, ids: impl Iterator<Item = &'a ChunkId>) -> io::Result<()> {
        let mut buf = Vec::new();
        ids.for_each(|id| buf.extend_from_slice(id.as_bytes()));
        if !buf.is_empty() {
            self.0.write_all(&buf)?;
        }
        Ok(())
    }
}

/// Every whole id in the journal at `path`; empty if there is none.
pub(super) fn read(path: &Path) -> Vec<ChunkId> {
    let mut bytes = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_end(&mut bytes);
    }
    // A torn last record (a crash mid-write) is dropped.
    bytes
        .chunks_exact(32)
        .map(|b| ChunkId::from_bytes(b.try_into().unwrap()))
        .collect()
}

/// Removes the journal at `path` (absent: nothing to do).
pub(super) fn clear(path: &Path) {
    let _ = std::fs::remove_file(path);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ChunkId {
        ChunkId::from_bytes([n; 32])
    }

    #[test]
    fn records_are_appended_and_read_back_across_opens() {
        let tmp = tempfile::tempdir().unwrap();
        // The cache folder does not exist yet: opening makes it.
        let path = tmp.path().join("cache/uploaded");
        let mut j = Journal::open(&path, true).unwrap();
        j.record([id(1), id(2)].iter()).unwrap();
        j.record([id(3)].iter()).unwrap();
        drop(j);
        assert_eq!(read(&path), vec![id(1), id(2), id(3)]);
        assert_eq!(std::fs::read(&path).unwrap().len(), 3 * 32, "no header");
        // A rerun with its caches keeps what the interrupted run recorded.
        let mut j = Journal::open(&path, true).unwrap();
        j.record([id(4)].iter()).unwrap();
        assert_eq!(read(&path), vec![id(1), id(2), id(3), id(4)]);
    }

    #[test]
    fn recording_nothing_writes_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("uploaded");
        let mut j = Journal::open(&path, true).unwrap();
        j.record(std::iter::empty()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        assert!(read(&path).is_empty());
    }

    #[test]
    fn a_torn_last_record_is_dropped() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("uploaded");
        let mut bytes = [id(7), id(8)].map(|i| *i.as_bytes()).concat();
        bytes.extend_from_slice(&[9; 31]);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read(&path), vec![id(7), id(8)]);
        // A journal shorter than one record holds none.
        std::fs::write(&path, [9; 31]).unwrap();
        assert!(read(&path).is_empty());
    }

    #[test]
    fn a_missing_journal_reads_as_empty_and_clearing_it_is_harmless() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("uploaded");
        assert!(read(&path).is_empty());
        clear(&path);
        // A folder where the file should be cannot be read: empty too.
        std::fs::create_dir(&path).unwrap();
        assert!(read(&path).is_empty());
    }

    #[test]
    fn opening_without_caches_forgets_the_earlier_run() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("uploaded");
        Journal::open(&path, true)
            .unwrap()
            .record([id(1)].iter())
            .unwrap();
        let mut j = Journal::open(&path, false).unwrap();
        assert!(read(&path).is_empty());
        j.record([id(2)].iter()).unwrap();
        assert_eq!(read(&path), vec![id(2)]);
        clear(&path);
        assert!(!path.exists());
    }
}
