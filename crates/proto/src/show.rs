//! How message fields appear in `Debug` output, which ends up in logs.
//!
//! The rule: a log line never holds a secret nor megabytes. The device secret
//! is `<redacted>`, ids are hex, byte strings (blobs, manifests, key files)
//! show their length, lists of ids or flags their count. The message table
//! (`types.rs`) names one of these views per field (`as hex`, `as len`, ...);
//! a field without one is shown with its own `Debug`. This module imports
//! nothing of the crate but `chunk_state` (which imports nothing).

use std::fmt;

use crate::chunk_state::ChunkState;

/// A `Debug` value written by a closure (what `std::fmt::from_fn` does,
/// which is newer than the crate's minimum Rust).
pub(crate) struct Show<F>(F);

impl<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result> fmt::Debug for Show<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.0)(f)
    }
}

fn show<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result>(f: F) -> Show<F> {
    Show(f)
}

/// Formats an id as lowercase hex.
pub(crate) struct Hex<'a>(pub(crate) &'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Shows a byte string's length, not its bytes: blobs and manifests are
/// megabytes of ciphertext nobody wants in a log.
pub(crate) struct Len(pub(crate) usize);

impl fmt::Debug for Len {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0)
    }
}

/// `<redacted>`, whatever the value.
pub(crate) fn redacted<T>(_: &T) -> impl fmt::Debug {
    show(|f| f.write_str("<redacted>"))
}

/// An id as hex.
pub(crate) fn hex(id: &[u8; 32]) -> Hex<'_> {
    Hex(id)
}

/// A byte string as its length.
pub(crate) fn len(bytes: &[u8]) -> Len {
    Len(bytes.len())
}

/// An optional byte string as its length, or `None`.
pub(crate) fn opt_len(bytes: &Option<Vec<u8>>) -> Option<Len> {
    bytes.as_ref().map(|b| Len(b.len()))
}

/// A list of ids as `<n ids>`.
pub(crate) fn ids(ids: &[[u8; 32]]) -> impl fmt::Debug + '_ {
    show(move |f| write!(f, "<{} ids>", ids.len()))
}

/// `HasChunks`' flags as `<k of n present>`.
pub(crate) fn present(flags: &[bool]) -> impl fmt::Debug + '_ {
    show(move |f| {
        let k = flags.iter().filter(|&&h| h).count();
        write!(f, "<{k} of {} present>", flags.len())
    })
}

/// `ChunkTrust`'s states as `<t trusted, u untrusted of n>`.
pub(crate) fn states(states: &[ChunkState]) -> impl fmt::Debug + '_ {
    show(move |f| {
        let t = states.iter().filter(|&&s| s == ChunkState::Trusted).count();
        let u = states
            .iter()
            .filter(|&&s| s == ChunkState::Untrusted)
            .count();
        write!(f, "<{t} trusted, {u} untrusted of {}>", states.len())
    })
}

/// `StoredChunks`' flags as `<k of n new>`.
pub(crate) fn new(flags: &[bool]) -> impl fmt::Debug + '_ {
    show(move |f| {
        let k = flags.iter().filter(|&&n| n).count();
        write!(f, "<{k} of {} new>", flags.len())
    })
}

/// `PutChunks`' blobs as `<n blobs, b bytes>`.
pub(crate) fn blobs(blobs: &[([u8; 32], Vec<u8>)]) -> impl fmt::Debug + '_ {
    show(move |f| {
        let bytes = blobs.iter().map(|(_, b)| b.len()).sum::<usize>();
        write!(f, "<{} blobs, {bytes} bytes>", blobs.len())
    })
}

/// `Chunks`' blobs as `<k of n present, b bytes>`.
pub(crate) fn some_blobs(blobs: &[Option<Vec<u8>>]) -> impl fmt::Debug + '_ {
    show(move |f| {
        let k = blobs.iter().flatten().count();
        let bytes = blobs.iter().flatten().map(Vec::len).sum::<usize>();
        write!(f, "<{k} of {} present, {bytes} bytes>", blobs.len())
    })
}
