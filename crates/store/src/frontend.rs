//! A frontend of a service (issue 22): several `coffre-server`s over one
//! bucket, each serving the subscribers placed on it.
//!
//! - **Joining.** A data directory whose packs are in a bucket joins the
//!   service under a name ([`Store::join_service`]); it gets a number, the
//!   first one no other frontend's record holds (or its own record's, if a
//!   frontend of that name existed: the same frontend on a new machine).
//!   The number gives the block of row ids its new subscribers and devices
//!   take (`catalog/service.rs`), so a subscriber's id, and its folder in
//!   the bucket, stay the same wherever it is served.
//! - **The record.** Each frontend keeps `frontends/<name>.json` in the
//!   bucket ([`FrontendRecord`]: number, public address, subscribers,
//!   usage), rewritten when its subscribers change and by the daemon every
//!   few minutes: how another frontend finds whom to take over, how a PC
//!   of a moved structure is told where to go, and how the board shows
//!   every frontend's structures.
//! - **Who writes for a subscriber.** The copy of `account.json` in the
//!   bucket names the frontend serving it. A frontend checks it before
//!   anything that another frontend's work could contradict: a commit, an
//!   account change, garbage collection (which deletes), and at start. If
//!   it names another frontend, this one removes the subscriber from its
//!   catalogue (remembering where it went, `moved`) and answers
//!   [`Error::Moved`]. A take-over writes its own name there first.

use serde::{Deserialize, Serialize};

use crate::catalog::Account;
use crate::durable;
use crate::error::{Error, Result};
use crate::layout::{
    catalog_backup, frontend_record, subscriber_object, ACCOUNT_FILE, FRONTENDS_DIR,
    SUBSCRIBERS_DIR,
};
use crate::store::Store;

/// This data directory's place in a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// The frontend's name (letters, digits, `-`, `_`; unique in the service).
    pub frontend: String,
    /// Its number: the block of row ids it gives.
    pub number: i64,
}

/// The version of the frontend record's format.
pub const RECORD_VERSION: u32 = 1;

/// A frontend's record in the bucket, `frontends/<name>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrontendRecord {
    /// The format's version ([`RECORD_VERSION`]).
    pub version: u32,
    /// The frontend's name.
    pub name: String,
    /// Its number.
    pub number: i64,
    /// Where its PCs reach it (`host:port`), if it said.
    #[serde(default)]
    pub address: Option<String>,
    /// When the record was written (Unix seconds, the frontend's clock).
    pub updated: i64,
    /// The subscribers it serves: (id, name), by id.
    #[serde(default)]
    pub subscribers: Vec<(i64, String)>,
    /// Its usage report, as the board needs it (written by the daemon; the
    /// store does not read it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<serde_json::Value>,
}

/// A frontend name: 1 to 64 of ASCII letters, digits, `-` and `_` (it is
/// part of object keys).
fn check_frontend_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::BadRequest(format!(
            "frontend name {name:?}: use 1 to 64 letters, digits, '-' or '_'"
        )))
    }
}

impl Store {
    /// This data directory's place in a service, or `None` for a server on
    /// its own.
    pub fn service(&self) -> Result<Option<Service>> {
        Ok(self
            .catalog
            .service()?
            .map(|(frontend, number)| Service { frontend, number }))
    }

    /// Joins the service of this store's bucket as frontend `name`, and
    /// writes its record (with `address`, where its PCs reach it). The
    /// number is the one of an existing record of that name (the same
    /// frontend on a new machine), else the lowest free one; a data
    /// directory that already has subscribers keeps numbering them in
    /// block 0, so it must be the service's first frontend or take 0.
    pub fn join_service(&self, name: &str, address: Option<&str>) -> Result<Service> {
        check_frontend_name(name)?;
        if !self.packs.is_bucket() {
            return Err(Error::BadRequest(
                "a frontend keeps its packs in the service's bucket: set [storage] to the \
                 bucket first (`coffre-server move-packs` for a server with data)"
                    .into(),
            ));
        }
        if let Some(service) = self.service()? {
            if service.frontend == name {
                self.publish_frontend(address, None)?;
                return Ok(service);
            }
            return Err(Error::AlreadyExists {
                what: format!(
                    "this data directory is already frontend {:?} of the service",
                    service.frontend
                ),
            });
        }
        let records = self.frontends()?;
        let number = match records.iter().find(|r| r.name == name) {
            Some(own) => own.number,
            None if self.catalog.block_used(0)? => {
                if let Some(r) = records.iter().find(|r| r.number == 0) {
                    return Err(Error::BadRequest(format!(
                        "this server already has subscribers, numbered from 1, and frontend {:?} \
                         holds those numbers: a server with data joins only as the service's \
                         first frontend",
                        r.name
                    )));
                }
                0
            }
            None => (1..)
                .find(|n| records.iter().all(|r| r.number != *n))
                .expect("a free number"),
        };
        self.catalog.set_service(name, number)?;
        // Every account file names its frontend from now on, and what was
        // written before copies were made goes into the bucket.
        for sub in self.catalog.subscriber_ids()? {
            self.save_account(sub)?;
            self.copy_into_bucket(sub)?;
        }
        self.publish_frontend(address, None)?;
        Ok(Service {
            frontend: name.to_string(),
            number,
        })
    }

    /// Copies subscriber `sub`'s key file and the manifests the bucket
    /// lacks from the data directory into the bucket (those written before
    /// release 22 made copies). Returns how many files it copied.
    pub(crate) fn copy_into_bucket(&self, sub: i64) -> Result<u64> {
        let mut copied = 0;
        if let Some(key) = self.catalog.key(sub)? {
            self.packs
                .put_object(&subscriber_object(sub, crate::layout::KEY_FILE), &key)?;
            copied += 1;
        }
        let there: std::collections::HashSet<String> = self
            .packs
            .list_objects(&crate::layout::manifests_prefix(sub))?
            .into_iter()
            .map(|o| o.name)
            .collect();
        for snapshot in self.catalog.snapshots(sub)? {
            let id = snapshot.id;
            let name = id.to_hex();
            if there.contains(&name) {
                continue;
            }
            let path = self.manifest_path(sub, &id);
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            self.packs
                .put_object(&crate::layout::manifest_object(sub, &name), &bytes)?;
            copied += 1;
        }
        Ok(copied)
    }

    /// Copies a subscriber's file into the bucket (`put`) or removes its
    /// copy (`None`). On a frontend of a service this must succeed: another
    /// frontend may serve the subscriber from the bucket tomorrow. On a
    /// server on its own the copy is a spare (its data directory is the
    /// copy it serves from, as before issue 22), so a bucket that is down
    /// does not stop what worked without it (listing snapshots, rolling a
    /// credential): the failure is logged, and `join` copies what is
    /// missing later.
    pub(crate) fn mirror(&self, key: &str, put: Option<&[u8]>) -> Result<()> {
        if !self.packs.is_bucket() {
            return Ok(());
        }
        let done = match put {
            Some(bytes) => self.packs.put_object(key, bytes),
            None => self.packs.remove_object(key),
        };
        match done {
            Err(e) if self.service()?.is_none() => {
                tracing::warn!("the bucket's copy of {key} was not updated: {e}");
                Ok(())
            }
            other => other,
        }
    }

    /// Every frontend record of the service, by name (empty on local
    /// storage). A record that does not parse is skipped with a warning.
    pub fn frontends(&self) -> Result<Vec<FrontendRecord>> {
        let mut out = Vec::new();
        for object in self.packs.list_objects(&format!("{FRONTENDS_DIR}/"))? {
            let Some(name) = object.name.strip_suffix(".json") else {
                continue;
            };
            if let Some(record) = self.frontend(name)? {
                out.push(record);
            }
        }
        Ok(out)
    }

    /// Frontend `name`'s record, if the bucket has one that parses.
    pub fn frontend(&self, name: &str) -> Result<Option<FrontendRecord>> {
        let key = frontend_record(name);
        let Some(bytes) = self.packs.get_object(&key)? else {
            return Ok(None);
        };
        match serde_json::from_slice::<FrontendRecord>(&bytes) {
            Ok(r) => Ok(Some(r)),
            Err(e) => {
                tracing::warn!("the frontend record {key} is not valid, skipped: {e}");
                Ok(None)
            }
        }
    }

    /// Writes this frontend's record: its number, `address`, the
    /// subscribers its catalogue holds and `usage` (kept from the last
    /// record when `None`). Nothing for a server on its own.
    pub fn publish_frontend(
        &self,
        address: Option<&str>,
        usage: Option<serde_json::Value>,
    ) -> Result<Option<FrontendRecord>> {
        let Some(service) = self.service()? else {
            return Ok(None);
        };
        let previous = self.frontend(&service.frontend)?;
        let mut subscribers = self.catalog.subscriber_names()?;
        // A frontend rebuilt on a new machine under its old name starts
        // with an empty catalogue: the subscribers its record lists and
        // whose account files still name it stay listed, so that its
        // take-over "from itself" finds them.
        if let Some(previous) = &previous {
            let here: std::collections::HashSet<i64> =
                subscribers.iter().map(|(id, _)| *id).collect();
            for (id, name) in &previous.subscribers {
                if here.contains(id) {
                    continue;
                }
                let ours = self
                    .bucket_account(*id)?
                    .is_some_and(|a| a.frontend.as_deref() == Some(service.frontend.as_str()));
                if ours {
                    subscribers.push((*id, name.clone()));
                }
            }
            subscribers.sort();
        }
        let record = FrontendRecord {
            version: RECORD_VERSION,
            name: service.frontend.clone(),
            number: service.number,
            address: address
                .map(str::to_string)
                .or_else(|| previous.as_ref().and_then(|p| p.address.clone())),
            updated: self.now(),
            subscribers,
            usage: usage.or_else(|| previous.and_then(|p| p.usage)),
        };
        self.write_record(&record)?;
        Ok(Some(record))
    }

    /// Writes a frontend's record into the bucket.
    pub(crate) fn write_record(&self, record: &FrontendRecord) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(record)
            .map_err(|e| Error::Corrupt(format!("encoding the frontend record: {e}")))?;
        self.packs
            .put_object(&frontend_record(&record.name), &bytes)
    }

    /// The account of subscriber `sub` as the bucket holds it, if any.
    pub(crate) fn bucket_account(&self, sub: i64) -> Result<Option<Account>> {
        let key = subscriber_object(sub, ACCOUNT_FILE);
        match self.packs.get_object(&key)? {
            None => Ok(None),
            Some(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::Corrupt(format!("the bucket's {key} is not valid: {e}"))),
        }
    }

    /// Checks that this frontend still serves subscriber `sub` (the bucket's
    /// account file names it, or nobody). If it names another frontend, the
    /// subscriber leaves this catalogue and [`Error::Moved`] says where it
    /// went. Nothing to check for a server on its own.
    pub(crate) fn check_serving(&self, sub: i64) -> Result<()> {
        let Some(service) = self.service()? else {
            return Ok(());
        };
        let Some(account) = self.bucket_account(sub)? else {
            return Ok(());
        };
        match account.frontend {
            Some(other) if other != service.frontend => {
                self.release(sub, &other)?;
                Err(self.moved_error(&account.name, &other))
            }
            _ => Ok(()),
        }
    }

    /// [`Error::Moved`] for subscriber `name`, now served by `frontend`.
    pub(crate) fn moved_error(&self, name: &str, frontend: &str) -> Error {
        let address = self
            .frontend(frontend)
            .ok()
            .flatten()
            .and_then(|r| r.address);
        Error::Moved {
            subscriber: name.to_string(),
            frontend: frontend.to_string(),
            address,
        }
    }

    /// Removes subscriber `sub` from this frontend, which `to` serves now:
    /// its catalogue rows (remembering its name and its devices' secrets
    /// for the PCs still calling here) and its local copies. Its data in
    /// the bucket is untouched: it is the other frontend's now.
    pub(crate) fn release(&self, sub: i64, to: &str) -> Result<()> {
        let state = self.pending.subscriber(sub);
        let _commit = crate::pending::lock(&state.commit);
        self.catalog.remove_subscriber(sub, Some(to), self.now())?;
        tracing::warn!(
            subscriber_id = sub,
            "subscriber #{sub} is served by frontend {to:?} now (the bucket says so): \
             removed from this frontend"
        );
        let dir = self.subscriber_dir(sub);
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("could not remove {}: {e}", dir.display());
            }
        }
        let _ = durable::sync_dir(&self.data_dir().join(SUBSCRIBERS_DIR));
        Ok(())
    }

    /// Copies this frontend's catalogue into the bucket,
    /// `frontends/<name>/catalog.sqlite.zst` (a consistent copy made by
    /// SQLite's `VACUUM INTO`, compressed with zstd, streamed through a
    /// temporary file), replacing the previous one. It keeps what no
    /// rebuild from the bucket brings back (the chunks' writers, the daily
    /// history, refusal counts). Returns its compressed size; nothing for a
    /// server on its own.
    pub fn backup_catalog(&self) -> Result<Option<u64>> {
        let Some(service) = self.service()? else {
            return Ok(None);
        };
        let copy = self.data_dir().join(".catalog-backup.sqlite");
        let packed = self.data_dir().join(".catalog-backup.sqlite.zst");
        let cleanup = || {
            let _ = std::fs::remove_file(&copy);
            let _ = std::fs::remove_file(&packed);
        };
        cleanup();
        let result = (|| {
            self.catalog.copy_into(&copy)?;
            let input = std::fs::File::open(&copy).map_err(|e| Error::io(&copy, e))?;
            let output = durable::create_new(&packed).map_err(|e| Error::io(&packed, e))?;
            zstd::stream::copy_encode(input, &output, 3).map_err(|e| Error::io(&packed, e))?;
            output.sync_all().map_err(|e| Error::io(&packed, e))?;
            let size = output.metadata().map_err(|e| Error::io(&packed, e))?.len();
            self.packs
                .put_file(&catalog_backup(&service.frontend), &packed)?;
            Ok(Some(size))
        })();
        cleanup();
        result
    }

    /// Checks every subscriber of this frontend against the bucket (at the
    /// daemon's start: a frontend that was taken over while it was down
    /// stops serving what it lost). Returns the names of those that left.
    pub fn check_all_serving(&self) -> Result<Vec<String>> {
        let mut left = Vec::new();
        if self.service()?.is_none() {
            return Ok(left);
        }
        for (sub, name) in self.catalog.subscriber_names()? {
            if let Err(Error::Moved { .. }) = self.check_serving(sub) {
                left.push(name);
            }
        }
        Ok(left)
    }
}

#[cfg(test)]
mod tests {
    use coffre_core::blob::BlobKind;
    use coffre_core::{ChunkId, Keys, Manifest, MasterKey, Sealer, Timestamp};

    use crate::store::Store;
    use crate::types::Role;

    /// A subscriber that leaves (taken over by another frontend) leaves no
    /// row in any table that names a subscriber or a device of it, whatever
    /// tables later releases add; its devices' secrets are remembered, so
    /// its PCs are told where it went.
    #[test]
    fn a_subscriber_that_leaves_leaves_no_row_behind_but_where_it_went() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        for name in ["leaves", "stays"] {
            store.add_subscriber(name, 1 << 30, None).unwrap();
            let secret = store.add_device(name, "pc", Role::Backup).unwrap();
            let s = store.authenticate(&secret).unwrap();
            let keys = Keys::derive(&MasterKey::from_bytes([1; 32]));
            let mut pack = store.open_pack(&s);
            let id = ChunkId::compute(&keys, name.as_bytes());
            let blob = Sealer::new(1)
                .seal(&keys, BlobKind::Data, &id, name.as_bytes())
                .unwrap();
            store.put_chunk(&s, &mut pack, &id, &blob).unwrap();
            let time = Timestamp {
                secs: 1_795_399_200,
                nanos: 0,
            };
            let manifest = Manifest::bare("pc", time, vec![id]).seal(&keys).unwrap();
            store.commit_snapshot(&s, &mut pack, &manifest).unwrap();
            store.put_key(&s, &[0; 106]).ok();
            store.end_session(&s).unwrap();
        }
        let leaves = store.catalog.subscriber_id_of("leaves").unwrap();
        let secret = store.add_device("leaves", "late", Role::Backup).unwrap();
        store
            .catalog
            .remove_subscriber(leaves, Some("fe2"), store.now())
            .unwrap();

        let conn = rusqlite::Connection::open(dir.path().join("catalog.sqlite")).unwrap();
        let tables: Vec<(String, String)> = conn
            .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'table'")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let mut checked = 0;
        for (table, sql) in &tables {
            if table == "moved" || table == "moved_secrets" {
                continue;
            }
            for column in ["subscriber_id", "device_id"] {
                if !sql.contains(column) {
                    continue;
                }
                let rows: i64 = conn
                    .query_row(
                        &format!(
                            "SELECT COUNT(*) FROM {table} WHERE {column} = ?1
                                OR {column} IN (SELECT id FROM devices WHERE subscriber_id = ?1)"
                        ),
                        [leaves],
                        |r| r.get(0),
                    )
                    .unwrap();
                assert_eq!(rows, 0, "{table}.{column} still names the subscriber");
                checked += 1;
            }
        }
        assert!(checked >= 6, "{tables:?}");
        let any: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM subscribers WHERE id = ?1",
                [leaves],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(any, 0);
        // The other subscriber is whole.
        assert_eq!(store.snapshots_of("stays").unwrap().len(), 1);
        // A PC of the one that left is told where it went.
        match store.authenticate(&secret) {
            Err(crate::Error::Moved {
                subscriber,
                frontend,
                ..
            }) => assert_eq!((subscriber.as_str(), frontend.as_str()), ("leaves", "fe2")),
            other => panic!("{other:?}"),
        }
    }
}
