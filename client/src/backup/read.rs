//! Step 4's reading: passes of the hot path (`pipeline::run`, all cores)
//! over files of the plan's read list, each new blob into the outbox.
//!
//! The run makes one pass over every file to read (with its checkpoints),
//! then, if another program held some of them, passes over those alone
//! (`set_aside`): from a shadow copy, then retried from the disk. A pass
//! fills the same [`ReadFiles`] (indexed like the plan's read list), so the
//! tree builder does not know which pass read a file.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Result;
use coffre_core::pipeline::{self, Config as PipelineConfig, Event, Input, SeenSet};
use coffre_core::{ChunkId, Keys};

use super::bridge::Outbox;
use super::trees::ReadFiles;
use crate::progress::Progress;

/// What step 4 reads with.
pub(super) struct Reading<'a> {
    pub keys: &'a Keys,
    /// Hot-path threads (0: one per core).
    pub threads: usize,
    /// The plan's read list: each file to read, with the size the walk saw.
    pub to_read: &'a [(std::path::PathBuf, u64)],
    pub dedup: &'a SeenSet,
    pub outbox: &'a Outbox,
    pub progress: &'a Progress,
    /// Bytes sent so far.
    pub sent: &'a AtomicU64,
}

/// How a pass opens a file of the read list.
pub(super) type Open<'o> = dyn Fn(&Path) -> io::Result<Box<dyn io::Read + Send>> + Sync + 'o;

/// The first pass's way: the file itself, as any program reads it.
pub(super) fn plain(path: &Path) -> io::Result<Box<dyn io::Read + Send>> {
    Ok(Box::new(std::fs::File::open(path)?))
}

/// Reads the files `which` (indices into the read list) with `open`, into
/// `files`. After each file done, `done(files)`; each file that could not be
/// read goes to `failed(index, why)` (its chunks are void). Returns the
/// bytes read.
pub(super) fn pass(
    reading: &Reading<'_>,
    which: &[usize],
    open: &Open<'_>,
    files: &mut ReadFiles,
    done: &mut dyn FnMut(&ReadFiles),
    failed: &mut dyn FnMut(usize, io::Error),
) -> Result<u64> {
    let Reading {
        keys,
        threads,
        to_read,
        dedup,
        outbox,
        progress,
        sent,
    } = *reading;
    let threads = if threads == 0 {
        PipelineConfig::default().threads
    } else {
        threads
    };
    for &i in which {
        files.contents[i].clear();
        files.sizes[i] = None;
    }
    let mut files_done = 0u64;
    let inputs = which.iter().map(|&i| {
        let (path, size) = &to_read[i];
        Ok(Input {
            reader: open(path)?,
            size_hint: Some(*size),
        })
    });
    let totals = pipeline::run::<_, anyhow::Error, _>(
        keys,
        &PipelineConfig::with_threads(threads),
        inputs,
        dedup,
        |ev| {
            match ev {
                Event::Chunk {
                    file,
                    id,
                    len,
                    blob,
                } => {
                    files.contents[which[file]].push(id);
                    progress.inc(len as u64);
                    if let Some(blob) = blob {
                        outbox.send(id, blob)?;
                    }
                }
                Event::FileDone { file, bytes, .. } => {
                    files.sizes[which[file]] = Some(bytes);
                    files_done += 1;
                    done(files);
                    progress.message(|| {
                        format!(
                            "{files_done}/{}, sent {}",
                            crate::display::count(which.len() as u64, "file"),
                            coffre_core::units::format_size(sent.load(Ordering::Relaxed))
                        )
                    });
                }
                Event::FileFailed { file, error } => {
                    files.contents[which[file]].clear();
                    failed(which[file], error);
                }
            }
            Ok(())
        },
    )?;
    Ok(totals.bytes_read)
}

/// Empty results for `n` files.
pub(super) fn nothing_read(n: usize) -> ReadFiles {
    ReadFiles {
        contents: vec![Vec::<ChunkId>::new(); n],
        sizes: vec![None; n],
        previous: Default::default(),
    }
}
