//! The catalogue's accounts section: a subscriber and its devices as kept in
//! `subscribers/<id>/account.json` (they live nowhere else, so a catalogue
//! rebuild needs the file), and the writes a rebuild makes (accounts with
//! their original row ids, snapshots found on disk).

use rusqlite::{params, OptionalExtension, Transaction};

use super::credentials::{insert_pending, pending_hashes};
use super::data::{add_pack, add_snapshot_row, missing, SnapshotRow};
use super::keys::add_key;
use super::rows::parse_role;
use super::Catalog;
use crate::error::{Error, Result};
use crate::pack::PackEntry;

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

    /// Writes one subscriber's rows as a rebuild or a take-over found them
    /// (its account with the original row ids, its key file, its packs'
    /// copies, its snapshots in commit order), in ONE transaction: all of
    /// them or none, and one flush for the whole structure. Returns, for
    /// each snapshot, how many of its chunks no pack holds.
    pub(crate) fn restore_subscriber(&self, r: &Restored<'_>) -> Result<Vec<u64>> {
        self.write(|tx| {
            insert_account(tx, r.account)?;
            let sub = r.account.id;
            if let Some(key) = r.key {
                add_key(tx, sub, key)?;
            }
            for p in &r.packs {
                // Every blob a footer lists becomes a copy written by no
                // known device, trusted by all (docs/decisions.md).
                add_pack(
                    tx,
                    sub,
                    None,
                    (&p.name, p.size),
                    &p.entries,
                    &Default::default(),
                    p.created,
                )?;
            }
            let mut missing_counts = Vec::with_capacity(r.snapshots.len());
            for row in r.snapshots {
                add_snapshot_row(tx, row)?;
                missing_counts.push(missing(tx, sub, row.chunks)?.0);
            }
            Ok(missing_counts)
        })
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

/// Inserts a subscriber and its devices with their original row ids (a
/// catalogue rebuild, a take-over).
fn insert_account(tx: &Transaction<'_>, a: &Account) -> Result<()> {
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
}

/// One subscriber's rows, as a rebuild read them from its files
/// ([`Catalog::restore_subscriber`]).
pub(crate) struct Restored<'a> {
    pub(crate) account: &'a Account,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) packs: Vec<RestoredPack>,
    /// In commit order.
    pub(crate) snapshots: &'a [SnapshotRow<'a>],
}

/// A pack found in storage, with the entries of its index.
pub(crate) struct RestoredPack {
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) created: i64,
    pub(crate) entries: Vec<PackEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffre_core::ChunkId;

    /// A structure is restored whole or not at all: a row that fails
    /// (here a snapshot of a device the account does not list) leaves no
    /// subscriber, device, key or pack row behind, so a take-over run
    /// again starts clean.
    #[test]
    fn a_structure_is_restored_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(&dir.path().join("catalog.sqlite"), true).unwrap();
        let account = Account {
            version: ACCOUNT_VERSION,
            id: 7,
            name: "jardins".into(),
            quota_bytes: 1 << 30,
            retention: None,
            created: 0,
            contact: None,
            frontend: None,
            devices: vec![AccountDevice {
                id: 70,
                name: "pc".into(),
                role: "backup".into(),
                secret_hash: "11".repeat(32),
                created: 0,
                revoked: None,
                secret_is_token: true,
                pending_hashes: Vec::new(),
            }],
        };
        let chunks = [ChunkId::from_bytes([3; 32])];
        let row = |id: u8, device_id: i64| SnapshotRow {
            subscriber_id: 7,
            id: ChunkId::from_bytes([id; 32]),
            device_id,
            time: 10,
            received: 10,
            logical_bytes: 1,
            file_count: 1,
            problems: 0,
            checkpoint: false,
            manifest_bytes: 100,
            chunks: &chunks,
        };
        let pack = || RestoredPack {
            name: "p1".into(),
            size: 10,
            created: 0,
            entries: Vec::new(),
        };
        let broken = [row(1, 70), row(2, 99)];
        let failed = c.restore_subscriber(&Restored {
            account: &account,
            key: Some(b"key"),
            packs: vec![pack()],
            snapshots: &broken,
        });
        assert!(failed.is_err());
        assert!(!c.has_subscriber(7).unwrap(), "no half structure");
        assert_eq!(c.key(7).unwrap(), None);

        let good = [row(1, 70)];
        let missing = c
            .restore_subscriber(&Restored {
                account: &account,
                key: Some(b"key"),
                packs: vec![pack()],
                snapshots: &good,
            })
            .unwrap();
        assert_eq!(missing, [1], "its one chunk is in no pack");
        assert!(c.has_subscriber(7).unwrap());
    }
}
