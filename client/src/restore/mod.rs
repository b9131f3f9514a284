//! Restore: all or part of a snapshot into a folder, every chunk verified,
//! nothing ever written outside that folder.
//!
//! - `--path /home/alice/Documents/Compta` restores that folder (or file) as
//!   `TARGET/Compta`; without `--path`, the whole snapshot is restored under
//!   TARGET with its full paths (`TARGET/home/alice/...`). `--include` and
//!   `--exclude` choose within it (plan.rs).
//! - The target is opened once; everything below it is made relative to
//!   that handle without following any symlink (target.rs). Names from the
//!   snapshot are checked, and escaped on Windows, before use (names.rs).
//! - Each file is written to a temporary name beside it created exclusively
//!   (temp.rs), given its mtime, permissions and owner on the open handle,
//!   and renamed: a file with its final name is complete.
//! - A file already in place with the snapshot's size and mtime is skipped: a
//!   restore that was interrupted, run again, only does what is left. Any other
//!   existing file or link is a conflict: nothing is written unless
//!   `--overwrite`. A link or file standing where the snapshot has a folder
//!   is never entered: without `--overwrite` that folder is reported and the
//!   rest restored; with it, the link itself is replaced by a folder.
//! - A chunk several files share (identical files, an edited copy) is
//!   downloaded once: the first file that has it writes it, the others read
//!   it back from that file and check it by its id, or download it if it
//!   does not check (shared.rs).
//! - A file that cannot be restored (a damaged chunk on the server, a
//!   damaged entry) is reported; the others are restored.
//! - Ctrl-C or SIGTERM removes the temporary files and exits 130
//!   (interrupt.rs).
//!
//! The modules: `plan` (what to restore, where), `names`, `target` (the
//! confined writer), `temp` (temporary names and their registry),
//! `download` (fetching, verifying, writing), `interrupt`.

mod download;
pub(crate) use download::WINDOW;
pub mod interrupt;
pub mod names;
mod plan;
mod shared;
mod target;
mod temp;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use coffre_core::{ChunkId, Content};

use crate::progress::Progress;
use crate::session::Session;
use crate::trees::{self, Found, Trees};
use plan::Todo;
use plan::{Item, Planner, Selection};
use shared::Sharing;
use target::{Existing, Target};

/// What to restore where.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The folder to restore into (created if needed).
    pub target: PathBuf,
    /// A path as it was on the backed-up machine; None: everything.
    pub path: Option<String>,
    /// Only what matches one of these patterns (and the folders leading to it).
    pub include: Vec<String>,
    /// Not what matches one of these patterns (a folder: all of it).
    pub exclude: Vec<String>,
    /// Replace existing files that differ from the snapshot.
    pub overwrite: bool,
    /// Show a progress bar on a terminal.
    pub progress: bool,
}

/// How a restore went.
#[derive(Debug, Default)]
pub struct Report {
    /// Files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Directories.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Files already in place (an earlier, interrupted restore).
    pub already: u64,
    /// Temporary files left by an earlier restore that was killed, removed.
    pub stale_removed: u64,
    /// Files that could not be restored, with why.
    pub failed: Vec<(PathBuf, String)>,
    /// Entries restored under an escaped name (names.rs): where they are,
    /// and the snapshot's name.
    pub renamed: Vec<(PathBuf, String)>,
    /// Where it went.
    pub root: PathBuf,
    /// Wall time.
    pub duration: Duration,
    /// Stopped by Ctrl-C or SIGTERM: the temporary files were removed and
    /// what is counted above is what was restored before.
    pub interrupted: bool,
    /// Chunks downloaded (each distinct chunk at most once, shared.rs).
    pub chunks_downloaded: u64,
    /// Bytes of the blobs downloaded.
    pub chunk_bytes_downloaded: u64,
    /// Chunks read back from a file already restored instead.
    pub chunks_copied: u64,
    /// Bytes received from the server during the restore (listings,
    /// chunks and protocol, as the link's meter counts them).
    pub received_bytes: u64,
}

/// What a folder of the plan is in the target, before anything is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DirState {
    /// A real folder already.
    Present,
    /// To create (nothing there, or below a folder to create).
    Absent,
    /// A link or file is there: replaced by a folder (--overwrite).
    Replace,
    /// A link or file is there, or above: not entered, not restored.
    Blocked,
}

/// Restores `snapshot` as `opts` says.
pub fn run(session: &Session, snapshot: &ChunkId, opts: &Options) -> Result<Report> {
    let started = Instant::now();
    let received = crate::limits::current().received_meter().bytes();
    let manifest = session.manifest(snapshot)?;
    let selection = Selection::new(&opts.include, &opts.exclude)?;
    let mut trees = Trees::new(session);
    let mut planner = Planner::new(&mut trees, &selection);
    let root_rel = match &opts.path {
        None => {
            planner.contents(
                &manifest.private.root,
                &mut Vec::new(),
                &PathBuf::new(),
                false,
            )?;
            PathBuf::new()
        }
        Some(p) => {
            // The path is matched against the snapshot's names, one by one;
            // only the entry's own (checked) name is used below the target.
            let parts = trees::components(p);
            let mut parent_path = Vec::new();
            for part in parts.iter().take(parts.len().saturating_sub(1)) {
                parent_path.push(b'/');
                parent_path.extend_from_slice(part);
            }
            match planner.trees().lookup(&manifest.private.root, &parts)? {
                Found::Root(id) => {
                    planner.contents(&id, &mut Vec::new(), &PathBuf::new(), false)?;
                    PathBuf::new()
                }
                Found::Entry(e) => {
                    let rel = PathBuf::from(names::os_name(&e.name).map_err(|why| {
                        anyhow::anyhow!("{p} names a damaged entry in this snapshot ({why}): it cannot be restored")
                    })?);
                    planner.entry(e, &mut parent_path, &PathBuf::new(), false)?;
                    rel
                }
            }
        }
    };
    let plan = planner.plan;
    drop(trees);

    let target = Arc::new(Target::open(&opts.target)?);
    let mut report = Report {
        root: target.display(&root_rel),
        ..Report::default()
    };
    for (rel, why) in plan.damaged {
        report.failed.push((target.display(&rel), why));
    }
    for (rel, original) in &plan.renamed {
        report.renamed.push((target.display(rel), original.clone()));
    }

    // What is there already, looked at without following any link; conflicts
    // first: nothing is written if an existing file would be lost.
    let mut states: HashMap<PathBuf, DirState> = HashMap::new();
    let state_of = |states: &HashMap<PathBuf, DirState>, rel: &Path| {
        rel.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| states.get(p).copied().unwrap_or(DirState::Blocked))
            .unwrap_or(DirState::Present)
    };
    for d in &plan.dirs {
        let state = match state_of(&states, &d.rel) {
            DirState::Blocked => DirState::Blocked,
            DirState::Absent | DirState::Replace => DirState::Absent,
            DirState::Present => match target.existing(&d.rel) {
                Ok(Existing::Missing) => DirState::Absent,
                Ok(Existing::Dir) => DirState::Present,
                Ok(_) if opts.overwrite => DirState::Replace,
                Ok(_) => {
                    report.failed.push((
                        target.display(&d.rel),
                        "a link or file stands where the snapshot has this folder: it is never \
                         followed, and the folder's contents were not restored. Remove it, or \
                         pass --overwrite to replace it by the folder"
                            .into(),
                    ));
                    DirState::Blocked
                }
                Err(e) => {
                    report
                        .failed
                        .push((target.display(&d.rel), format!("cannot look at it: {e}")));
                    DirState::Blocked
                }
            },
        };
        states.insert(d.rel.clone(), state);
    }
    let mut todo = Vec::new();
    let mut in_place = Vec::new();
    let mut conflicts = Vec::new();
    for f in plan.files {
        match state_of(&states, &f.rel) {
            DirState::Blocked => continue,
            DirState::Absent | DirState::Replace => todo.push(Todo {
                rel: f.rel,
                entry: f.entry,
            }),
            DirState::Present => match target.existing(&f.rel) {
                Ok(Existing::Missing) => todo.push(Todo {
                    rel: f.rel,
                    entry: f.entry,
                }),
                Ok(Existing::File { size, mtime })
                    if size == f.entry.size && mtime == f.entry.mtime =>
                {
                    report.already += 1;
                    // Its chunks may serve the files still to restore
                    // (read back and checked, shared.rs).
                    if let Content::File(ids) = f.entry.content {
                        in_place.push((f.rel, size, ids));
                    }
                }
                Ok(Existing::Dir) => conflicts.push(f.rel),
                Ok(_) if opts.overwrite => todo.push(Todo {
                    rel: f.rel,
                    entry: f.entry,
                }),
                Ok(_) => conflicts.push(f.rel),
                Err(e) => report
                    .failed
                    .push((target.display(&f.rel), format!("cannot look at it: {e}"))),
            },
        }
    }
    let mut links: Vec<(Item, bool)> = Vec::new();
    for l in plan.symlinks {
        let Content::Symlink(to) = &l.entry.content else {
            continue;
        };
        match state_of(&states, &l.rel) {
            DirState::Blocked => continue,
            DirState::Absent | DirState::Replace => links.push((l, false)),
            DirState::Present => match target.existing(&l.rel) {
                Ok(Existing::Missing) => links.push((l, false)),
                Ok(Existing::Symlink(t)) if t == *to => {}
                Ok(Existing::Dir) => conflicts.push(l.rel),
                Ok(_) if opts.overwrite => links.push((l, true)),
                Ok(_) => conflicts.push(l.rel),
                Err(e) => report
                    .failed
                    .push((target.display(&l.rel), format!("cannot look at it: {e}"))),
            },
        }
    }
    if !conflicts.is_empty() {
        bail!(
            "{} file(s) already exist in {} and differ from the snapshot (first: {}): nothing was written. \
             Restore into an empty folder, or pass --overwrite to replace them",
            conflicts.len(),
            opts.target.display(),
            target.display(&conflicts[0]).display()
        );
    }

    // Folders, each before its contents; stale temporary files of a killed
    // restore removed from those that were there.
    report.stale_removed += temp::remove_stale(&*target.dir(Path::new(""))?).unwrap_or(0);
    let mut made = Vec::new();
    for d in &plan.dirs {
        let state = states.get(&d.rel).copied().unwrap_or(DirState::Blocked);
        let r = match state {
            DirState::Blocked => continue,
            DirState::Present => target
                .dir(&d.rel)
                .and_then(|dir| temp::remove_stale(&dir))
                .map(|n| {
                    report.stale_removed += n;
                    true
                }),
            DirState::Absent | DirState::Replace => {
                target.make_dir(&d.rel, state == DirState::Replace)
            }
        };
        match r {
            Ok(true) => made.push(d),
            Ok(false) => report.failed.push((
                target.display(&d.rel),
                "a link or file appeared where the snapshot has this folder: not followed, its contents were not restored".into(),
            )),
            Err(e) => report
                .failed
                .push((target.display(&d.rel), format!("creating the folder: {e}"))),
        }
    }
    report.dirs = made.len() as u64;

    // Largest files first: a big mail archive started last would finish alone,
    // on one core, after everything else (longest job first keeps both the
    // network and the cores busy to the end).
    todo.sort_by_key(|t| std::cmp::Reverse(t.entry.size));
    let total: u64 = todo.iter().map(|t| t.entry.size).sum();
    let progress = Progress::bytes(total, "restore", opts.progress);
    // Which chunks several files share: fetched once, read back by the others.
    let sharing = Arc::new(Sharing::plan(&in_place, &todo));
    drop(in_place);
    let downloads = download::restore_files(
        target.clone(),
        session.remote.clone(),
        session.keys.clone(),
        sharing.clone(),
        todo,
        progress.clone(),
    );
    let results = session.block_on(async {
        tokio::select! {
            results = downloads => Some(results),
            () = interrupt::requested() => None,
        }
    });
    progress.finish();
    report.chunks_downloaded = sharing.fetched.load(Ordering::Relaxed);
    report.chunk_bytes_downloaded = sharing.fetched_bytes.load(Ordering::Relaxed);
    report.chunks_copied = sharing.copied.load(Ordering::Relaxed);
    report.received_bytes = crate::limits::current()
        .received_meter()
        .bytes()
        .saturating_sub(received);
    let Some(results) = results else {
        // The downloads were dropped; a file task still on the blocking pool
        // can no longer create a temporary file once the registry is closed.
        target.temps.remove_all();
        report.files = target.temps.finished();
        report.interrupted = true;
        report.duration = started.elapsed();
        return Ok(report);
    };
    for (rel, size, r) in results {
        match r {
            Ok(()) => {
                report.files += 1;
                report.bytes += size;
            }
            Err(e) => report.failed.push((target.display(&rel), format!("{e:#}"))),
        }
    }
    for (l, replace) in links {
        let Content::Symlink(to) = &l.entry.content else {
            continue;
        };
        match target.symlink(&l.rel, to, &l.entry, replace) {
            Ok(()) => report.symlinks += 1,
            Err(e) => report
                .failed
                .push((target.display(&l.rel), format!("creating the link: {e}"))),
        }
    }
    // Directories last, deepest first: writing into them changed their mtimes.
    for d in made.iter().rev() {
        if let Err(e) = target.set_dir_meta(&d.rel, &d.entry) {
            report.failed.push((
                target.display(&d.rel),
                format!("setting the folder's permissions and time: {e}"),
            ));
        }
    }
    report.duration = started.elapsed();
    Ok(report)
}
