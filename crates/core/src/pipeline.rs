//! The hot path on all cores: many files in, ordered encrypted blobs out.
//!
//! ```text
//!  files ──► worker threads ─────────────────────────results──► caller's thread
//!            each takes the next file and runs        reorders each file's
//!            read → chunk → id → dedup → compress     chunks, calls the sink
//!            → pad → encrypt on it, in its own cache;
//!            when another worker is idle (no files
//!            left), it hands chunks to it instead  ──jobs──► idle workers
//! ```
//!
//! **Scaling.** A backup is mostly many files: each worker owns a file from
//! read to ciphertext, so the data stays in that core's cache and no thread
//! waits on another. One large file (a mailbox, a database) does not leave the
//! other cores idle: its worker hands chunks to idle workers as it cuts them.
//!
//! **Bounded memory, back-pressure.** A worker takes a token before each chunk
//! it cuts, and the caller's thread returns the token once the sink has taken
//! that chunk's result. So at most `in_flight` chunks (each at most 4 MiB, and
//! its blob) exist between the disk and the sink, whatever the file sizes, and a
//! slow sink (a slow network) slows the readers down instead of filling memory.
//! A worker waiting for a token processes queued chunks meanwhile, so the
//! tokens can always come back.
//!
//! **Order.** Chunks of one file reach the sink in file order, then that file's
//! [`Event::FileDone`]. Files may interleave with each other.
//!
//! With `threads == 1` everything runs on the caller's thread, in order: that is
//! the one-core figure of `coffre benchmark`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use crossbeam_channel as chan;

use crate::blob::{BlobKind, Sealer, DEFAULT_ZSTD_LEVEL};
use crate::chunker::Chunker;
use crate::error::Error;
use crate::{ChunkId, Keys};

/// One file to back up.
pub struct Input<'a> {
    /// Its contents.
    pub reader: Box<dyn Read + Send + 'a>,
    /// Its size, if known (sizes the read buffer).
    pub size_hint: Option<u64>,
}

impl std::fmt::Debug for Input<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Input(size_hint: {:?})", self.size_hint)
    }
}

/// Decides which chunks must be stored: asked once per chunk, from any thread.
pub trait Dedup: Sync {
    /// True if the chunk must be encrypted and sent (nobody has it yet). Must
    /// answer true at most once per id per run, so that two copies of a chunk
    /// in flight at once are not both stored.
    fn should_store(&self, id: &ChunkId) -> bool;
}

/// The simplest [`Dedup`]: store each id the first time it is seen.
#[derive(Debug, Default)]
pub struct SeenSet(Mutex<HashSet<ChunkId>>);

impl SeenSet {
    /// Starts from ids already known to be stored.
    pub fn with_known(known: impl IntoIterator<Item = ChunkId>) -> Self {
        SeenSet(Mutex::new(known.into_iter().collect()))
    }
}

impl Dedup for SeenSet {
    fn should_store(&self, id: &ChunkId) -> bool {
        self.0.lock().unwrap().insert(*id)
    }
}

/// Tuning of the pipeline.
#[derive(Debug, Clone)]
pub struct Config {
    /// Worker threads; 1 runs everything inline on the caller's thread.
    pub threads: usize,
    /// Chunks allowed between the disk and the sink at once.
    pub in_flight: usize,
    /// zstd level.
    pub zstd_level: i32,
}

impl Config {
    /// A pipeline for `threads` cores.
    pub fn with_threads(threads: usize) -> Self {
        let threads = threads.max(1);
        Config {
            threads,
            in_flight: (threads * 4).max(4),
            zstd_level: DEFAULT_ZSTD_LEVEL,
        }
    }
}

impl Default for Config {
    /// As many workers as the machine has cores.
    fn default() -> Self {
        Self::with_threads(std::thread::available_parallelism().map_or(1, usize::from))
    }
}

/// What the sink receives.
#[derive(Debug)]
pub enum Event {
    /// The next chunk of `file`, in order.
    Chunk {
        /// Index of the file in the input order.
        file: usize,
        /// Its id.
        id: ChunkId,
        /// Its plaintext length.
        len: usize,
        /// The sealed blob, when [`Dedup::should_store`] said to store it.
        blob: Option<Vec<u8>>,
    },
    /// All of `file`'s chunks were delivered.
    FileDone {
        /// Index of the file.
        file: usize,
        /// Number of chunks.
        chunks: u64,
        /// Bytes read.
        bytes: u64,
    },
    /// `file` could not be opened or read; chunks delivered before are void.
    FileFailed {
        /// Index of the file.
        file: usize,
        /// Why.
        error: io::Error,
    },
}

/// Totals of a run.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Totals {
    /// Files read completely.
    pub files: u64,
    /// Files that failed.
    pub failed: u64,
    /// Chunks cut.
    pub chunks: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Chunks sealed for storage.
    pub blobs: u64,
    /// Bytes of those blobs.
    pub blob_bytes: u64,
}

impl Totals {
    fn count(&mut self, ev: &Event) {
        match ev {
            Event::Chunk { blob, .. } => {
                self.chunks += 1;
                if let Some(b) = blob {
                    self.blobs += 1;
                    self.blob_bytes += b.len() as u64;
                }
            }
            Event::FileDone { bytes, .. } => {
                self.files += 1;
                self.bytes_read += bytes;
            }
            Event::FileFailed { .. } => self.failed += 1,
        }
    }
}

struct Job {
    file: usize,
    seq: u64,
    data: Bytes,
}

enum Msg {
    Chunk {
        file: usize,
        seq: u64,
        id: ChunkId,
        len: usize,
        blob: Option<Vec<u8>>,
    },
    FileEnd {
        file: usize,
        chunks: u64,
        bytes: u64,
        error: Option<io::Error>,
    },
    Fatal(Error),
    /// A worker has exited; its earlier messages are all in the channel before this.
    WorkerDone,
}

fn process(
    keys: &Keys,
    sealer: &mut Sealer,
    dedup: &dyn Dedup,
    data: &[u8],
) -> Result<(ChunkId, Option<Vec<u8>>), Error> {
    let id = ChunkId::compute(keys, data);
    let blob = if dedup.should_store(&id) {
        Some(sealer.seal(keys, BlobKind::Data, &id, data)?)
    } else {
        None
    };
    Ok((id, blob))
}

/// Runs the pipeline over `files`, calling `sink` on the caller's thread with
/// every event. Stops at the first error of the sink, or at a fatal error
/// (the system random generator failing); a file that cannot be read is an
/// [`Event::FileFailed`], not an error.
pub fn run<'a, I, E, S>(
    keys: &Keys,
    config: &Config,
    files: I,
    dedup: &dyn Dedup,
    mut sink: S,
) -> Result<Totals, E>
where
    I: Iterator<Item = io::Result<Input<'a>>> + Send,
    E: From<Error>,
    S: FnMut(Event) -> Result<(), E>,
{
    let mut totals = Totals::default();
    let mut deliver = |ev: Event| {
        totals.count(&ev);
        sink(ev)
    };
    if config.threads <= 1 {
        inline(keys, config, files, dedup, &mut deliver)?;
    } else {
        parallel(keys, config, files, dedup, &mut deliver)?;
    }
    Ok(totals)
}

fn inline<'a, I, E>(
    keys: &Keys,
    config: &Config,
    files: I,
    dedup: &dyn Dedup,
    sink: &mut dyn FnMut(Event) -> Result<(), E>,
) -> Result<(), E>
where
    I: Iterator<Item = io::Result<Input<'a>>>,
    E: From<Error>,
{
    let mut sealer = Sealer::new(config.zstd_level);
    for (file, input) in files.enumerate() {
        let input = match input {
            Ok(i) => i,
            Err(error) => {
                sink(Event::FileFailed { file, error })?;
                continue;
            }
        };
        let (mut chunks, mut bytes) = (0, 0);
        let mut failed = None;
        for data in Chunker::new(input.reader, keys.gear(), input.size_hint) {
            match data {
                Ok(data) => {
                    let (id, blob) = process(keys, &mut sealer, dedup, &data)?;
                    chunks += 1;
                    bytes += data.len() as u64;
                    sink(Event::Chunk {
                        file,
                        id,
                        len: data.len(),
                        blob,
                    })?;
                }
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        match failed {
            None => sink(Event::FileDone {
                file,
                chunks,
                bytes,
            })?,
            Some(error) => sink(Event::FileFailed { file, error })?,
        }
    }
    Ok(())
}

/// Per-file reordering state on the caller's thread.
#[derive(Default)]
struct Pending {
    next: u64,
    waiting: BTreeMap<u64, (ChunkId, usize, Option<Vec<u8>>)>,
    end: Option<(u64, u64, Option<io::Error>)>,
}

/// Shared state of the worker threads.
struct Workers<'a, 'k, I> {
    keys: &'k Keys,
    dedup: &'k dyn Dedup,
    files: Mutex<(I, bool)>,
    /// Workers cutting a file right now.
    chunking: AtomicUsize,
    /// Workers waiting for work.
    idle: AtomicUsize,
    abort: AtomicBool,
    job_tx: chan::Sender<Job>,
    job_rx: chan::Receiver<Job>,
    msg_tx: chan::Sender<Msg>,
    token_rx: chan::Receiver<()>,
    _input: std::marker::PhantomData<fn() -> Input<'a>>,
}

/// Why a worker stops early.
struct Stop;

impl<'a, I> Workers<'a, '_, I>
where
    I: Iterator<Item = (usize, io::Result<Input<'a>>)>,
{
    fn seal(&self, sealer: &mut Sealer, Job { file, seq, data }: Job) -> Result<(), Stop> {
        let msg = match process(self.keys, sealer, self.dedup, &data) {
            Ok((id, blob)) => Msg::Chunk {
                file,
                seq,
                id,
                len: data.len(),
                blob,
            },
            Err(e) => Msg::Fatal(e),
        };
        self.msg_tx.send(msg).map_err(|_| Stop)
    }

    fn next_file(&self) -> Option<(usize, io::Result<Input<'a>>)> {
        let mut files = self.files.lock().unwrap();
        if files.1 {
            return None;
        }
        let next = files.0.next();
        match next {
            Some(_) => {
                self.chunking.fetch_add(1, Ordering::SeqCst);
            }
            None => files.1 = true,
        }
        next
    }

    fn run(&self, level: i32) -> Result<(), Stop> {
        let mut sealer = Sealer::new(level);
        loop {
            if self.abort.load(Ordering::Relaxed) {
                return Err(Stop);
            }
            if let Ok(job) = self.job_rx.try_recv() {
                self.seal(&mut sealer, job)?;
                continue;
            }
            if let Some((file, input)) = self.next_file() {
                let result = self.chunk_file(&mut sealer, file, input);
                self.chunking.fetch_sub(1, Ordering::SeqCst);
                result?;
                continue;
            }
            // No file left: help with queued chunks until nobody can queue more.
            if self.chunking.load(Ordering::SeqCst) == 0 && self.job_rx.is_empty() {
                return Ok(());
            }
            self.idle.fetch_add(1, Ordering::SeqCst);
            let job = self.job_rx.recv_timeout(Duration::from_millis(1));
            self.idle.fetch_sub(1, Ordering::SeqCst);
            if let Ok(job) = job {
                self.seal(&mut sealer, job)?;
            }
        }
    }

    fn chunk_file(
        &self,
        sealer: &mut Sealer,
        file: usize,
        input: io::Result<Input<'a>>,
    ) -> Result<(), Stop> {
        let (mut seq, mut bytes, mut error) = (0u64, 0u64, None);
        match input {
            Err(e) => error = Some(e),
            Ok(input) => {
                for data in Chunker::new(input.reader, self.keys.gear(), input.size_hint) {
                    let data = match data {
                        Ok(d) => d,
                        Err(e) => {
                            error = Some(e);
                            break;
                        }
                    };
                    self.take_token(sealer)?;
                    bytes += data.len() as u64;
                    let job = Job { file, seq, data };
                    if self.idle.load(Ordering::SeqCst) > 0 {
                        self.job_tx.send(job).map_err(|_| Stop)?;
                    } else {
                        self.seal(sealer, job)?;
                    }
                    seq += 1;
                }
            }
        }
        self.msg_tx
            .send(Msg::FileEnd {
                file,
                chunks: seq,
                bytes,
                error,
            })
            .map_err(|_| Stop)
    }

    /// Waits for room for one more chunk, sealing queued chunks meanwhile.
    fn take_token(&self, sealer: &mut Sealer) -> Result<(), Stop> {
        loop {
            chan::select! {
                recv(self.token_rx) -> t => return t.map_err(|_| Stop),
                recv(self.job_rx) -> job => {
                    if let Ok(job) = job {
                        self.seal(sealer, job)?;
                    }
                }
            }
        }
    }
}

fn parallel<'a, I, E>(
    keys: &Keys,
    config: &Config,
    files: I,
    dedup: &dyn Dedup,
    sink: &mut dyn FnMut(Event) -> Result<(), E>,
) -> Result<(), E>
where
    I: Iterator<Item = io::Result<Input<'a>>> + Send,
    E: From<Error>,
{
    let (job_tx, job_rx) = chan::unbounded::<Job>();
    let (msg_tx, msg_rx) = chan::unbounded::<Msg>();
    let (token_tx, token_rx) = chan::bounded::<()>(config.in_flight);
    for _ in 0..config.in_flight {
        token_tx.send(()).unwrap();
    }
    let workers = Workers {
        keys,
        dedup,
        files: Mutex::new((files.enumerate(), false)),
        chunking: AtomicUsize::new(0),
        idle: AtomicUsize::new(0),
        abort: AtomicBool::new(false),
        job_tx,
        job_rx,
        msg_tx,
        token_rx,
        _input: std::marker::PhantomData,
    };
    std::thread::scope(|s| {
        for _ in 0..config.threads {
            s.spawn(|| {
                let _ = workers.run(config.zstd_level);
                let _ = workers.msg_tx.send(Msg::WorkerDone);
            });
        }
        let result = collect(&msg_rx, &token_tx, sink, config.threads);
        if result.is_err() {
            workers.abort.store(true, Ordering::Relaxed);
        }
        // Dropping the tokens and the results channel wakes and ends every worker.
        drop(token_tx);
        drop(msg_rx);
        result
    })
}

fn collect<E>(
    msg_rx: &chan::Receiver<Msg>,
    token_tx: &chan::Sender<()>,
    sink: &mut dyn FnMut(Event) -> Result<(), E>,
    workers: usize,
) -> Result<(), E>
where
    E: From<Error>,
{
    let mut pending: HashMap<usize, Pending> = HashMap::new();
    let mut done = 0;
    while done < workers {
        let Ok(msg) = msg_rx.recv() else { break };
        let file = match msg {
            Msg::WorkerDone => {
                done += 1;
                continue;
            }
            Msg::Fatal(e) => return Err(e.into()),
            Msg::Chunk {
                file,
                seq,
                id,
                len,
                blob,
            } => {
                pending
                    .entry(file)
                    .or_default()
                    .waiting
                    .insert(seq, (id, len, blob));
                file
            }
            Msg::FileEnd {
                file,
                chunks,
                bytes,
                error,
            } => {
                pending.entry(file).or_default().end = Some((chunks, bytes, error));
                file
            }
        };
        let p = pending.get_mut(&file).unwrap();
        while let Some((id, len, blob)) = p.waiting.remove(&p.next) {
            p.next += 1;
            sink(Event::Chunk {
                file,
                id,
                len,
                blob,
            })?;
            let _ = token_tx.send(());
        }
        if p.end
            .as_ref()
            .is_some_and(|(chunks, _, _)| *chunks == p.next)
        {
            let (chunks, bytes, error) = pending.remove(&file).unwrap().end.unwrap();
            match error {
                None => sink(Event::FileDone {
                    file,
                    chunks,
                    bytes,
                })?,
                Some(error) => sink(Event::FileFailed { file, error })?,
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::benchmark::{random_bytes, text_bytes};
    use crate::{blob, MasterKey};

    fn inputs(files: &[Vec<u8>]) -> impl Iterator<Item = io::Result<Input<'_>>> + Send + '_ {
        files.iter().map(|f| {
            Ok(Input {
                reader: Box::new(&f[..]),
                size_hint: Some(f.len() as u64),
            })
        })
    }

    /// Runs the pipeline and rebuilds every file from its chunks' blobs.
    fn round_trip(threads: usize, files: &[Vec<u8>]) -> (Vec<Vec<u8>>, Totals) {
        let keys = Keys::derive(&MasterKey::from_bytes([5; 32]));
        let mut blobs = HashMap::new();
        let mut ids: Vec<Vec<ChunkId>> = vec![Vec::new(); files.len()];
        let mut done = vec![false; files.len()];
        let totals = run::<_, Error, _>(
            &keys,
            &Config::with_threads(threads),
            inputs(files),
            &SeenSet::default(),
            |ev| {
                match ev {
                    Event::Chunk { file, id, blob, .. } => {
                        assert!(!done[file], "chunk after FileDone");
                        ids[file].push(id);
                        if let Some(b) = blob {
                            assert!(blobs.insert(id, b).is_none(), "chunk stored twice");
                        }
                    }
                    Event::FileDone { file, chunks, .. } => {
                        assert_eq!(chunks as usize, ids[file].len());
                        done[file] = true;
                    }
                    Event::FileFailed { error, .. } => panic!("{error}"),
                }
                Ok(())
            },
        )
        .unwrap();
        assert!(done.iter().all(|d| *d));
        let rebuilt = ids
            .iter()
            .map(|ids| {
                ids.iter()
                    .flat_map(|id| blob::open(&keys, BlobKind::Data, id, &blobs[id]).unwrap())
                    .collect()
            })
            .collect();
        (rebuilt, totals)
    }

    fn sample_files() -> Vec<Vec<u8>> {
        let big = random_bytes(9 << 20, 1);
        vec![
            text_bytes(3 << 20, 2),
            Vec::new(),
            big.clone(),
            b"a small file".to_vec(),
            big, // a duplicate: stored once
            random_bytes(300_000, 3),
        ]
    }

    #[test]
    fn every_file_comes_back_in_order_on_one_and_many_threads() {
        let files = sample_files();
        for threads in [1, 2, 5] {
            let (rebuilt, totals) = round_trip(threads, &files);
            assert_eq!(rebuilt, files, "threads = {threads}");
            assert_eq!(totals.files, files.len() as u64);
            assert!(
                totals.blobs < totals.chunks,
                "the duplicate file was not deduplicated"
            );
        }
    }

    #[test]
    fn unreadable_file_is_reported_and_the_run_goes_on() {
        struct Broken;
        impl Read for Broken {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::PermissionDenied, "denied"))
            }
        }
        let keys = Keys::derive(&MasterKey::from_bytes([5; 32]));
        for threads in [1, 3] {
            let files: Vec<io::Result<Input<'_>>> = vec![
                Ok(Input {
                    reader: Box::new(io::Cursor::new(vec![1u8; 1000])),
                    size_hint: None,
                }),
                Ok(Input {
                    reader: Box::new(Broken),
                    size_hint: None,
                }),
                Err(io::Error::new(io::ErrorKind::NotFound, "gone")),
                Ok(Input {
                    reader: Box::new(io::Cursor::new(vec![2u8; 1000])),
                    size_hint: None,
                }),
            ];
            let mut failed = Vec::new();
            let totals = run::<_, Error, _>(
                &keys,
                &Config::with_threads(threads),
                files.into_iter(),
                &SeenSet::default(),
                |ev| {
                    if let Event::FileFailed { file, .. } = ev {
                        failed.push(file);
                    }
                    Ok(())
                },
            )
            .unwrap();
            failed.sort();
            assert_eq!(failed, vec![1, 2]);
            assert_eq!((totals.files, totals.failed), (2, 2));
        }
    }

    #[test]
    fn a_sink_error_stops_the_run() {
        let keys = Keys::derive(&MasterKey::from_bytes([5; 32]));
        let files = sample_files();
        let mut seen = 0;
        let res = run::<_, Error, _>(
            &keys,
            &Config::with_threads(2),
            inputs(&files),
            &SeenSet::default(),
            |_| {
                seen += 1;
                if seen == 3 {
                    return Err(Error::Random("stop".into()));
                }
                Ok(())
            },
        );
        assert!(res.is_err());
        assert_eq!(seen, 3);
    }

    /// A slow sink holds the readers back: what has been read but not yet
    /// delivered stays below the in-flight chunks plus one read buffer per worker.
    #[test]
    fn a_slow_sink_bounds_what_is_read_ahead() {
        use std::sync::atomic::AtomicU64;
        struct Counting<'a> {
            data: &'a [u8],
            read: &'a AtomicU64,
        }
        impl Read for Counting<'_> {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = self.data.read(out)?;
                self.read.fetch_add(n as u64, Ordering::SeqCst);
                Ok(n)
            }
        }
        let keys = Keys::derive(&MasterKey::from_bytes([5; 32]));
        let big = random_bytes(96 << 20, 9);
        let read = AtomicU64::new(0);
        let config = Config::with_threads(2);
        let bound = (config.in_flight * crate::chunker::MAX_SIZE
            + config.threads * 2 * 8 * 1024 * 1024) as u64;
        let mut delivered = 0u64;
        let mut worst = 0u64;
        let inputs = std::iter::once(Ok(Input {
            reader: Box::new(Counting {
                data: &big,
                read: &read,
            }),
            size_hint: None,
        }));
        run::<_, Error, _>(&keys, &config, inputs, &SeenSet::default(), |ev| {
            if let Event::Chunk { len, .. } = ev {
                std::thread::sleep(std::time::Duration::from_millis(2));
                worst = worst.max(read.load(Ordering::SeqCst) - delivered);
                delivered += len as u64;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(delivered, big.len() as u64);
        assert!(
            worst <= bound,
            "read {worst} bytes ahead of the sink, bound {bound}"
        );
    }
}
