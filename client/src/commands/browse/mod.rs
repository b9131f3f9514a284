//! Browsing: `snapshots`, `ls`, `find`, `diff`, and `forget`, one file each;
//! here what they share: how an entry and a snapshot are shown, and the
//! snapshots with their manifests (opened, or found damaged: see
//! `session/damaged.rs`).

mod diff;
mod find;
mod forget;
mod ls;
mod snapshots;

pub use diff::diff;
pub use find::find;
pub use forget::forget;
pub use ls::ls;
pub use snapshots::snapshots;

use anyhow::Result;
use coffre_core::units::format_size;
use coffre_core::{ChunkId, Content, Entry, Timestamp};
use coffre_proto::SnapshotEntry;
use serde_json::json;

use crate::display::{local_time, mode_string, rfc3339};
use crate::session::{Opened, Session};
use crate::trees::display;

fn kind(e: &Entry) -> &'static str {
    match e.content {
        Content::File(_) => "file",
        Content::Dir(_) => "dir",
        Content::Symlink(_) => "symlink",
    }
}

/// The head of the `snapshots` table.
fn header() -> String {
    format!(
        "{:<10} {:<16} {:<16} {:>8} {:>10}  paths",
        "id", "time", "device", "files", "size"
    )
}

/// A snapshot of the server's list with its manifest, opened or damaged.
struct Row {
    entry: SnapshotEntry,
    manifest: Opened,
}

impl Row {
    fn id(&self) -> ChunkId {
        ChunkId::from_bytes(self.entry.id)
    }

    /// The time the PC wrote in the manifest, to the nanosecond; for a
    /// damaged one, its public part's, else the server's second.
    fn time(&self) -> Timestamp {
        match &self.manifest {
            Ok(m) => m.public.time,
            Err(d) => d.time.unwrap_or(Timestamp {
                secs: self.entry.time,
                nanos: 0,
            }),
        }
    }

    /// One line of the `snapshots` table (also what `forget` shows).
    fn line(&self) -> String {
        let s = &self.entry;
        let what = match &self.manifest {
            Ok(m) => {
                let paths: Vec<String> = m.private.paths.iter().map(|p| display(p)).collect();
                let warn = if m.private.errors.is_empty() {
                    String::new()
                } else {
                    format!("  ({} unreadable)", m.private.errors.len())
                };
                // A partial snapshot of a backup on its way (issue 19).
                let partial = if m.public.checkpoint {
                    "(checkpoint: a backup in progress) "
                } else {
                    ""
                };
                format!("{partial}{}{warn}", paths.join(", "))
            }
            Err(d) => d.summary(),
        };
        format!(
            "{:<10} {:<16} {:<16} {:>8} {:>10}  {what}",
            self.id().short(),
            local_time(s.time),
            s.device,
            s.file_count,
            format_size(s.logical_bytes),
        )
    }

    /// The row as JSON: `"damaged": true` and a `reason` when the manifest
    /// does not open (no paths, hostname or tags then: they are in the part
    /// that does not open).
    fn json(&self) -> serde_json::Value {
        let s = &self.entry;
        let mut v = json!({
            "id": self.id().to_hex(),
            "time": rfc3339(self.time()),
            "device": s.device,
            "files": s.file_count,
            "bytes": s.logical_bytes,
        });
        match &self.manifest {
            Ok(m) => {
                v["damaged"] = json!(false);
                v["checkpoint"] = json!(m.public.checkpoint);
                v["hostname"] = json!(m.private.hostname);
                v["paths"] = json!(m
                    .private
                    .paths
                    .iter()
                    .map(|p| display(p))
                    .collect::<Vec<_>>());
                v["tags"] = json!(m.private.tags);
                v["errors"] = json!(m.private.errors.len());
            }
            Err(d) => {
                v["damaged"] = json!(true);
                v["reason"] = json!(format!("{} - made by device {}", d.reason, d.device));
                v["reason_code"] = json!(d.reason.code());
            }
        }
        v
    }
}

/// The snapshots (of `device`, or all) with their manifests, oldest first
/// to the nanosecond (the server's list is to the second). A manifest that
/// does not open is a row too, marked damaged.
fn rows(session: &Session, list: Vec<SnapshotEntry>, device: Option<&str>) -> Result<Vec<Row>> {
    let list: Vec<SnapshotEntry> = list
        .into_iter()
        .filter(|s| device.is_none_or(|d| s.device == d))
        .collect();
    let opened = session.opened(&list)?;
    let mut rows: Vec<Row> = list
        .into_iter()
        .zip(opened)
        .map(|(entry, manifest)| Row { entry, manifest })
        .collect();
    rows.sort_by_key(|r| r.time());
    Ok(rows)
}

fn entry_json(path: &[u8], e: &Entry) -> serde_json::Value {
    json!({
        "path": display(path),
        "type": kind(e),
        "size": e.size,
        "mtime": rfc3339(e.mtime),
        "mode": format!("{:o}", e.mode & 0o7777),
    })
}

fn entry_line(path: &[u8], e: &Entry) -> String {
    let suffix = match &e.content {
        Content::Dir(_) => "/".to_string(),
        Content::Symlink(t) => format!(" -> {}", display(t)),
        Content::File(_) => String::new(),
    };
    format!(
        "{} {:>10}  {}  {}{suffix}",
        mode_string(e.mode),
        if matches!(e.content, Content::File(_)) {
            format_size(e.size)
        } else {
            String::new()
        },
        local_time(e.mtime.secs),
        display(path)
    )
}
