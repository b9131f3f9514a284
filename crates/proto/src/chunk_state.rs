//! [`ChunkState`]: what `ChunkTrust` answers for one id (protocol version
//! 3, the dedup trust rule of issue 17). It imports nothing of the crate, so
//! that `show` (its `Debug` view) and `values` both stand above it.

/// Whether the server has a chunk, as the asking device may rely on it
/// ([`crate::Response::ChunkTrust`], protocol version 3; the dedup trust rule
/// of issue 17). One byte on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChunkState {
    /// The server has no copy: upload it.
    Absent,
    /// The server has a copy this device wrote, verified, or that was stored
    /// before the rule: skip it.
    Trusted,
    /// The server has only copies that other devices wrote and this device
    /// has not verified: fetch one and check it (then `Vouch`), or upload
    /// this device's own copy.
    Untrusted,
}

impl ChunkState {
    /// The byte on the wire.
    pub(crate) fn to_u8(self) -> u8 {
        match self {
            ChunkState::Absent => 0,
            ChunkState::Trusted => 1,
            ChunkState::Untrusted => 2,
        }
    }

    /// The state of a byte on the wire, `None` for an unknown one.
    pub(crate) fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(ChunkState::Absent),
            1 => Some(ChunkState::Trusted),
            2 => Some(ChunkState::Untrusted),
            _ => None,
        }
    }
}
