//! `coffre-server rebuild-catalog [--replace]`: holds the daemon lock
//! (`coffre_store::DaemonLock`), so it is refused while the daemon runs and
//! a daemon started meanwhile is refused.

use std::path::Path;

use anyhow::{bail, Result};
use coffre_core::units::{count, count_with, format_size};

use crate::config::DataDir;

/// Runs `coffre-server rebuild-catalog`.
pub fn run(data: &Path, replace: bool, json: bool) -> Result<()> {
    // A data directory of coffre-server, even without its catalogue.
    let storage = DataDir::new(data).pack_storage()?;
    // Never beside the daemon: it would keep writing to the catalogue
    // replaced here, and what it wrote would be lost at its restart.
    let _lock = super::exclusive(data, "rebuild-catalog")?;
    super::tighten(data)?;
    let reports = coffre_store::rebuild_catalog_with(data, &storage, replace)?;
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "subscribers": reports }))?
        );
    } else {
        for r in &reports {
            print_report(r);
        }
        outln!("catalogue rebuilt: {}", count(reports.len(), "subscriber"));
    }
    let incomplete: usize = reports
        .iter()
        .map(|r| r.problems.len() + r.incomplete_snapshots.len())
        .sum();
    if incomplete > 0 {
        bail!(
            "the catalogue was rebuilt, but {} could not be: run \
             `coffre-server verify` and see docs/operator-guide.md (\"Damage and repair\")",
            count_with(incomplete, "thing", "things")
        );
    }
    Ok(())
}

/// One subscriber's lines of a rebuild (also a take-over's, which rebuilds
/// from the bucket): what came back, and what could not.
pub(super) fn print_report(r: &coffre_store::RebuildReport) {
    outln!(
        "{}: {}, {} ({}), {}, {} used{}",
        r.subscriber,
        count(r.devices, "device"),
        count(r.packs, "pack"),
        count(r.chunks, "chunk"),
        count(r.snapshots, "snapshot"),
        format_size(r.used_bytes),
        if r.key {
            ""
        } else {
            ", no key file (no device enrolled yet?)"
        }
    );
    for p in &r.problems {
        outln!("  {p}");
    }
    for (id, n) in &r.incomplete_snapshots {
        outln!("  snapshot {} misses {}", &id[..10], count(*n, "chunk"));
    }
}
