//! `coffre-server prune [SUBSCRIBER] [--dry-run]`: retention, now.

use std::path::Path;

use anyhow::Result;

use super::{open_store, when};
use crate::maintenance::timed;
use crate::retention;

/// Runs `coffre-server prune`.
pub fn run(data: &Path, only: Option<&str>, dry_run: bool, json: bool) -> Result<()> {
    let store = open_store(data)?;
    let decisions = retention::plan(&store, only)?;
    let removed = if dry_run {
        0
    } else {
        timed(&store, "prune", || retention::apply(&store, &decisions))?
    };
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "dry_run": dry_run,
                "removed": removed,
                "snapshots": decisions,
            }))?
        );
        return Ok(());
    }
    if dry_run {
        outln!(
            "{:<20} {:<16} {:<10} {:<22} {:<22} {:<7} kept by",
            "subscriber",
            "device",
            "snapshot",
            "received",
            "PC's time",
            "action"
        );
        for d in &decisions {
            outln!(
                "{:<20} {:<16} {:<10} {:<22} {:<22} {:<7} {}",
                d.subscriber,
                d.device,
                &d.id[..8],
                when(Some(d.received)),
                when(Some(d.pc_time)),
                if d.keep { "keep" } else { "remove" },
                d.rules.join(", ")
            );
        }
        outln!(
            "retention goes by when this server received each snapshot; the PC's time is shown only"
        );
        let to_remove = decisions.iter().filter(|d| !d.keep).count();
        outln!(
            "dry run: {to_remove} of {} would be removed; nothing was changed",
            coffre_core::units::count(decisions.len(), "snapshot")
        );
    } else {
        outln!(
            "removed {removed} of {}; the space only they used is freed by the next garbage collection (`coffre-server gc`, or the daemon's nightly run)",
            coffre_core::units::count(decisions.len(), "snapshot")
        );
    }
    Ok(())
}
