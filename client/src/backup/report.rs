//! How a backup went: [`Report`], what `coffre backup` prints (one line, or
//! JSON with `--json`) and records in `last-run.json`. Its counts read in
//! correct English ("1 file", "2 files": `display::count`).

use std::path::PathBuf;
use std::time::Duration;

use coffre_core::manifest::Statistics;
use coffre_core::SnapshotId;

use crate::display::count;
use crate::hooks::Failure;

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
    /// Files another program held through the end of the run, with what the
    /// snapshot keeps of them (`set_aside`): recorded as problems.
    pub held: Vec<(PathBuf, String)>,
    /// Paths to back up that did not exist (left out, recorded).
    pub missing: Vec<PathBuf>,
    /// Before hooks that failed (recorded).
    pub hooks_failed: Vec<Failure>,
    /// Special files skipped.
    pub special: Vec<PathBuf>,
    /// Items excluded.
    pub excluded: u64,
    /// Checkpoints committed on the way (a long backup, issue 19).
    pub checkpoints: u32,
    /// Wall time.
    pub duration: Duration,
    /// Times the connection was lost and came back during the run.
    pub outages: u64,
    /// The average upload rate, from the first byte sent to the last
    /// (bytes per second; `None` if too little was sent to say).
    pub upload_rate: Option<u64>,
}

impl Report {
    /// The problems recorded in the snapshot: paths missing, paths that
    /// could not be read, files held by another program, before hooks that
    /// failed.
    pub(crate) fn problems(&self) -> u64 {
        (self.missing.len() + self.errors.len() + self.held.len() + self.hooks_failed.len()) as u64
    }

    /// The problems in a few words: "1 path missing: /media/usb; 2 files or
    /// folders unreadable; 1 hook failed: database" (empty without any).
    pub(crate) fn problems_summary(&self) -> String {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            let n = self.missing.len() as u64;
            parts.push(format!(
                "{} missing: {}",
                count(n, "path"),
                list(self.missing.iter().map(|p| p.display().to_string()))
            ));
        }
        if !self.errors.is_empty() {
            parts.push(format!(
                "{} unreadable",
                crate::display::count_with(
                    self.errors.len() as u64,
                    "file or folder",
                    "files or folders"
                )
            ));
        }
        if !self.held.is_empty() {
            parts.push(format!(
                "{} held by another program: {}",
                count(self.held.len() as u64, "file"),
                list(self.held.iter().map(|(p, _)| p.display().to_string()))
            ));
        }
        if !self.hooks_failed.is_empty() {
            parts.push(format!(
                "{} failed: {}",
                count(self.hooks_failed.len() as u64, "hook"),
                list(self.hooks_failed.iter().map(|f| f.name.clone()))
            ));
        }
        parts.join("; ")
    }

    /// One line per problem, for the log: "path missing: /media/usb",
    /// "cannot read /x: permission denied", "C:\\x.pst: held by another
    /// program ...", "before hook db failed: ...".
    pub(crate) fn problem_lines(&self) -> Vec<String> {
        let missing = self
            .missing
            .iter()
            .map(|p| format!("path missing: {} (left out)", p.display()));
        let errors = self
            .errors
            .iter()
            .map(|(p, why)| format!("cannot read {}: {why}", p.display()));
        let held = self
            .held
            .iter()
            .map(|(p, why)| format!("{}: {why}", p.display()));
        let hooks = self
            .hooks_failed
            .iter()
            .map(|f| format!("before hook {} failed: {}", f.name, f.why));
        missing.chain(errors).chain(held).chain(hooks).collect()
    }

    /// The one-line summary: "snapshot 1a2b3c4d saved: 12 files (1 new, 1
    /// changed, 10 unchanged, 2 deleted), ...".
    pub(crate) fn summary(&self) -> String {
        use coffre_core::units::format_size;
        let s = &self.stats;
        let mut line = format!(
            "snapshot {} saved: {} ({} new, {} changed, {} unchanged, {} deleted), {} in total, read {}, sent {}{}, {:.1} s",
            self.snapshot.short(),
            count(self.files, "file"),
            s.files_new,
            s.files_changed,
            s.files_unchanged,
            s.files_deleted,
            format_size(self.logical_bytes),
            format_size(s.bytes_read),
            format_size(s.bytes_sent),
            self.upload_rate
                .map(|r| format!(" at {}", coffre_core::units::format_rate(r)))
                .unwrap_or_default(),
            self.duration.as_secs_f64()
        );
        if self.checkpoints > 0 {
            line.push_str(&format!(
                " ({} committed on the way; the server's nightly maintenance replaces {} by this snapshot)",
                count(u64::from(self.checkpoints), "checkpoint"),
                if self.checkpoints == 1 { "it" } else { "them" }
            ));
        }
        if self.outages > 0 {
            line.push_str(&format!(
                "; the link dropped {}, the run went on",
                crate::display::count_with(self.outages, "time", "times")
            ));
        }
        if self.problems() > 0 {
            line.push_str(&format!(
                "; saved with problems: {} (recorded in the snapshot)",
                self.problems_summary()
            ));
        }
        line
    }
}

/// At most three items, then "and N more".
fn list(items: impl Iterator<Item = String>) -> String {
    let items: Vec<String> = items.collect();
    let mut out = items.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
    if items.len() > 3 {
        out.push_str(&format!(" and {} more", items.len() - 3));
    }
    out
}
