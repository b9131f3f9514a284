//! [`Store`]: a data directory, its catalogue and its open packs; opening,
//! and the admin operations (subscribers, devices, usage). Authentication
//! and the rolling of device secrets are in `credentials.rs`; the data path
//! (what an authenticated device does) is in `data.rs`.
//!
//! A store reads the time from the [`Clock`] it was opened with, never from
//! the system itself: [`Store::open`] and [`Store::create`] (and their
//! `_with` forms, which choose the pack storage) take the system's, so every
//! caller stays one line; `open_with_clock` and `create_with_clock` take any
//! clock, for the tests that make days pass without sleeping.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use coffre_core::ChunkId;

use crate::catalog::Catalog;
use crate::clock::{Clock, SystemClock};
use crate::durable;
use crate::error::{Error, Result};
use crate::history::{self, DayUsage, History, Recorded, ServerDay, Space};
use crate::layout::{
    subscriber_object, ACCOUNT_FILE, CATALOG_FILE, KEY_FILE, MANIFESTS_DIR, SUBSCRIBERS_DIR,
};
use crate::pending::{lock, Pending};
use crate::permissions::{self, Tightened};
use crate::storage::{PackStorage, Packs};
use crate::types::{
    canonical_retention, check_name, DeviceInfo, MaintenanceRun, Session, SubscriberInfo, Usage,
};

/// The server's storage: one data directory, its catalogue, packs and
/// manifests. `Send + Sync`: share one per process (in an `Arc`) and call it
/// from many threads; every method blocks (SQLite, fsync), so an async daemon
/// calls it from `spawn_blocking`. See the crate documentation for what may
/// run beside what.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    pub(crate) catalog: Catalog,
    pub(crate) pending: Arc<Pending>,
    pub(crate) packs: Arc<Packs>,
    pub(crate) clock: Arc<dyn Clock>,
    tightened: Tightened,
    /// Held while an account file is read from the catalogue and written,
    /// so that two changes at once never leave the older one on disk.
    accounts: Mutex<()>,
}

impl Store {
    /// Creates the store of a new data directory: `catalog.sqlite` and
    /// `subscribers/`. The directory may exist (it may hold a configuration);
    /// a catalogue in it is an [`Error::AlreadyExists`].
    pub fn create(data_dir: &Path) -> Result<Store> {
        Store::create_with(data_dir, &PackStorage::Local)
    }

    /// [`Store::create`] with packs kept as `storage` says. An object store
    /// is checked first (the bucket answers, the credentials are accepted),
    /// so that a mistake shows before anything is created.
    pub fn create_with(data_dir: &Path, storage: &PackStorage) -> Result<Store> {
        Store::create_with_clock(data_dir, storage, Arc::new(SystemClock))
    }

    /// [`Store::create_with`] with the time read from `clock` (see
    /// [`crate::clock`]).
    pub fn create_with_clock(
        data_dir: &Path,
        storage: &PackStorage,
        clock: Arc<dyn Clock>,
    ) -> Result<Store> {
        let packs = Packs::new(data_dir, storage)?;
        packs.check()?;
        let catalog = data_dir.join(CATALOG_FILE);
        if catalog.exists() {
            return Err(Error::AlreadyExists {
                what: format!("a coffre catalogue at {}", catalog.display()),
            });
        }
        // Owner-only, even if the folder existed (invariant: no other local
        // user reads a data directory; `permissions`).
        durable::create_dir_all(data_dir).map_err(|e| Error::io(data_dir, e))?;
        permissions::private_dir(data_dir)?;
        let subscribers = data_dir.join(SUBSCRIBERS_DIR);
        durable::create_dir_all(&subscribers).map_err(|e| Error::io(&subscribers, e))?;
        let store = Store {
            root: data_dir.to_path_buf(),
            catalog: Catalog::open(&catalog, true)?,
            pending: Arc::default(),
            packs: Arc::new(packs),
            clock,
            tightened: Tightened::default(),
            accounts: Mutex::new(()),
        };
        // The catalogue file and its WAL are new entries of the data directory.
        durable::sync_dir(data_dir).map_err(|e| Error::io(data_dir, e))?;
        Ok(store)
    }

    /// Opens the store of an existing data directory, upgrading the catalogue's
    /// schema if this build is newer. A missing catalogue is
    /// [`Error::NoDataDir`]; a catalogue from a newer coffre-server is
    /// [`Error::UnsupportedSchema`].
    pub fn open(data_dir: &Path) -> Result<Store> {
        Store::open_with(data_dir, &PackStorage::Local)
    }

    /// [`Store::open`] with packs kept as `storage` says (what the server's
    /// `config.toml` chose). Opening does not contact an object store.
    pub fn open_with(data_dir: &Path, storage: &PackStorage) -> Result<Store> {
        Store::open_with_clock(data_dir, storage, Arc::new(SystemClock))
    }

    /// [`Store::open_with`] with the time read from `clock` (see
    /// [`crate::clock`]).
    pub fn open_with_clock(
        data_dir: &Path,
        storage: &PackStorage,
        clock: Arc<dyn Clock>,
    ) -> Result<Store> {
        let packs = Packs::new(data_dir, storage)?;
        let catalog = data_dir.join(CATALOG_FILE);
        if !catalog.is_file() {
            return Err(Error::NoDataDir {
                path: data_dir.to_path_buf(),
            });
        }
        // A data directory of an older release is made owner-only before
        // SQLite opens it (its -wal and -shm take the catalogue's mode).
        let tightened = permissions::tighten(data_dir)?;
        let subscribers = data_dir.join(SUBSCRIBERS_DIR);
        durable::create_dir_all(&subscribers).map_err(|e| Error::io(&subscribers, e))?;
        let store = Store {
            root: data_dir.to_path_buf(),
            catalog: Catalog::open(&catalog, false)?,
            pending: Arc::default(),
            packs: Arc::new(packs),
            clock,
            tightened,
            accounts: Mutex::new(()),
        };
        store.save_missing_accounts()?;
        Ok(store)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.root
    }

    /// What opening the store made owner-only in a data directory left
    /// open to other users by an older release (empty if nothing): the
    /// caller logs it ([`crate::permissions`]).
    pub fn tightened(&self) -> &Tightened {
        &self.tightened
    }

    /// Now, in Unix seconds, as the store's clock says: the time of
    /// everything the store records and decides by. The server's
    /// maintenance reads it too, so that one clock drives it all.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    // ---------------------------------------------------------------- paths

    pub(crate) fn subscriber_dir(&self, subscriber_id: i64) -> PathBuf {
        self.root
            .join(SUBSCRIBERS_DIR)
            .join(subscriber_id.to_string())
    }

    /// The local folder of a subscriber's packs: the packs being written
    /// (and, on the local backend, the sealed ones).
    pub(crate) fn packs_dir(&self, subscriber_id: i64) -> PathBuf {
        self.packs.dir(subscriber_id)
    }

    pub(crate) fn manifests_dir(&self, subscriber_id: i64) -> PathBuf {
        self.subscriber_dir(subscriber_id).join(MANIFESTS_DIR)
    }

    pub(crate) fn manifest_path(&self, subscriber_id: i64, id: &ChunkId) -> PathBuf {
        self.manifests_dir(subscriber_id).join(id.to_hex())
    }

    pub(crate) fn account_path(&self, subscriber_id: i64) -> PathBuf {
        self.subscriber_dir(subscriber_id).join(ACCOUNT_FILE)
    }

    pub(crate) fn key_path(&self, subscriber_id: i64) -> PathBuf {
        self.subscriber_dir(subscriber_id).join(KEY_FILE)
    }

    // ---------------------------------------------------------------- admin

    /// Adds a subscriber with a hard quota in bytes and an optional retention
    /// policy (`last=3,daily=7,weekly=4,monthly=12`; `None` or `"default"` for
    /// the server's default).
    pub fn add_subscriber(
        &self,
        name: &str,
        quota_bytes: u64,
        retention: Option<&str>,
    ) -> Result<()> {
        check_name("subscriber", name)?;
        let quota = quota_to_i64(quota_bytes)?;
        let retention = retention.map(canonical_retention).transpose()?.flatten();
        let id = self
            .catalog
            .insert_subscriber(name, quota, retention.as_deref(), self.now())?;
        let dir = self.subscriber_dir(id);
        durable::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        self.save_account(id)?;
        // A frontend's record lists it at once (issue 22): a take-over of
        // this frontend finds it even if the daemon never ran since.
        self.publish_frontend(None, None)?;
        Ok(())
    }

    /// Changes a subscriber's quota and/or retention policy (`None` leaves it
    /// as it is; retention `"default"` resets it to the server's default).
    /// Lowering a quota below what is used never deletes anything: new data is
    /// refused until usage drops.
    pub fn set_subscriber(
        &self,
        name: &str,
        quota_bytes: Option<u64>,
        retention: Option<&str>,
    ) -> Result<()> {
        let quota = quota_bytes.map(quota_to_i64).transpose()?;
        let retention = retention.map(canonical_retention).transpose()?;
        self.catalog
            .update_subscriber(name, quota, retention.as_ref().map(Option::as_deref))?;
        self.save_account(self.catalog.subscriber_id_of(name)?)
    }

    /// Sets who hears about a subscriber's alerts besides the operator (mail
    /// addresses and webhook URLs, comma-separated), or with `None` or an
    /// empty text removes it. Kept in its account file too, so a catalogue
    /// rebuild restores it.
    pub fn set_contact(&self, name: &str, contact: Option<&str>) -> Result<()> {
        let contact = contact.map(str::trim).filter(|c| !c.is_empty());
        self.catalog.update_contact(name, contact)?;
        self.save_account(self.catalog.subscriber_id_of(name)?)
    }

    /// One subscriber with its counters.
    pub fn subscriber(&self, name: &str) -> Result<SubscriberInfo> {
        self.catalog.subscriber(name)
    }

    /// Every subscriber, ordered by name.
    pub fn list_subscribers(&self) -> Result<Vec<SubscriberInfo>> {
        Ok(self
            .catalog
            .summaries()?
            .into_iter()
            .map(|s| s.info())
            .collect())
    }

    /// Devices of one subscriber, or of all; ordered by subscriber, then name.
    pub fn list_devices(&self, subscriber: Option<&str>) -> Result<Vec<DeviceInfo>> {
        self.catalog.devices(subscriber)
    }

    /// Revokes a device: its secret is refused from then on; its snapshots
    /// stay. Revoking a revoked device keeps the first revocation time.
    pub fn revoke_device(&self, subscriber: &str, device: &str) -> Result<()> {
        self.catalog.revoke_device(subscriber, device, self.now())?;
        self.save_account(self.catalog.subscriber_id_of(subscriber)?)
    }

    /// Which of `devices` (their [`crate::Session::device_id`]) are revoked now: for
    /// the daemon, which polls it for the devices of its live connections
    /// (a revocation is written by another process, `device revoke`).
    pub fn revoked_devices(&self, devices: &[i64]) -> Result<Vec<i64>> {
        self.catalog.revoked_among(devices)
    }

    /// Writes `subscribers/<id>/account.json`: the subscriber's row and its
    /// devices' (secret hashes only), the part of the catalogue no pack or
    /// manifest describes, so that `rebuild-catalog` can restore it. Written
    /// after every change, durably.
    ///
    /// On a bucket the file is copied there too (issue 22), after checking
    /// that this frontend still serves the subscriber ([`Error::Moved`]
    /// if another frontend took it over).
    pub(crate) fn save_account(&self, sub: i64) -> Result<()> {
        let _one_at_a_time = lock(&self.accounts);
        let mut account = self.catalog.account(sub)?;
        account.frontend = self.service()?.map(|s| s.frontend);
        let path = self.account_path(sub);
        let text = account.encode()?;
        durable::create_dir_all(&self.subscriber_dir(sub))
            .and_then(|()| durable::write_atomic(&path, &text))
            .map_err(|e| Error::io(&path, e))?;
        if self.packs.is_bucket() {
            self.check_serving(sub)?;
            self.mirror(&subscriber_object(sub, ACCOUNT_FILE), Some(&text))?;
        }
        Ok(())
    }

    /// Writes the account files that are missing (data directories made
    /// before they existed).
    fn save_missing_accounts(&self) -> Result<()> {
        for sub in self.catalog.subscriber_ids()? {
            if !self.account_path(sub).exists() {
                self.save_account(sub)?;
            }
        }
        Ok(())
    }

    /// Ends a session: garbage collection no longer needs to protect what it
    /// was told or uploaded (its commits are in the catalogue, its open pack
    /// sealed or discarded by the caller). The daemon calls it when a
    /// connection ends; a session that never uploaded nor asked costs nothing.
    pub fn end_session(&self, s: &Session) -> Result<()> {
        let row = lock(&s.writer).take();
        match row {
            Some(row) => self.catalog.end_session(row),
            None => Ok(()),
        }
    }

    /// Forgets every session recorded by an earlier run of the daemon (one
    /// killed before its connections ended). The daemon calls it at start:
    /// two daemons on one data directory are not supported (`coffre-server
    /// run` holds the [`crate::DaemonLock`]).
    pub fn clear_sessions(&self) -> Result<usize> {
        self.catalog.clear_sessions()
    }

    /// Bytes reserved against the quota of subscriber `name` by this
    /// process's open packs and commits in progress: what the quota check
    /// adds to `used_bytes`. Zero once its sessions have ended (their open
    /// packs are then sealed, and counted in `used_bytes`, or discarded).
    pub fn reserved_bytes(&self, name: &str) -> Result<u64> {
        let id = self.catalog.subscriber_id_of(name)?;
        Ok(*lock(&self.pending.subscriber(id).pending_bytes))
    }

    /// Records, once per session, that it may upload or learn which chunks
    /// exist, before it does.
    pub(crate) fn register_writer(&self, s: &Session) -> Result<()> {
        let mut row = lock(&s.writer);
        if row.is_none() {
            *row = Some(
                self.catalog
                    .begin_session(s.subscriber_id, s.device_id, self.now())?,
            );
        }
        Ok(())
    }

    /// Records how the last run of a maintenance task (`"prune"`, `"gc"`)
    /// went, for `/metrics`.
    pub fn record_run(&self, run: &MaintenanceRun) -> Result<()> {
        self.catalog.record_run(run)
    }

    /// The last run of each maintenance task.
    pub fn maintenance_runs(&self) -> Result<Vec<MaintenanceRun>> {
        self.catalog.runs()
    }

    /// Usage per subscriber, ordered by name: one query.
    pub fn usage(&self) -> Result<Vec<Usage>> {
        let mut usage: Vec<Usage> = self
            .catalog
            .summaries()?
            .into_iter()
            .map(|s| s.usage())
            .collect();
        // Both lists are ordered by subscriber name.
        let mut devices = self.catalog.device_usage()?.into_iter().peekable();
        for u in &mut usage {
            while let Some((_, d)) = devices.next_if(|(sub, _)| *sub == u.name) {
                u.protected_bytes += d.latest_bytes;
                u.device_backups.push(d);
            }
        }
        Ok(usage)
    }

    /// Records today's line of the daily history (`crate::history`): each
    /// subscriber's used bytes, quota, data size and snapshots from
    /// [`Store::usage`], and the server's (their sums, with `space`: the free
    /// space and size of where the packs are, as the caller measured them).
    /// "Today" is the store's clock's; a second recording the same day
    /// replaces the first; the first of a day thins the older lines. One
    /// read, then one `IMMEDIATE` transaction: safe beside the daemon and
    /// the admin commands.
    pub fn record_history(&self, space: Space) -> Result<Recorded> {
        let usage = self.usage()?;
        let day = history::day_of(self.now());
        let lines: Vec<(&str, DayUsage)> = usage
            .iter()
            .map(|u| {
                (
                    u.name.as_str(),
                    DayUsage {
                        day,
                        used_bytes: u.used_bytes,
                        quota_bytes: u.quota_bytes,
                        data_bytes: u.protected_bytes,
                        snapshots: u.snapshots,
                    },
                )
            })
            .collect();
        let sum = |f: fn(&Usage) -> u64| usage.iter().map(f).fold(0u64, u64::saturating_add);
        let server = ServerDay {
            day,
            stored_bytes: sum(|u| u.used_bytes),
            data_bytes: sum(|u| u.protected_bytes),
            snapshots: sum(|u| u.snapshots),
            free_bytes: space.free_bytes,
            capacity_bytes: space.capacity_bytes,
        };
        self.catalog.record_history(&lines, &server)
    }

    /// The daily history from day `since` on (days since 1970-01-01; see
    /// [`history::day_of`]), of the subscribers named in `only` or of all,
    /// and the server's: one query for the subscribers, however many, and
    /// one for the server, in one read transaction.
    pub fn history(&self, only: Option<&[String]>, since: i64) -> Result<History> {
        self.catalog.history(only, since)
    }
}

fn quota_to_i64(quota: u64) -> Result<i64> {
    i64::try_from(quota).map_err(|_| {
        Error::BadRequest(format!(
            "a quota of {quota} bytes is too large: give at most {} bytes",
            i64::MAX
        ))
    })
}
