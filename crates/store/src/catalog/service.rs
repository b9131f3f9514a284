//! The catalogue's service section (issue 22): this data directory's
//! frontend name and number, the block of row ids its new subscribers and
//! devices take, and what it remembers of the subscribers another frontend
//! took over (so that their PCs are told where to go), and removing a
//! subscriber's rows when it leaves (or a take-over failed halfway).

use rusqlite::{params, OptionalExtension, Transaction};

use super::Catalog;
use crate::error::Result;

/// How many row ids each frontend's block holds: frontend `n` numbers its
/// new subscribers and devices from `n * ID_BLOCK + 1`.
pub(crate) const ID_BLOCK: i64 = 1_000_000_000;

/// The next free row id of `table` (`subscribers` or `devices`) in this
/// frontend's block: one more than the highest id of the block, so a
/// subscriber adopted from another frontend (whose id is in that one's
/// block) never shifts the numbering.
pub(super) fn next_id(tx: &Transaction<'_>, table: &str) -> Result<i64> {
    let number: i64 = tx
        .query_row("SELECT number FROM service", [], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    let first = number * ID_BLOCK + 1;
    let highest: Option<i64> = tx.query_row(
        &format!("SELECT MAX(id) FROM {table} WHERE id >= ?1 AND id < ?2"),
        params![first, first + ID_BLOCK - 1],
        |r| r.get(0),
    )?;
    Ok(highest.map_or(first, |h| h + 1))
}

impl Catalog {
    /// This data directory's frontend: (name, number), or `None` for a
    /// server on its own.
    pub(crate) fn service(&self) -> Result<Option<(String, i64)>> {
        self.read(|tx| {
            Ok(tx
                .query_row("SELECT frontend, number FROM service", [], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()?)
        })
    }

    /// Records this data directory's frontend name and number.
    pub(crate) fn set_service(&self, name: &str, number: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO service (one, frontend, number) VALUES (1, ?1, ?2)
                 ON CONFLICT (one) DO UPDATE SET frontend = ?1, number = ?2",
                params![name, number],
            )?;
            Ok(())
        })
    }

    /// Whether any subscriber's id lies in block `number`.
    pub(crate) fn block_used(&self, number: i64) -> Result<bool> {
        self.read(|tx| {
            let first = number * ID_BLOCK + 1;
            Ok(tx
                .query_row(
                    "SELECT 1 FROM subscribers WHERE id >= ?1 AND id < ?2 LIMIT 1",
                    params![first, first + ID_BLOCK - 1],
                    |_| Ok(()),
                )
                .optional()?
                .is_some())
        })
    }

    /// Whether subscriber `sub` is in the catalogue.
    pub(crate) fn has_subscriber(&self, sub: i64) -> Result<bool> {
        self.read(|tx| {
            Ok(tx
                .query_row("SELECT 1 FROM subscribers WHERE id = ?1", [sub], |_| Ok(()))
                .optional()?
                .is_some())
        })
    }

    /// Removes every row of subscriber `sub` and, when `moved_to` names the
    /// frontend that took it over, remembers its name and its devices'
    /// current and pending secret hashes for the PCs still calling here.
    /// One transaction: the subscriber is either all here or gone.
    pub(crate) fn remove_subscriber(
        &self,
        sub: i64,
        moved_to: Option<&str>,
        now: i64,
    ) -> Result<()> {
        self.write(|tx| {
            if let Some(frontend) = moved_to {
                let name: Option<String> = tx
                    .query_row("SELECT name FROM subscribers WHERE id = ?1", [sub], |r| {
                        r.get(0)
                    })
                    .optional()?;
                if let Some(name) = name {
                    tx.execute(
                        "INSERT OR REPLACE INTO moved (subscriber_id, name, frontend, moved)
                         VALUES (?1, ?2, ?3, ?4)",
                        params![sub, name, frontend, now],
                    )?;
                    tx.execute(
                        "INSERT OR REPLACE INTO moved_secrets (hash, subscriber_id)
                         SELECT secret_hash, subscriber_id FROM devices WHERE subscriber_id = ?1
                         UNION ALL
                         SELECT s.hash, d.subscriber_id FROM device_secrets s
                           JOIN devices d ON d.id = s.device_id
                          WHERE d.subscriber_id = ?1 AND s.state = 'pending'",
                        [sub],
                    )?;
                }
            }
            for sql in [
                "DELETE FROM vouches WHERE subscriber_id = ?1",
                "DELETE FROM chunks WHERE subscriber_id = ?1",
                "DELETE FROM packs WHERE subscriber_id = ?1",
                "DELETE FROM snapshots WHERE subscriber_id = ?1",
                "DELETE FROM sessions WHERE subscriber_id = ?1",
                "DELETE FROM device_secrets WHERE device_id IN
                     (SELECT id FROM devices WHERE subscriber_id = ?1)",
                "DELETE FROM devices WHERE subscriber_id = ?1",
                "DELETE FROM keys WHERE subscriber_id = ?1",
                "DELETE FROM history WHERE subscriber_id = ?1",
                "DELETE FROM subscribers WHERE id = ?1",
            ] {
                tx.execute(sql, [sub])?;
            }
            Ok(())
        })
    }

    /// Forgets that subscriber `sub` moved away (it came back).
    pub(crate) fn forget_moved(&self, sub: i64) -> Result<()> {
        self.write(|tx| {
            tx.execute("DELETE FROM moved_secrets WHERE subscriber_id = ?1", [sub])?;
            tx.execute("DELETE FROM moved WHERE subscriber_id = ?1", [sub])?;
            Ok(())
        })
    }

    /// The subscriber (id, name) and the frontend it moved to, if a device
    /// presenting the secret whose hash is `hash` belonged to a subscriber
    /// that moved away.
    pub(crate) fn moved_by_secret(&self, hash: &[u8; 32]) -> Result<Option<(i64, String, String)>> {
        self.read(|tx| {
            Ok(tx
                .query_row(
                    "SELECT m.subscriber_id, m.name, m.frontend FROM moved_secrets s
                       JOIN moved m ON m.subscriber_id = s.subscriber_id
                      WHERE s.hash = ?1",
                    [&hash[..]],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?)
        })
    }

    /// Writes a consistent copy of the catalogue to the new file `to`
    /// (SQLite's `VACUUM INTO`, on a reader: the daemon keeps writing).
    pub(crate) fn copy_into(&self, to: &std::path::Path) -> Result<()> {
        let to = to.to_str().ok_or_else(|| {
            crate::error::Error::BadRequest(format!("{} is not UTF-8", to.display()))
        })?;
        let conn = super::connect(&self.path, false)?;
        conn.execute("VACUUM INTO ?1", [to])?;
        Ok(())
    }

    /// Every subscriber (id, name), by id.
    pub(crate) fn subscriber_names(&self) -> Result<Vec<(i64, String)>> {
        self.read(|tx| {
            Ok(tx
                .prepare_cached("SELECT id, name FROM subscribers ORDER BY id")?
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }
}
