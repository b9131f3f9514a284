//! `coffre snapshots`: every snapshot of the structure (all its PCs), oldest
//! first; one whose manifest does not open is listed as damaged, with the
//! device that made it, and the others as usual.

use std::path::Path;

use anyhow::Result;
use serde_json::json;

use super::{header, rows};
use crate::cli::SnapshotsArgs;
use crate::session::Session;

/// `coffre snapshots`.
pub fn snapshots(config: &Path, args: &SnapshotsArgs) -> Result<()> {
    let session = Session::open(config)?;
    let list = session.snapshots()?;
    let rows = rows(&session, list, args.device.as_deref())?;
    session.close();
    if args.json {
        let v: Vec<_> = rows.iter().map(|r| r.json()).collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({ "snapshots": v }))?
        );
        return Ok(());
    }
    if rows.is_empty() {
        outln!("no snapshot yet: run `coffre backup`");
        return Ok(());
    }
    outln!("{}", header());
    for r in &rows {
        outln!("{}", r.line());
    }
    let damaged = rows.iter().filter(|r| r.manifest.is_err()).count();
    if damaged == 0 {
        outln!("{}", crate::display::count(rows.len() as u64, "snapshot"));
    } else {
        outln!(
            "{}, {damaged} of them damaged: their files cannot be read, the others' can; \
             tell your technician (an admin device can delete a damaged one with `coffre forget ID`)",
            crate::display::count(rows.len() as u64, "snapshot")
        );
    }
    Ok(())
}
