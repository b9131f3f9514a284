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
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use coffre_core::manifest::Version;
use coffre_core::pipeline::SeenSet;
use coffre_core::{ChunkId, Keys, Manifest};
use serde::{Deserialize, Serialize};

use super::bridge::{Confirmations, Outbox};
use super::plan::Slot;
use super::trees::{self, Built, ReadFiles};
use crate::config::Installation;
use crate::session::Session;
use crate::walk::Item;

/// The protocol version from which a server reads checkpoints.
pub(super) const CHECKPOINT_PROTOCOL: u16 = 5;

/// Minutes between checkpoints unless `[backup] checkpoint_every` says
/// otherwise: at 2 Mbit/s, 30 minutes is 450 MB that a reboot cannot lose.
pub const DEFAULT_EVERY: &str = "30m";

/// Bytes sent between checkpoints unless `[backup] checkpoint_bytes` says
/// otherwise: on a fast line, 1 GiB comes before 30 minutes.
pub const DEFAULT_BYTES: &str = "1GiB";

/// The `[backup]` section of config.toml.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BackupConfig {
    /// Time between checkpoints ("30m", "2h"; "0": none by time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_every: Option<String>,
    /// Bytes sent between checkpoints ("1GiB", "500MB"; "0": none by
    /// bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_bytes: Option<String>,
}

impl BackupConfig {
    /// Nothing set (the section is not written).
    pub fn is_empty(&self) -> bool {
        self.checkpoint_every.is_none() && self.checkpoint_bytes.is_none()
    }

    /// When to commit a checkpoint, from this section and the defaults.
    pub(crate) fn every(&self) -> Result<Every> {
        let secs = coffre_core::units::parse_duration(
            self.checkpoint_every.as_deref().unwrap_or(DEFAULT_EVERY),
        )
        .map_err(|e| anyhow::anyhow!("config.toml, [backup] checkpoint_every: {e}"))?;
        let bytes = coffre_core::units::parse_size(
            self.checkpoint_bytes.as_deref().unwrap_or(DEFAULT_BYTES),
        )
        .map_err(|e| anyhow::anyhow!("config.toml, [backup] checkpoint_bytes: {e}"))?;
        Ok(Every {
            time: (secs > 0).then(|| Duration::from_secs(secs)),
            bytes: (bytes > 0).then_some(bytes),
        })
    }
}

/// When a checkpoint is due: after `time`, or after `bytes` sent, since the
/// run started or the last checkpoint (whichever comes first; neither: no
/// checkpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Every {
    /// Wall time between checkpoints.
    pub time: Option<Duration>,
    /// Bytes sent between checkpoints.
    pub bytes: Option<u64>,
}

impl Every {
    /// No checkpoints.
    pub(crate) const NEVER: Every = Every {
        time: None,
        bytes: None,
    };
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_reads_times_and_sizes_and_zero_turns_a_trigger_off() {
        let every = BackupConfig::default().every().unwrap();
        assert_eq!(every.time, Some(Duration::from_secs(30 * 60)));
        assert_eq!(every.bytes, Some(1 << 30));
        let c = BackupConfig {
            checkpoint_every: Some("0".into()),
            checkpoint_bytes: Some("0".into()),
        };
        assert_eq!(c.every().unwrap(), Every::NEVER);
        let c = BackupConfig {
            checkpoint_every: Some("soon".into()),
            checkpoint_bytes: None,
        };
        let e = c.every().unwrap_err().to_string();
        assert!(e.contains("checkpoint_every") && e.contains("30m"), "{e}");
    }
}
