//! `Client`: a subscriber's keys and a sealer, making real blobs and sealed
//! manifests with coffre-core exactly as the `coffre` program does, for the
//! tests that talk to a store or a daemon without running the program.
//!
//! The keys come from one byte (`MasterKey::from_bytes([master; 32])`): two
//! clients made with the same byte are the same subscriber's PCs, two bytes
//! are two subscribers whose ids never match. The sealer compresses at zstd
//! level 3, the program's default.
//!
//! Two shapes of manifest, each the one its suite's assertions count on:
//! [`Client::manifest_at`] (a given second, 1000 logical bytes and one file
//! a chunk: the store's usage tests add these up) and [`Client::manifest`]
//! (now, one file of one byte: the end-to-end tests only need a valid one).
//! [`Client::seal_manifest`] makes any other.

use coffre_core::blob::{self, BlobKind};
use coffre_core::{ChunkId, Keys, Manifest, MasterKey, Sealer, Timestamp};

/// A subscriber's keys and a sealer.
#[derive(Debug)]
pub struct Client {
    pub keys: Keys,
    pub sealer: Sealer,
}

impl Client {
    /// The client of the subscriber whose master key is 32 times `master`.
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

    /// Decrypts (and so verifies) a data blob fetched back.
    pub fn open(&self, id: &ChunkId, bytes: &[u8]) -> Vec<u8> {
        blob::open(&self.keys, BlobKind::Data, id, bytes).unwrap()
    }

    /// A sealed manifest of `device` made at `time`, listing `chunks`, that
    /// says it holds `logical_bytes` in `file_count` files.
    pub fn seal_manifest(
        &self,
        device: &str,
        time: Timestamp,
        chunks: Vec<ChunkId>,
        logical_bytes: u64,
        file_count: u64,
    ) -> Vec<u8> {
        let mut m = Manifest::bare(device, time, chunks);
        m.public.logical_bytes = logical_bytes;
        m.public.file_count = file_count;
        m.seal(&self.keys).unwrap()
    }

    /// A sealed manifest made by `device` at second `secs`, listing
    /// `chunks`: 1000 logical bytes and one file per chunk.
    pub fn manifest_at(&self, device: &str, secs: i64, chunks: &[ChunkId]) -> Vec<u8> {
        let n = chunks.len() as u64;
        self.seal_manifest(
            device,
            Timestamp { secs, nanos: 0 },
            chunks.to_vec(),
            1000 * n,
            n,
        )
    }

    /// A sealed manifest made by `device` now, listing `chunks`: one file of
    /// one byte.
    pub fn manifest(&self, device: &str, chunks: Vec<ChunkId>) -> Vec<u8> {
        self.seal_manifest(device, Timestamp::now(), chunks, 1, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_open_and_manifests_say_what_their_suites_count_on() {
        let mut c = Client::new(1);
        let (id, blob) = c.blob(b"some bytes");
        assert_eq!(c.open(&id, &blob), b"some bytes");
        assert_ne!(Client::new(2).blob(b"some bytes").0, id);

        let m = Manifest::open(&c.keys, &c.manifest_at("pc", 5, &[id])).unwrap();
        assert_eq!(m.public.time, Timestamp { secs: 5, nanos: 0 });
        assert_eq!((m.public.logical_bytes, m.public.file_count), (1000, 1));
        assert_eq!(
            (m.public.device.as_str(), m.public.chunks),
            ("pc", vec![id])
        );
        let m = Manifest::open(&c.keys, &c.manifest("pc", vec![])).unwrap();
        assert_eq!((m.public.logical_bytes, m.public.file_count), (1, 1));
    }
}
