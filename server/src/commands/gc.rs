//! `coffre-server gc [SUBSCRIBER]`: garbage collection, now.

use std::path::Path;

use anyhow::{bail, Result};
use coffre_core::units::format_size;
use coffre_store::GcOptions;

use super::open_store;
use crate::maintenance::{collect_garbage, timed};

/// Runs `coffre-server gc`.
pub fn run(data: &Path, only: Option<&str>, opts: &GcOptions, json: bool) -> Result<()> {
    let store = open_store(data)?;
    let all = if opts.dry_run {
        collect_garbage(&store, only, opts)?
    } else {
        timed(&store, "gc", || collect_garbage(&store, only, opts))?
    };
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "dry_run": opts.dry_run,
                "subscribers": all,
            }))?
        );
    } else {
        outln!(
            "{:<20} {:>10} {:>10} {:>8} {:>8} {:>11} {:>11}  note",
            "subscriber",
            "chunks",
            "freed",
            "packs-",
            "repacked",
            "used before",
            "used after"
        );
        for c in &all {
            match (&c.report, &c.error) {
                (Some(r), _) => outln!(
                    "{:<20} {:>10} {:>10} {:>8} {:>8} {:>11} {:>11}  {}",
                    c.subscriber,
                    r.deleted_chunks,
                    format_size(r.used_before.saturating_sub(r.used_after)),
                    r.packs_deleted,
                    r.packs_repacked,
                    format_size(r.used_before),
                    format_size(r.used_after),
                    note(r)
                ),
                (None, e) => outln!(
                    "{:<20} failed: {}",
                    c.subscriber,
                    e.as_deref().unwrap_or_default()
                ),
            }
        }
        let freed: u64 = all
            .iter()
            .filter_map(|c| c.report.as_ref())
            .map(|r| r.used_before.saturating_sub(r.used_after))
            .sum();
        if opts.dry_run {
            outln!(
                "dry run: about {} would be freed; nothing was changed",
                format_size(freed)
            );
        } else {
            outln!("freed {}", format_size(freed));
        }
    }
    let failed: Vec<&str> = all
        .iter()
        .filter(|c| c.error.is_some())
        .map(|c| c.subscriber.as_str())
        .collect();
    if !failed.is_empty() {
        bail!(
            "garbage collection failed for {}: nothing of theirs was deleted by the failing step; \
             see the messages above",
            failed.join(", ")
        );
    }
    Ok(())
}

/// What a person should know about one subscriber's collection.
fn note(r: &coffre_store::GcReport) -> String {
    let mut notes = Vec::new();
    if let Some(why) = &r.postponed {
        notes.push(format!("postponed: {why}"));
    }
    if r.protected > 0 {
        notes.push(format!(
            "{} recent unreferenced chunks kept (grace period)",
            r.protected
        ));
    }
    if r.orphan_files > 0 {
        notes.push(format!(
            "{} removed",
            coffre_core::units::count(r.orphan_files, "leftover file")
        ));
    }
    if !r.damaged_packs.is_empty() {
        notes.push(format!(
            "damaged packs left alone, run `coffre-server verify`: {}",
            r.damaged_packs.join(", ")
        ));
    }
    notes.join("; ")
}
