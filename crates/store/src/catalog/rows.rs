//! The row helpers more than one section of the catalogue uses: the
//! conversions between SQLite's signed integers and blobs and coffre's
//! types, the subscriber lookup by name, and a sealed pack's row, which both
//! the data path and repack write, and where a chunk copy is ([`Location`]).

use coffre_core::ChunkId;
use rusqlite::{params, OptionalExtension, Transaction};

use crate::error::{Error, Result};
use crate::pack::PackEntry;
use crate::types::Role;

/// Records a sealed pack's row and adds its size to `used_bytes`; returns
/// its row id.
pub(super) fn add_pack_row(
    tx: &Transaction<'_>,
    sub: i64,
    name: &str,
    size: u64,
    now: i64,
) -> Result<i64> {
    tx.execute(
        "INSERT INTO packs (subscriber_id, name, size, created) VALUES (?1, ?2, ?3, ?4)",
        params![sub, name, to_i64(size), now],
    )?;
    let pack_id = tx.last_insert_rowid();
    tx.execute(
        "UPDATE subscribers SET used_bytes = used_bytes + ?2 WHERE id = ?1",
        params![sub, to_i64(size)],
    )?;
    Ok(pack_id)
}

/// A chunk row's location columns, checked.
pub(super) fn pack_entry(
    id: ChunkId,
    offset: i64,
    length: i64,
    checksum: Vec<u8>,
) -> Result<PackEntry> {
    let bad = || Error::Corrupt(format!("catalogue row of chunk {} is invalid", id.short()));
    Ok(PackEntry {
        id,
        offset: u64::try_from(offset).map_err(|_| bad())?,
        length: u32::try_from(length).map_err(|_| bad())?,
        checksum: checksum.try_into().map_err(|_| bad())?,
    })
}

pub(super) fn subscriber_id(tx: &Transaction<'_>, name: &str) -> rusqlite::Result<Option<i64>> {
    tx.prepare_cached("SELECT id FROM subscribers WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()
}

pub(super) fn parse_role(s: &str) -> Result<Role> {
    s.parse()
        .map_err(|_| Error::Corrupt(format!("the catalogue holds an unknown device role {s:?}")))
}

pub(super) fn parse_id(bytes: Vec<u8>) -> Result<ChunkId> {
    let b: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
        Error::Corrupt(format!("the catalogue holds a {}-byte id", b.len()))
    })?;
    Ok(ChunkId::from_bytes(b))
}

/// SQLite integers are signed: sizes above `i64::MAX` (never real) saturate.
pub(super) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(super) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// Where a chunk is stored.
#[derive(Debug)]
pub(crate) struct Location {
    /// The pack's name.
    pub(crate) pack: String,
    /// Where in it.
    pub(crate) entry: PackEntry,
}
