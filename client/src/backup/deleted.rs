//! Files deleted since the last backup: in the previous run's files under
//! one of this run's paths, and not in this run's walk.
//!
//! Two sources, the cheap one first (docs/decisions.md, "Counting deleted
//! files"):
//! - **the files cache**, when it is used and holds anything: it lists every
//!   file the previous run saved, so nothing is fetched;
//! - **the parent snapshot's trees** otherwise (`--no-cache`, a cache lost or
//!   damaged), fetched and walked below this run's paths only.
//!
//! Only this run's paths count: the files of a path missing tonight (an
//! unplugged disk) are not deleted, they are missing, and said so. A file
//! the previous run could not read, or saw change while it read it, is not in
//! its files cache: if it is gone tonight, the count from the cache misses
//! it (the trees' count does not).
//!
//! Paths are compared in the snapshot's form: "/" then the names from the
//! root joined by "/" (`/home/alice/a.txt`; `/C:/Users/...` on Windows), the
//! form the walk's items and the trees share.

use std::collections::HashSet;
use std::path::Path;

use anyhow::Result;
use coffre_core::{ChunkId, Content};

use crate::files_cache::FilesCache;
use crate::fsmeta;
use crate::session::Session;
use crate::trees::Trees;
use crate::walk::{Item, Kind};

/// This run's files and paths, in the snapshot's form.
#[derive(Debug)]
pub(super) struct Tonight {
    /// Every regular file of the walk.
    files: HashSet<Vec<u8>>,
    /// The paths backed up.
    roots: Vec<Vec<u8>>,
}

impl Tonight {
    /// From the walk's items and the paths it was given.
    pub(super) fn new(items: &[Item], paths: &[std::path::PathBuf]) -> Tonight {
        let mut files = HashSet::new();
        collect(items, &mut Vec::new(), &mut files);
        Tonight {
            files,
            roots: paths.iter().map(|p| snapshot_form(p)).collect(),
        }
    }

    /// Whether `path` lies at or below one of this run's paths.
    fn covers(&self, path: &[u8]) -> bool {
        self.roots.iter().any(|r| below(path, r))
    }

    /// Whether a folder of the parent may hold files below this run's paths.
    fn leads_to(&self, dir: &[u8]) -> bool {
        self.roots.iter().any(|r| below(dir, r) || below(r, dir))
    }

    fn gone(&self, path: &[u8]) -> bool {
        self.covers(path) && !self.files.contains(path)
    }
}

/// Files of the files cache that are gone tonight.
pub(super) fn from_cache(cache: &FilesCache, tonight: &Tonight) -> u64 {
    cache
        .paths()
        .filter(|p| tonight.gone(&snapshot_form(Path::new(&fsmeta::os_name(p)))))
        .count() as u64
}

/// Files of the parent snapshot that are gone tonight, from its trees.
pub(super) fn from_parent(session: &Session, parent: &ChunkId, tonight: &Tonight) -> Result<u64> {
    let root = session.manifest(parent)?.private.root;
    let mut trees = Trees::new(session);
    let mut gone = 0u64;
    trees.walk(&root, &mut Vec::new(), &mut |path, entry| {
        Ok(match entry.content {
            Content::File(_) => {
                gone += u64::from(tonight.gone(path));
                false
            }
            Content::Dir(_) => tonight.leads_to(path),
            _ => false,
        })
    })?;
    Ok(gone)
}

/// The regular files below `items`, in the snapshot's form.
fn collect(items: &[Item], prefix: &mut Vec<u8>, out: &mut HashSet<Vec<u8>>) {
    for item in items {
        let len = prefix.len();
        prefix.push(b'/');
        prefix.extend_from_slice(&item.name);
        match &item.kind {
            Kind::File(_) => {
                out.insert(prefix.clone());
            }
            Kind::Dir(children) => collect(children, prefix, out),
            Kind::Symlink(_) => {}
        }
        prefix.truncate(len);
    }
}

/// A path of this PC in the snapshot's form, the way the walk names it.
fn snapshot_form(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for part in crate::walk::parts(path).unwrap_or_default() {
        out.push(b'/');
        out.extend_from_slice(&part.name);
    }
    out
}

/// Whether `path` is `root` or below it ("" is the whole root).
fn below(path: &[u8], root: &[u8]) -> bool {
    root.is_empty()
        || path == root
        || (path.len() > root.len() && path.starts_with(root) && path[root.len()] == b'/')
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn below_a_path_means_under_it_and_not_beside_it() {
        assert!(below(b"/home/a/x", b"/home/a"));
        assert!(below(b"/home/a", b"/home/a"));
        assert!(!below(b"/home/ab/x", b"/home/a"));
        assert!(below(b"/anything", b""));
        assert_eq!(snapshot_form(Path::new("/home/a/x.txt")), b"/home/a/x.txt");
        assert_eq!(snapshot_form(Path::new("/")), b"");
    }
}
