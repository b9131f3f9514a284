//! coffre's server-side storage, with no network: durable writes today; packs,
//! the catalogue, quotas, retention and GC as they arrive.
//!
//! [`durable`] is the only module that puts bytes on disk. Everything that must
//! survive a crash (packs, manifests, configuration) goes through
//! [`write_atomic`], which guarantees that a crash at any instant leaves either
//! the old or the new contents, and that `Ok` means the data is on disk.

pub mod durable;

pub use durable::{sync_dir, write_atomic};
