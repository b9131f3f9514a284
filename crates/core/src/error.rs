//! The one error type of `coffre-core`.
//!
//! Policy (after rustic_core's `error.rs`): every variant says *what* failed in
//! words a technician understands and, where there is one, *what to do*. Callers
//! match on the variant: a wrong passphrase, a corrupt blob and an unknown format
//! version need different answers, so they are different variants, never strings.

use std::fmt;

/// What kind of object an error is about. Named in every corruption message so
/// that "corrupt" is never anonymous.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    /// An encrypted blob (a chunk of file data or a tree), by its chunk id.
    Blob,
    /// A directory listing (tree).
    Tree,
    /// A snapshot manifest.
    Manifest,
    /// A key file (the master key wrapped by the passphrase).
    KeyFile,
}

impl fmt::Display for Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Object::Blob => "blob",
            Object::Tree => "tree",
            Object::Manifest => "snapshot manifest",
            Object::KeyFile => "key file",
        })
    }
}

/// Errors of the core library.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The passphrase does not unlock the key file.
    #[error(
        "wrong passphrase: it does not unlock this subscriber's key \
         (check the structure's passphrase; if it is right, the key file is damaged)"
    )]
    WrongPassphrase,

    /// Bytes failed authentication or decoding: damaged in storage or transit,
    /// tampered with, or encrypted under another subscriber's key.
    #[error("{object}{at} is corrupt: {detail}")]
    Corrupt {
        /// What was being read.
        object: Object,
        /// " <id>" when the object has an id, else empty.
        at: String,
        /// What exactly is wrong.
        detail: String,
    },

    /// A format version this build does not know (written by a newer coffre).
    #[error(
        "{object} has format version {found}, but this coffre reads version {supported} only: \
         upgrade coffre to read it"
    )]
    UnsupportedVersion {
        /// What was being read.
        object: Object,
        /// The version found in the bytes.
        found: u8,
        /// The version this build reads.
        supported: u8,
    },

    /// An object would exceed a format limit.
    #[error("{object} too large: {size} bytes, the limit is {limit} bytes")]
    TooLarge {
        /// What was being written or read.
        object: Object,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },

    /// The operating system's random number generator failed.
    #[error("the system random number generator failed: {0}")]
    Random(String),

    /// Reading input failed.
    #[error("read error: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// A corruption error about `object`, optionally naming its id.
    pub(crate) fn corrupt(
        object: Object,
        id: Option<&crate::ChunkId>,
        detail: impl Into<String>,
    ) -> Self {
        Error::Corrupt {
            object,
            at: id.map(|id| format!(" {}", id.short())).unwrap_or_default(),
            detail: detail.into(),
        }
    }

    /// True for errors that mean "these bytes are damaged or not ours".
    pub fn is_corrupt(&self) -> bool {
        matches!(self, Error::Corrupt { .. })
    }
}

/// Result alias of the core library.
pub type Result<T, E = Error> = std::result::Result<T, E>;
