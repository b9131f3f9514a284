//! The message table: every message type of the protocol, one entry each.
//!
//! An entry is everything about a message but its payload codec: its doc,
//! its frozen type number, its name in logs and errors, the cap of its
//! payload, its variant and fields, and how each field shows in `Debug`.
//! The [`messages!`] macro below turns the table into:
//!
//! - the [`Request`] and [`Response`] enums, with `msg_type()`, `name()` and
//!   `Debug` (a field marked `as hex`, `as len`, ... is shown by that view of
//!   `show.rs`, so no log holds a secret or megabytes; an unmarked field by
//!   its own `Debug`);
//! - one `pub(crate) const` per type number (`AUTH`, `HAS_CHUNKS`, ...), for
//!   the codec's matches in `message/`;
//! - [`message_name`], [`max_request_len`] and [`max_response_len`]; the cap
//!   of [`CONTINUATION`] (the first frame of a multi-frame message does not
//!   say its type yet) is the largest cap of the table in that direction,
//!   computed, so a new large message raises it by itself.
//!
//! Adding a message type is one entry in each enum below (request and
//! response, in a pair: the response to `0x00NN` is `0x80NN`) plus its
//! encode and decode arms in `message/request.rs` and `message/response.rs`;
//! docs/protocol.md ("Adding a message type") lists the tests and the version
//! note that go with it. A number is frozen once released: never reuse or
//! renumber one. Two entries with the same number fail to compile (an
//! unreachable pattern, denied by clippy's `-D warnings`).
//!
//! Each cap is exactly the size of the largest valid payload of its type
//! (`tests::caps_are_what_the_largest_valid_message_encodes_to`,
//! `tests/known_answers.rs`). This module imports only the bottom modules
//! (`caps`, `values`, `show`), so `error.rs` can name messages without an
//! import circle.

use std::fmt;

use crate::caps::*;
use crate::values::{ChunkState, ErrorReply, Role, SnapshotEntry};

/// Declares the message table; see the module doc. Grammar of an entry:
///
/// ```text
/// /// doc of the variant
/// [CONST = 0x00NN, "Name request", cap <payload cap>]
/// Variant { /// doc
///           field: Type as <view>, ... }     // or Variant(field: Type), or Variant
/// ```
macro_rules! messages {
    (
        $(#[$req_meta:meta])*
        pub enum Request {
            $(
                $(#[$req_doc:meta])*
                [$REQ:ident = $req_n:literal, $req_name:literal, cap $req_cap:expr]
                $ReqV:ident
                $({ $( $(#[$rf_doc:meta])* $rf:ident: $rf_ty:ty $(as $rf_show:ident)? ),* $(,)? })?
                $(( $rt:ident: $rt_ty:ty $(as $rt_show:ident)? ))?
            ),* $(,)?
        }

        $(#[$resp_meta:meta])*
        pub enum Response {
            $(
                $(#[$resp_doc:meta])*
                [$RESP:ident = $resp_n:literal, $resp_name:literal, cap $resp_cap:expr]
                $RespV:ident
                $({ $( $(#[$sf_doc:meta])* $sf:ident: $sf_ty:ty $(as $sf_show:ident)? ),* $(,)? })?
                $(( $st:ident: $st_ty:ty $(as $st_show:ident)? ))?
            ),* $(,)?
        }
    ) => {
        $( pub(crate) const $REQ: u16 = $req_n; )*
        $( pub(crate) const $RESP: u16 = $resp_n; )*

        $(#[$req_meta])*
        #[derive(Clone, PartialEq, Eq)]
        pub enum Request {
            $(
                $(#[$req_doc])*
                $ReqV $({ $( $(#[$rf_doc])* $rf: $rf_ty ),* })? $(( $rt_ty ))?,
            )*
        }

        $(#[$resp_meta])*
        #[derive(Clone, PartialEq, Eq)]
        pub enum Response {
            $(
                $(#[$resp_doc])*
                $RespV $({ $( $(#[$sf_doc])* $sf: $sf_ty ),* })? $(( $st_ty ))?,
            )*
        }

        impl Request {
            /// Its message type on the wire.
            pub fn msg_type(&self) -> u16 {
                match self {
                    $( Self::$ReqV { .. } => $REQ, )*
                }
            }

            /// Its name for logs and errors, e.g. `"PutChunk request"`.
            pub fn name(&self) -> &'static str {
                match self {
                    $( Self::$ReqV { .. } => $req_name, )*
                }
            }
        }

        impl Response {
            /// Its message type on the wire.
            pub fn msg_type(&self) -> u16 {
                match self {
                    $( Self::$RespV { .. } => $RESP, )*
                }
            }

            /// Its name for logs and errors, e.g. `"Stored response"`.
            pub fn name(&self) -> &'static str {
                match self {
                    $( Self::$RespV { .. } => $resp_name, )*
                }
            }
        }

        impl fmt::Debug for Request {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(
                        Self::$ReqV $({ $($rf),* })? $(($rt))? => messages!(
                            @debug f $ReqV
                            $({ $($rf $($rf_show)?),* })?
                            $(( $rt $($rt_show)? ))?
                        ),
                    )*
                }
            }
        }

        impl fmt::Debug for Response {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(
                        Self::$RespV $({ $($sf),* })? $(($st))? => messages!(
                            @debug f $RespV
                            $({ $($sf $($sf_show)?),* })?
                            $(( $st $($st_show)? ))?
                        ),
                    )*
                }
            }
        }

        /// The name of a message type, e.g. `"PutChunk request"`, or `None`
        /// for a number that is not a message type (including
        /// [`CONTINUATION`]).
        pub fn message_name(msg_type: u16) -> Option<&'static str> {
            Some(match msg_type {
                $( $REQ => $req_name, )*
                $( $RESP => $resp_name, )*
                _ => return None,
            })
        }

        /// The largest payload of any request: the cap of [`CONTINUATION`].
        const MAX_REQUEST_LEN: usize = largest(&[$($req_cap),*]);

        /// The largest payload of any response: the cap of [`CONTINUATION`].
        const MAX_RESPONSE_LEN: usize = largest(&[$($resp_cap),*]);

        /// The largest payload a request of type `msg_type` can have, or
        /// `None` if `msg_type` is not a request type.
        ///
        /// For [`CONTINUATION`] it is the cap of the largest request (a
        /// `Commit`): the first frame of a multi-frame message does not say
        /// its type yet. A server does not need to call this itself:
        /// [`crate::Assembler::for_requests`] applies it at every frame
        /// header.
        pub fn max_request_len(msg_type: u16) -> Option<usize> {
            Some(match msg_type {
                $( $REQ => $req_cap, )*
                CONTINUATION => MAX_REQUEST_LEN,
                _ => return None,
            })
        }

        /// The largest payload a response of type `msg_type` can have, or
        /// `None` if `msg_type` is not a response type. For
        /// [`CONTINUATION`], the largest of all (a full `Snapshots` list).
        pub fn max_response_len(msg_type: u16) -> Option<usize> {
            Some(match msg_type {
                $( $RESP => $resp_cap, )*
                CONTINUATION => MAX_RESPONSE_LEN,
                _ => return None,
            })
        }

        /// Every request type of the table, in table order.
        #[cfg(test)]
        pub(crate) const REQUEST_TYPES: &[u16] = &[$($REQ),*];

        /// Every response type of the table, in table order.
        #[cfg(test)]
        pub(crate) const RESPONSE_TYPES: &[u16] = &[$($RESP),*];
    };

    // `Debug` of one variant, by its shape: fields, one tuple field, none.
    (@debug $f:ident $V:ident { $( $field:ident $($view:ident)? ),* }) => {
        $f.debug_struct(stringify!($V))
            $( .field(stringify!($field), &messages!(@show $field $($view)?)) )*
            .finish()
    };
    (@debug $f:ident $V:ident ( $field:ident $($view:ident)? )) => {
        $f.debug_tuple(stringify!($V))
            .field(&messages!(@show $field $($view)?))
            .finish()
    };
    (@debug $f:ident $V:ident) => {
        $f.write_str(stringify!($V))
    };
    (@show $field:ident) => {
        $field
    };
    (@show $field:ident $view:ident) => {
        $crate::show::$view($field)
    };
}

/// The largest of `caps`.
const fn largest(caps: &[usize]) -> usize {
    let mut max = 0;
    let mut i = 0;
    while i < caps.len() {
        if caps[i] > max {
            max = caps[i];
        }
        i += 1;
    }
    max
}

/// `name_of(t)` is [`message_name`], or `"message"` for an unknown type (in
/// decoding errors).
pub(crate) fn name_of(msg_type: u16) -> &'static str {
    message_name(msg_type).unwrap_or("message")
}

messages! {
    /// What a device asks the server. Each goes on its own bidirectional stream.
    pub enum Request {
        /// Prove who this device is: the secret from its enrolment token. Only as
        /// the first request of a connection, right after the hello.
        [AUTH = 0x0001, "Auth request", cap ID_LEN]
        Auth {
            /// The device secret. Never logged: `Debug` redacts it.
            secret: [u8; 32] as redacted,
        },
        /// Which of these chunks does the server already have? At most
        /// [`MAX_IDS_PER_REQUEST`] ids.
        [HAS_CHUNKS = 0x0002, "HasChunks request", cap LEN_LEN + ID_LEN * MAX_IDS_PER_REQUEST]
        HasChunks {
            /// Chunk ids to look up.
            ids: Vec<Id> as ids,
        },
        /// Store one encrypted blob under its chunk id.
        [PUT_CHUNK = 0x0003, "PutChunk request", cap ID_LEN + LEN_LEN + MAX_BLOB_LEN]
        PutChunk {
            /// The chunk id.
            id: Id as hex,
            /// The encrypted blob, at most [`MAX_BLOB_LEN`] bytes.
            blob: Vec<u8> as len,
        },
        /// Make a snapshot visible: every chunk it lists must be stored.
        [COMMIT = 0x0004, "Commit request", cap LEN_LEN + MAX_MANIFEST_LEN]
        Commit {
            /// The snapshot manifest, at most [`MAX_MANIFEST_LEN`] bytes.
            manifest: Vec<u8> as len,
        },
        /// List this subscriber's snapshots.
        [LIST_SNAPSHOTS = 0x0005, "ListSnapshots request", cap 0]
        ListSnapshots,
        /// Fetch one snapshot's manifest.
        [GET_MANIFEST = 0x0006, "GetManifest request", cap ID_LEN]
        GetManifest {
            /// The snapshot id.
            snapshot: Id as hex,
        },
        /// Fetch one encrypted blob.
        [GET_CHUNK = 0x0007, "GetChunk request", cap ID_LEN]
        GetChunk {
            /// The chunk id.
            id: Id as hex,
        },
        /// Keep the subscriber's wrapped key file on the server.
        [PUT_KEY = 0x0008, "PutKey request", cap LEN_LEN + MAX_KEY_FILE_LEN]
        PutKey {
            /// The key file, at most [`MAX_KEY_FILE_LEN`] bytes.
            key_file: Vec<u8> as len,
        },
        /// Fetch the subscriber's wrapped key file, if one was stored.
        [GET_KEY = 0x0009, "GetKey request", cap 0]
        GetKey,
        /// Delete a snapshot (admin devices only).
        [FORGET = 0x000A, "Forget request", cap ID_LEN]
        Forget {
            /// The snapshot id.
            snapshot: Id as hex,
        },
        /// This subscriber's quota, usage and last backup.
        [STATUS = 0x000B, "Status request", cap 0]
        Status,
        /// Fetch several encrypted blobs at once (protocol version 2): a restore
        /// of many small files asks for them in one request instead of one each.
        [GET_CHUNKS = 0x000C, "GetChunks request", cap LEN_LEN + ID_LEN * MAX_IDS_PER_GET]
        GetChunks {
            /// Chunk ids, at most [`MAX_IDS_PER_GET`].
            ids: Vec<Id> as ids,
        },
        /// Store several encrypted blobs at once (protocol version 2): a backup
        /// of many small files sends them in one request instead of one each.
        [PUT_CHUNKS = 0x000D, "PutChunks request", cap MAX_PUT_CHUNKS_LEN]
        PutChunks {
            /// (chunk id, blob), at most [`MAX_BLOBS_PER_PUT`] of them and
            /// [`MAX_PUT_BLOBS_LEN`] bytes of blobs.
            blobs: Vec<(Id, Vec<u8>)> as blobs,
        },
        /// Install a new credential for this device, made by the client (protocol
        /// version 3): the device's secret rolls, so that a copy of an older one (a
        /// cloned disk, a token pasted twice) is refused. The first `Rekey` of a
        /// secret records it as pending; the client saves it, then sends the same
        /// `Rekey` again, which makes it current and retires every other secret of
        /// the device. An `Auth` with a pending secret also makes it current (the
        /// client saved it but lost the connection before confirming).
        [REKEY = 0x0010, "Rekey request", cap ID_LEN]
        Rekey {
            /// The new secret, 32 random bytes. Never logged: `Debug` redacts it.
            secret: [u8; 32] as redacted,
        },
        /// Which of these chunks does the server have, and may this device
        /// rely on them (protocol version 3, dedup trust)? At most
        /// [`MAX_IDS_PER_REQUEST`] ids.
        [CHUNK_TRUST = 0x0011, "ChunkTrust request", cap LEN_LEN + ID_LEN * MAX_IDS_PER_REQUEST]
        ChunkTrust {
            /// Chunk ids to look up.
            ids: Vec<Id> as ids,
        },
        /// This device fetched another device's copy of each id, decrypted it
        /// and recomputed its id (protocol version 3): record that it trusts
        /// it. At most [`MAX_IDS_PER_REQUEST`] ids.
        [VOUCH = 0x0012, "Vouch request", cap LEN_LEN + ID_LEN * MAX_IDS_PER_REQUEST]
        Vouch {
            /// Chunk ids verified.
            ids: Vec<Id> as ids,
        },
        /// Fetch one copy of a chunk by its rank (0 = the first stored), when
        /// the blob served failed to open (protocol version 3).
        [GET_CHUNK_COPY = 0x0013, "GetChunkCopy request", cap ID_LEN + 4]
        GetChunkCopy {
            /// The chunk id.
            id: Id as hex,
            /// Which copy: 0, 1, ... (NotFound past the last).
            copy: u32,
        },
        /// Replace the subscriber's key file with `key_file`, the same master
        /// key wrapped under a new passphrase (protocol version 4; admin devices
        /// only). A compare-and-swap: the server replaces it only if BLAKE3 of
        /// the key file it holds is `expected`, so of two technicians changing
        /// the passphrase at once one wins and the other is refused with
        /// `Conflict`.
        [REPLACE_KEY = 0x0014, "ReplaceKey request", cap ID_LEN + LEN_LEN + MAX_KEY_FILE_LEN]
        ReplaceKey {
            /// BLAKE3 of the key file this device read with `GetKey`.
            expected: Id as hex,
            /// The new key file, at most [`MAX_KEY_FILE_LEN`] bytes.
            key_file: Vec<u8> as len,
        },
    }

    /// What the server answers: the response matching the request, or
    /// [`Response::Error`].
    pub enum Response {
        /// Answers [`Request::Auth`]: who this device is.
        [AUTH_OK = 0x8001, "AuthOk response", cap 2 * NAME_FIELD_MAX + 1]
        AuthOk {
            /// The subscriber, at most [`MAX_NAME_LEN`] bytes.
            subscriber: String,
            /// The device, at most [`MAX_NAME_LEN`] bytes.
            device: String,
            /// What it may do.
            role: Role,
        },
        /// Answers [`Request::HasChunks`]: one flag per id asked, in order.
        [HAS_CHUNKS_REPLY = 0x8002, "HasChunks response", cap LEN_LEN + MAX_IDS_PER_REQUEST.div_ceil(8)]
        HasChunks {
            /// `have[i]` is true when the server has the i-th id.
            have: Vec<bool> as present,
        },
        /// Answers [`Request::PutChunk`]: the blob is durable.
        [STORED = 0x8003, "Stored response", cap 1]
        Stored {
            /// False when the server already had it (nothing was added).
            new: bool,
        },
        /// Answers [`Request::Commit`]: the snapshot is durable and visible.
        [COMMITTED = 0x8004, "Committed response", cap ID_LEN]
        Committed {
            /// The snapshot id.
            snapshot: Id as hex,
        },
        /// Answers [`Request::ListSnapshots`].
        [SNAPSHOTS = 0x8005, "Snapshots response", cap LEN_LEN + MAX_SNAPSHOTS_PER_LIST * SNAPSHOT_ENTRY_MAX]
        Snapshots {
            /// At most [`MAX_SNAPSHOTS_PER_LIST`] entries.
            list: Vec<SnapshotEntry>,
        },
        /// Answers [`Request::GetManifest`].
        [MANIFEST = 0x8006, "Manifest response", cap LEN_LEN + MAX_MANIFEST_LEN]
        Manifest {
            /// The manifest as committed.
            bytes: Vec<u8> as len,
        },
        /// Answers [`Request::GetChunk`].
        [CHUNK = 0x8007, "Chunk response", cap LEN_LEN + MAX_BLOB_LEN]
        Chunk {
            /// The blob as stored.
            blob: Vec<u8> as len,
        },
        /// Answers [`Request::PutKey`]: the key file is durable.
        [KEY_STORED = 0x8008, "KeyStored response", cap 0]
        KeyStored,
        /// Answers [`Request::GetKey`].
        [KEY = 0x8009, "Key response", cap 1 + LEN_LEN + MAX_KEY_FILE_LEN]
        Key {
            /// `None` when the subscriber has no key yet (first enrolment).
            key_file: Option<Vec<u8>> as opt_len,
        },
        /// Answers [`Request::Forget`].
        [FORGOTTEN = 0x800A, "Forgotten response", cap 0]
        Forgotten,
        /// Answers [`Request::Status`].
        [STATUS_REPLY = 0x800B, "Status response", cap NAME_FIELD_MAX + 8 + 8 + 8 + 1 + 8]
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
        [CHUNKS = 0x800C, "Chunks response", cap MAX_CHUNKS_REPLY_LEN]
        Chunks {
            /// `None` for an id the server does not have.
            blobs: Vec<Option<Vec<u8>>> as some_blobs,
        },
        /// Answers [`Request::PutChunks`]: every blob is stored, as durable as
        /// after [`Response::Stored`].
        [STORED_CHUNKS = 0x800D, "StoredChunks response", cap LEN_LEN + MAX_BLOBS_PER_PUT.div_ceil(8)]
        StoredChunks {
            /// `new[i]` is false when the server already had the i-th blob.
            new: Vec<bool> as new,
        },
        /// Answers [`Request::Rekey`].
        [REKEYED = 0x8010, "Rekeyed response", cap 1]
        Rekeyed {
            /// False: the secret is pending (save it, then send the same `Rekey`
            /// again); true: it is the device's credential now, every other one is
            /// refused.
            current: bool,
        },
        /// Answers [`Request::ChunkTrust`]: one state per id asked, in order.
        [CHUNK_TRUST_REPLY = 0x8011, "ChunkTrust response", cap LEN_LEN + MAX_IDS_PER_REQUEST]
        ChunkTrust {
            /// The state of the i-th id.
            states: Vec<ChunkState> as states,
        },
        /// Answers [`Request::Vouch`].
        [VOUCHED = 0x8012, "Vouched response", cap 8]
        Vouched {
            /// How many ids were recorded (ids absent or trusted already are
            /// not).
            recorded: u64,
        },
        /// Answers [`Request::GetChunkCopy`].
        [CHUNK_COPY = 0x8013, "ChunkCopy response", cap LEN_LEN + MAX_BLOB_LEN]
        ChunkCopy {
            /// The blob as stored.
            blob: Vec<u8> as len,
        },
        /// Answers [`Request::ReplaceKey`]: the new key file is durable, and the
        /// old one is gone from the server.
        [KEY_REPLACED = 0x8014, "KeyReplaced response", cap 0]
        KeyReplaced,
        /// The request was refused; may answer any request.
        [ERROR = 0x8000, "Error response", cap 2 + 8 + 8 + LEN_LEN + MAX_ERROR_MESSAGE_LEN]
        Error(reply: ErrorReply),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{encode_request, encode_response};

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
    fn the_table_pairs_every_request_with_its_response_and_continuation_caps_the_largest() {
        assert_eq!(
            RESPONSE_TYPES.len(),
            REQUEST_TYPES.len() + 1,
            "Error answers any"
        );
        for &t in REQUEST_TYPES {
            assert!(t != 0 && t < 0x8000, "request type {t:#06x}");
            assert!(
                RESPONSE_TYPES.contains(&(0x8000 | t)),
                "no response to {t:#06x}"
            );
            assert!(message_name(t).unwrap().ends_with(" request"));
            assert!(max_request_len(t).unwrap() <= max_request_len(CONTINUATION).unwrap());
            assert_eq!(max_response_len(t), None);
        }
        for &t in RESPONSE_TYPES {
            assert!(t >= 0x8000 && t != CONTINUATION, "response type {t:#06x}");
            assert!(message_name(t).unwrap().ends_with(" response"));
            assert!(max_response_len(t).unwrap() <= max_response_len(CONTINUATION).unwrap());
            assert_eq!(max_request_len(t), None);
        }
        assert!(RESPONSE_TYPES.contains(&ERROR) && ERROR == 0x8000);
        let caps = |types: &[u16], cap: fn(u16) -> Option<usize>| {
            types.iter().map(|&t| cap(t).unwrap()).max()
        };
        assert_eq!(
            caps(REQUEST_TYPES, max_request_len),
            max_request_len(CONTINUATION)
        );
        assert_eq!(
            caps(RESPONSE_TYPES, max_response_len),
            max_response_len(CONTINUATION)
        );
    }

    #[test]
    fn debug_redacts_the_secret_and_elides_blobs() {
        for secret in [
            Request::Auth { secret: [0xAB; 32] },
            Request::Rekey { secret: [0xAB; 32] },
        ] {
            let shown = format!("{secret:?}");
            assert!(!shown.to_lowercase().contains("ab"), "{shown}");
            assert!(shown.contains("redacted"), "{shown}");
        }
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
