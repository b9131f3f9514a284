//! The catalogue's rows of the subscriber's key file (`keys`): read, stored
//! once by the first device to enrol, and replaced by a compare-and-swap
//! when an admin device changes the structure's passphrase. The file copy
//! `subscribers/<id>/key` is the store's (`key_file.rs`); a catalogue rebuild
//! reads it back (`rebuild.rs`).

use rusqlite::{params, OptionalExtension, Transaction};

use super::data::device_revoked;
use super::Catalog;
use crate::error::Result;

/// How [`Catalog::replace_key`] ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum KeySwap {
    /// The row held the expected key file and now holds the new one.
    Replaced,
    /// The row did not hold the expected key file: it holds this one (or
    /// none). Nothing was changed.
    Changed(Option<Vec<u8>>),
    /// The device asking was revoked meanwhile. Nothing was changed.
    Revoked,
}

impl Catalog {
    /// The key file of subscriber `sub`, if a device stored one.
    pub(crate) fn key(&self, sub: i64) -> Result<Option<Vec<u8>>> {
        self.read(|tx| stored_key(tx, sub))
    }

    /// Stores the key file unless one is there (then returns the stored one).
    pub(crate) fn insert_key(&self, sub: i64, key_file: &[u8]) -> Result<Option<Vec<u8>>> {
        self.write(|tx| add_key(tx, sub, key_file))
    }

    /// Replaces the key file of `sub` with `new` if it is `old`, on behalf of
    /// `device` (which must not be revoked), in one `IMMEDIATE` transaction.
    pub(crate) fn replace_key(
        &self,
        sub: i64,
        device: i64,
        old: &[u8],
        new: &[u8],
    ) -> Result<KeySwap> {
        self.write(|tx| {
            if device_revoked(tx, sub, device)? {
                return Ok(KeySwap::Revoked);
            }
            let changed = tx.execute(
                "UPDATE keys SET key_file = ?3 WHERE subscriber_id = ?1 AND key_file = ?2",
                params![sub, old, new],
            )?;
            if changed == 1 {
                return Ok(KeySwap::Replaced);
            }
            Ok(KeySwap::Changed(stored_key(tx, sub)?))
        })
    }
}

/// [`Catalog::insert_key`] inside transaction `tx`: stores the key file
/// unless one is there, and returns the stored one if it was.
pub(super) fn add_key(tx: &Transaction<'_>, sub: i64, key_file: &[u8]) -> Result<Option<Vec<u8>>> {
    let existing = stored_key(tx, sub)?;
    if existing.is_none() {
        tx.execute(
            "INSERT INTO keys (subscriber_id, key_file) VALUES (?1, ?2)",
            params![sub, key_file],
        )?;
    }
    Ok(existing)
}

/// The key file of subscriber `sub`, if one is stored.
fn stored_key(tx: &Transaction<'_>, sub: i64) -> Result<Option<Vec<u8>>> {
    Ok(tx
        .prepare_cached("SELECT key_file FROM keys WHERE subscriber_id = ?1")?
        .query_row([sub], |r| r.get(0))
        .optional()?)
}
