//! Verify: re-reads what a subscriber has stored and checks it without any
//! key, against the checksums kept at write time.
//!
//! - Every pack the catalogue knows: its file exists, its index (footer)
//!   parses and agrees with the catalogue's rows, and every blob a chunk row
//!   points to hashes (BLAKE3 of the ciphertext) to the checksum recorded
//!   when it was written.
//! - Every manifest (with a sample, the same part of them as of the packs,
//!   or all when the sampled packs show damage): present, of the recorded
//!   size, and hashing to its snapshot id. The snapshots that list a damaged chunk, or a chunk the
//!   server no longer has (quarantined and not sent again yet), are reported
//!   with their devices.
//!
//! With `repair`, damaged chunks are **quarantined**: their bytes (as read)
//! are copied to `DATA/quarantine/<subscriber id>/`, their catalogue rows
//! deleted (the GC epoch moves, so a commit in progress re-checks), and the
//! packs that held them rewritten without them (a missing pack loses its
//! row). From then on the server answers that it does not have those chunks:
//! the next backup of a device that still has the data sends them again (a
//! client that trusted its caches is told at commit and retries without
//! them), which heals every snapshot that lists them.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use coffre_core::ChunkId;
use serde::Serialize;

use crate::catalog::PackRow;
use crate::durable;
use crate::error::{Error, Result};
use crate::gc::mark::ManifestIds;
use crate::gc::GcReport;
use crate::layout::QUARANTINE_DIR;
use crate::pack::{parse_pack_index, PackEntry};
use crate::store::Store;
use crate::types::Dispute;

/// Per pack row id: the pack, and its damaged chunk rows with the bytes read
/// for them (none if they could not be read).
type DamagedByPack = HashMap<i64, (PackRow, Vec<(PackEntry, u32, Option<Vec<u8>>)>)>;

/// What to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Check only the packs for which `sample(pack row id)` is true (the
    /// nightly run checks a rotating part); `None`: every pack.
    pub sample: Option<(u64, u64)>,
    /// Quarantine what is damaged (see the module documentation).
    pub repair: bool,
}

/// A damaged chunk.
#[derive(Debug, Clone, Serialize)]
pub struct DamagedChunk {
    /// The chunk id, hex.
    pub chunk: String,
    /// The pack file that should hold it.
    pub pack: String,
    /// What is wrong.
    pub problem: String,
}

/// A snapshot that lists a damaged chunk or whose manifest is damaged.
#[derive(Debug, Clone, Serialize)]
pub struct AffectedSnapshot {
    /// The snapshot id, hex.
    pub snapshot: String,
    /// The device that made it.
    pub device: String,
    /// When (Unix seconds, the client's clock).
    pub time: i64,
    /// Damaged chunks it lists.
    pub damaged_chunks: u64,
    /// Chunks it lists that the server no longer has (quarantined by an
    /// earlier repair and not sent again yet).
    pub missing_chunks: u64,
}

/// What `verify` found for one subscriber.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// The subscriber.
    pub subscriber: String,
    /// Packs read.
    pub packs: u64,
    /// Blobs checked.
    pub blobs: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Manifests checked.
    pub manifests: u64,
    /// Damaged chunks.
    pub damaged: Vec<DamagedChunk>,
    /// Packs whose own index (footer) is damaged or disagrees with the
    /// catalogue, with the reason (their blobs may still be good: the
    /// catalogue is used to find them).
    pub damaged_indexes: Vec<String>,
    /// Damaged or missing manifests (snapshot id hex, reason).
    pub damaged_manifests: Vec<String>,
    /// The snapshots affected, with their devices.
    pub affected: Vec<AffectedSnapshot>,
    /// Devices whose copies another device did not accept (dedup trust,
    /// issue 17): both copies are kept, restores find the good one; the
    /// operator looks at the writer (it may be compromised). Not damage:
    /// [`VerifyReport::is_clean`] does not count them.
    pub disputes: Vec<Dispute>,
    /// Chunks quarantined by `repair`.
    pub quarantined: u64,
    /// Packs rewritten by `repair`.
    pub packs_rewritten: u64,
    /// How long it took.
    pub seconds: f64,
}

impl VerifyReport {
    /// Whether nothing is damaged.
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty()
            && self.damaged_indexes.is_empty()
            && self.damaged_manifests.is_empty()
            && self.affected.is_empty()
    }
}

/// Which part (of `every`) snapshot `id`'s manifest falls in: its id is a
/// hash, so its first bytes spread the manifests evenly.
fn manifest_part(id: &ChunkId, every: u64) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&id.as_bytes()[..8]);
    u64::from_le_bytes(first) % every
}

impl Store {
    /// Verifies the subscriber called `name` (see the module documentation).
    /// Damage is reported, not returned as an error; errors are for what
    /// stops the check itself (an unreadable directory, the catalogue).
    /// With `repair`, takes the GC lock ([`Error::GcRunning`] if a
    /// collection runs).
    pub fn verify(&self, name: &str, opts: &VerifyOptions) -> Result<VerifyReport> {
        let started = Instant::now();
        let _lock = if opts.repair {
            Some(self.gc_lock()?)
        } else {
            None
        };
        let sub = self.catalog.subscriber_id_of(name)?;
        let mut report = VerifyReport {
            subscriber: name.to_string(),
            ..VerifyReport::default()
        };
        let packs = self.catalog.gc_start(sub)?.packs;
        // Damaged chunk rows, by pack.
        let mut damaged_in: DamagedByPack = HashMap::new();
        let mut missing_packs = Vec::new();
        for pack in packs {
            if let Some((every, turn)) = opts.sample {
                if every > 0 && (pack.id as u64) % every != turn % every {
                    continue;
                }
            }
            let rows = self.catalog.pack_chunks(sub, pack.id)?;
            let Some(bytes) = self.packs.read(sub, &pack.name)? else {
                for (row, _) in &rows {
                    report.damaged.push(DamagedChunk {
                        chunk: row.id.to_hex(),
                        pack: pack.name.clone(),
                        problem: "the pack file is missing".into(),
                    });
                }
                missing_packs.push(pack);
                continue;
            };
            report.packs += 1;
            report.bytes += bytes.len() as u64;
            if bytes.len() as u64 != pack.size {
                report.damaged_indexes.push(format!(
                    "{}: {} bytes, the catalogue says {}",
                    pack.name,
                    bytes.len(),
                    pack.size
                ));
            } else {
                match parse_pack_index(&bytes) {
                    Ok(index) => {
                        // Keyed by offset: a pack may hold several copies
                        // of one id (catalog/trust.rs).
                        let index: HashMap<u64, &PackEntry> =
                            index.iter().map(|e| (e.offset, e)).collect();
                        if rows
                            .iter()
                            .any(|(r, _)| index.get(&r.offset).is_none_or(|e| **e != *r))
                        {
                            report.damaged_indexes.push(format!(
                                "{}: its index disagrees with the catalogue",
                                pack.name
                            ));
                        }
                    }
                    Err(e) => report.damaged_indexes.push(format!("{}: {e}", pack.name)),
                }
            }
            for (row, copy) in rows {
                report.blobs += 1;
                let range = row.offset as usize..row.offset as usize + row.length as usize;
                let problem = match bytes.get(range) {
                    None => Some((
                        "the pack is shorter than the catalogue says".to_string(),
                        None,
                    )),
                    Some(blob) if blake3::hash(blob).as_bytes() != &row.checksum => Some((
                        "the blob does not match the checksum taken when it was written"
                            .to_string(),
                        Some(blob.to_vec()),
                    )),
                    Some(_) => None,
                };
                if let Some((problem, blob)) = problem {
                    report.damaged.push(DamagedChunk {
                        chunk: row.id.to_hex(),
                        pack: pack.name.clone(),
                        problem,
                    });
                    damaged_in
                        .entry(pack.id)
                        .or_insert_with(|| (pack.clone(), Vec::new()))
                        .1
                        .push((row, copy, blob));
                }
            }
        }

        // Which snapshots list them; and the manifests themselves.
        let damaged: HashSet<[u8; 32]> = report
            .damaged
            .iter()
            .filter_map(|d| ChunkId::from_hex(&d.chunk))
            .map(|id| *id.as_bytes())
            .collect();
        // A sample checks the same part of the manifests as of the packs,
        // unless tonight's packs showed damage: then every manifest, so the
        // report names every snapshot it affects. Each manifest costs a
        // catalogue look-up per chunk it lists: checking all 30 of every
        // device's snapshots every night was the bulk of the nightly run at
        // 100,000 PCs (docs/performance.md, "National scale"); GC's mark
        // hashes every manifest every night anyway.
        let part = opts
            .sample
            .filter(|(every, _)| *every > 0 && damaged.is_empty());
        for snap in self.catalog.snapshots(sub)? {
            if let Some((every, turn)) = part {
                if manifest_part(&snap.id, every) != turn % every {
                    continue;
                }
            }
            report.manifests += 1;
            let path = self.manifest_path(sub, &snap.id);
            let (mut hits, mut missing) = (0u64, 0u64);
            let mut batch = Vec::with_capacity(4096);
            let mut count_missing = |batch: &mut Vec<ChunkId>| -> Result<()> {
                missing += self
                    .catalog
                    .has_chunks(sub, batch)?
                    .iter()
                    .filter(|have| !**have)
                    .count() as u64;
                batch.clear();
                Ok(())
            };
            let checked =
                ManifestIds::open(&path, snap.id, snap.manifest_bytes).and_then(|mut ids| {
                    while let Some(id) = ids.next()? {
                        hits += u64::from(damaged.contains(&id));
                        batch.push(ChunkId::from_bytes(id));
                        if batch.len() == 4096 {
                            count_missing(&mut batch)?;
                        }
                    }
                    count_missing(&mut batch)
                });
            if let Err(e) = &checked {
                report
                    .damaged_manifests
                    .push(format!("{}: {e}", snap.id.to_hex()));
            }
            if hits > 0 || missing > 0 || checked.is_err() {
                report.affected.push(AffectedSnapshot {
                    snapshot: snap.id.to_hex(),
                    device: snap.device,
                    time: snap.time,
                    damaged_chunks: hits,
                    missing_chunks: missing,
                });
            }
        }

        report.disputes = self.catalog.disputes(sub)?;
        if opts.repair {
            self.quarantine(sub, damaged_in, &missing_packs, &mut report)?;
        }
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// Quarantines damaged chunks: copies, row deletions, pack rewrites.
    fn quarantine(
        &self,
        sub: i64,
        damaged_in: DamagedByPack,
        missing_packs: &[PackRow],
        report: &mut VerifyReport,
    ) -> Result<()> {
        let dir = self.data_dir().join(QUARANTINE_DIR).join(sub.to_string());
        durable::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let mut ids = Vec::new();
        for (pack, rows) in damaged_in.values() {
            for (row, copy, blob) in rows {
                if let Some(blob) = blob {
                    let path = dir.join(format!("{}.{}", row.id.to_hex(), pack.name));
                    durable::write_atomic(&path, blob).map_err(|e| Error::io(&path, e))?;
                }
                ids.push((row.id, *copy));
            }
        }
        for pack in missing_packs {
            ids.extend(
                self.catalog
                    .pack_chunks(sub, pack.id)?
                    .iter()
                    .map(|(e, copy)| (e.id, *copy)),
            );
        }
        for batch in ids.chunks(4096) {
            self.catalog.delete_chunks(sub, None, batch)?;
        }
        report.quarantined = ids.len() as u64;
        for pack in missing_packs {
            self.catalog.delete_empty_pack(sub, pack)?;
        }
        // Rewrite the packs without the damaged blobs (their other blobs are
        // checked again as they are copied).
        let rewrite: Vec<PackRow> = damaged_in.into_values().map(|(p, _)| p).collect();
        if !rewrite.is_empty() {
            let mut gc = GcReport::default();
            self.repack(sub, &rewrite, &mut gc)?;
            report.packs_rewritten = gc.packs_repacked;
        }
        Ok(())
    }
}
