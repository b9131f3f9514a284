//! A file of a snapshot as a stream of verified bytes: its chunks fetched
//! [`WINDOW`] ahead on the session's runtime (which keeps fetching while the
//! caller writes), each decrypted and checked against its id as restore
//! does (another copy of a chunk is tried before it counts as damaged:
//! `copies.rs`), handed out in order. Memory stays at most `WINDOW + 1`
//! chunks (4 MiB each at most) whatever the file's size. A chunk that cannot
//! be fetched or verified is an error, and so is a file whose chunks do not
//! add up to the size its listing gives: never a byte that was not
//! verified.

use std::collections::VecDeque;
use std::io;

use anyhow::{anyhow, bail, Context, Result};
use coffre_core::{BlobKind, ChunkId, Content, Entry};
use tokio::task::JoinHandle;

use crate::copies;
use crate::restore::WINDOW;
use crate::session::Session;

/// The verified contents of one file, chunk by chunk.
#[derive(Debug)]
pub struct Contents<'s> {
    session: &'s Session,
    /// The file's path in the snapshot, for messages.
    path: String,
    ids: std::vec::IntoIter<ChunkId>,
    pending: VecDeque<JoinHandle<Result<Vec<u8>>>>,
    /// The chunk being read by [`io::Read`], and how much of it was given.
    current: Vec<u8>,
    at: usize,
    /// What the listing says, and what was handed out so far.
    size: u64,
    given: u64,
}

impl<'s> Contents<'s> {
    /// The contents of the file `entry`, found at `path`.
    pub fn new(session: &'s Session, path: &str, entry: &Entry) -> Result<Self> {
        let Content::File(ids) = &entry.content else {
            bail!("{path} is not a file in this snapshot");
        };
        Ok(Contents {
            session,
            path: path.to_string(),
            ids: ids.clone().into_iter(),
            pending: VecDeque::new(),
            current: Vec::new(),
            at: 0,
            size: entry.size,
            given: 0,
        })
    }

    /// Starts fetching up to [`WINDOW`] chunks ahead.
    fn fill(&mut self) {
        while self.pending.len() < WINDOW {
            let Some(id) = self.ids.next() else { break };
            let (remote, keys) = (self.session.remote.clone(), self.session.keys.clone());
            self.pending.push_back(self.session.rt.spawn(async move {
                let blob = remote
                    .chunk(&id)
                    .await
                    .with_context(|| format!("fetching chunk {}", id.short()))?;
                copies::open_or_other_copy(&remote, &keys, BlobKind::Data, &id, blob).await
            }));
        }
    }

    /// The next chunk's plaintext, verified; None after the last one (once
    /// the chunks made exactly the listed size).
    pub fn next_chunk(&mut self) -> Result<Option<Vec<u8>>> {
        self.fill();
        let Some(task) = self.pending.pop_front() else {
            if self.given != self.size {
                bail!(
                    "{}: the snapshot's chunks make {} bytes where its listing says {}: the output is incomplete",
                    self.path,
                    self.given,
                    self.size
                );
            }
            return Ok(None);
        };
        let data = self
            .session
            .block_on(task)
            .map_err(|e| anyhow!("fetch task failed: {e}"))?
            .with_context(|| format!("{}: the output stops here, incomplete", self.path))?;
        self.given += data.len() as u64;
        if self.given > self.size {
            bail!(
                "{}: the snapshot's chunks make more than the {} bytes its listing says: the output is incomplete",
                self.path,
                self.size
            );
        }
        // Keep the window full while the caller writes this one.
        self.fill();
        Ok(Some(data))
    }
}

impl io::Read for Contents<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.at == self.current.len() {
            match self.next_chunk() {
                Ok(Some(data)) => (self.current, self.at) = (data, 0),
                Ok(None) => return Ok(0),
                Err(e) => return Err(io::Error::other(format!("{e:#}"))),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

impl Drop for Contents<'_> {
    /// A dump that stops early (an error, a closed pipe) stops its fetches.
    fn drop(&mut self) {
        for t in &self.pending {
            t.abort();
        }
    }
}
