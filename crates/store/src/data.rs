//! The data path: what an authenticated device does. Every method takes the
//! [`Session`] and is scoped by its subscriber (invariant 4): an id of another
//! subscriber behaves exactly like an id nobody has.

use std::fs;
use std::io;

use coffre_core::blob::{self, MAX_BLOB_SIZE};
use coffre_core::{snapshot_id, ChunkId, Manifest};

use crate::catalog::{CommitOutcome, DeleteOutcome, SnapshotRow};
use crate::durable;
use crate::error::{Error, Result};
use crate::layout::manifest_object;
use crate::pack::{self, PackWriter};
use crate::pending::lock;
use crate::retention::{Policy, DEFAULT_POLICY};
use crate::store::Store;
use crate::types::{Dispute, Presence, Role, Session, SnapshotInfo, Status};

impl Store {
    /// For each id, whether this device may skip the chunk: sealed in a pack
    /// in a copy it trusts ([`Presence::Trusted`]), or in one of this
    /// session's open packs (which `commit_snapshot` seals). Chunks in other
    /// sessions' open packs, and copies only other devices wrote that this
    /// one did not verify, are reported absent: a client of protocol 1 or 2
    /// then uploads its own copy (dedup trust, issue 17).
    pub fn has_chunks(&self, s: &Session, ids: &[ChunkId]) -> Result<Vec<bool>> {
        Ok(self
            .chunk_presence(s, ids)?
            .into_iter()
            .map(|p| p == Presence::Trusted)
            .collect())
    }

    /// For each id, whether this subscriber has the chunk and whether this
    /// device trusts a copy of it (see [`Presence`]; protocol 3). This
    /// session's open packs count as trusted.
    pub fn chunk_presence(&self, s: &Session, ids: &[ChunkId]) -> Result<Vec<Presence>> {
        self.register_writer(s)?;
        let mine = self.pending.session_has(s.token, ids);
        if mine.iter().all(|h| *h) {
            return Ok(vec![Presence::Trusted; ids.len()]);
        }
        let stored = self.catalog.presence(s.subscriber_id, s.device_id, ids)?;
        Ok(mine
            .into_iter()
            .zip(stored)
            .map(|(m, p)| if m { Presence::Trusted } else { p })
            .collect())
    }

    /// Records that this device fetched another device's copy of each id,
    /// decrypted it and recomputed its id: from then on the chunk is
    /// [`Presence::Trusted`] for it, and it is served that copy. Ids the
    /// subscriber does not have, or that the device trusts already, are
    /// ignored. Returns how many were recorded.
    pub fn vouch(&self, s: &Session, ids: &[ChunkId]) -> Result<u64> {
        self.register_writer(s)?;
        self.catalog.vouch(s.subscriber_id, s.device_id, ids)
    }

    /// Which devices' copies other devices did not accept (see
    /// [`Dispute`]), for the subscriber called `name`.
    pub fn disputes_of(&self, name: &str) -> Result<Vec<Dispute>> {
        let sub = self.catalog.subscriber_id_of(name)?;
        self.catalog.disputes(sub)
    }

    /// A new, empty pack writer for this session. Use one per session
    /// (connection): `has_chunks` and `commit_snapshot` rely on it.
    pub fn open_pack(&self, s: &Session) -> PackWriter {
        PackWriter::new(
            self.pending.clone(),
            self.packs.clone(),
            s.subscriber_id,
            s.token,
        )
    }

    /// Stores a blob under `id` in this session's open pack. Returns `false`
    /// (writing nothing) if the subscriber already has that chunk in a copy
    /// this device trusts, sealed or in this session's open packs. A chunk
    /// stored only in copies of other devices that this device did not
    /// verify is stored again, as this device's copy (the others are then
    /// disputed, `catalog/trust.rs`); it counts in the quota.
    ///
    /// Refuses a blob whose cleartext header is not a coffre blob's
    /// ([`Error::BadRequest`]), and one that would take the subscriber over
    /// its quota ([`Error::QuotaExceeded`]; the quota counts sealed data and
    /// every open pack of the subscriber). Seals the pack when it is full
    /// ([`PackWriter::is_full`]: its body reached 32 MiB). On an I/O error
    /// the open pack is discarded (its blobs must be sent again: `has_chunks`
    /// reports them absent).
    pub fn put_chunk(
        &self,
        s: &Session,
        pack: &mut PackWriter,
        id: &ChunkId,
        blob: &[u8],
    ) -> Result<bool> {
        let new = self.append_chunk(s, pack, id, blob)?;
        if pack.is_full() {
            self.seal_pack(s, pack)?;
        }
        Ok(new)
    }

    /// [`Store::put_chunk`] without the seal of a full pack: the caller
    /// decides what to do with it (the session writer hands it out to be
    /// sealed beside the next one).
    pub(crate) fn append_chunk(
        &self,
        s: &Session,
        pack: &mut PackWriter,
        id: &ChunkId,
        blob: &[u8],
    ) -> Result<bool> {
        self.check_pack(s, pack)?;
        self.register_writer(s)?;
        blob::check_header(blob).map_err(|e| {
            Error::BadRequest(format!(
                "chunk {} refused: {e} (the client sent a damaged blob: run the backup again; \
                 if it persists, update the client)",
                id.short()
            ))
        })?;
        if pack.contains(id) || self.pending.session_has(s.token, &[*id])[0] {
            return Ok(false);
        }
        let needed = pack.cost(blob.len());
        {
            let state = self.pending.subscriber(s.subscriber_id);
            let mut pending = lock(&state.pending_bytes);
            let (stored, quota, used) = self.catalog.put_check(s.subscriber_id, s.device_id, id)?;
            match stored {
                Presence::Trusted => return Ok(false),
                Presence::Untrusted => {
                    pack.disputes.insert(*id);
                }
                Presence::Absent => {}
            }
            let used = used.saturating_add(*pending);
            if used.saturating_add(needed) > quota {
                drop(pending);
                return Err(self.quota_refused(s, &state, used, quota, needed));
            }
            *pending += needed;
        }
        pack.reserved += needed;
        if let Err(e) = pack.append(id, blob) {
            pack.discard();
            return Err(e);
        }
        Ok(true)
    }

    /// Makes the open pack durable and visible: writes its index, fsyncs,
    /// renames it into place, fsyncs the directory, then records the pack and
    /// its chunks and adds its size to `used_bytes` in one transaction. Does
    /// nothing if the pack is empty. Afterwards the writer is empty and can be
    /// reused. On error the pack is discarded.
    pub fn seal_pack(&self, s: &Session, pack: &mut PackWriter) -> Result<()> {
        self.check_pack(s, pack)?;
        if pack.is_empty() {
            return Ok(());
        }
        let sealed = match pack.finish() {
            Ok(sealed) => sealed,
            Err(e) => {
                pack.discard();
                return Err(e);
            }
        };
        debug_assert_eq!(sealed.size, pack.reserved);
        let state = self.pending.subscriber(s.subscriber_id);
        let mut pending = lock(&state.pending_bytes);
        let recorded = self.catalog.insert_pack(
            s.subscriber_id,
            Some(s.device_id),
            (&sealed.name, sealed.size),
            pack.entries(),
            &pack.disputes,
            self.now(),
        );
        if let Err(e) = recorded {
            drop(pending);
            // Not in the catalogue: the pack is an orphan; remove it so that
            // used_bytes keeps matching the storage.
            let _ = self.packs.remove(s.subscriber_id, &[sealed.name.as_str()]);
            pack.discard();
            return Err(e);
        }
        *pending = pending.saturating_sub(std::mem::take(&mut pack.reserved));
        drop(pending);
        pack.clear_sealed();
        Ok(())
    }

    /// Commits a snapshot: seals the open pack, checks that every chunk the
    /// manifest lists is stored for this subscriber, stores the manifest
    /// durably, then records the snapshot. Returns the snapshot id (BLAKE3 of
    /// the manifest). Committing the same manifest again returns the same id
    /// and changes nothing.
    ///
    /// The pack and the manifest are made durable side by side (each a file
    /// written, flushed, renamed and its folder flushed): the commit waits
    /// for the slower of the two, not for both one after the other. The
    /// manifest's file is removed again if the commit fails.
    ///
    /// Errors: [`Error::BadRequest`] for an unreadable manifest or one made by
    /// another device; [`Error::MissingChunks`] (nothing committed);
    /// [`Error::QuotaExceeded`] for the manifest's own bytes.
    pub fn commit_snapshot(
        &self,
        s: &Session,
        pack: &mut PackWriter,
        manifest: &[u8],
    ) -> Result<ChunkId> {
        self.check_pack(s, pack)?;
        let (public, _) = Manifest::read_public(manifest).map_err(|e| {
            Error::BadRequest(format!(
                "the snapshot manifest is not valid: {e} (update the client if it persists)"
            ))
        })?;
        if public.device != s.device {
            return Err(Error::BadRequest(format!(
                "the manifest says it was made by device {:?}, but this is device {:?}: \
                 a device commits only its own snapshots",
                public.device, s.device
            )));
        }
        let id = snapshot_id(manifest);
        let state = self.pending.subscriber(s.subscriber_id);
        // The subscriber's other commits and forgets wait from here: while no
        // row names `id`, its manifest file is this commit's alone, to write
        // and to remove on failure (GC removes only files over an hour old).
        let _commit = lock(&state.commit);
        if self.catalog.snapshot_exists(s.subscriber_id, &id)? {
            self.seal_pack(s, pack)?;
            self.check_serving(s.subscriber_id)?;
            return Ok(id);
        }
        let dir = self.manifests_dir(s.subscriber_id);
        let path = self.manifest_path(s.subscriber_id, &id);
        let (sealed, written) = std::thread::scope(|scope| {
            let writing = scope.spawn(|| {
                durable::create_dir_all(&dir).and_then(|()| durable::write_atomic(&path, manifest))
            });
            let sealed = self.seal_pack(s, pack);
            let written = writing
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("the manifest's writer panicked")));
            (sealed, written)
        });
        let committed = sealed
            .and_then(|()| written.map_err(|e| Error::io(&path, e)))
            .and_then(|()| self.record_snapshot(s, &state, &public, id, manifest));
        if committed.is_err() {
            // No row names the manifest (commits of a subscriber are
            // serialised): remove it so that used_bytes keeps matching the
            // disk.
            let _ = durable::remove_file(&path);
        }
        committed.map(|()| id)
    }

    /// The end of [`Store::commit_snapshot`], its pack sealed and its
    /// manifest written: checks that this frontend still serves the
    /// subscriber and that every chunk is stored, reserves the manifest's
    /// bytes, copies it into the bucket, records the snapshot.
    fn record_snapshot(
        &self,
        s: &Session,
        state: &crate::pending::SubscriberState,
        public: &coffre_core::manifest::PublicPart,
        id: ChunkId,
        manifest: &[u8],
    ) -> Result<()> {
        // A frontend that was taken over commits nothing more (issue 22):
        // the snapshot would be in no catalogue of the one serving it now.
        self.check_serving(s.subscriber_id)?;
        let (epoch, count, first) = self
            .catalog
            .missing_chunks(s.subscriber_id, &public.chunks)?;
        if let Some(first) = first {
            return Err(Error::MissingChunks { count, first });
        }

        let needed = manifest.len() as u64;
        {
            let mut pending = lock(&state.pending_bytes);
            let (quota, used) = self.catalog.quota(s.subscriber_id)?;
            let used = used.saturating_add(*pending);
            if used.saturating_add(needed) > quota {
                drop(pending);
                return Err(self.quota_refused(s, state, used, quota, needed));
            }
            *pending += needed;
        }
        // In the bucket before the catalogue says committed (issue 22): a
        // committed snapshot is never only on this machine.
        let object = manifest_object(s.subscriber_id, &id.to_hex());
        if let Err(e) = self.mirror(&object, Some(manifest)) {
            self.pending.release(s.subscriber_id, needed);
            return Err(e);
        }

        let row = SnapshotRow {
            subscriber_id: s.subscriber_id,
            id,
            device_id: s.device_id,
            time: public.time.secs,
            // Retention goes by this, never by the PC's clock (issue 17).
            received: self.now(),
            logical_bytes: public.logical_bytes,
            file_count: public.file_count,
            problems: public.problems,
            checkpoint: public.checkpoint,
            manifest_bytes: needed,
            chunks: &public.chunks,
        };
        let outcome = {
            let mut pending = lock(&state.pending_bytes);
            let outcome = self.catalog.insert_snapshot(&row, epoch);
            *pending = pending.saturating_sub(needed);
            outcome
        };
        let failed = match outcome {
            Ok(CommitOutcome::Committed) => {
                let skew = row.time.saturating_sub(row.received);
                if !row.checkpoint && skew.unsigned_abs() > crate::CLOCK_SKEW_LIMIT.unsigned_abs() {
                    tracing::warn!(
                        subscriber = %s.subscriber,
                        device = %s.device,
                        skew_seconds = skew,
                        "the clock of this PC is wrong: its snapshot says {} but the server \
                         received it at {} (kept, and dated by its receipt)",
                        coffre_core::utc_minute(row.time),
                        coffre_core::utc_minute(row.received)
                    );
                }
                return Ok(());
            }
            Ok(CommitOutcome::Revoked) => Error::Revoked {
                subscriber: s.subscriber.clone(),
                device: s.device.clone(),
            },
            Ok(CommitOutcome::Missing { count, first }) => Error::MissingChunks { count, first },
            Err(e) => e,
        };
        let _ = self.packs.remove_object(&object);
        Err(failed)
    }

    /// The error for a request of `s` refused for quota, recorded for the
    /// board and logged (issue 20) at most once a minute per device, so that
    /// the puts in flight of one refused backup, or a device that keeps
    /// trying, make one line. A failure to record is logged, never hides the
    /// refusal.
    fn quota_refused(
        &self,
        s: &Session,
        state: &crate::pending::SubscriberState,
        used: u64,
        quota: u64,
        needed: u64,
    ) -> Error {
        let now = self.now();
        let missing = used.saturating_add(needed).saturating_sub(quota);
        let due = {
            let mut recorded = lock(&state.refusals_recorded);
            let due = recorded
                .get(&s.device_id)
                .is_none_or(|last| now - last >= 60 || now < *last);
            if due {
                recorded.insert(s.device_id, now);
            }
            due
        };
        if due {
            tracing::warn!(
                subscriber = %s.subscriber,
                device = %s.device,
                used,
                quota,
                needed,
                "backup refused: quota exceeded ({used} bytes used of {quota}, {needed} more \
                 needed); raise it with `coffre-server subscriber set {} --quota SIZE`",
                s.subscriber
            );
            if let Err(e) = self.catalog.record_quota_refusal(s.device_id, now, missing) {
                tracing::warn!(subscriber = %s.subscriber, device = %s.device, "cannot record a quota refusal: {e}");
            }
        }
        Error::QuotaExceeded {
            used,
            quota,
            needed,
        }
    }

    /// This subscriber's snapshots, oldest first.
    pub fn list_snapshots(&self, s: &Session) -> Result<Vec<SnapshotInfo>> {
        self.catalog.snapshots(s.subscriber_id)
    }

    /// The manifest of one of this subscriber's snapshots, checked against its
    /// id.
    pub fn manifest(&self, s: &Session, id: &ChunkId) -> Result<Vec<u8>> {
        self.read_manifest(s, id)
            .map_err(|e| e.reading(|| format!("the manifest of snapshot {}", id.short())))
    }

    fn read_manifest(&self, s: &Session, id: &ChunkId) -> Result<Vec<u8>> {
        let len = self
            .catalog
            .manifest_len(s.subscriber_id, id)?
            .ok_or_else(|| Error::not_found(format!("snapshot {}", id.short())))?;
        let path = self.manifest_path(s.subscriber_id, id);
        let bytes = match fs::metadata(&path) {
            Ok(m) if m.len() == len => fs::read(&path).map_err(|e| Error::io(&path, e))?,
            Ok(m) => {
                return Err(Error::Corrupt(format!(
                    "manifest {} has {} bytes, the catalogue says {len}",
                    path.display(),
                    m.len()
                )))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::Corrupt(format!(
                    "the manifest of snapshot {} is missing ({})",
                    id.short(),
                    path.display()
                )))
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        if snapshot_id(&bytes) != *id {
            return Err(Error::Corrupt(format!(
                "manifest {} does not match its id",
                path.display()
            )));
        }
        Ok(bytes)
    }

    /// The blob stored under `id`, read from its pack and checked against its
    /// checksum: this device's own or vouched copy, else the first copy
    /// (`catalog/trust.rs`). [`Error::NotFound`] whether the id is another
    /// subscriber's or nobody's; chunks still in an open pack are not found
    /// until sealed. A stored copy that is damaged, missing or unreadable is
    /// [`Error::Unreadable`] naming the chunk (the details, for the
    /// operator, inside).
    pub fn chunk(&self, s: &Session, id: &ChunkId) -> Result<Vec<u8>> {
        match self.read_chunk(s, id, None) {
            // A repack may have moved the chunk between the look-up and the
            // read (the old pack is removed after the switch): look again.
            Err(Error::Corrupt(_)) if self.moved(s, id, None)? => self.read_chunk(s, id, None),
            other => other,
        }
        .map_err(|e| e.reading(|| format!("chunk {}", id.short())))
    }

    /// Copy number `rank` of chunk `id` (0 is the first copy, in the order
    /// they were stored), for a client whose blob failed to open: it asks
    /// for each copy in turn. [`Error::NotFound`] past the last copy.
    pub fn chunk_copy(&self, s: &Session, id: &ChunkId, rank: u32) -> Result<Vec<u8>> {
        match self.read_chunk(s, id, Some(rank)) {
            Err(Error::Corrupt(_)) if self.moved(s, id, Some(rank))? => {
                self.read_chunk(s, id, Some(rank))
            }
            other => other,
        }
        .map_err(|e| e.reading(|| format!("chunk {}", id.short())))
    }

    /// The blobs of `ids`, in order, as many as fit in `budget` bytes (at
    /// least the first): `None` for an id this subscriber does not have
    /// (another subscriber's or nobody's, as [`Store::chunk`] says
    /// [`Error::NotFound`]). Any other failure fails the whole call: the
    /// caller can then ask for each id alone and learn which one failed.
    pub fn chunks(
        &self,
        s: &Session,
        ids: &[ChunkId],
        budget: usize,
    ) -> Result<Vec<Option<Vec<u8>>>> {
        let mut out = Vec::with_capacity(ids.len());
        let mut total = 0;
        for id in ids {
            match self.chunk(s, id) {
                Ok(blob) => {
                    total += blob.len();
                    if total > budget && !out.is_empty() {
                        break;
                    }
                    out.push(Some(blob));
                }
                Err(Error::NotFound { .. }) => out.push(None),
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Whether chunk `id` is now in a pack that exists (after a read found
    /// its pack missing).
    fn moved(&self, s: &Session, id: &ChunkId, rank: Option<u32>) -> Result<bool> {
        Ok(match self.locate(s, id, rank)? {
            Some(loc) => self.packs.exists(s.subscriber_id, &loc.pack)?,
            None => false,
        })
    }

    /// Where the copy of `id` this device is served is (`rank`: that copy).
    fn locate(
        &self,
        s: &Session,
        id: &ChunkId,
        rank: Option<u32>,
    ) -> Result<Option<crate::catalog::Location>> {
        match rank {
            None => self
                .catalog
                .chunk_location(s.subscriber_id, s.device_id, id),
            Some(rank) => self.catalog.copy_location(s.subscriber_id, id, rank),
        }
    }

    fn read_chunk(&self, s: &Session, id: &ChunkId, rank: Option<u32>) -> Result<Vec<u8>> {
        let loc = self.locate(s, id, rank)?.ok_or_else(|| match rank {
            None => Error::not_found(format!("chunk {}", id.short())),
            Some(rank) => Error::not_found(format!("copy {rank} of chunk {}", id.short())),
        })?;
        if loc.entry.length as usize > MAX_BLOB_SIZE {
            return Err(Error::Corrupt(format!(
                "the catalogue says chunk {} has {} bytes, more than a blob may have",
                id.short(),
                loc.entry.length
            )));
        }
        pack::read_blob(
            &self.packs,
            s.subscriber_id,
            &loc.pack,
            id,
            loc.entry.offset,
            loc.entry.length,
            &loc.entry.checksum,
        )
    }

    /// Forgets a snapshot: admin devices only ([`Error::Forbidden`] for backup
    /// devices, invariant 3). Removes the snapshot row and its manifest file
    /// and lowers `used_bytes` by the manifest's size. Chunks stay until a
    /// later GC.
    pub fn forget_snapshot(&self, s: &Session, id: &ChunkId) -> Result<()> {
        if s.role != Role::Admin {
            return Err(Error::Forbidden {
                action: "forgetting a snapshot",
                device: s.device.clone(),
            });
        }
        let state = self.pending.subscriber(s.subscriber_id);
        let _commit = lock(&state.commit);
        match self
            .catalog
            .delete_snapshot(s.subscriber_id, s.device_id, id)?
        {
            DeleteOutcome::Deleted => {}
            DeleteOutcome::NotFound => {
                return Err(Error::not_found(format!("snapshot {}", id.short())))
            }
            DeleteOutcome::Revoked => {
                return Err(Error::Revoked {
                    subscriber: s.subscriber.clone(),
                    device: s.device.clone(),
                })
            }
        }
        let path = self.manifest_path(s.subscriber_id, id);
        durable::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        self.mirror(&manifest_object(s.subscriber_id, &id.to_hex()), None)
    }

    /// Every snapshot of the subscriber called `name`, oldest first (for the
    /// server's own work: retention, usage).
    pub fn snapshots_of(&self, name: &str) -> Result<Vec<SnapshotInfo>> {
        let sub = self.catalog.subscriber_id_of(name)?;
        self.catalog.snapshots(sub)
    }

    /// The retention policy of the subscriber called `name` (its own, or
    /// [`crate::retention::DEFAULT_POLICY`]).
    pub fn retention_of(&self, name: &str) -> Result<Policy> {
        let info = self.catalog.subscriber(name)?;
        let text = info.retention.as_deref().unwrap_or(DEFAULT_POLICY);
        Policy::parse(text).map_err(|e| Error::Corrupt(format!("subscriber {name:?}: {e}")))
    }

    /// Removes a snapshot on the server's authority (retention): its
    /// manifest goes, and its data is freed by the next garbage collection.
    /// Waits for any commit of the subscriber in progress. Returns false if
    /// the snapshot was already gone.
    pub fn remove_snapshot(&self, name: &str, id: &ChunkId) -> Result<bool> {
        let sub = self.catalog.subscriber_id_of(name)?;
        // Never for a subscriber another frontend serves now (issue 22).
        self.check_serving(sub)?;
        let state = self.pending.subscriber(sub);
        let _commit = lock(&state.commit);
        if !self.catalog.delete_snapshot_by_server(sub, id)? {
            return Ok(false);
        }
        let path = self.manifest_path(sub, id);
        durable::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        self.mirror(&manifest_object(sub, &id.to_hex()), None)?;
        Ok(true)
    }

    /// [`Store::remove_snapshot`] of several snapshots of one subscriber:
    /// their rows go in one transaction, then their manifests, with one
    /// flush of the folder for all. The nightly retention removes about one
    /// snapshot per device; one transaction and two flushes each cost 10 ms
    /// on the 2-core test machine, 17 minutes a night for 100,000 PCs
    /// (docs/performance.md, "National scale"). A crash between the two
    /// steps leaves manifests without rows, which GC removes as orphans.
    /// Returns how many were there.
    pub fn remove_snapshots(&self, name: &str, ids: &[ChunkId]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let sub = self.catalog.subscriber_id_of(name)?;
        // Never for a subscriber another frontend serves now (issue 22).
        self.check_serving(sub)?;
        let state = self.pending.subscriber(sub);
        let _commit = lock(&state.commit);
        let gone = self.catalog.delete_snapshots_by_server(sub, ids)?;
        for id in &gone {
            let path = self.manifest_path(sub, id);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        if !gone.is_empty() {
            let dir = self.manifests_dir(sub);
            durable::sync_dir(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        // And their copies in the bucket (issue 22): a take-over must not
        // bring a removed snapshot back.
        for id in &gone {
            self.mirror(&manifest_object(sub, &id.to_hex()), None)?;
        }
        Ok(gone.len() as u64)
    }

    /// The subscriber's quota and usage, and this device's last backup.
    pub fn status(&self, s: &Session) -> Result<Status> {
        self.catalog.status(s.subscriber_id, s.device_id)
    }

    /// Refuses a pack writer of another store or session.
    fn check_pack(&self, s: &Session, pack: &PackWriter) -> Result<()> {
        if pack.belongs_to(&self.pending)
            && pack.subscriber_id == s.subscriber_id
            && pack.token == s.token
        {
            Ok(())
        } else {
            Err(Error::BadRequest(
                "this pack writer belongs to another session: open one per session with \
                 Store::open_pack"
                    .into(),
            ))
        }
    }
}
