//! The mark: which chunks the snapshots of one subscriber reference, with
//! memory bounded by the number of snapshots, not of chunks.
//!
//! Every manifest lists its chunk ids in strictly increasing order (its public
//! part, `docs/format.md`), and the catalogue returns a subscriber's chunks in
//! id order. So the live set is never built: [`Live`] merges the manifests'
//! lists (a heap of one cursor per manifest, each reading its file through a
//! small buffer) and answers "is this id referenced?" for ids asked in
//! increasing order. Each manifest's bytes are hashed as they are read and
//! checked against the snapshot id when its list ends, so a damaged manifest
//! stops the collection before anything is deleted.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use coffre_core::manifest::CHUNK_LIST_PREFIX;
use coffre_core::{ChunkId, Manifest};

use crate::error::{Error, Result};

/// Read buffer per manifest: 1,000 snapshots cost 32 MiB.
const BUFFER: usize = 32 * 1024;

/// The chunk ids one stored manifest lists, streamed from its file.
pub(crate) struct ManifestIds {
    path: PathBuf,
    snapshot: ChunkId,
    reader: BufReader<File>,
    hasher: blake3::Hasher,
    /// Ids not read yet.
    left: u64,
    last: Option<[u8; 32]>,
    /// Whether the file was checked against the snapshot id.
    checked: bool,
}

impl ManifestIds {
    pub(crate) fn open(path: &Path, snapshot: ChunkId, expected_len: u64) -> Result<Self> {
        let mut file = File::open(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => corrupt(path, &snapshot, "is missing"),
            _ => Error::io(path, e),
        })?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        if len != expected_len {
            return Err(corrupt(
                path,
                &snapshot,
                &format!("has {len} bytes, the catalogue says {expected_len}"),
            ));
        }
        let mut prefix = vec![0u8; CHUNK_LIST_PREFIX.min(len as usize)];
        file.read_exact(&mut prefix)
            .map_err(|e| Error::io(path, e))?;
        let (at, left) = Manifest::chunk_list_at(&prefix)
            .map_err(|e| corrupt(path, &snapshot, &format!("is unreadable: {e}")))?;
        let mut hasher = blake3::Hasher::new();
        hasher.update(&prefix[..at]);
        file.seek(SeekFrom::Start(at as u64))
            .map_err(|e| Error::io(path, e))?;
        Ok(ManifestIds {
            path: path.to_path_buf(),
            snapshot,
            reader: BufReader::with_capacity(BUFFER, file),
            hasher,
            left,
            last: None,
            checked: false,
        })
    }

    /// The next id, or `None` after the last one, once the whole file was
    /// checked against the snapshot id.
    pub(crate) fn next(&mut self) -> Result<Option<[u8; 32]>> {
        if self.left == 0 {
            if !self.checked {
                self.checked = true;
                self.finish()?;
            }
            return Ok(None);
        }
        let mut id = [0u8; 32];
        self.reader
            .read_exact(&mut id)
            .map_err(|e| Error::io(&self.path, e))?;
        self.hasher.update(&id);
        if self.last.is_some_and(|prev| prev >= id) {
            return Err(corrupt(
                &self.path,
                &self.snapshot,
                "lists its chunk ids out of order",
            ));
        }
        self.last = Some(id);
        self.left -= 1;
        Ok(Some(id))
    }

    /// Hashes the rest of the file and compares with the snapshot id.
    fn finish(&mut self) -> Result<()> {
        io::copy(&mut self.reader, &mut self.hasher).map_err(|e| Error::io(&self.path, e))?;
        if self.hasher.finalize().as_bytes() != self.snapshot.as_bytes() {
            return Err(corrupt(
                &self.path,
                &self.snapshot,
                "does not match its id (damaged on disk)",
            ));
        }
        Ok(())
    }
}

fn corrupt(path: &Path, snapshot: &ChunkId, what: &str) -> Error {
    Error::Corrupt(format!(
        "the manifest of snapshot {} ({}) {what}; garbage collection stopped before deleting \
         anything of this subscriber",
        snapshot.short(),
        path.display()
    ))
}

/// The union of the chunk lists of a subscriber's snapshots, asked in
/// increasing id order.
pub(crate) struct Live {
    lists: Vec<ManifestIds>,
    /// The current id of each list not yet exhausted, smallest first.
    heap: BinaryHeap<Reverse<([u8; 32], usize)>>,
}

impl Live {
    /// Opens every manifest (`(snapshot id, path, size)`).
    pub(crate) fn open(
        manifests: impl IntoIterator<Item = (ChunkId, PathBuf, u64)>,
    ) -> Result<Live> {
        let mut live = Live {
            lists: Vec::new(),
            heap: BinaryHeap::new(),
        };
        for (id, path, len) in manifests {
            let mut list = ManifestIds::open(&path, id, len)?;
            let i = live.lists.len();
            if let Some(first) = list.next()? {
                live.heap.push(Reverse((first, i)));
            }
            live.lists.push(list);
        }
        Ok(live)
    }

    /// Whether some snapshot references `id`. Ids must be asked in
    /// increasing order.
    pub(crate) fn contains(&mut self, id: &[u8; 32]) -> Result<bool> {
        while let Some(Reverse((head, i))) = self.heap.peek().copied() {
            if head >= *id {
                return Ok(head == *id);
            }
            self.heap.pop();
            if let Some(next) = self.lists[i].next()? {
                self.heap.push(Reverse((next, i)));
            }
        }
        Ok(false)
    }

    /// Reads every list to its end, checking each manifest against its id.
    /// Call it before acting on any answer of [`Live::contains`].
    pub(crate) fn finish(mut self) -> Result<()> {
        for list in &mut self.lists {
            while list.next()?.is_some() {}
        }
        Ok(())
    }
}
