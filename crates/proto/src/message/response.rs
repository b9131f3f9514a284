//! The payload codec of responses: [`encode_response`], [`decode_response`]
//! and [`decode_response_owned`], one arm per response of the table in
//! `types.rs`, with the same checks as requests. The layouts are in
//! docs/protocol.md ("Responses").

use super::common::{check_blobs_len, encode, keep_tail, Payload};
use crate::caps::*;
use crate::error::ProtoError;
use crate::error_code::ErrorCode;
use crate::types::*;
use crate::values::{ChunkState, ErrorReply, Role, SnapshotEntry};
use crate::wire::{Reader, Sink};

impl Payload for Response {
    fn msg_type(&self) -> u16 {
        Response::msg_type(self)
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
            Response::Rekeyed { current } => s.put_bool(*current),
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
            Response::Chunk { blob } | Response::ChunkCopy { blob } => {
                s.put_bytes(m, "blob", blob, MAX_BLOB_LEN)?
            }
            Response::ChunkTrust { states } => {
                s.put_count(m, "states", states.len(), MAX_IDS_PER_REQUEST)?;
                for state in states {
                    s.put_u8(state.to_u8());
                }
            }
            Response::Vouched { recorded } => s.put_u64(*recorded),
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
            Response::KeyStored | Response::Forgotten | Response::KeyReplaced => {}
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

/// The wire bytes of `resp`, framed like [`crate::encode_request`].
///
/// Fails only if a field is over its cap (a name over [`MAX_NAME_LEN`], an
/// error message over [`MAX_ERROR_MESSAGE_LEN`], too many snapshots, ...).
pub fn encode_response(resp: &Response) -> Result<Vec<u8>, ProtoError> {
    encode(resp)
}

/// Decodes the payload of a reassembled response of type `msg_type`, with
/// the same checks as [`crate::decode_request`].
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
        REKEYED => Response::Rekeyed {
            current: r.bool("current")?,
        },
        CHUNK_COPY => Response::ChunkCopy {
            blob: r.bytes("blob", MAX_BLOB_LEN)?.to_vec(),
        },
        CHUNK_TRUST_REPLY => {
            let n = r.count("states", MAX_IDS_PER_REQUEST, 1)?;
            let mut states = Vec::with_capacity(n);
            for _ in 0..n {
                states.push(ChunkState::from_u8(r.u8("states")?).ok_or_else(|| {
                    r.invalid("states", "is not 0 (absent), 1 (trusted) or 2 (untrusted)")
                })?);
            }
            Response::ChunkTrust { states }
        }
        VOUCHED => Response::Vouched {
            recorded: r.u64("recorded")?,
        },
        KEY_STORED => Response::KeyStored,
        KEY => Response::Key {
            key_file: if r.bool("present")? {
                Some(r.bytes("key_file", MAX_KEY_FILE_LEN)?.to_vec())
            } else {
                None
            },
        },
        FORGOTTEN => Response::Forgotten,
        KEY_REPLACED => Response::KeyReplaced,
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
