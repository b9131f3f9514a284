//! The backup: walk, skip what the files cache knows, read, chunk, dedup,
//! compress, encrypt and upload what is new, write the trees, commit the
//! snapshot.
//!
//! ```text
//! walk ─► files cache ─► pipeline (all cores: read → chunk → id → dedup → seal)
//!                              │ sealed blobs (bounded channel: back-pressure)
//!                              ▼
//!                         uploader (async): has-chunks per batch, then up to
//!                         `uploads` puts in flight; each confirmed id is journaled
//! trees (bottom-up, deduplicated like data) ─► manifest ─► commit ─► files cache
//! ```
//!
//! **Dedup.** A chunk is sealed only if no earlier snapshot of the subscriber
//! (the latest of each device), the files cache, or the journal of an
//! interrupted run names it; a sealed chunk is sent only if the server says it
//! does not have it. So a rerun after an interruption sends nothing twice.
//!
//! **Nothing committed is lost, nothing half-made is visible.** The snapshot
//! exists only once the server has checked that every chunk it names is
//! durable. If the server no longer has a chunk the caches promised (an
//! admin deleted snapshots), the commit is refused and [`run`] is called
//! again without the caches.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use coffre_core::manifest::{PrivatePart, PublicPart, Statistics};
use coffre_core::pipeline::Dedup as _;
use coffre_core::pipeline::{self, Config as PipelineConfig, Event, Input, SeenSet};
use coffre_core::{
    BlobKind, ChunkId, Content, Entry, Manifest, Sealer, SnapshotId, Timestamp, Tree,
};
use tokio::sync::mpsc;

use crate::files_cache::{Cached, FilesCache};
use crate::fsmeta::{self, Meta};
use crate::progress::Progress;
use crate::remote::Remote;
use crate::session::Session;
use crate::walk::{self, Item, Kind, Walker};

/// Blobs asked about in one has-chunks request.
const BATCH: usize = 64;

/// A blob up to this size is uploaded with others in one `PutChunks`
/// request, up to [`PUT_GROUP_BYTES`]: 50,000 small files make a few
/// hundred requests instead of 50,000 (docs/performance.md).
const SMALL_BLOB: usize = 256 * 1024;
/// Most bytes of blobs in one `PutChunks` request from the uploader.
const PUT_GROUP_BYTES: usize = 1024 * 1024;

/// Bytes of sealed blobs waiting for the uploader (the outbox), in KiB.
const OUTBOX_KIB: u32 = 4 * 1024;

/// Sealed blobs on their way from the pipeline (and the tree builder) to the
/// uploader, bounded in bytes rather than in count: a few large blobs, or
/// enough small ones to fill a has-chunks batch. A bound of 16 blobs held up
/// to 16 × 4 MiB, and the client's backup peak was a third sealed blobs
/// waiting; a bound of 2 cut it but made 50,000 small files ask has-chunks for
/// 2 blobs at a time, 35 % slower (docs/performance.md).
struct Outbox {
    tx: mpsc::Sender<Outgoing>,
    budget: Arc<tokio::sync::Semaphore>,
    rt: tokio::runtime::Handle,
}

/// A blob in the outbox; `queued` is its share of the budget, given back
/// when the uploader puts it in flight or drops it (the server has it).
struct Outgoing {
    id: ChunkId,
    blob: Vec<u8>,
    queued: tokio::sync::OwnedSemaphorePermit,
}

impl Outbox {
    fn new(rt: tokio::runtime::Handle) -> (Outbox, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(BATCH);
        let budget = Arc::new(tokio::sync::Semaphore::new(OUTBOX_KIB as usize));
        (Outbox { tx, budget, rt }, rx)
    }

    /// Waits for room (a blob larger than the budget waits for an empty
    /// outbox), then queues the blob. Called from the pipeline's thread.
    fn send(&self, id: ChunkId, blob: Vec<u8>) -> Result<()> {
        let kib = (blob.len().div_ceil(1024) as u32).clamp(1, OUTBOX_KIB);
        let queued = self
            .rt
            .block_on(self.budget.clone().acquire_many_owned(kib))
            .map_err(|_| anyhow!("the upload stopped"))?;
        self.tx
            .blocking_send(Outgoing { id, blob, queued })
            .map_err(|_| anyhow!("the upload stopped"))
    }
}

/// What to back up, and how.
#[derive(Debug, Clone)]
pub struct Options {
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
}

/// How a backup went.
#[derive(Debug, Clone)]
pub struct Report {
    /// The new snapshot.
    pub snapshot: SnapshotId,
    /// Counters recorded in the snapshot.
    pub stats: Statistics,
    /// Files in the snapshot.
    pub files: u64,
    /// Their total size.
    pub logical_bytes: u64,
    /// Blobs uploaded.
    pub blobs_sent: u64,
    /// Blobs uploaded that the server already had (sent twice: should stay 0).
    pub blobs_duplicate: u64,
    /// Paths that could not be read.
    pub errors: Vec<(PathBuf, String)>,
    /// Special files skipped.
    pub special: Vec<PathBuf>,
    /// Items excluded.
    pub excluded: u64,
    /// Wall time.
    pub duration: Duration,
}

impl Report {
    /// The one-line summary.
    pub fn summary(&self) -> String {
        use coffre_core::units::format_size;
        let s = &self.stats;
        let mut line = format!(
            "snapshot {} saved: {} files ({} new, {} changed, {} unchanged), {} in total, read {}, sent {}, {:.1} s",
            self.snapshot.short(),
            self.files,
            s.files_new,
            s.files_changed,
            s.files_unchanged,
            format_size(self.logical_bytes),
            format_size(s.bytes_read),
            format_size(s.bytes_sent),
            self.duration.as_secs_f64()
        );
        if !self.errors.is_empty() {
            line.push_str(&format!(
                "; {} could not be read (listed above, recorded in the snapshot)",
                self.errors.len()
            ));
        }
        line
    }
}

/// Where a file's chunks come from.
enum Slot {
    /// The files cache: unchanged.
    Cached(Vec<ChunkId>),
    /// Read in this run: index into the read list.
    Read(usize),
}

/// Runs one backup.
pub fn run(session: &Session, opts: &Options) -> Result<Report> {
    let started = Instant::now();
    let time = Timestamp::now();
    let inst = &session.inst;
    let keys = &session.keys;

    // 1. Walk.
    let paths = walk::normalize(&opts.paths)?;
    // This installation's own caches are never backed up (the walk sees
    // canonical paths, so the cache's path is made canonical too).
    let cache_dir = std::fs::canonicalize(inst.cache_dir()).unwrap_or_else(|_| inst.cache_dir());
    let walker = Walker::new(&opts.excludes, vec![cache_dir])?;
    let scan = walker.scan(&paths)?;

    // 2. What is known to be on the server already.
    let (cache, cache_warning) = if opts.use_caches {
        FilesCache::load(&inst.files_cache_path(), keys)
    } else {
        (FilesCache::default(), None)
    };
    if let Some(w) = cache_warning {
        eprintln!("coffre: warning: {w}");
    }
    let list = session.snapshots()?;
    let parent = list
        .iter()
        .filter(|s| s.device == inst.config.device)
        .max_by_key(|s| (s.time, s.id))
        .map(|s| ChunkId::from_bytes(s.id));
    let mut known: HashSet<ChunkId> = HashSet::new();
    if opts.use_caches {
        known.extend(cache.chunk_ids().copied());
        known.extend(read_journal(&inst.uploaded_path()));
        // The latest snapshot of each device: cross-device dedup.
        let mut latest: std::collections::HashMap<&str, &coffre_proto::SnapshotEntry> =
            Default::default();
        for s in &list {
            let e = latest.entry(s.device.as_str()).or_insert(s);
            if (s.time, s.id) > (e.time, e.id) {
                *e = s;
            }
        }
        for s in latest.values() {
            let bytes = match session.block_on(session.remote.manifest(&ChunkId::from_bytes(s.id)))
            {
                Ok(bytes) => bytes,
                // Retention removed it since the list (the device made newer
                // ones meanwhile): these chunks are only a dedup hint, and the
                // server is asked about the rest anyway.
                Err(e) if e.code() == Some(coffre_proto::ErrorCode::NotFound) => continue,
                Err(e) => return Err(e.into()),
            };
            let (public, _) = Manifest::read_public(&bytes).with_context(|| {
                format!("reading snapshot {}", ChunkId::from_bytes(s.id).short())
            })?;
            known.extend(public.chunks);
        }
    }

    // 3. Which files must be read.
    let mut slots = Vec::new();
    let mut to_read: Vec<(PathBuf, u64)> = Vec::new();
    let mut stats = Statistics::default();
    plan(&scan.root, &cache, &mut slots, &mut to_read, &mut stats);
    stats.dirs = scan.tally.dirs;
    let read_total: u64 = to_read.iter().map(|(_, s)| s).sum();

    // 4. Read, chunk, seal and upload.
    let progress = Progress::bytes(read_total, "backup", opts.progress);
    for (path, why) in &scan.tally.errors {
        progress.println(&format!("coffre: cannot read {}: {why}", path.display()));
    }
    for path in &scan.tally.special {
        progress.println(&format!(
            "coffre: warning: skipped {} (a FIFO, socket or device file)",
            path.display()
        ));
    }
    let sent = Arc::new(AtomicU64::new(0));
    let journal = Journal::open(&inst.uploaded_path(), opts.use_caches)?;
    let (tx, rx) = Outbox::new(session.rt.handle().clone());
    let uploader = session.rt.spawn(upload(
        session.remote.clone(),
        rx,
        opts.uploads.max(1),
        journal,
        sent.clone(),
    ));
    let dedup = SeenSet::with_known(known);
    let threads = if opts.threads == 0 {
        PipelineConfig::default().threads
    } else {
        opts.threads
    };
    let mut contents: Vec<Vec<ChunkId>> = vec![Vec::new(); to_read.len()];
    let mut read_sizes: Vec<Option<u64>> = vec![None; to_read.len()];
    let mut errors = scan.tally.errors.clone();
    let mut files_done = 0u64;
    let inputs = to_read.iter().map(|(path, size)| {
        let f = File::open(path)?;
        Ok(Input {
            reader: Box::new(f),
            size_hint: Some(*size),
        })
    });
    let piped = pipeline::run::<_, anyhow::Error, _>(
        keys,
        &PipelineConfig::with_threads(threads),
        inputs,
        &dedup,
        |ev| {
            match ev {
                Event::Chunk {
                    file,
                    id,
                    len,
                    blob,
                } => {
                    contents[file].push(id);
                    progress.inc(len as u64);
                    if let Some(blob) = blob {
                        tx.send(id, blob)?;
                    }
                }
                Event::FileDone { file, bytes, .. } => {
                    read_sizes[file] = Some(bytes);
                    files_done += 1;
                    progress.message(|| {
                        format!(
                            "{files_done}/{} files, sent {}",
                            to_read.len(),
                            coffre_core::units::format_size(sent.load(Ordering::Relaxed))
                        )
                    });
                }
                Event::FileFailed { file, error } => {
                    contents[file].clear();
                    let path = &to_read[file].0;
                    progress.println(&format!("coffre: cannot read {}: {error}", path.display()));
                    errors.push((path.clone(), error.to_string()));
                }
            }
            Ok(())
        },
    );
    let totals = match piped {
        Ok(t) => t,
        Err(e) => {
            progress.finish();
            drop(tx);
            // The uploader's error is the cause (a full quota, a lost connection).
            return match session.block_on(uploader) {
                Ok(Err(up)) => Err(up),
                _ => Err(e),
            };
        }
    };
    stats.bytes_read = totals.bytes_read;

    // 5. Trees, bottom-up; they dedup like data.
    let mut builder = TreeBuilder {
        keys,
        sealer: Sealer::new(coffre_core::blob::DEFAULT_ZSTD_LEVEL),
        dedup: &dedup,
        tx,
        slots: slots.into_iter(),
        contents,
        read_sizes,
        ids: HashSet::new(),
        new_cache: FilesCache::default(),
        files: 0,
        logical: 0,
    };
    let root = builder.dir(&scan.root);
    // Dropping the builder closes the channel: the uploader finishes.
    let TreeBuilder {
        ids,
        new_cache,
        files,
        logical,
        tx,
        ..
    } = builder;
    drop(tx);
    let uploaded = session
        .block_on(uploader)
        .map_err(|e| anyhow!("the upload task failed: {e}"))?;
    progress.finish();
    let (blobs_sent, blobs_duplicate) = uploaded?;
    let root = root?;
    stats.bytes_sent = sent.load(Ordering::Relaxed);

    // 6. The snapshot.
    let mut chunks: Vec<ChunkId> = ids.into_iter().collect();
    chunks.sort_unstable();
    let manifest = Manifest {
        public: PublicPart {
            time,
            device: inst.config.device.clone(),
            logical_bytes: logical,
            file_count: files,
            chunks,
        },
        private: PrivatePart {
            root,
            paths: paths.iter().map(|p| fsmeta::path_bytes(p)).collect(),
            hostname: hostname(),
            tags: opts.tags.clone(),
            parent,
            stats: stats.clone(),
            errors: errors
                .iter()
                .map(|(p, e)| (fsmeta::path_bytes(p), e.clone()))
                .collect(),
        },
    };
    let sealed = manifest.seal(keys)?;
    let snapshot = session.block_on(session.remote.commit(sealed))?;

    // 7. Remember for next time.
    if let Err(e) = new_cache.save(&inst.files_cache_path(), keys) {
        eprintln!("coffre: warning: cannot write the files cache: {e:#}");
    }
    let _ = std::fs::remove_file(inst.uploaded_path());
    Ok(Report {
        snapshot,
        stats,
        files,
        logical_bytes: logical,
        blobs_sent,
        blobs_duplicate,
        errors,
        special: scan.tally.special.clone(),
        excluded: scan.tally.excluded,
        duration: started.elapsed(),
    })
}

/// Assigns each file (in walk order) its slot, and counts new, changed and unchanged files.
fn plan(
    items: &[Item],
    cache: &FilesCache,
    slots: &mut Vec<Slot>,
    to_read: &mut Vec<(PathBuf, u64)>,
    stats: &mut Statistics,
) {
    for item in items {
        match &item.kind {
            Kind::Dir(children) => plan(children, cache, slots, to_read, stats),
            Kind::File(path) => {
                let key = fsmeta::path_bytes(path);
                match cache.lookup(&key, &item.meta.stamp) {
                    Some(ids) => {
                        stats.files_unchanged += 1;
                        slots.push(Slot::Cached(ids.to_vec()));
                    }
                    None => {
                        if cache.lookup_any(&key) {
                            stats.files_changed += 1;
                        } else {
                            stats.files_new += 1;
                        }
                        slots.push(Slot::Read(to_read.len()));
                        to_read.push((path.clone(), item.meta.size));
                    }
                }
            }
            Kind::Symlink(_) => {}
        }
    }
}

struct TreeBuilder<'a> {
    keys: &'a coffre_core::Keys,
    sealer: Sealer,
    dedup: &'a SeenSet,
    tx: Outbox,
    slots: std::vec::IntoIter<Slot>,
    contents: Vec<Vec<ChunkId>>,
    read_sizes: Vec<Option<u64>>,
    /// Every blob the snapshot needs.
    ids: HashSet<ChunkId>,
    new_cache: FilesCache,
    files: u64,
    logical: u64,
}

impl TreeBuilder<'_> {
    /// Stores the tree of `items` (walk order, like [`plan`]); returns its id.
    fn dir(&mut self, items: &[Item]) -> Result<ChunkId> {
        let mut entries = Vec::with_capacity(items.len());
        for item in items {
            let (content, size) = match &item.kind {
                Kind::Dir(children) => (Content::Dir(self.dir(children)?), 0),
                Kind::Symlink(target) => (Content::Symlink(target.clone()), 0),
                Kind::File(path) => {
                    let (ids, size) = match self.slots.next().expect("one slot per file") {
                        Slot::Cached(ids) => (ids, item.meta.size),
                        Slot::Read(i) => match self.read_sizes[i] {
                            Some(size) => (std::mem::take(&mut self.contents[i]), size),
                            None => continue, // could not be read: reported
                        },
                    };
                    self.ids.extend(ids.iter().copied());
                    self.files += 1;
                    self.logical += size;
                    // A file read while it changed is read again next time.
                    if size == item.meta.size {
                        self.new_cache.insert(
                            fsmeta::path_bytes(path),
                            Cached {
                                stamp: item.meta.stamp,
                                chunks: ids.clone(),
                            },
                        );
                    }
                    (Content::File(ids), size)
                }
            };
            entries.push(entry(item, &item.meta, content, size));
        }
        let tree = Tree::new(entries)?;
        let encoded = tree.encode();
        let id = ChunkId::compute(self.keys, &encoded);
        self.ids.insert(id);
        if self.dedup.should_store(&id) {
            let blob = self.sealer.seal(self.keys, BlobKind::Tree, &id, &encoded)?;
            self.tx.send(id, blob)?;
        }
        Ok(id)
    }
}

fn entry(item: &Item, meta: &Meta, content: Content, size: u64) -> Entry {
    Entry {
        name: item.name.clone(),
        mode: meta.mode,
        uid: meta.uid,
        gid: meta.gid,
        mtime: meta.mtime,
        size,
        xattrs: Vec::new(),
        content,
    }
}

/// Uploads sealed blobs: asks the server which of a batch it lacks, sends
/// those with up to `concurrency` in flight, journals every confirmed id.
/// Returns the number of blobs sent, and of those the server already had.
async fn upload(
    remote: Arc<Remote>,
    mut rx: mpsc::Receiver<Outgoing>,
    concurrency: usize,
    journal: Journal,
    sent: Arc<AtomicU64>,
) -> Result<(u64, u64)> {
    let journal = Arc::new(Mutex::new(journal));
    let duplicates = Arc::new(AtomicU64::new(0));
    let permits = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    let mut blobs = 0u64;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(b) => batch.push(b),
                Err(_) => break,
            }
        }
        let ids: Vec<ChunkId> = batch.iter().map(|o| o.id).collect();
        let have = remote.has_chunks(&ids).await?;
        journal
            .lock()
            .unwrap()
            .record(ids.iter().zip(&have).filter(|(_, h)| **h).map(|(i, _)| i))?;
        // The blobs the server lacks: small ones in groups (one request
        // each), larger ones alone (sent from their own buffer).
        let mut groups: Vec<Vec<Outgoing>> = Vec::new();
        let mut small: Vec<Outgoing> = Vec::new();
        let mut small_bytes = 0;
        for (out, has) in batch.into_iter().zip(have) {
            if has {
                continue;
            }
            if out.blob.len() > SMALL_BLOB {
                groups.push(vec![out]);
                continue;
            }
            small_bytes += out.blob.len();
            small.push(out);
            if small_bytes >= PUT_GROUP_BYTES {
                groups.push(std::mem::take(&mut small));
                small_bytes = 0;
            }
        }
        if !small.is_empty() {
            groups.push(small);
        }
        for group in groups {
            while let Some(done) = tasks.try_join_next() {
                done??;
            }
            let permit = permits.clone().acquire_owned().await?;
            // In flight now, bounded by `concurrency`: out of the outbox.
            let group: Vec<(ChunkId, Vec<u8>)> = group
                .into_iter()
                .map(|Outgoing { id, blob, queued }| {
                    drop(queued);
                    (id, blob)
                })
                .collect();
            let (remote, journal, sent) = (remote.clone(), journal.clone(), sent.clone());
            let duplicates = duplicates.clone();
            blobs += group.len() as u64;
            tasks.spawn(async move {
                let len: u64 = group.iter().map(|(_, b)| b.len() as u64).sum();
                let ids: Vec<ChunkId> = group.iter().map(|(id, _)| *id).collect();
                let new = match <[_; 1]>::try_from(group) {
                    Ok([(id, blob)]) => vec![remote.put_chunk(&id, blob).await?],
                    Err(group) => remote.put_chunks(group).await?,
                };
                let old = new.iter().filter(|n| !**n).count();
                duplicates.fetch_add(old as u64, Ordering::Relaxed);
                sent.fetch_add(len, Ordering::Relaxed);
                journal.lock().unwrap().record(ids.iter())?;
                drop(permit);
                Ok::<_, anyhow::Error>(())
            });
        }
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok((blobs, duplicates.load(Ordering::Relaxed)))
}

/// Ids the server confirmed during a backup that has not committed yet, so
/// that a rerun after an interruption neither seals nor sends them again.
struct Journal(File);

impl Journal {
    fn open(path: &std::path::Path, enabled: bool) -> Result<Journal> {
        if !enabled {
            let _ = std::fs::remove_file(path);
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(Journal(f))
    }

    fn record<'a>(&mut self, ids: impl Iterator<Item = &'a ChunkId>) -> io::Result<()> {
        let mut buf = Vec::new();
        ids.for_each(|id| buf.extend_from_slice(id.as_bytes()));
        if !buf.is_empty() {
            self.0.write_all(&buf)?;
        }
        Ok(())
    }
}

fn read_journal(path: &std::path::Path) -> Vec<ChunkId> {
    let mut bytes = Vec::new();
    if let Ok(mut f) = File::open(path) {
        let _ = f.read_to_end(&mut bytes);
    }
    // A torn last record (a crash mid-write) is dropped.
    bytes
        .chunks_exact(32)
        .map(|b| ChunkId::from_bytes(b.try_into().unwrap()))
        .collect()
}

/// This machine's name, for the snapshot.
pub fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ChunkId {
        ChunkId::from_bytes([n; 32])
    }

    #[test]
    fn the_outbox_holds_a_budget_of_bytes_and_takes_a_larger_blob_once_empty() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (outbox, mut rx) = Outbox::new(rt.handle().clone());
        let budget = OUTBOX_KIB as usize * 1024;
        // Many small blobs fit at once: a has-chunks batch can fill.
        for n in 0..BATCH as u8 {
            outbox.send(id(n), vec![n; 1000]).unwrap();
        }
        let small: Vec<Outgoing> = (0..BATCH).map(|_| rx.try_recv().unwrap()).collect();
        // A blob larger than the whole budget waits until the outbox is
        // empty, then goes (no deadlock).
        let sender = std::thread::spawn(move || {
            outbox.send(id(200), vec![0; budget + 1]).unwrap();
            outbox
        });
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(
            rx.try_recv().is_err(),
            "sent while small blobs held the budget"
        );
        drop(small);
        let outbox = sender.join().unwrap();
        let big = rx.try_recv().unwrap();
        assert_eq!((big.id, big.blob.len()), (id(200), budget + 1));
        // Once taken, the budget is free again.
        drop(big);
        outbox.send(id(201), vec![1; 10]).unwrap();
        assert_eq!(rx.try_recv().unwrap().id, id(201));
        // Once the uploader is gone, sending fails instead of waiting.
        drop(rx);
        assert!(outbox.send(id(202), vec![2; 10]).is_err());
    }
}
