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

use crate::copies;
use crate::fsmeta;
use crate::progress::Progress;
use crate::remote::Remote;
use crate::session::Session;
use crate::trees::{self, Found, Trees};

/// Chunks fetched ahead within one file.
const WINDOW: usize = 8;
/// Files restored at once.
const FILES_AT_ONCE: usize = 8;
/// Chunks fetched and not yet written, over all files: what bounds memory on
/// both sides (a blob is at most 4 MiB of data; the server holds what it has
/// read and not yet sent). 32 keep the link and both cores busy: with 16 a
/// restore took half as long again (docs/performance.md).
const CHUNKS_IN_FLIGHT: usize = 32;
/// A file of one chunk up to this size is restored in a group with others
/// like it: one `GetChunks` request and one blocking hop for the group,
/// instead of a request and a hop per file (docs/performance.md, "Third
/// round").
const SMALL_FILE: u64 = 512 * 1024;
/// Most files in one group.
const GROUP_FILES: usize = 256;
/// Most bytes in one group: a group holds one of the [`CHUNKS_IN_FLIGHT`]
/// permits, like one chunk of a large file (at most 4 MiB).
const GROUP_BYTES: u64 = 2 * 1024 * 1024;

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
            Err(_) => todo.push(Todo { dest, entry: e }),
            Ok(md) => {
                let m = fsmeta::meta(&md);
                if md.is_file() && m.size == e.size && m.mtime == e.mtime {
                    report.already += 1;
                } else if opts.overwrite && !md.is_dir() {
                    todo.push(Todo { dest, entry: e });
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

    // Largest files first: a big mail archive started last would finish alone,
    // on one core, after everything else (longest job first keeps both the
    // network and the cores busy to the end).
    todo.sort_by_key(|t| std::cmp::Reverse(t.entry.size));
    let total: u64 = todo.iter().map(|t| t.entry.size).sum();
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

/// A file to write.
struct Todo {
    dest: PathBuf,
    entry: Entry,
}

async fn restore_files(
    remote: Arc<Remote>,
    keys: Arc<Keys>,
    files: Vec<Todo>,
    progress: Progress,
) -> Vec<Outcome> {
    let permits = Arc::new(tokio::sync::Semaphore::new(FILES_AT_ONCE));
    let chunks = Arc::new(tokio::sync::Semaphore::new(CHUNKS_IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    let mut out = Vec::new();
    let outcome = |r: Result<Vec<Outcome>, tokio::task::JoinError>| {
        r.unwrap_or_else(|e| vec![(PathBuf::new(), 0, Err(anyhow!("restore task failed: {e}")))])
    };
    let mut group = Vec::new();
    let mut group_bytes = 0;
    let mut files = files.into_iter().peekable();
    while let Some(todo) = files.next() {
        // A finished task holds its future until joined: join as we go, or
        // 50,000 small files keep 38 MB of finished tasks to the end.
        while let Some(r) = tasks.try_join_next() {
            out.extend(outcome(r));
        }
        let permit = |permits: &Arc<tokio::sync::Semaphore>| permits.clone().acquire_owned();
        let (remote, keys, progress) = (remote.clone(), keys.clone(), progress.clone());
        let chunks = chunks.clone();
        if small_file(&todo).is_none() {
            let permit = permit(&permits).await.expect("never closed");
            tasks.spawn(async move {
                let r = restore_file(&remote, &keys, &chunks, &todo, &progress).await;
                drop(permit);
                vec![(todo.dest, todo.entry.size, r)]
            });
            continue;
        }
        group_bytes += todo.entry.size;
        group.push(todo);
        let next_joins = files.peek().is_some_and(|t| small_file(t).is_some());
        if next_joins && group.len() < GROUP_FILES && group_bytes < GROUP_BYTES {
            continue;
        }
        let group = std::mem::take(&mut group);
        group_bytes = 0;
        let permit = permit(&permits).await.expect("never closed");
        tasks.spawn(async move {
            let chunk = chunks.acquire_owned().await.expect("never closed");
            let r = restore_group(&remote, &keys, group, &progress).await;
            drop((chunk, permit));
            r
        });
    }
    while let Some(r) = tasks.join_next().await {
        out.extend(outcome(r));
    }
    out
}

/// The one chunk of a file restored in a group ([`SMALL_FILE`]).
fn small_file(todo: &Todo) -> Option<ChunkId> {
    match &todo.entry.content {
        Content::File(ids) if ids.len() == 1 && todo.entry.size <= SMALL_FILE => Some(ids[0]),
        _ => None,
    }
}

/// Restores a group of small files of one chunk each: their blobs in one
/// `GetChunks`, then all of them written in one blocking hop. Each file
/// succeeds or fails alone: a blob missing or damaged fails only its file.
async fn restore_group(
    remote: &Remote,
    keys: &Arc<Keys>,
    group: Vec<Todo>,
    progress: &Progress,
) -> Vec<Outcome> {
    let ids: Vec<ChunkId> = group.iter().filter_map(small_file).collect();
    let blobs: Vec<Result<Vec<u8>>> = match remote.chunks(&ids).await {
        Ok(blobs) => blobs
            .into_iter()
            .zip(&ids)
            .map(|(blob, id)| {
                blob.ok_or_else(|| {
                    anyhow!("fetching chunk {}: the server does not have it", id.short())
                })
            })
            .collect(),
        // The request as a whole failed (a damaged pack on the server, say):
        // ask for each alone, so that only the files concerned fail.
        Err(_) => {
            let mut one_by_one = Vec::with_capacity(ids.len());
            for id in &ids {
                one_by_one.push(fetch(remote, id).await);
            }
            one_by_one
        }
    };
    let (k, p) = (keys.clone(), progress.clone());
    let written = blocking(move || {
        Ok(group
            .into_iter()
            .zip(ids.into_iter().zip(blobs))
            .map(
                |(todo, (id, blob))| match blob.and_then(|b| open(&k, &id, b)) {
                    Ok(data) => {
                        let r = write_whole(&Target::new(&todo), data);
                        if r.is_ok() {
                            p.inc(todo.entry.size);
                        }
                        Small::Done((todo.dest, todo.entry.size, r))
                    }
                    Err(e) => Small::OtherCopy(todo, id, e),
                },
            )
            .collect::<Vec<_>>())
    })
    .await;
    let written = match written {
        Ok(w) => w,
        Err(e) => return vec![(PathBuf::new(), 0, Err(e))],
    };
    let mut outcomes = Vec::with_capacity(written.len());
    for small in written {
        outcomes.push(match small {
            Small::Done(outcome) => outcome,
            // The blob served failed to open (or is missing): another copy of
            // the chunk may be good (copies.rs).
            Small::OtherCopy(todo, id, e) => {
                let data = match copies::other_copy(remote, keys, BlobKind::Data, &id).await {
                    Ok(Some(data)) => data,
                    Ok(None) | Err(_) => {
                        outcomes.push((todo.dest, todo.entry.size, Err(e)));
                        continue;
                    }
                };
                let size = todo.entry.size;
                let (dest, p) = (todo.dest.clone(), progress.clone());
                let r = blocking(move || write_whole(&Target::new(&todo), data)).await;
                if r.is_ok() {
                    p.inc(size);
                }
                (dest, size, r)
            }
        });
    }
    outcomes
}

/// A small file of a group: written, or its blob failed to open and another
/// copy of its chunk is to be tried.
enum Small {
    Done(Outcome),
    OtherCopy(Todo, ChunkId, anyhow::Error),
}

/// Writes the whole file of one chunk from its plaintext: one blocking hop
/// per file (or per group of small files).
fn write_whole(t: &Target, data: Vec<u8>) -> Result<()> {
    let size = t.entry.size;
    if data.len() as u64 != size {
        bail!(
            "the snapshot's chunks make {} bytes where the listing says {size}",
            data.len()
        );
    }
    let mut f = t.create()?;
    if let Err(e) = f
        .write_all(&data)
        .with_context(|| format!("writing {}", t.path.display()))
    {
        t.discard(Some(f));
        return Err(e);
    }
    t.finish(f)
}

/// The temporary name a file is written under until complete. (Writing new
/// files in place saved a fifth of a 50,000-file restore, but an interrupted
/// restore would then leave partial files under their real names, which the
/// rerun could not tell from the user's: docs/performance.md.)
fn part_name(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.coffre-restore"))
}

/// Writes one file: its chunks fetched ahead (up to [`WINDOW`], within the
/// shared [`CHUNKS_IN_FLIGHT`]), verified, and written in order on the
/// blocking pool, each write one hop there (the first creates the file, the
/// last gives it its permissions and mtime). A file of one chunk is fetched,
/// then opened and written whole ([`write_whole`]).
async fn restore_file(
    remote: &Arc<Remote>,
    keys: &Arc<Keys>,
    chunks: &Arc<tokio::sync::Semaphore>,
    todo: &Todo,
    progress: &Progress,
) -> Result<()> {
    let Content::File(ids) = &todo.entry.content else {
        return Ok(());
    };
    let target = Arc::new(Target::new(todo));
    if let &[id] = &ids[..] {
        let _permit = chunks.acquire().await?;
        let blob = fetch(remote, &id).await?;
        let data = copies::open_or_other_copy(remote, keys, BlobKind::Data, &id, blob).await?;
        let t = target.clone();
        blocking(move || write_whole(&t, data)).await?;
        progress.inc(todo.entry.size);
        return Ok(());
    }
    let mut file: Option<fs::File> = None;
    let mut pending = VecDeque::new();
    let mut next = ids.iter().peekable();
    let mut written = 0u64;
    loop {
        while pending.len() < WINDOW {
            let Some(&&id) = next.peek() else { break };
            // A chunk's permit lives until it is written. Waiting for one is
            // only done holding none (nothing pending): a file that holds
            // fetched chunks never waits on others, so no deadlock.
            let permit = if pending.is_empty() {
                chunks.clone().acquire_owned().await?
            } else {
                match chunks.clone().try_acquire_owned() {
                    Ok(p) => p,
                    Err(_) => break,
                }
            };
            next.next();
            let (remote, keys) = (remote.clone(), keys.clone());
            pending.push_back(tokio::spawn(async move {
                // Opened here, so the chunks of a file decrypt in parallel; a
                // blob that fails to open is looked for in the chunk's other
                // copies (copies.rs) before it counts as damage.
                let blob = fetch(&remote, &id).await?;
                let data =
                    copies::open_or_other_copy(&remote, &keys, BlobKind::Data, &id, blob).await?;
                Ok::<_, anyhow::Error>((data, permit))
            }));
        }
        let Some(task) = pending.pop_front() else {
            break;
        };
        let fetched = task.await.map_err(|e| anyhow!("fetch task failed: {e}"));
        let (data, permit) = match fetched {
            Ok(Ok(d)) => d,
            Ok(Err(e)) | Err(e) => {
                target.discard(file.take());
                return Err(e);
            }
        };
        let last = pending.is_empty() && next.peek().is_none();
        let t = target.clone();
        let size = todo.entry.size;
        let (f, n) = blocking(move || {
            let total = written + data.len() as u64;
            if last && total != size {
                t.discard(file);
                bail!("the snapshot's chunks make {total} bytes where the listing says {size}");
            }
            let n = data.len() as u64;
            let mut f = match file {
                Some(f) => f,
                None => t.create()?,
            };
            let r = f
                .write_all(&data)
                .with_context(|| format!("writing {}", t.path.display()));
            drop(permit);
            if let Err(e) = r {
                t.discard(Some(f));
                return Err(e);
            }
            if last {
                t.finish(f)?;
                return Ok((None, n));
            }
            Ok((Some(f), n))
        })
        .await?;
        file = f;
        written += n;
        progress.inc(n);
    }
    if ids.is_empty() {
        if todo.entry.size != 0 {
            bail!(
                "the snapshot lists no chunk for a file of {} bytes",
                todo.entry.size
            );
        }
        let t = target.clone();
        blocking(move || {
            let f = t.create()?;
            t.finish(f)
        })
        .await?;
    }
    Ok(())
}

/// Where one file is written, and what it must look like once complete.
struct Target {
    /// Written here: a temporary name beside the destination.
    path: PathBuf,
    dest: PathBuf,
    entry: Entry,
}

impl Target {
    fn new(todo: &Todo) -> Self {
        Target {
            path: part_name(&todo.dest),
            dest: todo.dest.clone(),
            entry: todo.entry.clone(),
        }
    }

    fn create(&self) -> Result<fs::File> {
        fs::File::create(&self.path).with_context(|| format!("creating {}", self.path.display()))
    }

    /// Gives the file its mtime, then its permissions and owner (a read-only
    /// file can no longer be opened to set the mtime), then its final name.
    fn finish(&self, file: fs::File) -> Result<()> {
        let e = &self.entry;
        file.set_modified(e.mtime.into())
            .with_context(|| format!("setting the mtime of {}", self.path.display()))?;
        drop(file);
        fsmeta::apply_owner_and_mode(&self.path, e.mode, e.uid, e.gid, false)
            .with_context(|| format!("setting the permissions of {}", self.path.display()))?;
        fs::rename(&self.path, &self.dest)
            .with_context(|| format!("renaming into {}", self.dest.display()))
    }

    /// Removes what was written of a file that failed.
    fn discard(&self, file: Option<fs::File>) {
        if let Some(f) = file {
            drop(f);
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Runs file system work on the blocking pool.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| anyhow!("file task failed: {e}"))?
}

/// Fetches one chunk's blob.
async fn fetch(remote: &Remote, id: &ChunkId) -> Result<Vec<u8>> {
    remote
        .chunk(id)
        .await
        .with_context(|| format!("fetching chunk {}", id.short()))
}

/// Decrypts and verifies one chunk, in its own buffer.
fn open(keys: &Keys, id: &ChunkId, blob: Vec<u8>) -> Result<Vec<u8>> {
    Ok(blob::open_owned(keys, BlobKind::Data, id, blob)?)
}
