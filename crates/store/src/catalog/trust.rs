//! Dedup trust (issue 17): which device wrote each copy of a chunk, which
//! devices verified another device's copy, and the copies themselves.
//!
//! Every device of a subscriber holds the subscriber's keys, so a device can
//! put garbage under the id of a chunk another device will save. The rule
//! (docs/decisions.md, "Threat model (issue 17): dedup poisoning"):
//!
//! - a chunk row is one **copy** of an id (`copy` 0 is the first); a copy
//!   records its `writer` (NULL: written before the rule, or rebuilt from
//!   packs, trusted by every device);
//! - device D **trusts** an id when one of its copies was written by D or
//!   before the rule, or D vouched for it (`vouches`: D fetched the copy,
//!   decrypted it and recomputed the id);
//! - a put of an id that D does not trust stores D's blob as a further copy;
//!   if D had been told of the other copies (its put found them), they are
//!   marked `disputed` and reported, never deleted while the id is
//!   referenced (GC frees all copies of an id together, and only when no
//!   snapshot lists it);
//! - reads serve D its own or vouched copy first, else the first copy; every
//!   copy can be asked for by its rank.

use std::collections::HashSet;

use coffre_core::ChunkId;
use rusqlite::{params, OptionalExtension, Transaction};

use super::rows::{pack_entry, to_i64};
use super::Catalog;
use crate::error::Result;
use crate::pack::PackEntry;
use crate::types::{Dispute, Presence};

impl Catalog {
    /// For each id, whether subscriber `sub` has it and whether `device`
    /// trusts it.
    pub(crate) fn presence(&self, sub: i64, device: i64, ids: &[ChunkId]) -> Result<Vec<Presence>> {
        self.read(|tx| ids.iter().map(|id| presence(tx, sub, device, id)).collect())
    }

    /// Records that `device` verified the copy it is served of each id it
    /// did not trust yet (the first copy: see [`Catalog::chunk_location`]).
    /// Ids the subscriber does not have are ignored. Returns how many rows
    /// were added.
    pub(crate) fn vouch(&self, sub: i64, device: i64, ids: &[ChunkId]) -> Result<u64> {
        self.write(|tx| {
            let mut added = 0;
            for id in ids {
                if presence(tx, sub, device, id)? != Presence::Untrusted {
                    continue;
                }
                added +=
                    tx.prepare_cached(
                        "INSERT OR REPLACE INTO vouches (subscriber_id, device_id, id, copy)
                     SELECT ?1, ?2, ?3, MIN(copy) FROM chunks WHERE subscriber_id = ?1 AND id = ?3
                     HAVING COUNT(*) > 0",
                    )?
                    .execute(params![sub, device, &id.as_bytes()[..]])? as u64;
            }
            Ok(added)
        })
    }

    /// The disputed copies of subscriber `sub`: per (writer of the disputed
    /// copy, device that uploaded its own copy), how many ids.
    pub(crate) fn disputes(&self, sub: i64) -> Result<Vec<Dispute>> {
        self.read(|tx| {
            Ok(tx
                .prepare_cached(
                    "SELECT COALESCE(dw.name, '(written before the rule)'),
                            COALESCE(dv.name, '(unknown)'), COUNT(DISTINCT a.id)
                     FROM chunks a
                     JOIN chunks b ON b.subscriber_id = a.subscriber_id AND b.id = a.id
                                  AND b.copy > a.copy
                     LEFT JOIN devices dw ON dw.id = a.writer
                     LEFT JOIN devices dv ON dv.id = b.writer
                     WHERE a.subscriber_id = ?1 AND a.disputed = 1
                       AND b.writer IS NOT a.writer
                     GROUP BY 1, 2 ORDER BY 1, 2",
                )?
                .query_map([sub], |r| {
                    Ok(Dispute {
                        writer: r.get(0)?,
                        checker: r.get(1)?,
                        chunks: r.get::<_, i64>(2)? as u64,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Where copy number `rank` (0 = the first, in copy order) of chunk `id`
    /// is.
    pub(crate) fn copy_location(
        &self,
        sub: i64,
        id: &ChunkId,
        rank: u32,
    ) -> Result<Option<super::rows::Location>> {
        self.read(|tx| {
            let row = tx
                .prepare_cached(
                    "SELECT p.name, c.offset, c.length, c.checksum
                     FROM chunks c JOIN packs p ON p.id = c.pack_id
                     WHERE c.subscriber_id = ?1 AND c.id = ?2
                     ORDER BY c.copy LIMIT 1 OFFSET ?3",
                )?
                .query_row(params![sub, &id.as_bytes()[..], rank], location_row)
                .optional()?;
            row.map(|(pack, offset, length, checksum)| {
                Ok(super::rows::Location {
                    pack,
                    entry: pack_entry(*id, offset, length, checksum)?,
                })
            })
            .transpose()
        })
    }
}

/// The columns a location query selects: pack name, offset, length, checksum.
pub(super) fn location_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(String, i64, i64, Vec<u8>)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

/// Whether `sub` has `id`, and whether `device` trusts it.
pub(super) fn presence(
    tx: &Transaction<'_>,
    sub: i64,
    device: i64,
    id: &ChunkId,
) -> Result<Presence> {
    let id = &id.as_bytes()[..];
    let (any, trusted): (bool, bool) = tx
        .prepare_cached(
            "SELECT COUNT(*) > 0,
                    COALESCE(MAX(writer IS NULL OR writer = ?3), 0)
                    OR EXISTS (SELECT 1 FROM vouches
                               WHERE subscriber_id = ?1 AND device_id = ?3 AND id = ?2)
             FROM chunks WHERE subscriber_id = ?1 AND id = ?2",
        )?
        .query_row(params![sub, id, device], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(match (any, trusted) {
        (false, _) => Presence::Absent,
        (true, true) => Presence::Trusted,
        (true, false) => Presence::Untrusted,
    })
}

/// Records the blobs of a sealed pack as copies: a new id is the first copy,
/// written by `writer`; an id `writer` already trusts is left as it is (its
/// blob stays in the pack, unindexed, until a repack); an id it does not
/// trust gets `writer`'s blob as a further copy, and if it is in `disputes`
/// (the put found the other copies) those are marked disputed. With no
/// `writer` (a catalogue rebuilt from packs), every blob becomes a copy
/// trusted by all, unless that very blob (same checksum) is indexed already.
pub(super) fn add_copies<'a>(
    tx: &Transaction<'_>,
    sub: i64,
    writer: Option<i64>,
    pack_id: i64,
    entries: impl Iterator<Item = &'a PackEntry>,
    disputes: &HashSet<ChunkId>,
) -> Result<()> {
    let mut first = tx.prepare_cached(
        "INSERT OR IGNORE INTO chunks
           (subscriber_id, id, copy, pack_id, offset, length, checksum, writer)
         VALUES (?1, ?2, 0, ?3, ?4, ?5, ?6, ?7)",
    )?;
    let mut further = tx.prepare_cached(
        "INSERT INTO chunks (subscriber_id, id, copy, pack_id, offset, length, checksum, writer)
         SELECT ?1, ?2, MAX(copy) + 1, ?3, ?4, ?5, ?6, ?7 FROM chunks
         WHERE subscriber_id = ?1 AND id = ?2",
    )?;
    for e in entries {
        let id = &e.id.as_bytes()[..];
        let values = params![
            sub,
            id,
            pack_id,
            to_i64(e.offset),
            e.length,
            &e.checksum[..],
            writer
        ];
        if first.execute(values)? == 1 {
            continue;
        }
        match writer {
            Some(device) => {
                if presence(tx, sub, device, &e.id)? == Presence::Trusted {
                    continue;
                }
                further.execute(values)?;
                if disputes.contains(&e.id) {
                    tx.prepare_cached(
                        "UPDATE chunks SET disputed = 1
                         WHERE subscriber_id = ?1 AND id = ?2 AND writer IS NOT ?3",
                    )?
                    .execute(params![sub, id, device])?;
                }
            }
            None => {
                let known: bool = tx
                    .prepare_cached(
                        "SELECT EXISTS (SELECT 1 FROM chunks
                                        WHERE subscriber_id = ?1 AND id = ?2 AND checksum = ?3)",
                    )?
                    .query_row(params![sub, id, &e.checksum[..]], |r| r.get(0))?;
                if !known {
                    further.execute(values)?;
                }
            }
        }
    }
    Ok(())
}
