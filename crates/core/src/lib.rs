//! coffre's core: everything between a file's bytes and an encrypted blob, and
//! the formats that must still read in ten years. No async, no network.
//!
//! - [`keys`] and [`keyfile`]: the subscriber's master key, its derived sub-keys,
//!   and the key file that wraps it with Argon2id(passphrase);
//! - [`chunker`]: FastCDC 2020 with a keyed gear table, streaming;
//! - [`ChunkId`]: keyed BLAKE3;
//! - [`blob`]: compress (zstd, or raw), pad (Padmé), encrypt (XChaCha20-Poly1305);
//! - [`tree`] and [`manifest`]: directory listings and snapshots;
//! - [`pipeline`]: all of the above on all cores with bounded memory;
//! - [`console`]: what the programs print, ending quietly when the reader of a pipe has gone.
//!
//! Every format is specified byte by byte in `docs/format.md` and frozen by the
//! known-answer tests in `src/known_answers.rs`.

mod aead;
pub mod benchmark;
pub mod blob;
pub mod chunker;
mod codec;
pub mod console;
mod error;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod id;
pub mod keyfile;
pub mod keys;
pub mod manifest;
mod padding;
pub mod pipeline;
mod time;
pub mod tree;
pub mod units;

pub use blob::{BlobKind, Sealer};
pub use error::{Error, Object, Result};
pub use id::ChunkId;
pub use keyfile::{KdfParams, KeyFile};
pub use keys::{Keys, MasterKey};
pub use manifest::{snapshot_id, Manifest, SnapshotId};
pub use padding::padme;
pub use time::{civil_from_days, utc_minute, Timestamp};
pub use tree::{Content, Entry, Tree};

#[cfg(test)]
mod known_answers;
