//! The files cache: which chunks each file had at the last backup, and the
//! stamp (size, mtime, ctime, inode) it had then. A file whose stamp has not
//! changed is not read again; its chunks are taken from here.
//!
//! ```text
//! "CFFC" | version 1 | key tag (32) | entry count (u64 LE)
//! entry: path length (u32 LE) | path | size (u64) | mtime (i64, u32) | ctime (i64, u32)
//!        | inode (u64) | chunk count (u32) | chunk ids (32 each)
//! BLAKE3 of everything before (32)
//! ```
//!
//! Specified byte by byte in docs/format.md ("Files cache"); the test
//! `known_answer_bytes` freezes it (it fails if a byte changes).
//!
//! The key tag ties the cache to the subscriber's key: a PC enrolled again
//! under another subscriber starts from an empty cache. A damaged or unknown
//! cache is ignored (the backup then reads every file): it is only a cache.
//! It is written after the snapshot is committed, so every chunk it names
//! is on the server; if the server has since dropped one (an admin's delete),
//! the commit says so and the backup runs again without the cache.

use std::collections::HashMap;
use std::path::Path;

use anyhow::Result;
use coffre_core::{ChunkId, Keys, Timestamp};

use crate::config::atomic_write;
use crate::fsmeta::Stamp;

const MAGIC: &[u8; 4] = b"CFFC";
const VERSION: u8 = 1;

/// A file's cached state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cached {
    /// Its stamp when it was read.
    pub stamp: Stamp,
    /// Its chunks then.
    pub chunks: Vec<ChunkId>,
}

/// Path (raw bytes) to cached state.
#[derive(Debug, Default)]
pub struct FilesCache {
    entries: HashMap<Vec<u8>, Cached>,
}

/// A tag of the key, so that a cache made under another key is not used.
fn key_tag(keys: &Keys) -> [u8; 32] {
    *ChunkId::compute(keys, b"coffre files cache key tag").as_bytes()
}

impl FilesCache {
    /// Loads the cache, or an empty one if it is absent, damaged or of another key.
    pub fn load(path: &Path, keys: &Keys) -> (FilesCache, Option<String>) {
        match std::fs::read(path) {
            Ok(bytes) => match decode(&bytes, &key_tag(keys)) {
                Ok(c) => (c, None),
                Err(why) => (
                    FilesCache::default(),
                    Some(format!(
                        "the files cache {} is {why}: every file will be read again",
                        path.display()
                    )),
                ),
            },
            Err(_) => (FilesCache::default(), None),
        }
    }

    /// The cached chunks of `path`, if its stamp is unchanged.
    pub fn lookup(&self, path: &[u8], stamp: &Stamp) -> Option<&[ChunkId]> {
        self.entries
            .get(path)
            .filter(|c| c.stamp == *stamp)
            .map(|c| c.chunks.as_slice())
    }

    /// True if `path` was in the last backup (changed or not).
    pub fn lookup_any(&self, path: &[u8]) -> bool {
        self.entries.contains_key(path)
    }

    /// Records a file.
    pub fn insert(&mut self, path: Vec<u8>, cached: Cached) {
        self.entries.insert(path, cached);
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every path the cache holds (raw bytes), in no order.
    pub fn paths(&self) -> impl Iterator<Item = &[u8]> {
        self.entries.keys().map(Vec::as_slice)
    }

    /// Every chunk id the cache names.
    pub fn chunk_ids(&self) -> impl Iterator<Item = &ChunkId> {
        self.entries.values().flat_map(|c| c.chunks.iter())
    }

    /// Writes the cache atomically.
    pub fn save(&self, path: &Path, keys: &Keys) -> Result<()> {
        atomic_write(path, &encode(self, &key_tag(keys)), false)
    }
}

fn encode(cache: &FilesCache, tag: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + cache.entries.len() * 128);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(tag);
    out.extend_from_slice(&(cache.entries.len() as u64).to_le_bytes());
    for (path, c) in &cache.entries {
        out.extend_from_slice(&(path.len() as u32).to_le_bytes());
        out.extend_from_slice(path);
        out.extend_from_slice(&c.stamp.size.to_le_bytes());
        for t in [c.stamp.mtime, c.stamp.ctime] {
            out.extend_from_slice(&t.secs.to_le_bytes());
            out.extend_from_slice(&t.nanos.to_le_bytes());
        }
        out.extend_from_slice(&c.stamp.ino.to_le_bytes());
        out.extend_from_slice(&(c.chunks.len() as u32).to_le_bytes());
        for id in &c.chunks {
            out.extend_from_slice(id.as_bytes());
        }
    }
    let sum = blake3::hash(&out);
    out.extend_from_slice(sum.as_bytes());
    out
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], &'static str> {
        if self.0.len() < n {
            return Err("truncated");
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u32(&mut self) -> Result<u32, &'static str> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> Result<u64, &'static str> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn time(&mut self) -> Result<Timestamp, &'static str> {
        let secs = self.u64()? as i64;
        let nanos = self.u32()?;
        Ok(Timestamp { secs, nanos })
    }
}

fn decode(bytes: &[u8], tag: &[u8; 32]) -> Result<FilesCache, &'static str> {
    if bytes.len() < 4 + 1 + 32 + 8 + 32 || &bytes[..4] != MAGIC {
        return Err("not a files cache");
    }
    if bytes[4] != VERSION {
        return Err("of another version");
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if blake3::hash(body).as_bytes() != sum {
        return Err("damaged");
    }
    if &body[5..37] != tag {
        return Err("from another key");
    }
    let mut c = Cursor(&body[37..]);
    let count = c.u64()?;
    let mut entries = HashMap::with_capacity(count.min(1 << 20) as usize);
    for _ in 0..count {
        let n = c.u32()? as usize;
        let path = c.take(n)?.to_vec();
        let size = c.u64()?;
        let mtime = c.time()?;
        let ctime = c.time()?;
        let ino = c.u64()?;
        let k = c.u32()? as usize;
        let ids = c.take(k.checked_mul(32).ok_or("damaged")?)?;
        let chunks = ids
            .chunks_exact(32)
            .map(|b| ChunkId::from_bytes(b.try_into().unwrap()))
            .collect();
        entries.insert(
            path,
            Cached {
                stamp: Stamp {
                    size,
                    mtime,
                    ctime,
                    ino,
                },
                chunks,
            },
        );
    }
    if !c.0.is_empty() {
        return Err("damaged");
    }
    Ok(FilesCache { entries })
}

#[cfg(test)]
mod tests {
    use super::*;
    use coffre_core::MasterKey;

    #[test]
    fn the_cache_round_trips_and_refuses_damage_and_other_keys() {
        let keys = Keys::derive(&MasterKey::from_bytes([1; 32]));
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("files");
        let stamp = Stamp {
            size: 10,
            mtime: Timestamp { secs: 5, nanos: 6 },
            ctime: Timestamp { secs: 7, nanos: 8 },
            ino: 9,
        };
        let mut cache = FilesCache::default();
        cache.insert(
            b"/home/a".to_vec(),
            Cached {
                stamp,
                chunks: vec![ChunkId::from_bytes([3; 32])],
            },
        );
        cache.save(&path, &keys).unwrap();
        let (back, warn) = FilesCache::load(&path, &keys);
        assert!(warn.is_none());
        assert_eq!(
            back.lookup(b"/home/a", &stamp).unwrap(),
            &[ChunkId::from_bytes([3; 32])]
        );
        let changed = Stamp { ino: 10, ..stamp };
        assert!(
            back.lookup(b"/home/a", &changed).is_none(),
            "another inode is another file"
        );

        let other = Keys::derive(&MasterKey::from_bytes([2; 32]));
        let (empty, warn) = FilesCache::load(&path, &other);
        assert!(empty.is_empty() && warn.unwrap().contains("another key"));

        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let (empty, warn) = FilesCache::load(&path, &keys);
        assert!(empty.is_empty() && warn.unwrap().contains("damaged"));
    }

    /// The known-answer key of `crates/core/src/known_answers.rs`.
    fn known_answer_keys() -> Keys {
        Keys::derive(&MasterKey::from_bytes(*b"coffre known-answer master key!!"))
    }

    fn known_answer_entry(path: &[u8], n: u8) -> (Vec<u8>, Cached) {
        let cached = Cached {
            stamp: Stamp {
                size: 1_000_000 + n as u64,
                mtime: Timestamp {
                    secs: 1_795_000_000,
                    nanos: 123_456_789,
                },
                // Before 1970: the seconds are a signed i64.
                ctime: Timestamp {
                    secs: -2,
                    nanos: 999_999_999,
                },
                ino: 0x0102_0304_0506_0708,
            },
            chunks: (0..n)
                .map(|i| ChunkId::from_bytes([0xa0 + i; 32]))
                .collect(),
        };
        (path.to_vec(), cached)
    }

    /// Known answer: fails if a byte of the files cache's format changes
    /// (docs/format.md, "Files cache"). Written with one entry, because
    /// entries are written in the map's order, which is not fixed; a
    /// frozen cache of two entries, one with no chunk, is read back.
    #[test]
    fn known_answer_bytes() {
        let keys = known_answer_keys();
        let tag = key_tag(&keys);
        assert_eq!(
            hex::encode(tag),
            "acec0ac48984b888baae98115493d55fb510e9f7c8215add1c7958807dafc141"
        );
        let (path, cached) = known_answer_entry(b"/home/asso/compta.ods", 2);
        let mut cache = FilesCache::default();
        cache.insert(path, cached);
        let bytes = encode(&cache, &tag);
        assert_eq!(
            hex::encode(&bytes),
            concat!(
                "4346464301acec0ac48984b888baae98115493d55fb510e9f7c8215add1c7958",
                "807dafc1410100000000000000150000002f686f6d652f6173736f2f636f6d70",
                "74612e6f647342420f0000000000c086fd6a0000000015cd5b07feffffffffff",
                "ffffffc99a3b080706050403020102000000a0a0a0a0a0a0a0a0a0a0a0a0a0a0",
                "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a1a1a1a1a1a1a1a1a1a1a1a1a1a1",
                "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a10fb35330c359a1d27c62b33d63a0",
                "a74a244998d5c1c5e4a04ea188e55131fb2c",
            )
        );
        assert_eq!(decode(&bytes, &tag).unwrap().entries, cache.entries);

        let two = hex::decode(concat!(
            "4346464301acec0ac48984b888baae98115493d55fb510e9f7c8215add1c7958",
            "807dafc1410200000000000000150000002f686f6d652f6173736f2f636f6d70",
            "74612e6f647342420f0000000000c086fd6a0000000015cd5b07feffffffffff",
            "ffffffc99a3b080706050403020102000000a0a0a0a0a0a0a0a0a0a0a0a0a0a0",
            "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a1a1a1a1a1a1a1a1a1a1a1a1a1a1",
            "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a10f0000002f686f6d652f6173736f",
            "2f7669646540420f0000000000c086fd6a0000000015cd5b07feffffffffffff",
            "ffffc99a3b0807060504030201000000003393a634775eb76dd93c3a7bb72b6e",
            "9b4948ffef23c09f847be224711f8cdca0",
        ))
        .unwrap();
        let back = decode(&two, &tag).unwrap();
        let expected: HashMap<Vec<u8>, Cached> = [
            known_answer_entry(b"/home/asso/compta.ods", 2),
            known_answer_entry(b"/home/asso/vide", 0),
        ]
        .into_iter()
        .collect();
        assert_eq!(back.entries, expected);
        assert_eq!(back.chunk_ids().count(), 2);
    }
}
