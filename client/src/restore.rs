//! Restore: all or part of a snapshot into a folder, every chunk verified.
//!
//! - `--path /home/alice/Documents/Compta` restores that folder (or file) as
//!   `TARGET/Compta`; without `--path`, the whole snapshot is restored under
//!   TARGET with its full paths (`TARGET/home/alice/...`).
//! - Each file is written to a temporary name beside it, then given its
//!   permissions and mtime and renamed: a file with its final name is complete.
//! - A file already in place with the snapshot's size and mtime is skipped: a
//!   restore that was interrupted, run again, only does what is left. Any other
//!   existing file is a conflict: nothing is written unless `--overwrite`.
//! - A file that cannot be restored (a damaged chunk on the server) is
//!   reported; the others are restored.

use std::collections::VecDeque;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use coffre_core::{blob, BlobKind, ChunkId, Content, Entry, Keys};

use crate::fsmeta;
use crate::progress::Progress;
use crate::remote::Remote;
use crate::session::Session;
use crate::trees::{self, Found, Trees};

/// Chunks fetched ahead within one file.
const WINDOW: usize = 4;
/// Files restored at once.
const FILES_AT_ONCE: usize = 4;

/// What to restore where.
#[derive(Debug, Clone)]
pub struct Options {
    /// The folder to restore into (created if needed).
    pub target: PathBuf,
    /// A path as it was on the backed-up machine; None: everything.
    pub path: Option<String>,
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
    /// Files that could not be restored, with why.
    pub failed: Vec<(PathBuf, String)>,
    /// Where it went.
    pub root: PathBuf,
    /// Wall time.
    pub duration: Duration,
}

struct Plan {
    dirs: Vec<(PathBuf, Entry)>,
    files: Vec<(PathBuf, Entry)>,
    symlinks: Vec<(PathBuf, Entry)>,
}

/// Restores `snapshot` as `opts` says.
pub fn run(session: &Session, snapshot: &ChunkId, opts: &Options) -> Result<Report> {
    let started = Instant::now();
    let manifest = session.manifest(snapshot)?;
    let mut trees = Trees::new(session);
    let mut plan = Plan {
        dirs: Vec::new(),
        files: Vec::new(),
        symlinks: Vec::new(),
    };
    let root = match &opts.path {
        None => {
            collect(&mut trees, &manifest.private.root, &opts.target, &mut plan)?;
            opts.target.clone()
        }
        Some(p) => {
            let parts = trees::components(p);
            match trees.lookup(&manifest.private.root, &parts)? {
                Found::Root(id) => {
                    collect(&mut trees, &id, &opts.target, &mut plan)?;
                    opts.target.clone()
                }
                Found::Entry(e) => {
                    let dest = opts.target.join(fsmeta::os_name(&e.name));
                    add(&mut trees, e, dest.clone(), &mut plan)?;
                    dest
                }
            }
        }
    };

    // Conflicts first: nothing is written if an existing file would be lost.
    let mut todo = Vec::new();
    let mut report = Report {
        root,
        ..Report::default()
    };
    let mut conflicts = Vec::new();
    for (dest, e) in plan.files {
        match fs::symlink_metadata(&dest) {
            Err(_) => todo.push((dest, e)),
            Ok(md) => {
                let m = fsmeta::meta(&md);
                if md.is_file() && m.size == e.size && m.mtime == e.mtime {
                    report.already += 1;
                } else if opts.overwrite && !md.is_dir() {
                    todo.push((dest, e));
                } else {
                    conflicts.push(dest);
                }
            }
        }
    }
    let mut links = Vec::new();
    for (dest, e) in plan.symlinks {
        let Content::Symlink(target) = &e.content else {
            continue;
        };
        match fs::symlink_metadata(&dest) {
            Err(_) => links.push((dest, e)),
            Ok(md) if md.file_type().is_symlink() && fsmeta::read_link(&dest)? == *target => {}
            Ok(md) if opts.overwrite && !md.is_dir() => {
                fs::remove_file(&dest)?;
                links.push((dest, e));
            }
            Ok(_) => conflicts.push(dest),
        }
    }
    for (dest, _) in &plan.dirs {
        if let Ok(md) = fs::symlink_metadata(dest) {
            if !md.is_dir() {
                conflicts.push(dest.clone());
            }
        }
    }
    if !conflicts.is_empty() {
        bail!(
            "{} file(s) already exist in {} and differ from the snapshot (first: {}): nothing was written. \
             Restore into an empty folder, or pass --overwrite to replace them",
            conflicts.len(),
            opts.target.display(),
            conflicts[0].display()
        );
    }

    fs::create_dir_all(&opts.target)
        .with_context(|| format!("creating {}", opts.target.display()))?;
    for (dest, _) in &plan.dirs {
        fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
    }
    report.dirs = plan.dirs.len() as u64;

    let total: u64 = todo.iter().map(|(_, e)| e.size).sum();
    let progress = Progress::bytes(total, "restore", opts.progress);
    let results = session.block_on(restore_files(
        session.remote.clone(),
        session.keys.clone(),
        todo,
        progress.clone(),
    ));
    progress.finish();
    for (dest, size, r) in results {
        match r {
            Ok(()) => {
                report.files += 1;
                report.bytes += size;
            }
            Err(e) => report.failed.push((dest, format!("{e:#}"))),
        }
    }
    for (dest, e) in links {
        let Content::Symlink(target) = &e.content else {
            continue;
        };
        fsmeta::symlink(target, &dest)
            .and_then(|()| fsmeta::apply_owner_and_mode(&dest, e.mode, e.uid, e.gid, true))
            .with_context(|| format!("creating the link {}", dest.display()))?;
        report.symlinks += 1;
    }
    // Directories last, deepest first: writing into them changed their mtimes.
    for (dest, e) in plan.dirs.iter().rev() {
        fsmeta::apply_owner_and_mode(dest, e.mode, e.uid, e.gid, false)
            .and_then(|()| fsmeta::set_mtime(dest, e.mtime, true))
            .with_context(|| format!("setting the metadata of {}", dest.display()))?;
    }
    report.duration = started.elapsed();
    Ok(report)
}

/// Plans the contents of the tree `id` into `dir`.
fn collect(trees: &mut Trees<'_>, id: &ChunkId, dir: &Path, plan: &mut Plan) -> Result<()> {
    let tree = trees.get(id)?;
    for e in &tree.entries {
        add(trees, e.clone(), dir.join(fsmeta::os_name(&e.name)), plan)?;
    }
    Ok(())
}

fn add(trees: &mut Trees<'_>, e: Entry, dest: PathBuf, plan: &mut Plan) -> Result<()> {
    match &e.content {
        Content::Dir(id) => {
            let id = *id;
            plan.dirs.push((dest.clone(), e));
            collect(trees, &id, &dest, plan)
        }
        Content::File(_) => {
            plan.files.push((dest, e));
            Ok(())
        }
        Content::Symlink(_) => {
            plan.symlinks.push((dest, e));
            Ok(())
        }
    }
}

type Outcome = (PathBuf, u64, Result<()>);

async fn restore_files(
    remote: Arc<Remote>,
    keys: Arc<Keys>,
    files: Vec<(PathBuf, Entry)>,
    progress: Progress,
) -> Vec<Outcome> {
    let permits = Arc::new(tokio::sync::Semaphore::new(FILES_AT_ONCE));
    let mut tasks = tokio::task::JoinSet::new();
    for (dest, e) in files {
        let permit = permits.clone().acquire_owned().await.expect("never closed");
        let (remote, keys, progress) = (remote.clone(), keys.clone(), progress.clone());
        tasks.spawn(async move {
            let r = restore_file(&remote, &keys, &dest, &e, &progress).await;
            drop(permit);
            (dest, e.size, r)
        });
    }
    let mut out = Vec::new();
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(o) => out.push(o),
            Err(e) => out.push((PathBuf::new(), 0, Err(anyhow!("restore task failed: {e}")))),
        }
    }
    out
}

/// The temporary name a file is written under.
fn part_name(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.coffre-restore"))
}

async fn restore_file(
    remote: &Arc<Remote>,
    keys: &Arc<Keys>,
    dest: &Path,
    e: &Entry,
    progress: &Progress,
) -> Result<()> {
    let Content::File(ids) = &e.content else {
        return Ok(());
    };
    let tmp = part_name(dest);
    // File system calls run on the blocking pool: the runtime's threads keep
    // the downloads flowing meanwhile.
    let mut file = {
        let tmp = tmp.clone();
        blocking(move || {
            fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))
        })
        .await?
    };
    let mut pending = VecDeque::new();
    let mut next = ids.iter();
    let mut written = 0u64;
    loop {
        while pending.len() < WINDOW {
            let Some(id) = next.next() else { break };
            let (remote, keys, id) = (remote.clone(), keys.clone(), *id);
            pending.push_back(tokio::spawn(async move { fetch(&remote, keys, id).await }));
        }
        let Some(task) = pending.pop_front() else {
            break;
        };
        let data = task
            .await
            .map_err(|e| anyhow!("fetch task failed: {e}"))??;
        let n = data.len() as u64;
        let tmp = tmp.clone();
        file = blocking(move || {
            file.write_all(&data)
                .with_context(|| format!("writing {}", tmp.display()))?;
            Ok(file)
        })
        .await?;
        written += n;
        progress.inc(n);
    }
    if written != e.size {
        let _ = fs::remove_file(&tmp);
        bail!(
            "the snapshot's chunks make {written} bytes where the listing says {}",
            e.size
        );
    }
    let (dest, e) = (dest.to_path_buf(), e.clone());
    blocking(move || {
        file.set_modified(e.mtime.into())?;
        drop(file);
        // Permissions after the mtime: a read-only file can no longer be opened to set it.
        fsmeta::apply_owner_and_mode(&tmp, e.mode, e.uid, e.gid, false)?;
        fs::rename(&tmp, &dest).with_context(|| format!("renaming into {}", dest.display()))?;
        Ok(())
    })
    .await
}

/// Runs file system work on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow!("file task failed: {e}"))?
}

/// Fetches, decrypts and verifies one chunk.
async fn fetch(remote: &Remote, keys: Arc<Keys>, id: ChunkId) -> Result<Vec<u8>> {
    let bytes = remote
        .chunk(&id)
        .await
        .with_context(|| format!("fetching chunk {}", id.short()))?;
    let data = tokio::task::spawn_blocking(move || blob::open(&keys, BlobKind::Data, &id, &bytes))
        .await
        .map_err(|e| anyhow!("decrypt task failed: {e}"))??;
    Ok(data)
}
