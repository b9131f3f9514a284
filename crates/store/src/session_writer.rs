//! [`SessionWriter`]: a connection's uploads, the way the daemon drives them:
//! one open pack, and the full packs handed out to be sealed beside it.
//!
//! The store alone decides when a pack is full ([`PackWriter::is_full`]: its
//! body reached 32 MiB). [`Store::write_chunk`] appends to the open pack and,
//! when that made it full, swaps in a fresh one and returns the full one as a
//! [`FullPack`]; the caller seals it with [`Store::seal_full`] wherever it
//! likes (the daemon: another task of tokio's blocking pool), so the
//! session's appends go on while the full pack is fsync'd. That is worth
//! 474–485 MB/s against 420–457 MB/s of uploads stalled by each fsync
//! (`benches/examples/upload.rs`, docs/performance.md, "Upload").
//!
//! What stays true while a full pack is out:
//!
//! - **It is counted in flight** from the moment it leaves the open pack until
//!   it is sealed or dropped. [`Store::seal_writer`] (end of a connection) and
//!   [`Store::commit_writer`] wait for the count to reach zero before they seal
//!   the open pack (and a commit before it checks the manifest's chunks), so a
//!   commit never misses a chunk that is being sealed. A [`FullPack`] dropped
//!   unsealed (a runtime that shuts down drops its blocking tasks unrun) is
//!   discarded and uncounted at once: nothing can wait for it forever.
//! - **Its chunks are the session's** until sealed: `has_chunks` reports them
//!   present, so the client sends nothing twice; a failed seal (or a drop)
//!   discards the pack, they are reported absent from then on, and the
//!   client's commit gets `MissingChunks` and sends them again.
//! - **Its quota reservation** is kept until the seal adds it to
//!   `used_bytes`, or the discard returns it (`pending.rs`).
//!
//! Appends to one writer are serialised by its lock (the daemon already sends
//! them one blocking task at a time through its combiner); a commit (and the
//! end of a session) takes the lock before it waits for the seals, so no
//! append beside it can hand a pack out unseen, and holds it while it seals
//! and checks. Sealing a full pack never takes that lock: no deadlock.

use std::sync::{Arc, Condvar, Mutex};

use coffre_core::ChunkId;

use crate::error::Result;
use crate::pack::PackWriter;
use crate::pending::lock;
use crate::store::Store;
use crate::types::Session;

/// A session's open pack and the count of its full packs being sealed. Make
/// one per connection with [`Store::session_writer`]; `Send + Sync`, so the
/// tasks of a connection share it (in an `Arc`).
///
/// Dropping it discards the open pack's blobs, as dropping a [`PackWriter`]
/// does: seal it first ([`Store::seal_writer`]) to keep them.
#[derive(Debug)]
pub struct SessionWriter {
    open: Mutex<PackWriter>,
    seals: Arc<Seals>,
}

/// The full packs of a writer being sealed: how many, and a signal when one
/// is done.
#[derive(Debug, Default)]
struct Seals {
    count: Mutex<usize>,
    done: Condvar,
}

/// A full pack taken out of a [`SessionWriter`], to be sealed with
/// [`Store::seal_full`]. Dropping it unsealed discards its blobs.
#[derive(Debug)]
#[must_use = "a full pack dropped unsealed loses its blobs: seal it with Store::seal_full"]
pub struct FullPack {
    // Dropped first: the pack is sealed or discarded before the count falls.
    pack: PackWriter,
    _in_flight: InFlight,
}

/// Counts one full pack of a writer, from [`InFlight::start`] until dropped.
#[derive(Debug)]
struct InFlight(Arc<Seals>);

impl InFlight {
    fn start(seals: &Arc<Seals>) -> InFlight {
        *lock(&seals.count) += 1;
        InFlight(seals.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        *lock(&self.0.count) -= 1;
        self.0.done.notify_all();
    }
}

impl SessionWriter {
    /// Blocks until no full pack of this writer is being sealed.
    fn wait_for_seals(&self) {
        let mut n = lock(&self.seals.count);
        while *n > 0 {
            n = self
                .seals
                .done
                .wait(n)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
    }
}

impl Store {
    /// A new session writer for this session, its open pack empty.
    pub fn session_writer(&self, s: &Session) -> SessionWriter {
        SessionWriter {
            open: Mutex::new(self.open_pack(s)),
            seals: Arc::default(),
        }
    }

    /// Stores a blob under `id` in the writer's open pack, as
    /// [`Store::put_chunk`] does (same checks, same errors); returns whether
    /// it was new, and the full pack to seal if this blob filled it.
    pub fn write_chunk(
        &self,
        s: &Session,
        writer: &SessionWriter,
        id: &ChunkId,
        blob: &[u8],
    ) -> Result<(bool, Option<FullPack>)> {
        let mut open = lock(&writer.open);
        let new = self.append_chunk(s, &mut open, id, blob)?;
        if !open.is_full() {
            return Ok((new, None));
        }
        // Counted before it leaves the open pack: a commit that takes the
        // lock next waits for it.
        let in_flight = InFlight::start(&writer.seals);
        let full = FullPack {
            pack: std::mem::replace(&mut *open, self.open_pack(s)),
            _in_flight: in_flight,
        };
        Ok((new, Some(full)))
    }

    /// Seals a full pack handed out by [`Store::write_chunk`] (see
    /// [`Store::seal_pack`]; on error its blobs are discarded).
    pub fn seal_full(&self, s: &Session, mut full: FullPack) -> Result<()> {
        self.seal_pack(s, &mut full.pack)
    }

    /// Waits for the writer's full packs, then seals its open pack: what the
    /// daemon does when a connection ends, so that what was uploaded is
    /// durable, and for a device's earlier connections.
    pub fn seal_writer(&self, s: &Session, writer: &SessionWriter) -> Result<()> {
        // The lock first: no pack can be handed out while we wait.
        let mut open = lock(&writer.open);
        writer.wait_for_seals();
        self.seal_pack(s, &mut open)
    }

    /// Waits for the writer's full packs, then commits a snapshot with its
    /// open pack ([`Store::commit_snapshot`]).
    pub fn commit_writer(
        &self,
        s: &Session,
        writer: &SessionWriter,
        manifest: &[u8],
    ) -> Result<ChunkId> {
        // The lock first: a full pack handed out by an append running beside
        // the commit is then counted before we wait, never missed.
        let mut open = lock(&writer.open);
        writer.wait_for_seals();
        self.commit_snapshot(s, &mut open, manifest)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use coffre_core::{BlobKind, Keys, Manifest, MasterKey, Sealer, Timestamp};

    use super::*;
    use crate::pack::PACK_TARGET_SIZE;
    use crate::types::Role;

    /// A store with one subscriber, a session of its device, and its keys.
    fn setup() -> (tempfile::TempDir, Arc<Store>, Arc<Session>, Keys) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        store.add_subscriber("acme", 1 << 30, None).unwrap();
        let secret = store.add_device("acme", "pc", Role::Backup).unwrap();
        let s = store.authenticate(&secret).unwrap();
        let keys = Keys::derive(&MasterKey::from_bytes([9; 32]));
        (dir, Arc::new(store), Arc::new(s), keys)
    }

    fn blob(keys: &Keys, seed: u64, len: usize) -> (ChunkId, Vec<u8>) {
        let data = coffre_core::benchmark::random_bytes(len, seed);
        let id = ChunkId::compute(keys, &data);
        let b = Sealer::new(3)
            .seal(keys, BlobKind::Data, &id, &data)
            .unwrap();
        (id, b)
    }

    /// Writes 4 MiB blobs until the store hands a full pack out.
    fn fill(
        store: &Store,
        s: &Session,
        w: &SessionWriter,
        keys: &Keys,
    ) -> (Vec<ChunkId>, FullPack) {
        let mut ids = Vec::new();
        for seed in 0.. {
            let (id, b) = blob(keys, seed, 4 << 20);
            let (new, full) = store.write_chunk(s, w, &id, &b).unwrap();
            assert!(new);
            ids.push(id);
            if let Some(full) = full {
                return (ids, full);
            }
        }
        unreachable!()
    }

    #[test]
    fn a_full_pack_is_handed_out_when_put_chunk_would_seal_it() {
        let (_dir, store, s, keys) = setup();
        let w = store.session_writer(&s);
        let (ids, full) = fill(&store, &s, &w, &keys);
        // The same decision as put_chunk's: the blob that takes the body to
        // 32 MiB (`a_pack_is_sealed_at_32_mib` in tests/data_path.rs).
        assert_eq!(ids.len() as u64, PACK_TARGET_SIZE.div_ceil(4 << 20));
        assert!(full.pack.is_full() && full.pack.len() == ids.len());
        assert!(lock(&w.open).is_empty(), "a fresh open pack");
        // Out but not sealed: the session has its chunks, nobody else does.
        assert!(store.has_chunks(&s, &ids).unwrap().iter().all(|h| *h));
        store.seal_full(&s, full).unwrap();
        assert!(store.has_chunks(&s, &ids).unwrap().iter().all(|h| *h));
        assert_eq!(*lock(&w.seals.count), 0);
        let used = store.subscriber("acme").unwrap().used_bytes;
        assert!(used > PACK_TARGET_SIZE, "the sealed pack counts: {used}");
    }

    #[test]
    fn a_commit_waits_for_the_full_packs_being_sealed() {
        let (_dir, store, s, keys) = setup();
        let w = Arc::new(store.session_writer(&s));
        let (mut ids, full) = fill(&store, &s, &w, &keys);
        let (id, b) = blob(&keys, 1000, 1000);
        assert!(store.write_chunk(&s, &w, &id, &b).unwrap().0);
        ids.push(id);
        ids.sort();
        let manifest = {
            let mut m = Manifest::bare("pc", Timestamp { secs: 1, nanos: 0 }, ids);
            m.public.file_count = 1;
            m
        }
        .seal(&keys)
        .unwrap();

        let (done, committed) = mpsc::channel();
        let committer = std::thread::spawn({
            let (store, s, w) = (store.clone(), s.clone(), w.clone());
            move || done.send(store.commit_writer(&s, &w, &manifest)).unwrap()
        });
        // A settle, not a timeout: the commit must still be waiting.
        assert!(committed.recv_timeout(Duration::from_millis(200)).is_err());
        store.seal_full(&s, full).unwrap();
        committed.recv().unwrap().unwrap();
        committer.join().unwrap();
        assert_eq!(store.list_snapshots(&s).unwrap().len(), 1);
    }

    #[test]
    fn a_full_pack_dropped_unsealed_is_discarded_and_nothing_waits_for_it() {
        let (_dir, store, s, keys) = setup();
        let w = store.session_writer(&s);
        let (ids, full) = fill(&store, &s, &w, &keys);
        // What a runtime shutting down does to a sealing task it never ran.
        drop(full);
        assert_eq!(*lock(&w.seals.count), 0);
        store.seal_writer(&s, &w).unwrap();
        assert!(store.has_chunks(&s, &ids).unwrap().iter().all(|h| !*h));
        let pending = *lock(&store.pending.subscriber(s.subscriber_id).pending_bytes);
        assert_eq!(pending, 0, "the reservation is returned");
        assert_eq!(store.subscriber("acme").unwrap().used_bytes, 0);
    }
}
