//! The catalogue: `catalog.sqlite`, an index of subscribers, devices, packs,
//! chunks and snapshots. **All SQL of the crate is in this module.**
//!
//! - WAL journal, `synchronous = FULL` (a commit acknowledged to a client is on
//!   disk, invariant 2), `foreign_keys = ON`, a 10 s busy timeout (other
//!   processes: the admin commands run beside the daemon).
//! - One writer connection behind a mutex; every write is one `IMMEDIATE`
//!   transaction, so it takes the write lock at `BEGIN` and never fails with
//!   "database is locked" halfway through.
//! - A small pool of read connections (`query_only`), each read one deferred
//!   transaction: reads see one consistent state and run beside the writer
//!   (WAL), so a slow commit does not stall `has_chunks` or restores.
//! - Every data-path query is scoped by `subscriber_id` (invariant 4); the
//!   chunk and snapshot tables are keyed by `(subscriber_id, id)`.
//! - The schema is versioned by `PRAGMA user_version` with forward-only
//!   migrations ([`MIGRATIONS`]); a catalogue newer than this build is refused.
//!
//! The catalogue is an index, not the only truth (invariant 9): packs and
//! manifests describe themselves and the key file is also kept as a file, so
//! the `packs`, `chunks`, `snapshots` and `keys` rows can be rebuilt from the
//! data directory.

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use coffre_core::ChunkId;
use rusqlite::{
    params, Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior,
};

use crate::error::{Error, Result};
use crate::pack::PackEntry;
use crate::pending::lock;
use crate::types::{
    DeviceInfo, DeviceUsage, MaintenanceRun, Role, SnapshotInfo, Status, SubscriberInfo, Usage,
};

/// How long a connection waits for another process's lock before failing.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Read connections open at most; a read waits for a free one beyond that
/// (reads are short, and this bounds memory and file handles however many
/// blocking threads the daemon runs).
const MAX_READERS: usize = 8;

/// Forward-only migrations: `MIGRATIONS[i]` takes the schema from version `i`
/// to `i + 1`. Never edit a released entry; append a new one.
pub(crate) const MIGRATIONS: &[&str] = &[
    // Version 1.
    "
    CREATE TABLE subscribers (
        id          INTEGER PRIMARY KEY,
        name        TEXT NOT NULL UNIQUE,
        quota_bytes INTEGER NOT NULL CHECK (quota_bytes >= 0),
        used_bytes  INTEGER NOT NULL DEFAULT 0 CHECK (used_bytes >= 0),
        retention   TEXT,
        created     INTEGER NOT NULL
    );
    CREATE TABLE devices (
        id            INTEGER PRIMARY KEY,
        subscriber_id INTEGER NOT NULL REFERENCES subscribers(id),
        name          TEXT NOT NULL,
        role          TEXT NOT NULL CHECK (role IN ('backup', 'admin')),
        secret_hash   BLOB NOT NULL UNIQUE,
        created       INTEGER NOT NULL,
        revoked       INTEGER,
        last_backup   INTEGER,
        UNIQUE (subscriber_id, name)
    );
    CREATE TABLE keys (
        subscriber_id INTEGER PRIMARY KEY REFERENCES subscribers(id),
        key_file      BLOB NOT NULL
    );
    CREATE TABLE packs (
        id            INTEGER PRIMARY KEY,
        subscriber_id INTEGER NOT NULL REFERENCES subscribers(id),
        name          TEXT NOT NULL,
        size          INTEGER NOT NULL,
        created       INTEGER NOT NULL,
        UNIQUE (subscriber_id, name)
    );
    CREATE TABLE chunks (
        subscriber_id INTEGER NOT NULL,
        id            BLOB NOT NULL,
        pack_id       INTEGER NOT NULL REFERENCES packs(id),
        offset        INTEGER NOT NULL,
        length        INTEGER NOT NULL,
        checksum      BLOB NOT NULL,
        PRIMARY KEY (subscriber_id, id)
    ) WITHOUT ROWID;
    CREATE INDEX chunks_by_pack ON chunks (pack_id);
    CREATE TABLE snapshots (
        subscriber_id  INTEGER NOT NULL REFERENCES subscribers(id),
        id             BLOB NOT NULL,
        device_id      INTEGER NOT NULL REFERENCES devices(id),
        time           INTEGER NOT NULL,
        logical_bytes  INTEGER NOT NULL,
        file_count     INTEGER NOT NULL,
        manifest_bytes INTEGER NOT NULL,
        PRIMARY KEY (subscriber_id, id)
    ) WITHOUT ROWID;
    CREATE INDEX snapshots_by_time ON snapshots (subscriber_id, time);
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO meta (key, value) VALUES ('gc_epoch', 0);
    ",
    // Version 2: the commit order of a subscriber's snapshots, so that
    // snapshots of the same second (times are kept in seconds) have an order.
    "
    ALTER TABLE snapshots ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
    ",
    // Version 3: what garbage collection needs to run beside backups. The
    // sessions that may upload or have been told a chunk exists (a row from
    // their first has-chunks or put until they end), a counter of such
    // sessions and commits per subscriber (a sweep stops if it moved since
    // the mark), and the last run of each maintenance task (for /metrics).
    "
    CREATE TABLE sessions (
        id            INTEGER PRIMARY KEY,
        subscriber_id INTEGER NOT NULL REFERENCES subscribers(id),
        device_id     INTEGER NOT NULL REFERENCES devices(id),
        started       INTEGER NOT NULL
    );
    CREATE INDEX sessions_by_subscriber ON sessions (subscriber_id);
    ALTER TABLE subscribers ADD COLUMN activity INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE maintenance (
        task     TEXT PRIMARY KEY,
        started  INTEGER NOT NULL,
        seconds  REAL NOT NULL,
        ok       INTEGER NOT NULL
    ) WITHOUT ROWID;
    ",
];

/// The newest schema version this build knows.
pub(crate) fn supported_version() -> u32 {
    MIGRATIONS.len() as u32
}

/// The catalogue of one data directory.
#[derive(Debug)]
pub(crate) struct Catalog {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Readers>,
    reader_free: Condvar,
}

/// A read connection taken from the pool; given back when dropped, even if
/// the read panicked (its transaction is rolled back first).
struct Lease<'a> {
    catalog: &'a Catalog,
    conn: Option<Connection>,
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            lock(&self.catalog.readers).idle.push(conn);
            self.catalog.reader_free.notify_one();
        }
    }
}

/// The read connection pool.
#[derive(Debug, Default)]
struct Readers {
    idle: Vec<Connection>,
    /// Connections open (idle or in use).
    open: usize,
}

fn connect(path: &Path, create: bool) -> rusqlite::Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl Catalog {
    /// Opens (or with `create`, creates) the catalogue at `path` and brings
    /// its schema up to date.
    pub(crate) fn open(path: &Path, create: bool) -> Result<Catalog> {
        let at = |e: Error| e.at_catalogue(path);
        let mut writer = connect(path, create).map_err(|e| at(e.into()))?;
        let mode: String = writer
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(|e| at(e.into()))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Corrupt(format!(
                "the catalogue {} cannot use write-ahead logging (journal mode {mode}): \
                 keep the data directory on a local file system",
                path.display()
            )));
        }
        // Statement journals (each UPDATE of a chunk row under a foreign key
        // keeps one) in memory rather than in temporary files: they hold a
        // statement's changes, a few pages.
        writer
            .pragma_update(None, "temp_store", "MEMORY")
            .map_err(|e| at(e.into()))?;
        migrate(&mut writer).map_err(at)?;
        Ok(Catalog {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers: Mutex::default(),
            reader_free: Condvar::new(),
        })
    }

    /// Runs `f` in a read transaction on a pooled read connection.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut lease = Lease {
            catalog: self,
            conn: Some(self.take_reader()?),
        };
        let conn = lease.conn.as_mut().unwrap();
        let result = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
            let value = f(&tx)?;
            tx.finish()?;
            Ok(value)
        })();
        drop(lease);
        result.map_err(|e: Error| e.at_catalogue(&self.path))
    }

    /// An idle read connection, a new one if fewer than [`MAX_READERS`] are
    /// open, else the next one returned.
    fn take_reader(&self) -> Result<Connection> {
        let mut readers = lock(&self.readers);
        loop {
            if let Some(conn) = readers.idle.pop() {
                return Ok(conn);
            }
            if readers.open < MAX_READERS {
                readers.open += 1;
                break;
            }
            readers = self
                .reader_free
                .wait(readers)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        drop(readers);
        connect(&self.path, false)
            .and_then(|c| c.pragma_update(None, "query_only", true).map(|()| c))
            .map_err(|e| {
                lock(&self.readers).open -= 1;
                self.reader_free.notify_one();
                Error::from(e).at_catalogue(&self.path)
            })
    }

    /// Runs `f` in an `IMMEDIATE` write transaction, committed if `f` returns
    /// `Ok`, rolled back otherwise.
    pub(crate) fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = lock(&self.writer);
        let result = (|| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        })();
        result.map_err(|e: Error| e.at_catalogue(&self.path))
    }

    // ---------------------------------------------------------------- admin

    pub(crate) fn insert_subscriber(
        &self,
        name: &str,
        quota: i64,
        retention: Option<&str>,
        now: i64,
    ) -> Result<i64> {
        self.write(|tx| {
            if subscriber_id(tx, name)?.is_some() {
                return Err(Error::AlreadyExists {
                    what: format!("subscriber {name:?}"),
                });
            }
            tx.execute(
                "INSERT INTO subscribers (name, quota_bytes, retention, created) VALUES (?1, ?2, ?3, ?4)",
                params![name, quota, retention, now],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// `retention`: `None` leaves it, `Some(None)` resets it to the default.
    pub(crate) fn update_subscriber(
        &self,
        name: &str,
        quota: Option<i64>,
        retention: Option<Option<&str>>,
    ) -> Result<()> {
        self.write(|tx| {
            let id = subscriber_id(tx, name)?
                .ok_or_else(|| Error::not_found(format!("subscriber {name:?}")))?;
            if let Some(q) = quota {
                tx.execute(
                    "UPDATE subscribers SET quota_bytes = ?2 WHERE id = ?1",
                    params![id, q],
                )?;
            }
            if let Some(r) = retention {
                tx.execute(
                    "UPDATE subscribers SET retention = ?2 WHERE id = ?1",
                    params![id, r],
                )?;
            }
            Ok(())
        })
    }

    /// One subscriber with its counters (index lookups only).
    pub(crate) fn subscriber(&self, name: &str) -> Result<SubscriberInfo> {
        self.read(|tx| {
            tx.prepare_cached(
                "SELECT s.name, s.quota_bytes, s.used_bytes, s.retention, s.created,
                        (SELECT COUNT(*) FROM snapshots WHERE subscriber_id = s.id),
                        (SELECT TOTAL(logical_bytes) FROM snapshots WHERE subscriber_id = s.id),
                        (SELECT COUNT(*) FROM devices WHERE subscriber_id = s.id AND revoked IS NULL),
                        (SELECT MAX(last_backup) FROM devices WHERE subscriber_id = s.id)
                 FROM subscribers s WHERE s.name = ?1",
            )?
            .query_row([name], summary_row)
            .optional()?
            .map(|s| s.info())
            .ok_or_else(|| Error::not_found(format!("subscriber {name:?}")))
        })
    }

    /// Every subscriber with its counters, by name: one query, one pass over
    /// each table (`GROUP BY`), no per-subscriber loop.
    pub(crate) fn summaries(&self) -> Result<Vec<Summary>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT s.name, s.quota_bytes, s.used_bytes, s.retention, s.created,
                        COALESCE(sn.n, 0), COALESCE(sn.logical, 0.0),
                        COALESCE(d.active, 0), d.last_backup
                 FROM subscribers s
                 LEFT JOIN (SELECT subscriber_id, COUNT(*) AS n, TOTAL(logical_bytes) AS logical
                            FROM snapshots GROUP BY subscriber_id) sn ON sn.subscriber_id = s.id
                 LEFT JOIN (SELECT subscriber_id, SUM(revoked IS NULL) AS active,
                                   MAX(last_backup) AS last_backup
                            FROM devices GROUP BY subscriber_id) d ON d.subscriber_id = s.id
                 ORDER BY s.name",
            )?;
            let rows = stmt.query_map([], summary_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    /// Every device with its backups, as (subscriber name, usage), ordered by
    /// subscriber and device name.
    pub(crate) fn device_usage(&self) -> Result<Vec<(String, DeviceUsage)>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT s.name, d.name, d.revoked IS NOT NULL, d.last_backup,
                        (SELECT COUNT(*) FROM snapshots sn
                          WHERE sn.subscriber_id = d.subscriber_id AND sn.device_id = d.id),
                        (SELECT sn.logical_bytes FROM snapshots sn
                          WHERE sn.subscriber_id = d.subscriber_id AND sn.device_id = d.id
                          ORDER BY sn.time DESC, sn.seq DESC LIMIT 1)
                 FROM devices d JOIN subscribers s ON s.id = d.subscriber_id
                 ORDER BY s.name, d.name",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    DeviceUsage {
                        name: r.get(1)?,
                        revoked: r.get(2)?,
                        last_backup: r.get(3)?,
                        snapshots: to_u64(r.get(4)?),
                        latest_bytes: to_u64(r.get::<_, Option<i64>>(5)?.unwrap_or(0)),
                    },
                ))
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    pub(crate) fn insert_device(
        &self,
        subscriber: &str,
        device: &str,
        role: Role,
        secret_hash: &[u8; 32],
        now: i64,
    ) -> Result<()> {
        self.write(|tx| {
            let sub = subscriber_id(tx, subscriber)?
                .ok_or_else(|| Error::not_found(format!("subscriber {subscriber:?}")))?;
            let exists: Option<i64> = tx
                .query_row(
                    "SELECT id FROM devices WHERE subscriber_id = ?1 AND name = ?2",
                    params![sub, device],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_some() {
                return Err(Error::AlreadyExists {
                    what: format!(
                        "device {device:?} of {subscriber:?} (revoked devices keep their name)"
                    ),
                });
            }
            tx.execute(
                "INSERT INTO devices (subscriber_id, name, role, secret_hash, created)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![sub, device, role.as_str(), &secret_hash[..], now],
            )?;
            Ok(())
        })
    }

    pub(crate) fn devices(&self, subscriber: Option<&str>) -> Result<Vec<DeviceInfo>> {
        self.read(|tx| {
            if let Some(name) = subscriber {
                if subscriber_id(tx, name)?.is_none() {
                    return Err(Error::not_found(format!("subscriber {name:?}")));
                }
            }
            let mut stmt = tx.prepare_cached(
                "SELECT s.name, d.name, d.role, d.created, d.revoked, d.last_backup
                 FROM devices d JOIN subscribers s ON s.id = d.subscriber_id
                 WHERE ?1 IS NULL OR s.name = ?1
                 ORDER BY s.name, d.name",
            )?;
            let rows = stmt.query_map([subscriber], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, Option<i64>>(5)?,
                ))
            })?;
            rows.map(|row| {
                let (subscriber, name, role, created, revoked, last_backup) = row?;
                Ok(DeviceInfo {
                    subscriber,
                    name,
                    role: parse_role(&role)?,
                    created,
                    revoked,
                    last_backup,
                })
            })
            .collect()
        })
    }

    pub(crate) fn revoke_device(&self, subscriber: &str, device: &str, now: i64) -> Result<()> {
        self.write(|tx| {
            let sub = subscriber_id(tx, subscriber)?
                .ok_or_else(|| Error::not_found(format!("subscriber {subscriber:?}")))?;
            let n = tx.execute(
                "UPDATE devices SET revoked = COALESCE(revoked, ?3)
                 WHERE subscriber_id = ?1 AND name = ?2",
                params![sub, device, now],
            )?;
            if n == 0 {
                return Err(Error::not_found(format!(
                    "device {device:?} of {subscriber:?}"
                )));
            }
            Ok(())
        })
    }

    /// The device whose secret hashes to `hash`.
    pub(crate) fn device_by_secret(&self, hash: &[u8; 32]) -> Result<Option<AuthRow>> {
        self.read(|tx| {
            let row = tx
                .prepare_cached(
                    "SELECT d.subscriber_id, s.name, d.id, d.name, d.role, d.revoked
                     FROM devices d JOIN subscribers s ON s.id = d.subscriber_id
                     WHERE d.secret_hash = ?1",
                )?
                .query_row([&hash[..]], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, Option<i64>>(5)?,
                    ))
                })
                .optional()?;
            row.map(
                |(subscriber_id, subscriber, device_id, device, role, revoked)| {
                    Ok(AuthRow {
                        subscriber_id,
                        subscriber,
                        device_id,
                        device,
                        role: parse_role(&role)?,
                        revoked: revoked.is_some(),
                    })
                },
            )
            .transpose()
        })
    }

    // ------------------------------------------------------------ data path

    /// For each id, whether subscriber `sub` has it in a sealed pack.
    pub(crate) fn has_chunks(&self, sub: i64, ids: &[ChunkId]) -> Result<Vec<bool>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(HAS_CHUNK)?;
            ids.iter()
                .map(|id| Ok(stmt.exists(params![sub, &id.as_bytes()[..]])?))
                .collect()
        })
    }

    /// What `put_chunk` needs: whether the chunk is stored, and
    /// `(quota_bytes, used_bytes)`.
    pub(crate) fn put_check(&self, sub: i64, id: &ChunkId) -> Result<(bool, u64, u64)> {
        self.read(|tx| {
            let stored = tx
                .prepare_cached(HAS_CHUNK)?
                .exists(params![sub, &id.as_bytes()[..]])?;
            let (quota, used) = quota_used(tx, sub)?;
            Ok((stored, quota, used))
        })
    }

    /// `(quota_bytes, used_bytes)` of subscriber `sub`.
    pub(crate) fn quota(&self, sub: i64) -> Result<(u64, u64)> {
        self.read(|tx| quota_used(tx, sub))
    }

    /// Records a sealed pack and its chunks, and adds its size to the
    /// subscriber's `used_bytes`, in one transaction. A chunk that another
    /// session stored meanwhile keeps its first copy (this one stays in the
    /// pack, unindexed, until a repack).
    pub(crate) fn insert_pack(
        &self,
        sub: i64,
        name: &str,
        size: u64,
        entries: &[PackEntry],
        now: i64,
    ) -> Result<()> {
        self.write(|tx| {
            let pack_id = add_pack_row(tx, sub, name, size, now)?;
            set_locations(tx, INSERT_LOCATION, sub, pack_id, entries.iter())
        })
    }

    pub(crate) fn snapshot_exists(&self, sub: i64, id: &ChunkId) -> Result<bool> {
        self.read(|tx| Ok(manifest_len(tx, sub, id)?.is_some()))
    }

    /// Counts the ids subscriber `sub` does not have, with the first of them,
    /// and the GC epoch the answer is valid for.
    pub(crate) fn missing_chunks(
        &self,
        sub: i64,
        ids: &[ChunkId],
    ) -> Result<(i64, u64, Option<ChunkId>)> {
        self.read(|tx| {
            let epoch = gc_epoch(tx)?;
            let (count, first) = missing(tx, sub, ids)?;
            Ok((epoch, count, first))
        })
    }

    /// Inserts a snapshot row, adds its manifest to `used_bytes` and sets the
    /// device's `last_backup`, in one transaction. If a GC sweep ran since
    /// `checked_epoch`, the chunks are checked again inside the transaction.
    pub(crate) fn insert_snapshot(
        &self,
        row: &SnapshotRow<'_>,
        checked_epoch: i64,
        now: i64,
    ) -> Result<CommitOutcome> {
        self.write(|tx| {
            if device_revoked(tx, row.subscriber_id, row.device_id)? {
                return Ok(CommitOutcome::Revoked);
            }
            if gc_epoch(tx)? != checked_epoch {
                if let (count @ 1.., Some(first)) = missing(tx, row.subscriber_id, row.chunks)? {
                    return Ok(CommitOutcome::Missing { count, first });
                }
            }
            add_snapshot_row(tx, row, now)?;
            Ok(CommitOutcome::Committed)
        })
    }

    pub(crate) fn snapshots(&self, sub: i64) -> Result<Vec<SnapshotInfo>> {
        self.read(|tx| {
            let mut stmt = tx.prepare_cached(
                "SELECT sn.id, sn.time, d.name, sn.logical_bytes, sn.file_count, sn.manifest_bytes
                 FROM snapshots sn JOIN devices d ON d.id = sn.device_id
                 WHERE sn.subscriber_id = ?1
                 ORDER BY sn.time, sn.seq, sn.id",
            )?;
            let rows = stmt.query_map([sub], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, i64>(4)?,
                    r.get::<_, i64>(5)?,
                ))
            })?;
            rows.map(|row| {
                let (id, time, device, logical, files, manifest) = row?;
                Ok(SnapshotInfo {
                    id: parse_id(id)?,
                    time,
                    device,
                    logical_bytes: to_u64(logical),
                    file_count: to_u64(files),
                    manifest_bytes: to_u64(manifest),
                })
            })
            .collect()
        })
    }

    /// The manifest size of snapshot `id` of subscriber `sub`, if it exists.
    pub(crate) fn manifest_len(&self, sub: i64, id: &ChunkId) -> Result<Option<u64>> {
        self.read(|tx| manifest_len(tx, sub, id))
    }

    /// Where chunk `id` of subscriber `sub` is: pack name, offset, length,
    /// checksum.
    pub(crate) fn chunk_location(&self, sub: i64, id: &ChunkId) -> Result<Option<Location>> {
        self.read(|tx| {
            let row = tx
                .prepare_cached(
                    "SELECT p.name, c.offset, c.length, c.checksum
                     FROM chunks c JOIN packs p ON p.id = c.pack_id
                     WHERE c.subscriber_id = ?1 AND c.id = ?2",
                )?
                .query_row(params![sub, &id.as_bytes()[..]], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, Vec<u8>>(3)?,
                    ))
                })
                .optional()?;
            row.map(|(pack, offset, length, checksum)| {
                Ok(Location {
                    pack,
                    entry: pack_entry(*id, offset, length, checksum)?,
                })
            })
            .transpose()
        })
    }

    /// Removes snapshot `id` and lowers `used_bytes` by its manifest size.
    pub(crate) fn delete_snapshot(
        &self,
        sub: i64,
        device: i64,
        id: &ChunkId,
    ) -> Result<DeleteOutcome> {
        self.write(|tx| {
            if device_revoked(tx, sub, device)? {
                return Ok(DeleteOutcome::Revoked);
            }
            Ok(if delete_snapshot_row(tx, sub, id)? {
                DeleteOutcome::Deleted
            } else {
                DeleteOutcome::NotFound
            })
        })
    }

    /// The id of the subscriber called `name`.
    pub(crate) fn subscriber_id_of(&self, name: &str) -> Result<i64> {
        self.read(|tx| {
            subscriber_id(tx, name)?.ok_or_else(|| Error::not_found(format!("subscriber {name:?}")))
        })
    }

    /// Removes snapshot `id` on the server's own authority (retention),
    /// lowering `used_bytes` by its manifest size. False if it was not there.
    pub(crate) fn delete_snapshot_by_server(&self, sub: i64, id: &ChunkId) -> Result<bool> {
        self.write(|tx| delete_snapshot_row(tx, sub, id))
    }

    pub(crate) fn key(&self, sub: i64) -> Result<Option<Vec<u8>>> {
        self.read(|tx| {
            Ok(tx
                .prepare_cached("SELECT key_file FROM keys WHERE subscriber_id = ?1")?
                .query_row([sub], |r| r.get(0))
                .optional()?)
        })
    }

    /// Stores the key file unless one is there (then returns the stored one).
    pub(crate) fn insert_key(&self, sub: i64, key_file: &[u8]) -> Result<Option<Vec<u8>>> {
        self.write(|tx| {
            let existing: Option<Vec<u8>> = tx
                .query_row(
                    "SELECT key_file FROM keys WHERE subscriber_id = ?1",
                    [sub],
                    |r| r.get(0),
                )
                .optional()?;
            if existing.is_none() {
                tx.execute(
                    "INSERT INTO keys (subscriber_id, key_file) VALUES (?1, ?2)",
                    params![sub, key_file],
                )?;
            }
            Ok(existing)
        })
    }

    pub(crate) fn status(&self, sub: i64, device: i64) -> Result<Status> {
        self.read(|tx| {
            tx.prepare_cached(
                "SELECT s.name, d.name, s.quota_bytes, s.used_bytes,
                        (SELECT COUNT(*) FROM snapshots WHERE subscriber_id = s.id),
                        d.last_backup
                 FROM subscribers s JOIN devices d ON d.subscriber_id = s.id
                 WHERE s.id = ?1 AND d.id = ?2",
            )?
            .query_row([sub, device], |r| {
                Ok(Status {
                    subscriber: r.get(0)?,
                    device: r.get(1)?,
                    quota_bytes: to_u64(r.get(2)?),
                    used_bytes: to_u64(r.get(3)?),
                    snapshots: to_u64(r.get(4)?),
                    last_backup: r.get(5)?,
                })
            })
            .optional()?
            .ok_or_else(|| Error::not_found("this device"))
        })
    }
}

impl Catalog {
    // ------------------------------------------------- sessions and GC

    /// Records that a session of `device` may upload or learn which chunks
    /// exist; returns the row id to pass to [`Catalog::end_session`].
    pub(crate) fn begin_session(&self, sub: i64, device: i64, now: i64) -> Result<i64> {
        self.write(|tx| {
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
        self.write(|tx| {
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

    /// Calls `f(id, pack id, length)` for every chunk of subscriber `sub`, in
    /// increasing id order (the table's key order: no sort, no memory).
    pub(crate) fn scan_chunks(
        &self,
        sub: i64,
        mut f: impl FnMut(&[u8; 32], i64, u64) -> Result<()>,
    ) -> Result<()> {
        self.read(|tx| {
            let mut stmt = tx.prepare(
                "SELECT id, pack_id, length FROM chunks WHERE subscriber_id = ?1 ORDER BY id",
            )?;
            let mut rows = stmt.query([sub])?;
            while let Some(r) = rows.next()? {
                let id = r.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
                let id: &[u8; 32] = id.try_into().map_err(|_| {
                    Error::Corrupt(format!("the catalogue holds a {}-byte chunk id", id.len()))
                })?;
                f(id, r.get(1)?, to_u64(r.get(2)?))?;
            }
            Ok(())
        })
    }

    /// Deletes chunk rows of subscriber `sub`. With `activity_at_mark` (a
    /// GC sweep), deletes nothing if a session opened or a snapshot was
    /// committed since the mark (`activity` moved) or a session is open;
    /// without (verify's quarantine of damaged chunks), always. Bumps the GC
    /// epoch, so that a commit that checked its chunks before re-checks them.
    pub(crate) fn delete_chunks(
        &self,
        sub: i64,
        activity_at_mark: Option<i64>,
        ids: &[ChunkId],
    ) -> Result<SweepOutcome> {
        self.write(|tx| {
            if let Some(mark) = activity_at_mark {
                if activity(tx, sub)? != mark || !open_sessions(tx, sub)?.is_empty() {
                    return Ok(SweepOutcome::Busy);
                }
            }
            let mut stmt =
                tx.prepare_cached("DELETE FROM chunks WHERE subscriber_id = ?1 AND id = ?2")?;
            let mut deleted = 0;
            for id in ids {
                deleted += stmt.execute(params![sub, &id.as_bytes()[..]])?;
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

    /// The chunks still stored in pack `pack`, in pack order.
    pub(crate) fn pack_chunks(&self, sub: i64, pack: i64) -> Result<Vec<PackEntry>> {
        self.read(|tx| {
            tx.prepare_cached(
                "SELECT id, offset, length, checksum FROM chunks
                 WHERE subscriber_id = ?1 AND pack_id = ?2 ORDER BY offset",
            )?
            .query_map([sub, pack], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Vec<u8>>(3)?,
                ))
            })?
            .map(|row| {
                let (id, offset, length, checksum) = row?;
                pack_entry(parse_id(id)?, offset, length, checksum)
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
        old: &[PackRow],
        now: i64,
    ) -> Result<()> {
        self.write(|tx| {
            let pack_id = add_pack_row(tx, sub, new.0, new.1, now)?;
            // In key order: each page of the chunk table is visited once.
            let mut sorted: Vec<&PackEntry> = entries.iter().collect();
            sorted.sort_unstable_by_key(|e| e.id);
            set_locations(tx, MOVE_LOCATION, sub, pack_id, sorted.into_iter())?;
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

impl Catalog {
    // ------------------------------------------------------------ accounts

    /// Subscriber `sub`'s row and its devices' rows, for its account file.
    pub(crate) fn account(&self, sub: i64) -> Result<Account> {
        self.read(|tx| {
            let mut account = tx
                .prepare_cached(
                    "SELECT id, name, quota_bytes, retention, created FROM subscribers WHERE id = ?1",
                )?
                .query_row([sub], |r| {
                    Ok(Account {
                        version: ACCOUNT_VERSION,
                        id: r.get(0)?,
                        name: r.get(1)?,
                        quota_bytes: r.get(2)?,
                        retention: r.get(3)?,
                        created: r.get(4)?,
                        devices: Vec::new(),
                    })
                })
                .optional()?
                .ok_or_else(|| Error::not_found(format!("subscriber #{sub}")))?;
            account.devices = tx
                .prepare_cached(
                    "SELECT id, name, role, secret_hash, created, revoked FROM devices
                     WHERE subscriber_id = ?1 ORDER BY id",
                )?
                .query_map([sub], |r| {
                    Ok(AccountDevice {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        role: r.get(2)?,
                        secret_hash: hex::encode(r.get::<_, Vec<u8>>(3)?),
                        created: r.get(4)?,
                        revoked: r.get(5)?,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
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
                "INSERT INTO subscribers (id, name, quota_bytes, retention, created)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![a.id, a.name, a.quota_bytes, a.retention, a.created],
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
                    "INSERT INTO devices (id, subscriber_id, name, role, secret_hash, created, revoked)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    params![d.id, a.id, d.name, d.role, hash, d.created, d.revoked],
                )?;
            }
            Ok(())
        })
    }

    /// Records a snapshot found on disk (a catalogue rebuild): after every
    /// snapshot recorded before it, counted in `used_bytes`; the device's
    /// last backup becomes at least its time.
    pub(crate) fn restore_snapshot(&self, row: &SnapshotRow<'_>) -> Result<()> {
        self.write(|tx| add_snapshot_row(tx, row, row.time).map(drop))
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
    pub(crate) devices: Vec<AccountDevice>,
}

/// A device in an account file. Only the hash of its secret is kept, as in
/// the catalogue.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub(crate) struct AccountDevice {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) role: String,
    pub(crate) secret_hash: String,
    pub(crate) created: i64,
    pub(crate) revoked: Option<i64>,
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

/// Inserts a chunk's location (the first copy catalogued wins).
const INSERT_LOCATION: &str =
    "INSERT OR IGNORE INTO chunks (subscriber_id, id, pack_id, offset, length, checksum)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
/// Moves a chunk to another pack (repack). Same parameters as
/// [`INSERT_LOCATION`].
const MOVE_LOCATION: &str =
    "UPDATE chunks SET pack_id = ?3, offset = ?4, length = ?5, checksum = ?6
     WHERE subscriber_id = ?1 AND id = ?2";

/// Records a sealed pack's row and adds its size to `used_bytes`; returns
/// its row id.
fn add_pack_row(tx: &Transaction<'_>, sub: i64, name: &str, size: u64, now: i64) -> Result<i64> {
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

/// Runs `sql` ([`INSERT_LOCATION`] or [`MOVE_LOCATION`]) for each entry of
/// pack `pack_id`.
fn set_locations<'a>(
    tx: &Transaction<'_>,
    sql: &str,
    sub: i64,
    pack_id: i64,
    entries: impl Iterator<Item = &'a PackEntry>,
) -> Result<()> {
    let mut stmt = tx.prepare_cached(sql)?;
    for e in entries {
        stmt.execute(params![
            sub,
            &e.id.as_bytes()[..],
            pack_id,
            to_i64(e.offset),
            e.length,
            &e.checksum[..]
        ])?;
    }
    Ok(())
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

const HAS_CHUNK: &str = "SELECT 1 FROM chunks WHERE subscriber_id = ?1 AND id = ?2";

/// Brings the schema to the newest version, one migration per step, in one
/// `IMMEDIATE` transaction (two processes opening at once do not both migrate).
fn migrate(conn: &mut Connection) -> Result<()> {
    let supported = supported_version();
    let version = |c: &Connection| -> rusqlite::Result<u32> {
        c.pragma_query_value(None, "user_version", |r| r.get(0))
    };
    let found = version(conn)?;
    if found > supported {
        return Err(Error::UnsupportedSchema { found, supported });
    }
    if found == supported {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found = version(&tx)?;
    if found > supported {
        return Err(Error::UnsupportedSchema { found, supported });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i as u32 + 1)?;
    }
    tx.commit()?;
    Ok(())
}

/// A subscriber and its counters, as the summary queries return it.
#[derive(Debug)]
pub(crate) struct Summary {
    name: String,
    quota: i64,
    used: i64,
    retention: Option<String>,
    created: i64,
    snapshots: i64,
    logical: f64,
    devices: i64,
    last_backup: Option<i64>,
}

impl Summary {
    pub(crate) fn info(self) -> SubscriberInfo {
        SubscriberInfo {
            name: self.name,
            quota_bytes: to_u64(self.quota),
            used_bytes: to_u64(self.used),
            retention: self.retention,
            snapshots: to_u64(self.snapshots),
            devices: to_u64(self.devices),
            last_backup: self.last_backup,
            created: self.created,
        }
    }

    pub(crate) fn usage(self) -> Usage {
        Usage {
            name: self.name,
            quota_bytes: to_u64(self.quota),
            used_bytes: to_u64(self.used),
            snapshots: to_u64(self.snapshots),
            // Saturating: the logical sizes are what clients report.
            logical_bytes: self.logical as u64,
            last_backup: self.last_backup,
            devices: to_u64(self.devices),
            protected_bytes: 0,
            device_backups: Vec::new(),
        }
    }
}

fn summary_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Summary> {
    Ok(Summary {
        name: r.get(0)?,
        quota: r.get(1)?,
        used: r.get(2)?,
        retention: r.get(3)?,
        created: r.get(4)?,
        snapshots: r.get(5)?,
        logical: r.get(6)?,
        devices: r.get(7)?,
        last_backup: r.get(8)?,
    })
}

/// A device found by its secret.
#[derive(Debug)]
pub(crate) struct AuthRow {
    pub(crate) subscriber_id: i64,
    pub(crate) subscriber: String,
    pub(crate) device_id: i64,
    pub(crate) device: String,
    pub(crate) role: Role,
    pub(crate) revoked: bool,
}

/// Where a chunk is stored.
#[derive(Debug)]
pub(crate) struct Location {
    /// The pack's name.
    pub(crate) pack: String,
    /// Where in it.
    pub(crate) entry: PackEntry,
}

/// A chunk row's location columns, checked.
fn pack_entry(id: ChunkId, offset: i64, length: i64, checksum: Vec<u8>) -> Result<PackEntry> {
    let bad = || Error::Corrupt(format!("catalogue row of chunk {} is invalid", id.short()));
    Ok(PackEntry {
        id,
        offset: u64::try_from(offset).map_err(|_| bad())?,
        length: u32::try_from(length).map_err(|_| bad())?,
        checksum: checksum.try_into().map_err(|_| bad())?,
    })
}

/// A snapshot to insert.
#[derive(Debug)]
pub(crate) struct SnapshotRow<'a> {
    pub(crate) subscriber_id: i64,
    pub(crate) id: ChunkId,
    pub(crate) device_id: i64,
    pub(crate) time: i64,
    pub(crate) logical_bytes: u64,
    pub(crate) file_count: u64,
    pub(crate) manifest_bytes: u64,
    /// The chunks it references (checked again if a GC ran meanwhile).
    pub(crate) chunks: &'a [ChunkId],
}

/// How [`Catalog::insert_snapshot`] ended.
#[derive(Debug)]
pub(crate) enum CommitOutcome {
    /// The snapshot is in the catalogue (inserted now or already there).
    Committed,
    /// The device was revoked meanwhile; nothing was written.
    Revoked,
    /// A GC removed chunks meanwhile; nothing was written.
    Missing { count: u64, first: ChunkId },
}

/// How [`Catalog::delete_snapshot`] ended.
#[derive(Debug)]
pub(crate) enum DeleteOutcome {
    Deleted,
    NotFound,
    Revoked,
}

/// Inserts a snapshot row after the subscriber's others (`seq`), adds its
/// manifest to `used_bytes` and counts it in `activity` if it is new, and
/// makes the device's `last_backup` at least `backup_time`. Returns whether
/// the row is new.
fn add_snapshot_row(tx: &Transaction<'_>, row: &SnapshotRow<'_>, backup_time: i64) -> Result<bool> {
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO snapshots
           (subscriber_id, id, device_id, time, logical_bytes, file_count, manifest_bytes, seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,
                 (SELECT COALESCE(MAX(seq), 0) + 1 FROM snapshots WHERE subscriber_id = ?1))",
        params![
            row.subscriber_id,
            &row.id.as_bytes()[..],
            row.device_id,
            row.time,
            to_i64(row.logical_bytes),
            to_i64(row.file_count),
            to_i64(row.manifest_bytes)
        ],
    )? == 1;
    if inserted {
        tx.execute(
            "UPDATE subscribers SET used_bytes = used_bytes + ?2, activity = activity + 1
             WHERE id = ?1",
            params![row.subscriber_id, to_i64(row.manifest_bytes)],
        )?;
    }
    tx.execute(
        "UPDATE devices SET last_backup = MAX(COALESCE(last_backup, ?2), ?2) WHERE id = ?1",
        params![row.device_id, backup_time],
    )?;
    Ok(inserted)
}

/// Deletes a snapshot's row and lowers `used_bytes` by its manifest size;
/// false if there was no such snapshot.
fn delete_snapshot_row(tx: &Transaction<'_>, sub: i64, id: &ChunkId) -> Result<bool> {
    let Some(len) = manifest_len(tx, sub, id)? else {
        return Ok(false);
    };
    tx.execute(
        "DELETE FROM snapshots WHERE subscriber_id = ?1 AND id = ?2",
        params![sub, &id.as_bytes()[..]],
    )?;
    tx.execute(
        "UPDATE subscribers SET used_bytes = MAX(used_bytes - ?2, 0) WHERE id = ?1",
        params![sub, to_i64(len)],
    )?;
    Ok(true)
}

fn subscriber_id(tx: &Transaction<'_>, name: &str) -> rusqlite::Result<Option<i64>> {
    tx.prepare_cached("SELECT id FROM subscribers WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()
}

fn quota_used(tx: &Transaction<'_>, sub: i64) -> Result<(u64, u64)> {
    tx.prepare_cached("SELECT quota_bytes, used_bytes FROM subscribers WHERE id = ?1")?
        .query_row([sub], |r| Ok((to_u64(r.get(0)?), to_u64(r.get(1)?))))
        .optional()?
        .ok_or_else(|| Error::not_found("this subscriber"))
}

fn device_revoked(tx: &Transaction<'_>, sub: i64, device: i64) -> Result<bool> {
    let revoked: Option<Option<i64>> = tx
        .prepare_cached("SELECT revoked FROM devices WHERE id = ?1 AND subscriber_id = ?2")?
        .query_row([device, sub], |r| r.get(0))
        .optional()?;
    match revoked {
        None => Err(Error::not_found("this device")),
        Some(r) => Ok(r.is_some()),
    }
}

fn manifest_len(tx: &Transaction<'_>, sub: i64, id: &ChunkId) -> Result<Option<u64>> {
    Ok(tx
        .prepare_cached(
            "SELECT manifest_bytes FROM snapshots WHERE subscriber_id = ?1 AND id = ?2",
        )?
        .query_row(params![sub, &id.as_bytes()[..]], |r| r.get::<_, i64>(0))
        .optional()?
        .map(to_u64))
}

fn gc_epoch(tx: &Transaction<'_>) -> Result<i64> {
    Ok(tx
        .prepare_cached("SELECT value FROM meta WHERE key = 'gc_epoch'")?
        .query_row([], |r| r.get(0))?)
}

fn missing(tx: &Transaction<'_>, sub: i64, ids: &[ChunkId]) -> Result<(u64, Option<ChunkId>)> {
    let mut stmt = tx.prepare_cached(HAS_CHUNK)?;
    let mut count = 0;
    let mut first = None;
    for id in ids {
        if !stmt.exists(params![sub, &id.as_bytes()[..]])? {
            count += 1;
            first.get_or_insert(*id);
        }
    }
    Ok((count, first))
}

fn parse_role(s: &str) -> Result<Role> {
    s.parse()
        .map_err(|_| Error::Corrupt(format!("the catalogue holds an unknown device role {s:?}")))
}

fn parse_id(bytes: Vec<u8>) -> Result<ChunkId> {
    let b: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
        Error::Corrupt(format!("the catalogue holds a {}-byte id", b.len()))
    })?;
    Ok(ChunkId::from_bytes(b))
}

/// SQLite integers are signed: sizes above `i64::MAX` (never real) saturate.
fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_newer_schema_is_refused_with_an_upgrade_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.sqlite");
        drop(Catalog::open(&path, true).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", supported_version() + 1)
            .unwrap();
        drop(conn);
        let e = Catalog::open(&path, false).unwrap_err();
        assert!(
            matches!(e, Error::UnsupportedSchema { found, supported } if found == supported + 1),
            "{e:?}"
        );
        assert!(e.to_string().contains("upgrade coffre-server"), "{e}");
    }

    #[test]
    fn migrations_run_once_and_set_the_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("catalog.sqlite");
        drop(Catalog::open(&path, true).unwrap());
        // Reopening does not re-run version 1 (it would fail: tables exist).
        let c = Catalog::open(&path, false).unwrap();
        let v: u32 = lock(&c.writer)
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v, supported_version());
        let mode: String = lock(&c.writer)
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn reads_share_a_bounded_pool() {
        let dir = tempfile::tempdir().unwrap();
        let c = std::sync::Arc::new(Catalog::open(&dir.path().join("c.sqlite"), true).unwrap());
        let threads: Vec<_> = (0..4 * MAX_READERS)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || {
                    for _ in 0..20 {
                        assert!(c.summaries().unwrap().is_empty());
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        let readers = lock(&c.readers);
        assert!(readers.open <= MAX_READERS && readers.open == readers.idle.len());
    }

    #[test]
    fn every_data_query_is_scoped_by_subscriber() {
        // Invariant 4, checked on the text: every statement that touches
        // chunks or snapshots names subscriber_id.
        let src = include_str!("catalog.rs");
        let body = &src[..src.find("#[cfg(test)]").unwrap()];
        for stmt in body.split('"').filter(|s| {
            let s = s.to_ascii_uppercase();
            (s.contains("SELECT") || s.contains("DELETE") || s.contains("INSERT"))
                && (s.contains("FROM CHUNKS") || s.contains("FROM SNAPSHOTS"))
        }) {
            assert!(stmt.contains("subscriber_id"), "unscoped query: {stmt}");
        }
    }
}
