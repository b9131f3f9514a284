//! The bucket as the home of everything a frontend needs (issue 22): besides
//! the packs, each subscriber's manifests, key file and account file are
//! copied into it as they are written, and the frontends of a service keep
//! their records and catalogue backups there. So when a frontend's machine
//! is lost, another one serves its subscribers again from the bucket alone
//! (`crate::take_over`), and no single machine is needed to restore anyone.
//!
//! On the local backend these calls do nothing and find nothing: the data
//! directory is then the only copy, as before (docs/store.md).

use super::{Backend, PackObject, Packs};
use crate::error::Result;

impl Packs {
    /// Whether the storage is a bucket that other frontends can read: the
    /// small files are then copied into it.
    pub(crate) fn is_bucket(&self) -> bool {
        matches!(self.backend, Backend::S3(_))
    }

    /// Stores `bytes` as the object `key` (relative to the bucket's prefix),
    /// replacing it; returns once the bucket acknowledged it. Nothing on the
    /// local backend.
    pub(crate) fn put_object(&self, key: &str, bytes: &[u8]) -> Result<()> {
        match &self.backend {
            Backend::Local => Ok(()),
            Backend::S3(s3) => s3.put(key, bytes.to_vec()),
        }
    }

    /// Uploads the local file `path` whole as the object `key` (in parts
    /// if large); returns once the bucket acknowledged it. Nothing on the
    /// local backend.
    pub(crate) fn put_file(&self, key: &str, path: &std::path::Path) -> Result<()> {
        match &self.backend {
            Backend::Local => Ok(()),
            Backend::S3(s3) => s3.upload(key, path),
        }
    }

    /// The object `key`, or `None` if it does not exist (always on the local
    /// backend).
    pub(crate) fn get_object(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match &self.backend {
            Backend::Local => Ok(None),
            Backend::S3(s3) => s3.read(key),
        }
    }

    /// Removes the object `key` (a missing one is not an error).
    pub(crate) fn remove_object(&self, key: &str) -> Result<()> {
        match &self.backend {
            Backend::Local => Ok(()),
            Backend::S3(s3) => s3.remove(key),
        }
    }

    /// The objects directly under `dir` (a key ending in `/`), by name,
    /// without temporary ones (empty on the local backend).
    pub(crate) fn list_objects(&self, dir: &str) -> Result<Vec<PackObject>> {
        let mut out = match &self.backend {
            Backend::Local => Vec::new(),
            Backend::S3(s3) => s3.list_objects(dir)?,
        };
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }
}
