//! Rebuilding the catalogue from the data directory alone (invariant 9).
//!
//! Everything the catalogue indexes describes itself on disk: each
//! subscriber's `account.json` (its row and its devices' rows), its `key`
//! file, its packs (each ends with the list of its blobs and their
//! checksums) and its manifests (named by their id, their public part naming
//! the device and listing every chunk). [`rebuild_catalog`] writes a new
//! catalogue from them beside the old one, then puts it in place; the old
//! one, if any, is kept as `catalog.sqlite.replaced-<time>`. Each
//! subscriber's files are read first, then all its rows are written in one
//! transaction (one flush per structure, and never half a structure).
//!
//! What cannot come back exactly: a snapshot's received time (what retention
//! goes by) becomes the earliest of its manifest's time, its manifest file's
//! modification time (the server wrote the file when it received the
//! snapshot; a copied data directory has later ones) and now: a PC's
//! forward clock never moves a snapshot past its receipt, and a copy never
//! collapses a device's history into one day. A device's `last_backup`
//! becomes the newest of those and its clock skew the one seen at that
//! snapshot; the order of snapshots received in the same second follows
//! their manifests' times; the record of the last maintenance runs starts
//! empty, and so do the devices' retired secrets and refused-copy counts
//! (the account file keeps each device's current and pending secret hashes,
//! so no PC is locked out; a copy of a PC holding a retired secret is then
//! refused as unknown). A pack whose
//! index is unreadable is reported and left out (its chunks are missing
//! until a backup sends them again); so is a manifest that does not match
//! its name.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use coffre_core::{snapshot_id, ChunkId, Manifest};
use serde::Serialize;

use crate::catalog::{Account, Catalog, Restored, RestoredPack, SnapshotRow};
use crate::clock::{Clock, SystemClock};
use crate::durable;
use crate::error::{Error, Result};
use crate::layout::{
    ACCOUNT_FILE, CATALOG_FILE, KEY_FILE, MANIFESTS_DIR, PACK_SUFFIX, SUBSCRIBERS_DIR,
};
use crate::pack::read_stored_index;
use crate::storage::{PackStorage, Packs};

/// What a rebuild found, per subscriber.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RebuildReport {
    /// The subscriber (its name from its account file).
    pub subscriber: String,
    /// Devices restored.
    pub devices: u64,
    /// Packs indexed.
    pub packs: u64,
    /// Chunks indexed.
    pub chunks: u64,
    /// Snapshots restored.
    pub snapshots: u64,
    /// `used_bytes` as rebuilt.
    pub used_bytes: u64,
    /// Whether the key file was found.
    pub key: bool,
    /// What was left out, and why.
    pub problems: Vec<String>,
    /// Snapshots that list chunks no readable pack holds (id hex, count).
    pub incomplete_snapshots: Vec<(String, u64)>,
}

/// Rebuilds `DATA/catalog.sqlite` from the data directory. Refuses if a
/// catalogue exists, unless `replace` (the old one is then kept aside).
/// Stop the daemon first: it must not write to the old catalogue meanwhile.
pub fn rebuild_catalog(data_dir: &Path, replace: bool) -> Result<Vec<RebuildReport>> {
    rebuild_catalog_with(data_dir, &PackStorage::Local, replace)
}

/// [`rebuild_catalog`] for a data directory whose packs are kept as
/// `storage` says (on an object store, the packs are found by listing the
/// bucket, and each index is read with two ranged reads).
pub fn rebuild_catalog_with(
    data_dir: &Path,
    storage: &PackStorage,
    replace: bool,
) -> Result<Vec<RebuildReport>> {
    rebuild_catalog_with_clock(data_dir, storage, replace, &SystemClock)
}

/// [`rebuild_catalog_with`] with the time read from `clock`: the name the
/// old catalogue is put aside under, and the `created` of a pack whose
/// storage gives no time.
pub fn rebuild_catalog_with_clock(
    data_dir: &Path,
    storage: &PackStorage,
    replace: bool,
    clock: &dyn Clock,
) -> Result<Vec<RebuildReport>> {
    let packs = Packs::new(data_dir, storage)?;
    let target = data_dir.join(CATALOG_FILE);
    if target.exists() && !replace {
        return Err(Error::AlreadyExists {
            what: format!(
                "a catalogue at {} (to replace it, stop the daemon and pass --replace: the old \
                 one is kept as catalog.sqlite.replaced-<time>)",
                target.display()
            ),
        });
    }
    let subscribers = data_dir.join(SUBSCRIBERS_DIR);
    if !subscribers.is_dir() {
        return Err(Error::NoDataDir {
            path: data_dir.to_path_buf(),
        });
    }
    let building = data_dir.join(format!("{CATALOG_FILE}.rebuilding"));
    for stale in sqlite_files(&building) {
        remove_if_exists(&stale)?;
    }
    let catalog = Catalog::open(&building, true)?;
    let mut reports = Vec::new();
    for (id, dir) in subscriber_dirs(&subscribers)? {
        reports.push(rebuild_subscriber(
            &catalog,
            &packs,
            id,
            &LocalFolder(&dir),
            clock,
        )?);
    }
    drop(catalog);

    // Put it in place: the old catalogue (and its WAL) aside first.
    if target.exists() {
        let aside = data_dir.join(format!("{CATALOG_FILE}.replaced-{}", clock.now()));
        for (from, suffix) in sqlite_files(&target).into_iter().zip(["", "-wal", "-shm"]) {
            if from.exists() {
                let to = PathBuf::from(format!("{}{suffix}", aside.display()));
                fs::rename(&from, &to).map_err(|e| Error::io(&from, e))?;
            }
        }
    }
    for (from, suffix) in sqlite_files(&building)
        .into_iter()
        .zip(["", "-wal", "-shm"])
    {
        if from.exists() {
            let to = PathBuf::from(format!("{}{suffix}", target.display()));
            fs::rename(&from, &to).map_err(|e| Error::io(&from, e))?;
        }
    }
    durable::sync_dir(data_dir).map_err(|e| Error::io(data_dir, e))?;
    Ok(reports)
}

/// Where a subscriber's small files are read from: its folder in the data
/// directory (a catalogue rebuild) or in the bucket (a take-over, issue 22).
pub(crate) trait Source {
    /// Where the files are, for messages.
    fn describe(&self, file: &str) -> String;
    /// The account file's bytes, if it exists.
    fn account(&self) -> Result<Option<Vec<u8>>>;
    /// The key file's bytes, if it exists.
    fn key(&self) -> Result<Option<Vec<u8>>>;
    /// The manifests' names (not temporary ones) and when each was written
    /// (Unix seconds; `None` if unknown), by name.
    fn manifests(&self) -> Result<Vec<(String, Option<i64>)>>;
    /// One manifest's bytes.
    fn manifest(&self, name: &str) -> Result<Vec<u8>>;
}

/// A subscriber's folder in the data directory.
struct LocalFolder<'a>(&'a Path);

impl Source for LocalFolder<'_> {
    fn describe(&self, file: &str) -> String {
        self.0.join(file).display().to_string()
    }

    fn account(&self) -> Result<Option<Vec<u8>>> {
        read_if_exists(&self.0.join(ACCOUNT_FILE))
    }

    fn key(&self) -> Result<Option<Vec<u8>>> {
        read_if_exists(&self.0.join(KEY_FILE))
    }

    fn manifests(&self) -> Result<Vec<(String, Option<i64>)>> {
        Ok(files(&self.0.join(MANIFESTS_DIR))?
            .into_iter()
            .map(|(name, path)| {
                let modified = fs::metadata(&path)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .and_then(|d| i64::try_from(d.as_secs()).ok());
                (name, modified)
            })
            .collect())
    }

    fn manifest(&self, name: &str) -> Result<Vec<u8>> {
        let path = self.0.join(MANIFESTS_DIR).join(name);
        fs::read(&path).map_err(|e| Error::io(&path, e))
    }
}

fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// The subscriber's account as `source` holds it, checked to be subscriber
/// `id`'s.
pub(crate) fn read_account(source: &dyn Source, id: i64) -> Result<Account> {
    let where_ = source.describe(ACCOUNT_FILE);
    let account: Account = match source.account()? {
        Some(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| Error::Corrupt(format!("{where_} is not valid: {e}")))?,
        None => {
            return Err(Error::Corrupt(format!(
                "{where_} is missing: the subscriber's name, quota and devices cannot be rebuilt \
                 (restore the file from a backup of the data directory)"
            )))
        }
    };
    if account.id != id {
        return Err(Error::Corrupt(format!(
            "{where_} says subscriber #{}, but it is in folder {id}",
            account.id
        )));
    }
    Ok(account)
}

/// Writes subscriber `id`'s rows into `catalog` from `source` (account,
/// key, manifests) and `packs` (the pack indexes).
pub(crate) fn rebuild_subscriber(
    catalog: &Catalog,
    packs: &Packs,
    id: i64,
    source: &dyn Source,
    clock: &dyn Clock,
) -> Result<RebuildReport> {
    let mut report = RebuildReport::default();
    let account = read_account(source, id)?;
    report.subscriber = account.name.clone();
    report.devices = account.devices.len() as u64;
    let key = source.key()?;
    report.key = key.is_some();

    // 1. Read everything: the pack indexes, the manifests.
    let mut restored_packs = Vec::new();
    for pack in packs.list(id)? {
        match read_stored_index(packs, id, &pack.name, pack.size) {
            Ok(entries) => {
                report.packs += 1;
                report.chunks += entries.len() as u64;
                report.used_bytes += pack.size;
                restored_packs.push(RestoredPack {
                    created: if pack.modified > 0 {
                        pack.modified
                    } else {
                        clock.now()
                    },
                    name: pack.name,
                    size: pack.size,
                    entries,
                });
            }
            Err(e) => report
                .problems
                .push(format!("pack {}{PACK_SUFFIX} left out: {e}", pack.name)),
        }
    }

    // Manifests, oldest first, so that the commit order is rebuilt.
    let mut snapshots = Vec::new();
    for (name, modified) in source.manifests()? {
        let Some(id_from_name) = ChunkId::from_hex(&name) else {
            continue;
        };
        let bytes = source.manifest(&name)?;
        if snapshot_id(&bytes) != id_from_name {
            report.problems.push(format!(
                "manifest {name} left out: it does not match its name"
            ));
            continue;
        }
        match Manifest::read_public(&bytes) {
            Ok((public, _)) => {
                // When the server wrote the file is when it received the
                // snapshot (a copy has later times): never later than the
                // manifest's own time, nor now.
                let received = modified
                    .unwrap_or(public.time.secs)
                    .min(public.time.secs)
                    .min(clock.now());
                snapshots.push((id_from_name, bytes.len() as u64, public, received));
            }
            Err(e) => report
                .problems
                .push(format!("manifest {name} left out: {e}")),
        }
    }
    snapshots.sort_by_key(|(_, _, p, received)| (*received, p.time.secs, p.time.nanos));
    let mut rows = Vec::with_capacity(snapshots.len());
    for (snap, len, public, received) in &snapshots {
        let Some(device) = account.devices.iter().find(|d| d.name == public.device) else {
            report.problems.push(format!(
                "snapshot {} left out: its device {:?} is not in the account file",
                snap.short(),
                public.device
            ));
            continue;
        };
        rows.push(SnapshotRow {
            subscriber_id: id,
            id: *snap,
            device_id: device.id,
            time: public.time.secs,
            received: *received,
            logical_bytes: public.logical_bytes,
            file_count: public.file_count,
            problems: public.problems,
            checkpoint: public.checkpoint,
            manifest_bytes: *len,
            chunks: &public.chunks,
        });
    }

    // 2. Write it all in one transaction.
    let missing = catalog.restore_subscriber(&Restored {
        account: &account,
        key: key.as_deref(),
        packs: restored_packs,
        snapshots: &rows,
    })?;
    for (row, missing) in rows.iter().zip(missing) {
        report.snapshots += 1;
        report.used_bytes += row.manifest_bytes;
        if missing > 0 {
            report.incomplete_snapshots.push((row.id.to_hex(), missing));
        }
    }
    Ok(report)
}

/// The numbered folders under `subscribers/`, by id.
fn subscriber_dirs(dir: &Path) -> Result<Vec<(i64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        if let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i64>().ok())
        {
            if entry.path().is_dir() {
                out.push((id, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The files of `dir` that are not temporary (no leading dot), by name.
fn files(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in durable::entries(dir)? {
        if let Some(name) = entry.file_name().to_str() {
            if !name.starts_with('.') && entry.path().is_file() {
                out.push((name.to_string(), entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A SQLite database and its WAL and shared-memory files.
fn sqlite_files(db: &Path) -> [PathBuf; 3] {
    let s = db.display().to_string();
    [
        db.to_path_buf(),
        PathBuf::from(format!("{s}-wal")),
        PathBuf::from(format!("{s}-shm")),
    ]
}

fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}
