//! coffre's server-side storage, with a synchronous API (no async; the only
//! network is the optional S3 backend of [`storage`]): the catalogue
//! (SQLite), pack files, snapshot manifests and quotas. The on-disk layout,
//! the schema and these rules are also in `docs/store.md`.
//!
//! - [`Store`] is the whole API: admin operations (subscribers, devices,
//!   usage), [`Store::authenticate`], and the data path, which takes the
//!   returned [`Session`] and is scoped by its subscriber (invariant 4).
//! - [`PackWriter`]: a session's open pack; blobs become durable and visible
//!   when it is sealed (explicitly, once full at 32 MiB, or by
//!   `commit_snapshot`). The store alone decides when a pack is full
//!   ([`PackWriter::is_full`]).
//! - [`SessionWriter`]: a connection's uploads as the daemon drives them: the
//!   open pack, and the full packs handed out ([`FullPack`]) to be sealed
//!   beside it, counted so that a commit waits for them.
//! - [`Clock`]: where the store's time comes from, given when it is opened
//!   ([`SystemClock`] by default, [`ManualClock`] in tests); nothing in this
//!   crate reads the wall clock itself.
//! - [`durable`] is the only module that makes bytes durable: temp file,
//!   fsync, rename, fsync of the directory; every file it creates is
//!   owner-only (0600, folders 0700) from creation, and [`permissions`]
//!   tightens a data directory made by an older release.
//! - `catalog` holds all the SQL (one file per section under `catalog/`);
//!   the pack format is in [`pack`]; every file and folder name of a data
//!   directory is in `layout`, which imports nothing of the crate.
//!
//! # What makes a commit safe (invariant 2)
//!
//! 1. A pack is written to `.<name>.pack.tmp`, fsync'd, renamed, and its
//!    directory fsync'd **before** its chunks enter the catalogue. A chunk row
//!    therefore always points to durable bytes.
//! 2. `commit_snapshot` seals the session's pack and writes the manifest
//!    durably (side by side), checks every chunk the manifest lists against
//!    the catalogue, and only then inserts the snapshot row (`synchronous =
//!    FULL`: durable when the call returns).
//! 3. A crash between two steps leaves files the catalogue does not know
//!    (a temporary pack, a pack or a manifest with no row): harmless, not
//!    counted in `used_bytes`, removed or re-indexed by a later GC / rebuild.
//!    Never the reverse: a row without its file.
//!
//! # Concurrency
//!
//! One [`Store`] per process, shared by all threads; the daemon calls it from
//! tokio's blocking pool, many sessions at once. Admin commands open the same
//! data directory from other processes while the daemon runs: SQLite's WAL
//! lets their reads run beside the daemon, and their writes wait for the
//! write lock (busy timeout 10 s, then [`Error::Busy`]). Inside a process,
//! writes are serialised on one connection; reads use a small pool.
//!
//! | operation | may run beside | how it stays correct |
//! | --- | --- | --- |
//! | `has_chunks`, `chunk`, `manifest`, `list_snapshots`, `status`, `key` | everything | one read transaction each (a consistent state); pack files are never modified once renamed |
//! | `put_chunk` into different sessions' packs | each other, all reads, commits | each pack is its session's own temporary file; the quota check reads `used_bytes` and reserves the blob's bytes under the subscriber's lock, so parallel uploads cannot overshoot the quota |
//! | `put_chunk` of the same id by two sessions | each other | both may write it; at seal the first catalogued copy wins (`INSERT OR IGNORE`), the other stays in its pack unindexed (counted in `used_bytes`, reclaimed by a later repack) |
//! | `seal_pack` | everything | file durable first, then one `IMMEDIATE` transaction (pack row, chunk rows, `used_bytes`) |
//! | `seal_full` of a session's full pack (`write_chunk` handed it out) | that session's `write_chunk`s, everything else | the full pack left the open pack under the writer's lock and is a separate file; until sealed its ids stay the session's (`has_chunks` sees them) and its bytes stay reserved; `seal_writer` and `commit_writer` wait until no full pack of the writer is out |
//! | `commit_snapshot` | puts, seals and commits of other subscribers; puts of the same subscriber | commits, forgets and key uploads of one subscriber are serialised (a per-subscriber lock); the chunk check is valid for the GC epoch it read, and is redone inside the write transaction if a GC ran meanwhile |
//! | `replace_key` (admin devices) | everything but commits, forgets and key uploads of the same subscriber | in the subscriber's commit lock: the expected hash is compared with the catalogue's key file, the file `subscribers/<id>/key` is replaced (temp, fsync, rename), then the row by a compare-and-swap in one `IMMEDIATE` transaction; an acknowledged replace is in both, and a crash between them leaves the old row (the request was not acknowledged: the device retries) |
//! | `forget_snapshot` (admin devices) | everything | row deleted before the manifest file, in the subscriber's commit lock; chunks are not touched |
//! | `remove_snapshot`, `remove_snapshots` (retention, from `coffre-server prune`, maybe another process) | everything | as `forget_snapshot` (`remove_snapshots`: one subscriber's rows in one transaction, then the files); it only removes committed snapshots, which no commit rewrites |
//! | admin commands (`add_subscriber`, `set_subscriber`, `add_device`, `revoke_device`, `reissue_device`) from another process | the daemon | one `IMMEDIATE` transaction each; a quota change applies to the next `put_chunk`; a revocation to the next `authenticate`, `commit_snapshot` or `forget_snapshot`; a reissue to the next `authenticate` |
//! | `authenticate` with a pending or retired secret, `rekey` | everything | one `IMMEDIATE` transaction each: a promotion retires the other secrets of the device in the same transaction, so a device has one current secret at any time; its account file is rewritten under the store's accounts lock |
//! | `usage`, `list_subscribers`, `list_devices` | everything | one read transaction |
//! | `record_history`, `history` ([`history`], issue 20) | everything | a usage read, then one `IMMEDIATE` transaction of upserts keyed by (subscriber, day): a second recording of the day replaces the first; the day's first also thins older lines; `history` is one read transaction |
//! | two daemons on one data directory | — | **refused**: quota reservations and open packs live in one process's memory, so `coffre-server run` holds [`DaemonLock`] (`daemon.lock`) for its life and a second one is refused |
//! | `rebuild-catalog`, `move-packs` | nothing that writes: refused beside the daemon | they hold [`DaemonLock`] for their run: refused while the daemon runs, and a daemon started meanwhile is refused |
//! | `gc` (the daemon's nightly run, or `coffre-server gc` in another process) | everything; one collection at a time (`gc.lock`) | see [`gc`]: a subscriber with a session open is postponed; every sweep transaction checks that no session began and no snapshot was committed since the mark; repack moves rows in one transaction and readers look again |
//!
//! **What GC relies on** ([`gc`], invariant 6): a session records itself
//! (`sessions`, and the subscriber's `activity` counter) before its first
//! `has_chunks` or `put_chunk`, and `Store::end_session` removes the record;
//! a sweep that deletes chunk rows increments `meta.gc_epoch` in the same
//! transaction, so that a commit that checked its chunks before the sweep
//! checks them again.

mod catalog;
pub mod clock;
mod copy;
mod credentials;
mod daemon_lock;
mod data;
pub mod durable;
mod error;
mod frontend;
pub mod gc;
pub mod history;
mod key_file;
mod layout;
pub mod pack;
mod pending;
pub mod permissions;
pub mod rebuild;
pub mod retention;
mod session_writer;
pub mod storage;
mod store;
mod take_over;
mod types;
pub mod verify;

pub use clock::{Clock, ManualClock, SystemClock};

/// How far (seconds, either way) a PC's clock may be from the server's at a
/// commit before the server says "this PC's clock is wrong" (its log at
/// commit, the board's page): one day. A PC kept on time by NTP is within
/// seconds; a day still tolerates a PC that was off for weeks and drifted,
/// or one whose time zone is set wrong (at most 14 hours); beyond it the
/// times the PC writes in its snapshots are not to be believed (a dead CMOS
/// battery says 2001, a compromised PC says anything). Its snapshots are
/// accepted and kept all the same: retention dates them by their receipt.
pub const CLOCK_SKEW_LIMIT: i64 = 86_400;
pub use coffre_core::ChunkId;
pub use copy::{copy_packs, CopyReport};
pub use daemon_lock::{DaemonLock, DAEMON};
pub use durable::{sync_dir, write_atomic};
pub use error::{Error, Result};
pub use frontend::{FrontendRecord, Service, RECORD_VERSION};
pub use gc::{GcOptions, GcReport};
pub use history::{DayUsage, History, Recorded, ServerDay, Space};
pub use key_file::MAX_KEY_FILE;
pub use layout::{ACCOUNT_FILE, CATALOG_FILE, SUBSCRIBERS_DIR};
pub use pack::{
    parse_pack_index, read_pack_index, PackEntry, PackWriter, PACK_MAGIC, PACK_TARGET_SIZE,
    PACK_VERSION,
};
pub use permissions::{tighten, Tightened};
pub use rebuild::{
    rebuild_catalog, rebuild_catalog_with, rebuild_catalog_with_clock, RebuildReport,
};
pub use session_writer::{FullPack, SessionWriter};
pub use storage::{PackStorage, RawPacks, S3Config};
pub use store::Store;
pub use take_over::{TakenOver, TAKE_OVER_THREADS};
pub use types::{
    CheckpointUsage, DeviceInfo, DeviceUsage, Dispute, MaintenanceRun, Presence, Role, Session,
    SnapshotInfo, Status, SubscriberInfo, Usage, MAX_NAME_LEN,
};
pub use verify::{VerifyOptions, VerifyReport};

#[cfg(test)]
mod tests {
    #[test]
    fn store_and_pack_writer_can_be_shared_across_threads() {
        fn send_sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        send_sync::<super::Store>();
        send_sync::<super::Session>();
        send_sync::<super::SessionWriter>();
        send::<super::PackWriter>();
        send::<super::FullPack>();
    }
}
