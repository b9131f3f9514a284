//! Helpers shared by the store's integration tests: a store in a temporary
//! directory, and real blobs and manifests made with coffre-core, as a client
//! makes them.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use coffre_core::blob::{self, BlobKind};
use coffre_core::{ChunkId, Keys, Manifest, MasterKey, Sealer, Timestamp};
use coffre_store::{Role, Session, Store};
use tempfile::TempDir;

pub const GIB: u64 = 1 << 30;

/// A store in a fresh temporary directory.
pub struct Env {
    pub dir: TempDir,
    pub store: Store,
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

    /// What the files of a subscriber take on disk: sealed packs and
    /// manifests (what `used_bytes` must equal).
    pub fn disk_bytes(&self, s: &Session) -> u64 {
        let dir = self
            .path()
            .join("subscribers")
            .join(s.subscriber_id.to_string());
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
        files(
            &self
                .path()
                .join("subscribers")
                .join(s.subscriber_id.to_string())
                .join("packs"),
            ".pack",
        )
    }

    /// Puts the blobs of `seeds` (`len` bytes each) in one sealed pack of
    /// session `s`; each must be new. Returns their ids.
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
                let (id, b) = c.blob(&data(*seed, len));
                assert!(self.store.put_chunk(s, &mut pack, &id, &b).unwrap());
                id
            })
            .collect();
        self.store.seal_pack(s, &mut pack).unwrap();
        ids
    }

    /// Commits a snapshot of session `s` made at `secs` listing `ids`.
    pub fn commit(&self, s: &Session, c: &Client, secs: i64, ids: &[ChunkId]) -> ChunkId {
        let mut sorted = ids.to_vec();
        sorted.sort();
        let mut pack = self.store.open_pack(s);
        self.store
            .commit_snapshot(s, &mut pack, &c.manifest(&s.device, secs, &sorted))
            .unwrap()
    }

    pub fn used(&self, name: &str) -> u64 {
        self.store.subscriber(name).unwrap().used_bytes
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

/// A client of one subscriber: its keys and a sealer.
pub struct Client {
    pub keys: Keys,
    sealer: Sealer,
}

impl Client {
    pub fn new(master: u8) -> Client {
        Client {
            keys: Keys::derive(&MasterKey::from_bytes([master; 32])),
            sealer: Sealer::new(3),
        }
    }

    /// A real blob of `data`: (id, blob bytes).
    pub fn blob(&mut self, data: &[u8]) -> (ChunkId, Vec<u8>) {
        let id = ChunkId::compute(&self.keys, data);
        let b = self
            .sealer
            .seal(&self.keys, BlobKind::Data, &id, data)
            .unwrap();
        (id, b)
    }

    /// Decrypts a blob fetched back from the store.
    pub fn open(&self, id: &ChunkId, bytes: &[u8]) -> Vec<u8> {
        blob::open(&self.keys, BlobKind::Data, id, bytes).unwrap()
    }

    /// A sealed manifest made by `device` at `secs`, listing `chunks`.
    pub fn manifest(&self, device: &str, secs: i64, chunks: &[ChunkId]) -> Vec<u8> {
        {
            let mut m = Manifest::bare(device, Timestamp { secs, nanos: 0 }, chunks.to_vec());
            m.public.logical_bytes = 1000 * chunks.len() as u64;
            m.public.file_count = chunks.len() as u64;
            m
        }
        .seal(&self.keys)
        .unwrap()
    }
}

/// Incompressible test data of `len` bytes, different for each `seed`.
pub fn data(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut counter = 0u64;
    while out.len() < len {
        let mut h = blake3::Hasher::new();
        h.update(&seed.to_le_bytes());
        h.update(&counter.to_le_bytes());
        let mut xof = h.finalize_xof();
        let mut block = [0u8; 4096];
        xof.fill(&mut block);
        out.extend_from_slice(&block);
        counter += 1;
    }
    out.truncate(len);
    out
}
