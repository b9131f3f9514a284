//! Which files must be read: the files cache decides, file by file, in walk
//! order.
//!
//! Each regular file of the walk gets one [`Slot`], in the walk's order
//! (depth first, each directory's items sorted by name); the tree builder
//! (`trees`) walks the same items in the same order and takes the slots
//! back one by one, so no path is looked up twice.

use std::path::PathBuf;

use coffre_core::manifest::Statistics;
use coffre_core::ChunkId;

use crate::files_cache::FilesCache;
use crate::fsmeta;
use crate::walk::{Item, Kind};

/// Where a file's chunks come from.
#[derive(Debug, Clone)]
pub(super) enum Slot {
    /// The files cache: unchanged.
    Cached(Vec<ChunkId>),
    /// Read in this run: index into [`Plan::to_read`].
    Read(usize),
}

/// The plan of a run.
#[derive(Debug, Default)]
pub(super) struct Plan {
    /// One per regular file, in walk order.
    pub slots: Vec<Slot>,
    /// The files to read, with the size the walk saw.
    pub to_read: Vec<(PathBuf, u64)>,
    /// Files new, changed and unchanged (the rest is counted later).
    pub stats: Statistics,
}

impl Plan {
    /// Assigns each file of `items` (walk order) its slot, and counts new,
    /// changed and unchanged files.
    pub(super) fn new(items: &[Item], cache: &FilesCache) -> Plan {
        let mut plan = Plan::default();
        plan.add(items, cache);
        plan
    }

    fn add(&mut self, items: &[Item], cache: &FilesCache) {
        for item in items {
            match &item.kind {
                Kind::Dir(children) => self.add(children, cache),
                Kind::File(path) => {
                    let key = fsmeta::path_bytes(path);
                    match cache.lookup(&key, &item.meta.stamp) {
                        Some(ids) => {
                            self.stats.files_unchanged += 1;
                            self.slots.push(Slot::Cached(ids.to_vec()));
                        }
                        None => {
                            if cache.lookup_any(&key) {
                                self.stats.files_changed += 1;
                            } else {
                                self.stats.files_new += 1;
                            }
                            self.slots.push(Slot::Read(self.to_read.len()));
                            self.to_read.push((path.clone(), item.meta.size));
                        }
                    }
                }
                Kind::Symlink(_) => {}
            }
        }
    }
}
