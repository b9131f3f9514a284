//! Where sealed packs live: the local file system (the default) or an
//! S3-compatible object store. On an object store, each subscriber's
//! manifests, key file and `account.json` are also copied into the bucket
//! (`bucket.rs`, issue 22); the catalogue and packs being written stay in
//! the data directory: see docs/decisions.md.
//!
//! [`Packs`] is the one door to sealed packs: the data path, GC, repack,
//! verify, orphans and rebuild go through it, never through a path. A pack is
//! always written first to a local temporary file (`.<name>.pack.tmp`, as
//! before); [`Packs::store`] then makes it durable under its final name: a
//! rename on the local disk, a whole upload (multipart above 16 MiB)
//! acknowledged by the object store. Only then does the pack enter the
//! catalogue, so invariant 2 holds on both: a chunk row always points to
//! bytes the storage acknowledged.

mod bucket;
mod local;
mod s3;

use std::fs::File;
use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::layout::{pack_file, temp_pack_file, PACKS_DIR, PACK_SUFFIX, SUBSCRIBERS_DIR};

pub use s3::{S3Config, MULTIPART_THRESHOLD};

/// Where a store keeps its sealed packs (chosen by the operator).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum PackStorage {
    /// `subscribers/<id>/packs/` in the data directory.
    #[default]
    Local,
    /// An S3-compatible bucket (Garage, MinIO, AWS S3, ...).
    S3(S3Config),
}

impl PackStorage {
    /// A location for people and logs (never holds a credential).
    pub fn describe(&self) -> String {
        match self {
            PackStorage::Local => "the data directory".into(),
            PackStorage::S3(c) => c.url(),
        }
    }
}

/// A sealed pack as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PackObject {
    /// The pack's name (32 hex digits, without `.pack`).
    pub(crate) name: String,
    /// Its size in bytes.
    pub(crate) size: u64,
    /// When it was written, Unix seconds.
    pub(crate) modified: i64,
}

/// The sealed packs of a store.
#[derive(Debug)]
pub(crate) struct Packs {
    root: PathBuf,
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Local,
    S3(Box<s3::S3Packs>),
}

impl Packs {
    /// The packs of the data directory `root`, kept as `storage` says.
    pub(crate) fn new(root: &Path, storage: &PackStorage) -> Result<Packs> {
        let backend = match storage {
            PackStorage::Local => Backend::Local,
            PackStorage::S3(config) => Backend::S3(Box::new(s3::S3Packs::new(config.clone())?)),
        };
        Ok(Packs {
            root: root.to_path_buf(),
            backend,
        })
    }

    /// The local folder of a subscriber's packs: sealed packs on the local
    /// backend, and on every backend the temporary files of packs being
    /// written.
    pub(crate) fn dir(&self, sub: i64) -> PathBuf {
        self.root
            .join(SUBSCRIBERS_DIR)
            .join(sub.to_string())
            .join(PACKS_DIR)
    }

    /// The key of a pack, relative to the data directory or the bucket's
    /// prefix: `subscribers/<id>/packs/<name>.pack`.
    fn key(sub: i64, name: &str) -> String {
        format!("{SUBSCRIBERS_DIR}/{sub}/{PACKS_DIR}/{name}{PACK_SUFFIX}")
    }

    /// Where a pack is, for messages: a path or an `s3://` URL.
    pub(crate) fn describe(&self, sub: i64, name: &str) -> String {
        match &self.backend {
            Backend::Local => self.dir(sub).join(pack_file(name)).display().to_string(),
            Backend::S3(s3) => s3.describe(&Self::key(sub, name)),
        }
    }

    /// Makes the pack written (and flushed) in the local temporary file
    /// `tmp` durable under its final name; removes `tmp`. Returns only once
    /// the storage has acknowledged the whole pack.
    pub(crate) fn store(&self, sub: i64, name: &str, file: File, tmp: &Path) -> Result<()> {
        match &self.backend {
            Backend::Local => local::store(file, tmp, &self.dir(sub).join(pack_file(name))),
            Backend::S3(s3) => {
                drop(file);
                let stored = s3.upload(&Self::key(sub, name), tmp);
                let _ = std::fs::remove_file(tmp);
                stored
            }
        }
    }

    /// `len` bytes of a pack from `offset`: `None` if the pack does not
    /// exist; fewer bytes if it is shorter.
    pub(crate) fn read_range(
        &self,
        sub: i64,
        name: &str,
        offset: u64,
        len: u64,
    ) -> Result<Option<Vec<u8>>> {
        match &self.backend {
            Backend::Local => local::read_range(&self.dir(sub).join(pack_file(name)), offset, len),
            Backend::S3(s3) => s3.read_range(&Self::key(sub, name), offset, len),
        }
    }

    /// A whole pack, or `None` if it does not exist.
    pub(crate) fn read(&self, sub: i64, name: &str) -> Result<Option<Vec<u8>>> {
        match &self.backend {
            Backend::Local => local::read(&self.dir(sub).join(pack_file(name))),
            Backend::S3(s3) => s3.read(&Self::key(sub, name)),
        }
    }

    /// Whether a pack exists.
    pub(crate) fn exists(&self, sub: i64, name: &str) -> Result<bool> {
        match &self.backend {
            Backend::Local => Ok(self.dir(sub).join(pack_file(name)).exists()),
            Backend::S3(s3) => s3.exists(&Self::key(sub, name)),
        }
    }

    /// Removes packs (a missing one is not an error).
    pub(crate) fn remove(&self, sub: i64, names: &[&str]) -> Result<()> {
        match &self.backend {
            Backend::Local => {
                let dir = self.dir(sub);
                let paths: Vec<PathBuf> = names.iter().map(|n| dir.join(pack_file(n))).collect();
                local::remove(&dir, &paths)
            }
            Backend::S3(s3) => {
                for name in names {
                    s3.remove(&Self::key(sub, name))?;
                }
                Ok(())
            }
        }
    }

    /// The sealed packs of a subscriber (names ending in `.pack`, not
    /// temporary), by name.
    pub(crate) fn list(&self, sub: i64) -> Result<Vec<PackObject>> {
        let mut out = match &self.backend {
            Backend::Local => local::list(&self.dir(sub))?,
            Backend::S3(s3) => s3.list(&format!("{SUBSCRIBERS_DIR}/{sub}/{PACKS_DIR}/"))?,
        };
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}

impl Packs {
    /// Checks that the storage answers (an object store: the bucket exists
    /// and the credentials are accepted).
    pub(crate) fn check(&self) -> Result<()> {
        match &self.backend {
            Backend::Local => Ok(()),
            Backend::S3(s3) => s3.check(),
        }
    }
}

/// Checks that `storage` answers: for `coffre-server init` and the tests.
pub fn check(storage: &PackStorage) -> Result<()> {
    Packs::new(Path::new("."), storage)?.check()
}

/// Direct access to the sealed packs of a storage, by subscriber id and pack
/// name, outside any catalogue: for moving packs from one storage to another
/// (`coffre-server move-packs`) and for tests that damage a pack on purpose.
#[derive(Debug)]
pub struct RawPacks(pub(crate) Packs);

impl RawPacks {
    /// The packs of data directory `data_dir` kept as `storage` says.
    pub fn open(data_dir: &Path, storage: &PackStorage) -> Result<RawPacks> {
        Ok(RawPacks(Packs::new(data_dir, storage)?))
    }

    /// A subscriber's sealed packs: (name, size), by name.
    pub fn list(&self, sub: i64) -> Result<Vec<(String, u64)>> {
        Ok(self
            .0
            .list(sub)?
            .into_iter()
            .map(|p| (p.name, p.size))
            .collect())
    }

    /// A whole pack, or `None`.
    pub fn read(&self, sub: i64, name: &str) -> Result<Option<Vec<u8>>> {
        self.0.read(sub, name)
    }

    /// Stores `bytes` as pack `name` (replacing it), durably: through a
    /// local temporary file, as a sealed pack is.
    pub fn write(&self, sub: i64, name: &str, bytes: &[u8]) -> Result<()> {
        use std::io::Write;
        let dir = self.0.dir(sub);
        crate::durable::create_dir_all(&dir).map_err(|e| crate::Error::io(&dir, e))?;
        let tmp = dir.join(temp_pack_file(name));
        let mut file = crate::durable::create_new(&tmp).map_err(|e| crate::Error::io(&tmp, e))?;
        if let Err(e) = file.write_all(bytes) {
            let _ = std::fs::remove_file(&tmp);
            return Err(crate::Error::io(&tmp, e));
        }
        self.0.store(sub, name, file, &tmp)
    }

    /// Removes a pack.
    pub fn remove(&self, sub: i64, name: &str) -> Result<()> {
        self.0.remove(sub, &[name])
    }
}
