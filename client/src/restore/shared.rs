//! Each chunk fetched once (docs/decisions.md, "Restore fetches each chunk
//! once"): a chunk that several files of the restore use (the same PDF in
//! three folders, a copied folder, an edited copy) is downloaded by the
//! first file that has it, its *owner*; every other file reads it back
//! from the owner once the owner is in place, at the offset the owner
//! wrote it at, and checks it by its id (keyed BLAKE3) before using it.
//! A chunk that does not read back as itself (the owner failed, was
//! changed or replaced on disk meanwhile) is downloaded as before: a
//! damaged first copy never propagates.
//!
//! - A file waits, before it starts, until the owners of the chunks it
//!   borrows are settled (in place, or failed). Owners come earlier in the
//!   restore's order (largest first) and were started earlier, so the
//!   earliest unsettled file never waits: no deadlock. A waiting file
//!   holds no chunk permit, only its file slot.
//! - Memory stays bounded: nothing is kept in memory for later; a chunk
//!   read back takes a chunk permit like a fetched one. What is kept is
//!   where each shared chunk lies (an id, an offset, a length).
//! - A file already in place (an interrupted restore run again) owns its
//!   chunks too: when another file needs one, it is read once and cut again
//!   with the backup's chunker to find where its chunks lie, each checked by
//!   its id (up to the last of them it owns).
//! - A chunk repeated within one file (and no other file's) is fetched at
//!   its first place and read back from the file's temporary file at the
//!   others, checked the same way (download.rs).

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use coffre_core::chunker::Chunker;
use coffre_core::{ChunkId, Content, Keys};
use tokio::sync::watch;

use super::plan::Todo;
use super::target::Target;

/// Whether an owner's chunks can be read back yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not written yet.
    Pending,
    /// In place (written by this restore, or there already).
    Ready,
    /// It failed: its chunks are fetched by those that need them.
    Failed,
}

/// A file that owns chunks other files need.
#[derive(Debug)]
struct Source {
    rel: PathBuf,
    /// Its index in the restore's files; `None`: already in place.
    todo: Option<usize>,
    /// Its size and chunk ids, when already in place (to find its chunks).
    in_place: Option<u64>,
    state: watch::Sender<State>,
    /// Where its shared chunks lie: offset and length.
    places: Mutex<HashMap<ChunkId, (u64, usize)>>,
    /// A file in place is cut into chunks once, when first needed.
    indexed: OnceLock<()>,
    /// How many shared chunks it owns (cutting a file in place stops once
    /// all are found).
    owned: usize,
}

/// What one file of the restore owns and borrows.
#[derive(Debug, Default, Clone)]
struct Role {
    /// The source it is, if it owns a shared chunk.
    own: Option<usize>,
    /// The sources it borrows from (not itself).
    deps: Vec<usize>,
}

/// The shared chunks of one restore, their owners, and the counts.
#[derive(Debug, Default)]
pub struct Sharing {
    /// Each chunk used by two files or more: the source that owns it.
    owner: HashMap<ChunkId, usize>,
    sources: Vec<Source>,
    roles: Vec<Role>,
    /// Chunks downloaded (blobs received) and their bytes.
    pub fetched: AtomicU64,
    /// Bytes of the blobs downloaded.
    pub fetched_bytes: AtomicU64,
    /// Chunks read back from a file in the target instead.
    pub copied: AtomicU64,
}

/// A file already in place: where it is, its size and its chunk ids.
pub type InPlace = (PathBuf, u64, Vec<ChunkId>);

fn ids_of(todo: &Todo) -> &[ChunkId] {
    match &todo.entry.content {
        Content::File(ids) => ids,
        _ => &[],
    }
}

impl Sharing {
    /// The owners and borrowers among the files already in place and the
    /// files to restore (in the order they are restored).
    pub fn plan(in_place: &[InPlace], todo: &[Todo]) -> Sharing {
        let lists: Vec<&[ChunkId]> = in_place
            .iter()
            .map(|p| &p.2[..])
            .chain(todo.iter().map(ids_of))
            .collect();
        // Per chunk: its first file, and whether another file uses it.
        let mut first: HashMap<ChunkId, (usize, bool)> = HashMap::new();
        for (f, ids) in lists.iter().enumerate() {
            for id in ids.iter() {
                let e = first.entry(*id).or_insert((f, false));
                if e.0 != f {
                    e.1 = true;
                }
            }
        }
        let mut sharing = Sharing {
            roles: vec![Role::default(); todo.len()],
            ..Sharing::default()
        };
        let mut source_of: HashMap<usize, usize> = HashMap::new();
        for (id, (f, shared)) in first {
            if !shared {
                continue;
            }
            let next = sharing.sources.len();
            let s = *source_of.entry(f).or_insert(next);
            if s == next {
                let (rel, todo_index, in_place_size, state) = if f < in_place.len() {
                    (
                        in_place[f].0.clone(),
                        None,
                        Some(in_place[f].1),
                        State::Ready,
                    )
                } else {
                    let t = f - in_place.len();
                    (todo[t].rel.clone(), Some(t), None, State::Pending)
                };
                sharing.sources.push(Source {
                    rel,
                    todo: todo_index,
                    in_place: in_place_size,
                    state: watch::channel(state).0,
                    places: Mutex::new(HashMap::new()),
                    indexed: OnceLock::new(),
                    owned: 0,
                });
                if let Some(t) = todo_index {
                    sharing.roles[t].own = Some(s);
                }
            }
            sharing.owner.insert(id, s);
            sharing.sources[s].owned += 1;
        }
        for (t, todo) in todo.iter().enumerate() {
            let own = sharing.roles[t].own;
            let mut deps: Vec<usize> = ids_of(todo)
                .iter()
                .filter_map(|id| sharing.owner.get(id).copied())
                .filter(|s| Some(*s) != own)
                .collect();
            deps.sort_unstable();
            deps.dedup();
            sharing.roles[t].deps = deps;
        }
        sharing
    }

    /// Files that own a chunk another file needs.
    #[cfg(test)]
    fn owners(&self) -> Vec<Option<usize>> {
        self.sources.iter().map(|s| s.todo).collect()
    }

    /// Whether chunk `id` of file `todo` belongs to another file that is
    /// not among `files` (a group of small files fetches the chunks its own
    /// files own once, and borrows the others after waiting).
    pub fn borrows_outside(
        &self,
        todo: usize,
        id: &ChunkId,
        files: std::ops::RangeInclusive<usize>,
    ) -> bool {
        let Some(&s) = self.owner.get(id) else {
            return false;
        };
        let own = self.roles.get(todo).and_then(|r| r.own);
        own != Some(s) && !self.sources[s].todo.is_some_and(|t| files.contains(&t))
    }

    /// Whether chunk `id` of file `todo` belongs to another file.
    pub fn borrows(&self, todo: usize, id: &ChunkId) -> bool {
        let own = self.roles.get(todo).and_then(|r| r.own);
        self.owner.get(id).is_some_and(|&s| own != Some(s))
    }

    /// Waits until every owner file `todo` borrows from is settled.
    pub async fn wait(&self, todo: usize) {
        let Some(role) = self.roles.get(todo) else {
            return;
        };
        for &s in &role.deps {
            let mut rx = self.sources[s].state.subscribe();
            // The sender lives as long as `self`.
            let _ = rx.wait_for(|st| *st != State::Pending).await;
        }
    }

    /// Records that file `todo` wrote chunk `id` at `offset` (kept if it
    /// owns it).
    pub fn wrote(&self, todo: usize, id: &ChunkId, offset: u64, len: usize) {
        let Some(s) = self.roles.get(todo).and_then(|r| r.own) else {
            return;
        };
        if self.owner.get(id) == Some(&s) {
            let mut places = self.sources[s]
                .places
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            places.entry(*id).or_insert((offset, len));
        }
    }

    /// File `todo` is in place (`ok`) or failed: who waits for it goes on.
    pub fn settle(&self, todo: usize, ok: bool) {
        if let Some(s) = self.roles.get(todo).and_then(|r| r.own) {
            let state = if ok { State::Ready } else { State::Failed };
            self.sources[s].state.send_if_modified(|st| {
                let changed = *st == State::Pending;
                if changed {
                    *st = state;
                }
                changed
            });
        }
    }

    /// Chunk `id` of file `todo` read back from the file in the target that
    /// owns it, checked by its id; `None` if it is not another file's, that
    /// file failed, or what is read is not the chunk (fetch it then).
    /// Blocking.
    pub fn read_back(
        &self,
        target: &Target,
        keys: &Keys,
        todo: usize,
        id: &ChunkId,
    ) -> Option<Vec<u8>> {
        let &s = self.owner.get(id)?;
        if self.roles.get(todo).is_some_and(|r| r.own == Some(s)) {
            return None;
        }
        let source = &self.sources[s];
        if *source.state.borrow() != State::Ready {
            return None;
        }
        if let Some(size) = source.in_place {
            source
                .indexed
                .get_or_init(|| self.index(target, keys, s, size));
        }
        let (offset, len) = {
            let places = source.places.lock().unwrap_or_else(|e| e.into_inner());
            *places.get(id)?
        };
        let data = read_at(target, &source.rel, offset, len).ok()?;
        if ChunkId::compute(keys, &data) != *id {
            return None;
        }
        self.copied_one();
        Some(data)
    }

    /// Finds where the chunks of a file already in place lie: the file
    /// cut again with the backup's chunker, each chunk's id computed.
    fn index(&self, target: &Target, keys: &Keys, s: usize, size: u64) {
        let source = &self.sources[s];
        let Ok(file) = target.open_read(&source.rel) else {
            return;
        };
        let mut chunker = Chunker::new(file, keys.gear(), Some(size));
        let mut offset = 0u64;
        let mut found = HashMap::new();
        while found.len() < source.owned {
            let Ok(Some(chunk)) = chunker.next_chunk() else {
                break;
            };
            let id = ChunkId::compute(keys, &chunk);
            if self.owner.get(&id) == Some(&s) {
                found.entry(id).or_insert((offset, chunk.len()));
            }
            offset += chunk.len() as u64;
        }
        let mut places = source.places.lock().unwrap_or_else(|e| e.into_inner());
        places.extend(found);
    }

    /// A chunk was read back instead of downloaded.
    pub fn copied_one(&self) {
        self.copied.fetch_add(1, Ordering::Relaxed);
    }

    /// A blob of `bytes` was downloaded.
    pub fn fetched_one(&self, bytes: usize) {
        self.fetched.fetch_add(1, Ordering::Relaxed);
        self.fetched_bytes
            .fetch_add(bytes as u64, Ordering::Relaxed);
    }
}

/// `len` bytes at `offset` of the file `rel` in the target.
fn read_at(target: &Target, rel: &Path, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut file = target.open_read(rel)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut data = vec![0; len];
    file.read_exact(&mut data)?;
    Ok(data)
}

/// Settles file `todo` when dropped: failed unless marked done, so that a
/// task that panics or returns early never leaves its borrowers waiting.
pub struct Settle {
    sharing: Arc<Sharing>,
    todo: usize,
    /// The file is in place.
    pub ok: bool,
}

impl Settle {
    /// The guard of file `todo`.
    pub fn new(sharing: &Arc<Sharing>, todo: usize) -> Settle {
        Settle {
            sharing: sharing.clone(),
            todo,
            ok: false,
        }
    }
}

impl Drop for Settle {
    fn drop(&mut self) {
        self.sharing.settle(self.todo, self.ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffre_core::{Entry, Timestamp};

    fn id(n: u8) -> ChunkId {
        ChunkId::from_bytes([n; 32])
    }

    fn todo(name: &str, ids: &[u8]) -> Todo {
        Todo {
            rel: PathBuf::from(name),
            entry: Entry {
                name: name.as_bytes().to_vec(),
                mode: 0o100644,
                uid: 0,
                gid: 0,
                mtime: Timestamp::default(),
                size: ids.len() as u64,
                xattrs: Vec::new(),
                content: Content::File(ids.iter().map(|&n| id(n)).collect()),
            },
        }
    }

    #[test]
    fn the_first_file_owns_a_shared_chunk_and_the_others_wait_for_it() {
        let files = [
            todo("a", &[1, 2, 3]),
            todo("copy-of-a", &[1, 2, 3]),
            todo("edited-a", &[1, 9, 3]),
            todo("alone", &[7, 7]),
            todo("small", &[5]),
            todo("small-copy", &[5]),
        ];
        let s = Sharing::plan(&[], &files);
        assert_eq!(s.owner.len(), 4, "1, 2, 3 and 5; not 7 nor 9");
        let mut owners = s.owners();
        owners.sort();
        assert_eq!(owners, vec![Some(0), Some(4)]);
        assert!(s.roles[0].deps.is_empty() && s.roles[3].deps.is_empty());
        assert_eq!(s.roles[1].deps, s.roles[2].deps);
        assert_eq!(s.roles[1].deps.len(), 1);
        assert!(s.borrows_outside(1, &id(1), 1..=1) && !s.borrows_outside(0, &id(1), 0..=0));
        assert!(
            !s.borrows_outside(3, &id(7), 3..=3),
            "repeated within one file only"
        );
        assert!(s.borrows_outside(2, &id(3), 2..=2));
        assert!(
            !s.borrows_outside(5, &id(5), 4..=5),
            "its owner is in its group"
        );
        assert!(s.borrows_outside(5, &id(5), 5..=5));
    }

    #[test]
    fn a_file_in_place_owns_its_chunks() {
        let files = [todo("copy", &[1, 2])];
        let s = Sharing::plan(&[(PathBuf::from("there"), 2, vec![id(1), id(2)])], &files);
        assert_eq!(s.owners(), vec![None]);
        assert_eq!(s.roles[0].deps.len(), 1);
        assert!(s.borrows_outside(0, &id(1), 0..=0));
        assert_eq!(*s.sources[0].state.borrow(), State::Ready);
    }

    #[test]
    fn a_failed_owner_releases_who_waits_for_it() {
        let files = [todo("a", &[1, 2]), todo("b", &[1, 2])];
        let s = Arc::new(Sharing::plan(&[], &files));
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let waiter = {
            let s = s.clone();
            rt.spawn(async move { s.wait(1).await })
        };
        drop(Settle::new(&s, 0));
        rt.block_on(waiter).unwrap();
        assert_eq!(*s.sources[0].state.borrow(), State::Failed);
    }
}
