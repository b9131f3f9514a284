//! Checkpoints (issue 19): a first backup over a slow line takes days (50 GB
//! at 2 Mbit/s: more than two), so every [`Every`] (30 minutes or 1 GiB sent
//! by default) the run commits a **checkpoint**: a snapshot of the files
//! finished so far, marked as such in its manifest's public part (version
//! 3, for a server of protocol 5 or later), so that what was sent survives
//! a reboot, days off and the GC's grace period.
//!
//! - **Only confirmed data.** A file goes into a checkpoint once all its
//!   chunks are on the server: known before the run (files cache, journal,
//!   latest snapshot) or confirmed during it (the journal's thread hands the
//!   ids on, `bridge::Confirmations`). The checkpoint's trees are sealed,
//!   sent and waited for like data; the server checks every id at commit
//!   anyway (a refusal costs the checkpoint, never the run).
//! - **The next run uses it.** After each checkpoint the files cache is
//!   saved with the checkpoint's files, so a rerun after a kill reads none
//!   of them again; the journal (unchanged) covers the chunks sent since.
//! - **Replaced by the final snapshot.** The device cannot delete (its
//!   credential is append-only): the server's retention keeps only a
//!   device's newest checkpoint, and none older than its newest complete
//!   snapshot (`coffre_store::retention`); a checkpoint counts for no
//!   night. `latest` names a checkpoint only when there is nothing else.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};
use coffre_core::manifest::Version;
use coffre_core::pipeline::SeenSet;
use coffre_core::{ChunkId, Keys, Manifest};

use super::bridge::{Confirmations, Outbox};
use super::plan::Slot;
use super::trees::{self, Built, ReadFiles};
use crate::config::{Every, Installation};
use crate::session::Session;
use crate::walk::Item;

/// The protocol version from which a server reads checkpoints.
pub(super) const CHECKPOINT_PROTOCOL: u16 = 5;

/// What a checkpoint is made of that does not change during the run.
pub(super) struct Context<'a> {
    pub session: &'a Session,
    pub keys: &'a Keys,
    pub dedup: &'a SeenSet,
    pub root: &'a [Item],
    pub slots: &'a [Slot],
    /// The run's manifest with everything but its trees and totals.
    pub template: Manifest,
}

/// The checkpoints of one run.
pub(super) struct Checkpoints<'a> {
    every: Every,
    cx: Option<Context<'a>>,
    /// Chunks on the server before the run.
    known: HashSet<ChunkId>,
    confirmed: Arc<Confirmations>,
    last: Instant,
    sent_at_last: u64,
    /// Files read in this run that the last checkpoint holds.
    files_at_last: usize,
    /// Checkpoints committed.
    pub committed: u32,
}

impl<'a> Checkpoints<'a> {
    /// Checkpoints every `every`, if the server reads them (protocol 5);
    /// none otherwise. `known`: the chunks on the server before the run.
    pub(super) fn new(
        every: Every,
        cx: Context<'a>,
        known: &HashSet<ChunkId>,
        confirmed: Arc<Confirmations>,
    ) -> Checkpoints<'a> {
        let on = every != Every::NEVER && cx.session.remote.version >= CHECKPOINT_PROTOCOL;
        Checkpoints {
            every,
            known: if on { known.clone() } else { HashSet::new() },
            cx: on.then_some(cx),
            confirmed,
            last: Instant::now(),
            sent_at_last: 0,
            files_at_last: 0,
            committed: 0,
        }
    }

    /// Whether a checkpoint is due, `sent` bytes having been sent so far.
    fn due(&self, sent: u64) -> bool {
        self.cx.is_some()
            && (self.every.time.is_some_and(|t| self.last.elapsed() >= t)
                || self
                    .every
                    .bytes
                    .is_some_and(|b| sent.saturating_sub(self.sent_at_last) >= b))
    }

    /// Called after each file is read: commits a checkpoint of the files
    /// done whose chunks the server has, if one is due. Returns a line to
    /// show, if one was committed or failed; a failure stops the
    /// checkpoints of this run, never the run.
    pub(super) fn after_file(
        &mut self,
        inst: &Installation,
        outbox: &Outbox,
        contents: &[Vec<ChunkId>],
        sizes: &[Option<u64>],
        sent: u64,
    ) -> Option<String> {
        if !self.due(sent) {
            return None;
        }
        // Nothing new confirmed since the last one (the server is still
        // taking the files done): try again after the next file.
        let ready = self.ready(contents, sizes);
        if ready.iter().filter(|r| **r).count() <= self.files_at_last {
            return None;
        }
        self.last = Instant::now();
        self.sent_at_last = sent;
        self.files_at_last = ready.iter().filter(|r| **r).count();
        match self.commit(inst, outbox, contents, sizes, &ready) {
            Ok((id, built)) => {
                self.committed += 1;
                Some(format!(
                    "coffre: checkpoint {} saved: {} ({}) on the server so far; an interrupted \
                     backup goes on from there",
                    id.short(),
                    crate::display::count(built.files, "file"),
                    coffre_core::units::format_size(built.logical)
                ))
            }
            Err(e) => {
                self.cx = None;
                Some(format!(
                    "coffre: warning: no more checkpoints in this run ({e:#}); the backup goes on"
                ))
            }
        }
    }

    /// Which files read in this run are done with every chunk on the
    /// server: known before the run or confirmed during it.
    fn ready(&self, contents: &[Vec<ChunkId>], sizes: &[Option<u64>]) -> Vec<bool> {
        let on_server = |id: &ChunkId| self.known.contains(id) || self.confirmed.has(id);
        contents
            .iter()
            .zip(sizes)
            .map(|(c, s)| s.is_some() && c.iter().all(on_server))
            .collect()
    }

    fn commit(
        &self,
        inst: &Installation,
        outbox: &Outbox,
        contents: &[Vec<ChunkId>],
        sizes: &[Option<u64>],
        ready: &[bool],
    ) -> Result<(ChunkId, Built)> {
        let cx = self.cx.as_ref().expect("checkpoints on");
        // The files ready; the others (still being read or sent) are left
        // out, like unreadable ones.
        let read = ReadFiles {
            contents: contents
                .iter()
                .zip(ready)
                .map(|(c, r)| if *r { c.clone() } else { Vec::new() })
                .collect(),
            sizes: sizes
                .iter()
                .zip(ready)
                .map(|(s, r)| s.filter(|_| *r))
                .collect(),
            // Files still held are decided at the end of the run.
            previous: Default::default(),
        };
        let built = trees::build(cx.keys, cx.dedup, outbox, cx.root, cx.slots.to_vec(), read);
        let root = built
            .root
            .as_ref()
            .map_err(|e| anyhow::anyhow!("{e:#}"))
            .copied()?;
        // Its new trees were queued behind the data: wait for the server.
        let ids: Vec<ChunkId> = built.ids.iter().copied().collect();
        self.confirmed
            .wait_for(ids.iter().filter(|id| !self.known.contains(id)))
            .context("waiting for the checkpoint's trees")?;
        let mut m = cx.template.clone();
        m.public.checkpoint = true;
        m.public.chunks = ids;
        m.public.chunks.sort_unstable();
        m.public.file_count = built.files;
        m.public.logical_bytes = built.logical;
        m.private.root = root;
        let sealed = m.seal_as(cx.keys, Version::V3)?;
        let id = cx.session.block_on(cx.session.remote.commit(sealed))?;
        // A rerun reads none of these files again.
        if let Err(e) = built.new_cache.save(&inst.files_cache_path(), cx.keys) {
            errln!("coffre: warning: cannot write the files cache: {e:#}");
        }
        Ok((id, built))
    }
}
