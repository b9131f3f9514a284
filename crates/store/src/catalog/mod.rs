//! The catalogue: `catalog.sqlite`, an index of subscribers, devices, packs,
//! chunks and snapshots. **All SQL of the crate is in this module** (its
//! files, below).
//!
//! - The file is created owner-only (0600) before SQLite opens it, so its
//!   `-wal` and `-shm` (which SQLite creates with the main file's mode) are
//!   private too (issue 17).
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
//!   migrations ([`schema::MIGRATIONS`]); a catalogue newer than this build is
//!   refused.
//!
//! The catalogue is an index, not the only truth (invariant 9): packs and
//! manifests describe themselves and the key file is also kept as a file, so
//! the `packs`, `chunks`, `snapshots` and `keys` rows can be rebuilt from the
//! data directory.
//!
//! One file per section, as the methods were grouped (each adds an
//! `impl Catalog` block):
//!
//! | file | what |
//! | --- | --- |
//! | `mod.rs` | [`Catalog`]: open, the writer, the reader pool, `read` and `write` transactions |
//! | `schema.rs` | the forward-only migrations and `migrate` |
//! | `admin.rs` | subscribers, devices, authentication, usage summaries |
//! | `credentials.rs` | a device's pending and retired secrets (rolling credentials) |
//! | `data.rs` | the data path: has/put checks, packs, snapshots, chunk locations, status |
//! | `keys.rs` | the subscriber's key file: stored once, read, replaced by compare-and-swap |
//! | `gc.rs` | sessions, garbage collection, repack, maintenance runs |
//! | `accounts.rs` | account files and what a catalogue rebuild writes |
//! | `trust.rs` | dedup trust: copies of a chunk, their writers, vouches, disputes (issue 17) |
//! | `rows.rs` | the row helpers more than one section uses (conversions, pack rows) |
//!
//! A helper used by one section stays in its file. Every type a caller
//! outside the catalogue names is re-exported here.

mod accounts;
mod admin;
mod credentials;
mod data;
mod gc;
mod history;
mod keys;
mod rows;
mod schema;
mod service;
mod trust;

use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::error::{Error, Result};
use crate::pending::lock;

pub(crate) use accounts::{Account, Restored, RestoredPack};
pub(crate) use credentials::{Installed, Presented};
pub(crate) use data::{CommitOutcome, DeleteOutcome, SnapshotRow};
pub(crate) use gc::{PackRow, SweepOutcome};
pub(crate) use keys::KeySwap;
pub(crate) use rows::Location;

/// How long a connection waits for another process's lock before failing.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// SQLite's default auto-checkpoint threshold (pages of WAL), restored
/// after an unflushed write turned it off.
const AUTOCHECKPOINT_PAGES: i64 = 1000;
/// Read connections open at most; a read waits for a free one beyond that
/// (reads are short, and this bounds memory and file handles however many
/// blocking threads the daemon runs).
const MAX_READERS: usize = 8;

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
        if create {
            // Owner-only from the start: SQLite gives the -wal and -shm
            // files the main file's mode, so they are private too.
            crate::durable::private_options()
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|e| Error::io(path, e))?;
        }
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
        schema::migrate(&mut writer).map_err(at)?;
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
        transact(&mut lock(&self.writer), f).map_err(|e| e.at_catalogue(&self.path))
    }

    /// Like [`Catalog::write`], but the commit does not wait for the disk
    /// (`synchronous = OFF` for this one transaction): for rows that a
    /// power cut may lose without harm, such as the open sessions (the
    /// daemon clears them when it starts). The write-ahead log is written
    /// in order, so the next durable commit makes this one durable too, and
    /// a power cut loses at most these rows, never an earlier durable one.
    /// Spares a request the wait for the disk's flush.
    ///
    /// The auto-checkpoint is off for this transaction: a checkpoint run
    /// with `synchronous = OFF` copies the log into the database file
    /// without flushing it yet marks the log as copied, and the next writer
    /// may then start the log over, so a power cut could lose rows that
    /// were durable before (SQLite's `walCheckpoint` syncs the database only
    /// with sync flags). The next durable commit checkpoints, flushed.
    pub(crate) fn write_unsynced<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut conn = lock(&self.writer);
        let result = conn
            .pragma_update(None, "wal_autocheckpoint", 0)
            .and_then(|()| conn.pragma_update(None, "synchronous", "OFF"))
            .map_err(Error::from)
            .and_then(|()| transact(&mut conn, f));
        // Whatever happened, every other write stays durable.
        let restored = conn
            .pragma_update(None, "synchronous", "FULL")
            .and_then(|()| conn.pragma_update(None, "wal_autocheckpoint", AUTOCHECKPOINT_PAGES));
        let result = result.and_then(|v| restored.map(|()| v).map_err(Error::from));
        result.map_err(|e| e.at_catalogue(&self.path))
    }
}

/// Runs `f` in an `IMMEDIATE` transaction on `conn`, committed if `f`
/// returns `Ok`, rolled back otherwise.
fn transact<T>(conn: &mut Connection, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let value = f(&tx)?;
    tx.commit()?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unflushed write, whether it commits or fails, leaves the writer
    /// flushing every later commit (`synchronous = FULL`, 2).
    #[test]
    fn an_unsynced_write_leaves_the_writer_durable() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(&dir.path().join("c.sqlite"), true).unwrap();
        let synchronous = |c: &Catalog| -> i64 {
            lock(&c.writer)
                .pragma_query_value(None, "synchronous", |r| r.get(0))
                .unwrap()
        };
        let autocheckpoint = |c: &Catalog| -> i64 {
            lock(&c.writer)
                .pragma_query_value(None, "wal_autocheckpoint", |r| r.get(0))
                .unwrap()
        };
        assert_eq!(synchronous(&c), 2);
        assert_eq!(autocheckpoint(&c), AUTOCHECKPOINT_PAGES);
        c.write_unsynced(|tx| {
            tx.execute("CREATE TABLE t (x)", [])?;
            Ok(())
        })
        .unwrap();
        assert_eq!(synchronous(&c), 2);
        let failed = c.write_unsynced(|tx| {
            tx.execute("INSERT INTO t VALUES (1)", [])?;
            Err::<(), _>(Error::Corrupt("on purpose".into()))
        });
        assert!(failed.is_err());
        assert_eq!(synchronous(&c), 2);
        assert_eq!(autocheckpoint(&c), AUTOCHECKPOINT_PAGES);
        let rows: i64 = lock(&c.writer)
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 0, "the failed write was rolled back");
    }

    /// An unflushed write never checkpoints (that checkpoint would copy the
    /// log into the database file unflushed); the next durable one does.
    /// Seen from the database file: its pages arrive there only through a
    /// checkpoint.
    #[test]
    fn an_unsynced_write_does_not_checkpoint_and_the_next_durable_one_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        let c = Catalog::open(&path, true).unwrap();
        c.write(|tx| {
            tx.execute("CREATE TABLE t (x BLOB)", [])?;
            Ok(())
        })
        .unwrap();
        lock(&c.writer)
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        let size = || std::fs::metadata(&path).unwrap().len();
        let before = size();
        // About 2,000 pages of log: twice the auto-checkpoint threshold.
        c.write_unsynced(|tx| {
            for _ in 0..1000 {
                tx.execute("INSERT INTO t VALUES (zeroblob(8000))", [])?;
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(size(), before, "the unflushed write was checkpointed");
        c.write(|tx| {
            tx.execute("INSERT INTO t VALUES (1)", [])?;
            Ok(())
        })
        .unwrap();
        assert!(
            size() > before + 4_000_000,
            "the durable write did not checkpoint"
        );
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
        // chunks, snapshots or vouches names subscriber_id.
        // All the files of this module, and no other: a file added to the
        // module and not to this list fails the test.
        let files = [
            ("accounts.rs", include_str!("accounts.rs")),
            ("admin.rs", include_str!("admin.rs")),
            ("credentials.rs", include_str!("credentials.rs")),
            ("data.rs", include_str!("data.rs")),
            ("gc.rs", include_str!("gc.rs")),
            ("history.rs", include_str!("history.rs")),
            ("keys.rs", include_str!("keys.rs")),
            ("mod.rs", include_str!("mod.rs")),
            ("rows.rs", include_str!("rows.rs")),
            ("schema.rs", include_str!("schema.rs")),
            ("service.rs", include_str!("service.rs")),
            ("trust.rs", include_str!("trust.rs")),
        ];
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/catalog");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let listed: Vec<&str> = files.iter().map(|(name, _)| *name).collect();
        assert_eq!(on_disk, listed, "update this list of the catalogue's files");
        let mut checked = 0;
        for (_, src) in files {
            let body = &src[..src.find("#[cfg(test)]").unwrap_or(src.len())];
            for stmt in body.split('"').filter(|s| {
                let s = s.to_ascii_uppercase();
                (s.contains("SELECT") || s.contains("DELETE") || s.contains("INSERT"))
                    && (s.contains("FROM CHUNKS")
                        || s.contains("FROM SNAPSHOTS")
                        || s.contains("FROM VOUCHES"))
            }) {
                assert!(stmt.contains("subscriber_id"), "unscoped query: {stmt}");
                checked += 1;
            }
        }
        assert!(
            checked > 0,
            "no statement found: the test reads the wrong files"
        );
    }
}
