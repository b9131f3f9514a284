//! Repack: rewrites packs that are mostly unreferenced, keeping only the
//! blobs some chunk row still points to.
//!
//! The live blobs of one or more old packs are copied (each checked against
//! its checksum) into a new pack, which is made durable like any other
//! (`PackWriter`); then one transaction points the chunk rows at it, removes
//! the old pack rows and corrects `used_bytes`; only then are the old files
//! removed. A crash leaves either the old packs in use (and the new file an
//! orphan) or the new one in use (and old files as orphans): orphans are
//! removed by a later collection. A reader that looked a chunk up in an old
//! pack just before the switch finds the file gone and looks again
//! (`Store::chunk`).

use crate::catalog::PackRow;
use crate::error::{Error, Result};
use crate::pack::PackWriter;
use crate::store::Store;

use super::GcReport;

/// A new pack is sealed at this many blobs even below 32 MiB, so that the
/// writer's index, and the transaction that moves the rows, stay small
/// however small the chunks (memory bounded whatever the store holds).
const MAX_ENTRIES: usize = 16_384;

impl Store {
    /// Repacks `packs` of subscriber `sub`, counting in `report` the packs
    /// rewritten and written. A pack that does not match its catalogue rows
    /// is left as it is and named in `report.damaged_packs`.
    pub(crate) fn repack(&self, sub: i64, packs: &[PackRow], report: &mut GcReport) -> Result<()> {
        let mut writer = PackWriter::new(
            self.pending.clone(),
            self.packs.clone(),
            sub,
            self.pending.new_token(),
        );
        let mut included: Vec<PackRow> = Vec::new();
        // The copy number of each blob appended, in the writer's order: an
        // id may have several copies (catalog/trust.rs), each row moves alone.
        let mut copies: Vec<u32> = Vec::new();
        for pack in packs {
            let entries = self.catalog.pack_chunks(sub, pack.id)?;
            let bytes = self.packs.read(sub, &pack.name)?.ok_or_else(|| {
                Error::Corrupt(format!(
                    "pack {} is missing (it is in the catalogue): run `coffre-server verify`",
                    self.packs.describe(sub, &pack.name)
                ))
            })?;
            let mut blobs = Vec::with_capacity(entries.len());
            let mut damaged = false;
            for (e, copy) in &entries {
                let range = e.offset as usize..e.offset as usize + e.length as usize;
                match bytes.get(range) {
                    Some(blob) if blake3::hash(blob).as_bytes() == &e.checksum => {
                        blobs.push((e.id, *copy, blob));
                    }
                    _ => damaged = true,
                }
            }
            if damaged {
                report.damaged_packs.push(pack.name.clone());
                continue;
            }
            for (id, copy, blob) in blobs {
                if let Err(e) = writer.append(&id, blob) {
                    writer.discard();
                    return Err(e);
                }
                copies.push(copy);
            }
            included.push(pack.clone());
            if writer.is_full() || writer.len() >= MAX_ENTRIES {
                report.packs_written += self.switch_packs(sub, &mut writer, &copies, &included)?;
                report.packs_repacked += included.len() as u64;
                included.clear();
                copies.clear();
            }
        }
        if !included.is_empty() {
            report.packs_written += self.switch_packs(sub, &mut writer, &copies, &included)?;
            report.packs_repacked += included.len() as u64;
        }
        Ok(())
    }

    /// Seals the new pack, records it in place of `old`, removes the old
    /// files. Returns the number of packs written (0 or 1).
    fn switch_packs(
        &self,
        sub: i64,
        writer: &mut PackWriter,
        copies: &[u32],
        old: &[PackRow],
    ) -> Result<u64> {
        let mut wrote = 0;
        if writer.is_empty() {
            for p in old {
                self.catalog.delete_empty_pack(sub, p)?;
            }
        } else {
            let sealed = match writer.finish() {
                Ok(s) => s,
                Err(e) => {
                    writer.discard();
                    return Err(e);
                }
            };
            if let Err(e) = self.catalog.replace_packs(
                sub,
                (&sealed.name, sealed.size),
                writer.entries(),
                copies,
                old,
                self.now(),
            ) {
                let _ = self.packs.remove(sub, &[sealed.name.as_str()]);
                writer.discard();
                return Err(e);
            }
            writer.clear_sealed();
            wrote = 1;
        }
        self.remove_packs(sub, old)?;
        Ok(wrote)
    }

    /// Removes the packs whose rows are gone (files, or objects).
    pub(crate) fn remove_packs(&self, sub: i64, packs: &[PackRow]) -> Result<()> {
        let names: Vec<&str> = packs.iter().map(|p| p.name.as_str()).collect();
        self.packs.remove(sub, &names)
    }
}
