//! The catalogue's data path: what an authenticated session asks (has/put
//! checks, quota, sealed packs, snapshots, chunk locations, the key file,
//! status). Every query is scoped by `subscriber_id` (invariant 4). A
//! commit is checked against the GC epoch it read its chunks at, and checked
//! again inside its write transaction if a sweep ran meanwhile (invariant 6).

use coffre_core::ChunkId;
use rusqlite::{params, OptionalExtension, Transaction};

use std::collections::HashSet;

use super::rows::{add_pack_row, pack_entry, parse_id, subscriber_id, to_i64, to_u64, Location};
use super::trust::{add_copies, location_row, presence};
use super::Catalog;
use crate::error::{Error, Result};
use crate::pack::PackEntry;
use crate::types::{Presence, SnapshotInfo, Status};

impl Catalog {
    // ------------------------------------------------------------ data path

    /// For each id, whether subscriber `sub` has it in a sealed pack (any
    /// copy, whoever wrote it).
    pub(crate) fn has_chunks(&self, sub: i64, ids: &[ChunkId]) -> Result<Vec<bool>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(HAS_CHUNK)?;
            ids.iter()
                .map(|id| Ok(stmt.exists(params![sub, &id.as_bytes()[..]])?))
                .collect()
        })
    }

    /// What `put_chunk` needs: whether the chunk is stored and trusted by
    /// `device` (`trust.rs`), and `(quota_bytes, used_bytes)`.
    pub(crate) fn put_check(
        &self,
        sub: i64,
        device: i64,
        id: &ChunkId,
    ) -> Result<(Presence, u64, u64)> {
        self.read(|tx| {
            let stored = presence(tx, sub, device, id)?;
            let (quota, used) = quota_used(tx, sub)?;
            Ok((stored, quota, used))
        })
    }

    /// `(quota_bytes, used_bytes)` of subscriber `sub`.
    pub(crate) fn quota(&self, sub: i64) -> Result<(u64, u64)> {
        self.read(|tx| quota_used(tx, sub))
    }

    /// Records a sealed pack and its chunks, and adds its size to the
    /// subscriber's `used_bytes`, in one transaction. Each blob becomes a
    /// copy of its id written by `writer` as `trust.rs` says: a chunk that
    /// `writer` already trusts (stored meanwhile by another of its sessions,
    /// or vouched for) keeps its copies (this blob stays in the pack,
    /// unindexed, until a repack); one it does not trust gets this blob as a
    /// further copy (and, if in `disputes`, the other copies are marked
    /// disputed). `writer` is `None` for a rebuilt catalogue.
    pub(crate) fn insert_pack(
        &self,
        sub: i64,
        writer: Option<i64>,
        pack: (&str, u64),
        entries: &[PackEntry],
        disputes: &HashSet<ChunkId>,
        now: i64,
    ) -> Result<()> {
        self.write(|tx| add_pack(tx, sub, writer, pack, entries, disputes, now))
    }

    pub(crate) fn snapshot_exists(&self, sub: i64, id: &ChunkId) -> Result<bool> {
        self.read(|tx| Ok(manifest_len(tx, sub, id)?.is_some()))
    }

    /// Counts the ids subscriber `sub` does not have, with the first of them,
    /// and the GC epoch the answer is valid for.
    pub(crate) fn missing_chunks(
        &self,
        sub: i64,
        ids: &[ChunkId],
    ) -> Result<(i64, u64, Option<ChunkId>)> {
        self.read(|tx| {
            let epoch = gc_epoch(tx)?;
            let (count, first) = missing(tx, sub, ids)?;
            Ok((epoch, count, first))
        })
    }

    /// Inserts a snapshot row, adds its manifest to `used_bytes` and sets the
    /// device's `last_backup` and `clock_skew` (from `row.received`), in one
    /// transaction. If a GC sweep ran since `checked_epoch`, the chunks are
    /// checked again inside the transaction.
    pub(crate) fn insert_snapshot(
        &self,
        row: &SnapshotRow<'_>,
        checked_epoch: i64,
    ) -> Result<CommitOutcome> {
        self.write(|tx| {
            if device_revoked(tx, row.subscriber_id, row.device_id)? {
                return Ok(CommitOutcome::Revoked);
            }
            if gc_epoch(tx)? != checked_epoch {
                if let (count @ 1.., Some(first)) = missing(tx, row.subscriber_id, row.chunks)? {
                    return Ok(CommitOutcome::Missing { count, first });
                }
            }
            add_snapshot_row(tx, row)?;
            Ok(CommitOutcome::Committed)
        })
    }

    pub(crate) fn snapshots(&self, sub: i64) -> Result<Vec<SnapshotInfo>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT sn.id, sn.time, sn.received, d.name, sn.logical_bytes, sn.file_count,
                        sn.manifest_bytes, sn.checkpoint
                 FROM snapshots sn JOIN devices d ON d.id = sn.device_id
                 WHERE sn.subscriber_id = ?1
                 ORDER BY sn.time, sn.seq, sn.id",
            )?;
            let rows = stmt.query_map([sub], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, bool>(7)?,
                ))
            })?;
            rows.map(|row| {
                let (id, time, received, device, logical, files, manifest, checkpoint) = row?;
                Ok(SnapshotInfo {
                    id: parse_id(id)?,
                    time,
                    received,
                    device,
                    logical_bytes: to_u64(logical),
                    file_count: to_u64(files),
                    manifest_bytes: to_u64(manifest),
                    checkpoint,
                })
            })
            .collect()
        })
    }

    /// The manifest size of snapshot `id` of subscriber `sub`, if it exists.
    pub(crate) fn manifest_len(&self, sub: i64, id: &ChunkId) -> Result<Option<u64>> {
        self.read(|tx| manifest_len(tx, sub, id))
    }

    /// Where chunk `id` of subscriber `sub` is, as served to `device`: its
    /// own or vouched copy first, else the first copy (`trust.rs`).
    pub(crate) fn chunk_location(
        &self,
        sub: i64,
        device: i64,
        id: &ChunkId,
    ) -> Result<Option<Location>> {
        self.read(|tx| {
            let row = tx
                .prepare_cached(
                    "SELECT p.name, c.offset, c.length, c.checksum
                     FROM chunks c JOIN packs p ON p.id = c.pack_id
                     WHERE c.subscriber_id = ?1 AND c.id = ?2
                     ORDER BY COALESCE(c.writer = ?3, 0)
                              OR c.copy = (SELECT v.copy FROM vouches v
                                           WHERE v.subscriber_id = ?1 AND v.device_id = ?3
                                             AND v.id = ?2) DESC,
                              c.copy
                     LIMIT 1",
                )?
                .query_row(params![sub, &id.as_bytes()[..], device], location_row)
                .optional()?;
            row.map(|(pack, offset, length, checksum)| {
                Ok(Location {
                    pack,
                    entry: pack_entry(*id, offset, length, checksum)?,
                })
            })
            .transpose()
        })
    }

    /// Removes snapshot `id` and lowers `used_bytes` by its manifest size.
    pub(crate) fn delete_snapshot(
        &self,
        sub: i64,
        device: i64,
        id: &ChunkId,
    ) -> Result<DeleteOutcome> {
        self.write(|tx| {
            if device_revoked(tx, sub, device)? {
                return Ok(DeleteOutcome::Revoked);
            }
            Ok(if delete_snapshot_row(tx, sub, id)? {
                DeleteOutcome::Deleted
            } else {
                DeleteOutcome::NotFound
            })
        })
    }

    /// The id of the subscriber called `name`.
    pub(crate) fn subscriber_id_of(&self, name: &str) -> Result<i64> {
        self.read(|tx| {
            subscriber_id(tx, name)?.ok_or_else(|| Error::not_found(format!("subscriber {name:?}")))
        })
    }

    /// Removes snapshot `id` on the server's own authority (retention),
    /// lowering `used_bytes` by its manifest size. False if it was not there.
    pub(crate) fn delete_snapshot_by_server(&self, sub: i64, id: &ChunkId) -> Result<bool> {
        self.write(|tx| delete_snapshot_row(tx, sub, id))
    }

    /// Removes the snapshots `ids` of subscriber `sub` on the server's own
    /// authority (retention) in one transaction, lowering `used_bytes` by
    /// their manifests; returns those that were there.
    pub(crate) fn delete_snapshots_by_server(
        &self,
        sub: i64,
        ids: &[ChunkId],
    ) -> Result<Vec<ChunkId>> {
        self.write(|tx| {
            let mut gone = Vec::with_capacity(ids.len());
            for id in ids {
                if delete_snapshot_row(tx, sub, id)? {
                    gone.push(*id);
                }
            }
            Ok(gone)
        })
    }

    pub(crate) fn status(&self, sub: i64, device: i64) -> Result<Status> {
        self.read(|tx| {
            tx.prepare_cached(
                "SELECT s.name, d.name, s.quota_bytes, s.used_bytes,
                        (SELECT COUNT(*) FROM snapshots WHERE subscriber_id = s.id),
                        d.last_backup
                 FROM subscribers s JOIN devices d ON d.subscriber_id = s.id
                 WHERE s.id = ?1 AND d.id = ?2",
            )?
            .query_row([sub, device], |r| {
                Ok(Status {
                    subscriber: r.get(0)?,
                    device: r.get(1)?,
                    quota_bytes: to_u64(r.get(2)?),
                    used_bytes: to_u64(r.get(3)?),
                    snapshots: to_u64(r.get(4)?),
                    last_backup: r.get(5)?,
                })
            })
            .optional()?
            .ok_or_else(|| Error::not_found("this device"))
        })
    }
}

/// A snapshot to insert.
#[derive(Debug)]
pub(crate) struct SnapshotRow<'a> {
    pub(crate) subscriber_id: i64,
    pub(crate) id: ChunkId,
    pub(crate) device_id: i64,
    /// The manifest's time (the device's clock).
    pub(crate) time: i64,
    /// When the server received it (its clock): what retention goes by.
    pub(crate) received: i64,
    pub(crate) logical_bytes: u64,
    pub(crate) file_count: u64,
    /// The problems its manifest declares (0 for a version 1 manifest).
    pub(crate) problems: u64,
    /// A checkpoint (its manifest's public flag, version 3): a partial
    /// snapshot; it does not make the device's `last_backup`.
    pub(crate) checkpoint: bool,
    pub(crate) manifest_bytes: u64,
    /// The chunks it references (checked again if a GC ran meanwhile).
    pub(crate) chunks: &'a [ChunkId],
}

/// How [`Catalog::insert_snapshot`] ended.
#[derive(Debug)]
pub(crate) enum CommitOutcome {
    /// The snapshot is in the catalogue (inserted now or already there).
    Committed,
    /// The device was revoked meanwhile; nothing was written.
    Revoked,
    /// A GC removed chunks meanwhile; nothing was written.
    Missing { count: u64, first: ChunkId },
}

/// [`Catalog::insert_pack`] inside transaction `tx` (a rebuild writes a
/// structure's packs in its one transaction).
pub(super) fn add_pack(
    tx: &Transaction<'_>,
    sub: i64,
    writer: Option<i64>,
    pack: (&str, u64),
    entries: &[PackEntry],
    disputes: &HashSet<ChunkId>,
    now: i64,
) -> Result<()> {
    let pack_id = add_pack_row(tx, sub, pack.0, pack.1, now)?;
    add_copies(tx, sub, writer, pack_id, entries.iter(), disputes)
}

/// How [`Catalog::delete_snapshot`] ended.
#[derive(Debug)]
pub(crate) enum DeleteOutcome {
    Deleted,
    NotFound,
    Revoked,
}

/// Inserts a snapshot row after the subscriber's others (`seq`), adds its
/// manifest to `used_bytes` and counts it in `activity` if it is new, and
/// makes the device's `last_backup` at least `row.received`; if this is the
/// device's latest commit, records its clock's skew (manifest time minus
/// received time, saturating: a manifest may say any second). A checkpoint
/// touches neither: `last_backup` is the last complete backup (issue 19).
/// Returns whether the row is new.
pub(super) fn add_snapshot_row(tx: &Transaction<'_>, row: &SnapshotRow<'_>) -> Result<bool> {
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO snapshots
           (subscriber_id, id, device_id, time, received, logical_bytes, file_count,
            manifest_bytes, problems, checkpoint, seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,
                 (SELECT COALESCE(MAX(seq), 0) + 1 FROM snapshots WHERE subscriber_id = ?1))",
        params![
            row.subscriber_id,
            &row.id.as_bytes()[..],
            row.device_id,
            row.time,
            row.received,
            to_i64(row.logical_bytes),
            to_i64(row.file_count),
            to_i64(row.manifest_bytes),
            to_i64(row.problems),
            row.checkpoint
        ],
    )? == 1;
    if inserted {
        tx.execute(
            "UPDATE subscribers SET used_bytes = used_bytes + ?2, activity = activity + 1
             WHERE id = ?1",
            params![row.subscriber_id, to_i64(row.manifest_bytes)],
        )?;
    }
    if row.checkpoint {
        return Ok(inserted);
    }
    // Both SET expressions read the row as it was.
    tx.execute(
        "UPDATE devices
            SET clock_skew = CASE WHEN last_backup IS NULL OR ?2 >= last_backup
                                  THEN ?3 ELSE clock_skew END,
                last_backup = MAX(COALESCE(last_backup, ?2), ?2)
          WHERE id = ?1",
        params![
            row.device_id,
            row.received,
            row.time.saturating_sub(row.received)
        ],
    )?;
    Ok(inserted)
}

/// Deletes a snapshot's row and lowers `used_bytes` by its manifest size;
/// false if there was no such snapshot.
fn delete_snapshot_row(tx: &Transaction<'_>, sub: i64, id: &ChunkId) -> Result<bool> {
    let Some(len) = manifest_len(tx, sub, id)? else {
        return Ok(false);
    };
    tx.execute(
        "DELETE FROM snapshots WHERE subscriber_id = ?1 AND id = ?2",
        params![sub, &id.as_bytes()[..]],
    )?;
    tx.execute(
        "UPDATE subscribers SET used_bytes = MAX(used_bytes - ?2, 0) WHERE id = ?1",
        params![sub, to_i64(len)],
    )?;
    Ok(true)
}

fn quota_used(tx: &Transaction<'_>, sub: i64) -> Result<(u64, u64)> {
    tx.prepare_cached("SELECT quota_bytes, used_bytes FROM subscribers WHERE id = ?1")?
        .query_row([sub], |r| Ok((to_u64(r.get(0)?), to_u64(r.get(1)?))))
        .optional()?
        .ok_or_else(|| Error::not_found("this subscriber"))
}

pub(super) fn device_revoked(tx: &Transaction<'_>, sub: i64, device: i64) -> Result<bool> {
    let revoked: Option<Option<i64>> = tx
        .prepare_cached("SELECT revoked FROM devices WHERE id = ?1 AND subscriber_id = ?2")?
        .query_row([device, sub], |r| r.get(0))
        .optional()?;
    match revoked {
        None => Err(Error::not_found("this device")),
        Some(r) => Ok(r.is_some()),
    }
}

fn manifest_len(tx: &Transaction<'_>, sub: i64, id: &ChunkId) -> Result<Option<u64>> {
    Ok(tx
        .prepare_cached(
            "SELECT manifest_bytes FROM snapshots WHERE subscriber_id = ?1 AND id = ?2",
        )?
        .query_row(params![sub, &id.as_bytes()[..]], |r| r.get::<_, i64>(0))
        .optional()?
        .map(to_u64))
}

fn gc_epoch(tx: &Transaction<'_>) -> Result<i64> {
    Ok(tx
        .prepare_cached("SELECT value FROM meta WHERE key = 'gc_epoch'")?
        .query_row([], |r| r.get(0))?)
}

pub(super) fn missing(
    tx: &Transaction<'_>,
    sub: i64,
    ids: &[ChunkId],
) -> Result<(u64, Option<ChunkId>)> {
    let mut stmt = tx.prepare_cached(HAS_CHUNK)?;
    let mut count = 0;
    let mut first = None;
    for id in ids {
        if !stmt.exists(params![sub, &id.as_bytes()[..]])? {
            count += 1;
            first.get_or_insert(*id);
        }
    }
    Ok((count, first))
}

const HAS_CHUNK: &str = "SELECT 1 FROM chunks WHERE subscriber_id = ?1 AND id = ?2";
