//! Where things live in a data directory: every file and folder name the
//! store writes, in one place. This module imports nothing of the crate, so
//! the catalogue, packs, storage and the store all depend on it and on none
//! of each other for a name.
//!
//! ```text
//! <data dir>/
//!   catalog.sqlite                 the catalogue (and its -wal, -shm)
//!   gc.lock                        held by the one garbage collection running
//!   daemon.lock                    held by the daemon, or by a command that must not run beside it
//!   quarantine/<subscriber id>/    what `verify --repair` moved aside
//!   subscribers/<subscriber id>/
//!     account.json                 the subscriber and its devices (for a rebuild)
//!     key                          the key file the client uploaded
//!     manifests/<snapshot id hex>  one file per committed snapshot
//!     packs/<name>.pack            sealed packs (local storage), and on every
//!     packs/.<name>.pack.tmp       storage the packs being written
//! ```
//!
//! On an object store (issue 22) the bucket holds, relative to its prefix,
//! the same `subscribers/<id>/` tree (packs, manifests, `key`,
//! `account.json`: the data directory keeps copies of the small files), and
//! the service's frontends:
//!
//! ```text
//! frontends/<name>.json            a frontend's record: number, address, subscribers
//! frontends/<name>/catalog.sqlite.zst  its last catalogue backup
//! ```
//!
//! A pack's `<name>` is 32 lower-case hex digits (16 random bytes, drawn by
//! the pack writer). On an object store the sealed packs keep the same key
//! relative to the bucket's prefix: `subscribers/<id>/packs/<name>.pack`.
//! These names are part of the on-disk format (docs/store.md): rebuild,
//! verify and orphan removal find files by them, so never rename one.

/// The catalogue's file name in the data directory.
pub const CATALOG_FILE: &str = "catalog.sqlite";
/// The directory of per-subscriber data in the data directory.
pub const SUBSCRIBERS_DIR: &str = "subscribers";
/// A subscriber's account file, in its folder.
pub const ACCOUNT_FILE: &str = "account.json";
/// A subscriber's key file, in its folder.
pub(crate) const KEY_FILE: &str = "key";
/// The folder of a subscriber's manifests, in its folder.
pub(crate) const MANIFESTS_DIR: &str = "manifests";
/// The folder of a subscriber's packs, in its folder.
pub(crate) const PACKS_DIR: &str = "packs";
/// File name suffix of a sealed pack.
pub(crate) const PACK_SUFFIX: &str = ".pack";
/// The lock file of garbage collection, in the data directory.
pub(crate) const GC_LOCK_FILE: &str = "gc.lock";
/// The daemon's lock file, in the data directory (`daemon_lock`).
pub(crate) const DAEMON_LOCK_FILE: &str = "daemon.lock";
/// Where `verify --repair` moves damaged data, in the data directory.
pub(crate) const QUARANTINE_DIR: &str = "quarantine";

/// The folder of the service's frontends in a bucket.
pub(crate) const FRONTENDS_DIR: &str = "frontends";

/// The key of a subscriber's file (`account.json`, `key`) in a bucket.
pub(crate) fn subscriber_object(sub: i64, file: &str) -> String {
    format!("{SUBSCRIBERS_DIR}/{sub}/{file}")
}

/// The folder of a subscriber's manifests in a bucket (ends in `/`).
pub(crate) fn manifests_prefix(sub: i64) -> String {
    format!("{SUBSCRIBERS_DIR}/{sub}/{MANIFESTS_DIR}/")
}

/// The key of a subscriber's manifest in a bucket.
pub(crate) fn manifest_object(sub: i64, id: &str) -> String {
    format!("{}{id}", manifests_prefix(sub))
}

/// The key of frontend `name`'s record in a bucket.
pub(crate) fn frontend_record(name: &str) -> String {
    format!("{FRONTENDS_DIR}/{name}.json")
}

/// The key of frontend `name`'s last catalogue backup in a bucket.
pub(crate) fn catalog_backup(name: &str) -> String {
    format!("{FRONTENDS_DIR}/{name}/{CATALOG_FILE}.zst")
}

/// The file name of sealed pack `name`: `<name>.pack`.
pub(crate) fn pack_file(name: &str) -> String {
    format!("{name}{PACK_SUFFIX}")
}

/// The temporary file name of pack `name` while it is written:
/// `.<name>.pack.tmp` (readers ignore names starting with a dot).
pub(crate) fn temp_pack_file(name: &str) -> String {
    format!(".{name}{PACK_SUFFIX}.tmp")
}
