//! The bottom of the crate: the id type, the continuation type number, and
//! every cap a message field is checked against, with the sizes of the fields
//! that the caps of whole messages are computed from.
//!
//! This module imports nothing of the crate, so everything above it (the
//! message table in `types.rs`, errors, the payload codec, the assembler) can
//! use these facts without an import circle.
//!
//! Every cap is frozen with the protocol: a larger one is a new protocol
//! version (docs/protocol.md, "Changing the protocol"). Each cap of a whole
//! message (`max_request_len`, `max_response_len`) is computed from these in
//! the message table and is exactly the size of the largest valid payload of
//! that type; `tests/known_answers.rs` freezes the figures.

/// A chunk id or snapshot id: 32 bytes, opaque to the protocol.
pub type Id = [u8; 32];

/// The type of every frame of a multi-frame message but its last.
pub const CONTINUATION: u16 = 0xFFFF;

/// Most chunk ids one [`crate::Request::HasChunks`] may carry (2 MiB of ids).
pub const MAX_IDS_PER_REQUEST: usize = 65_536;

/// Largest blob in [`crate::Request::PutChunk`] or [`crate::Response::Chunk`]:
/// a 12 MiB tree blob with its worst-case padding and header fits, and a data
/// blob (chunks are at most 4 MiB) is far below. One such message fits one
/// frame.
pub const MAX_BLOB_LEN: usize = 13 * 1024 * 1024;

/// Most chunk ids one [`crate::Request::GetChunks`] may carry.
pub const MAX_IDS_PER_GET: usize = 1024;

/// Most bytes of blobs one [`crate::Response::Chunks`] carries: the server
/// answers the ids that fit, in order, and the client asks again for the
/// rest. One blob of [`MAX_BLOB_LEN`] always fits.
pub const MAX_CHUNKS_REPLY_BLOBS_LEN: usize = 16 * 1024 * 1024;

/// Most blobs one [`crate::Request::PutChunks`] may carry.
pub const MAX_BLOBS_PER_PUT: usize = 1024;

/// Most bytes of blobs one [`crate::Request::PutChunks`] carries (a larger
/// blob goes alone, in a [`crate::Request::PutChunk`]).
pub const MAX_PUT_BLOBS_LEN: usize = 16 * 1024 * 1024;

/// Largest snapshot manifest in [`crate::Request::Commit`] or
/// [`crate::Response::Manifest`]: about 8 million chunk ids, so several TB of
/// data in one snapshot.
pub const MAX_MANIFEST_LEN: usize = 256 * 1024 * 1024;

/// Largest key file in [`crate::Request::PutKey`] or [`crate::Response::Key`]
/// (today's key file is 106 bytes).
pub const MAX_KEY_FILE_LEN: usize = 1024;

/// Largest subscriber or device name, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 255;

/// Largest [`crate::ErrorReply::message`], in bytes of UTF-8.
pub const MAX_ERROR_MESSAGE_LEN: usize = 4096;

/// Most entries one [`crate::Response::Snapshots`] may carry.
pub const MAX_SNAPSHOTS_PER_LIST: usize = 1_000_000;

/// Bytes of an id on the wire.
pub(crate) const ID_LEN: usize = 32;

/// Bytes of the `u32` length or count before a byte string or a list.
pub(crate) const LEN_LEN: usize = 4;

/// A name field at its largest: length, then [`MAX_NAME_LEN`] bytes.
pub(crate) const NAME_FIELD_MAX: usize = LEN_LEN + MAX_NAME_LEN;

/// Smallest encoded [`crate::SnapshotEntry`]: id, time, empty device, two
/// counters.
pub(crate) const SNAPSHOT_ENTRY_MIN: usize = ID_LEN + 8 + LEN_LEN + 8 + 8;

/// Largest encoded [`crate::SnapshotEntry`]: its device name at its cap.
pub(crate) const SNAPSHOT_ENTRY_MAX: usize = SNAPSHOT_ENTRY_MIN + MAX_NAME_LEN;

/// A full [`crate::Request::PutChunks`]: count, then an id and a length per
/// blob, then the blobs.
pub(crate) const MAX_PUT_CHUNKS_LEN: usize =
    LEN_LEN + MAX_BLOBS_PER_PUT * (ID_LEN + LEN_LEN) + MAX_PUT_BLOBS_LEN;

/// A full [`crate::Response::Chunks`]: count, then a presence byte and a
/// length per entry, then the blobs.
pub(crate) const MAX_CHUNKS_REPLY_LEN: usize =
    LEN_LEN + MAX_IDS_PER_GET * (1 + LEN_LEN) + MAX_CHUNKS_REPLY_BLOBS_LEN;
