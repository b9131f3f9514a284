//! `coffre-server verify [SUBSCRIBER] [--repair] [--sample K/N]`.

use std::fmt;
use std::path::Path;

use anyhow::Result;
use coffre_core::units::format_size;
use coffre_store::{VerifyOptions, VerifyReport};

use super::{open_store, when};
use crate::maintenance::{timed, verify_all};

/// The error `verify` ends with when it found damage (exit status 3).
#[derive(Debug)]
pub struct DamageFound {
    /// Damaged chunks, manifests and pack indexes, and affected snapshots.
    pub problems: usize,
    /// Whether `--repair` quarantined them.
    pub repaired: bool,
}

impl fmt::Display for DamageFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.repaired {
            write!(
                f,
                "{} found and quarantined: the next backups of the devices named above \
                 send the missing data again; run verify again after them",
                coffre_core::units::count(self.problems, "problem")
            )
        } else {
            write!(
                f,
                "{} found: run `coffre-server verify --repair` so that the next backups \
                 send the damaged data again (and check the disk)",
                coffre_core::units::count(self.problems, "problem")
            )
        }
    }
}

impl std::error::Error for DamageFound {}

/// Runs `coffre-server verify`.
pub fn run(data: &Path, only: Option<&str>, opts: &VerifyOptions, json: bool) -> Result<()> {
    let store = open_store(data)?;
    // Damage makes the recorded run a failure, as the nightly one.
    timed(&store, "verify", || {
        let reports = verify_all(&store, only, opts)?;
        if json {
            outln!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({ "subscribers": reports }))?
            );
        } else {
            for r in &reports {
                print(r);
            }
        }
        let problems: usize = reports.iter().map(problems).sum();
        if problems > 0 {
            return Err(DamageFound {
                problems,
                repaired: opts.repair,
            }
            .into());
        }
        Ok(())
    })
}

/// Damaged things and affected snapshots in one report.
pub fn problems(r: &VerifyReport) -> usize {
    r.damaged.len() + r.damaged_indexes.len() + r.damaged_manifests.len() + r.affected.len()
}

fn print(r: &VerifyReport) {
    outln!(
        "{}: {} ({}), {}, {} checked in {:.1} s: {}",
        r.subscriber,
        coffre_core::units::count(r.packs, "pack"),
        format_size(r.bytes),
        coffre_core::units::count(r.blobs, "blob"),
        coffre_core::units::count(r.manifests, "manifest"),
        r.seconds,
        if r.is_clean() { "ok" } else { "DAMAGE FOUND" }
    );
    for d in &r.damaged {
        outln!(
            "  damaged chunk {} in pack {}: {}",
            &d.chunk[..16],
            d.pack,
            d.problem
        );
    }
    for i in &r.damaged_indexes {
        outln!("  damaged pack index: {i}");
    }
    for m in &r.damaged_manifests {
        outln!("  damaged manifest: {m}");
    }
    for a in &r.affected {
        outln!(
            "  affects snapshot {} of {} ({}): {} damaged, {} missing chunks",
            &a.snapshot[..10],
            a.device,
            when(Some(a.time)),
            a.damaged_chunks,
            a.missing_chunks
        );
    }
    for d in &r.disputes {
        outln!("  warning: {d}");
    }
    if r.quarantined > 0 {
        outln!(
            "  quarantined {}, rewrote {}",
            coffre_core::units::count(r.quarantined, "chunk"),
            coffre_core::units::count(r.packs_rewritten, "pack")
        );
    }
}
