//! The outcome of the last backup (`last-run.json`, shown by `coffre status`
//! and `coffre schedule status`) and the log that scheduled runs append to.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use coffre_core::Timestamp;
use serde::{Deserialize, Serialize};

use crate::config::{atomic_write, Installation};

/// One backup's outcome.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunRecord {
    /// When it started (seconds since the epoch).
    pub started: i64,
    /// When it ended.
    pub finished: i64,
    /// "ok", "partial" (saved with problems: a path missing, files
    /// unreadable, a hook failed) or "failed".
    pub result: String,
    /// Run by the scheduler.
    pub scheduled: bool,
    /// The snapshot made, if any (hex).
    pub snapshot: Option<String>,
    /// The summary line, or the error.
    pub message: String,
    /// One line per problem ("path missing: /media/usb (left out)",
    /// "cannot read ...", "before hook db failed: ..."); empty when there
    /// was none, and in records written before issue 18.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl RunRecord {
    /// Reads the last record, if any.
    pub fn load(inst: &Installation) -> Option<RunRecord> {
        let text = std::fs::read_to_string(inst.last_run_path()).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes it as the last record.
    pub fn save(&self, inst: &Installation) -> Result<()> {
        atomic_write(
            &inst.last_run_path(),
            serde_json::to_string_pretty(self)?.as_bytes(),
            false,
        )
    }
}

/// Appends a timestamped line to the scheduled-runs log.
pub fn log(path: &Path, line: &str) {
    let stamp = crate::display::rfc3339(Timestamp::now());
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{stamp} {line}");
    }
}
