//! The downloads of a restore: chunks fetched ahead and verified, files
//! written through the confined writer (target.rs), largest first, small
//! files of one chunk in groups (one `GetChunks`, one blocking hop).

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use coffre_core::{blob, BlobKind, ChunkId, Content, Keys};

use super::plan::Todo;
use super::shared::{Settle, Sharing};
use super::target::Target;
use super::temp::TempFile;
use crate::copies;
use crate::progress::Progress;
use crate::remote::Remote;

/// Chunks fetched ahead within one file (also `dump`'s window: one file
/// streams as fast as restore writes it).
pub(crate) const WINDOW: usize = 8;
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

/// A file's outcome: its path below the target, its size, and how it went.
pub type Outcome = (PathBuf, u64, Result<()>);

/// What every file task of a restore shares.
#[derive(Clone)]
struct Ctx {
    target: Arc<Target>,
    remote: Arc<Remote>,
    keys: Arc<Keys>,
    sharing: Arc<Sharing>,
    progress: Progress,
}

/// Restores `files` (largest first) into `target`; one outcome per file.
/// `sharing` (planned from the same files in the same order) says which
/// chunks a file reads back from another instead of fetching them.
pub async fn restore_files(
    target: Arc<Target>,
    remote: Arc<Remote>,
    keys: Arc<Keys>,
    sharing: Arc<Sharing>,
    files: Vec<Todo>,
    progress: Progress,
) -> Vec<Outcome> {
    let bar = progress.clone();
    let _link_news = remote.notices_around(move |show| bar.suspend(show));
    let permits = Arc::new(tokio::sync::Semaphore::new(FILES_AT_ONCE));
    let chunks = Arc::new(tokio::sync::Semaphore::new(CHUNKS_IN_FLIGHT));
    let mut tasks = tokio::task::JoinSet::new();
    let mut out = Vec::new();
    let outcome = |r: Result<Vec<Outcome>, tokio::task::JoinError>| {
        r.unwrap_or_else(|e| vec![(PathBuf::new(), 0, Err(anyhow!("restore task failed: {e}")))])
    };
    let mut group = Vec::new();
    let mut group_bytes = 0;
    let ctx = Ctx {
        target,
        remote: remote.clone(),
        keys,
        sharing,
        progress,
    };
    let mut files = files.into_iter().enumerate().peekable();
    while let Some((index, todo)) = files.next() {
        // A finished task holds its future until joined: join as we go, or
        // 50,000 small files keep 38 MB of finished tasks to the end.
        while let Some(r) = tasks.try_join_next() {
            out.extend(outcome(r));
        }
        let permit = |permits: &Arc<tokio::sync::Semaphore>| permits.clone().acquire_owned();
        let (ctx, chunks) = (ctx.clone(), chunks.clone());
        if small_file(&todo).is_none() {
            let permit = permit(&permits).await.expect("never closed");
            tasks.spawn(async move {
                // Settled (failed unless done) however the task ends: the
                // files that borrow its chunks go on.
                let mut settle = Settle::new(&ctx.sharing, index);
                // The files it borrows chunks from come first (shared.rs).
                ctx.sharing.wait(index).await;
                let r = restore_file(&ctx, &chunks, index, &todo).await;
                settle.ok = r.is_ok();
                drop((settle, permit));
                vec![(todo.rel, todo.entry.size, r)]
            });
            continue;
        }
        group_bytes += todo.entry.size;
        group.push((index, todo));
        let next_joins = files.peek().is_some_and(|(_, t)| small_file(t).is_some());
        if next_joins && group.len() < GROUP_FILES && group_bytes < GROUP_BYTES {
            continue;
        }
        let group = std::mem::take(&mut group);
        group_bytes = 0;
        let permit = permit(&permits).await.expect("never closed");
        tasks.spawn(async move {
            let chunk = chunks.acquire_owned().await.expect("never closed");
            let r = restore_group(&ctx, group, chunk).await;
            drop(permit);
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
/// `GetChunks` (each distinct chunk once), then all of them written in one
/// blocking hop. Each file succeeds or fails alone: a blob missing or
/// damaged fails only its file. A file whose chunk belongs to a file outside
/// the group (shared.rs) is written last, once that file is settled, from
/// what reads back from it, else fetched.
async fn restore_group(
    ctx: &Ctx,
    group: Vec<(usize, Todo)>,
    chunk: tokio::sync::OwnedSemaphorePermit,
) -> Vec<Outcome> {
    let Ctx {
        target,
        remote,
        keys,
        sharing,
        progress,
    } = ctx;
    // Each file settled (failed unless written) however this ends.
    let mut settles: HashMap<usize, Settle> = group
        .iter()
        .map(|(i, _)| (*i, Settle::new(sharing, *i)))
        .collect();
    let (Some(first), Some(last)) = (group.first(), group.last()) else {
        return Vec::new();
    };
    let range = first.0..=last.0;
    let (later, now): (Vec<_>, Vec<_>) = group.into_iter().partition(|(i, t)| {
        small_file(t).is_some_and(|id| sharing.borrows_outside(*i, &id, range.clone()))
    });
    let ids: Vec<ChunkId> = now.iter().filter_map(|(_, t)| small_file(t)).collect();
    // Each distinct chunk once, and how many files of the group use it.
    let mut distinct: Vec<ChunkId> = Vec::new();
    let mut users: Vec<usize> = Vec::new();
    let mut at: HashMap<ChunkId, usize> = HashMap::new();
    for id in &ids {
        let k = *at.entry(*id).or_insert_with(|| {
            distinct.push(*id);
            users.push(0);
            distinct.len() - 1
        });
        users[k] += 1;
    }
    let blobs: Vec<Result<Vec<u8>>> = match remote.chunks(&distinct).await {
        Ok(blobs) => blobs
            .into_iter()
            .zip(&distinct)
            .map(|(blob, id)| {
                blob.ok_or_else(|| {
                    anyhow!("fetching chunk {}: the server does not have it", id.short())
                })
            })
            .collect(),
        // The request as a whole failed (a damaged pack on the server, say):
        // ask for each alone, so that only the files concerned fail.
        Err(_) => {
            let mut one_by_one = Vec::with_capacity(distinct.len());
            for id in &distinct {
                one_by_one.push(fetch(remote, id).await);
            }
            one_by_one
        }
    };
    for blob in blobs.iter().flatten() {
        sharing.fetched_one(blob.len());
    }
    let (k, p, t, s) = (
        keys.clone(),
        progress.clone(),
        target.clone(),
        sharing.clone(),
    );
    let written = blocking(move || {
        let mut opened: Vec<Option<Result<Vec<u8>>>> = blobs
            .into_iter()
            .zip(&distinct)
            .map(|(blob, id)| Some(blob.and_then(|b| open(&k, id, b))))
            .collect();
        Ok(now
            .into_iter()
            .zip(ids)
            .map(|((i, todo), id)| {
                let slot = at[&id];
                users[slot] -= 1;
                // The last file of a chunk takes its plaintext, the others
                // a copy.
                let data = if users[slot] == 0 {
                    opened[slot]
                        .take()
                        .unwrap_or_else(|| Err(anyhow!("used up")))
                } else {
                    match &opened[slot] {
                        Some(Ok(d)) => Ok(d.clone()),
                        Some(Err(e)) => Err(anyhow!("{e:#}")),
                        None => Err(anyhow!("used up")),
                    }
                };
                match data {
                    Ok(data) => {
                        let len = data.len();
                        let r = write_whole(&t, &todo, data);
                        if r.is_ok() {
                            s.wrote(i, &id, 0, len);
                            p.inc(todo.entry.size);
                        }
                        Small::Done(i, (todo.rel, todo.entry.size, r))
                    }
                    Err(e) => Small::OtherCopy(i, todo, id, e),
                }
            })
            .collect::<Vec<_>>())
    })
    .await;
    let written = match written {
        Ok(w) => w,
        Err(e) => return vec![(PathBuf::new(), 0, Err(e))],
    };
    let mut settle = |i: usize, ok: bool| {
        if let Some(mut s) = settles.remove(&i) {
            s.ok = ok;
        }
    };
    let mut outcomes = Vec::with_capacity(written.len() + later.len());
    for small in written {
        let (i, outcome) = match small {
            Small::Done(i, outcome) => (i, outcome),
            // The blob served failed to open (or is missing): another copy of
            // the chunk may be good (copies.rs).
            Small::OtherCopy(i, todo, id, e) => {
                let data = match copies::other_copy(remote, keys, BlobKind::Data, &id).await {
                    Ok(Some(data)) => data,
                    Ok(None) | Err(_) => {
                        settle(i, false);
                        outcomes.push((todo.rel, todo.entry.size, Err(e)));
                        continue;
                    }
                };
                let r = write_one(ctx, i, todo, id, data).await;
                (i, r)
            }
        };
        settle(i, outcome.2.is_ok());
        outcomes.push(outcome);
    }
    // The group's own chunks are written: its permit goes back before
    // waiting for other files.
    drop(chunk);
    for (i, todo) in later {
        let Some(id) = small_file(&todo) else {
            continue;
        };
        sharing.wait(i).await;
        let outcome = match get_chunk(ctx, i, id).await {
            Ok(data) => write_one(ctx, i, todo, id, data).await,
            Err(e) => (todo.rel, todo.entry.size, Err(e)),
        };
        settle(i, outcome.2.is_ok());
        outcomes.push(outcome);
    }
    outcomes
}

/// Writes the small file `todo` (file `i`) of chunk `id` from its plaintext
/// on the blocking pool.
async fn write_one(ctx: &Ctx, i: usize, todo: Todo, id: ChunkId, data: Vec<u8>) -> Outcome {
    let size = todo.entry.size;
    let len = data.len();
    let (rel, p, t) = (todo.rel.clone(), ctx.progress.clone(), ctx.target.clone());
    let r = blocking(move || write_whole(&t, &todo, data)).await;
    if r.is_ok() {
        ctx.sharing.wrote(i, &id, 0, len);
        p.inc(size);
    }
    (rel, size, r)
}

/// A small file of a group: written, or its blob failed to open and another
/// copy of its chunk is to be tried.
enum Small {
    Done(usize, Outcome),
    OtherCopy(usize, Todo, ChunkId, anyhow::Error),
}

/// Chunk `id` of file `index`: read back from the file in the target that
/// owns it when it can be (shared.rs), else fetched and opened (another
/// copy of it if the first does not open).
async fn get_chunk(ctx: &Ctx, index: usize, id: ChunkId) -> Result<Vec<u8>> {
    if ctx.sharing.borrows(index, &id) {
        let (s, t, k) = (ctx.sharing.clone(), ctx.target.clone(), ctx.keys.clone());
        if let Some(data) = blocking(move || Ok(s.read_back(&t, &k, index, &id))).await? {
            return Ok(data);
        }
    }
    let blob = fetch(&ctx.remote, &id).await?;
    ctx.sharing.fetched_one(blob.len());
    copies::open_or_other_copy(&ctx.remote, &ctx.keys, BlobKind::Data, &id, blob).await
}

/// Writes the whole file of one chunk from its plaintext: one blocking hop
/// per file (or per group of small files).
fn write_whole(target: &Target, todo: &Todo, data: Vec<u8>) -> Result<()> {
    let size = todo.entry.size;
    if data.len() as u64 != size {
        bail!(
            "the snapshot's chunks make {} bytes where the listing says {size}",
            data.len()
        );
    }
    let mut temp = create(target, todo)?;
    if let Err(e) = temp.file.write_all(&data) {
        target.temps.discard(temp);
        return Err(e).with_context(|| format!("writing {}", target.display(&todo.rel).display()));
    }
    finish(target, temp, todo)
}

/// Creates the temporary file of `todo`.
fn create(target: &Target, todo: &Todo) -> Result<TempFile> {
    let attributes = crate::fsmeta::attributes(&todo.entry.xattrs);
    target.create_temp(&todo.rel, attributes).with_context(|| {
        format!(
            "creating a temporary file for {}",
            target.display(&todo.rel).display()
        )
    })
}

/// Gives the written file its metadata and its final name.
fn finish(target: &Target, temp: TempFile, todo: &Todo) -> Result<()> {
    target
        .finish(temp, &todo.rel, &todo.entry)
        .with_context(|| format!("finishing {}", target.display(&todo.rel).display()))
}

/// Writes one file: its chunks fetched ahead (up to [`WINDOW`], within the
/// shared [`CHUNKS_IN_FLIGHT`]), verified, and written in order on the
/// blocking pool, each write one hop there (the first creates the file, the
/// last gives it its permissions and mtime). A file of one chunk is fetched,
/// then opened and written whole ([`write_whole`]).
async fn restore_file(
    ctx: &Ctx,
    chunks: &Arc<tokio::sync::Semaphore>,
    index: usize,
    todo: &Todo,
) -> Result<()> {
    let (target, progress) = (&ctx.target, &ctx.progress);
    let Content::File(ids) = &todo.entry.content else {
        return Ok(());
    };
    if let &[id] = &ids[..] {
        let _permit = chunks.acquire().await?;
        let data = get_chunk(ctx, index, id).await?;
        let len = data.len();
        let t = target.clone();
        let todo2 = Todo {
            rel: todo.rel.clone(),
            entry: todo.entry.clone(),
        };
        blocking(move || write_whole(&t, &todo2, data)).await?;
        ctx.sharing.wrote(index, &id, 0, len);
        progress.inc(todo.entry.size);
        return Ok(());
    }
    let mut file: Option<TempFile> = None;
    let mut pending = VecDeque::new();
    let mut next = ids.iter().peekable();
    let mut written = 0u64;
    // The chunks this file holds more than once (and no other file owns):
    // fetched at their first place, read back from it at the others.
    let repeated = repeated_in(&ctx.sharing, index, ids);
    let mut seen: HashSet<ChunkId> = HashSet::new();
    let mut places: HashMap<ChunkId, (u64, usize)> = HashMap::new();
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
            // A chunk met again in this file is read back from what this
            // file wrote of it, when its turn to be written comes.
            let again = repeated.contains(&id) && !seen.insert(id);
            let ctx = ctx.clone();
            pending.push_back(tokio::spawn(async move {
                if again {
                    return Ok((id, None, permit));
                }
                // Opened here, so the chunks of a file decrypt in parallel; a
                // blob that fails to open is looked for in the chunk's other
                // copies (copies.rs) before it counts as damage. A chunk
                // another file owns is read back from it (shared.rs).
                let data = get_chunk(&ctx, index, id).await?;
                Ok::<_, anyhow::Error>((id, Some(data), permit))
            }));
        }
        let Some(task) = pending.pop_front() else {
            break;
        };
        let fetched = task.await.map_err(|e| anyhow!("fetch task failed: {e}"));
        let (id, data, permit) = match fetched {
            Ok(Ok(d)) => d,
            Ok(Err(e)) | Err(e) => {
                if let Some(f) = file.take() {
                    target.temps.discard(f);
                }
                return Err(e);
            }
        };
        let data = match data {
            Some(d) => d,
            None => {
                let mut got = None;
                match (places.get(&id).copied(), file.take()) {
                    (Some((offset, len)), Some(f)) => {
                        let (k, t) = (ctx.keys.clone(), target.clone());
                        let (f, d) =
                            blocking(move || read_own(&t, f, offset, len, &k, &id)).await?;
                        file = Some(f);
                        got = d;
                    }
                    (_, f) => file = f,
                }
                match got {
                    Some(d) => {
                        ctx.sharing.copied_one();
                        d
                    }
                    None => match get_chunk(ctx, index, id).await {
                        Ok(d) => d,
                        Err(e) => {
                            if let Some(f) = file.take() {
                                target.temps.discard(f);
                            }
                            return Err(e);
                        }
                    },
                }
            }
        };
        let last = pending.is_empty() && next.peek().is_none();
        let (t, sharing) = (target.clone(), ctx.sharing.clone());
        let size = todo.entry.size;
        let todo2 = Todo {
            rel: todo.rel.clone(),
            entry: todo.entry.clone(),
        };
        let (f, n) = blocking(move || {
            let total = written + data.len() as u64;
            if last && total != size {
                if let Some(f) = file {
                    t.temps.discard(f);
                }
                bail!("the snapshot's chunks make {total} bytes where the listing says {size}");
            }
            let n = data.len() as u64;
            let mut f = match file {
                Some(f) => f,
                None => create(&t, &todo2)?,
            };
            let r = f.file.write_all(&data);
            drop(permit);
            if let Err(e) = r {
                t.temps.discard(f);
                return Err(e)
                    .with_context(|| format!("writing {}", t.display(&todo2.rel).display()));
            }
            sharing.wrote(index, &id, written, n as usize);
            if last {
                finish(&t, f, &todo2)?;
                return Ok((None, n));
            }
            Ok((Some(f), n))
        })
        .await?;
        file = f;
        if repeated.contains(&id) {
            places.entry(id).or_insert((written, n as usize));
        }
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
        let todo2 = Todo {
            rel: todo.rel.clone(),
            entry: todo.entry.clone(),
        };
        blocking(move || {
            let f = create(&t, &todo2)?;
            finish(&t, f, &todo2)
        })
        .await?;
    }
    Ok(())
}

/// The chunks `ids` of file `index` holds more than once and no other file
/// owns.
fn repeated_in(sharing: &Sharing, index: usize, ids: &[ChunkId]) -> HashSet<ChunkId> {
    let mut once = HashSet::new();
    ids.iter()
        .filter(|id| !sharing.borrows(index, id) && !once.insert(**id))
        .copied()
        .collect()
}

/// `len` bytes at `offset` of the temporary file being written, if they are
/// chunk `id` (keyed BLAKE3); the file is given back with its position at
/// its end, where writing goes on (or discarded if that fails).
fn read_own(
    target: &Target,
    mut temp: TempFile,
    offset: u64,
    len: usize,
    keys: &Keys,
    id: &ChunkId,
) -> Result<(TempFile, Option<Vec<u8>>)> {
    let mut data = vec![0; len];
    let read = temp
        .file
        .seek(SeekFrom::Start(offset))
        .and_then(|_| temp.file.read_exact(&mut data));
    if let Err(e) = temp.file.seek(SeekFrom::End(0)) {
        target.temps.discard(temp);
        return Err(e).context("reading back a chunk of the file being written");
    }
    let good = read.is_ok() && ChunkId::compute(keys, &data) == *id;
    Ok((temp, good.then_some(data)))
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
