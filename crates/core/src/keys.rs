//! Subscriber keys.
//!
//! One master key per subscriber: 32 random bytes, created by the first device
//! that enrols. Every key actually used is derived from it with BLAKE3
//! `derive_key` and a distinct, frozen context string, so the keys are
//! independent and the master key itself never touches data:
//!
//! | sub-key        | context string                                  | used for                           |
//! |----------------|-------------------------------------------------|------------------------------------|
//! | id key         | `coffre 2026-11-23 chunk id key v1`             | keyed BLAKE3 chunk ids             |
//! | encryption key | `coffre 2026-11-23 blob encryption key v1`      | XChaCha20-Poly1305 of blobs, manifests |
//! | chunker seed   | `coffre 2026-11-23 chunker gear seed v1`        | the FastCDC gear table             |
//!
//! The contexts are part of the format (docs/format.md) and frozen by
//! known-answer tests: changing one would make every existing backup unreadable.

use zeroize::{Zeroize, ZeroizeOnDrop};

use crate::chunker::GearTable;
use crate::error::{Error, Result};

pub(crate) const CONTEXT_ID_KEY: &str = "coffre 2026-11-23 chunk id key v1";
pub(crate) const CONTEXT_ENC_KEY: &str = "coffre 2026-11-23 blob encryption key v1";
pub(crate) const CONTEXT_CHUNKER_SEED: &str = "coffre 2026-11-23 chunker gear seed v1";

/// A subscriber's master key. Zeroed when dropped; `Debug` never prints it.
#[derive(Clone, Zeroize, ZeroizeOnDrop, PartialEq, Eq)]
pub struct MasterKey([u8; 32]);

impl MasterKey {
    /// 32 bytes from the operating system's random number generator.
    pub fn generate() -> Result<Self> {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(|e| Error::Random(e.to_string()))?;
        Ok(MasterKey(b))
    }

    /// Wraps known bytes (key files, tests).
    pub fn from_bytes(b: [u8; 32]) -> Self {
        MasterKey(b)
    }

    /// The raw bytes, for wrapping into a key file.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// The keys derived from a master key: everything the hot path needs.
pub struct Keys {
    id_key: [u8; 32],
    enc_key: [u8; 32],
    gear: GearTable,
}

impl Keys {
    /// Derives every sub-key from the master key.
    pub fn derive(master: &MasterKey) -> Self {
        let id_key = blake3::derive_key(CONTEXT_ID_KEY, master.as_bytes());
        let enc_key = blake3::derive_key(CONTEXT_ENC_KEY, master.as_bytes());
        let seed = blake3::derive_key(CONTEXT_CHUNKER_SEED, master.as_bytes());
        Keys {
            id_key,
            enc_key,
            gear: GearTable::from_seed(&seed),
        }
    }

    pub(crate) fn id_key(&self) -> &[u8; 32] {
        &self.id_key
    }

    pub(crate) fn enc_key(&self) -> &[u8; 32] {
        &self.enc_key
    }

    /// The subscriber's FastCDC gear table.
    pub fn gear(&self) -> &GearTable {
        &self.gear
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        self.id_key.zeroize();
        self.enc_key.zeroize();
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}
