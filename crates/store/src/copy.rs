//! [`copy_packs`]: the sealed packs of a data directory copied from one
//! storage to another (`coffre-server move-packs`), each checked against its
//! own index first, so a damaged pack is never carried over. Resumable (a
//! pack already at the destination with the same size is skipped), never
//! deletes at the source. It sits above both [`storage`](crate::storage)
//! (where packs are) and [`pack`](crate::pack) (what a pack holds), which
//! therefore do not import each other.

use std::path::Path;

use crate::error::Result;
use crate::layout::SUBSCRIBERS_DIR;
use crate::storage::{PackStorage, Packs, RawPacks};

/// What [`copy_packs`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CopyReport {
    /// Packs copied.
    pub copied: u64,
    /// Packs already at the destination with the same size (an earlier,
    /// interrupted run copied them).
    pub already_there: u64,
    /// Bytes copied.
    pub bytes: u64,
}

/// Copies every sealed pack of the data directory `data_dir` from `from` to
/// `to` (e.g. from the local disk to a bucket), subscriber by subscriber,
/// each pack checked against its own index before it is written. Packs
/// already at the destination with the same size are skipped, so an
/// interrupted copy is resumed by running it again. Nothing is deleted at
/// the source. Run it with the daemon stopped (no pack may be sealed or
/// collected meanwhile), then point the configuration at `to`.
pub fn copy_packs(data_dir: &Path, from: &PackStorage, to: &PackStorage) -> Result<CopyReport> {
    let (src, dst) = (Packs::new(data_dir, from)?, Packs::new(data_dir, to)?);
    dst.check()?;
    let subscribers = data_dir.join(SUBSCRIBERS_DIR);
    let entries = std::fs::read_dir(&subscribers).map_err(|e| crate::Error::io(&subscribers, e))?;
    let mut ids: Vec<i64> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    ids.sort_unstable();
    let raw = RawPacks(dst);
    let mut report = CopyReport::default();
    for sub in ids {
        let there: std::collections::HashMap<String, u64> = raw.list(sub)?.into_iter().collect();
        for pack in src.list(sub)? {
            if there.get(&pack.name) == Some(&pack.size) {
                report.already_there += 1;
                continue;
            }
            let bytes = src.read(sub, &pack.name)?.ok_or_else(|| {
                crate::Error::Corrupt(format!("pack {} vanished", src.describe(sub, &pack.name)))
            })?;
            // A pack describes itself: refuse to copy one that is damaged.
            crate::pack::parse_pack_index(&bytes).map_err(|e| {
                crate::Error::Corrupt(format!(
                    "{} not copied: {e} (run `coffre-server verify --repair` first)",
                    src.describe(sub, &pack.name)
                ))
            })?;
            raw.write(sub, &pack.name, &bytes)?;
            report.copied += 1;
            report.bytes += bytes.len() as u64;
        }
    }
    Ok(report)
}
