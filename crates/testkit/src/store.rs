//! The store as its tests and the server's see it: `Env` (a store in a
//! fresh temporary directory, with subscribers, devices, sealed packs and
//! snapshots made in one call each), `enrol` (a device, making its
//! subscriber when new), [`Client::put`] (a blob put as a client uploads
//! it), and the files of a data directory (`files`, `hidden`) to compare
//! with what the catalogue says.
//!
//! A subscriber's files are under `subscribers/ID/` (`packs/*.pack`,
//! `manifests/`), the layout of docs/store.md; names starting with a dot are
//! temporary files (`durable` writes them before the rename).

use std::fs;
use std::path::{Path, PathBuf};

use coffre_core::ChunkId;
use coffre_store::{PackWriter, Role, Session, Store};
use tempfile::TempDir;

use crate::{data, Client};

/// A store in a fresh temporary directory.
#[derive(Debug)]
pub struct Env {
    pub dir: TempDir,
    pub store: Store,
}

impl Default for Env {
    fn default() -> Env {
        Env::new()
    }
}

impl Env {
    pub fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        Env { dir, store }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Adds a subscriber and one device, and authenticates it.
    pub fn subscriber(&self, name: &str, quota: u64, device: &str, role: Role) -> Session {
        self.store.add_subscriber(name, quota, None).unwrap();
        self.device(name, device, role)
    }

    /// Enrols a device and authenticates it.
    pub fn device(&self, subscriber: &str, device: &str, role: Role) -> Session {
        let secret = self.store.add_device(subscriber, device, role).unwrap();
        self.store.authenticate(&secret).unwrap()
    }

    /// The folder of a subscriber's files.
    fn subscriber_dir(&self, s: &Session) -> PathBuf {
        self.path()
            .join("subscribers")
            .join(s.subscriber_id.to_string())
    }

    /// What the files of a subscriber take on disk: sealed packs and
    /// manifests (what `used_bytes` must equal).
    pub fn disk_bytes(&self, s: &Session) -> u64 {
        let dir = self.subscriber_dir(s);
        let packs = files(&dir.join("packs"), ".pack");
        let manifests = files(&dir.join("manifests"), "");
        packs
            .iter()
            .chain(&manifests)
            .map(|p| fs::metadata(p).unwrap().len())
            .sum()
    }

    /// The sealed pack files of a subscriber.
    pub fn packs(&self, s: &Session) -> Vec<PathBuf> {
        files(&self.subscriber_dir(s).join("packs"), ".pack")
    }

    /// The manifest files of a subscriber (hidden temporary files left
    /// out: see [`hidden`]).
    pub fn manifest_files(&self, s: &Session) -> Vec<PathBuf> {
        files(&self.subscriber_dir(s).join("manifests"), "")
    }

    /// Puts the blobs of `seeds` (`len` bytes each, [`data`]) in one sealed
    /// pack of session `s`; each must be new. Returns their ids.
    pub fn sealed_pack(
        &self,
        s: &Session,
        c: &mut Client,
        seeds: &[u64],
        len: usize,
    ) -> Vec<ChunkId> {
        let mut pack = self.store.open_pack(s);
        let ids = seeds
            .iter()
            .map(|seed| {
                let (id, new) = c.put(&self.store, s, &mut pack, &data(*seed, len));
                assert!(new);
                id
            })
            .collect();
        self.store.seal_pack(s, &mut pack).unwrap();
        ids
    }

    /// Commits a snapshot of session `s` made at `secs` listing `ids`
    /// ([`Client::manifest_at`], sorted).
    pub fn commit(&self, s: &Session, c: &Client, secs: i64, ids: &[ChunkId]) -> ChunkId {
        let mut sorted = ids.to_vec();
        sorted.sort();
        let mut pack = self.store.open_pack(s);
        self.store
            .commit_snapshot(s, &mut pack, &c.manifest_at(&s.device, secs, &sorted))
            .unwrap()
    }

    /// The used bytes of subscriber `name`.
    pub fn used(&self, name: &str) -> u64 {
        self.store.subscriber(name).unwrap().used_bytes
    }
}

/// A new device of `subscriber` (added with `quota` if it does not exist
/// yet): its secret, what a token carries.
pub fn enrol(store: &Store, subscriber: &str, quota: u64, device: &str, role: Role) -> [u8; 32] {
    if store.subscriber(subscriber).is_err() {
        store.add_subscriber(subscriber, quota, None).unwrap();
    }
    store.add_device(subscriber, device, role).unwrap()
}

impl Client {
    /// Puts the blob of `data` in `pack` of session `s`, as a client
    /// uploads it: its id, and whether the store did not have it yet.
    pub fn put(
        &mut self,
        store: &Store,
        s: &Session,
        pack: &mut PackWriter,
        data: &[u8],
    ) -> (ChunkId, bool) {
        let (id, blob) = self.blob(data);
        let new = store.put_chunk(s, pack, &id, &blob).unwrap();
        (id, new)
    }
}

/// Files of `dir` whose name ends with `suffix`, skipping hidden (temporary)
/// files; sorted.
pub fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .map(|e| e.unwrap())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            !n.starts_with('.') && n.ends_with(suffix)
        })
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// Every entry of `dir` whose name starts with a dot (temporary files).
pub fn hidden(dir: &Path) -> Vec<String> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect()
}
