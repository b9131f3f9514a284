//! The payload codec of requests: [`encode_request`], [`decode_request`] and
//! [`decode_request_owned`], one arm per request of the table in `types.rs`.
//!
//! Decoding checks every field against its cap and against the bytes that
//! remain before anything is allocated; bytes after the last field are an
//! error. The layouts are in docs/protocol.md ("Requests").

use super::common::{check_blobs_len, encode, keep_tail, Payload};
use crate::caps::*;
use crate::error::ProtoError;
use crate::types::*;
use crate::wire::{Reader, Sink};

impl Payload for Request {
    fn msg_type(&self) -> u16 {
        Request::msg_type(self)
    }

    fn write<S: Sink>(&self, s: &mut S) -> Result<(), ProtoError> {
        let m = self.name();
        match self {
            Request::Auth { secret } | Request::Rekey { secret } => s.put(secret),
            Request::HasChunks { ids } | Request::ChunkTrust { ids } | Request::Vouch { ids } => {
                put_ids(s, m, ids, MAX_IDS_PER_REQUEST)?
            }
            Request::GetChunkCopy { id, copy } => {
                s.put(id);
                s.put_u32(*copy);
            }
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
            Request::ReplaceKey { expected, key_file } => {
                s.put(expected);
                s.put_bytes(m, "key_file", key_file, MAX_KEY_FILE_LEN)?
            }
        }
        Ok(())
    }
}

/// The wire bytes of `req`: its payload cut into frames, every frame but the
/// last of type [`CONTINUATION`] and full, the last of the request's type.
/// Write them to the stream, then finish the stream.
///
/// Fails only if a field is over its cap (too many ids, blob or manifest too
/// large): split or shrink it.
pub fn encode_request(req: &Request) -> Result<Vec<u8>, ProtoError> {
    encode(req)
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
        REKEY => Request::Rekey {
            secret: r.id("secret")?,
        },
        CHUNK_TRUST => Request::ChunkTrust {
            ids: ids(&mut r, MAX_IDS_PER_REQUEST)?,
        },
        VOUCH => Request::Vouch {
            ids: ids(&mut r, MAX_IDS_PER_REQUEST)?,
        },
        GET_CHUNK_COPY => Request::GetChunkCopy {
            id: r.id("id")?,
            copy: r.u32("copy")?,
        },
        REPLACE_KEY => Request::ReplaceKey {
            expected: r.id("expected")?,
            key_file: r.bytes("key_file", MAX_KEY_FILE_LEN)?.to_vec(),
        },
        _ => return Err(ProtoError::UnknownMessage(msg_type)),
    };
    r.finish()?;
    Ok(req)
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
