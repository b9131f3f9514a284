//! Garbage collection: frees what no snapshot references any more, one
//! subscriber at a time, while backups go on. The rules are also in
//! `docs/store.md` ("Garbage collection").
//!
//! 1. **Mark** ([`mark`]): the union of the chunk lists of the subscriber's
//!    snapshots, merged from the manifests in id order beside a scan of the
//!    catalogue's chunks in the same order. Memory is one read buffer per
//!    snapshot plus a counter per pack, whatever the number of chunks; the
//!    unreferenced ids go to a temporary file. Every manifest is checked
//!    against its id before anything is deleted.
//! 2. **Sweep**: the unreferenced chunk rows are deleted in batches. A chunk
//!    is kept if its pack is younger than the grace period (an interrupted
//!    backup resumes with what it uploaded). A batch is refused, and the
//!    collection stops for this subscriber, if a session of the subscriber
//!    has started uploading or asking which chunks exist, or a snapshot was
//!    committed, since the mark (the `activity` counter, in the same
//!    transaction): a chunk that a session was told exists is never deleted
//!    under it (invariant 6). Each batch bumps the GC epoch, so a commit that
//!    checked its chunks before the batch checks them again.
//! 3. **Free**: a pack with no chunk row left is removed (its row, then its
//!    file), lowering `used_bytes` by its size. A pack whose unreferenced
//!    bytes reach the threshold is **repacked** ([`repack`]): its live blobs
//!    are copied (checksums checked) into a new durable pack, the rows are
//!    moved to it in one transaction, then the old file is removed.
//! 4. **Orphans** ([`orphans`]): files the catalogue does not know (debris
//!    of a crash: temporary packs and manifests, packs renamed but never
//!    recorded) older than the grace period, and never younger than an hour.
//!
//! A subscriber with a session open when the collection starts is postponed
//! (the next run takes it). One collection runs at a time per data directory
//! (a lock file), whether the daemon or `coffre-server gc` runs it.

pub(crate) mod mark;
mod orphans;
mod repack;

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use coffre_core::ChunkId;
use serde::Serialize;

use crate::catalog::{PackRow, SweepOutcome};
use crate::durable;
use crate::error::{Error, Result};
use crate::layout::GC_LOCK_FILE;
use crate::pack::{ENTRY_LEN, TRAILER_LEN};
use crate::store::Store;

/// Unreferenced chunk rows deleted per transaction.
const SWEEP_BATCH: usize = 4096;

/// How a collection behaves.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Unreferenced chunks in packs younger than this (seconds) are kept, and
    /// so are files the catalogue does not know that are younger than this
    /// (at least an hour for those).
    pub grace_secs: i64,
    /// A pack is rewritten when at least this fraction of its bytes is
    /// unreferenced (0.0 to 1.0).
    pub repack_threshold: f64,
    /// Mark and report only; change nothing.
    pub dry_run: bool,
}

/// The default grace period: a day, so that a backup interrupted tonight
/// resumes tomorrow night with what it uploaded.
pub const DEFAULT_GRACE_SECS: i64 = 24 * 3600;
/// The default repack threshold: a fifth of a pack unreferenced.
pub const DEFAULT_REPACK_THRESHOLD: f64 = 0.2;

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace_secs: DEFAULT_GRACE_SECS,
            repack_threshold: DEFAULT_REPACK_THRESHOLD,
            dry_run: false,
        }
    }
}

/// What a collection of one subscriber did (or, dry, would do).
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    /// The subscriber.
    pub subscriber: String,
    /// Why it stopped before the end, if it did (a backup in progress).
    pub postponed: Option<String>,
    /// Snapshots marked from.
    pub snapshots: u64,
    /// Chunks in the catalogue at the start.
    pub chunks: u64,
    /// Chunks no snapshot references.
    pub unreferenced: u64,
    /// Of those, kept because their pack is younger than the grace period.
    pub protected: u64,
    /// Chunk rows deleted.
    pub deleted_chunks: u64,
    /// Packs removed whole (no chunk left).
    pub packs_deleted: u64,
    /// Packs rewritten without their unreferenced blobs.
    pub packs_repacked: u64,
    /// New packs written by the repack.
    pub packs_written: u64,
    /// Packs that did not match their catalogue rows, left alone (run
    /// `coffre-server verify`).
    pub damaged_packs: Vec<String>,
    /// Files the catalogue did not know, removed.
    pub orphan_files: u64,
    /// `used_bytes` before.
    pub used_before: u64,
    /// `used_bytes` after (dry run: what it would be, about).
    pub used_after: u64,
    /// How long it took.
    pub seconds: f64,
}

/// Per pack: what the mark found in it.
#[derive(Debug)]
struct Tally {
    row: PackRow,
    /// Chunks kept (referenced or protected) and their bytes.
    kept: u64,
    kept_bytes: u64,
    /// Unreferenced chunks to delete.
    dead: u64,
}

impl Tally {
    /// Bytes of the pack that no kept chunk needs (including copies that
    /// were never indexed).
    fn unused_bytes(&self) -> u64 {
        if self.kept == 0 {
            return self.row.size;
        }
        self.row
            .size
            .saturating_sub(self.kept_bytes + self.kept * ENTRY_LEN + TRAILER_LEN)
    }
}

/// Holds the data directory's GC lock while alive.
pub(crate) struct GcLock(File);

impl Store {
    /// Collects the garbage of the subscriber called `name`: see the module
    /// documentation. Returns what it did; a subscriber with a backup in
    /// progress is reported as postponed, not as an error. Fails with
    /// [`Error::GcRunning`] if another collection runs on this data
    /// directory, and with [`Error::Corrupt`] (deleting nothing) if a
    /// manifest is damaged.
    pub fn gc(&self, name: &str, opts: &GcOptions) -> Result<GcReport> {
        let started = Instant::now();
        let _lock = self.gc_lock()?;
        let sub = self.catalog.subscriber_id_of(name)?;
        // Never delete for a subscriber another frontend serves now (issue
        // 22): its packs are that one's.
        self.check_serving(sub)?;
        let mut report = GcReport {
            subscriber: name.to_string(),
            used_before: self.catalog.quota(sub)?.1,
            ..GcReport::default()
        };
        let result = self.collect(sub, opts, &mut report);
        report.used_after = if opts.dry_run {
            report.used_after
        } else {
            self.catalog.quota(sub)?.1
        };
        report.seconds = started.elapsed().as_secs_f64();
        result.map(|()| report)
    }

    fn collect(&self, sub: i64, opts: &GcOptions, report: &mut GcReport) -> Result<()> {
        let sessions = self.catalog.open_sessions(sub)?;
        if let Some((device, since)) = sessions.first() {
            report.postponed = Some(format!(
                "a backup is in progress ({device:?} since {}, {} session(s) open): \
                 collected at the next run",
                since,
                sessions.len()
            ));
            report.used_after = report.used_before;
            return Ok(());
        }
        let start = self.catalog.gc_start(sub)?;
        report.snapshots = start.snapshots.len() as u64;
        let cutoff = self.now().saturating_sub(opts.grace_secs.max(0));
        let mut packs: HashMap<i64, Tally> = start
            .packs
            .iter()
            .map(|row| {
                let tally = Tally {
                    row: row.clone(),
                    kept: 0,
                    kept_bytes: 0,
                    dead: 0,
                };
                (row.id, tally)
            })
            .collect();

        // Mark, writing the unreferenced ids to a temporary file.
        let dir = self.packs_dir(sub);
        durable::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let dead_path = dir.join(format!(".gc-{}.dead.tmp", std::process::id()));
        let _remove_dead = RemoveOnDrop(dead_path.clone());
        let mut dead_out = BufWriter::new(
            durable::private_options()
                .create(true)
                .truncate(true)
                .open(&dead_path)
                .map_err(|e| Error::io(&dead_path, e))?,
        );
        let mut live = mark::Live::open(
            start
                .snapshots
                .iter()
                .map(|(id, len)| (*id, self.manifest_path(sub, id), *len)),
        )?;
        self.catalog.scan_chunks(sub, |id, copy, pack_id, length| {
            report.chunks += 1;
            let referenced = live.contains(id)?;
            // A pack recorded after the mark started is young: keep.
            let Some(tally) = packs.get_mut(&pack_id) else {
                if !referenced {
                    report.unreferenced += 1;
                    report.protected += 1;
                }
                return Ok(());
            };
            if !referenced {
                report.unreferenced += 1;
                if tally.row.created <= cutoff {
                    tally.dead += 1;
                    // Each copy of an id alone (trust.rs): a copy in a
                    // young pack stays even when an older copy goes.
                    return dead_out
                        .write_all(id)
                        .and_then(|()| dead_out.write_all(&copy.to_be_bytes()))
                        .map_err(|e| Error::io(&dead_path, e));
                }
                report.protected += 1;
            }
            tally.kept += 1;
            tally.kept_bytes += length;
            Ok(())
        })?;
        live.finish()?;
        dead_out.flush().map_err(|e| Error::io(&dead_path, e))?;
        drop(dead_out);

        let old: Vec<&Tally> = packs.values().filter(|t| t.row.created <= cutoff).collect();
        let empty: Vec<PackRow> = old
            .iter()
            .filter(|t| t.kept == 0)
            .map(|t| t.row.clone())
            .collect();
        let mut sparse: Vec<PackRow> = old
            .iter()
            .filter(|t| {
                t.kept > 0 && t.unused_bytes() as f64 >= opts.repack_threshold * t.row.size as f64
            })
            .map(|t| t.row.clone())
            .collect();
        sparse.sort_by_key(|p| p.id);

        if opts.dry_run {
            let freed: u64 = empty.iter().map(|p| p.size).sum::<u64>()
                + old
                    .iter()
                    .filter(|t| sparse.iter().any(|p| p.id == t.row.id))
                    .map(|t| t.unused_bytes())
                    .sum::<u64>();
            report.packs_deleted = empty.len() as u64;
            report.packs_repacked = sparse.len() as u64;
            report.deleted_chunks = old.iter().map(|t| t.dead).sum();
            report.used_after = report.used_before.saturating_sub(freed);
            return Ok(());
        }

        // Sweep.
        let mut ids = BufReader::new(File::open(&dead_path).map_err(|e| Error::io(&dead_path, e))?);
        let mut batch = Vec::with_capacity(SWEEP_BATCH);
        loop {
            batch.clear();
            let mut id = [0u8; 32];
            let mut copy = [0u8; 4];
            while batch.len() < SWEEP_BATCH
                && ids.read_exact(&mut id).is_ok()
                && ids.read_exact(&mut copy).is_ok()
            {
                batch.push((ChunkId::from_bytes(id), u32::from_be_bytes(copy)));
            }
            if batch.is_empty() {
                break;
            }
            match self
                .catalog
                .delete_chunks(sub, Some(start.activity), &batch)?
            {
                SweepOutcome::Deleted(n) => report.deleted_chunks += n,
                SweepOutcome::Busy => {
                    report.postponed = Some(
                        "a backup started during the collection: what was swept so far is \
                         freed, the rest at the next run"
                            .into(),
                    );
                    break;
                }
            }
        }

        // Free whole packs (safe whatever happened meanwhile: only a pack
        // with no chunk row left goes).
        let mut gone = Vec::new();
        for pack in empty {
            if self.catalog.delete_empty_pack(sub, &pack)? {
                gone.push(pack);
            }
        }
        self.remove_packs(sub, &gone)?;
        report.packs_deleted = gone.len() as u64;
        if report.postponed.is_none() && !sparse.is_empty() {
            self.repack(sub, &sparse, report)?;
        }
        report.orphan_files = self.remove_orphans(sub, cutoff)?;
        Ok(())
    }

    /// Takes the data directory's GC lock (`gc.lock`), or fails at once.
    pub(crate) fn gc_lock(&self) -> Result<GcLock> {
        let path = self.data_dir().join(GC_LOCK_FILE);
        let file = durable::private_options()
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(GcLock(file)),
            Err(fs::TryLockError::WouldBlock) => Err(Error::GcRunning),
            Err(fs::TryLockError::Error(e)) => Err(Error::io(&path, e)),
        }
    }
}

impl Drop for GcLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

/// Removes a temporary file when dropped.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}
