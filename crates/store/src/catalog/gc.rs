//! The catalogue's sessions and garbage collection: the `sessions` rows and
//! the per-subscriber `activity` counter that let a sweep run beside
//! backups, the mark's starting point and chunk scan, the sweep and repack
//! writes, and the record of each maintenance task's last run. Only GC (and
//! verify's quarantine) deletes or moves chunk rows; every such transaction
//! bumps `meta.gc_epoch`, or checks the activity counter, as `crate::gc`
//! describes.

use coffre_core::ChunkId;
use rusqlite::{params, OptionalExtension, Transaction};

use super::rows::{add_pack_row, pack_entry, parse_id, to_i64, to_u64};
use super::Catalog;
use crate::error::{Error, Result};
use crate::pack::PackEntry;
use crate::types::MaintenanceRun;

impl Catalog {
    // ------------------------------------------------- sessions and GC

    /// Records that a session of `device` may upload or learn which chunks
    /// exist; returns the row id to pass to [`Catalog::end_session`]. Not
    /// flushed to disk: a power cut ends every session, and the daemon
    /// clears their rows when it starts (the `activity` counter only needs
    /// to move while the daemon runs).
    pub(crate) fn begin_session(&self, sub: i64, device: i64, now: i64) -> Result<i64> {
        self.write_unsynced(|tx| {
            tx.execute(
                "INSERT INTO sessions (subscriber_id, device_id, started) VALUES (?1, ?2, ?3)",
                params![sub, device, now],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "UPDATE subscribers SET activity = activity + 1 WHERE id = ?1",
                [sub],
            )?;
            Ok(id)
        })
    }

    pub(crate) fn end_session(&self, row: i64) -> Result<()> {
        self.write_unsynced(|tx| {
            tx.execute("DELETE FROM sessions WHERE id = ?1", [row])?;
            Ok(())
        })
    }

    /// Forgets every session row: the daemon starting means none is open.
    pub(crate) fn clear_sessions(&self) -> Result<usize> {
        self.write(|tx| Ok(tx.execute("DELETE FROM sessions", [])?))
    }

    /// The open sessions of subscriber `sub`: device name and start time.
    pub(crate) fn open_sessions(&self, sub: i64) -> Result<Vec<(String, i64)>> {
        self.read(|tx| open_sessions(tx, sub))
    }

    /// What a GC of subscriber `sub` starts from, read in one transaction:
    /// its snapshots (id, manifest size), its activity counter, its packs.
    pub(crate) fn gc_start(&self, sub: i64) -> Result<GcStart> {
        self.read(|tx| {
            let snapshots = tx
                .prepare_cached(
                    "SELECT id, manifest_bytes FROM snapshots WHERE subscriber_id = ?1 ORDER BY id",
                )?
                .query_map([sub], |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, i64>(1)?)))?
                .map(|row| {
                    let (id, len) = row?;
                    Ok((parse_id(id)?, to_u64(len)))
                })
                .collect::<Result<Vec<_>>>()?;
            let activity = activity(tx, sub)?;
            let packs = tx
                .prepare_cached(
                    "SELECT id, name, size, created FROM packs WHERE subscriber_id = ?1 ORDER BY id",
                )?
                .query_map([sub], |r| {
                    Ok(PackRow {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        size: to_u64(r.get(2)?),
                        created: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(GcStart {
                snapshots,
                activity,
                packs,
            })
        })
    }

    /// Calls `f(id, copy, pack id, length)` for every chunk copy of
    /// subscriber `sub`, in increasing id order (the table's key order: no
    /// sort, no memory; the copies of an id one after the other).
    pub(crate) fn scan_chunks(
        &self,
        sub: i64,
        mut f: impl FnMut(&[u8; 32], u32, i64, u64) -> Result<()>,
    ) -> Result<()> {
        self.read(|tx| {
            let mut stmt = tx.prepare(
                "SELECT id, pack_id, length, copy FROM chunks WHERE subscriber_id = ?1
                 ORDER BY id, copy",
            )?;
            let mut rows = stmt.query([sub])?;
            while let Some(r) = rows.next()? {
                let id = r.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
                let id: &[u8; 32] = id.try_into().map_err(|_| {
                    Error::Corrupt(format!("the catalogue holds a {}-byte chunk id", id.len()))
                })?;
                f(id, r.get(3)?, r.get(1)?, to_u64(r.get(2)?))?;
            }
            Ok(())
        })
    }

    /// Deletes chunk copies `(id, copy)` of subscriber `sub`. With `activity_at_mark` (a
    /// GC sweep), deletes nothing if a session opened or a snapshot was
    /// committed since the mark (`activity` moved) or a session is open;
    /// without (verify's quarantine of damaged chunks), always. Bumps the GC
    /// epoch, so that a commit that checked its chunks before re-checks them.
    pub(crate) fn delete_chunks(
        &self,
        sub: i64,
        activity_at_mark: Option<i64>,
        ids: &[(ChunkId, u32)],
    ) -> Result<SweepOutcome> {
        self.write(|tx| {
            if let Some(mark) = activity_at_mark {
                if activity(tx, sub)? != mark || !open_sessions(tx, sub)?.is_empty() {
                    return Ok(SweepOutcome::Busy);
                }
            }
            // One copy at a time, with the vouches for it (trust.rs): GC
            // lists every copy of an id no snapshot lists, but a copy in a
            // young pack stays; repair quarantines a damaged copy only.
            let mut stmt = tx.prepare_cached(
                "DELETE FROM chunks WHERE subscriber_id = ?1 AND id = ?2 AND copy = ?3",
            )?;
            let mut vouches = tx.prepare_cached(
                "DELETE FROM vouches WHERE subscriber_id = ?1 AND id = ?2 AND copy = ?3",
            )?;
            let mut deleted = 0;
            for (id, copy) in ids {
                let key = params![sub, &id.as_bytes()[..], copy];
                deleted += stmt.execute(key)?;
                vouches.execute(key)?;
            }
            tx.execute(
                "UPDATE meta SET value = value + 1 WHERE key = 'gc_epoch'",
                [],
            )?;
            Ok(SweepOutcome::Deleted(deleted as u64))
        })
    }

    /// Removes the row of pack `pack` if no chunk row points into it, and
    /// lowers `used_bytes` by its size. Returns whether it was removed.
    pub(crate) fn delete_empty_pack(&self, sub: i64, pack: &PackRow) -> Result<bool> {
        self.write(|tx| {
            if chunks_in_pack(tx, sub, pack.id)? > 0 {
                return Ok(false);
            }
            remove_pack_row(tx, sub, pack)
        })
    }

    /// The chunk copies still stored in pack `pack`, in pack order, each
    /// with its copy number (an id may have several copies, `trust.rs`).
    pub(crate) fn pack_chunks(&self, sub: i64, pack: i64) -> Result<Vec<(PackEntry, u32)>> {
        self.read(|tx| {
            tx.prepare_cached(
                "SELECT id, offset, length, checksum, copy FROM chunks
                 WHERE subscriber_id = ?1 AND pack_id = ?2 ORDER BY offset",
            )?
            .query_map([sub, pack], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                    r.get::<_, u32>(4)?,
                ))
            })?
            .map(|row| {
                let (id, offset, length, checksum, copy) = row?;
                Ok((pack_entry(parse_id(id)?, offset, length, checksum)?, copy))
            })
            .collect()
        })
    }

    /// Records a repack: the new pack and its chunks replace `old` packs'
    /// rows (every chunk row left in them must have been copied, else nothing
    /// changes); `used_bytes` changes by the difference. The old files must be
    /// deleted afterwards. Only GC moves or deletes chunk rows, and one GC
    /// runs at a time.
    pub(crate) fn replace_packs(
        &self,
        sub: i64,
        new: (&str, u64),
        entries: &[PackEntry],
        copies: &[u32],
        old: &[PackRow],
        now: i64,
    ) -> Result<()> {
        self.write(|tx| {
            let pack_id = add_pack_row(tx, sub, new.0, new.1, now)?;
            // In key order: each page of the chunk table is visited once.
            let mut sorted: Vec<(&PackEntry, &u32)> = entries.iter().zip(copies).collect();
            sorted.sort_unstable_by_key(|(e, copy)| (e.id, **copy));
            let mut stmt = tx.prepare_cached(
                "UPDATE chunks SET pack_id = ?3, offset = ?4, length = ?5, checksum = ?6
                 WHERE subscriber_id = ?1 AND id = ?2 AND copy = ?7",
            )?;
            for (e, copy) in sorted {
                stmt.execute(params![
                    sub,
                    &e.id.as_bytes()[..],
                    pack_id,
                    to_i64(e.offset),
                    e.length,
                    &e.checksum[..],
                    copy
                ])?;
            }
            for p in old {
                let left = chunks_in_pack(tx, sub, p.id)?;
                if left > 0 {
                    // Rolls the whole repack back: the copy missed a chunk.
                    return Err(Error::Corrupt(format!(
                        "repacking pack {}: {left} chunks were not copied",
                        p.name
                    )));
                }
                remove_pack_row(tx, sub, p)?;
            }
            Ok(())
        })
    }

    /// Every pack name and manifest id the catalogue knows for `sub` (to
    /// tell orphan files from catalogued ones).
    pub(crate) fn known_files(&self, sub: i64) -> Result<(Vec<String>, Vec<ChunkId>)> {
        self.read(|tx| {
            let packs = tx
                .prepare_cached("SELECT name FROM packs WHERE subscriber_id = ?1")?
                .query_map([sub], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            let manifests = tx
                .prepare_cached("SELECT id FROM snapshots WHERE subscriber_id = ?1")?
                .query_map([sub], |r| r.get::<_, Vec<u8>>(0))?
                .map(|r| parse_id(r?))
                .collect::<Result<Vec<_>>>()?;
            Ok((packs, manifests))
        })
    }

    /// Records the last run of a maintenance task ("prune", "gc").
    pub(crate) fn record_run(&self, run: &MaintenanceRun) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO maintenance (task, started, seconds, ok)
                 VALUES (?1, ?2, ?3, ?4)",
                params![run.task, run.started, run.seconds, run.ok],
            )?;
            Ok(())
        })
    }

    /// The last run of each maintenance task.
    pub(crate) fn runs(&self) -> Result<Vec<MaintenanceRun>> {
        self.read(|tx| {
            Ok(tx
                .prepare_cached("SELECT task, started, seconds, ok FROM maintenance ORDER BY task")?
                .query_map([], |r| {
                    Ok(MaintenanceRun {
                        task: r.get(0)?,
                        started: r.get(1)?,
                        seconds: r.get(2)?,
                        ok: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }
}

/// What a GC of one subscriber starts from.
#[derive(Debug)]
pub(crate) struct GcStart {
    pub(crate) snapshots: Vec<(ChunkId, u64)>,
    pub(crate) activity: i64,
    pub(crate) packs: Vec<PackRow>,
}

/// A pack's catalogue row.
#[derive(Debug, Clone)]
pub(crate) struct PackRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) created: i64,
}

/// How a sweep batch ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SweepOutcome {
    Deleted(u64),
    /// A session opened or a snapshot was committed since the mark.
    Busy,
}

fn activity(tx: &Transaction<'_>, sub: i64) -> Result<i64> {
    tx.prepare_cached("SELECT activity FROM subscribers WHERE id = ?1")?
        .query_row([sub], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::not_found("this subscriber"))
}

fn open_sessions(tx: &Transaction<'_>, sub: i64) -> Result<Vec<(String, i64)>> {
    Ok(tx
        .prepare_cached(
            "SELECT d.name, s.started FROM sessions s JOIN devices d ON d.id = s.device_id
             WHERE s.subscriber_id = ?1 ORDER BY s.started",
        )?
        .query_map([sub], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?)
}

/// How many chunk rows point into pack `pack`.
fn chunks_in_pack(tx: &Transaction<'_>, sub: i64, pack: i64) -> Result<i64> {
    Ok(tx
        .prepare_cached("SELECT COUNT(*) FROM chunks WHERE subscriber_id = ?1 AND pack_id = ?2")?
        .query_row([sub, pack], |r| r.get(0))?)
}

/// Deletes a pack row and lowers `used_bytes` by its size.
fn remove_pack_row(tx: &Transaction<'_>, sub: i64, pack: &PackRow) -> Result<bool> {
    let n = tx.execute(
        "DELETE FROM packs WHERE id = ?1 AND subscriber_id = ?2",
        [pack.id, sub],
    )?;
    if n == 1 {
        tx.execute(
            "UPDATE subscribers SET used_bytes = MAX(used_bytes - ?2, 0) WHERE id = ?1",
            params![sub, to_i64(pack.size)],
        )?;
    }
    Ok(n == 1)
}
