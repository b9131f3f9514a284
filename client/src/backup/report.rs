//! How a backup went: [`Report`], what `coffre backup` prints (one line, or
//! JSON with `--json`) and records in `last-run.json`.

use std::path::PathBuf;
use std::time::Duration;

use coffre_core::manifest::Statistics;
use coffre_core::SnapshotId;

/// How a backup went.
#[derive(Debug, Clone)]
pub(crate) struct Report {
    /// The new snapshot.
    pub snapshot: SnapshotId,
    /// Counters recorded in the snapshot.
    pub stats: Statistics,
    /// Files in the snapshot.
    pub files: u64,
    /// Their total size.
    pub logical_bytes: u64,
    /// Blobs uploaded.
    pub blobs_sent: u64,
    /// Blobs uploaded that the server already had (sent twice: should stay 0).
    pub blobs_duplicate: u64,
    /// Other devices' copies fetched and checked before skipping them
    /// (dedup trust, issue 17).
    pub chunks_verified: u64,
    /// Bytes fetched for that check.
    pub bytes_verified: u64,
    /// Paths that could not be read.
    pub errors: Vec<(PathBuf, String)>,
    /// Special files skipped.
    pub special: Vec<PathBuf>,
    /// Items excluded.
    pub excluded: u64,
    /// Wall time.
    pub duration: Duration,
}

impl Report {
    /// The one-line summary.
    pub(crate) fn summary(&self) -> String {
        use coffre_core::units::format_size;
        let s = &self.stats;
        let mut line = format!(
            "snapshot {} saved: {} files ({} new, {} changed, {} unchanged), {} in total, read {}, sent {}, {:.1} s",
            self.snapshot.short(),
            self.files,
            s.files_new,
            s.files_changed,
            s.files_unchanged,
            format_size(self.logical_bytes),
            format_size(s.bytes_read),
            format_size(s.bytes_sent),
            self.duration.as_secs_f64()
        );
        if !self.errors.is_empty() {
            line.push_str(&format!(
                "; {} could not be read (listed above, recorded in the snapshot)",
                self.errors.len()
            ));
        }
        line
    }
}
