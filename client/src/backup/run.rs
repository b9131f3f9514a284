//! One backup run: [`run`] calls its seven steps in order, each a function
//! of this file or a stage of `backup/`:
//!
//! 1. [`walk`]: the tree to back up, without this installation's caches;
//!    a path that does not exist is left out and recorded as a problem
//!    (none left: the run fails, an empty snapshot would look like a
//!    deletion);
//! 2. `known`: the files cache, the snapshot list (the parent), the chunks
//!    known to be on the server;
//! 3. `plan`: which files must be read;
//! 4. [`read_and_seal`]: `pipeline::run` on all cores (`read`), new blobs
//!    into the outbox, uploaded meanwhile (`bridge`, `upload`); every so
//!    often a checkpoint of the files done (`checkpoint`, protocol 5); a
//!    file another program holds is set aside, then read from a shadow copy
//!    or retried at the end of the pass, and if still held keeps its
//!    previous version (`set_aside`);
//! 5. `trees`: the trees bottom-up, then the end of the upload;
//! 6. [`manifest`] and the commit (a version 3 manifest for a server of
//!    protocol 5 or later, version 2, with its count of problems, for 4,
//!    version 1 before);
//! 7. [`remember`]: the files cache for next time, the journal cleared.
//!
//! Nothing here blocks on the runtime except through the session's
//! `block_on` (the snapshot list, manifests, the commit) and `bridge`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use coffre_core::manifest::{PrivatePart, PublicPart, Statistics, Version};
use coffre_core::pipeline::SeenSet;
use coffre_core::{ChunkId, Keys, Manifest, Timestamp};

use super::bridge::{Confirmations, Upload};
use super::checkpoint::{self, Checkpoints};
use super::deleted::{self, Tonight};
use super::journal::{self, Journal};
use super::known;
use super::plan::Plan;
use super::read::{self, Reading};
use super::report::Report;
use super::set_aside;
use super::trees::{self, Built, ReadFiles};
use super::upload;
use crate::config::Every;
use crate::config::Installation;
use crate::files_cache::FilesCache;
use crate::fsmeta;
use crate::hooks::Failure;
use crate::progress::Progress;
use crate::session::Session;
use crate::walk::{self, Paths, Scan, Walker};

/// What to back up, and how.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// The paths (any form; normalised here).
    pub paths: Vec<PathBuf>,
    /// Gitignore-style excludes.
    pub excludes: Vec<String>,
    /// Hot-path threads (0: one per core).
    pub threads: usize,
    /// Uploads in flight.
    pub uploads: usize,
    /// Show a progress bar on a terminal.
    pub progress: bool,
    /// Use the files cache, the journal and earlier snapshots to skip work.
    pub use_caches: bool,
    /// Tags recorded in the snapshot.
    pub tags: Vec<String>,
    /// Before hooks that failed: problems recorded in the snapshot.
    pub hooks_failed: Vec<Failure>,
    /// When to commit a checkpoint (`[backup]` in config.toml).
    pub checkpoints: Every,
}

/// Runs one backup.
pub(crate) fn run(session: &Session, opts: &Options) -> Result<Report> {
    let started = Instant::now();
    let time = Timestamp::now();
    let inst = &session.inst;
    let keys = &session.keys;

    // 1. Walk.
    let (paths, missing, scan) = walk(inst, opts)?;

    // 2. What is known to be on the server already.
    let cache = known::files_cache(inst, keys, opts.use_caches);
    let list = session.snapshots()?;
    let parent = known::parent(session, &list, &inst.config.device);
    let known = known::chunks(session, &list, &cache, opts.use_caches)?;

    // 3. Which files must be read.
    let Plan {
        slots,
        to_read,
        mut stats,
    } = Plan::new(&scan.root, &cache);
    stats.dirs = scan.tally.dirs;
    let tonight = Tonight::new(&scan.root, &paths);
    stats.files_deleted = match parent {
        None => 0,
        Some(_) if opts.use_caches && !cache.is_empty() => deleted::from_cache(&cache, &tonight),
        Some(parent) => deleted::from_parent(session, &parent, &tonight).unwrap_or_else(|e| {
            errln!(
                "coffre: warning: cannot count the files deleted since the last snapshot \
                 (reading it: {e:#}); the backup goes on"
            );
            0
        }),
    };

    // 4. Read, chunk, seal and upload.
    let progress = progress(&scan, &missing, &to_read, opts.progress);
    let bar = progress.clone();
    let _link_news = session.remote.notices_around(move |show| bar.suspend(show));
    let sent = Arc::new(AtomicU64::new(0));
    let journal = Journal::open(&inst.uploaded_path(), opts.use_caches)?;
    let (remote, uploads, taken) = (session.remote.clone(), opts.uploads.max(1), sent.clone());
    let upload_keys = session.keys.clone();
    let confirmations = Arc::new(Confirmations::default());
    let (outbox, upload) = Upload::start(
        session.rt.handle(),
        upload::BATCH,
        journal,
        confirmations.clone(),
        move |rx, confirmed| upload::run(remote, upload_keys, rx, uploads, confirmed, taken),
    )?;
    let dedup = SeenSet::with_known(known.iter().copied());
    let mut errors = missing.unreadable.clone();
    errors.extend(scan.tally.errors.iter().cloned());
    // The run's manifest but for its trees and totals: what a checkpoint is.
    let template = manifest(
        inst,
        opts,
        Snapshot {
            time,
            root: ChunkId::from_bytes([0; 32]),
            chunks: HashSet::new(),
            files: 0,
            logical: 0,
            paths: &paths,
            parent,
            stats: &stats,
            errors: &errors,
            missing: &missing.missing,
            hooks_failed: &opts.hooks_failed,
        },
    );
    let mut checkpoints = Checkpoints::new(
        opts.checkpoints,
        checkpoint::Context {
            session,
            keys,
            dedup: &dedup,
            root: &scan.root,
            slots: &slots,
            template,
        },
        &known,
        confirmations,
    );
    drop(known);
    let reading = Reading {
        keys,
        threads: opts.threads,
        to_read: &to_read,
        dedup: &dedup,
        outbox: &outbox,
        progress: &progress,
        sent: &sent,
    };
    let read = match read_and_seal(&reading, inst, &mut checkpoints) {
        Ok(read) => read,
        Err(e) => {
            progress.finish();
            // The uploader's error is the cause (a full quota, a lost connection).
            return Err(upload.fail(outbox, e));
        }
    };
    let checkpoints = checkpoints.committed;
    let Read {
        mut files,
        failed,
        aside,
        bytes: mut bytes_read,
    } = read;
    errors.extend(failed);
    // 4b. The files another program held: a shadow copy, else retried; still
    // held, their previous version is kept.
    let outcome = match set_aside::second_chance(&reading, aside, &mut files) {
        Ok((outcome, bytes)) => {
            bytes_read += bytes;
            outcome
        }
        Err(e) => {
            progress.finish();
            return Err(upload.fail(outbox, e));
        }
    };
    errors.extend(
        outcome
            .failed
            .iter()
            .map(|(i, why)| (to_read[*i].0.clone(), why.clone())),
    );
    let held = set_aside::keep_previous(session, parent, &reading, &outcome.still_held, &mut files);
    stats.bytes_read = bytes_read;

    // 5. Trees, bottom-up; they dedup like data. Then the outbox is closed
    // and the uploader finishes.
    let built = trees::build(keys, &dedup, &outbox, &scan.root, slots, files);
    let uploaded = upload.finish(outbox);
    progress.finish();
    let uploaded = uploaded?;
    let Built {
        root,
        ids,
        new_cache,
        files,
        logical,
    } = built;
    let root = root?;
    stats.bytes_sent = sent.load(Ordering::Relaxed);

    // 6. The snapshot: its problems include the files still held.
    let recorded: Vec<(PathBuf, String)> = errors.iter().chain(&held).cloned().collect();
    let manifest = manifest(
        inst,
        opts,
        Snapshot {
            time,
            root,
            chunks: ids,
            files,
            logical,
            paths: &paths,
            parent,
            stats: &stats,
            errors: &recorded,
            missing: &missing.missing,
            hooks_failed: &opts.hooks_failed,
        },
    );
    // A server older than protocol 5 does not read version 3, older than 4
    // not version 2.
    let version = match session.remote.version {
        v if v >= checkpoint::CHECKPOINT_PROTOCOL => Version::V3,
        4 => Version::V2,
        _ => Version::V1,
    };
    let sealed = manifest.seal_as(keys, version)?;
    let snapshot = session.block_on(session.remote.commit(sealed))?;

    // 7. Remember for next time.
    remember(inst, keys, &new_cache);
    Ok(Report {
        snapshot,
        stats,
        files,
        logical_bytes: logical,
        blobs_sent: uploaded.blobs,
        blobs_duplicate: uploaded.duplicates,
        chunks_verified: uploaded.verified,
        bytes_verified: uploaded.verified_bytes,
        errors,
        held,
        missing: missing.missing,
        hooks_failed: opts.hooks_failed.clone(),
        special: scan.tally.special.clone(),
        excluded: scan.tally.excluded,
        checkpoints,
        duration: started.elapsed(),
        outages: session.remote.outages(),
        upload_rate: crate::limits::current().sent().average(),
    })
}

/// Step 1: the paths to back up, normalised, and their walk. This
/// installation's own state folder (credentials, caches, log) is never
/// backed up, even without its `CACHEDIR.TAG` (the walk sees canonical
/// paths, so the folder's path is made canonical too); other
/// installations' state folders are skipped by their tag. A path that does not
/// exist (or cannot be resolved) is left out, to be reported and recorded;
/// if none is left, the run fails: an empty snapshot would look like every
/// file was deleted.
fn walk(inst: &Installation, opts: &Options) -> Result<(Vec<PathBuf>, Paths, Scan)> {
    let mut found = walk::normalize(&opts.paths)?;
    if found.kept.is_empty() {
        let list = found
            .missing
            .iter()
            .map(|p| format!("{} (does not exist)", p.display()))
            .chain(
                found
                    .unreadable
                    .iter()
                    .map(|(p, why)| format!("{} ({why})", p.display())),
            )
            .collect::<Vec<_>>()
            .join(", ");
        anyhow::bail!(
            "nothing was backed up: none of the paths to back up can be read: {list}. \
             Plug the disk in, or correct `paths` in config.toml (an empty snapshot would \
             look like every file was deleted, so none was made)"
        );
    }
    let paths = std::mem::take(&mut found.kept);
    let state = std::fs::canonicalize(inst.state_dir()).unwrap_or_else(|_| inst.state_dir().into());
    let walker = Walker::new(&opts.excludes, vec![state])?;
    let scan = walker.scan(&paths)?;
    Ok((paths, found, scan))
}

/// The progress bar of step 4, after the paths left out and what the walk
/// could not read or skipped.
fn progress(scan: &Scan, missing: &Paths, to_read: &[(PathBuf, u64)], wanted: bool) -> Progress {
    let read_total: u64 = to_read.iter().map(|(_, s)| s).sum();
    let progress = Progress::bytes(read_total, "backup", wanted);
    for path in &missing.missing {
        progress.println(&format!(
            "coffre: warning: {} does not exist (an unplugged disk? a renamed folder?): \
             it is left out and recorded in the snapshot; the other paths are backed up",
            path.display()
        ));
    }
    for (path, why) in &missing.unreadable {
        progress.println(&format!(
            "coffre: warning: cannot back up {}: {why}: it is left out and recorded in the \
             snapshot; the other paths are backed up",
            path.display()
        ));
    }
    for (path, why) in &scan.tally.errors {
        progress.println(&format!("coffre: cannot read {}: {why}", path.display()));
    }
    for path in &scan.tally.special {
        progress.println(&format!(
            "coffre: warning: skipped {} (a FIFO, socket or device file)",
            path.display()
        ));
    }
    progress
}

/// What step 4's first pass read: each file's chunks and size, the files
/// that failed (with why), those set aside because another program held
/// them (with why), and the bytes read.
struct Read {
    files: ReadFiles,
    failed: Vec<(PathBuf, String)>,
    aside: Vec<(usize, String)>,
    bytes: u64,
}

/// Step 4's first pass: reads, chunks and seals every file of the read list
/// on all cores (`read::pass`); each new blob goes to the outbox; after each
/// file, a checkpoint if one is due. A file another program holds is set
/// aside (`set_aside`), said at once.
fn read_and_seal(
    reading: &Reading<'_>,
    inst: &Installation,
    checkpoints: &mut Checkpoints<'_>,
) -> Result<Read> {
    let (to_read, progress, sent) = (reading.to_read, reading.progress, reading.sent);
    let mut files = read::nothing_read(to_read.len());
    let mut failed = Vec::new();
    let mut aside = Vec::new();
    let all: Vec<usize> = (0..to_read.len()).collect();
    let bytes = read::pass(
        reading,
        &all,
        &read::plain,
        &mut files,
        &mut |files| {
            let sent_now = sent.load(Ordering::Relaxed);
            if let Some(line) = checkpoints.after_file(
                inst,
                reading.outbox,
                &files.contents,
                &files.sizes,
                sent_now,
            ) {
                progress.println(&line);
            }
        },
        &mut |i, error| {
            let path = &to_read[i].0;
            match set_aside::held_now(&error) {
                Some(why) => {
                    progress.println(&format!(
                        "coffre: {} is held by another program ({why}): set aside, \
                         retrying at the end of the run",
                        path.display()
                    ));
                    aside.push((i, why));
                }
                None => {
                    progress.println(&format!("coffre: cannot read {}: {error}", path.display()));
                    failed.push((path.clone(), error.to_string()));
                }
            }
        },
    )?;
    Ok(Read {
        files,
        failed,
        aside,
        bytes,
    })
}

/// The message a missing path has in the manifest's `errors`.
pub(crate) const MISSING: &str =
    "path missing: it did not exist at the time of the backup (an unplugged disk, a renamed folder?)";

/// What stands for a failed before hook's path in the manifest's `errors`:
/// `hook:NAME` (a path is absolute, so it never reads like this).
pub(crate) const HOOK_PREFIX: &str = "hook:";

/// What a snapshot holds, for its manifest.
struct Snapshot<'a> {
    /// When the backup started.
    time: Timestamp,
    /// The root tree.
    root: ChunkId,
    /// Every blob the snapshot needs, data and trees.
    chunks: HashSet<ChunkId>,
    /// Files in the snapshot, and their total size.
    files: u64,
    logical: u64,
    /// The paths backed up, as normalised.
    paths: &'a [PathBuf],
    /// The device's previous snapshot.
    parent: Option<ChunkId>,
    stats: &'a Statistics,
    /// What could not be read, with why.
    errors: &'a [(PathBuf, String)],
    /// The paths to back up that do not exist.
    missing: &'a [PathBuf],
    /// The before hooks that failed.
    hooks_failed: &'a [Failure],
}

/// Step 6: the snapshot's manifest (chunk ids sorted, as the format wants).
fn manifest(inst: &Installation, opts: &Options, snapshot: Snapshot<'_>) -> Manifest {
    let mut chunks: Vec<ChunkId> = snapshot.chunks.into_iter().collect();
    chunks.sort_unstable();
    Manifest {
        public: PublicPart {
            time: snapshot.time,
            device: inst.config.device.clone(),
            logical_bytes: snapshot.logical,
            file_count: snapshot.files,
            problems: (snapshot.errors.len() + snapshot.missing.len() + snapshot.hooks_failed.len())
                as u64,
            checkpoint: false,
            chunks,
        },
        private: PrivatePart {
            root: snapshot.root,
            paths: snapshot
                .paths
                .iter()
                .map(|p| fsmeta::path_bytes(p))
                .collect(),
            hostname: hostname(),
            tags: opts.tags.clone(),
            parent: snapshot.parent,
            stats: snapshot.stats.clone(),
            errors: snapshot
                .missing
                .iter()
                .map(|p| (fsmeta::path_bytes(p), MISSING.to_string()))
                .chain(
                    snapshot
                        .errors
                        .iter()
                        .map(|(p, e)| (fsmeta::path_bytes(p), e.clone())),
                )
                .chain(snapshot.hooks_failed.iter().map(|f| {
                    (
                        format!("{HOOK_PREFIX}{}", f.name).into_bytes(),
                        format!("before hook failed: {}", f.why),
                    )
                }))
                .collect(),
        },
    }
}

/// Step 7, once the snapshot is committed: the files cache for next time
/// (every chunk it names is on the server), and the journal is no longer
/// needed.
fn remember(inst: &Installation, keys: &Keys, new_cache: &FilesCache) {
    if let Err(e) = new_cache.save(&inst.files_cache_path(), keys) {
        errln!("coffre: warning: cannot write the files cache: {e:#}");
    }
    journal::clear(&inst.uploaded_path());
}

/// This machine's name, for the snapshot.
fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}
