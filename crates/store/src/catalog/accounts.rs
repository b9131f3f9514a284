//! The catalogue's accounts section: a subscriber and its devices as kept in
//! `subscribers/<id>/account.json` (they live nowhere else, so a catalogue
//! rebuild needs the file), and the writes a rebuild makes (accounts with
//! their original row ids, snapshots found on disk).

use coffre_core::ChunkId;
use rusqlite::{params, OptionalExtension};

use super::credentials::{insert_pending, pending_hashes};
use super::data::{add_snapshot_row, missing, SnapshotRow};
use super::rows::parse_role;
use super::Catalog;
use crate::error::{Error, Result};

impl Catalog {
    // ------------------------------------------------------------ accounts

    /// Subscriber `sub`'s row and its devices' rows, for its account file.
    pub(crate) fn account(&self, sub: i64) -> Result<Account> {
        self.read(|tx| {
            let mut account = tx
                .prepare_cached(
                    "SELECT id, name, quota_bytes, retention, created, contact
                     FROM subscribers WHERE id = ?1",
                )?
                .query_row([sub], |r| {
                    Ok(Account {
                        version: ACCOUNT_VERSION,
                        id: r.get(0)?,
                        name: r.get(1)?,
                        quota_bytes: r.get(2)?,
                        retention: r.get(3)?,
                        created: r.get(4)?,
                        contact: r.get(5)?,
                        frontend: None,
                        devices: Vec::new(),
                    })
                })
                .optional()?
                .ok_or_else(|| Error::not_found(format!("subscriber #{sub}")))?;
            account.devices = tx
                .prepare_cached(
                    "SELECT id, name, role, secret_hash, created, revoked, secret_from_token
                     FROM devices WHERE subscriber_id = ?1 ORDER BY id",
                )?
                .query_map([sub], |r| {
                    Ok(AccountDevice {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        role: r.get(2)?,
                        secret_hash: hex::encode(r.get::<_, Vec<u8>>(3)?),
                        created: r.get(4)?,
                        revoked: r.get(5)?,
                        secret_is_token: r.get(6)?,
                        pending_hashes: Vec::new(),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for d in &mut account.devices {
                d.pending_hashes = pending_hashes(tx, d.id)?.iter().map(hex::encode).collect();
            }
            Ok(account)
        })
    }

    /// The row ids of every subscriber.
    pub(crate) fn subscriber_ids(&self) -> Result<Vec<i64>> {
        self.read(|tx| {
            Ok(tx
                .prepare_cached("SELECT id FROM subscribers ORDER BY id")?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Inserts a subscriber and its devices with their original row ids (a
    /// catalogue rebuild).
    pub(crate) fn insert_account(&self, a: &Account) -> Result<()> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO subscribers (id, name, quota_bytes, retention, created, contact)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    a.id,
                    a.name,
                    a.quota_bytes,
                    a.retention,
                    a.created,
                    a.contact
                ],
            )?;
            for d in &a.devices {
                let hash = hex::decode(&d.secret_hash).map_err(|_| {
                    Error::Corrupt(format!(
                        "the account file of {:?} holds an invalid secret hash for device {:?}",
                        a.name, d.name
                    ))
                })?;
                parse_role(&d.role)?;
                tx.execute(
                    "INSERT INTO devices (id, subscriber_id, name, role, secret_hash, created,
                                          revoked, secret_from_token)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        d.id,
                        a.id,
                        d.name,
                        d.role,
                        hash,
                        d.created,
                        d.revoked,
                        d.secret_is_token
                    ],
                )?;
                let pending = d
                    .pending_hashes
                    .iter()
                    .map(|h| hex::decode(h).ok().filter(|h| h.len() == 32))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| {
                        Error::Corrupt(format!(
                            "the account file of {:?} holds an invalid pending secret hash for \
                             device {:?}",
                            a.name, d.name
                        ))
                    })?;
                insert_pending(tx, d.id, &pending, a.created)?;
            }
            Ok(())
        })
    }

    /// Records a snapshot found on disk (a catalogue rebuild): after every
    /// snapshot recorded before it, counted in `used_bytes`; the device's
    /// last backup becomes at least its received time.
    pub(crate) fn restore_snapshot(&self, row: &SnapshotRow<'_>) -> Result<()> {
        self.write(|tx| add_snapshot_row(tx, row).map(drop))
    }

    /// Counts the ids of `ids` that subscriber `sub` does not have.
    pub(crate) fn count_missing(&self, sub: i64, ids: &[ChunkId]) -> Result<u64> {
        self.read(|tx| Ok(missing(tx, sub, ids)?.0))
    }
}

/// The version of the account file format.
pub(crate) const ACCOUNT_VERSION: u32 = 1;

/// A subscriber and its devices as kept in `subscribers/<id>/account.json`,
/// so that a catalogue rebuild finds them (they live nowhere else).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Account {
    pub(crate) version: u32,
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) quota_bytes: i64,
    pub(crate) retention: Option<String>,
    pub(crate) created: i64,
    /// Who hears about its alerts (issue 20): absent in files written
    /// before, and when nobody but the operator does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) contact: Option<String>,
    /// The frontend of the service that serves it (issue 22): its copy in
    /// the bucket says who may write for it, and a frontend that finds
    /// another's name there stops serving it. Absent for a server on its
    /// own and in files written before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) frontend: Option<String>,
    pub(crate) devices: Vec<AccountDevice>,
}

impl Account {
    /// The account file's bytes (pretty JSON), as written to the data
    /// directory and the bucket.
    pub(crate) fn encode(&self) -> Result<Vec<u8>> {
        serde_json::to_vec_pretty(self)
            .map_err(|e| Error::Corrupt(format!("encoding the account of {:?}: {e}", self.name)))
    }
}

/// A device in an account file. Only the hashes of its secrets are kept, as
/// in the catalogue: the current one, and the pending ones (a PC may hold
/// one it has not confirmed yet), so that a rebuilt catalogue locks no PC
/// out. The retired ones are not kept: after a rebuild, an old installation
/// is refused as an unknown device rather than as a copy.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct AccountDevice {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) role: String,
    pub(crate) secret_hash: String,
    pub(crate) created: i64,
    pub(crate) revoked: Option<i64>,
    /// The current secret is an enrolment token's (files written before
    /// rolling credentials: always).
    #[serde(default = "yes")]
    pub(crate) secret_is_token: bool,
    /// Hex hashes of the pending secrets, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) pending_hashes: Vec<String>,
}

fn yes() -> bool {
    true
}
