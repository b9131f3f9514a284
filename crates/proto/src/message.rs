//! Messages: the requests a device sends and the responses the server gives,
//! in named pairs, with their stable type numbers, caps and payload codec.
//!
//! Each request travels on its own QUIC bidirectional stream: the client
//! writes one request message and finishes its send side, the server writes
//! exactly one response message (the matching one or [`Response::Error`]) and
//! finishes. A message is its payload cut into frames (see
//! [`encode_request`]); [`crate::Assembler`] glues the frames back together.
//!
//! | request (type) | response (type) |
//! | --- | --- |
//! | `Auth` (0x0001) | `AuthOk` (0x8001) |
//! | `HasChunks` (0x0002) | `HasChunks` (0x8002) |
//! | `PutChunk` (0x0003) | `Stored` (0x8003) |
//! | `Commit` (0x0004) | `Committed` (0x8004) |
//! | `ListSnapshots` (0x0005) | `Snapshots` (0x8005) |
//! | `GetManifest` (0x0006) | `Manifest` (0x8006) |
//! | `GetChunk` (0x0007) | `Chunk` (0x8007) |
//! | `PutKey` (0x0008) | `KeyStored` (0x8008) |
//! | `GetKey` (0x0009) | `Key` (0x8009) |
//! | `Forget` (0x000A) | `Forgotten` (0x800A) |
//! | `Status` (0x000B) | `Status` (0x800B) |
//! | `GetChunks` (0x000C, version 2) | `Chunks` (0x800C) |
//! | `PutChunks` (0x000D, version 2) | `StoredChunks` (0x800D) |
//! | any | `Error` (0x8000) |
//!
//! The response to request `0x00NN` is `0x80NN`; [`CONTINUATION`] (`0xFFFF`)
//! marks every frame of a message but its last. Payloads are little-endian
//! fixed-width integers, 32-byte ids, and `u32`-length-prefixed byte strings;
//! `docs/protocol.md` gives every payload byte by byte, and the known-answer
//! tests in `tests/known_answers.rs` freeze them.

use std::fmt;

use crate::error::ProtoError;
use crate::wire::{Counter, Framer, Reader, Sink};

/// A chunk id or snapshot id: 32 bytes, opaque to the protocol.
pub type Id = [u8; 32];

/// The type of every frame of a multi-frame message but its last.
pub const CONTINUATION: u16 = 0xFFFF;

/// Most chunk ids one [`Request::HasChunks`] may carry (2 MiB of ids).
pub const MAX_IDS_PER_REQUEST: usize = 65_536;

/// Largest blob in [`Request::PutChunk`] or [`Response::Chunk`]: a 12 MiB
/// tree blob with its worst-case padding and header fits, and a data blob
/// (chunks are at most 4 MiB) is far below. One such message fits one frame.
pub const MAX_BLOB_LEN: usize = 13 * 1024 * 1024;

/// Most chunk ids one [`Request::GetChunks`] may carry.
pub const MAX_IDS_PER_GET: usize = 1024;

/// Most bytes of blobs one [`Response::Chunks`] carries: the server answers
/// the ids that fit, in order, and the client asks again for the rest. One
/// blob of [`MAX_BLOB_LEN`] always fits.
pub const MAX_CHUNKS_REPLY_BLOBS_LEN: usize = 16 * 1024 * 1024;

/// Most blobs one [`Request::PutChunks`] may carry.
pub const MAX_BLOBS_PER_PUT: usize = 1024;

/// Most bytes of blobs one [`Request::PutChunks`] carries (a larger blob goes
/// alone, in a [`Request::PutChunk`]).
pub const MAX_PUT_BLOBS_LEN: usize = 16 * 1024 * 1024;

/// Largest snapshot manifest in [`Request::Commit`] or [`Response::Manifest`]:
/// about 8 million chunk ids, so several TB of data in one snapshot.
pub const MAX_MANIFEST_LEN: usize = 256 * 1024 * 1024;

/// Largest key file in [`Request::PutKey`] or [`Response::Key`] (today's key
/// file is 106 bytes).
pub const MAX_KEY_FILE_LEN: usize = 1024;

/// Largest subscriber or device name, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 255;

/// Largest [`ErrorReply::message`], in bytes of UTF-8.
pub const MAX_ERROR_MESSAGE_LEN: usize = 4096;

/// Most entries one [`Response::Snapshots`] may carry.
pub const MAX_SNAPSHOTS_PER_LIST: usize = 1_000_000;

/// Message type numbers. Frozen: never reuse or renumber one.
pub(crate) mod types {
    pub(crate) const AUTH: u16 = 0x0001;
    pub(crate) const HAS_CHUNKS: u16 = 0x0002;
    pub(crate) const PUT_CHUNK: u16 = 0x0003;
    pub(crate) const COMMIT: u16 = 0x0004;
    pub(crate) const LIST_SNAPSHOTS: u16 = 0x0005;
    pub(crate) const GET_MANIFEST: u16 = 0x0006;
    pub(crate) const GET_CHUNK: u16 = 0x0007;
    pub(crate) const PUT_KEY: u16 = 0x0008;
    pub(crate) const GET_KEY: u16 = 0x0009;
    pub(crate) const FORGET: u16 = 0x000A;
    pub(crate) const STATUS: u16 = 0x000B;
    pub(crate) const GET_CHUNKS: u16 = 0x000C;
    pub(crate) const PUT_CHUNKS: u16 = 0x000D;

    pub(crate) const ERROR: u16 = 0x8000;
    pub(crate) const AUTH_OK: u16 = 0x8001;
    pub(crate) const HAS_CHUNKS_REPLY: u16 = 0x8002;
    pub(crate) const STORED: u16 = 0x8003;
    pub(crate) const COMMITTED: u16 = 0x8004;
    pub(crate) const SNAPSHOTS: u16 = 0x8005;
    pub(crate) const MANIFEST: u16 = 0x8006;
    pub(crate) const CHUNK: u16 = 0x8007;
    pub(crate) const KEY_STORED: u16 = 0x8008;
    pub(crate) const KEY: u16 = 0x8009;
    pub(crate) const FORGOTTEN: u16 = 0x800A;
    pub(crate) const STATUS_REPLY: u16 = 0x800B;
    pub(crate) const CHUNKS: u16 = 0x800C;
    pub(crate) const STORED_CHUNKS: u16 = 0x800D;
}
use types::*;

/// What a device may do, as the server tells it in [`Response::AuthOk`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Adds data and reads its subscriber's data; cannot delete anything.
    Backup,
    /// Also forgets snapshots: a technician's device.
    Admin,
}

impl Role {
    fn to_u8(self) -> u8 {
        match self {
            Role::Backup => 1,
            Role::Admin => 2,
        }
    }

    fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Role::Backup),
            2 => Some(Role::Admin),
            _ => None,
        }
    }

    /// `"backup"` or `"admin"`, as on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Backup => "backup",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a device asks the server. Each goes on its own bidirectional stream.
#[derive(Clone, PartialEq, Eq)]
pub enum Request {
    /// Prove who this device is: the secret from its enrolment token. Only as
    /// the first request of a connection, right after the hello.
    Auth {
        /// The device secret. Never logged: `Debug` redacts it.
        secret: [u8; 32],
    },
    /// Which of these chunks does the server already have? At most
    /// [`MAX_IDS_PER_REQUEST`] ids.
    HasChunks {
        /// Chunk ids to look up.
        ids: Vec<Id>,
    },
    /// Store one encrypted blob under its chunk id.
    PutChunk {
        /// The chunk id.
        id: Id,
        /// The encrypted blob, at most [`MAX_BLOB_LEN`] bytes.
        blob: Vec<u8>,
    },
    /// Make a snapshot visible: every chunk it lists must be stored.
    Commit {
        /// The snapshot manifest, at most [`MAX_MANIFEST_LEN`] bytes.
        manifest: Vec<u8>,
    },
    /// List this subscriber's snapshots.
    ListSnapshots,
    /// Fetch one snapshot's manifest.
    GetManifest {
        /// The snapshot id.
        snapshot: Id,
    },
    /// Fetch one encrypted blob.
    GetChunk {
        /// The chunk id.
        id: Id,
    },
    /// Keep the subscriber's wrapped key file on the server.
    PutKey {
        /// The key file, at most [`MAX_KEY_FILE_LEN`] bytes.
        key_file: Vec<u8>,
    },
    /// Fetch the subscriber's wrapped key file, if one was stored.
    GetKey,
    /// Delete a snapshot (admin devices only).
    Forget {
        /// The snapshot id.
        snapshot: Id,
    },
    /// This subscriber's quota, usage and last backup.
    Status,
    /// Fetch several encrypted blobs at once (protocol version 2): a restore
    /// of many small files asks for them in one request instead of one each.
    GetChunks {
        /// Chunk ids, at most [`MAX_IDS_PER_GET`].
        ids: Vec<Id>,
    },
    /// Store several encrypted blobs at once (protocol version 2): a backup
    /// of many small files sends them in one request instead of one each.
    PutChunks {
        /// (chunk id, blob), at most [`MAX_BLOBS_PER_PUT`] of them and
        /// [`MAX_PUT_BLOBS_LEN`] bytes of blobs.
        blobs: Vec<(Id, Vec<u8>)>,
    },
}

/// One line of [`Response::Snapshots`].
#[derive(Clone, PartialEq, Eq)]
pub struct SnapshotEntry {
    /// The snapshot id.
    pub id: Id,
    /// When the snapshot was taken, as the client reported it (seconds since
    /// the Unix epoch, UTC).
    pub time: i64,
    /// The device that made it, at most [`MAX_NAME_LEN`] bytes.
    pub device: String,
    /// Bytes of file data the snapshot covers, before dedup and compression,
    /// as the client reported it.
    pub logical_bytes: u64,
    /// Number of files, as the client reported it.
    pub file_count: u64,
}

/// What the server answers: the response matching the request, or
/// [`Response::Error`].
#[derive(Clone, PartialEq, Eq)]
pub enum Response {
    /// Answers [`Request::Auth`]: who this device is.
    AuthOk {
        /// The subscriber, at most [`MAX_NAME_LEN`] bytes.
        subscriber: String,
        /// The device, at most [`MAX_NAME_LEN`] bytes.
        device: String,
        /// What it may do.
        role: Role,
    },
    /// Answers [`Request::HasChunks`]: one flag per id asked, in order.
    HasChunks {
        /// `have[i]` is true when the server has the i-th id.
        have: Vec<bool>,
    },
    /// Answers [`Request::PutChunk`]: the blob is durable.
    Stored {
        /// False when the server already had it (nothing was added).
        new: bool,
    },
    /// Answers [`Request::Commit`]: the snapshot is durable and visible.
    Committed {
        /// The snapshot id.
        snapshot: Id,
    },
    /// Answers [`Request::ListSnapshots`].
    Snapshots {
        /// At most [`MAX_SNAPSHOTS_PER_LIST`] entries.
        list: Vec<SnapshotEntry>,
    },
    /// Answers [`Request::GetManifest`].
    Manifest {
        /// The manifest as committed.
        bytes: Vec<u8>,
    },
    /// Answers [`Request::GetChunk`].
    Chunk {
        /// The blob as stored.
        blob: Vec<u8>,
    },
    /// Answers [`Request::PutKey`]: the key file is durable.
    KeyStored,
    /// Answers [`Request::GetKey`].
    Key {
        /// `None` when the subscriber has no key yet (first enrolment).
        key_file: Option<Vec<u8>>,
    },
    /// Answers [`Request::Forget`].
    Forgotten,
    /// Answers [`Request::Status`].
    Status {
        /// The subscriber, at most [`MAX_NAME_LEN`] bytes.
        subscriber: String,
        /// The hard quota, in bytes stored.
        quota_bytes: u64,
        /// Bytes stored now (after dedup, compression, padding, encryption).
        used_bytes: u64,
        /// Number of snapshots.
        snapshots: u64,
        /// Time of the latest snapshot, seconds since the Unix epoch.
        last_backup: Option<i64>,
    },
    /// Answers [`Request::GetChunks`]: the blobs of the first ids asked, in
    /// order, as many as fit in [`MAX_CHUNKS_REPLY_BLOBS_LEN`] (at least one
    /// when any was asked); the client asks again for the ids left.
    Chunks {
        /// `None` for an id the server does not have.
        blobs: Vec<Option<Vec<u8>>>,
    },
    /// Answers [`Request::PutChunks`]: every blob is stored, as durable as
    /// after [`Response::Stored`].
    StoredChunks {
        /// `new[i]` is false when the server already had the i-th blob.
        new: Vec<bool>,
    },
    /// The request was refused; may answer any request.
    Error(ErrorReply),
}

/// Why the server refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    /// What kind of refusal: the client decides what to tell the user from it.
    pub code: ErrorCode,
    /// The server's explanation, at most [`MAX_ERROR_MESSAGE_LEN`] bytes.
    pub message: String,
    /// For [`ErrorCode::QuotaExceeded`]: bytes used; otherwise 0.
    pub used: u64,
    /// For [`ErrorCode::QuotaExceeded`]: the quota; otherwise 0.
    pub quota: u64,
}

impl ErrorReply {
    /// A refusal with no quota figures. A message longer than
    /// [`MAX_ERROR_MESSAGE_LEN`] is cut (at a character boundary) so that
    /// the reply always encodes.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_ERROR_MESSAGE_LEN {
            let mut end = MAX_ERROR_MESSAGE_LEN;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        Self {
            code,
            message,
            used: 0,
            quota: 0,
        }
    }

    /// [`ErrorCode::QuotaExceeded`] with its figures and a standard message.
    pub fn quota_exceeded(used: u64, quota: u64) -> Self {
        Self {
            used,
            quota,
            ..Self::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "the quota is full ({used} of {quota} bytes used): nothing new can be \
                     stored; data already backed up is untouched"
                ),
            )
        }
    }
}

impl fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the server refused the request ({}): {}",
            self.code, self.message
        )
    }
}

impl std::error::Error for ErrorReply {}

/// The kind of an [`ErrorReply`], with stable numbers on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 1: the request was malformed or not allowed at this point.
    BadRequest,
    /// 2: the device secret matches no device.
    UnknownDevice,
    /// 3: the device was revoked.
    Revoked,
    /// 4: this device's role may not do that (forget needs admin).
    Forbidden,
    /// 5: no such snapshot, chunk or key.
    NotFound,
    /// 6: the subscriber's quota is full; `used` and `quota` say by how much.
    QuotaExceeded,
    /// 7: a commit refers to chunks the server does not have.
    MissingChunks,
    /// 8: the server's storage is full.
    StorageFull,
    /// 9: a message or field exceeded a cap.
    TooLarge,
    /// 10: the peer speaks another protocol version.
    UnsupportedVersion,
    /// 11: the server is overloaded (too many connections or requests).
    Busy,
    /// 12: the server failed (I/O error, bug); its log has details.
    Internal,
    /// A code this build does not know (sent by a newer server). Holds the
    /// number; never build one with a number listed above.
    Other(u16),
}

impl ErrorCode {
    /// The number on the wire.
    pub fn to_u16(self) -> u16 {
        match self {
            Self::BadRequest => 1,
            Self::UnknownDevice => 2,
            Self::Revoked => 3,
            Self::Forbidden => 4,
            Self::NotFound => 5,
            Self::QuotaExceeded => 6,
            Self::MissingChunks => 7,
            Self::StorageFull => 8,
            Self::TooLarge => 9,
            Self::UnsupportedVersion => 10,
            Self::Busy => 11,
            Self::Internal => 12,
            Self::Other(n) => n,
        }
    }

    /// The code for a number on the wire; unknown numbers are kept in
    /// [`ErrorCode::Other`].
    pub fn from_u16(n: u16) -> Self {
        match n {
            1 => Self::BadRequest,
            2 => Self::UnknownDevice,
            3 => Self::Revoked,
            4 => Self::Forbidden,
            5 => Self::NotFound,
            6 => Self::QuotaExceeded,
            7 => Self::MissingChunks,
            8 => Self::StorageFull,
            9 => Self::TooLarge,
            10 => Self::UnsupportedVersion,
            11 => Self::Busy,
            12 => Self::Internal,
            n => Self::Other(n),
        }
    }

    /// What a client should tell its user, in plain words, for this code
    /// (the server's message adds the details).
    pub fn advice(self) -> &'static str {
        match self {
            Self::BadRequest => {
                "the server did not understand a request: this coffre and the server may be \
                 different releases; upgrade coffre, and report a bug if it persists"
            }
            Self::UnknownDevice => {
                "the server does not know this device: ask your technician for a new enrolment \
                 token and run `coffre enrol` again"
            }
            Self::Revoked => {
                "this device was revoked on the server: ask your technician for a new enrolment \
                 token"
            }
            Self::Forbidden => {
                "this device may not do that (forgetting snapshots needs a technician's admin \
                 device)"
            }
            Self::NotFound => {
                "the server has no such snapshot or data: check the id with `coffre snapshots`"
            }
            Self::QuotaExceeded => {
                "the storage quota is full: nothing already backed up was touched; forget old \
                 snapshots or ask the association for a larger quota"
            }
            Self::MissingChunks => {
                "the server is missing data this snapshot needs: run the backup again, it \
                 re-sends what is missing"
            }
            Self::StorageFull => {
                "the server's disk is full: nothing already backed up was lost; tell your \
                 technician and retry later"
            }
            Self::TooLarge => {
                "a request exceeded a server limit: upgrade coffre, and report a bug if it \
                 persists"
            }
            Self::UnsupportedVersion => {
                "the server speaks another protocol version: upgrade coffre (or ask your \
                 technician to upgrade the server)"
            }
            Self::Busy => "the server is busy: try again in a few minutes",
            Self::Internal => {
                "the server hit an internal error: retry later, and tell your technician if it \
                 persists (the server log has the details)"
            }
            Self::Other(_) => "the server gave an error this coffre does not know: upgrade coffre",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::BadRequest => "bad request",
            Self::UnknownDevice => "unknown device",
            Self::Revoked => "device revoked",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not found",
            Self::QuotaExceeded => "quota exceeded",
            Self::MissingChunks => "missing chunks",
            Self::StorageFull => "server storage full",
            Self::TooLarge => "too large",
            Self::UnsupportedVersion => "unsupported version",
            Self::Busy => "busy",
            Self::Internal => "internal error",
            Self::Other(_) => "unknown error",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Other(n) => write!(f, "unknown error code {n}"),
            code => f.write_str(code.name()),
        }
    }
}

/// The name of a message type, e.g. `"PutChunk request"`, or `None` for a
/// number that is not a message type (including [`CONTINUATION`]).
pub fn message_name(msg_type: u16) -> Option<&'static str> {
    Some(match msg_type {
        AUTH => "Auth request",
        HAS_CHUNKS => "HasChunks request",
        PUT_CHUNK => "PutChunk request",
        COMMIT => "Commit request",
        LIST_SNAPSHOTS => "ListSnapshots request",
        GET_MANIFEST => "GetManifest request",
        GET_CHUNK => "GetChunk request",
        PUT_KEY => "PutKey request",
        GET_KEY => "GetKey request",
        FORGET => "Forget request",
        STATUS => "Status request",
        GET_CHUNKS => "GetChunks request",
        PUT_CHUNKS => "PutChunks request",
        ERROR => "Error response",
        AUTH_OK => "AuthOk response",
        HAS_CHUNKS_REPLY => "HasChunks response",
        STORED => "Stored response",
        COMMITTED => "Committed response",
        SNAPSHOTS => "Snapshots response",
        MANIFEST => "Manifest response",
        CHUNK => "Chunk response",
        KEY_STORED => "KeyStored response",
        KEY => "Key response",
        FORGOTTEN => "Forgotten response",
        STATUS_REPLY => "Status response",
        CHUNKS => "Chunks response",
        STORED_CHUNKS => "StoredChunks response",
        _ => return None,
    })
}

fn name_of(msg_type: u16) -> &'static str {
    message_name(msg_type).unwrap_or("message")
}

const ID_LEN: usize = 32;
const LEN_LEN: usize = 4;
const NAME_FIELD_MAX: usize = LEN_LEN + MAX_NAME_LEN;
/// Smallest encoded [`SnapshotEntry`]: id, time, empty device, two counters.
const SNAPSHOT_ENTRY_MIN: usize = ID_LEN + 8 + LEN_LEN + 8 + 8;
const SNAPSHOT_ENTRY_MAX: usize = SNAPSHOT_ENTRY_MIN + MAX_NAME_LEN;

const fn max(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// A full [`Request::PutChunks`]: count, then an id and a length per blob,
/// then the blobs.
const MAX_PUT_CHUNKS_LEN: usize =
    LEN_LEN + MAX_BLOBS_PER_PUT * (ID_LEN + LEN_LEN) + MAX_PUT_BLOBS_LEN;
const MAX_REQUEST_LEN: usize = max(
    max(LEN_LEN + MAX_MANIFEST_LEN, MAX_PUT_CHUNKS_LEN),
    max(
        ID_LEN + LEN_LEN + MAX_BLOB_LEN,
        LEN_LEN + ID_LEN * MAX_IDS_PER_REQUEST,
    ),
);
/// A full [`Response::Chunks`]: count, then a presence byte and a length per
/// entry, then the blobs.
const MAX_CHUNKS_REPLY_LEN: usize =
    LEN_LEN + MAX_IDS_PER_GET * (1 + LEN_LEN) + MAX_CHUNKS_REPLY_BLOBS_LEN;
const MAX_RESPONSE_LEN: usize = max(
    LEN_LEN + MAX_SNAPSHOTS_PER_LIST * SNAPSHOT_ENTRY_MAX,
    max(
        LEN_LEN + MAX_MANIFEST_LEN,
        max(LEN_LEN + MAX_BLOB_LEN, MAX_CHUNKS_REPLY_LEN),
    ),
);

/// The largest payload a request of type `msg_type` can have, or `None` if
/// `msg_type` is not a request type.
///
/// For [`CONTINUATION`] it is the cap of the largest request (a `Commit`):
/// the first frame of a multi-frame message does not say its type yet. A
/// server does not need to call this itself: [`crate::Assembler::for_requests`]
/// applies it at every frame header.
pub fn max_request_len(msg_type: u16) -> Option<usize> {
    Some(match msg_type {
        AUTH => ID_LEN,
        HAS_CHUNKS => LEN_LEN + ID_LEN * MAX_IDS_PER_REQUEST,
        GET_CHUNKS => LEN_LEN + ID_LEN * MAX_IDS_PER_GET,
        PUT_CHUNKS => MAX_PUT_CHUNKS_LEN,
        PUT_CHUNK => ID_LEN + LEN_LEN + MAX_BLOB_LEN,
        COMMIT => LEN_LEN + MAX_MANIFEST_LEN,
        LIST_SNAPSHOTS | GET_KEY | STATUS => 0,
        GET_MANIFEST | GET_CHUNK | FORGET => ID_LEN,
        PUT_KEY => LEN_LEN + MAX_KEY_FILE_LEN,
        CONTINUATION => MAX_REQUEST_LEN,
        _ => return None,
    })
}

/// The largest payload a response of type `msg_type` can have, or `None` if
/// `msg_type` is not a response type. For [`CONTINUATION`], the largest of
/// all (a full `Snapshots` list).
pub fn max_response_len(msg_type: u16) -> Option<usize> {
    Some(match msg_type {
        ERROR => 2 + 8 + 8 + LEN_LEN + MAX_ERROR_MESSAGE_LEN,
        AUTH_OK => 2 * NAME_FIELD_MAX + 1,
        HAS_CHUNKS_REPLY => LEN_LEN + MAX_IDS_PER_REQUEST.div_ceil(8),
        STORED => 1,
        COMMITTED => ID_LEN,
        SNAPSHOTS => LEN_LEN + MAX_SNAPSHOTS_PER_LIST * SNAPSHOT_ENTRY_MAX,
        MANIFEST => LEN_LEN + MAX_MANIFEST_LEN,
        CHUNK => LEN_LEN + MAX_BLOB_LEN,
        CHUNKS => MAX_CHUNKS_REPLY_LEN,
        STORED_CHUNKS => LEN_LEN + MAX_BLOBS_PER_PUT.div_ceil(8),
        KEY_STORED | FORGOTTEN => 0,
        KEY => 1 + LEN_LEN + MAX_KEY_FILE_LEN,
        STATUS_REPLY => NAME_FIELD_MAX + 8 + 8 + 8 + 1 + 8,
        CONTINUATION => MAX_RESPONSE_LEN,
        _ => return None,
    })
}

impl Request {
    /// Its message type on the wire.
    pub fn msg_type(&self) -> u16 {
        match self {
            Request::Auth { .. } => AUTH,
            Request::HasChunks { .. } => HAS_CHUNKS,
            Request::PutChunk { .. } => PUT_CHUNK,
            Request::Commit { .. } => COMMIT,
            Request::ListSnapshots => LIST_SNAPSHOTS,
            Request::GetManifest { .. } => GET_MANIFEST,
            Request::GetChunk { .. } => GET_CHUNK,
            Request::PutKey { .. } => PUT_KEY,
            Request::GetKey => GET_KEY,
            Request::Forget { .. } => FORGET,
            Request::Status => STATUS,
            Request::GetChunks { .. } => GET_CHUNKS,
            Request::PutChunks { .. } => PUT_CHUNKS,
        }
    }

    /// Its name for logs and errors, e.g. `"PutChunk request"`.
    pub fn name(&self) -> &'static str {
        name_of(self.msg_type())
    }

    fn write<S: Sink>(&self, s: &mut S) -> Result<(), ProtoError> {
        let m = self.name();
        match self {
            Request::Auth { secret } => s.put(secret),
            Request::HasChunks { ids } => put_ids(s, m, ids, MAX_IDS_PER_REQUEST)?,
            Request::GetChunks { ids } => put_ids(s, m, ids, MAX_IDS_PER_GET)?,
            Request::PutChunks { blobs } => {
                s.put_count(m, "blobs", blobs.len(), MAX_BLOBS_PER_PUT)?;
                let total = blobs.iter().map(|(_, b)| b.len()).sum();
                check_blobs_len(m, total, MAX_PUT_BLOBS_LEN)?;
                for (id, blob) in blobs {
                    s.put(id);
                    s.put_bytes(m, "blob", blob, MAX_BLOB_LEN)?;
                }
            }
            Request::PutChunk { id, blob } => {
                s.put(id);
                s.put_bytes(m, "blob", blob, MAX_BLOB_LEN)?;
            }
            Request::Commit { manifest } => {
                s.put_bytes(m, "manifest", manifest, MAX_MANIFEST_LEN)?
            }
            Request::ListSnapshots | Request::GetKey | Request::Status => {}
            Request::GetManifest { snapshot } | Request::Forget { snapshot } => s.put(snapshot),
            Request::GetChunk { id } => s.put(id),
            Request::PutKey { key_file } => {
                s.put_bytes(m, "key_file", key_file, MAX_KEY_FILE_LEN)?
            }
        }
        Ok(())
    }
}

impl Response {
    /// Its message type on the wire.
    pub fn msg_type(&self) -> u16 {
        match self {
            Response::AuthOk { .. } => AUTH_OK,
            Response::HasChunks { .. } => HAS_CHUNKS_REPLY,
            Response::Stored { .. } => STORED,
            Response::Committed { .. } => COMMITTED,
            Response::Snapshots { .. } => SNAPSHOTS,
            Response::Manifest { .. } => MANIFEST,
            Response::Chunk { .. } => CHUNK,
            Response::KeyStored => KEY_STORED,
            Response::Key { .. } => KEY,
            Response::Forgotten => FORGOTTEN,
            Response::Status { .. } => STATUS_REPLY,
            Response::Chunks { .. } => CHUNKS,
            Response::StoredChunks { .. } => STORED_CHUNKS,
            Response::Error(_) => ERROR,
        }
    }

    /// Its name for logs and errors, e.g. `"Stored response"`.
    pub fn name(&self) -> &'static str {
        name_of(self.msg_type())
    }

    fn write<S: Sink>(&self, s: &mut S) -> Result<(), ProtoError> {
        let m = self.name();
        match self {
            Response::AuthOk {
                subscriber,
                device,
                role,
            } => {
                s.put_str(m, "subscriber", subscriber, MAX_NAME_LEN)?;
                s.put_str(m, "device", device, MAX_NAME_LEN)?;
                s.put_u8(role.to_u8());
            }
            Response::HasChunks { have } => put_flags(s, m, "have", have, MAX_IDS_PER_REQUEST)?,
            Response::StoredChunks { new } => put_flags(s, m, "new", new, MAX_BLOBS_PER_PUT)?,
            Response::Stored { new } => s.put_bool(*new),
            Response::Committed { snapshot } => s.put(snapshot),
            Response::Snapshots { list } => {
                s.put_count(m, "list", list.len(), MAX_SNAPSHOTS_PER_LIST)?;
                for entry in list {
                    s.put(&entry.id);
                    s.put_i64(entry.time);
                    s.put_str(m, "device", &entry.device, MAX_NAME_LEN)?;
                    s.put_u64(entry.logical_bytes);
                    s.put_u64(entry.file_count);
                }
            }
            Response::Manifest { bytes } => s.put_bytes(m, "bytes", bytes, MAX_MANIFEST_LEN)?,
            Response::Chunk { blob } => s.put_bytes(m, "blob", blob, MAX_BLOB_LEN)?,
            Response::Chunks { blobs } => {
                s.put_count(m, "blobs", blobs.len(), MAX_IDS_PER_GET)?;
                let total = blobs.iter().flatten().map(Vec::len).sum();
                check_blobs_len(m, total, MAX_CHUNKS_REPLY_BLOBS_LEN)?;
                for blob in blobs {
                    s.put_bool(blob.is_some());
                    if let Some(blob) = blob {
                        s.put_bytes(m, "blob", blob, MAX_BLOB_LEN)?;
                    }
                }
            }
            Response::KeyStored | Response::Forgotten => {}
            Response::Key { key_file } => {
                s.put_bool(key_file.is_some());
                if let Some(key_file) = key_file {
                    s.put_bytes(m, "key_file", key_file, MAX_KEY_FILE_LEN)?;
                }
            }
            Response::Status {
                subscriber,
                quota_bytes,
                used_bytes,
                snapshots,
                last_backup,
            } => {
                s.put_str(m, "subscriber", subscriber, MAX_NAME_LEN)?;
                s.put_u64(*quota_bytes);
                s.put_u64(*used_bytes);
                s.put_u64(*snapshots);
                s.put_bool(last_backup.is_some());
                if let Some(time) = last_backup {
                    s.put_i64(*time);
                }
            }
            Response::Error(e) => {
                s.put_u16(e.code.to_u16());
                s.put_u64(e.used);
                s.put_u64(e.quota);
                s.put_str(m, "message", &e.message, MAX_ERROR_MESSAGE_LEN)?;
            }
        }
        Ok(())
    }
}

/// A count, then the ids.
fn put_ids<S: Sink>(s: &mut S, m: &'static str, ids: &[Id], max: usize) -> Result<(), ProtoError> {
    s.put_count(m, "ids", ids.len(), max)?;
    for id in ids {
        s.put(id);
    }
    Ok(())
}

/// Reads what [`put_ids`] wrote.
fn ids(r: &mut Reader<'_>, max: usize) -> Result<Vec<Id>, ProtoError> {
    let n = r.count("ids", max, ID_LEN)?;
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(r.id("ids")?);
    }
    Ok(ids)
}

/// The cap on the sum of the blob lengths of a `PutChunks` or a `Chunks`.
fn check_blobs_len(m: &'static str, total: usize, max: usize) -> Result<(), ProtoError> {
    if total > max {
        return Err(ProtoError::FieldTooLarge {
            message: m,
            field: "blobs",
            len: total as u64,
            max: max as u64,
        });
    }
    Ok(())
}

/// A count, then the flags as a bitmap: flag `i` is bit `i % 8` of byte
/// `i / 8`.
fn put_flags<S: Sink>(
    s: &mut S,
    m: &'static str,
    field: &'static str,
    flags: &[bool],
    max: usize,
) -> Result<(), ProtoError> {
    s.put_count(m, field, flags.len(), max)?;
    for group in flags.chunks(8) {
        let byte = group
            .iter()
            .enumerate()
            .fold(0u8, |acc, (bit, &set)| acc | (u8::from(set) << bit));
        s.put_u8(byte);
    }
    Ok(())
}

/// Reads what [`put_flags`] wrote; bits set past the last flag are an error.
fn flags(r: &mut Reader<'_>, field: &'static str, max: usize) -> Result<Vec<bool>, ProtoError> {
    let n = r.count(field, max, 0)?;
    let bitmap = r.take(n.div_ceil(8), field)?;
    if n % 8 != 0 && bitmap[n / 8] >> (n % 8) != 0 {
        return Err(r.invalid(field, "has bits set past its last flag"));
    }
    Ok((0..n)
        .map(|i| bitmap[i / 8] & (1 << (i % 8)) != 0)
        .collect())
}

/// The wire bytes of `req`: its payload cut into frames, every frame but the
/// last of type [`CONTINUATION`] and full, the last of the request's type.
/// Write them to the stream, then finish the stream.
///
/// Fails only if a field is over its cap (too many ids, blob or manifest too
/// large): split or shrink it.
pub fn encode_request(req: &Request) -> Result<Vec<u8>, ProtoError> {
    // Counted first (every cap checked, nothing allocated), then framed into
    // exactly-sized output by the same code.
    let mut counter = Counter::default();
    req.write(&mut counter)?;
    let mut framer = Framer::new(req.msg_type(), counter.len);
    req.write(&mut framer)?;
    Ok(framer.finish())
}

/// The wire bytes of a `PutChunk` request up to its blob: a sender writes
/// them, then the blob from its own buffer, without copying the blob into a
/// message (`prefix + blob` is exactly `encode_request(PutChunk { id, blob })`).
pub fn put_chunk_prefix(id: &Id, blob_len: usize) -> Result<Vec<u8>, ProtoError> {
    blob_prefix(PUT_CHUNK, "PutChunk request", id, blob_len)
}

/// The wire bytes of a `Chunk` response up to its blob: the server writes
/// them, then the blob as read from the pack, without copying it into a
/// message (`prefix + blob` is exactly `encode_response(Chunk { blob })`).
pub fn chunk_response_prefix(blob_len: usize) -> Result<Vec<u8>, ProtoError> {
    blob_prefix(CHUNK, "Chunk response", &[], blob_len)
}

/// The wire bytes of a `Chunks` response as pieces to write in order, each
/// blob moved in as a piece of its own rather than copied: their
/// concatenation is exactly `encode_response(&Response::Chunks { blobs })`.
/// A reply too long for one frame (near the 16 MiB cap) comes as one encoded
/// piece.
pub fn chunks_response_pieces(blobs: Vec<Option<Vec<u8>>>) -> Result<Vec<Vec<u8>>, ProtoError> {
    let response = Response::Chunks { blobs };
    let mut counter = Counter::default();
    response.write(&mut counter)?;
    if counter.len > crate::MAX_PAYLOAD_LEN {
        return Ok(vec![encode_response(&response)?]);
    }
    let Response::Chunks { blobs } = response else {
        unreachable!("built above")
    };
    let n = blobs.len();
    let entries = blobs
        .into_iter()
        .map(|blob| ([u8::from(blob.is_some())], blob));
    Ok(pieces(CHUNKS, counter.len, n, entries))
}

/// Like [`chunks_response_pieces`], for a `PutChunks` request: the
/// concatenation is exactly `encode_request(&Request::PutChunks { blobs })`.
pub fn put_chunks_pieces(blobs: Vec<(Id, Vec<u8>)>) -> Result<Vec<Vec<u8>>, ProtoError> {
    let request = Request::PutChunks { blobs };
    let mut counter = Counter::default();
    request.write(&mut counter)?;
    if counter.len > crate::MAX_PAYLOAD_LEN {
        return Ok(vec![encode_request(&request)?]);
    }
    let Request::PutChunks { blobs } = request else {
        unreachable!("built above")
    };
    let n = blobs.len();
    let entries = blobs.into_iter().map(|(id, blob)| (id, Some(blob)));
    Ok(pieces(PUT_CHUNKS, counter.len, n, entries))
}

/// One frame of `payload_len` bytes: its header and a count, then per entry
/// its head and, for a blob, the blob's length and the blob as a piece of
/// its own.
fn pieces<H: AsRef<[u8]>>(
    msg_type: u16,
    payload_len: usize,
    count: usize,
    entries: impl Iterator<Item = (H, Option<Vec<u8>>)>,
) -> Vec<Vec<u8>> {
    let mut pieces = Vec::with_capacity(2 * count + 1);
    let mut head = Vec::with_capacity(64);
    head.extend_from_slice(&((2 + payload_len) as u32).to_be_bytes());
    head.extend_from_slice(&msg_type.to_be_bytes());
    head.extend_from_slice(&(count as u32).to_le_bytes());
    for (entry_head, blob) in entries {
        head.extend_from_slice(entry_head.as_ref());
        if let Some(blob) = blob {
            head.extend_from_slice(&(blob.len() as u32).to_le_bytes());
            pieces.push(std::mem::take(&mut head));
            pieces.push(blob);
        }
    }
    if !head.is_empty() {
        pieces.push(head);
    }
    pieces
}

/// Frame header, `head`, then the blob's length: the whole message up to its
/// blob, which is its last field (one frame: blobs are below the frame cap).
fn blob_prefix(
    msg_type: u16,
    message: &'static str,
    head: &[u8],
    blob_len: usize,
) -> Result<Vec<u8>, ProtoError> {
    if blob_len > MAX_BLOB_LEN {
        return Err(ProtoError::FieldTooLarge {
            message,
            field: "blob",
            len: blob_len as u64,
            max: MAX_BLOB_LEN as u64,
        });
    }
    let payload = head.len() + 4 + blob_len;
    let mut out = Vec::with_capacity(6 + head.len() + 4);
    out.extend_from_slice(&((2 + payload) as u32).to_be_bytes());
    out.extend_from_slice(&msg_type.to_be_bytes());
    out.extend_from_slice(head);
    out.extend_from_slice(&(blob_len as u32).to_le_bytes());
    Ok(out)
}

/// The wire bytes of `resp`, framed like [`encode_request`].
///
/// Fails only if a field is over its cap (a name over [`MAX_NAME_LEN`], an
/// error message over [`MAX_ERROR_MESSAGE_LEN`], too many snapshots, ...).
pub fn encode_response(resp: &Response) -> Result<Vec<u8>, ProtoError> {
    let mut counter = Counter::default();
    resp.write(&mut counter)?;
    let mut framer = Framer::new(resp.msg_type(), counter.len);
    resp.write(&mut framer)?;
    Ok(framer.finish())
}

/// Decodes the payload of a reassembled request of type `msg_type`.
///
/// Every field is checked against its cap and the bytes that remain before
/// anything is allocated; bytes after the last field are an error.
pub fn decode_request(msg_type: u16, payload: &[u8]) -> Result<Request, ProtoError> {
    let mut r = Reader::new(payload, name_of(msg_type));
    let req = match msg_type {
        AUTH => Request::Auth {
            secret: r.id("secret")?,
        },
        HAS_CHUNKS => Request::HasChunks {
            ids: ids(&mut r, MAX_IDS_PER_REQUEST)?,
        },
        PUT_CHUNK => Request::PutChunk {
            id: r.id("id")?,
            blob: r.bytes("blob", MAX_BLOB_LEN)?.to_vec(),
        },
        COMMIT => Request::Commit {
            manifest: r.bytes("manifest", MAX_MANIFEST_LEN)?.to_vec(),
        },
        LIST_SNAPSHOTS => Request::ListSnapshots,
        GET_MANIFEST => Request::GetManifest {
            snapshot: r.id("snapshot")?,
        },
        GET_CHUNK => Request::GetChunk { id: r.id("id")? },
        PUT_KEY => Request::PutKey {
            key_file: r.bytes("key_file", MAX_KEY_FILE_LEN)?.to_vec(),
        },
        GET_KEY => Request::GetKey,
        FORGET => Request::Forget {
            snapshot: r.id("snapshot")?,
        },
        STATUS => Request::Status,
        GET_CHUNKS => Request::GetChunks {
            ids: ids(&mut r, MAX_IDS_PER_GET)?,
        },
        PUT_CHUNKS => {
            let n = r.count("blobs", MAX_BLOBS_PER_PUT, ID_LEN + LEN_LEN)?;
            let mut blobs = Vec::with_capacity(n);
            let mut total = 0;
            for _ in 0..n {
                let id = r.id("id")?;
                let blob = r.bytes("blob", MAX_BLOB_LEN)?;
                total += blob.len();
                if total > MAX_PUT_BLOBS_LEN {
                    return Err(r.invalid("blobs", "hold more bytes than MAX_PUT_BLOBS_LEN"));
                }
                blobs.push((id, blob.to_vec()));
            }
            Request::PutChunks { blobs }
        }
        _ => return Err(ProtoError::UnknownMessage(msg_type)),
    };
    r.finish()?;
    Ok(req)
}

/// Decodes the payload of a reassembled response of type `msg_type`, with
/// the same checks as [`decode_request`].
pub fn decode_response(msg_type: u16, payload: &[u8]) -> Result<Response, ProtoError> {
    let mut r = Reader::new(payload, name_of(msg_type));
    let resp = match msg_type {
        AUTH_OK => {
            let subscriber = r.string("subscriber", MAX_NAME_LEN)?;
            let device = r.string("device", MAX_NAME_LEN)?;
            let role = Role::from_u8(r.u8("role")?)
                .ok_or_else(|| r.invalid("role", "is not 1 (backup) or 2 (admin)"))?;
            Response::AuthOk {
                subscriber,
                device,
                role,
            }
        }
        HAS_CHUNKS_REPLY => Response::HasChunks {
            have: flags(&mut r, "have", MAX_IDS_PER_REQUEST)?,
        },
        STORED_CHUNKS => Response::StoredChunks {
            new: flags(&mut r, "new", MAX_BLOBS_PER_PUT)?,
        },
        STORED => Response::Stored {
            new: r.bool("new")?,
        },
        COMMITTED => Response::Committed {
            snapshot: r.id("snapshot")?,
        },
        SNAPSHOTS => {
            let n = r.count("list", MAX_SNAPSHOTS_PER_LIST, SNAPSHOT_ENTRY_MIN)?;
            let mut list = Vec::with_capacity(n);
            for _ in 0..n {
                list.push(SnapshotEntry {
                    id: r.id("id")?,
                    time: r.i64("time")?,
                    device: r.string("device", MAX_NAME_LEN)?,
                    logical_bytes: r.u64("logical_bytes")?,
                    file_count: r.u64("file_count")?,
                });
            }
            Response::Snapshots { list }
        }
        MANIFEST => Response::Manifest {
            bytes: r.bytes("bytes", MAX_MANIFEST_LEN)?.to_vec(),
        },
        CHUNK => Response::Chunk {
            blob: r.bytes("blob", MAX_BLOB_LEN)?.to_vec(),
        },
        CHUNKS => {
            let n = r.count("blobs", MAX_IDS_PER_GET, 1)?;
            let mut blobs = Vec::with_capacity(n);
            let mut total = 0;
            for _ in 0..n {
                blobs.push(if r.bool("present")? {
                    let blob = r.bytes("blob", MAX_BLOB_LEN)?;
                    total += blob.len();
                    if total > MAX_CHUNKS_REPLY_BLOBS_LEN {
                        return Err(
                            r.invalid("blobs", "hold more bytes than MAX_CHUNKS_REPLY_BLOBS_LEN")
                        );
                    }
                    Some(blob.to_vec())
                } else {
                    None
                });
            }
            Response::Chunks { blobs }
        }
        KEY_STORED => Response::KeyStored,
        KEY => Response::Key {
            key_file: if r.bool("present")? {
                Some(r.bytes("key_file", MAX_KEY_FILE_LEN)?.to_vec())
            } else {
                None
            },
        },
        FORGOTTEN => Response::Forgotten,
        STATUS_REPLY => Response::Status {
            subscriber: r.string("subscriber", MAX_NAME_LEN)?,
            quota_bytes: r.u64("quota_bytes")?,
            used_bytes: r.u64("used_bytes")?,
            snapshots: r.u64("snapshots")?,
            last_backup: if r.bool("has_last_backup")? {
                Some(r.i64("last_backup")?)
            } else {
                None
            },
        },
        ERROR => Response::Error(ErrorReply {
            code: ErrorCode::from_u16(r.u16("code")?),
            used: r.u64("used")?,
            quota: r.u64("quota")?,
            message: r.string("message", MAX_ERROR_MESSAGE_LEN)?,
        }),
        _ => return Err(ProtoError::UnknownMessage(msg_type)),
    };
    r.finish()?;
    Ok(resp)
}

/// Like [`decode_request`], but takes the payload by value and moves the
/// large field that ends `PutChunk` (the blob) and `Commit` (the manifest)
/// out of it instead of copying: a 256 MiB manifest is held once, not twice.
/// Same checks, same errors.
pub fn decode_request_owned(msg_type: u16, mut payload: Vec<u8>) -> Result<Request, ProtoError> {
    let mut r = Reader::new(&payload, name_of(msg_type));
    match msg_type {
        PUT_CHUNK => {
            let id = r.id("id")?;
            let len = r.tail_bytes_len("blob", MAX_BLOB_LEN)?;
            Ok(Request::PutChunk {
                id,
                blob: keep_tail(&mut payload, len),
            })
        }
        COMMIT => {
            let len = r.tail_bytes_len("manifest", MAX_MANIFEST_LEN)?;
            Ok(Request::Commit {
                manifest: keep_tail(&mut payload, len),
            })
        }
        _ => decode_request(msg_type, &payload),
    }
}

/// Like [`decode_response`], but takes the payload by value and moves the
/// bytes of `Manifest` and `Chunk` out of it instead of copying. Same checks,
/// same errors.
pub fn decode_response_owned(msg_type: u16, mut payload: Vec<u8>) -> Result<Response, ProtoError> {
    let mut r = Reader::new(&payload, name_of(msg_type));
    match msg_type {
        MANIFEST => {
            let len = r.tail_bytes_len("bytes", MAX_MANIFEST_LEN)?;
            Ok(Response::Manifest {
                bytes: keep_tail(&mut payload, len),
            })
        }
        CHUNK => {
            let len = r.tail_bytes_len("blob", MAX_BLOB_LEN)?;
            Ok(Response::Chunk {
                blob: keep_tail(&mut payload, len),
            })
        }
        _ => decode_response(msg_type, &payload),
    }
}

/// Drops all but the last `len` bytes of `payload`, reusing its allocation.
fn keep_tail(payload: &mut Vec<u8>, len: usize) -> Vec<u8> {
    payload.drain(..payload.len() - len);
    std::mem::take(payload)
}

/// Formats an id as lowercase hex in `Debug` output.
struct Hex<'a>(&'a [u8]);

impl fmt::Debug for Hex<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Shows a byte string's length, not its bytes, in `Debug` output: blobs and
/// manifests are megabytes of ciphertext nobody wants in a log.
struct Len(usize);

impl fmt::Debug for Len {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0)
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Request::Auth { .. } => f
                .debug_struct("Auth")
                .field("secret", &format_args!("<redacted>"))
                .finish(),
            Request::HasChunks { ids } => f
                .debug_struct("HasChunks")
                .field("ids", &format_args!("<{} ids>", ids.len()))
                .finish(),
            Request::PutChunk { id, blob } => f
                .debug_struct("PutChunk")
                .field("id", &Hex(id))
                .field("blob", &Len(blob.len()))
                .finish(),
            Request::Commit { manifest } => f
                .debug_struct("Commit")
                .field("manifest", &Len(manifest.len()))
                .finish(),
            Request::ListSnapshots => f.write_str("ListSnapshots"),
            Request::GetManifest { snapshot } => f
                .debug_struct("GetManifest")
                .field("snapshot", &Hex(snapshot))
                .finish(),
            Request::GetChunk { id } => f.debug_struct("GetChunk").field("id", &Hex(id)).finish(),
            Request::PutKey { key_file } => f
                .debug_struct("PutKey")
                .field("key_file", &Len(key_file.len()))
                .finish(),
            Request::GetKey => f.write_str("GetKey"),
            Request::Forget { snapshot } => f
                .debug_struct("Forget")
                .field("snapshot", &Hex(snapshot))
                .finish(),
            Request::Status => f.write_str("Status"),
            Request::GetChunks { ids } => f
                .debug_struct("GetChunks")
                .field("ids", &format_args!("<{} ids>", ids.len()))
                .finish(),
            Request::PutChunks { blobs } => f
                .debug_struct("PutChunks")
                .field(
                    "blobs",
                    &format_args!(
                        "<{} blobs, {} bytes>",
                        blobs.len(),
                        blobs.iter().map(|(_, b)| b.len()).sum::<usize>()
                    ),
                )
                .finish(),
        }
    }
}

impl fmt::Debug for SnapshotEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SnapshotEntry")
            .field("id", &Hex(&self.id))
            .field("time", &self.time)
            .field("device", &self.device)
            .field("logical_bytes", &self.logical_bytes)
            .field("file_count", &self.file_count)
            .finish()
    }
}

impl fmt::Debug for Response {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Response::AuthOk {
                subscriber,
                device,
                role,
            } => f
                .debug_struct("AuthOk")
                .field("subscriber", subscriber)
                .field("device", device)
                .field("role", role)
                .finish(),
            Response::HasChunks { have } => f
                .debug_struct("HasChunks")
                .field(
                    "have",
                    &format_args!(
                        "<{} of {} present>",
                        have.iter().filter(|&&h| h).count(),
                        have.len()
                    ),
                )
                .finish(),
            Response::Stored { new } => f.debug_struct("Stored").field("new", new).finish(),
            Response::Committed { snapshot } => f
                .debug_struct("Committed")
                .field("snapshot", &Hex(snapshot))
                .finish(),
            Response::Snapshots { list } => {
                f.debug_struct("Snapshots").field("list", list).finish()
            }
            Response::Manifest { bytes } => f
                .debug_struct("Manifest")
                .field("bytes", &Len(bytes.len()))
                .finish(),
            Response::Chunk { blob } => f
                .debug_struct("Chunk")
                .field("blob", &Len(blob.len()))
                .finish(),
            Response::KeyStored => f.write_str("KeyStored"),
            Response::Key { key_file } => f
                .debug_struct("Key")
                .field("key_file", &key_file.as_ref().map(|k| Len(k.len())))
                .finish(),
            Response::Forgotten => f.write_str("Forgotten"),
            Response::Status {
                subscriber,
                quota_bytes,
                used_bytes,
                snapshots,
                last_backup,
            } => f
                .debug_struct("Status")
                .field("subscriber", subscriber)
                .field("quota_bytes", quota_bytes)
                .field("used_bytes", used_bytes)
                .field("snapshots", snapshots)
                .field("last_backup", last_backup)
                .finish(),
            Response::Chunks { blobs } => f
                .debug_struct("Chunks")
                .field(
                    "blobs",
                    &format_args!(
                        "<{} of {} present, {} bytes>",
                        blobs.iter().flatten().count(),
                        blobs.len(),
                        blobs.iter().flatten().map(Vec::len).sum::<usize>()
                    ),
                )
                .finish(),
            Response::StoredChunks { new } => f
                .debug_struct("StoredChunks")
                .field(
                    "new",
                    &format_args!(
                        "<{} of {} new>",
                        new.iter().filter(|&&n| n).count(),
                        new.len()
                    ),
                )
                .finish(),
            Response::Error(e) => f.debug_tuple("Error").field(e).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn chunks_response_pieces_are_the_encoded_response() {
        let small = vec![Some(b"ab".to_vec()), None, Some(Vec::new()), None];
        let big = vec![
            Some(vec![1u8; super::MAX_BLOB_LEN]),
            Some(vec![
                2u8;
                super::MAX_CHUNKS_REPLY_BLOBS_LEN - super::MAX_BLOB_LEN
            ]),
        ];
        for blobs in [Vec::new(), small, big] {
            let whole = super::encode_response(&super::Response::Chunks {
                blobs: blobs.clone(),
            })
            .unwrap();
            let pieces = super::chunks_response_pieces(blobs).unwrap();
            assert_eq!(pieces.concat(), whole);
        }
    }

    #[test]
    fn put_chunks_pieces_are_the_encoded_request() {
        let small = vec![([1; 32], b"ab".to_vec()), ([2; 32], Vec::new())];
        let big = vec![
            ([3; 32], vec![1u8; super::MAX_BLOB_LEN]),
            (
                [4; 32],
                vec![2u8; super::MAX_PUT_BLOBS_LEN - super::MAX_BLOB_LEN],
            ),
        ];
        for blobs in [Vec::new(), small, big] {
            let whole = super::encode_request(&super::Request::PutChunks {
                blobs: blobs.clone(),
            })
            .unwrap();
            let pieces = super::put_chunks_pieces(blobs).unwrap();
            assert_eq!(pieces.concat(), whole);
        }
        let too_many = vec![([0; 32], Vec::new()); super::MAX_BLOBS_PER_PUT + 1];
        assert!(super::put_chunks_pieces(too_many).is_err());
    }

    #[test]
    fn put_chunk_prefix_and_blob_are_the_encoded_request() {
        for len in [0usize, 1, 1 << 20, super::MAX_BLOB_LEN] {
            let blob = vec![7u8; len];
            let mut wire = super::put_chunk_prefix(&[3; 32], len).unwrap();
            wire.extend_from_slice(&blob);
            assert_eq!(
                wire,
                super::encode_request(&super::Request::PutChunk { id: [3; 32], blob }).unwrap()
            );
        }
        assert!(super::put_chunk_prefix(&[3; 32], super::MAX_BLOB_LEN + 1).is_err());
    }

    #[test]
    fn chunk_response_prefix_and_blob_are_the_encoded_response() {
        for len in [0usize, 1, 1 << 20, super::MAX_BLOB_LEN] {
            let blob = vec![9u8; len];
            let mut wire = super::chunk_response_prefix(len).unwrap();
            wire.extend_from_slice(&blob);
            assert_eq!(
                wire,
                super::encode_response(&super::Response::Chunk { blob }).unwrap()
            );
        }
        assert!(super::chunk_response_prefix(super::MAX_BLOB_LEN + 1).is_err());
    }

    use super::*;

    #[test]
    fn caps_are_what_the_largest_valid_message_encodes_to() {
        let big = Request::Commit {
            manifest: vec![0; 10],
        };
        assert_eq!(encode_request(&big).unwrap().len(), 6 + 4 + 10);
        let ids = Request::HasChunks {
            ids: vec![[0; 32]; MAX_IDS_PER_REQUEST],
        };
        let wire = encode_request(&ids).unwrap();
        assert_eq!(wire.len(), 6 + max_request_len(HAS_CHUNKS).unwrap());
        let status = Response::Status {
            subscriber: "s".repeat(MAX_NAME_LEN),
            quota_bytes: 1,
            used_bytes: 2,
            snapshots: 3,
            last_backup: Some(4),
        };
        let wire = encode_response(&status).unwrap();
        assert_eq!(wire.len(), 6 + max_response_len(STATUS_REPLY).unwrap());
        let ok = Response::AuthOk {
            subscriber: "s".repeat(MAX_NAME_LEN),
            device: "d".repeat(MAX_NAME_LEN),
            role: Role::Admin,
        };
        let wire = encode_response(&ok).unwrap();
        assert_eq!(wire.len(), 6 + max_response_len(AUTH_OK).unwrap());
    }

    #[test]
    fn every_type_has_a_cap_and_a_name_and_continuation_has_the_largest() {
        for t in (0x0000..=0x000Bu16).chain(0x8000..=0x800B) {
            let req = max_request_len(t);
            let resp = max_response_len(t);
            assert!(req.is_some() != resp.is_some() || t == 0, "type {t:#06x}");
            assert_eq!(message_name(t).is_some(), t != 0, "type {t:#06x}");
            if let Some(cap) = req {
                assert!(cap <= max_request_len(CONTINUATION).unwrap());
            }
            if let Some(cap) = resp {
                assert!(cap <= max_response_len(CONTINUATION).unwrap());
            }
        }
        assert_eq!(max_request_len(CONTINUATION), max_request_len(COMMIT));
        assert_eq!(max_request_len(0x8001), None);
        assert_eq!(max_response_len(0x0001), None);
    }

    #[test]
    fn error_codes_round_trip_and_unknown_ones_are_kept() {
        for n in 0..=20u16 {
            assert_eq!(ErrorCode::from_u16(n).to_u16(), n);
        }
        assert_eq!(ErrorCode::from_u16(6), ErrorCode::QuotaExceeded);
        assert_eq!(ErrorCode::from_u16(999), ErrorCode::Other(999));
        assert_eq!(ErrorCode::Other(999).to_string(), "unknown error code 999");
    }

    #[test]
    fn error_reply_new_cuts_long_messages_at_a_char_boundary() {
        let reply = ErrorReply::new(ErrorCode::Internal, "é".repeat(MAX_ERROR_MESSAGE_LEN));
        assert!(reply.message.len() <= MAX_ERROR_MESSAGE_LEN);
        assert!(reply.message.len() >= MAX_ERROR_MESSAGE_LEN - 1);
        encode_response(&Response::Error(reply)).unwrap();
    }

    #[test]
    fn debug_redacts_the_secret_and_elides_blobs() {
        let auth = Request::Auth { secret: [0xAB; 32] };
        let shown = format!("{auth:?}");
        assert!(!shown.to_lowercase().contains("ab"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
        let put = Request::PutChunk {
            id: [1; 32],
            blob: vec![0x42; 100_000],
        };
        let shown = format!("{put:?}");
        assert!(
            shown.contains("<100000 bytes>") && shown.len() < 200,
            "{shown}"
        );
    }
}
