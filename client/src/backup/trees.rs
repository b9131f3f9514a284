//! The trees of a snapshot, built bottom-up once every file is read, and
//! the files cache of the next run, made on the way.
//!
//! A tree dedups like data: its id is the keyed hash of its canonical
//! encoding, so an unchanged directory has the same id as last time and is
//! neither sealed nor sent again. The builder walks the walk's items in the
//! order the plan did (`plan`) and takes each file's slot in turn. A file
//! that could not be read is left out of its tree (it is reported and
//! recorded in the snapshot), unless it is a file another program held
//! through the end of the run, which keeps its entry of the parent snapshot
//! (`set_aside`: its previous version), uncached; a file whose size changed
//! while it was read is kept with what was read, but not cached, so it is
//! read again next time.

use std::collections::{HashMap, HashSet};

use anyhow::Result;
use coffre_core::pipeline::Dedup as _;
use coffre_core::pipeline::SeenSet;
use coffre_core::{BlobKind, ChunkId, Content, Entry, Keys, Sealer, Tree};

use super::bridge::Outbox;
use super::plan::Slot;
use crate::files_cache::{Cached, FilesCache};
use crate::fsmeta::{self, Meta};
use crate::walk::{Item, Kind};

/// What the trees of a snapshot add up to.
#[derive(Debug)]
pub(super) struct Built {
    /// The root tree's id, or why it could not be stored.
    pub root: Result<ChunkId>,
    /// Every blob the snapshot needs: data and trees.
    pub ids: HashSet<ChunkId>,
    /// The files cache of the next run.
    pub new_cache: FilesCache,
    /// Files in the snapshot.
    pub files: u64,
    /// Their total size.
    pub logical: u64,
}

/// What the reading stage found, per file of the plan's read list.
#[derive(Debug)]
pub(super) struct ReadFiles {
    /// Each file's chunk ids, in file order.
    pub contents: Vec<Vec<ChunkId>>,
    /// Each file's size as read; `None` if it could not be read.
    pub sizes: Vec<Option<u64>>,
    /// Files not read because another program held them to the end: their
    /// entry in the parent snapshot, kept instead (`set_aside`).
    pub previous: HashMap<usize, Entry>,
}

/// Stores the trees of `root` (the walk's items, in walk order) bottom-up;
/// new trees go to `outbox`.
pub(super) fn build(
    keys: &Keys,
    dedup: &SeenSet,
    outbox: &Outbox,
    root: &[Item],
    slots: Vec<Slot>,
    read: ReadFiles,
) -> Built {
    let mut builder = TreeBuilder {
        keys,
        sealer: Sealer::new(coffre_core::blob::DEFAULT_ZSTD_LEVEL),
        dedup,
        outbox,
        slots: slots.into_iter(),
        read,
        ids: HashSet::new(),
        new_cache: FilesCache::default(),
        files: 0,
        logical: 0,
    };
    let root = builder.dir(root);
    Built {
        root,
        ids: builder.ids,
        new_cache: builder.new_cache,
        files: builder.files,
        logical: builder.logical,
    }
}

struct TreeBuilder<'a> {
    keys: &'a Keys,
    sealer: Sealer,
    dedup: &'a SeenSet,
    outbox: &'a Outbox,
    slots: std::vec::IntoIter<Slot>,
    read: ReadFiles,
    /// Every blob the snapshot needs.
    ids: HashSet<ChunkId>,
    new_cache: FilesCache,
    files: u64,
    logical: u64,
}

impl TreeBuilder<'_> {
    /// Stores the tree of `items` (walk order, like the plan); returns its id.
    fn dir(&mut self, items: &[Item]) -> Result<ChunkId> {
        let mut entries = Vec::with_capacity(items.len());
        for item in items {
            let (content, size) = match &item.kind {
                Kind::Dir(children) => (Content::Dir(self.dir(children)?), 0),
                Kind::Symlink(target) => (Content::Symlink(target.clone()), 0),
                Kind::File(path) => {
                    let (ids, size) = match self.slots.next().expect("one slot per file") {
                        Slot::Cached(ids) => (ids, item.meta.size),
                        Slot::Read(i) => match self.read.sizes[i] {
                            Some(size) => (std::mem::take(&mut self.read.contents[i]), size),
                            None => match self.read.previous.remove(&i) {
                                // Held by another program: the previous
                                // version, as it was (not cached: read next time).
                                Some(kept) => {
                                    if let Content::File(ids) = &kept.content {
                                        self.ids.extend(ids.iter().copied());
                                    }
                                    self.files += 1;
                                    self.logical += kept.size;
                                    entries.push(Entry {
                                        name: item.name.clone(),
                                        ..kept
                                    });
                                    continue;
                                }
                                None => continue, // could not be read: reported
                            },
                        },
                    };
                    self.ids.extend(ids.iter().copied());
                    self.files += 1;
                    self.logical += size;
                    // A file read while it changed is read again next time.
                    if size == item.meta.size {
                        self.new_cache.insert(
                            fsmeta::path_bytes(path),
                            Cached {
                                stamp: item.meta.stamp,
                                chunks: ids.clone(),
                            },
                        );
                    }
                    (Content::File(ids), size)
                }
            };
            entries.push(entry(item, &item.meta, content, size));
        }
        let tree = Tree::new(entries)?;
        let encoded = tree.encode();
        let id = ChunkId::compute(self.keys, &encoded);
        self.ids.insert(id);
        if self.dedup.should_store(&id) {
            let blob = self.sealer.seal(self.keys, BlobKind::Tree, &id, &encoded)?;
            self.outbox.send(id, blob)?;
        }
        Ok(id)
    }
}

fn entry(item: &Item, meta: &Meta, content: Content, size: u64) -> Entry {
    Entry {
        name: item.name.clone(),
        mode: meta.mode,
        uid: meta.uid,
        gid: meta.gid,
        mtime: meta.mtime,
        size,
        xattrs: crate::fsmeta::xattrs(meta),
        content,
    }
}
