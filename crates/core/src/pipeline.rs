//! The hot path on all cores: many files in, ordered encrypted blobs out.
//!
//! ```text
//!  files ──► reader threads ──jobs──► worker threads ──results──► caller's thread
//!            open, read, chunk        id, dedup, compress,        reorders each file's
//!            (FastCDC, sequential     pad, encrypt                chunks, calls the sink
//!             within a file)
//! ```
//!
//! **Bounded memory, back-pressure.** A reader takes a token before it hands a
//! chunk on, and the caller's thread returns the token once the sink has taken
//! that chunk's result. So at most `in_flight` chunks (each at most 4 MiB, and
//! its blob) exist between the disk and the sink, whatever the file sizes, and a
//! slow sink (a slow network) slows the readers down instead of filling memory.
//!
//! **Order.** Chunks of one file reach the sink in file order, then that file's
//! [`Event::FileDone`]. Files may interleave with each other.
//!
//! With `threads == 1` everything runs on the caller's thread, in order: that is
//! the one-core figure of `coffre benchmark`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use crossbeam_channel as chan;

use crate::blob::{BlobKind, Sealer, DEFAULT_ZSTD_LEVEL};
use crate::chunker::Chunker;
use crate::error::Error;
use crate::{ChunkId, Keys};

/// One file to back up.
pub struct Input {
    /// Its contents.
    pub reader: Box<dyn Read + Send>,
    /// Its size, if known (sizes the read buffer).
    pub size_hint: Option<u64>,
}

impl std::fmt::Debug for Input {
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
    /// Worker threads (id, compress, encrypt); 1 runs everything inline.
    pub threads: usize,
    /// Threads that read and chunk files.
    pub readers: usize,
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
            readers: (threads / 2).clamp(1, 4),
            in_flight: (threads * 3).max(4),
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
pub fn run<I, E, S>(
    keys: &Keys,
    config: &Config,
    files: I,
    dedup: &dyn Dedup,
    mut sink: S,
) -> Result<Totals, E>
where
    I: Iterator<Item = io::Result<Input>> + Send,
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

fn inline<I, E>(
    keys: &Keys,
    config: &Config,
    files: I,
    dedup: &dyn Dedup,
    sink: &mut dyn FnMut(Event) -> Result<(), E>,
) -> Result<(), E>
where
    I: Iterator<Item = io::Result<Input>>,
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

fn parallel<I, E>(
    keys: &Keys,
    config: &Config,
    files: I,
    dedup: &dyn Dedup,
    sink: &mut dyn FnMut(Event) -> Result<(), E>,
) -> Result<(), E>
where
    I: Iterator<Item = io::Result<Input>> + Send,
    E: From<Error>,
{
    let files = Mutex::new(files.enumerate());
    let abort = AtomicBool::new(false);
    let (job_tx, job_rx) = chan::bounded::<Job>(config.in_flight);
    let (msg_tx, msg_rx) = chan::unbounded::<Msg>();
    let (token_tx, token_rx) = chan::bounded::<()>(config.in_flight);
    for _ in 0..config.in_flight {
        token_tx.send(()).unwrap();
    }
    std::thread::scope(|s| {
        for _ in 0..config.readers.max(1) {
            let (files, abort, job_tx, msg_tx, token_rx) = (
                &files,
                &abort,
                job_tx.clone(),
                msg_tx.clone(),
                token_rx.clone(),
            );
            s.spawn(move || {
                while !abort.load(Ordering::Relaxed) {
                    let Some((file, input)) = files.lock().unwrap().next() else {
                        break;
                    };
                    let (mut seq, mut bytes, mut error) = (0u64, 0u64, None);
                    match input {
                        Err(e) => error = Some(e),
                        Ok(input) => {
                            for data in Chunker::new(input.reader, keys.gear(), input.size_hint) {
                                let data = match data {
                                    Ok(d) => d,
                                    Err(e) => {
                                        error = Some(e);
                                        break;
                                    }
                                };
                                // Wait for room; no token means the run is over.
                                if token_rx.recv().is_err() || abort.load(Ordering::Relaxed) {
                                    return;
                                }
                                bytes += data.len() as u64;
                                if job_tx.send(Job { file, seq, data }).is_err() {
                                    return;
                                }
                                seq += 1;
                            }
                        }
                    }
                    if msg_tx
                        .send(Msg::FileEnd {
                            file,
                            chunks: seq,
                            bytes,
                            error,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
        drop(job_tx);
        drop(token_rx);
        for _ in 0..config.threads {
            let (job_rx, msg_tx) = (job_rx.clone(), msg_tx.clone());
            let level = config.zstd_level;
            s.spawn(move || {
                let mut sealer = Sealer::new(level);
                for Job { file, seq, data } in job_rx {
                    let msg = match process(keys, &mut sealer, dedup, &data) {
                        Ok((id, blob)) => Msg::Chunk {
                            file,
                            seq,
                            id,
                            len: data.len(),
                            blob,
                        },
                        Err(e) => Msg::Fatal(e),
                    };
                    if msg_tx.send(msg).is_err() {
                        return;
                    }
                }
            });
        }
        drop(job_rx);
        drop(msg_tx);
        let result = collect(&msg_rx, &token_tx, sink);
        if result.is_err() {
            abort.store(true, Ordering::Relaxed);
        }
        // Dropping the tokens and the results channel wakes and ends every thread.
        drop(token_tx);
        drop(msg_rx);
        result
    })
}

fn collect<E>(
    msg_rx: &chan::Receiver<Msg>,
    token_tx: &chan::Sender<()>,
    sink: &mut dyn FnMut(Event) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<Error>,
{
    let mut pending: HashMap<usize, Pending> = HashMap::new();
    for msg in msg_rx {
        let file = match msg {
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

    fn inputs(files: &[Vec<u8>]) -> impl Iterator<Item = io::Result<Input>> + Send + '_ {
        files.iter().map(|f| {
            Ok(Input {
                reader: Box::new(io::Cursor::new(f.clone())),
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
            let files: Vec<io::Result<Input>> = vec![
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
}
