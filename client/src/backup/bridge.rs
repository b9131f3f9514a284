//! The one place where the backup crosses between its sync side and its
//! async side. Nothing else in `backup/` blocks on the runtime or does
//! blocking I/O on it.
//!
//! ```text
//!  sync                                    │  async (the session's runtime)
//!  pipeline thread, tree builder ─ Outbox ─┼─► uploader task (`upload`)
//!    (waits for room: back-pressure)       │     │ has-chunks, puts
//!  journal thread ◄─────────── Confirmed ──┼─────┘ (never waits)
//!    (blocking appends to cache/uploaded)  │
//!  Upload::finish / fail ──────────────────┼─► waits for the uploader, then the journal thread
//! ```
//!
//! - **Sealed blobs, sync → async**: [`Outbox::send`] is called on the
//!   pipeline's thread; it blocks that thread until the outbox has room, so
//!   a slow upload slows the readers instead of filling memory.
//! - **Confirmed ids, async → sync**: the uploader hands each batch of ids
//!   the server confirmed to [`Confirmed::record`], an unbounded channel
//!   send that never blocks a runtime thread; the journal's own thread
//!   writes them. The ids are a few bytes per blob, and the uploader makes
//!   them no faster than the server confirms them, so the channel stays small.
//!   A rerun trusts only what reached the file; the server's has-chunks
//!   answer covers the rest, so a write that lags behind costs at most
//!   a blob sealed again, never one sent twice.
//! - **What the server has, for checkpoints**: the journal's thread also
//!   adds each batch to [`Confirmations`], which the pipeline's thread reads
//!   to commit a checkpoint of confirmed files only (`checkpoint`), and
//!   waits on for the checkpoint's trees; it is closed when the journal's
//!   thread ends, so a wait never outlives the uploader.
//! - **The end**: [`Upload::finish`] closes the outbox and waits for the
//!   uploader, then for the journal thread (which ends once the uploader
//!   has dropped every [`Confirmed`]). The first cause wins: a journal
//!   write error, else the uploader's error.

use std::future::Future;
use std::io;
use std::sync::Arc;

use anyhow::{anyhow, Result};
use coffre_core::ChunkId;
use tokio::sync::mpsc;

use super::journal::Journal;

/// Bytes of sealed blobs waiting for the uploader (the outbox), in KiB.
pub(super) const OUTBOX_KIB: u32 = 4 * 1024;

/// Sealed blobs on their way from the pipeline (and the tree builder) to the
/// uploader, bounded in bytes rather than in count: a few large blobs, or
/// enough small ones to fill a has-chunks batch. A bound of 16 blobs held up
/// to 16 × 4 MiB, and the client's backup peak was a third sealed blobs
/// waiting; a bound of 2 cut it but made 50,000 small files ask has-chunks for
/// 2 blobs at a time, 35 % slower (docs/performance.md).
#[derive(Debug)]
pub(super) struct Outbox {
    tx: mpsc::Sender<Outgoing>,
    budget: Arc<tokio::sync::Semaphore>,
    rt: tokio::runtime::Handle,
}

/// A blob in the outbox; `queued` is its share of the budget, given back
/// when the uploader puts it in flight or drops it (the server has it).
#[derive(Debug)]
pub(super) struct Outgoing {
    pub id: ChunkId,
    pub blob: Vec<u8>,
    pub queued: tokio::sync::OwnedSemaphorePermit,
}

impl Outbox {
    /// An outbox whose channel holds up to `blobs` blobs besides its byte
    /// budget.
    fn new(rt: tokio::runtime::Handle, blobs: usize) -> (Outbox, mpsc::Receiver<Outgoing>) {
        let (tx, rx) = mpsc::channel(blobs);
        let budget = Arc::new(tokio::sync::Semaphore::new(OUTBOX_KIB as usize));
        (Outbox { tx, budget, rt }, rx)
    }

    /// Waits for room (a blob larger than the budget waits for an empty
    /// outbox), then queues the blob. Sync side: called from the pipeline's
    /// thread, never from the runtime.
    pub(super) fn send(&self, id: ChunkId, blob: Vec<u8>) -> Result<()> {
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

/// The uploader's way to the journal: async side, never blocks.
#[derive(Debug, Clone)]
pub(super) struct Confirmed(std::sync::mpsc::Sender<Vec<ChunkId>>);

impl Confirmed {
    /// Hands ids the server confirmed to the journal's thread.
    pub(super) fn record(&self, ids: Vec<ChunkId>) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        // The thread stopped on a write error: `Upload::finish` returns it.
        self.0.send(ids).map_err(|_| anyhow!("the journal stopped"))
    }
}

/// The ids the server confirmed in this run, as the journal's thread
/// recorded them, and whether that thread has ended.
#[derive(Debug, Default)]
pub(super) struct Confirmations {
    ids: std::sync::Mutex<(std::collections::HashSet<ChunkId>, bool)>,
    changed: std::sync::Condvar,
}

impl Confirmations {
    fn add(&self, batch: &[ChunkId]) {
        self.ids.lock().unwrap().0.extend(batch.iter().copied());
        self.changed.notify_all();
    }

    fn close(&self) {
        self.ids.lock().unwrap().1 = true;
        self.changed.notify_all();
    }

    /// Whether the server confirmed `id` in this run.
    pub(super) fn has(&self, id: &ChunkId) -> bool {
        self.ids.lock().unwrap().0.contains(id)
    }

    /// Waits until the server confirmed every id of `ids`; an error if the
    /// upload ended first. Sync side.
    pub(super) fn wait_for<'a>(&self, ids: impl Iterator<Item = &'a ChunkId>) -> Result<()> {
        let mut guard = self.ids.lock().unwrap();
        for id in ids {
            while !guard.0.contains(id) {
                if guard.1 {
                    return Err(anyhow!("the upload stopped"));
                }
                guard = self.changed.wait(guard).unwrap();
            }
        }
        Ok(())
    }
}

/// Closes [`Confirmations`] when the journal's thread ends, however.
struct CloseOnDrop(Arc<Confirmations>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// The running upload: the uploader task (whose result is a `T`) and the
/// journal's thread.
#[derive(Debug)]
pub(super) struct Upload<T> {
    rt: tokio::runtime::Handle,
    task: tokio::task::JoinHandle<Result<T>>,
    journal: std::thread::JoinHandle<io::Result<()>>,
}

impl<T: Send + 'static> Upload<T> {
    /// Starts the journal's thread and the uploader on `rt`: `uploader` is
    /// given the outbox's receiving end and the way to the journal, and
    /// returns the task to run (`upload::run`); returns the outbox that
    /// feeds it, holding up to `blobs` blobs (a has-chunks batch) within its
    /// byte budget. The bridge does not know what the uploader does.
    pub(super) fn start<F>(
        rt: &tokio::runtime::Handle,
        blobs: usize,
        mut journal: Journal,
        confirmations: Arc<Confirmations>,
        uploader: impl FnOnce(mpsc::Receiver<Outgoing>, Confirmed) -> F,
    ) -> Result<(Outbox, Upload<T>)>
    where
        F: Future<Output = Result<T>> + Send + 'static,
    {
        let (confirmed, ids) = std::sync::mpsc::channel::<Vec<ChunkId>>();
        let journal = std::thread::Builder::new()
            .name("coffre-journal".into())
            .spawn(move || {
                let confirmations = CloseOnDrop(confirmations);
                for batch in ids {
                    journal.record(batch.iter())?;
                    confirmations.0.add(&batch);
                }
                Ok(())
            })?;
        let (outbox, rx) = Outbox::new(rt.clone(), blobs);
        let task = rt.spawn(uploader(rx, Confirmed(confirmed)));
        let upload = Upload {
            rt: rt.clone(),
            task,
            journal,
        };
        Ok((outbox, upload))
    }

    /// Closes the outbox and waits for the last puts and journal writes;
    /// the blobs sent, and of those the server already had. Sync side:
    /// blocks the calling thread.
    pub(super) fn finish(self, outbox: Outbox) -> Result<T> {
        let (uploaded, journaled) = self.wait(outbox);
        journaled?;
        uploaded.map_err(|e| anyhow!("the upload task failed: {e}"))?
    }

    /// The reading side failed with `error`: closes the outbox, lets the
    /// uploader finish, and returns the cause, the uploader's error if it
    /// failed (a full quota, a lost connection), else `error`.
    pub(super) fn fail(self, outbox: Outbox, error: anyhow::Error) -> anyhow::Error {
        match self.wait(outbox) {
            (_, Err(journal)) => journal,
            (Ok(Err(up)), Ok(())) => up,
            _ => error,
        }
    }

    /// Closes the outbox, waits for the uploader, then for the journal's
    /// thread (it ends once the uploader has dropped every `Confirmed`).
    fn wait(self, outbox: Outbox) -> (Result<Result<T>, tokio::task::JoinError>, Result<()>) {
        drop(outbox);
        let uploaded = self.rt.block_on(self.task);
        let journaled = match self.journal.join() {
            Ok(written) => written.map_err(anyhow::Error::from),
            Err(_) => Err(anyhow!("the journal's thread failed")),
        };
        (uploaded, journaled)
    }
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
        const BATCH: usize = super::super::upload::BATCH;
        let (outbox, mut rx) = Outbox::new(rt.handle().clone(), BATCH);
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
