//! Chunk ids: `BLAKE3-keyed(id_key, plaintext)`, 32 bytes.
//!
//! Keyed per subscriber, so the server cannot confirm that a subscriber holds a
//! known file by hashing it, and two subscribers' ids for the same bytes differ.

use std::fmt;

use crate::keys::Keys;

/// The id of a chunk of file data or of a tree blob.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId([u8; 32]);

impl ChunkId {
    /// Length in bytes.
    pub const LEN: usize = 32;

    /// Computes the id of `data` under the subscriber's id key.
    #[inline]
    pub fn compute(keys: &Keys, data: &[u8]) -> Self {
        ChunkId(*blake3::keyed_hash(keys.id_key(), data).as_bytes())
    }

    /// Wraps raw bytes.
    pub const fn from_bytes(b: [u8; 32]) -> Self {
        ChunkId(b)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters.
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut b = [0u8; 32];
        hex::decode_to_slice(s, &mut b).ok()?;
        Some(ChunkId(b))
    }

    /// The first 8 hex characters, for messages.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Display for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ChunkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkId({})", self.short())
    }
}
